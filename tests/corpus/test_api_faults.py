"""Fault corpus of the Python API (:func:`ttblur.adapt`, :func:`ttblur.deblur`, the config).

Every case feeds one bad input, bad model, bad loss, bad config value or fault (divergence,
``KeyboardInterrupt``, an exception inside a stage) and asserts the exact outcome: the error
and the words of its message, raised before any expensive work, or the documented recovery
(``docs/guarantees.md``). Every case also asserts that the caller's model (parameters and
buffers bit for bit, gradients, ``requires_grad`` flags, train/eval modes) and the caller's
input tensor are unchanged, with :class:`Untouched`.

"Before any expensive work" is checked by making the later stages fail loudly if they are
reached: :func:`no_work` replaces the model copy, the spec probe and the stage builders.

The models are the tiny stand-ins of :mod:`ttblur.testing` and a few modules defined here;
the videos are 7 frames of 40x40 px, so each case takes about a second on a 2-core CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import Tensor, nn

import ttblur.api
import ttblur.pipeline
from ttblur import adapt, deblur
from ttblur._state import ModuleSnapshot, bits_equal
from ttblur.config import AdaptConfig
from ttblur.finetune import select_trainable
from ttblur.protocols import Selection
from ttblur.registry import CONDITION_GENERATORS, DETECTORS, FLOWS, SYNTHESIZERS
from ttblur.specs import check_model
from ttblur.testing import standin_model

FAST: dict[str, Any] = {"rsdm": {"patch_size": 32}, "finetune": {"epochs": 1, "batch_size": 4}}
NO_VAL: dict[str, Any] = {
    "rsdm": {"patch_size": 32},
    "finetune": {"epochs": 2, "batch_size": 4, "val_fraction": 0.0},
}


def _video(frames: int = 7, height: int = 40, width: int = 40, seed: int = 0) -> Tensor:
    return torch.rand(frames, 3, height, width, generator=torch.Generator().manual_seed(seed))


class Untouched:
    """Records a model and an input and asserts afterwards that neither changed.

    The model: every parameter and buffer (original tensor objects, values bit for bit,
    dtype, device), gradients, ``requires_grad`` flags and each submodule's mode. The input:
    a tensor, compared bit for bit.
    """

    def __init__(self, model: nn.Module | None, video: Any = None) -> None:
        self.model = model
        self.snapshot = ModuleSnapshot.capture(model) if model is not None else None
        self.video = video
        self.copy = video.clone() if isinstance(video, Tensor) else None
        self.flags = [(n, p.requires_grad) for n, p in model.named_parameters()] if model else None
        self.modes = [m.training for m in model.modules()] if model else None

    def check(self) -> None:
        if self.model is not None and self.snapshot is not None:
            assert self.snapshot.matches(self.model), "the caller's model changed"
            assert [(n, p.requires_grad) for n, p in self.model.named_parameters()] == self.flags
            assert [m.training for m in self.model.modules()] == self.modes
        if self.copy is not None:
            assert bits_equal(self.video, self.copy), "the caller's input changed"


@contextmanager
def untouched(model: nn.Module | None, video: Any = None) -> Iterator[Untouched]:
    """Context that runs :meth:`Untouched.check` on exit, also when an error escapes."""
    guard = Untouched(model, video)
    try:
        yield guard
    finally:
        guard.check()


def _loud(stage: str) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"expensive work ({stage}) started before the input was refused")

    return fail


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every stage after the up-front checks fail loudly if it is reached."""
    monkeypatch.setattr(ttblur.pipeline, "copy_model", _loud("model copy"))
    monkeypatch.setattr(ttblur.pipeline, "infer_spec", _loud("spec probe"))
    _no_stage_builds(monkeypatch)


@pytest.fixture
def no_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Allow the copy and the spec probe, but no pipeline stage."""
    _no_stage_builds(monkeypatch)


def _no_stage_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    for registry in (DETECTORS, CONDITION_GENERATORS, SYNTHESIZERS, FLOWS):
        monkeypatch.setattr(registry, "build", _loud(registry.kind))


# ------------------------------------------------------------------------------ videos


@pytest.mark.parametrize(
    ("video", "message"),
    [
        (torch.rand(3, 40, 40), r"video must be \(T, 3, H, W\), got 3 dims .*unsqueeze\(0\)"),
        (torch.rand(7, 40, 40, 3), r"permute\(0, 3, 1, 2\)"),
        (torch.rand(7, 4, 40, 40), r"3 \(RGB\) channels"),
        (torch.zeros(7, 3, 40, 40, dtype=torch.int32), r"float in \[0, 1\] or uint8"),
        (torch.zeros(7, 3, 40, 40, dtype=torch.bool), r"float in \[0, 1\] or uint8"),
        (torch.rand(7, 3, 40, 40) * 255, r"values must lie in \[0, 1\]"),
        (torch.rand(7, 3, 40, 40) - 0.5, r"values must lie in \[0, 1\]"),
        (torch.full((7, 3, 40, 40), float("nan")), "NaN or inf"),
        (torch.rand(7, 3, 40, 40).index_fill_(0, torch.tensor([3]), float("inf")), "NaN or inf"),
        (torch.rand(0, 3, 40, 40), "no frames"),
        ("not/a/video.mp4", "not/a/video.mp4"),
    ],
    ids=[
        "rank-3",
        "channels-last",
        "four-channels",
        "int32",
        "bool",
        "0-255-floats",
        "negative",
        "nan",
        "inf-frame",
        "zero-frames",
        "missing-file",
    ],
)
def test_bad_video_is_refused_before_any_work(video: Any, message: str, no_work: None) -> None:
    model = standin_model("reference")
    error = FileNotFoundError if isinstance(video, str) else ValueError
    with untouched(model, video), pytest.raises(error, match=message):
        adapt(model, video, config=FAST, progress=False)


@pytest.mark.parametrize("frames", [1, 2, 3, 4])
def test_fewer_than_five_frames_are_refused_before_any_work(frames: int, no_work: None) -> None:
    model, video = standin_model("reference"), _video(frames)
    with untouched(model, video), pytest.raises(ValueError, match="adapt needs at least 5"):
        adapt(model, video, config=FAST, progress=False)


def test_frames_too_small_for_optical_flow_are_refused_before_any_work(no_work: None) -> None:
    model, video = standin_model("reference"), _video(7, 6, 9)
    config = {**FAST, "rsdm": {"patch_size": 4}}
    with untouched(model, video), pytest.raises(ValueError, match="at least 8x8 px"):
        adapt(model, video, config=config, progress=False)


def test_a_crop_larger_than_the_patches_is_refused_before_any_work(no_work: None) -> None:
    # It used to be ignored: fine-tuning trained on whole patches as if no crop were set.
    model, video = standin_model("reference"), _video(7, 40, 40)
    config = {"rsdm": {"patch_size": 32}, "finetune": {"epochs": 1, "crop_size": 48}}
    with untouched(model, video), pytest.raises(ValueError, match="crop_size=48 is larger than"):
        adapt(model, video, config=config, progress=False)


@pytest.mark.parametrize(("height", "width", "suggested"), [(8, 8, 8), (13, 40, 13), (37, 50, 32)])
def test_small_frames_error_suggests_a_patch_size_that_works(
    height: int, width: int, suggested: int
) -> None:
    model, video = standin_model("reference"), _video(7, height, width)
    with untouched(model, video):
        with pytest.raises(ValueError, match=f"--patch-size {suggested}\\)") as info:
            adapt(model, video, config={"finetune": {"epochs": 1}}, progress=False)
        assert f"{height}x{width}, smaller than the 256x256" in str(info.value)
        assert f"rsdm.patch_size to at most {suggested} " in str(info.value)
        # The suggestion is not refused the same way: the run goes through.
        config = {"rsdm": {"patch_size": suggested}, "finetune": {"epochs": 1}}
        result = adapt(model, video, config=config, device="cpu", progress=False)
    assert result.report.patches and all(p.size == suggested for p in result.report.patches)


def test_uint8_video_is_accepted_by_adapt_and_by_result_deblur() -> None:
    model = standin_model("reference")
    video = (_video() * 255).round().to(torch.uint8)
    with untouched(model, video):
        result = adapt(model, video, config=FAST, device="cpu", progress=False)
        out = result.deblur(video, progress=False)
        assert torch.equal(out, result.deblur(video.float() / 255, progress=False))
        plain = deblur(model, video / 255.0, progress=False)
        assert torch.equal(deblur(model, video, progress=False), plain)
    assert out.shape == (7, 3, 40, 40) and out.dtype == torch.float32


def test_odd_sized_frames_adapt_and_deblur_to_the_same_size() -> None:
    model, video = standin_model("shiftnet"), _video(7, 41, 43)  # multiple of no spec
    with untouched(model, video):
        result = adapt(model, video, spec="shiftnet", config=FAST, device="cpu", progress=False)
        assert result.deblur(video, progress=False).shape == video.shape


# ------------------------------------------------------------------------------ models


class _Raises(nn.Module):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.error = error

    def forward(self, x: Tensor) -> Tensor:
        raise self.error


class _ReturnsNaN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * float("nan")


class _Shrinks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)  # no padding: 2 px smaller

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _NoParameters(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(0, 1)


class _UpdatesBuffers(nn.Module):
    """Counts its calls in a persistent buffer and keeps the last input mean in a
    non-persistent one, reassigned on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_mean", torch.zeros(1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.last_mean = x.mean().reshape(1)
        return x + 0.01 * self.conv(x)


@pytest.mark.parametrize(
    ("model", "spec", "message"),
    [
        (
            _Raises(RuntimeError("boom in forward")),
            None,
            r"on device 'cpu' failed: RuntimeError: boom in forward\. Pass the right spec=",
        ),
        (
            _Raises(AssertionError()),
            None,
            r"failed: AssertionError with no message raised at .*:\d+ in forward\(\)",
        ),
        (_ReturnsNaN(), None, r"returned NaN/inf on a probe clip \(spec='image'\)"),
        (
            _Shrinks(),
            None,
            r"returned \(1, 1, 3, 31, 31\) after conversion, expected \(1, 1, 3, 33, 33\)",
        ),
        (standin_model("image"), "shiftnet", r"spec='shiftnet'.*Pass the right spec="),
    ],
    ids=["raises", "raises-without-message", "returns-nan", "changes-shape", "wrong-spec"],
)
def test_model_not_fitting_its_spec_is_refused_before_the_stages(
    model: nn.Module, spec: str | None, message: str, no_stages: None
) -> None:
    video = _video()
    with untouched(model, video), pytest.raises(ValueError, match=message):
        adapt(model, video, spec=spec, config=FAST, device="cpu", progress=False)


def test_model_without_parameters_is_refused_before_any_work(no_work: None) -> None:
    model, video = _NoParameters(), _video()
    with untouched(model, video), pytest.raises(ValueError, match="selects no trainable"):
        adapt(model, video, config=FAST, progress=False)


def test_non_module_model_is_refused() -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Module, got function"):
        adapt(lambda x: x, _video(), config=FAST)  # type: ignore[arg-type]


def test_model_updating_buffers_in_forward_is_left_untouched_by_the_probe_and_adapt() -> None:
    model, video = _UpdatesBuffers(), _video()
    with untouched(model, video):
        check_model(model, "image")  # the probe alone
        result = adapt(model, video, config=FAST, device="cpu", progress=False)
        deblur(result.model, video, progress=False)
    assert int(model.calls) == 0 and float(model.last_mean) == 0.0
    assert int(result.model.calls) > 0  # the copy did run


def test_in_place_failure_after_the_probe_restores_updated_buffers(no_stages: None) -> None:
    model = _UpdatesBuffers()
    with untouched(model), pytest.raises(AssertionError, match="detector"):
        adapt(model, _video(), config=FAST, device="cpu", in_place=True, progress=False)


# ------------------------------------------------------------------------------ losses


@pytest.mark.parametrize(
    ("loss_fn", "message"),
    [
        (lambda p, t: 1 / 0, r"loss_fn\(pred, target\) failed.*ZeroDivisionError"),
        (lambda p, t: (p - t).abs(), r"scalar tensor, got \(2, 3, 32, 32\)"),
        (lambda p, t: 0.5, "scalar tensor, got float"),
        (lambda p, t: (p - t).abs().mean().detach(), "does not depend on pred"),
        (lambda p, t: (p - t).abs().mean() * float("nan"), "returned nan.*must be finite"),
        (lambda p, t: (p - t).abs().mean() + float("inf"), "returned inf.*must be finite"),
    ],
    ids=["raises", "non-scalar", "python-float", "detached", "nan", "inf"],
)
def test_bad_loss_is_refused_before_any_work(
    loss_fn: Callable[[Tensor, Tensor], Any], message: str, no_work: None
) -> None:
    model, video = standin_model("reference"), _video()
    with untouched(model, video), pytest.raises(ValueError, match=message):
        adapt(model, video, loss_fn, config=FAST, progress=False)


def test_a_loss_that_needs_the_patch_size_is_accepted() -> None:
    """A multiscale loss pooling four times works on the 32 px patches; the old check tried
    it on 8 x 8 tensors and refused it."""

    def multiscale(pred: Tensor, target: Tensor) -> Tensor:
        total = (pred - target).abs().mean()
        for _ in range(4):
            pred, target = F.max_pool2d(pred, 2), F.max_pool2d(target, 2)
            total = total + (pred - target).abs().mean()
        return total

    out = adapt(standin_model("reference"), _video(), multiscale, config=FAST, progress=False)
    assert out.report.train_loss


def test_a_video_file_is_not_decoded_before_the_model_and_loss_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ttblur.io.video
    from ttblur.video import save_video

    path = save_video(_video(), tmp_path / "clip.mp4")
    monkeypatch.setattr(ttblur.io.video, "store_video", _loud("decoding the video"))
    model = standin_model("reference")
    with pytest.raises(ValueError, match="scalar tensor"):
        adapt(model, path, lambda p, t: (p - t).abs(), config=FAST, progress=False)
    with pytest.raises(ValueError, match="selects no trainable parameter"):
        adapt(model, path, config={**FAST, "finetune": {"trainable": "re:^nothing$"}})
    with pytest.raises(ValueError, match=r"smaller than the 256x256 pseudo-sharp patch"):
        adapt(model, path, progress=False)  # the size, from the file's header


# ------------------------------------------------------------------------------ divergence


def _nan_after(calls: int) -> Callable[[Tensor, Tensor], Tensor]:
    """L1, then NaN from call ``calls + 1`` on (the first call is adapt's up-front check)."""
    count = [0]

    def loss(pred: Tensor, target: Tensor) -> Tensor:
        count[0] += 1
        value = (pred - target).abs().mean()
        return value * float("nan") if count[0] > calls else value

    return loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "copy"])
@pytest.mark.parametrize("cause", ["huge-lr", "nan-loss"])
def test_divergence_returns_the_unadapted_model_with_a_message(
    dtype: torch.dtype, in_place: bool, cause: str
) -> None:
    model = standin_model("reference").to(dtype)
    video = _video()
    if cause == "huge-lr":
        loss = None
        config = {**NO_VAL, "finetune": {**NO_VAL["finetune"], "lr": 1e30, "grad_clip": None}}
    else:
        loss, config = _nan_after(2), NO_VAL
    guard = Untouched(model, video)
    with pytest.warns(RuntimeWarning, match="fine-tuning diverged"):
        result = adapt(
            model, video, loss, config=config, in_place=in_place, device="cpu", progress=False
        )
    guard.check()  # bit for bit, also for in_place=True
    report = result.report
    assert report.diverged and report.reverted and report.best_epoch == 0
    assert report.messages[0].startswith("fine-tuning diverged: ")
    assert "The unadapted weights were restored" in report.messages[0]
    assert "lower finetune.lr" in report.messages[0]
    assert ("float32" in report.messages[0]) == (dtype == torch.float16)
    assert (result.model is model) == in_place
    assert all(
        bits_equal(a, b)
        for a, b in zip(result.model.state_dict().values(), model.state_dict().values())
    )


def test_diverged_report_round_trips_through_json() -> None:
    model = standin_model("reference")
    with pytest.warns(RuntimeWarning):
        result = adapt(model, _video(), _nan_after(1), config=NO_VAL, device="cpu", progress=False)
    report = type(result.report).model_validate_json(result.report.model_dump_json())
    assert report.diverged and report == result.report


# ------------------------------------------------------------------------------ interrupts


class _InterruptingSynthesizer:
    """A user synthesizer (a callback of the pipeline) that is interrupted."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __call__(self, sharp: Tensor, condition: Tensor) -> Tensor:
        raise self.error


def _interrupting_loss(after: int) -> Callable[[Tensor, Tensor], Tensor]:
    count = [0]

    def loss(pred: Tensor, target: Tensor) -> Tensor:
        count[0] += 1
        if count[0] > after:
            raise KeyboardInterrupt
        return (pred - target).abs().mean()

    return loss


# float16 training diverges within two steps on the CPU: it is interrupted at its first step.
@pytest.mark.parametrize(
    ("dtype", "after"), [(torch.float32, 3), (torch.float16, 1)], ids=["fp32", "fp16"]
)
def test_keyboard_interrupt_in_the_loss_mid_fine_tuning_restores_the_model(
    dtype: torch.dtype, after: int
) -> None:
    model = standin_model("reference").to(dtype)
    model.train()
    next(model.parameters()).requires_grad_(False)  # a frozen parameter must stay frozen
    guard = Untouched(model, _video())
    config = {**NO_VAL, "finetune": {**NO_VAL["finetune"], "epochs": 3}}
    with pytest.raises(KeyboardInterrupt):
        adapt(model, guard.video, _interrupting_loss(after), config=config, in_place=True)
    guard.check()


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt(), RuntimeError("synthesizer broke")], ids=["interrupt", "error"]
)
def test_failure_in_a_user_stage_restores_an_in_place_model(error: BaseException) -> None:
    model = standin_model("reference")
    video = _video()
    with untouched(model, video), pytest.raises(type(error)):
        adapt(
            model,
            video,
            config=FAST,
            synthesizer=_InterruptingSynthesizer(error),
            in_place=True,
            device="cpu",
            progress=False,
        )


def test_failure_after_training_moved_buffers_restores_the_original_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3))
    buffer = model[1].running_mean
    guard = Untouched(model, _video())

    def fail(*args: Any, **kwargs: Any) -> None:
        model.half()  # replaces buffer objects and changes every dtype
        raise RuntimeError("late failure")

    monkeypatch.setattr(ttblur.pipeline, "condition_stats", fail)
    with pytest.raises(RuntimeError, match="late failure"):
        adapt(model, guard.video, config=FAST, in_place=True, device="cpu", progress=False)
    guard.check()
    assert model[1].running_mean is buffer and buffer.dtype == torch.float32


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"finetune": {"lr": float("inf")}}, "finite number"),
        ({"finetune": {"lr": float("nan")}}, "finite number"),
        ({"finetune": {"lr": 0.0}}, "greater than 0"),
        ({"finetune": {"lr": 1e-4, "lr_min": 1e-3}}, "lr_min=0.001 is above lr=0.0001"),
        ({"synthesis": {"taps": 10_000_000}}, "taps=10000000 is above the maximum 1024"),
        ({"seed": 2**70}, r"seed=1180591620717411303424 is outside \[0, 2\*\*63 - 1\]"),
        ({"seed": -1}, r"seed=-1 is outside \[0, 2\*\*63 - 1\]"),
        ({"rsdm": {"weights_revision": "v1"}}, "weights_revision='v1' is set but weights is"),
        ({"mag_norm": float("inf")}, "finite number"),
    ],
    ids=[
        "lr-inf",
        "lr-nan",
        "lr-zero",
        "lr-min-above-lr",
        "taps",
        "seed-big",
        "seed-neg",
        "revision-without-weights",
        "mag-norm-inf",
    ],
)
def test_bad_config_values_are_refused_when_the_config_is_built(
    payload: dict[str, Any], message: str, no_work: None
) -> None:
    with pytest.raises(ValidationError, match=message):
        AdaptConfig.model_validate(payload)
    model, video = standin_model("reference"), _video()
    with untouched(model, video), pytest.raises(ValidationError, match=message):
        adapt(model, video, config=payload, progress=False)


def test_config_json_with_infinity_is_refused() -> None:
    with pytest.raises(ValidationError, match="finite number"):
        AdaptConfig.from_json('{"finetune": {"lr": Infinity}}')


def test_weights_revision_reaches_from_pretrained(monkeypatch: pytest.MonkeyPatch) -> None:
    from ttblur.nets.bme import BlurMagnitudeEstimator
    from ttblur.stages.rsdm import RelativeSharpnessDetector

    seen: dict[str, Any] = {}

    def record(cls: type, repo: Any = None, *, revision: str | None = None, **kw: Any) -> Any:
        seen.update(repo=repo, revision=revision)
        raise FileNotFoundError("recorded")

    monkeypatch.setattr(BlurMagnitudeEstimator, "from_pretrained", classmethod(record))
    config = AdaptConfig.model_validate(
        {"rsdm": {"weights": "someone/bme", "weights_revision": "a" * 40}}
    )
    assert AdaptConfig.from_json(config.to_json()) == config
    with pytest.raises(FileNotFoundError, match="recorded"):
        RelativeSharpnessDetector.from_config(config.rsdm)
    assert seen == {"repo": "someone/bme", "revision": "a" * 40}


class _LayerNorm2d(nn.Module):
    """A network's own channel LayerNorm (not torch's), as DSTNet and Shift-Net have."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        std = x.var(1, keepdim=True, unbiased=False).add(1e-6).sqrt()
        return (x - mean) / std * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class _OwnNorms(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = _LayerNorm2d(8)
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.01 * self.tail(self.norm(self.head(x)))


def test_trainable_norm_selecting_nothing_names_what_could_be_used(no_work: None) -> None:
    model, video = _OwnNorms(), _video()
    config = {**FAST, "finetune": {"trainable": "norm"}}
    with untouched(model, video), pytest.raises(ValueError) as info:
        adapt(model, video, config=config, progress=False)
    text = str(info.value)
    assert "trainable='norm' selects no trainable parameter" in text
    assert "_LayerNorm2d x1 (e.g. 'norm')" in text
    assert '"all"' in text and '"re:<regex>"' in text
    suggested = text.split("trainable='")[2].split("' selects")[0].replace("\\\\", "\\")
    assert [id(p) for p in select_trainable(model, suggested)] == [
        id(model.norm.weight),
        id(model.norm.bias),
    ]


def test_trainable_norm_with_only_frozen_norm_layers_says_so(no_work: None) -> None:
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
    model[1].requires_grad_(False)
    with untouched(model), pytest.raises(ValueError, match="only frozen parameters"):
        adapt(model, _video(), config={**FAST, "finetune": {"trainable": "norm"}})


def test_validation_disabled_by_config_is_reported_as_such() -> None:
    model = standin_model("reference")
    with untouched(model):
        result = adapt(model, _video(), config=NO_VAL, device="cpu", progress=False)
    assert result.report.num_val_pairs == 0
    assert any("validation is disabled by configuration" in m for m in result.report.messages)
    assert not any("too few pseudo pairs" in m for m in result.report.messages)


# ------------------------------------------------------------------------------ RNG


def test_adapt_leaves_the_global_rng_alone_and_is_deterministic_per_seed() -> None:
    video = _video()
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = adapt(standin_model("reference"), video, config=FAST, device="cpu", progress=False)
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(99)  # another global state: same result for the same config seed
    second = adapt(standin_model("reference"), video, config=FAST, device="cpu", progress=False)
    assert all(
        bits_equal(a, b)
        for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values())
    )


def test_earlier_outputs_are_not_changed_by_later_calls() -> None:
    model, video = standin_model("reference"), _video()
    result = adapt(model, video, config=FAST, device="cpu", progress=False)
    out = result.deblur(video, progress=False)
    kept = out.clone()
    with untouched(model, out):
        again = adapt(model, out, config=FAST, device="cpu", progress=False)
        again.deblur(out, progress=False)
    assert bits_equal(out, kept)


def test_detector_selecting_nothing_returns_the_unadapted_in_place_model() -> None:
    class Nothing:
        def select(self, frames: Tensor) -> Selection:
            return Selection(patches=[], magnitude=torch.zeros(frames.shape[0], 1, 40, 40))

    model = standin_model("reference")
    with untouched(model), pytest.warns(RuntimeWarning, match="no pseudo-sharp patch"):
        result = adapt(model, _video(), config=FAST, detector=Nothing(), in_place=True)
    assert result.model is model and result.report.reverted
