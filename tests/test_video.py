"""Tests of ttblur.video: sources, natural order, encoding round trips, streaming, errors."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ttblur.video import iter_video, load_video, save_video, video_info

T, H, W = 8, 64, 96


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


@pytest.fixture(scope="module")
def smooth() -> torch.Tensor:
    """(8, 3, 64, 96) smooth moving colour pattern in [0, 1] (what codecs keep well)."""
    y = torch.linspace(0, 1, H).view(H, 1)
    x = torch.linspace(0, 1, W).view(1, W)
    frames = []
    for t in range(T):
        r = 0.5 + 0.4 * torch.sin(2 * math.pi * (x + 0.05 * t))
        g = 0.5 + 0.4 * torch.cos(2 * math.pi * (y - 0.03 * t))
        b = 0.2 + 0.6 * (x * y)
        frames.append(torch.stack([r.expand(H, W), g.expand(H, W), b.expand(H, W)]))
    return torch.stack(frames).float()


@pytest.fixture(scope="module")
def noisy() -> torch.Tensor:
    return torch.rand(T, 3, H, W, generator=torch.Generator().manual_seed(0))


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB (or gray) uint8/uint16 array with OpenCV (which expects BGR)."""
    image = rgb[:, :, ::-1] if rgb.ndim == 3 else rgb
    assert cv2.imwrite(str(path), np.ascontiguousarray(image))


# --------------------------------------------------------------------------- in-memory sources


def test_float_tensor_round_trip(noisy):
    out = load_video(noisy)
    assert out.dtype == torch.float32 and out.shape == (T, 3, H, W)
    assert torch.equal(out, noisy)
    assert out.data_ptr() != noisy.data_ptr()  # a new tensor, the input is never aliased
    assert torch.equal(load_video(noisy.double()), noisy)


def test_uint8_tensor_and_arrays_are_scaled(noisy):
    quantized = (noisy * 255).round().to(torch.uint8)
    expected = quantized.float() / 255
    assert torch.equal(load_video(quantized), expected)
    hwc = quantized.permute(0, 2, 3, 1).numpy()
    assert torch.equal(load_video(hwc), expected)
    assert torch.equal(load_video(hwc.astype(np.float32) / 255), expected)
    deep = (noisy.permute(0, 2, 3, 1).numpy() * 65535).round().astype(np.uint16)
    assert torch.allclose(load_video(deep), noisy, atol=1 / 65535)
    assert load_video(hwc, max_frames=3).shape == (3, 3, H, W)


def test_float_values_within_rounding_are_clamped(noisy):
    video = noisy.clone()
    video[0, 0, 0, 0] = 1.0004
    video[0, 0, 0, 1] = -0.0004
    out = load_video(video)
    assert float(out.max()) == 1.0 and float(out.min()) == 0.0


def test_in_memory_errors_name_the_problem(noisy):
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\), got 3 dims \(3, 64, 96\).*unsqueeze"):
        load_video(noisy[0])
    with pytest.raises(ValueError, match=r"3 \(RGB\) channels.*got \(8, 64, 96, 3\).*permute"):
        load_video(noisy.permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match=r"got \(8, 4, 64, 96\)"):
        load_video(torch.rand(8, 4, 64, 96))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\); got \(8, 3, 64, 96\).*from_numpy"):
        load_video(noisy.numpy())
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\), got 2 dims \(64, 96\)"):
        load_video(np.zeros((64, 96), np.uint8))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*got \[0.*, 255\]"):
        load_video(noisy * 255)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*got \[-0.5"):
        load_video(noisy.permute(0, 2, 3, 1).numpy() - 0.5)
    bad = noisy.clone()
    bad[3, 1, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        load_video(bad)
    bad[3, 1, 2, 2] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        load_video(bad.permute(0, 2, 3, 1).numpy())
    with pytest.raises(ValueError, match=r"dtype torch\.int64"):
        load_video(noisy.long())
    with pytest.raises(ValueError, match="dtype int32"):
        load_video(np.zeros((2, 4, 4, 3), np.int32))
    with pytest.raises(ValueError, match="got list"):
        load_video([noisy])  # type: ignore[arg-type]


def test_frame_count_checks(noisy):
    with pytest.raises(ValueError, match="video has 8 frames, fewer than the 9 required"):
        load_video(noisy, min_frames=9)
    with pytest.raises(ValueError, match="video has 2 frames, fewer than the 5 required"):
        load_video(noisy[:2].numpy().transpose(0, 2, 3, 1), min_frames=5)
    with pytest.raises(ValueError, match="video has 0 frames, fewer than the 1 required"):
        load_video(noisy[:0])
    with pytest.raises(ValueError, match="max_frames=3 is smaller than min_frames=5"):
        load_video(noisy, max_frames=3, min_frames=5)
    with pytest.raises(ValueError, match="max_frames must be a positive int, got 0"):
        load_video(noisy, max_frames=0)
    with pytest.raises(ValueError, match=r"min_frames must be a positive int, got 2\.5"):
        load_video(noisy, min_frames=2.5)  # type: ignore[arg-type]
    assert load_video(noisy, max_frames=5, min_frames=5).shape[0] == 5


# --------------------------------------------------------------------------- folders


def test_folder_natural_order_and_other_files_ignored(tmp_path):
    values = {"1.png": 10, "2.png": 20, "10.png": 30, "frame_9.png": 40, "frame_11.png": 50}
    for name, value in values.items():
        write_png(tmp_path / name, np.full((H, W, 3), value, np.uint8))
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    video = load_video(tmp_path)
    assert video.shape == (5, 3, H, W)
    got = (video[:, 0, 0, 0] * 255).round().int().tolist()
    assert got == [10, 20, 30, 40, 50]  # lexicographic order would give 1, 10, 2, ...
    assert load_video(tmp_path, max_frames=2)[:, 0, 0, 0].mul(255).round().tolist() == [10, 20]
    assert video_info(tmp_path).num_frames == 5


def test_folder_colour_depth_and_gray(tmp_path):
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = 255
    write_png(tmp_path / "0.png", red)
    assert cv2.imwrite(str(tmp_path / "1.jpg"), np.full((H, W, 3), (255, 0, 0), np.uint8))
    gray = (np.arange(H * W).reshape(H, W) % 256).astype(np.uint8)
    write_png(tmp_path / "2.png", gray)
    deep = np.full((H, W, 3), 40000, np.uint16)
    write_png(tmp_path / "3.png", deep)
    video = load_video(tmp_path)
    assert video[0, :, 5, 5].tolist() == [1.0, 0.0, 0.0]  # RGB, not OpenCV's BGR
    assert video[1, 2, 5, 5] > 0.95 and video[1, 0, 5, 5] < 0.05  # BGR (255,0,0) is blue
    expected_gray = torch.from_numpy(gray).float() / 255
    for c in range(3):  # grayscale replicated to 3 channels
        assert torch.equal(video[2, c], expected_gray)
    assert float(video[3].max()) == pytest.approx(40000 / 65535, abs=1e-7)
    single = load_video(tmp_path / "0.png")  # an image file is a one-frame video
    assert single.shape == (1, 3, H, W) and torch.equal(single[0], video[0])


def test_folder_errors(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=r"'.*nope' does not exist"):
        load_video(missing)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        iter_video(missing)  # raised at the call, not at the first next()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"folder '.*empty' has no image files \(.png"):
        load_video(empty)
    with pytest.raises(ValueError, match="has no image files"):
        iter_video(empty)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i in range(3):
        write_png(mixed / f"{i}.png", np.zeros((H, W, 3), np.uint8))
    write_png(mixed / "3.png", np.zeros((H, W + 2, 3), np.uint8))
    message = r"frame '3.png' is 64x98 \(HxW\) but the first frame '0.png' is 64x96"
    with pytest.raises(ValueError, match=message):
        load_video(mixed)
    stream = iter_video(mixed)
    assert [next(stream).shape for _ in range(3)] == [(3, H, W)] * 3  # streamed lazily
    with pytest.raises(ValueError, match=message):
        next(stream)

    twins = tmp_path / "twins"
    twins.mkdir()
    for i in range(2):
        write_png(twins / f"{i:04d}.png", np.zeros((H, W, 3), np.uint8))
    (twins / "0001.jpg").write_bytes((twins / "0001.png").read_bytes())
    message = r"holds '0001.jpg' and '0001.png': two images with one frame name"
    for read in (load_video, video_info, iter_video):
        with pytest.raises(ValueError, match=message):
            read(twins)

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    write_png(corrupt / "0.png", np.zeros((H, W, 3), np.uint8))
    (corrupt / "1.png").write_bytes(b"\x89PNG this is not really a png")
    with pytest.raises(ValueError, match=r"cannot decode image file '.*1\.png'"):
        load_video(corrupt)


# --------------------------------------------------------------------------- saving


def test_png_folder_round_trip_is_exact_up_to_quantization(tmp_path, noisy):
    folder = save_video(noisy, tmp_path / "frames")
    names = sorted(p.name for p in folder.iterdir())
    assert names[:3] == [".ttblur-frames", "00000.png", "00001.png"]
    assert (folder / ".ttblur-frames").read_text().split() == names[1:]
    assert torch.equal(load_video(folder), (noisy * 255).round() / 255)
    deep = save_video(noisy, tmp_path / "deep", bit_depth=16)
    assert (load_video(deep) - noisy).abs().max() <= 0.5 / 65535 + 1e-7
    # saving fewer frames into the same folder removes the stale ones
    save_video(noisy[:3], folder)
    assert load_video(folder).shape[0] == 3


def test_png_folder_refuses_foreign_images(tmp_path, noisy):
    folder = tmp_path / "shots"
    folder.mkdir()
    write_png(folder / "holiday.jpg", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"already holds image files.*'holiday\.jpg'"):
        save_video(noisy, folder)
    assert (folder / "holiday.jpg").exists()


@pytest.mark.parametrize("pattern", ["{}.png", "{:05d}.png", "{:06d}.png"])
def test_png_folder_keeps_numbered_images_it_did_not_write(tmp_path, noisy, pattern):
    # 1.png, ... and ffmpeg's %05d / %06d frames (00001.png, ...) are a user's frames, even
    # when named like ours: only the frames a write listed in .ttblur-frames are replaced.
    folder = tmp_path / "myframes"
    folder.mkdir()
    names = [pattern.format(i) for i in (1, 2, 12)]
    for i, name in zip((1, 2, 12), names, strict=True):
        write_png(folder / name, np.full((4, 4, 3), i, np.uint8))
    with pytest.raises(ValueError, match=rf"already holds image files.*'{names[0]}'"):
        save_video(noisy, folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def test_png_folder_rewrites_its_own_frames_only(tmp_path, noisy):
    folder = save_video(noisy, tmp_path / "frames")
    save_video(noisy[:2], folder)  # its own frames: replaced, the stale ones removed
    assert (folder / ".ttblur-frames").read_text().split() == ["00000.png", "00001.png"]
    assert load_video(folder).shape[0] == 2
    write_png(folder / "00002.png", np.zeros((H, W, 3), np.uint8))  # added by the user
    with pytest.raises(ValueError, match=r"did not write.*'00002\.png'"):
        save_video(noisy, folder)
    assert load_video(folder).shape[0] == 3


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi", ".mov"])
def test_video_file_round_trip(tmp_path, smooth, suffix):
    path = save_video(smooth, tmp_path / f"clip{suffix}", fps=30.0)
    video = load_video(path)
    assert video.shape == (T, 3, H, W) and video.dtype == torch.float32
    assert psnr_db(video, smooth) > 35.0
    # frames stay in order: frame t matches source frame t better than its neighbour
    assert psnr_db(video[4], smooth[4]) > psnr_db(video[4], smooth[5]) + 5
    info = video_info(path)
    assert (info.num_frames, info.height, info.width) == (T, H, W)
    assert info.fps == pytest.approx(30.0)


def test_variable_frame_rate_matroska_is_not_called_truncated(tmp_path):
    """Matroska stores no frame count; duration x nominal rate (here 40) is no frame count for a
    variable-rate stream: whether the last frame reaches the declared end is what counts."""
    import warnings
    from fractions import Fraction

    import av

    from ttblur.video import TruncatedVideoWarning

    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate([0, 40, 80, 500, 540, 580, 1500, 1540]):  # ms: two long pauses
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 25 * i, np.uint8), "rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedVideoWarning)
        assert load_video(path, strict=True).shape == (8, 3, 48, 64)


def test_odd_size_and_mpeg4(tmp_path, smooth):
    odd = smooth[:, :, :33, :47]
    out = load_video(save_video(odd, tmp_path / "odd.mp4"))  # libx264 in yuv444p
    assert out.shape == (T, 3, 33, 47) and psnr_db(out, odd) > 35.0
    out = load_video(save_video(odd, tmp_path / "odd.avi", codec="mpeg4"))
    assert out.shape == (T, 3, 33, 47) and psnr_db(out, odd) > 30.0


def test_ten_bit_stream_is_decoded_with_16_bit_precision(tmp_path, smooth):
    path = save_video(smooth[:3], tmp_path / "deep.mkv", pix_fmt="yuv444p10le", crf=0)
    video = load_video(path)
    assert psnr_db(video, smooth[:3]) > 45.0
    levels = video * 255
    assert float((levels - levels.round()).abs().max()) > 0.1  # not on the 8-bit grid


def test_crf_controls_quality(tmp_path, smooth):
    good = load_video(save_video(smooth, tmp_path / "good.mp4", crf=5))
    poor = load_video(save_video(smooth, tmp_path / "poor.mp4", crf=45))
    assert psnr_db(good, smooth) > psnr_db(poor, smooth) + 5
    assert (tmp_path / "good.mp4").stat().st_size > 2 * (tmp_path / "poor.mp4").stat().st_size


def test_save_errors(tmp_path, noisy):
    with pytest.raises(ValueError, match="names an image file"):
        save_video(noisy, tmp_path / "frame.png")
    for name in ("clip.webm", "anim.GIF"):  # not written, and not a folder of that name
        with pytest.raises(ValueError, match=r"names a \.(webm|gif) file"):
            save_video(noisy, tmp_path / name)
        assert not (tmp_path / name).exists()
    with pytest.raises(ValueError, match="fps must be a positive finite number, got 0"):
        save_video(noisy, tmp_path / "a.mp4", fps=0)
    with pytest.raises(ValueError, match=r"crf must be an int in \[0, 51\], got 60"):
        save_video(noisy, tmp_path / "a.mp4", crf=60)
    with pytest.raises(ValueError, match="bit_depth=16 is only supported for PNG folders"):
        save_video(noisy, tmp_path / "a.mp4", bit_depth=16)
    with pytest.raises(ValueError, match="codec 'nosuchcodec' is not available"):
        save_video(noisy, tmp_path / "a.mp4", codec="nosuchcodec")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        save_video(noisy * 2, tmp_path / "a.mp4")
    with pytest.raises(ValueError, match=r"got 3 dims \(3, 64, 96\)"):
        save_video(noisy[0], tmp_path / "frames")
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) array, got str"):
        save_video("clip.mp4", tmp_path / "a.mp4")  # type: ignore[arg-type]
    assert not (tmp_path / "a.mp4").exists()


def test_corrupt_and_streamless_video_files(tmp_path):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"'.*broken\.mp4'"):
        load_video(corrupt)
    with pytest.raises(ValueError, match=r"'.*broken\.mp4'"):
        iter_video(corrupt)

    import av

    audio = tmp_path / "sound.mkv"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(ValueError, match=r"'.*sound\.mkv' has no video stream"):
        load_video(audio)


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("kind", ["folder", "mp4", "tensor", "array"])
def test_iter_video_matches_load_video(tmp_path, smooth, kind):
    if kind == "folder":
        source = save_video(smooth, tmp_path / "frames")
    elif kind == "mp4":
        source = save_video(smooth, tmp_path / "clip.mp4")
    elif kind == "tensor":
        source = smooth
    else:
        source = (smooth * 255).round().byte().permute(0, 2, 3, 1).numpy()
    whole = load_video(source)
    frames = list(iter_video(source))
    assert len(frames) == T and all(f.shape == (3, H, W) for f in frames)
    assert torch.equal(torch.stack(frames), whole)
    chunks = list(iter_video(source, chunk_size=3))
    assert [c.shape[0] for c in chunks] == [3, 3, 2]
    assert torch.equal(torch.cat(chunks), whole)
    first = list(iter_video(source, max_frames=5, chunk_size=4))
    assert [c.shape[0] for c in first] == [4, 1]
    assert torch.equal(torch.cat(first), whole[:5])


def test_iter_video_argument_errors(noisy):
    with pytest.raises(ValueError, match="chunk_size must be a positive int, got 0"):
        iter_video(noisy, chunk_size=0)
    with pytest.raises(ValueError, match=r"got 3 dims \(3, 64, 96\)"):
        iter_video(noisy[0])


def test_float32_arrays_are_never_written_and_flipped_views_load(tmp_path):
    """The clamp to [0, 1] ran in place on the caller's float32 array: a read-only memmap
    crashed the process, a writable array (or an r+ .npy file) was changed."""
    from ttblur.inference import deblur
    from ttblur.testing import standin_model

    frames = np.random.default_rng(0).random((5, 16, 24, 3), dtype=np.float32)
    frames[0, 0, 0] = [1.0005, -0.0004, 0.5]  # within the tolerance: clamped in the copy
    np.save(tmp_path / "clip.npy", frames)
    for mode in ("r", "r+"):
        mapped = np.load(tmp_path / "clip.npy", mmap_mode=mode)
        assert float(load_video(mapped).max()) == 1.0
        deblur(standin_model("image"), mapped, spec="image", progress=False)
        del mapped
    assert np.array_equal(np.load(tmp_path / "clip.npy"), frames)
    kept = frames.copy()
    load_video(frames)
    assert np.array_equal(frames, kept)
    flipped = frames[..., ::-1]  # BGR -> RGB as a negative-stride view
    assert torch.equal(load_video(flipped), load_video(np.ascontiguousarray(flipped)))


def test_a_16_bit_pix_fmt_is_fed_16_bit_frames(tmp_path, smooth):
    """A pix_fmt deeper than 8 bits used to be fed rgb24: rounded to 8 bits first."""
    path = save_video(smooth, tmp_path / "deep.mkv", codec="ffv1", pix_fmt="gbrp16le")
    error = (load_video(path) - smooth).abs().max().item()
    assert error < 2 / 65535  # 8-bit rounding alone leaves up to 0.5 / 255


def test_video_info_reports_the_bit_depth_of_every_source(tmp_path, smooth):
    assert video_info(smooth).bit_depth == 16  # float tensor
    frames = (smooth.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    assert video_info(frames).bit_depth == 8
    assert video_info(frames.astype(np.uint16) * 257).bit_depth == 16
    assert video_info(save_video(smooth, tmp_path / "png8")).bit_depth == 8
    assert video_info(save_video(smooth, tmp_path / "png16", bit_depth=16)).bit_depth == 16
    assert video_info(tmp_path / "png16" / "00000.png").bit_depth == 16
    assert video_info(save_video(smooth, tmp_path / "clip.mp4")).bit_depth == 8
    deep = save_video(smooth, tmp_path / "deep.mkv", codec="ffv1", pix_fmt="gbrp16le")
    assert video_info(deep).bit_depth == 16
