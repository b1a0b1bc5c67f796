import itertools

import pytest
import torch
from torch import nn

from ttblur.inference import (
    _FrameBuffer,
    _spans,
    deblur,
    deblur_file,
    iter_deblur,
    reflect_index,
    window_plan,
)
from ttblur.specs import ModelSpec, get_spec
from ttblur.testing import standin_model
from ttblur.video import iter_video, load_video, save_video, video_info

BUILTIN = ["estrnn", "mmp_rnn", "dstnet", "shiftnet", "image", "reference"]


def _video(num_frames, height=30, width=42, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num_frames, 3, height, width, generator=generator)


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("num_frames", [1, 3, 9])
def test_deblur_runs_every_builtin_spec_end_to_end(name, num_frames):
    # 30 x 42 is not a multiple of 4, 8 or 16; 1 and 3 frames are shorter than any clip
    model = standin_model(name)
    video = _video(num_frames)
    window = None if name == "image" else get_spec(name).min_frames + 2
    out = deblur(model, video, spec=name, window=window, progress=False)
    assert out.shape == video.shape
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    # the stand-ins start as identity maps: any error in value ranges, colour order,
    # padding/cropping or frame alignment would show up here
    assert torch.allclose(out, video, atol=1e-5)


def test_deblur_changes_frames_when_the_model_is_not_identity():
    model = standin_model("estrnn")
    with torch.no_grad():
        model.head.conv2.bias.fill_(0.1)  # in model units: +0.1 everywhere
    video = _video(6) * 0.5
    out = deblur(model, video, spec="estrnn", progress=False)
    assert torch.allclose(out, video + 0.1, atol=1e-5)


class _WindowMean(nn.Module):
    """(B, T, 3, H, W) -> (B, T-3, 3, H, W): mean over each 4-frame window (past 1, future 2)."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.outputs = 0

    def forward(self, x):
        self.calls += 1
        windows = x.unfold(1, 4, 1)  # (B, T-3, 3, H, W, 4)
        self.outputs += windows.shape[1]
        return windows.mean(-1)


MEAN_SPEC = ModelSpec(name="mean", past_frames=1, future_frames=2, clip_length=6)


@pytest.mark.parametrize("num_frames, window", [(11, 6), (11, 4), (2, 6), (7, 100), (1, 4)])
def test_sliding_windows_align_frames_and_reflect_borders(num_frames, window):
    values = torch.arange(num_frames, dtype=torch.float32) / max(num_frames, 1)
    video = values.view(-1, 1, 1, 1).expand(num_frames, 3, 5, 7).contiguous()
    model = _WindowMean()
    out = deblur(model, video, spec=MEAN_SPEC, window=window, progress=False)
    expected = torch.stack(
        [
            torch.stack([values[reflect_index(k + d, num_frames)] for d in (-1, 0, 1, 2)]).mean()
            for k in range(num_frames)
        ]
    )
    assert torch.allclose(out[:, 0, 0, 0], expected, atol=1e-6)
    # every output frame produced exactly once (+1 output of the probe pass of check_model)
    assert model.outputs - 1 == num_frames


def test_reflect_index():
    assert [reflect_index(i, 5) for i in range(-3, 8)] == [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]
    assert [reflect_index(i, 2) for i in range(-2, 4)] == [0, 1, 0, 1, 0, 1]
    assert reflect_index(-7, 1) == 0
    with pytest.raises(ValueError):
        reflect_index(0, 0)


@pytest.mark.parametrize("num_frames", [1, 4, 5, 16, 17, 40])
@pytest.mark.parametrize("window", [5, 6, 20])
def test_window_plan_partitions_output_frames(num_frames, window):
    spec = get_spec("estrnn")
    plan = window_plan(num_frames, spec, window)
    produced = []
    for span in plan:
        assert spec.min_frames <= len(span) <= window
        produced.extend(range(span.start, span.stop - spec.context))
    assert produced == list(range(num_frames))


def test_window_plan_rejects_short_window():
    with pytest.raises(ValueError, match="window=4 is too short for spec='estrnn'"):
        window_plan(10, get_spec("estrnn"), 4)
    with pytest.raises(ValueError, match="at least 1 frame"):
        window_plan(0, get_spec("estrnn"))


def test_deblur_restores_modes_device_attribute_and_leaves_frozen_prior_alone():
    model = standin_model("mmp_rnn")
    model.train()
    model.prior.eval()  # the network keeps its prior in eval, like MMP-RNN
    deblur(model, _video(7), spec="mmp_rnn", device="cpu", progress=False)
    assert model.training and not model.prior.training
    assert model.prior_is_pristine()
    assert model.device == torch.device("cuda")
    assert next(model.parameters()).device.type == "cpu"


def test_deblur_uses_model_spec_and_accepts_frame_iterables():
    model = standin_model("reference")
    video = _video(6, 16, 24)
    out = deblur(model, iter(list(video)), progress=False)
    assert torch.allclose(out, video, atol=1e-5)


def test_deblur_names_spec_when_model_does_not_fit():
    with pytest.raises(ValueError, match="spec='image'"):
        deblur(standin_model("dstnet"), _video(4), progress=False)


@pytest.mark.parametrize(
    "video, message",
    [
        (torch.rand(3, 8, 8), "dims"),
        (torch.rand(2, 4, 8, 8), "3 \\(RGB\\) channels"),
        (torch.rand(2, 8, 8, 3), "permute"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int32), "dtype torch.int32"),
        (torch.rand(2, 3, 8, 8) * 2, "\\[0, 1\\]"),
        (torch.full((2, 3, 8, 8), float("nan")), "NaN"),
        (torch.rand(0, 3, 8, 8), "no frames"),
        ([], "no frames"),
        (3.0, "video must be"),
    ],
)
def test_deblur_validates_the_video(video, message):
    with pytest.raises(ValueError, match=message):
        deblur(standin_model("image"), video, progress=False)


def test_uint8_videos_are_accepted_as_adapt_accepts_them():
    video = _video(5, 12, 16)
    quantised = (video * 255).round().to(torch.uint8)
    model = standin_model("reference")
    expected = deblur(model, quantised.float() / 255, progress=False)
    assert torch.equal(deblur(model, quantised, progress=False), expected)
    streamed = torch.stack(list(iter_deblur(model, quantised, progress=False)))
    assert torch.equal(streamed, expected)
    assert torch.equal(quantised, (video * 255).round().to(torch.uint8))  # input untouched


def test_deblur_rejects_non_modules_and_short_windows():
    with pytest.raises(TypeError, match=r"nn\.Module"):
        deblur(lambda x: x, _video(3), progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too short"):
        deblur(standin_model("estrnn"), _video(8), spec="estrnn", window=3, progress=False)


# --------------------------------------------------------------------------- streaming


def _perturbed(name, seed=1):
    """A stand-in that is not an identity map, so misaligned frames would show."""
    model = standin_model(name)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.is_floating_point():
                param.add_(0.02 * torch.randn(param.shape, generator=generator))
    return model


def _stream(model, frames, **kwargs):
    return torch.stack(list(iter_deblur(model, frames, progress=False, **kwargs)))


def _chunks(video, size):
    return (chunk for chunk in video.split(size))


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("num_frames", [2, 7, 12])
def test_iter_deblur_equals_deblur_for_every_builtin_spec(name, num_frames):
    # a window of min_frames + 2: 2 frames is shorter than it, 7 and 12 need several windows;
    # 18 x 22 is not a multiple of 4, 8 or 16
    model = _perturbed(name)
    video = _video(num_frames, 18, 22, seed=num_frames)
    window = None if name == "image" else get_spec(name).min_frames + 2
    expected = deblur(model, video, spec=name, window=window, progress=False)
    assert not torch.allclose(expected, video, atol=1e-3)  # the model does something
    sources = {
        "tensor": video,
        "iterator (length unknown)": iter(list(video)),
        "chunks of 3": _chunks(video, 3),
    }
    for kind, source in sources.items():
        out = _stream(model, source, spec=name, window=window)
        assert out.dtype == torch.float32 and out.device.type == "cpu"
        assert torch.equal(out, expected), kind


@pytest.mark.parametrize("name", ["estrnn", "reference"])
def test_iter_deblur_equals_deblur_with_the_default_window(name):
    model = _perturbed(name)
    clip = get_spec(name).clip_length
    for num_frames in (clip - 3, clip + 5):  # shorter and longer than one window
        video = _video(num_frames, 8, 8, seed=num_frames)
        if num_frames == clip - 3:
            video = list(video)
        expected = deblur(model, video, spec=name, progress=False)
        assert torch.equal(_stream(model, iter(list(video)), spec=name), expected)


class _WeightedWindow(nn.Module):
    """(B, T, 3, H, W) -> (B, T - past - future, ...): a weighted sum over each window, so
    that both the choice and the order of the frames show in the output."""

    def __init__(self, past, future):
        super().__init__()
        self.size = past + future + 1
        self.register_buffer("weights", torch.arange(1.0, self.size + 1) / self.size**2)
        self.outputs = 0

    def forward(self, x):
        out = (x.unfold(1, self.size, 1) * self.weights).sum(-1)
        self.outputs += out.shape[1]
        return out


@pytest.mark.parametrize("past, future", [(0, 0), (3, 0), (0, 3), (1, 2), (4, 1)])
@pytest.mark.parametrize("num_frames", [1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("extra", [0, 1, 4])
def test_streaming_reflects_borders_with_unknown_length(past, future, num_frames, extra):
    # asymmetric border frames: the end reflection needs the last `future` frames, read
    # before the length of the video is known
    spec = ModelSpec(name="weighted", past_frames=past, future_frames=future, clip_length=9)
    window = past + future + 1 + extra
    values = torch.rand(num_frames, generator=torch.Generator().manual_seed(num_frames))
    video = values.view(-1, 1, 1, 1).expand(num_frames, 3, 2, 3).contiguous()
    model = _WeightedWindow(past, future)
    out = _stream(model, iter(list(video)), spec=spec, window=window)
    weights = model.weights
    expected = torch.stack(
        [
            sum(
                weights[d + past] * values[reflect_index(k + d, num_frames)]
                for d in range(-past, future + 1)
            )
            for k in range(num_frames)
        ]
    )
    assert torch.allclose(out[:, 0, 0, 0], expected, atol=1e-6)
    assert torch.equal(out, deblur(model, video, spec=spec, window=window, progress=False))
    assert model.outputs - 2 == 2 * num_frames  # two probe passes, each frame restored once


@pytest.mark.parametrize("window", [5, 6, 11])
def test_iter_deblur_reads_only_about_one_window_ahead(window):
    spec = get_spec("estrnn")
    video = _video(24, 4, 4)
    pulled = []

    def source():
        for frame in video:
            pulled.append(1)
            yield frame

    stream = iter_deblur(_perturbed("estrnn"), source(), spec=spec, window=window, progress=False)
    for index, _ in enumerate(stream):
        ahead = len(pulled) - index
        assert 1 <= ahead <= window - spec.past_frames or len(pulled) == len(video)


@pytest.mark.parametrize("past, future, window", [(2, 2, 5), (2, 2, 20), (3, 0, 4), (0, 3, 6)])
def test_frame_buffer_keeps_at_most_a_window_plus_future_frames(past, future, window):
    spec = ModelSpec(name="b", past_frames=past, future_frames=future, clip_length=window)
    for num_frames in (1, 3, 10, 37):
        buffer = _FrameBuffer(iter(_video(num_frames, 2, 2)))
        produced = 0
        for span, indices, keep_from in _spans(spec, window, buffer):
            assert len(buffer._kept) <= window + future
            assert buffer.take(indices).shape[0] == len(span)
            buffer.release_before(keep_from)
            produced += len(span) - spec.context
        assert produced == num_frames


def test_iter_deblur_starts_before_the_input_ends():
    # an endless stream: the first frames come out anyway, equal to deblur's on a prefix
    model = _perturbed("estrnn")
    video = _video(16, 8, 8)
    endless = itertools.chain(video, itertools.repeat(video[-1]))
    stream = iter_deblur(model, endless, spec="estrnn", window=7, progress=False)
    first = torch.stack(list(itertools.islice(stream, 5)))
    assert torch.equal(first, deblur(model, video, spec="estrnn", window=7, progress=False)[:5])


def test_iter_deblur_reads_files_and_folders_lazily(tmp_path):
    model = _perturbed("reference")
    video = _video(9, 8, 16)
    for target in ("clip.mp4", "frames"):
        path = save_video(video, tmp_path / target)
        expected = deblur(model, path, window=6, progress=False)
        assert torch.equal(_stream(model, str(path), window=6), expected)
        assert torch.equal(_stream(model, iter_video(path), window=6), expected)
        assert torch.equal(_stream(model, iter_video(path, chunk_size=4), window=6), expected)
    array = (video.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    assert torch.equal(_stream(model, array), deblur(model, array, progress=False))


def test_iter_deblur_restores_the_model_when_closed_early():
    model = standin_model("mmp_rnn")
    model.train()
    model.prior.eval()
    stream = iter_deblur(model, _video(30), spec="mmp_rnn", window=7, device="cpu", progress=False)
    next(stream)
    # between windows the model is as the caller left it: eval mode, the device attribute
    # and no_grad hold only around each forward pass
    assert model.training and model.device == torch.device("cuda")
    assert torch.is_grad_enabled()
    stream.close()
    assert model.training and not model.prior.training
    assert model.device == torch.device("cuda")
    assert model.prior_is_pristine()


def test_two_iterators_interleaved_on_one_model_each_give_deblurs_frames():
    """Each iterator used to hold eval mode across its yields: when the shorter one ended it
    put the model back in train mode under the other (BatchNorm then normalised with batch
    statistics and updated its running ones)."""
    from itertools import zip_longest

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 3, 1)
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
    model.train()
    stats = model[1].running_mean.clone()
    a, b = _video(8, seed=1), _video(24, seed=2)
    outputs: dict[str, list[torch.Tensor]] = {"a": [], "b": []}
    streams = (iter_deblur(model, a, spec="image", window=4, progress=False),
               iter_deblur(model, b, spec="image", window=4, progress=False))  # fmt: skip
    for x, y in zip_longest(*streams):
        if x is not None:
            outputs["a"].append(x)
        if y is not None:
            outputs["b"].append(y)
    assert model.training and torch.equal(model[1].running_mean, stats)
    for name, video in (("a", a), ("b", b)):
        expected = deblur(model, video, spec="image", progress=False)
        assert torch.equal(torch.stack(outputs[name]), expected), name


def test_iter_deblur_checks_arguments_at_the_call(tmp_path):
    model = standin_model("estrnn")
    with pytest.raises(TypeError, match=r"nn\.Module"):
        iter_deblur(lambda x: x, _video(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too short"):
        iter_deblur(model, _video(8), spec="estrnn", window=3)
    with pytest.raises(ValueError, match="unknown spec"):
        iter_deblur(model, _video(8), spec="nosuchspec")
    with pytest.raises(ValueError, match="permute"):
        iter_deblur(model, torch.rand(2, 8, 8, 3), spec="estrnn")
    with pytest.raises(ValueError, match=r"dtype torch\.int16"):
        iter_deblur(model, torch.zeros(2, 3, 8, 8, dtype=torch.int16), spec="estrnn")
    with pytest.raises(FileNotFoundError):
        iter_deblur(model, tmp_path / "missing.mp4", spec="estrnn")
    with pytest.raises(ValueError, match="video must be"):
        iter_deblur(model, 3.0, spec="estrnn")


@pytest.mark.parametrize(
    "frames, message",
    [
        ([], "no frames"),
        ([torch.rand(3, 8, 8), torch.rand(3, 8, 9)], "same shape"),
        ([torch.rand(3, 8, 8), torch.rand(3, 8, 8) * 2], r"\[0, 1\]"),
        ([torch.full((3, 8, 8), float("nan"))], "NaN"),
        ([torch.rand(8, 8, 3)], r"\(3, H, W\)"),
    ],
)
def test_iter_deblur_checks_frames_as_they_arrive(frames, message):
    model = standin_model("image")
    stream = iter_deblur(model, iter(frames), progress=False)
    with pytest.raises(ValueError, match=message):
        list(stream)
    assert model.training  # restored after the error


# --------------------------------------------------------------------------- deblur_file


class _Counting(nn.Module):
    """The image stand-in, counting forward calls; raises on call ``fail_at`` (if set)."""

    def __init__(self, fail_at=None):
        super().__init__()
        self.inner = _perturbed("image")
        self.calls = 0
        self.fail_at = fail_at

    def forward(self, x):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("boom")
        return self.inner(x)


def test_deblur_file_png_folder_round_trip(tmp_path):
    model = _perturbed("reference")
    video = _video(13, 16, 24)
    src = save_video(video, tmp_path / "src")
    dst = deblur_file(model, src, tmp_path / "out", window=6, progress=False)
    assert dst == tmp_path / "out"
    expected = deblur(model, src, window=6, progress=False)
    assert torch.equal(load_video(dst), (expected * 255).round() / 255)
    # a second, shorter run into the same folder leaves no stale frames
    deblur_file(model, _frames_subset(src, tmp_path / "short", 4), dst, progress=False)
    assert video_info(dst).num_frames == 4


def test_deblur_file_keeps_a_16_bit_source_16_bit_in_a_png_folder(tmp_path):
    """A 16-bit source used to come back as 8-bit PNGs: 8 of its bits lost without a word."""
    model = _perturbed("reference")
    src = save_video(_video(5, 16, 24), tmp_path / "src", bit_depth=16)
    expected = deblur(model, src, progress=False)
    dst = deblur_file(model, src, tmp_path / "out", progress=False)
    assert video_info(dst).bit_depth == 16
    assert (load_video(dst) - expected).abs().max() <= 0.5 / 65535 + 1e-7
    eight = deblur_file(model, src, tmp_path / "out8", bit_depth=8, progress=False)
    assert torch.equal(load_video(eight), (expected * 255).round() / 255)
    with pytest.warns(UserWarning, match="its samples' bits beyond 8"):
        deblur_file(model, src, tmp_path / "out.mkv", crf=0, progress=False)


def test_deblur_file_refuses_a_dst_that_is_the_source_through_a_link(tmp_path):
    model = _perturbed("image")
    src = save_video(_video(5, 16, 24), tmp_path / "clip.mkv", fps=24)
    before = src.read_bytes()
    (tmp_path / "link.mkv").hardlink_to(src)
    for dst in (src, tmp_path / "link.mkv"):
        with pytest.raises(ValueError, match="dst must differ from src"):
            deblur_file(model, src, dst, progress=False)
    assert src.read_bytes() == before


def _frames_subset(src, folder, count):
    return save_video(load_video(src, max_frames=count), folder)


def test_deblur_file_video_round_trip_keeps_fps(tmp_path):
    model = _perturbed("reference")
    src = save_video(_video(14, 16, 24), tmp_path / "src.mp4", fps=30.0)
    dst = deblur_file(model, src, tmp_path / "sub" / "out.mp4", progress=False)
    info = video_info(dst)
    assert (info.num_frames, info.height, info.width) == (14, 16, 24)
    assert info.fps == pytest.approx(30.0)
    # the same frames as the in-memory path, encoded the same way
    reference = save_video(deblur(model, src, progress=False), tmp_path / "ref.mp4", fps=30.0)
    assert torch.equal(load_video(dst), load_video(reference))
    slow = deblur_file(model, src, tmp_path / "slow.mkv", fps=12.5, crf=0, progress=False)
    assert video_info(slow).fps == pytest.approx(12.5)


def test_deblur_file_checks_options_before_running_the_model(tmp_path):
    src = save_video(_video(6, 8, 8), tmp_path / "src")
    model = _Counting()
    cases = [
        (dict(dst=tmp_path / "x.png"), ValueError, "names an image file"),
        (dict(dst=src), ValueError, "differ from src"),
        (dict(dst=tmp_path / "x.mp4", crf=99), ValueError, "crf"),
        (dict(dst=tmp_path / "x.mp4", codec="nosuchcodec"), ValueError, "not available"),
        (dict(dst=tmp_path / "x.mp4", fps=0), ValueError, "fps"),
        (dict(dst=tmp_path / "x.mp4", quality=3), TypeError, "quality"),
        (dict(dst=tmp_path / "x.mp4", window=0), ValueError, "too short"),
    ]
    for kwargs, error, message in cases:
        dst = kwargs.pop("dst")
        with pytest.raises(error, match=message):
            deblur_file(model, src, dst, progress=False, **kwargs)
    with pytest.raises(FileNotFoundError):
        deblur_file(model, tmp_path / "missing", tmp_path / "x.mp4", progress=False)
    with pytest.raises(ValueError, match="must be paths"):
        deblur_file(model, _video(3), tmp_path / "x.mp4", progress=False)  # type: ignore[arg-type]
    assert model.calls == 0
    assert not (tmp_path / "x.mp4").exists()


def test_deblur_file_passes_model_errors_through_and_removes_the_partial_file(tmp_path):
    src = save_video(_video(40, 8, 8), tmp_path / "src")
    model = _Counting(fail_at=4)  # probe, two windows, then an error
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        deblur_file(model, src, tmp_path / "out.mp4", spec="image", window=8, progress=False)
    assert not (tmp_path / "out.mp4").exists()
    assert model.training and model.calls == 4


def test_save_video_refuses_an_empty_video(tmp_path):
    # save_video and deblur_file share the incremental writer
    for target in ("empty.mp4", "empty"):
        with pytest.raises(ValueError, match="no frames to write"):
            save_video(torch.zeros(0, 3, 8, 8), tmp_path / target)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where no GPU is seen")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_cuda_device_without_a_gpu_is_refused_with_its_reason(device: str) -> None:
    from ttblur.inference import resolve_device

    with pytest.raises(ValueError, match=f"device='{device}', but torch sees no CUDA GPU"):
        resolve_device(device)
    assert resolve_device("cpu") == torch.device("cpu")


def test_deblur_file_never_writes_over_its_own_input(tmp_path):
    from ttblur.io.paths import OutputPathError
    from ttblur.video import save_video

    folder = save_video(_video(5), tmp_path / "frames")  # 00000.png ... 00004.png
    source = folder / "00003.png"
    before = source.read_bytes()
    with pytest.raises(OutputPathError, match="would be replaced by an output frame"):
        deblur_file(standin_model("image"), source, folder, spec="image", progress=False)
    assert source.read_bytes() == before


def test_deblur_checks_its_arguments_before_decoding_a_file(tmp_path, monkeypatch):
    import ttblur.inference
    from ttblur.video import save_video

    path = save_video(_video(8), tmp_path / "clip.mkv")

    def decoding(*args, **kwargs):
        raise AssertionError("the video was decoded before the arguments were checked")

    monkeypatch.setattr(ttblur.inference, "to_video", decoding)
    model = standin_model("estrnn")
    with pytest.raises(ValueError, match="too short"):
        deblur(model, path, spec="estrnn", window=3, progress=False)
    with pytest.raises(ValueError, match="unknown spec"):
        deblur(model, path, spec="nosuchspec", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda'"):
            deblur(model, path, spec="estrnn", device="cuda", progress=False)


def test_deblur_file_says_what_of_the_source_it_does_not_keep(tmp_path):
    import av
    import numpy as np

    source = tmp_path / "phone.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)  # a portrait phone video
        audio = container.add_stream("aac", rate=8000)
        for i in range(6):
            image = np.full((48, 64, 3), 30 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.float32), "fltp", "mono")
        sound.sample_rate = 8000
        container.mux(audio.encode(sound))
        container.mux(audio.encode(None))
    model = standin_model("image")
    with pytest.warns(UserWarning, match=r"without 1 audio track\(s\) and its 90 degree display"):
        deblur_file(model, source, tmp_path / "out.mp4", spec="image", progress=False)
