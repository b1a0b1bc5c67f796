"""The guard: its scores, its windows, and its rollback of a model made worse on purpose."""

import math

import pytest
import torch
import torch.nn.functional as F

import ttblur
from ttblur import metrics
from ttblur.config import AdaptConfig, GuardConfig
from ttblur.registry import GUARDS
from ttblur.scenarios import draw_scenario, make_scenario, scenario_suite
from ttblur.specs import get_spec
from ttblur.stages.guard import ReblurGuard, choose_windows, reblur_psnr, reference_gain
from ttblur.stages.reblur import motion_blur
from ttblur.stages.sharp_neighbours import ReferenceWindows
from ttblur.synth import make_video
from ttblur.testing import standin_model
from ttblur.types import Guard, PatchLocation, Selection


class ShiftFlow:
    """Every pixel moves ``dx`` px to the right between consecutive frames."""

    def __init__(self, dx: float = 4.0) -> None:
        self.dx = dx

    def __call__(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        flow = torch.zeros(src.shape[0], 2, *src.shape[-2:])
        flow[:, 0] = self.dx
        return flow


def _texture(size: int = 64, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, size // 4, size // 4, generator=gen)
    return F.interpolate(small, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def _condition(size: int, length: float) -> torch.Tensor:
    cond = torch.zeros(1, 3, size, size)
    cond[:, 0], cond[:, 2] = 1.0, length
    return cond


def test_restored_output_scores_above_a_copy_of_the_blurry_input() -> None:
    sharp = _texture()
    cond = _condition(64, 6.0)
    blurry = motion_blur(sharp, cond)
    restored = reblur_psnr(sharp, blurry, cond, border=8)
    copied = reblur_psnr(blurry, blurry, cond, border=8)
    # The true sharp frame re-blurs to the observation exactly; a copy is blurred twice.
    assert restored == pytest.approx(100.0) or restored > 60.0
    assert copied < restored - 10.0


def test_on_a_sharp_frame_the_score_asks_for_the_input_itself() -> None:
    frame = _texture(seed=1)
    still = _condition(64, 0.0)
    assert reblur_psnr(frame, frame, still, border=4) == 100.0
    damaged = (frame + 0.05).clamp(0, 1)
    assert reblur_psnr(damaged, frame, still, border=4) < 30.0


def test_score_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="equal"):
        reblur_psnr(
            torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), torch.rand(1, 3, 8, 8), border=0
        )
    with pytest.raises(ValueError, match="border"):
        x = torch.rand(1, 3, 8, 8)
        reblur_psnr(x, x, _condition(8, 0.0), border=4)


def test_windows_cover_the_video_with_real_clips_and_its_own_blur() -> None:
    video = torch.rand(10, 3, 96, 128)
    magnitude = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 1, 96, 128)
    selection = Selection([PatchLocation(4, 0, 0, 32)], magnitude.clone())
    spec = get_spec("reference")  # 2 past + 2 future frames, multiple of 8
    windows = choose_windows(video, selection, spec, ShiftFlow(), frames=3, box=48, margin=8)
    assert len(windows) == 3 and windows.centre == 2
    assert windows.frames == [2, 4, 7]  # spread over frames 2..7 (all clip neighbours inside)
    assert windows.clips.shape == (3, 5, 3, 64, 64)
    for i, (t, (top, left)) in enumerate(zip(windows.frames, windows.boxes, strict=True)):
        assert torch.equal(windows.clips[i, 2], video[t, :, top : top + 64, left : left + 64])
        assert torch.equal(windows.observed[i], windows.clips[i, 2])
        # Length: the detector's map of that frame; direction: the flow (to the right).
        assert torch.all(windows.condition[i, 2] == float(t))
        assert torch.allclose(windows.condition[i, 0], torch.ones(64, 64))
    assert windows.border == 8


def test_guard_is_registered_configurable_and_meets_the_protocol() -> None:
    guard = GUARDS.build("reblur", GuardConfig(frames=3, box=32), flow=ShiftFlow())
    assert isinstance(guard, ReblurGuard) and isinstance(guard, Guard)
    assert guard.frames == 3 and guard.box == 32
    with pytest.raises(ValueError, match="frames"):
        ReblurGuard(frames=0)
    with pytest.raises(ValueError):
        AdaptConfig.model_validate({"guard": {"min_gain_db": -1.0}})
    # Its noise estimate runs where the pipeline runs (the run device), else where the video is.
    assert guard.device is None
    pipe = ttblur.AdaptPipeline.from_config(None, device="cpu")
    assert pipe.guard.device == torch.device("cpu")


def _inverting_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Trains towards the negative image: the held-out pseudo pairs, scored with the same loss,
    # improve while every real frame gets worse.
    return F.l1_loss(pred, 1.0 - target)


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return make_video("astronaut", "gopro", num_frames=9, size=(96, 128), seed=10003).blurry


def _config(**guard: object) -> AdaptConfig:
    cfg = AdaptConfig.model_validate(
        {
            "rsdm": {"patch_size": 48},
            "finetune": {"epochs": 2, "lr": 1e-3},
            "guard": {"frames": 4, "box": 48, **guard},
        }
    )
    return cfg


def test_the_guard_reuses_the_noise_level_the_synthesis_estimated(
    clip: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ttblur.stages.guard as guard_module

    calls: list[float] = []
    estimate = guard_module.video_noise_std

    def counted(*args: object, **kwargs: object) -> float:
        calls.append(estimate(*args, **kwargs))  # type: ignore[arg-type]
        return calls[-1]

    monkeypatch.setattr(guard_module, "video_noise_std", counted)
    cfg = _config()
    out = ttblur.adapt(ttblur.reference_model("tiny"), clip, config=cfg, progress=False)
    assert calls == []  # handed the synthesis's estimate
    assert out.report.baseline_guard_score is not None
    no_top_up = cfg.model_copy(
        update={"synthesis": cfg.synthesis.model_copy(update={"match_noise": False})}
    )
    ttblur.adapt(ttblur.reference_model("tiny"), clip, config=no_top_up, progress=False)
    assert len(calls) == 1  # no estimate to reuse: the guard makes its own


def test_guard_rolls_back_a_model_made_worse_on_purpose(clip: torch.Tensor) -> None:
    model = ttblur.reference_model("tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = ttblur.adapt(model, clip, _inverting_loss, config=_config(), progress=False)
    report = out.report
    assert report.guard_rejected and report.reverted and report.best_epoch == 0
    assert report.baseline_guard_score is not None
    assert max(report.guard_scores) < report.baseline_guard_score
    # The pseudo pairs could not see it: they improved.
    assert report.val_best_epoch > 0
    assert any("did not improve the video" in m for m in report.messages)
    assert any("pseudo pairs disagreed" in m for m in report.messages)
    # The returned model is the unadapted one, bit for bit.
    for key, value in out.model.state_dict().items():
        assert torch.equal(value, before[key])


def test_without_the_guard_the_pseudo_pairs_keep_the_damaged_model(clip: torch.Tensor) -> None:
    model = ttblur.reference_model("tiny")
    off = ttblur.adapt(model, clip, _inverting_loss, config=_config(enabled=False), progress=False)
    assert not off.report.reverted and off.report.best_epoch > 0
    assert off.report.guard_scores == [] and off.report.baseline_guard_score is None
    # With rollback off the guard keeps its best epoch and says it would have rolled back.
    kept = ttblur.adapt(
        model, clip, _inverting_loss, config=_config(rollback=False), progress=False
    )
    assert kept.report.guard_rejected and not kept.report.reverted
    assert kept.report.best_epoch == 1 + kept.report.guard_scores.index(
        max(kept.report.guard_scores)
    )
    assert any("kept anyway" in m for m in kept.report.messages)


def test_a_video_without_sharp_frames_keeps_the_unadapted_model_unless_reblur_is_trusted() -> None:
    spec = draw_scenario("pan", "development", 0, num_frames=9, size=(96, 128))
    video = make_scenario(spec).blurry
    model = ttblur.reference_model("tiny")
    report = ttblur.adapt(model, video, config=_config(), progress=False).report
    assert report.guard_score == "reblur" and report.guard_may_keep is False
    assert report.reverted and report.guard_rejected and report.best_epoch == 0
    assert report.baseline_guard_score is not None and len(report.guard_scores) == 2
    assert any("guard.trust_reblur = False" in m for m in report.messages)
    trusted = ttblur.adapt(model, video, config=_config(trust_reblur=True), progress=False)
    assert trusted.report.guard_score == "reblur" and trusted.report.guard_may_keep is True
    assert trusted.report.guard_scores == report.guard_scores  # the same run, judged apart
    assert not any("trust_reblur" in m for m in trusted.report.messages)
    gain = max(report.guard_scores) - report.baseline_guard_score
    assert trusted.report.reverted is not (gain > trusted.report.guard_min_gain_db)


def test_a_runaway_model_is_rolled_back_by_the_guard_too() -> None:
    # An absurd learning rate saturates the outputs: the BME reads no blur left in them, but
    # they re-blur far worse than a copy of the input (the guard's floor), so no epoch is kept.
    video = torch.rand(9, 3, 48, 48, generator=torch.Generator().manual_seed(5))
    model = standin_model("reference")
    config = {
        "rsdm": {"patch_size": 32},
        "finetune": {"epochs": 2, "lr": 5.0, "grad_clip": None},
    }
    report = ttblur.adapt(model, video, config=config, progress=False).report
    assert report.reverted and report.guard_rejected and report.best_epoch == 0
    assert report.baseline_guard_score is not None
    assert max(report.guard_scores) < report.baseline_guard_score


def test_the_first_model_scored_sets_the_floor_and_garbage_sinks_below_it() -> None:
    video = make_video("astronaut", "gopro", num_frames=7, size=(64, 80), seed=10005).blurry
    selection = Selection([], torch.full((7, 1, 64, 80), 3.0))
    guard = ReblurGuard(flow=ShiftFlow(), frames=2, box=32, margin=8)
    probe = guard.prepare(video, selection, get_spec("image"))
    windows = probe.windows
    copy = reblur_psnr(windows.observed, windows.observed, windows.condition, border=8)
    assert probe.floor is None

    class Saturate(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - 0.5) * 1e3 * self.w

    class Identity(Saturate):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.w

    cpu = torch.device("cpu")
    identity = probe(Identity(), cpu)  # the "unadapted" model: it sets the floor
    assert probe.floor == pytest.approx(copy) and probe.last["reblur_psnr"] == probe.floor
    garbage = probe(Saturate(), cpu)
    assert garbage < identity - 20.0
    assert probe(Identity(), cpu) == pytest.approx(identity)  # no shortfall at the floor


@pytest.mark.slow
def test_on_a_hand_held_video_the_guard_uses_its_sharp_frames_and_rolls_back() -> None:
    # Development scenario (never reported): hand-held with still moments, so the detector finds
    # sharp frames beside blurred ones (frame 0 beside frames 1-3, read 9-11 px blurrier) and the
    # guard scores against them. `base`, a network that deblurs: `tiny` damages this clip so
    # much that even the inverting loss's first epoch restores it better (and the guard keeps it).
    spec = next(
        s
        for s in scenario_suite("development", 3, num_frames=9, size=(96, 128))
        if s.family == "handheld" and s.seed == 1002
    )
    video = make_scenario(spec)
    model = ttblur.reference_model("base")
    out = ttblur.adapt(model, video.blurry, _inverting_loss, config=_config(), progress=False)
    report = out.report
    assert report.guard_score == "reference"
    assert report.guard_min_gain_db == GuardConfig().reference_min_gain_db
    assert isinstance(out.guard_windows, ReferenceWindows)
    assert out.guard_windows.frames == [1, 2, 3] and out.guard_windows.sources == [0, 0, 0]
    assert report.reverted and report.guard_rejected and report.best_epoch == 0
    assert max(report.guard_scores) < report.baseline_guard_score - 0.5
    assert any(
        "sharp frames" in m and "reference_min_gain_db" in m and "still_veto_cap_db" in m
        for m in report.messages
    )
    # And where the truth is known, the rollback was right: every epoch restored worse.
    unadapted = ttblur.deblur(model, video.blurry, progress=False)
    worse = ttblur.adapt(
        model, video.blurry, _inverting_loss, config=_config(rollback=False), progress=False
    )
    kept = ttblur.deblur(worse.model, video.blurry, progress=False)
    assert metrics.psnr(kept.clamp(0, 1), video.sharp) < metrics.psnr(
        unadapted.clamp(0, 1), video.sharp
    )


@pytest.mark.parametrize(
    ("blurred", "still", "expected"),
    [
        (2.5, None, 2.5),  # no sharp frames scored: the blurred frames' gain
        (2.5, 0.0, 2.5),  # kept on the blurred frames
        (0.4, 9.0, 6.0),  # kept on the sharp frames: 9 dB of 3 needed is 3x the 2 dB needed
        (0.4, 2.9, 2.9 * 2 / 3),  # under both thresholds: not kept
        (-0.3, 9.0, -0.3),  # the blurred frames fell: never kept, however the sharp ones did
        (5.0, -0.2, -0.2),  # the sharp frames fell
    ],
)
def test_reference_gain_keeps_one_part_s_gain_only_if_the_other_does_not_fall(
    blurred: float, still: float | None, expected: float
) -> None:
    gain = reference_gain(blurred, still, reference_min_gain_db=2.0, still_min_gain_db=3.0)
    assert gain == pytest.approx(expected)
    assert (gain > 2.0) == (
        min(blurred, still if still is not None else 0.0) >= 0
        and (blurred > 2.0 or (still is not None and still > 3.0))
    )


@pytest.mark.parametrize(
    ("blurred", "still", "veto", "expected"),
    [
        (2.5, None, 0.0, 2.5),  # the veto frames held: nothing changes
        (2.5, None, 4.0, 2.5),  # ... and their rise earns nothing
        (2.5, None, -0.2, -0.2),  # they fell: never kept
        (0.4, 9.0, -1.5, -1.5),  # however much the credited sharp frames gained
        (-0.3, 9.0, -0.1, -0.3),  # the largest fall is the score
    ],
)
def test_reference_gain_lets_veto_frames_stop_an_epoch_but_never_keep_one(
    blurred: float, still: float | None, veto: float, expected: float
) -> None:
    gain = reference_gain(
        blurred, still, reference_min_gain_db=2.0, still_min_gain_db=3.0, veto_db=veto
    )
    assert gain == pytest.approx(expected)
    assert gain <= reference_gain(blurred, still, reference_min_gain_db=2.0, still_min_gain_db=3.0)


@pytest.mark.parametrize(
    "returned, error, message",
    [
        (float("inf"), ValueError, "the custom guard's score is inf"),
        (float("nan"), ValueError, "the custom guard's score is nan"),
        ("7", TypeError, "must be a real number .* got str '7'"),
        (None, TypeError, "got NoneType None"),
        (True, TypeError, "got bool True"),
        (torch.ones(2), TypeError, "one real number, got a torch.float32 tensor of shape"),
    ],
)
def test_a_custom_guard_score_that_is_no_finite_number_is_refused(returned, error, message):
    class Fixed:
        def prepare(self, video, selection, spec):
            return lambda model, device: returned

    video = torch.rand(7, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    config = {"rsdm": {"patch_size": 32}, "finetune": {"epochs": 1, "batch_size": 4}}
    pipe = ttblur.AdaptPipeline.from_config(config, guard=Fixed(), device="cpu")
    with pytest.raises(error, match=message):
        pipe(standin_model("reference"), video, progress=False)


def test_an_epoch_scored_minus_inf_is_never_kept_and_the_run_rolls_back() -> None:
    """The built-in probes score a restoration holding NaN / inf as -inf; the pipeline used
    to refuse that score and abort the run instead of rolling back."""
    scores = iter([1.0, -math.inf, -math.inf])

    class Failing:
        def prepare(self, video, selection, spec):
            return lambda model, device: next(scores)

    video = torch.rand(7, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    config = {"rsdm": {"patch_size": 32}, "finetune": {"epochs": 2, "batch_size": 4}}
    pipe = ttblur.AdaptPipeline.from_config(config, guard=Failing(), device="cpu")
    out = pipe(standin_model("reference"), video, progress=False)
    assert out.report.reverted and out.report.best_epoch == 0
    assert out.report.guard_scores == [-math.inf, -math.inf]
    text = out.report.model_dump_json()
    assert '"-Infinity"' in text  # was null, which AdaptReport could not read back
    assert type(out.report).model_validate_json(text).guard_scores == [-math.inf, -math.inf]


def test_guard_score_value_accepts_numbers_of_every_kind() -> None:
    import numpy as np

    from ttblur.types import guard_score_value

    for value in (3, 3.0, np.float32(3.0), np.int64(3), torch.tensor(3.0), torch.tensor([3.0])):
        assert guard_score_value(value, "custom") == 3.0
