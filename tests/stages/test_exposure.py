"""Exposure ratio and motion per frame on videos whose exposure and motion are known
(``panning_video``: tests/conftest.py)."""

import pytest
import torch

from ttblur.protocols import PatchLocation
from ttblur.stages.exposure import (
    MAX_RATIO_STD,
    MAX_SHARP_SHARE,
    RATIOS,
    STEADY_MOTION_SPREAD,
    STILL_NEIGHBOUR_PX,
    ExposureEstimate,
    estimate_exposure,
    fit_exposure_ratio,
    sharp_share,
    video_motion,
)
from ttblur.stages.flow import OpenCVFlow

PATCHES = [PatchLocation(3, 16, 0, 64), PatchLocation(3, 16, 64, 64)]
#: Frame motions (px over each frame's own interval) of a pan that slows to a stop at frame 3
#: (a still moment, where the patches are) and speeds up again, at a steady rate on either side.
#: The frame pairs move 7, 5, 2, 3, 7, 9, 11 px; the motion per frame read from them (the mean of
#: the pairs on either side) is 7, 6, 3.5, 2.5, 5, 8, 10, 11 px, whose half at or above the
#: median (6) averages (6 + 7 + 8 + 10 + 11) / 5 = 8.4 px.
STOP_AND_GO = (8, 6, 4, 0, 6, 8, 10, 12)
STOP_AND_GO_MOTION = 8.4


@pytest.mark.parametrize("ratio", [0.3, 0.8])
def test_fitted_ratio_reads_back_a_known_exposure(panning_video, ratio: float) -> None:
    video = panning_video(ratio, motions=STOP_AND_GO)
    fitted = fit_exposure_ratio(video, PATCHES, OpenCVFlow(), noise_std=0.004)
    assert fitted is not None and abs(fitted - ratio) <= 0.1 + 1e-6


def test_a_neighbour_beside_the_still_moment_moves_twice_the_pair_joining_them(
    panning_video,
) -> None:
    # The pan stops dead for frame 3 (the patches' frame) and goes on at 8 px per frame: the
    # pairs joining frame 3 to frames 2 and 4 move 4 px, half of what those frames moved during
    # their own intervals. Read as the mean of the pairs around them (6 px), the fit would
    # take frames 2 and 4 for slower than they are and read the ratio too high.
    video = panning_video(0.5, motions=(8, 8, 8, 0, 8, 8, 8, 8))
    estimate = estimate_exposure(video, PATCHES, OpenCVFlow())
    assert estimate.ratio == pytest.approx(0.5) and estimate.note is None


def test_video_motion_is_the_pan_speed(panning_video) -> None:
    assert video_motion(panning_video(0.5), OpenCVFlow()) == pytest.approx(4.0, abs=0.3)
    # The higher-motion half of the frames.
    stop_and_go = panning_video(0.5, motions=STOP_AND_GO)
    assert video_motion(stop_and_go, OpenCVFlow()) == pytest.approx(STOP_AND_GO_MOTION, abs=0.3)


def test_estimate_combines_ratio_and_motion(panning_video) -> None:
    estimate = estimate_exposure(panning_video(0.8, motions=STOP_AND_GO), PATCHES, OpenCVFlow())
    assert estimate.ratio == pytest.approx(0.8, abs=0.1 + 1e-6)
    # Reported with its uncertainty: a clean pan pins it down.
    assert estimate.ratio_std is not None and 0.0 <= estimate.ratio_std <= MAX_RATIO_STD
    assert estimate.note is None
    assert estimate.motion_px == pytest.approx(STOP_AND_GO_MOTION, abs=0.3)
    assert estimate.blur_px == pytest.approx(estimate.ratio * estimate.motion_px)


def test_large_patches_are_compared_at_reduced_scale(panning_video) -> None:
    # 256 px patches are pooled by 2: the ratio is unchanged, motion still in full-res px
    # (a stop at frame 3: pairs move 11, 9, 4, 5, 11, 13 px, frames 11, 10, 6.5, 4.5, 8, 12,
    # 13; the half at or above the median, 10, averages 46 / 4 = 11.5 px).
    motions = (12, 10, 8, 0, 10, 12, 14)
    video = panning_video(0.5, frames=7, size=(272, 288), motions=motions)
    patches = [PatchLocation(3, 8, 16, 256)]
    estimate = estimate_exposure(video, patches, OpenCVFlow())
    assert estimate.ratio == pytest.approx(0.5, abs=0.1 + 1e-6)
    assert estimate.motion_px == pytest.approx(11.5, abs=0.5)
    # The blur maps are pooled alike and still read in full-resolution px: the true ones leave
    # the fit as it was; maps that read every neighbour still leave nothing to compare.
    blur = _true_blur(video, 0.5, motions)
    assert estimate_exposure(video, patches, OpenCVFlow(), magnitude=blur).ratio == estimate.ratio
    blur[[0, 1, 2, 4, 5, 6]] = STILL_NEIGHBOUR_PX - 0.1
    still = estimate_exposure(video, patches, OpenCVFlow(), magnitude=blur)
    assert still.ratio is None and still.note is not None and "neighbour" in still.note


def test_still_video_has_no_ratio(panning_video) -> None:
    still = panning_video(0.5, speed=0)
    assert fit_exposure_ratio(still, PATCHES, OpenCVFlow(), noise_std=0.004) is None
    estimate = estimate_exposure(still, PATCHES, OpenCVFlow())
    assert estimate.ratio is None and estimate.blur_px is None
    assert estimate.motion_px < 0.5


def test_ratio_grid_and_input_checks() -> None:
    # Bounded to (0, 1]: an exposure cannot outlast the frame interval.
    assert RATIOS[0] == 0.1 and RATIOS[-1] == 1.0 and len(RATIOS) == 10
    assert ExposureEstimate(ratio=0.5, motion_px=12.0).blur_px == 6.0
    with pytest.raises(ValueError, match="at least 2 frames"):
        video_motion(torch.rand(1, 3, 32, 32), OpenCVFlow())
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\)"):
        estimate_exposure(torch.rand(4, 32, 32), PATCHES, OpenCVFlow())


def test_full_exposure_never_reads_above_one(panning_video) -> None:
    # Exposure = the whole frame interval: the fit is bounded at 1.0 (it read 1.1-1.4 before).
    estimate = estimate_exposure(panning_video(1.0, motions=STOP_AND_GO), PATCHES, OpenCVFlow())
    assert estimate.ratio is not None and 0.9 - 1e-6 <= estimate.ratio <= 1.0


def test_steady_pan_without_a_sharp_frame_is_refused_with_a_reason(panning_video) -> None:
    # Every frame blurred alike (no still moment): any ratio explains the neighbours as well
    # as none, so no ratio is reported and the note says why.
    video = panning_video(1.0, sharp_frame=-1)
    estimate = estimate_exposure(video, PATCHES, OpenCVFlow())
    assert estimate.ratio is None and estimate.blur_px is None
    assert estimate.note is not None and "steady pan" in estimate.note
    assert estimate.motion_px == pytest.approx(4.0, abs=0.3)


def test_steady_motion_refuses_the_fit_even_beside_a_sharp_frame(panning_video) -> None:
    # A steady pan whose frame 3 is sharp anyway: with one exposure for every frame that
    # cannot happen (the same motion blurs every frame alike), so the fit does not trust the
    # "sharp" frame; on the same pan speeding up, the sharp frame is believed and read back.
    steady = panning_video(0.8)
    assert fit_exposure_ratio(steady, PATCHES, OpenCVFlow(), noise_std=0.004) is None
    refused = estimate_exposure(steady, PATCHES, OpenCVFlow())
    assert refused.ratio is None and refused.note is not None
    assert "moves steadily" in refused.note and f"{STEADY_MOTION_SPREAD:.0%}" in refused.note
    assert refused.motion_px == pytest.approx(4.0, abs=0.3)
    varying = estimate_exposure(panning_video(0.8, motions=STOP_AND_GO), PATCHES, OpenCVFlow())
    assert varying.ratio == pytest.approx(0.8, abs=0.1 + 1e-6)
    # A video that barely moves is not called steady: another rule says why it is refused.
    still = estimate_exposure(panning_video(0.8, speed=0), PATCHES, OpenCVFlow())
    assert still.ratio is None and "steadily" not in (still.note or "")


def test_sharp_share_compares_the_patches_with_the_median_frame() -> None:
    maps = torch.full((7, 1, 96, 128), 6.0)
    assert sharp_share(maps, PATCHES) == pytest.approx(1.0)
    maps[3] = 0.6  # the patches' frame is a still moment
    assert sharp_share(maps, PATCHES) == pytest.approx(0.1)
    assert sharp_share(torch.zeros(7, 1, 96, 128), PATCHES) == 0.0
    with pytest.raises(ValueError, match=r"\(T, 1, H, W\)"):
        sharp_share(maps[:, 0], PATCHES)


def test_patches_as_blurred_as_the_median_frame_refuse_the_fit(panning_video) -> None:
    # The same clean pan that reads 0.8 back: with maps saying the patches are no sharper
    # than the typical frame the fit is refused, with the reason; with a sharper patch frame
    # it stands.
    video = panning_video(0.8, motions=STOP_AND_GO)
    frames, _, height, width = video.shape
    uniform = torch.full((frames, 1, height, width), 5.0)
    refused = estimate_exposure(video, PATCHES, OpenCVFlow(), magnitude=uniform)
    assert refused.ratio is None and refused.blur_px is None
    assert refused.note is not None and "no frame is sharper" in refused.note
    assert refused.motion_px == pytest.approx(STOP_AND_GO_MOTION, abs=0.3)
    sharper = uniform.clone()
    sharper[3] = 5.0 * (MAX_SHARP_SHARE - 0.2)
    kept = estimate_exposure(video, PATCHES, OpenCVFlow(), magnitude=sharper)
    assert kept.ratio == pytest.approx(0.8, abs=0.1 + 1e-6) and kept.note is None


def test_frames_that_disagree_make_the_fit_uncertain_and_it_is_refused(panning_video) -> None:
    # A pan of 10 frames with still moments at frames 2 and 7; frames 0-4 are exposed 0.4,
    # frames 5-9 1.0 of the frame interval (a hand-held camera whose motion within the
    # exposure changes from moment to moment looks like this to the fit).
    motions = (4, 4, 0, 6, 6, 4, 4, 0, 6, 6)
    early_half = panning_video(0.4, frames=10, sharp_frame=2, motions=motions)
    late_half = panning_video(1.0, frames=10, sharp_frame=7, motions=motions)  # same texture
    video = torch.cat([early_half[:5], late_half[5:]])
    early = [PatchLocation(2, 16, 0, 64), PatchLocation(2, 16, 64, 64)]
    late = [PatchLocation(7, 16, 0, 64), PatchLocation(7, 16, 64, 64)]
    # Each still moment alone reads its own exposure back ...
    assert estimate_exposure(video, early, OpenCVFlow()).ratio == pytest.approx(0.4)
    assert estimate_exposure(video, late, OpenCVFlow()).ratio == pytest.approx(1.0)
    # ... together no single ratio holds: the bootstrap over the patches' frames says so.
    both = estimate_exposure(video, early + late, OpenCVFlow())
    assert both.ratio is None and both.ratio_std is not None
    assert both.ratio_std > MAX_RATIO_STD
    assert both.note is not None and "too uncertain" in both.note


def test_a_fit_at_the_smallest_ratio_is_refused() -> None:
    # A steady pan at full exposure: the "pseudo-sharp" patches are as blurred as their
    # neighbours, which then look like the patches blurred by the smallest ratio tried.
    from ttblur.scenarios import make_scenario, scenario_suite

    spec = scenario_suite("development", 1, num_frames=8, size=(96, 128), families=["pan"])[0]
    pan = make_scenario(spec)
    assert pan.exposure_ratio == 1.0
    # Frame 6 dropped: the motion is no longer steady (the steadiness rule would refuse the
    # pan first), and the patches' neighbours (frames 1-5) are the pan's own.
    estimate = estimate_exposure(pan.blurry[[0, 1, 2, 3, 4, 5, 7]], PATCHES, OpenCVFlow())
    assert estimate.ratio is None and estimate.blur_px is None
    assert estimate.note is not None and "smallest ratio tried" in estimate.note
    assert estimate.motion_px > 3.0  # the motion is still measured


class _WrongFlow:
    """A flow estimator that reports the right lengths in the wrong direction (the true flow
    turned by 90 degrees: a horizontal pan reads as vertical)."""

    def __call__(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        flow = OpenCVFlow()(src, dst)
        return torch.stack([-flow[:, 1], flow[:, 0]], dim=1)


def test_neighbours_the_flow_did_not_register_are_left_out(panning_video) -> None:
    video = panning_video(0.8, motions=STOP_AND_GO)
    assert estimate_exposure(video, PATCHES, OpenCVFlow()).ratio == pytest.approx(0.8, abs=0.11)
    estimate = estimate_exposure(video, PATCHES, _WrongFlow())
    assert estimate.ratio is None
    assert estimate.note is not None and "registered" in estimate.note


def test_the_patch_border_is_left_out_of_the_comparison(panning_video, monkeypatch) -> None:
    """The blurred patch is padded beyond its box, so its 8 px border is not compared; only
    the frame's border was left out before (a patch inside the frame was compared whole)."""
    import ttblur.stages.exposure as exposure

    seen = []
    original = exposure._errors

    def record(comparisons, *args, **kwargs):
        seen.extend(comparisons)
        return original(comparisons, *args, **kwargs)

    monkeypatch.setattr(exposure, "_errors", record)
    video = panning_video(0.5, motions=STOP_AND_GO)
    inner = [PatchLocation(3, 16, 24, 64)]  # 16 px and more from every frame edge
    estimate_exposure(video, inner, OpenCVFlow())
    assert seen
    for c in seen:
        weight = c.weight[:, 0]
        assert weight[:, :8].sum() == 0 and weight[:, -8:].sum() == 0
        assert weight[:, :, :8].sum() == 0 and weight[:, :, -8:].sum() == 0
        assert weight[:, 8:-8, 8:-8].mean() > 0.9


def _true_blur(video: torch.Tensor, ratio: float, motions: tuple[int, ...]) -> torch.Tensor:
    """Per-pixel blur maps ``(T, 1, H, W)`` (px) of a :func:`panning_video`: what a perfect
    detector reads."""
    blur = torch.tensor([ratio * m for m in motions], dtype=torch.float32)
    return blur.view(-1, 1, 1, 1).expand(len(motions), 1, *video.shape[-2:]).contiguous()


def test_a_still_neighbour_is_not_compared(panning_video, monkeypatch) -> None:
    """Frames 3 (the patches') and 5 are still moments: frame 5 is unblurred, but the pairs
    around it move 4 px each, so read from the flow it would move 4 px and be compared with the
    patches blurred ``4 * ratio`` px. Given the blur maps, a neighbour that reads under
    STILL_NEIGHBOUR_PX is left out; every neighbour compared moves 8 px."""
    import ttblur.stages.exposure as exposure

    # Isolate the rule: the detail test alone would also drop an unblurred neighbour here,
    # where the flow registers it exactly (on real videos the warp softens it past that test).
    monkeypatch.setattr(exposure, "_SHARPER", 100.0)
    seen: list = []
    original = exposure._errors

    def record(comparisons, *args, **kwargs):
        seen.extend(comparisons)
        return original(comparisons, *args, **kwargs)

    monkeypatch.setattr(exposure, "_errors", record)
    motions = (8, 8, 8, 0, 8, 0, 8, 8)
    video = panning_video(0.6, motions=motions)
    estimate_exposure(video, PATCHES, OpenCVFlow())
    speeds = torch.cat([c.speed for c in seen])
    assert speeds.min() == pytest.approx(4.0, abs=0.5)  # without maps: frame 5 compared
    seen.clear()
    estimate = estimate_exposure(
        video, PATCHES, OpenCVFlow(), magnitude=_true_blur(video, 0.6, motions)
    )
    speeds = torch.cat([c.speed for c in seen])
    assert speeds.min() == pytest.approx(8.0, abs=0.5)
    assert estimate.ratio == pytest.approx(0.6, abs=0.1 + 1e-6)
    # The rule reads the maps in the patch's box, in px: a neighbour just over the threshold
    # is compared again.
    seen.clear()
    blur = _true_blur(video, 0.6, motions)
    blur[5] = STILL_NEIGHBOUR_PX
    estimate_exposure(video, PATCHES, OpenCVFlow(), magnitude=blur)
    assert torch.cat([c.speed for c in seen]).min() == pytest.approx(4.0, abs=0.5)


def test_blur_maps_of_another_size_are_refused(panning_video) -> None:
    video = panning_video(0.5, motions=STOP_AND_GO)
    with pytest.raises(ValueError, match=r"magnitude must be \(T, 1, H, W\) = \(8, 1, 96, 128\)"):
        estimate_exposure(video, PATCHES, OpenCVFlow(), magnitude=torch.zeros(8, 1, 48, 64))


def test_streamed_frames_and_maps_fit_as_tensors_do(panning_video) -> None:
    """A streamed video and its maps (disk-backed FrameStores, pooled as views) give the fit
    the tensors give, at reduced scale and with a still neighbour left out."""
    from ttblur.io.frame_store import FrameStore

    motions = (12, 10, 8, 0, 10, 0, 14)
    video = panning_video(0.5, frames=7, size=(272, 288), motions=motions)
    blur = _true_blur(video, 0.5, motions)
    patches = [PatchLocation(3, 8, 16, 256)]
    in_memory = estimate_exposure(video, patches, OpenCVFlow(), magnitude=blur)
    streamed = estimate_exposure(
        FrameStore.from_chunks([video]),
        patches,
        OpenCVFlow(),
        magnitude=FrameStore.from_chunks([blur]),
    )
    assert in_memory.ratio == pytest.approx(0.5, abs=0.1 + 1e-6)
    assert streamed == in_memory
