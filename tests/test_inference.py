import pytest
import torch
from torch import nn

from ttblur.inference import deblur, reflect_index, window_plan
from ttblur.specs import ModelSpec, get_spec
from ttblur.testing import standin_model

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
        ((torch.rand(2, 3, 8, 8) * 255).to(torch.uint8), "dtype torch.uint8"),
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


def test_deblur_rejects_non_modules_and_short_windows():
    with pytest.raises(ValueError, match=r"nn\.Module"):
        deblur(lambda x: x, _video(3), progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too short"):
        deblur(standin_model("estrnn"), _video(8), spec="estrnn", window=3, progress=False)
