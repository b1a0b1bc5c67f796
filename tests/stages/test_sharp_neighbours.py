"""Sharp neighbours as references: the pairing, the warp's trust mask, the score and the probe."""

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from ttblur.config import GuardConfig
from ttblur.specs import get_spec
from ttblur.stages.guard import GuardProbe, ReblurGuard, ReferenceProbe
from ttblur.stages.reblur import motion_blur
from ttblur.stages.sharp_neighbours import (
    ReferenceWindows,
    box_readings,
    choose_references,
    consistent_flow,
    reblur_fit_gain,
    reference_psnr,
    still_psnr,
    textured_corner,
    window_psnr,
)
from ttblur.types import PatchLocation, Selection

SHIFT = 3  # px the scene moves to the right per frame


class KnownFlow:
    """The exact flow of a scene moving ``SHIFT`` px to the right per frame; the frames' index
    is read from their first pixel (frame ``k`` is marked ``k / 100`` there)."""

    def __call__(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        steps = round(float(dst[0, 0, 0, 0] - src[0, 0, 0, 0]) * 100)
        flow = torch.zeros(src.shape[0], 2, *src.shape[-2:])
        flow[:, 0] = SHIFT * steps
        return flow


def _scene(width: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 24, width // 4, generator=gen)
    return F.interpolate(small, size=(96, width), mode="bicubic", align_corners=False).clamp(0, 1)


def _video(blurred: set[int], frames: int = 7) -> tuple[torch.Tensor, torch.Tensor, Selection]:
    """Frames of a scene panning right; the ``blurred`` ones carry 8 px of horizontal blur.
    Returns the video, its sharp frames and a selection whose maps read 8 px / 0 px."""
    scene = _scene(96 + SHIFT * frames + 16)
    sharp = torch.stack(
        [scene[0, :, :, 16 - SHIFT * k + SHIFT * frames :][:, :, :96] for k in range(frames)]
    )
    cond = torch.zeros(1, 3, 96, 96)
    cond[:, 0], cond[:, 2] = 1.0, 8.0
    video = sharp.clone()
    for k in blurred:
        video[k] = motion_blur(sharp[k : k + 1], cond)[0]
    for k in range(frames):  # the frame's index, for KnownFlow
        video[k, 0, 0, 0] = sharp[k, 0, 0, 0] = k / 100
    magnitude = torch.zeros(frames, 1, 96, 96)
    for k in blurred:
        magnitude[k] = 8.0
    return video, sharp, Selection([PatchLocation(0, 0, 0, 32)], magnitude)


def test_textured_corner_finds_the_texture_and_follows_the_weight() -> None:
    frame = torch.full((3, 64, 64), 0.5)
    frame[:, 32:, :32] = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert textured_corner(frame, 32) == (32, 0)
    weight = torch.ones(1, 64, 64)
    weight[:, 32:, :32] = 0.0  # the textured corner is not trusted
    assert textured_corner(frame, 32, weight) != (32, 0)


def test_flows_that_cancel_are_trusted_and_others_not() -> None:
    forward = torch.zeros(2, 16, 16)
    forward[0] = 2.0
    backward = -forward
    mask = consistent_flow(forward, backward, tolerance=1.0)
    assert mask.shape == (1, 16, 16)
    assert torch.all(mask[:, :, :13] == 1.0)  # x + 2 inside the frame
    assert torch.all(mask[:, :, 15] == 0.0)  # x + 2 outside
    assert consistent_flow(forward, forward, tolerance=1.0).sum() == 0  # disagree by 4 px
    with pytest.raises(ValueError, match="flows"):
        consistent_flow(forward, torch.zeros(2, 16, 8), tolerance=1.0)


def test_reference_psnr_is_weighted_and_checks_its_inputs() -> None:
    ref = torch.full((2, 3, 8, 8), 0.5)
    out = ref.clone()
    out[0] += 0.1  # error 0.1 on the first window only
    weight = torch.ones(2, 1, 8, 8)
    assert reference_psnr(out, ref, weight) == pytest.approx(-10 * math.log10(0.01 / 2))
    weight[0] = 0.0  # the erroneous window is not trusted
    assert reference_psnr(out, ref, weight) == 100.0
    assert math.isnan(reference_psnr(out, ref, torch.zeros(2, 1, 8, 8)))
    with pytest.raises(ValueError, match="equal"):
        reference_psnr(out, ref[:1], weight)
    with pytest.raises(ValueError, match="weight"):
        reference_psnr(out, ref, weight[:, :, :4])


def test_a_shifted_comparison_stops_rewarding_blur_against_a_misaligned_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    texture = torch.rand(1, 3, 32, 32, generator=gen)
    sharp = F.interpolate(texture, size=(64, 64), mode="bicubic", align_corners=False)
    sharp = sharp.clamp(0, 1).expand(2, 3, 64, 64).contiguous()
    blurred = F.avg_pool2d(F.pad(sharp, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    misaligned = torch.roll(sharp, shifts=(1, -1), dims=(2, 3))  # the warp is 1 px off
    weight = torch.zeros(2, 1, 64, 64)
    weight[..., 8:-8, 8:-8] = 1.0
    in_place = [reference_psnr(x, misaligned, weight) for x in (sharp, blurred)]
    assert in_place[1] > in_place[0] + 1.5  # in place, blur wins against the misaligned frame
    shifted = [reference_psnr(x, misaligned, weight, shift_px=2) for x in (sharp, blurred)]
    assert shifted[0] == 100.0 and shifted[1] < 60.0  # the sharp output matches it exactly
    assert shifted[1] > in_place[1] - 1e-9  # a shift never fits worse than none
    assert reference_psnr(blurred, misaligned, weight, shift_px=0) == in_place[1]
    with pytest.raises(ValueError, match="shift_px"):
        reference_psnr(sharp, misaligned, weight, shift_px=-1)


def test_blurred_frames_are_paired_with_their_sharp_neighbours() -> None:
    video, sharp, selection = _video(blurred={1, 3, 4})
    spec = get_spec("reference")  # 2 past + 2 future frames, multiple of 8
    refs = choose_references(
        video, selection, spec, KnownFlow(), radius=2, frames=8, size=64, border=8
    )
    assert refs is not None
    assert refs.frames == [1, 3, 4] and refs.centre == 2
    # The nearest sharp frame: 0 and 2 tie for frame 1 (the first wins), 2 for 3, 5 for 4.
    assert refs.sources == [0, 2, 5]
    assert refs.clips.shape == (3, 5, 3, 64, 64)
    for i, (t, (top, left)) in enumerate(zip(refs.frames, refs.boxes, strict=True)):
        assert torch.equal(refs.clips[i, 2], video[t, :, top : top + 64, left : left + 64])
        inner = refs.weight[i, 0] > 0
        assert refs.weight[i, :, :8].sum() == 0 and refs.weight[i, :, -8:].sum() == 0
        truth = sharp[t, :, top : top + 64, left : left + 64]
        # Where trusted, the warped sharp neighbour is the sharp frame t itself.
        err = (refs.reference[i] - truth).abs()[:, inner]
        assert float(err[:, 1:].max()) < 1e-4  # (pixel 0 carries the frame marks)
    # Each distinct sharp frame is also cut, at the place of the first window it serves.
    assert refs.still_frames == [0, 2, 5]
    assert refs.still_clips.shape == (3, 5, 3, 64, 64)
    for j, s in enumerate(refs.still_frames):
        top, left = refs.boxes[refs.sources.index(s)]
        assert refs.still_boxes[j] == (top, left)
        assert torch.equal(refs.still_observed[j], video[s, :, top : top + 64, left : left + 64])
        first = abs(s - 2)  # frame s - 2, reflected at the start
        assert torch.equal(
            refs.still_clips[j, 0], video[first, :, top : top + 64, left : left + 64]
        )
    assert refs.still_weight.shape == (3, 1, 64, 64)
    assert refs.still_weight[:, :, 8:-8, 8:-8].min() == 1.0
    assert refs.still_weight.sum() == 3 * 48 * 48  # the border is not scored


def test_still_psnr_is_capped_per_window_and_checks_its_inputs() -> None:
    observed = torch.full((2, 3, 8, 8), 0.5)
    out = observed.clone()
    out[0] += 0.1  # 20 dB on the first window; the second matches exactly
    weight = torch.ones(2, 1, 8, 8)
    assert still_psnr(out, observed, weight, cap_db=40.0) == pytest.approx((20.0 + 40.0) / 2)
    assert still_psnr(out, observed, weight, cap_db=15.0) == pytest.approx(15.0)
    out[1] += 0.001  # 60 dB: closer than the cap counts the same as exact
    assert still_psnr(out, observed, weight, cap_db=40.0) == pytest.approx(30.0)
    weight[0, :, :4] = 0.0
    out[0, :, 4:] = observed[0, :, 4:]  # the error left is where the weight is 0
    assert still_psnr(out, observed, weight, cap_db=40.0) == pytest.approx(40.0)
    assert math.isnan(still_psnr(out, observed, torch.zeros(2, 1, 8, 8), cap_db=40.0))
    with pytest.raises(ValueError, match="equal"):
        still_psnr(out, observed[:1], weight, cap_db=40.0)
    with pytest.raises(ValueError, match="weight"):
        still_psnr(out, observed, weight[:, :, :4], cap_db=40.0)
    with pytest.raises(ValueError, match="cap_db"):
        still_psnr(out, observed, weight, cap_db=0.0)


def test_no_sharp_frame_means_no_references() -> None:
    video, _, selection = _video(blurred=set(range(7)))
    spec = get_spec("reference")
    assert choose_references(video, selection, spec, KnownFlow(), size=64) is None


class _Fixed(torch.nn.Module):
    """An image model that returns fixed outputs, whatever its input."""

    def __init__(self, outputs: torch.Tensor) -> None:
        super().__init__()
        self.outputs = outputs
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs[: x.shape[0]] * self.w


def _window_truth(sharp: torch.Tensor, windows: ReferenceWindows) -> torch.Tensor:
    """The true sharp region of each blurred window, ``(N, 3, s, s)``."""
    size = windows.clips.shape[-1]
    return torch.stack(
        [
            sharp[t, :, top : top + size, left : left + size]
            for t, (top, left) in zip(windows.frames, windows.boxes, strict=True)
        ]
    )


def test_the_guard_scores_against_sharp_neighbours_when_the_video_has_them() -> None:
    video, sharp, selection = _video(blurred={1, 3, 4})
    spec = get_spec("image")
    guard = ReblurGuard(
        flow=KnownFlow(),
        frames=4,
        box=48,
        margin=8,
        batch_size=8,
        reference_shift_px=2,
        still_frames=False,  # the blurred frames' score alone (both: the next test)
        reference_median=False,  # the pooled PSNR (the median: its own test)
    )
    probe = guard.prepare(video, selection, spec)
    assert isinstance(probe, ReferenceProbe) and probe.kind == "reference"
    assert probe.min_gain_db == guard.reference_min_gain_db
    w = probe.windows
    truth = _window_truth(sharp, w)
    cpu = torch.device("cpu")
    copy = probe(_Fixed(w.clips[:, w.centre].clone()), cpu)  # returns its blurred input
    restored = probe(_Fixed(truth), cpu)
    noisy_out = (w.clips[:, w.centre] + 0.1).clamp(0, 1)
    noisy = probe(_Fixed(noisy_out), cpu)
    assert restored > copy + 10.0 and noisy < copy
    assert probe.last["reference_psnr"] == noisy
    shift = guard.reference_shift_px  # the guard's shift reaches the comparison
    assert shift == 2 and noisy == reference_psnr(noisy_out, w.reference, w.weight, shift_px=2)
    # Shift 0 by default.
    in_place = ReblurGuard(
        flow=KnownFlow(), frames=4, box=48, margin=8, still_frames=False, reference_median=False
    )
    unshifted = in_place.prepare(video, selection, spec)
    assert unshifted(_Fixed(noisy_out), cpu) == reference_psnr(noisy_out, w.reference, w.weight)
    assert probe(_Fixed(torch.full_like(truth, math.nan)), cpu) == -math.inf

    # Without sharp frames (or with the reference off) the re-blur score is used.
    blurred, _, all_blurred = _video(blurred=set(range(7)))
    assert isinstance(guard.prepare(blurred, all_blurred, spec), GuardProbe)
    off = ReblurGuard(flow=KnownFlow(), frames=4, box=48, margin=8, reference_radius=0)
    plain = off.prepare(video, selection, spec)
    assert isinstance(plain, GuardProbe) and plain.kind == "reblur"
    assert plain.min_gain_db == off.min_gain_db
    with pytest.raises(ValueError, match="reference_min_gain_db"):
        ReblurGuard(reference_min_gain_db=-1.0)
    with pytest.raises(ValueError, match="sharp_px"):
        ReblurGuard(sharp_px=0.0)
    with pytest.raises(ValueError, match="reference_shift_px"):
        ReblurGuard(reference_shift_px=-1)


def test_references_check_the_video_and_its_maps_first() -> None:
    video, _, selection = _video(blurred={1})
    spec = get_spec("reference")
    short = Selection(selection.patches, selection.magnitude[:3])
    with pytest.raises(ValueError, match=r"selection.magnitude must be \(T, 1, H, W\)"):
        choose_references(video, short, spec, KnownFlow())
    with pytest.raises(ValueError, match="radius"):
        choose_references(video, selection, spec, KnownFlow(), radius=0)


def test_a_noisy_video_keeps_the_re_blur_score() -> None:
    # Noise makes the blur estimator read blurred frames as sharp: no references above
    # guard.reference_max_noise (the estimate of this clip's noise: about 0.05).
    video, _, selection = _video(blurred={1, 3, 4})
    gen = torch.Generator().manual_seed(3)
    noisy = (video + 0.05 * torch.randn(video.shape, generator=gen)).clamp(0, 1)
    noisy[:, 0, 0, 0] = video[:, 0, 0, 0]  # keep KnownFlow's frame marks
    guard = ReblurGuard(flow=KnownFlow(), frames=4, box=48, margin=8)
    assert isinstance(guard.prepare(video, selection, get_spec("image")), ReferenceProbe)
    assert isinstance(guard.prepare(noisy, selection, get_spec("image")), GuardProbe)
    lenient = ReblurGuard(flow=KnownFlow(), frames=4, box=48, margin=8, reference_max_noise=0.5)
    assert isinstance(lenient.prepare(noisy, selection, get_spec("image")), ReferenceProbe)
    with pytest.raises(ValueError, match="reference_max_noise"):
        ReblurGuard(reference_max_noise=0.0)


def test_the_sharp_frames_score_keeps_a_gain_there_only_if_the_blurred_frames_do_not_fall() -> None:
    video, sharp, selection = _video(blurred={1, 3, 4})
    spec = get_spec("image")
    # A blur estimator that reads every box sharp (the next test: one that does not).
    guard = ReblurGuard(flow=KnownFlow(), frames=4, box=48, margin=8, batch_size=8, bme=_reads(0.0))
    assert guard.still_frames and guard.still_min_gain_db == 3.0 and guard.still_cap_db == 40.0
    probe = guard.prepare(video, selection, spec)
    assert isinstance(probe, ReferenceProbe)
    w = probe.windows
    size = w.clips.shape[-1]
    assert w.still_frames == [0, 2, 5] and len(w) == 3
    truth = _window_truth(sharp, w)
    copy, still = w.clips[:, w.centre], w.still_observed
    damaged = (still + 0.1).clamp(0, 1)  # what a network that harms still frames returns

    def score(blurred_out: torch.Tensor, still_out: torch.Tensor) -> float:
        # The probe restores the blurred windows, then the sharp frames, in one batch.
        return probe(_Fixed(torch.cat([blurred_out, still_out])), torch.device("cpu"))

    cpu = torch.device("cpu")
    base = score(copy, damaged)  # the unadapted model: the first one scored
    assert probe.baseline == probe.last
    assert set(probe.last) == {
        "reference_psnr",
        "reference_median_gain",
        "still_psnr",
        "still_veto_psnr",  # every sharp frame, capped at guard.still_veto_cap_db
    }
    assert base == probe.baseline["reference_psnr"]
    assert probe.baseline["still_psnr"] == pytest.approx(
        still_psnr(damaged, still, w.still_weight, cap_db=40.0)
    )
    assert probe.baseline["still_psnr"] < 21.0
    # Sharp frames kept exactly (gain capped at 40 dB), blurred frames as before: kept on the
    # sharp frames' gain, scaled to the blurred frames' threshold.
    kept_still = score(copy, still)
    gain = probe.last["still_psnr"] - probe.baseline["still_psnr"]
    assert probe.last["still_psnr"] == pytest.approx(40.0)
    assert kept_still - base == pytest.approx(gain * 2.0 / 3.0)
    assert kept_still - base > probe.min_gain_db
    # Close to the input within the cap counts the same as exact.
    assert score(copy, (still + 0.002).clamp(0, 1)) == pytest.approx(kept_still)
    # The blurred frames restored: their gain counts, the sharp frames' as well.
    restored = score(truth, damaged)  # (the blurred frames' gain: the median window's)
    assert restored - base == pytest.approx(probe.last["reference_median_gain"])
    assert restored > base + 10.0
    # Sharp frames better but blurred frames worse: the fall is the score, never kept.
    worse = (copy + 0.1).clamp(0, 1)
    traded = score(worse, still)
    assert traded - base == pytest.approx(probe.last["reference_median_gain"])
    assert traded < base
    # NaN outputs anywhere are the worst score.
    assert probe(_Fixed(torch.full((6, 3, size, size), math.nan)), cpu) == -math.inf
    with pytest.raises(ValueError, match="still_min_gain_db"):
        ReblurGuard(still_min_gain_db=0.0)
    with pytest.raises(ValueError, match="still_veto_cap_db"):
        ReblurGuard(still_veto_cap_db=0.0)
    with pytest.raises(ValueError, match="still_cap_db"):
        ReblurGuard(still_cap_db=-1.0)


def test_a_fall_above_the_credit_cap_still_vetoes_an_epoch() -> None:
    # A network that denoises keeps sharp frames 44-48 dB from their input; an epoch that
    # brings them to 42 dB loses nothing under the 40 dB credit cap, but falls under the
    # veto's (guard.still_veto_cap_db, 48.13 dB): not kept, however the blurred frames gain.
    video, sharp, selection = _video(blurred={1, 3, 4})
    spec = get_spec("image")
    guard = ReblurGuard(flow=KnownFlow(), frames=4, box=48, margin=8, batch_size=8, bme=_reads(0.0))
    assert guard.still_veto_cap_db == pytest.approx(20 * math.log10(255), abs=0.01)
    probe = guard.prepare(video, selection, spec)
    assert isinstance(probe, ReferenceProbe)
    w = probe.windows
    truth = _window_truth(sharp, w)
    copy, still = w.clips[:, w.centre], w.still_observed

    def score(blurred_out: torch.Tensor, still_out: torch.Tensor) -> float:
        return probe(_Fixed(torch.cat([blurred_out, still_out])), torch.device("cpu"))

    base = score(copy, (still + 0.004).clamp(0, 1))  # about 48 dB from the input
    assert 47.0 < probe.last["still_veto_psnr"] < 48.13 and probe.last["still_psnr"] == 40.0
    fallen = score(truth, (still + 0.008).clamp(0, 1))  # about 42 dB: under the veto's cap only
    assert probe.last["still_psnr"] == 40.0  # the credit part sees nothing
    veto = probe.last["still_veto_psnr"] - probe.baseline["still_veto_psnr"]
    assert -7.0 < veto < -5.0 and fallen - base == pytest.approx(veto)
    held = score(truth, (still + 0.004).clamp(0, 1))  # the same blurred gain, frames held
    assert held - base == pytest.approx(probe.last["reference_median_gain"]) and held > base + 10


def _reads(px: float | list[float]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A blur estimator reading ``px`` everywhere (a list: one value per box, in call order)."""
    values = iter(px) if isinstance(px, list) else None

    def bme(frames: torch.Tensor) -> torch.Tensor:
        level = [next(values) for _ in range(frames.shape[0])] if values else [px] * len(frames)
        return torch.tensor(level).view(-1, 1, 1, 1).expand(-1, 1, *frames.shape[-2:]).clone()

    return bme


def test_box_readings_are_the_mean_inside_the_scored_box() -> None:
    video, _, selection = _video(blurred={1, 3, 4})
    refs = choose_references(
        video, selection, get_spec("image"), KnownFlow(), frames=8, size=64, border=8
    )
    assert refs is not None and refs.still_frames == [0, 2, 5]

    def border_blurred(frames: torch.Tensor) -> torch.Tensor:
        out = torch.full((frames.shape[0], 1, *frames.shape[-2:]), 9.0)
        out[:, :, 8:-8, 8:-8] = torch.arange(frames.shape[0]).view(-1, 1, 1, 1) * 0.5
        return out

    # Only the scored box counts (the 9 px border does not), one reading per still frame; the
    # estimator above numbers the boxes of each call, so the batches show.
    assert box_readings(refs, border_blurred, batch_size=2) == [0.0, 0.5, 0.0]
    assert box_readings(refs, border_blurred, batch_size=8) == [0.0, 0.5, 1.0]
    kept = refs.with_still([True, False, True])
    assert kept.still_frames == [0, 5] and kept.frames == refs.frames
    assert kept.still_boxes == [refs.still_boxes[0], refs.still_boxes[2]]
    assert torch.equal(kept.still_clips, refs.still_clips[[0, 2]])
    assert torch.equal(kept.still_weight, refs.still_weight[[0, 2]])
    none = refs.with_still([False] * 3)
    assert none.still_frames == [] and none.still_clips.shape == (0, *refs.still_clips.shape[1:])
    assert box_readings(none, border_blurred) == []
    with pytest.raises(ValueError, match="one flag per still frame"):
        refs.with_still([True])


def test_a_sharp_frame_whose_box_reads_blurred_earns_no_credit_but_may_veto() -> None:
    # The frame's mean reading calls frames 0, 2 and 5 sharp; read alone, frame 2's scored box
    # reads 1.5 px: its restoration earns nothing against itself (a blurred frame's copy would
    # score up there) but may still veto; the blurred windows are unchanged.
    video, _, selection = _video(blurred={1, 3, 4})
    spec = get_spec("image")
    kwargs = dict(flow=KnownFlow(), frames=4, box=48, margin=8, batch_size=8)
    probe = ReblurGuard(bme=_reads([0.2, 1.5, 0.9]), **kwargs).prepare(video, selection, spec)
    assert isinstance(probe, ReferenceProbe)
    assert probe.windows.still_frames == [0, 2, 5] and probe.windows.sources == [0, 2, 5]
    assert probe.windows.still_veto == [False, True, False]
    # Without the veto (guard.still_box_veto off) such a frame is not restored at all.
    dropped = ReblurGuard(bme=_reads([0.2, 1.5, 0.9]), still_box_veto=False, **kwargs)
    removed = dropped.prepare(video, selection, spec)
    assert removed.windows.still_frames == [0, 5] and removed.windows.still_veto == [False] * 2
    # All read blurred and no veto: the blurred frames' score alone.
    blurred = ReblurGuard(bme=_reads(2.0), still_box_veto=False, **kwargs).prepare(
        video, selection, spec
    )
    assert isinstance(blurred, ReferenceProbe) and blurred.windows.still_frames == []
    out = blurred.windows.clips[:, blurred.windows.centre]
    blurred(_Fixed(out), torch.device("cpu"))
    assert set(blurred.last) == {"reference_psnr", "reference_median_gain"}
    # Off: every frame the mean reading calls sharp earns credit.
    off = ReblurGuard(bme=_reads(2.0), still_box_sharp=False, **kwargs)
    assert off.prepare(video, selection, spec).windows.still_veto == [False] * 3
    assert (
        ReblurGuard.from_config(GuardConfig(still_box_sharp=False), bme=_reads(0.0)).still_box_sharp
        is False
    )
    assert ReblurGuard.from_config(GuardConfig(still_box_veto=False)).still_box_veto is False


def test_sharp_frames_that_may_only_veto_stop_an_epoch_that_damages_them() -> None:
    # Every box reads blurred alone (the held-out hand-held video whose reference frames all
    # read >= 1 px in their boxes while their true blur was 0.3 px): no credit, but a veto.
    video, sharp, selection = _video(blurred={1, 3, 4})
    spec = get_spec("image")
    kwargs: dict[str, Any] = dict(flow=KnownFlow(), frames=4, box=48, margin=8, batch_size=8)
    probe = ReblurGuard(**kwargs, bme=_reads(2.0)).prepare(video, selection, spec)
    assert isinstance(probe, ReferenceProbe)
    w = probe.windows
    assert w.still_veto == [True] * 3
    truth = _window_truth(sharp, w)
    copy, still = w.clips[:, w.centre], w.still_observed
    damaged = (still + 0.1).clamp(0, 1)

    def score(blurred_out: torch.Tensor, still_out: torch.Tensor) -> float:
        return probe(_Fixed(torch.cat([blurred_out, still_out])), torch.device("cpu"))

    base = score(copy, (still + 0.02).clamp(0, 1))  # the unadapted model
    assert set(probe.last) == {"reference_psnr", "reference_median_gain", "still_veto_psnr"}
    assert probe.last["still_veto_psnr"] == pytest.approx(
        still_psnr((still + 0.02).clamp(0, 1), still, w.still_weight, cap_db=48.13)
    )
    # The blurred frames restored and the sharp ones kept: the blurred frames' gain alone (the
    # sharp frames' rise earns nothing).
    restored = score(truth, still)
    assert restored - base == pytest.approx(probe.last["reference_median_gain"])
    assert restored > base + 10.0
    # The blurred frames restored but the sharp ones damaged: the fall is the score.
    vetoed = score(truth, damaged)
    fall = probe.last["still_veto_psnr"] - probe.baseline["still_veto_psnr"]
    assert fall < -10.0 and vetoed - base == pytest.approx(fall)
    # The same epoch without the veto frames would have been kept.
    no_veto = ReblurGuard(**kwargs, bme=_reads(2.0), still_box_veto=False).prepare(
        video, selection, spec
    )
    cpu = torch.device("cpu")
    first = no_veto(_Fixed(copy), cpu)
    assert no_veto(_Fixed(truth), cpu) > first + 10.0


def test_veto_flags_follow_the_still_frames_they_belong_to() -> None:
    video, _, selection = _video(blurred={1, 3, 4})
    refs = choose_references(
        video, selection, get_spec("image"), KnownFlow(), frames=8, size=64, border=8
    )
    assert refs is not None and refs.still_veto == [False] * 3
    marked = refs.with_still_veto([False, True, False]).with_still_veto([True, False, False])
    assert marked.still_veto == [True, True, False] and marked.still_frames == refs.still_frames
    assert refs.still_veto == [False] * 3  # the original is unchanged
    assert marked.with_still([True, False, True]).still_veto == [True, False]
    assert marked.with_windows([True, False, True]).still_veto == [True, True, False]
    with pytest.raises(ValueError, match="one flag per still frame"):
        refs.with_still_veto([True])
    with pytest.raises(ValueError, match="one flag per still frame"):
        replace(refs, still_veto=[True])


def test_window_psnr_scores_each_window_as_reference_psnr_pools_them() -> None:
    ref = torch.full((3, 3, 16, 16), 0.5)
    out = ref + torch.tensor([0.1, 0.01, 0.0]).view(3, 1, 1, 1)
    weight = torch.ones(3, 1, 16, 16)
    weight[2] = 0.0
    db = window_psnr(out, ref, weight)
    assert db.shape == (3,)
    assert db[:2].tolist() == pytest.approx([20.0, 40.0], abs=1e-4)
    assert math.isnan(float(db[2]))  # no weight, no score
    assert window_psnr(ref, ref, torch.ones(3, 1, 16, 16)).tolist() == [100.0] * 3
    one = window_psnr(out[:1], ref[:1], weight[:1], shift_px=1)  # a shift never fits worse
    assert float(one[0]) >= float(db[0]) - 1e-6
    with pytest.raises(ValueError, match="shift_px"):
        window_psnr(out, ref, weight, shift_px=-1)


def test_a_sharp_reference_re_blurred_explains_its_frame_and_a_blurred_one_does_not() -> None:
    video, sharp, _ = _video(blurred={1})
    cond = torch.zeros(1, 3, 96, 96)
    cond[:, 0], cond[:, 2] = 1.0, 8.0  # the blur the video's frame 1 carries
    weight = torch.zeros(1, 1, 96, 96)
    weight[..., 16:-16, 16:-16] = 1.0
    observed = video[1:2]
    # The sharp frame 1 itself (a perfect warp): blurred by 8 px it is the observed frame.
    right = reblur_fit_gain(sharp[1:2], observed, cond, weight)
    assert right.shape == (1,) and float(right[0]) > 30.0
    # A reference as blurred as the frame moves away from it once blurred again.
    wrong = reblur_fit_gain(motion_blur(sharp[1:2], cond), observed, cond, weight)
    assert float(wrong[0]) < -30.0
    # Blurred in another direction, a sharp reference explains the frame less well.
    across = cond.clone()
    across[:, 0], across[:, 1] = 0.0, 1.0
    assert float(reblur_fit_gain(sharp[1:2], observed, across, weight)[0]) < float(right[0])
    still = cond.clone()
    still[:, 2] = 0.0  # no blur: the reference is compared as it is
    assert reblur_fit_gain(sharp[1:2], observed, still, weight).tolist() == [0.0]
    with pytest.raises(ValueError, match="condition"):
        reblur_fit_gain(sharp[1:2], observed, cond[:, :2], weight)
    with pytest.raises(ValueError, match="equal"):
        reblur_fit_gain(sharp[1:2], observed[:, :, :8], cond, weight)


def test_the_guard_drops_windows_whose_sharp_neighbour_is_as_blurred_as_the_frame() -> None:
    # Frame 2 is blurred like 1, 3 and 4, but the detector's maps read it sharp: it would be
    # frame 3's reference. Frames 0 and 5 are truly sharp.
    video, _, read = _video(blurred={1, 2, 3, 4})
    read.magnitude[2] = 0.0
    spec = get_spec("image")

    def guard(check: bool) -> ReblurGuard:
        return ReblurGuard(
            flow=KnownFlow(), frames=4, box=48, margin=8, reference_reblur_check=check
        )

    unchecked = guard(False).prepare(video, read, spec)
    assert isinstance(unchecked, ReferenceProbe)
    assert unchecked.windows.frames == [1, 3, 4] and unchecked.windows.sources == [0, 2, 5]
    assert unchecked.windows.fit_gain == []
    checked = guard(True).prepare(video, read, spec)
    assert isinstance(checked, ReferenceProbe)
    w = checked.windows
    assert w.frames == [1, 4] and w.sources == [0, 5]  # (3, 2) failed the re-blur test
    assert len(w.fit_gain) == 2 and min(w.fit_gain) > 10.0
    assert w.clips.shape[0] == w.reference.shape[0] == w.weight.shape[0] == 2
    assert w.with_windows([True, False]).fit_gain == w.fit_gain[:1]
    with pytest.raises(ValueError, match="one flag per window"):
        w.with_windows([True])
    # Where every reference is as blurred as its frame, the re-blur score is left.
    blurred, _, all_read = _video(blurred=set(range(7)))
    all_read.magnitude[[0, 2, 5, 6]] = 0.0
    assert isinstance(guard(False).prepare(blurred, all_read, spec), ReferenceProbe)
    assert isinstance(guard(True).prepare(blurred, all_read, spec), GuardProbe)


def test_the_median_window_gain_keeps_no_epoch_that_one_window_alone_likes() -> None:
    video, sharp, selection = _video(blurred={1, 3, 4})
    spec = get_spec("image")
    cpu = torch.device("cpu")

    def probe(median: bool) -> ReferenceProbe:
        guard = ReblurGuard(
            flow=KnownFlow(),
            frames=4,
            box=48,
            margin=8,
            still_frames=False,
            reference_median=median,
        )
        made = guard.prepare(video, selection, spec)
        assert isinstance(made, ReferenceProbe) and len(made.windows) == 3
        return made

    w = probe(True).windows
    size = w.clips.shape[-1]
    copy = w.clips[:, w.centre].clone()  # the blurred input returned as it is
    one_right = copy.clone()
    top, left = w.boxes[0]
    one_right[0] = sharp[w.frames[0], :, top : top + size, left : left + size]
    pooled, median = probe(False), probe(True)
    base = {p: p(_Fixed(copy), cpu) for p in (pooled, median)}  # the unadapted model first
    assert pooled(_Fixed(one_right), cpu) - base[pooled] > 1.0  # pooled: one window lifts it
    assert median(_Fixed(one_right), cpu) == base[median]  # median of [big, 0, 0]: 0
    assert median.last["reference_median_gain"] == 0.0
    # Every window restored: the median gain is the lower median of the windows' own gains.
    truths = torch.stack(
        [
            sharp[t, :, a : a + size, b : b + size]
            for t, (a, b) in zip(w.frames, w.boxes, strict=True)
        ]
    )
    gains = window_psnr(truths, w.reference, w.weight) - window_psnr(copy, w.reference, w.weight)
    assert median(_Fixed(truths), cpu) - base[median] == pytest.approx(float(gains.median()))
    assert float(gains.min()) > 5.0
