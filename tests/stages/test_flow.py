"""Tests of ttblur.stages.flow: OpenCV DIS flow, RAFT wrapper error paths, factory."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
import torch

from ttblur.config import DBCGMConfig
from ttblur.protocols import FlowEstimator
from ttblur.stages.flow import (
    DIS_PRESETS,
    OpenCVFlow,
    RAFTFlow,
    build_flow,
    validate_flow_inputs,
)


def _texture(size: int = 220, seed: int = 0) -> np.ndarray:
    """Smooth random grey texture in [0, 1] (good for optical flow)."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 2.0)
    return (img - img.min()) / (img.max() - img.min())


def _shifted_pair(dx: int, dy: int, size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames where the content moves by (+dx, +dy) px from src to dst."""
    img = _texture()
    y0, x0 = 40, 40
    src = img[y0 : y0 + size, x0 : x0 + size]
    dst = img[y0 - dy : y0 - dy + size, x0 - dx : x0 - dx + size]
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).expand(3, -1, -1)  # noqa: E731
    return to_t(src)[None].clone(), to_t(dst)[None].clone()


@pytest.mark.parametrize("preset", sorted(DIS_PRESETS))
def test_opencv_flow_recovers_known_translation(preset: str) -> None:
    src, dst = _shifted_pair(3, -2)
    flow = OpenCVFlow(preset)(src, dst)
    assert flow.shape == (1, 2, 128, 128)
    assert flow.dtype == torch.float32
    interior = flow[0, :, 24:-24, 24:-24].mean(dim=(1, 2))
    assert abs(float(interior[0]) - 3.0) < 0.25
    assert abs(float(interior[1]) + 2.0) < 0.25


def test_opencv_flow_batch_is_per_pair_and_sign_follows_direction() -> None:
    a_src, a_dst = _shifted_pair(2, 0)
    b_src, b_dst = _shifted_pair(0, 3)
    flow = OpenCVFlow("medium")(torch.cat([a_src, b_src, a_dst]), torch.cat([a_dst, b_dst, a_src]))
    means = flow[:, :, 24:-24, 24:-24].mean(dim=(2, 3))
    assert torch.allclose(means[0], torch.tensor([2.0, 0.0]), atol=0.25)
    assert torch.allclose(means[1], torch.tensor([0.0, 3.0]), atol=0.25)
    assert torch.allclose(means[2], torch.tensor([-2.0, 0.0]), atol=0.25)  # reversed pair


def test_opencv_flow_is_protocol_and_keeps_device_and_empty_batch() -> None:
    flow = OpenCVFlow()
    assert isinstance(flow, FlowEstimator)
    empty = flow(torch.zeros(0, 3, 16, 16), torch.zeros(0, 3, 16, 16))
    assert empty.shape == (0, 2, 16, 16)
    assert empty.dtype == torch.float32


def test_opencv_flow_small_and_elongated_frames_do_not_crash() -> None:
    # OpenCV's DIS segfaults on e.g. 20x100 frames; OpenCVFlow pads them.
    src, dst = _shifted_pair(2, 0, size=128)
    for h, w in ((20, 100), (100, 20), (8, 8), (31, 257)):
        s = src[..., :h, :w].contiguous() if w <= 128 else torch.rand(1, 3, h, w)
        d = dst[..., :h, :w].contiguous() if w <= 128 else torch.rand(1, 3, h, w)
        out = OpenCVFlow("ultrafast")(s, d)
        assert out.shape == (1, 2, h, w)
        assert bool(torch.isfinite(out).all())


def test_opencv_flow_same_frames_gives_near_zero_flow() -> None:
    src, _ = _shifted_pair(0, 0)
    flow = OpenCVFlow("medium")(src, src)
    assert float(flow.abs().max()) < 0.05


@pytest.mark.parametrize(
    ("src", "dst", "message"),
    [
        (torch.rand(3, 16, 16), torch.rand(3, 16, 16), r"\(N, 3, H, W\)"),
        (torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), r"\(N, 3, H, W\)"),
        (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17), "same shape"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.uint8),) * 2 + ("floating point",),
        (torch.full((1, 3, 16, 16), float("nan")), torch.rand(1, 3, 16, 16), "NaN"),
        (torch.full((1, 3, 16, 16), 2.0), torch.rand(1, 3, 16, 16), r"\[0, 1\]"),
        (torch.rand(1, 3, 4, 16), torch.rand(1, 3, 4, 16), "at least 8x8"),
    ],
)
def test_flow_input_validation(src: torch.Tensor, dst: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_flow_inputs(src, dst)
    with pytest.raises(ValueError, match=message):
        OpenCVFlow("ultrafast")(src, dst)


def test_unknown_preset_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown DIS preset"):
        OpenCVFlow("slow")  # type: ignore[arg-type]


def test_build_flow_opencv_uses_preset() -> None:
    flow = build_flow(DBCGMConfig(flow="opencv", flow_preset="fast"))
    assert isinstance(flow, OpenCVFlow)
    assert flow.preset == "fast"


# ---- RAFT: error paths run everywhere; shapes need torchvision --------------------------------

_TORCHVISION = (
    "needs torchvision (torchvision.models.optical_flow) built for the installed torch; not a "
    "dependency of ttblur, and not installable on CI: its PyPI wheel is built against the CUDA "
    "torch and fails to import beside the CPU build .ci/run installs (checked: 0.28.0 with "
    "torch 2.13.0+cpu, 'operator torchvision::nms does not exist')"
)


def test_raft_without_weights_names_the_fix() -> None:
    with pytest.raises(ValueError, match=r"RAFTFlow needs weights.*never downloads"):
        RAFTFlow(None)
    with pytest.raises(ValueError, match="RAFTFlow needs weights"):
        build_flow(DBCGMConfig(flow="raft"))


def test_raft_missing_local_file_is_reported(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no RAFT weights"):
        RAFTFlow(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match="no RAFT weights"):
        RAFTFlow("./nowhere/raft_small.safetensors")


def test_raft_without_torchvision_names_the_fix(tmp_path, monkeypatch) -> None:
    weights = tmp_path / "raft.pth"
    torch.save({"w": torch.zeros(1)}, weights)
    # Make torchvision unimportable whether or not it is installed.
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    monkeypatch.setitem(sys.modules, "torchvision.models.optical_flow", None)
    with pytest.raises(ImportError, match=r"torchvision.*OpenCVFlow"):
        RAFTFlow(weights)
    with pytest.raises(ImportError, match="torchvision"):
        build_flow(DBCGMConfig(flow="raft", flow_weights=str(weights)))


def test_raft_small_random_weights_shapes(tmp_path) -> None:
    optical_flow = pytest.importorskip("torchvision.models.optical_flow", reason=_TORCHVISION)
    torch.manual_seed(0)
    net = optical_flow.raft_small(weights=None, progress=False)
    path = tmp_path / "raft_small.pth"
    torch.save(net.state_dict(), path)
    flow = RAFTFlow(path, num_flow_updates=2)
    assert flow.size == "small"
    out = flow(torch.rand(2, 3, 60, 68), torch.rand(2, 3, 60, 68))  # not multiples of 8
    assert out.shape == (2, 2, 60, 68)
    assert out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())


def test_raft_rejects_foreign_state_dict(tmp_path) -> None:
    pytest.importorskip("torchvision.models.optical_flow", reason=_TORCHVISION)
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ValueError, match="does not hold torchvision RAFT weights"):
        RAFTFlow(path)


class _FakeRAFT(torch.nn.Module):
    """Mimics torchvision's RAFT call convention: inputs in [-1, 1], H and W multiples of 8
    and at least 128 (torchvision raises below that: its correlation pyramid needs 16 px
    feature maps at 1/8 resolution)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(6, width, 1)
        self.bias = torch.nn.Parameter(torch.tensor([1.5, -0.5]))
        self.seen: list[tuple[int, ...]] = []

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, num_flow_updates: int = 12):
        assert image1.shape[-2] % 8 == 0 and image1.shape[-1] % 8 == 0
        assert min(image1.shape[-2:]) >= 128
        assert float(image1.min()) >= -1.0 and float(image1.max()) <= 1.0
        self.seen.append((*image1.shape, num_flow_updates))
        # flow = bias + the mean brightness difference, so outputs depend on the inputs
        diff = (image2 - image1).mean(dim=1, keepdim=True) / 2.0
        flow = self.bias.view(1, 2, 1, 1) + diff.expand(-1, 2, -1, -1)
        return [flow * 0.5, flow]


def _fake_optical_flow_module():
    import types

    module = types.ModuleType("torchvision.models.optical_flow")
    module.raft_small = lambda weights=None, progress=True: _FakeRAFT(2)  # type: ignore[attr-defined]
    module.raft_large = lambda weights=None, progress=True: _FakeRAFT(4)  # type: ignore[attr-defined]
    return module


def test_raft_wrapper_loading_padding_and_scaling_with_a_stand_in(tmp_path, monkeypatch) -> None:
    """Exercises RAFTFlow's own code (weights resolution, size detection, padding, cropping,
    [-1, 1] scaling, batching) against a stand-in module with torchvision's RAFT API."""
    from safetensors.torch import save_file

    monkeypatch.setitem(sys.modules, "torchvision.models.optical_flow", _fake_optical_flow_module())
    small = _FakeRAFT(2)
    torch.save({f"module.{k}": v for k, v in small.state_dict().items()}, tmp_path / "s.pth")
    flow = RAFTFlow(tmp_path / "s.pth", num_flow_updates=3, batch_size=2)
    assert flow.size == "small"
    src = torch.zeros(3, 3, 20, 130)
    dst = torch.ones(3, 3, 20, 130)
    out = flow(src, dst)
    assert out.shape == (3, 2, 20, 130) and out.dtype == torch.float32
    # [0, 1] -> [-1, 1] makes the brightness difference 2, halved by the stand-in: +1.
    assert torch.allclose(out[:, 0], torch.full((3, 20, 130), 2.5))
    assert torch.allclose(out[:, 1], torch.full((3, 20, 130), 0.5))
    # padded to RAFT's 128 px minimum / a multiple of 8, batched
    assert flow.model.seen == [(2, 3, 128, 136, 3), (1, 3, 128, 136, 3)]

    folder = tmp_path / "large"
    folder.mkdir()
    save_file(_FakeRAFT(4).state_dict(), str(folder / "model.safetensors"))
    assert RAFTFlow(folder).size == "large"
    with pytest.raises(ValueError, match="does not hold torchvision RAFT weights"):
        RAFTFlow(folder, size="small")


def test_raft_round_trip_through_folder_offline_hub_cache_and_push(
    tmp_path, monkeypatch, hub_cache, fake_hub
) -> None:
    """save_pretrained / from_pretrained / push_to_hub with the stand-in RAFT module."""
    monkeypatch.setitem(sys.modules, "torchvision.models.optical_flow", _fake_optical_flow_module())
    torch.manual_seed(0)
    small = _FakeRAFT(2)
    torch.save(small.state_dict(), tmp_path / "raft.pth")
    flow = RAFTFlow(tmp_path / "raft.pth", num_flow_updates=3)
    folder = flow.save_pretrained(tmp_path / "w")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    hub_cache.add("ttblur-test/raft-small", folder)
    src, dst = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    expected = flow(src, dst)
    for source in (folder, "ttblur-test/raft-small"):
        loaded = RAFTFlow.from_pretrained(source)
        assert (loaded.size, loaded.num_flow_updates) == ("small", 3)  # from config.json
        assert torch.equal(loaded(src, dst), expected)
    assert RAFTFlow.from_pretrained(folder, num_flow_updates=5).num_flow_updates == 5
    flow.push_to_hub("ttblur-test/raft-pushed")
    (uploaded,) = fake_hub.uploads
    assert torch.equal(RAFTFlow.from_pretrained(uploaded)(src, dst), expected)


def test_raft_weights_folder_errors(tmp_path, monkeypatch, hub_cache) -> None:
    from ttblur.hub import InvalidWeightsError, WeightsNotFoundError

    monkeypatch.setitem(sys.modules, "torchvision.models.optical_flow", _fake_optical_flow_module())
    torch.save(_FakeRAFT(2).state_dict(), tmp_path / "raft.pth")
    saved = RAFTFlow(tmp_path / "raft.pth").save_pretrained(tmp_path / "w")
    config = saved / "config.json"
    config.write_text(config.read_text().replace('"RAFTFlow"', '"BlurMagnitudeEstimator"'))
    with pytest.raises(InvalidWeightsError, match=r"holds weights of BlurMagnitudeEstimator"):
        RAFTFlow(saved)
    config.write_text('{"_class_name": "RAFTFlow", "size": "huge"}')
    with pytest.raises(InvalidWeightsError, match="not a valid RAFTFlow config"):
        RAFTFlow(saved)
    config.unlink()
    (saved / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(InvalidWeightsError, match="not a valid safetensors file"):
        RAFTFlow(saved)
    with pytest.raises(WeightsNotFoundError, match=r"ttblur-test/no-raft.*HF_HUB_OFFLINE"):
        RAFTFlow.from_pretrained("ttblur-test/no-raft")


def test_opencv_flow_of_a_pair_does_not_depend_on_the_pairs_before_it() -> None:
    # OpenCV's DIS object keeps state between calls: on 40 x 40 frames one reused object gave
    # flows differing by 3.8 px for the same pair. Each pair now gets a fresh one.
    frames = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    flow = OpenCVFlow("medium")
    alone = flow(frames[2:3], frames[3:4])
    assert torch.equal(flow(frames[2:3], frames[3:4]), alone)  # called again
    assert torch.equal(flow(frames[:3], frames[1:])[2:3], alone)  # third of a batch
    assert torch.equal(OpenCVFlow("medium")(frames[2:3], frames[3:4]), alone)
