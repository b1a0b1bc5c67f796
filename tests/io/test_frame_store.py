"""FrameStore: a disk-backed video that indexes like a tensor and returns the same numbers."""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ttblur.io.frame_store import FrameStore, per_frame
from ttblur.io.video import store_video


def _eight_bit(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=gen).float() / 255.0


def test_every_index_form_the_stages_use_matches_the_tensor() -> None:
    video = _eight_bit((11, 3, 12, 16))
    store = FrameStore.from_chunks(video.split(4))
    assert store.encoding == "uint8"  # 1 byte per value on disk
    assert store.nbytes_on_disk == video.numel()
    assert store.shape == video.shape and len(store) == 11 and store.ndim == 4
    cases = [
        3,
        -1,
        torch.tensor(5),
        slice(2, 7),
        slice(None, None, 3),
        slice(9, 30),
        [4, 1, 4],
        torch.tensor([0, 10]),
        (6, slice(None), slice(2, 9), slice(1, 4)),
        (slice(3, 4), slice(None), slice(0, 5)),
        (torch.tensor([2, 3]), 0),
        (..., slice(2, 5)),
        (1, ..., 3),
        (..., 0, slice(1, 3)),
        (...,),
        np.array([1, 3]),
        np.int64(2),
    ]
    for index in cases:
        assert torch.equal(store[index], video[index]), index
    assert torch.equal(torch.stack(list(store)), video)
    with pytest.raises(IndexError, match="out of range"):
        store[11]
    # True is 1 to Python and [True, False, ...] was read as frames 1, 0, ...: refused now.
    for mask in (
        torch.ones(11, dtype=torch.bool),
        True,
        [True, False] * 5 + [True],
        np.ones(11, bool),
        torch.tensor(True),
    ):
        with pytest.raises(TypeError, match="boolean mask"):
            store[mask]
    for other in (None, 1.5, "a", (None, 0), torch.tensor([0.0, 2.0])):
        with pytest.raises(TypeError, match="indexed by an int, a slice"):
            store[other]


def test_frames_that_are_not_8_bit_switch_the_store_to_float32_losslessly() -> None:
    first, second = _eight_bit((9, 3, 8, 8)), torch.rand(3, 3, 8, 8)
    store = FrameStore.from_chunks([first, second])
    assert store.encoding == "float32"
    assert torch.equal(store[:], torch.cat([first, second]))
    with pytest.raises(ValueError, match="one shape"):
        FrameStore.from_chunks([first, torch.rand(2, 3, 8, 9)])
    with pytest.raises(ValueError, match="no frames"):
        FrameStore.from_chunks([])


def test_reductions_pooling_and_value_range_read_chunk_by_chunk() -> None:
    video = torch.rand(21, 1, 16, 24)
    store = FrameStore.create((21, 1, 16, 24))
    for start in range(0, 21, 5):
        store.write(start, video[start : start + 5])
    assert torch.equal(store[:], video)
    means = per_frame(store, lambda m: m.flatten(1).mean(dim=1))
    assert torch.equal(means, video.flatten(1).mean(dim=1))
    assert torch.equal(store.pooled(4)[:], F.avg_pool2d(video, 4))
    assert store.pooled(4).shape == (21, 1, 4, 6)
    assert store.value_range() == (float(video.min()), float(video.max()))
    store.write(0, torch.full((1, 1, 16, 24), 7.0))  # a write forgets the remembered range
    assert store.value_range()[1] == 7.0
    with pytest.raises(ValueError, match="overruns"):
        store.write(20, video[:2])
    with pytest.raises(TypeError, match="float32"):
        store.to(torch.float16)


def test_the_temporary_file_is_unnamed_and_freed_on_close(tmp_path: Path) -> None:
    store = FrameStore.from_chunks([_eight_bit((4, 3, 8, 8))], directory=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing to clean up, even after a crash
    descriptor = store._backing.file.fileno()
    assert os.fstat(descriptor).st_size == 4 * 3 * 8 * 8
    store.close()
    with pytest.raises(OSError):
        os.fstat(descriptor)
    with pytest.raises(ValueError, match="does not exist"):
        FrameStore.create((1, 1, 2, 2), directory=tmp_path / "missing")


def test_a_dropped_store_frees_its_file_without_a_resource_warning(tmp_path: Path) -> None:
    # A run's output may hold the detector's maps in a store nobody closes.
    store = FrameStore.from_chunks([_eight_bit((4, 3, 8, 8))], directory=tmp_path)
    descriptor = store._backing.file.fileno()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del store
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    with pytest.raises(OSError):
        os.fstat(descriptor)


def test_store_video_reads_exactly_what_load_video_reads(tmp_path: Path) -> None:
    from ttblur.io.video import load_video

    rng = np.random.default_rng(0)
    for index in range(10):
        image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"{index:03d}.png"), image)
    store = store_video(tmp_path)
    assert store.encoding == "uint8"
    assert torch.equal(store[:], load_video(tmp_path))
    assert len(store_video(tmp_path, max_frames=4)) == 4


def test_empty_chunks_are_skipped():
    frames = torch.rand(4, 3, 8, 8)
    empty = torch.zeros(0, 3, 8, 8)
    store = FrameStore.from_chunks([empty, frames[:2], empty, frames[2:], empty])
    assert len(store) == 4 and torch.allclose(store[:], frames, atol=0.5 / 255)
    with pytest.raises(ValueError, match="the video has no frames"):
        FrameStore.from_chunks([empty])
