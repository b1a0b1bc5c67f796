"""Tests of ttblur.scenarios: the scenario families' ground truth, roles and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ttblur._scene import PiecewiseLinear, tone_decode, tone_encode
from ttblur.scenarios import (
    EVALUATION_SEED_MIN,
    FAMILIES,
    TONE_CURVES,
    ScenarioSpec,
    ScenarioVideo,
    draw_scenario,
    make_scenario,
    scenario_suite,
)
from ttblur.synth import HELDOUT_PHOTOS, SyntheticVideo

ndimage = pytest.importorskip("scipy.ndimage")
pytest.importorskip("skimage")

SIZE = (48, 64)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    mse = float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean())
    return 10.0 * math.log10(1.0 / max(mse, 1e-20))


def spec_of(family: str, index: int = 0, num_frames: int = 5, **update) -> ScenarioSpec:
    spec = draw_scenario(family, "development", index, num_frames=num_frames, size=SIZE)
    return spec.model_copy(update=update) if update else spec


def warp_psnr(video: SyntheticVideo, t: int, keep: torch.Tensor | None = None) -> float:
    """PSNR of sharp_t against sharp_{t+1} sampled at p + motion_t(p), inside the frame."""
    _, _, h, w = video.sharp.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    tx, ty = xs + video.motion[t, 0], ys + video.motion[t, 1]
    grid = torch.stack([2 * tx / (w - 1) - 1, 2 * ty / (h - 1) - 1], dim=-1)[None]
    warped = F.grid_sample(video.sharp[t + 1 : t + 2], grid, align_corners=True)[0]
    inside = (tx > 2) & (tx < w - 3) & (ty > 2) & (ty < h - 3)
    inside[:4] = inside[-4:] = False
    inside[:, :4] = inside[:, -4:] = False
    if keep is not None:
        inside &= keep
    assert int(inside.sum()) > 50
    return psnr(warped[:, inside], video.sharp[t][:, inside])


def box_blur_psnr(video: SyntheticVideo, t: int, curve: str, linear: bool = True) -> float:
    """Blurry frame t vs. the sharp frame averaged (cubic spline shifts) along its straight,
    constant-speed flow, in linear light through ``curve`` (or in display values)."""
    sharp = video.sharp[t].double()
    base = tone_decode(sharp, curve).numpy() if linear else sharp.numpy()
    fx, fy = (float(v) for v in video.flow[t, :, 0, 0])
    coeffs = ndimage.spline_filter(base, order=3, mode="nearest")
    fractions = np.arange(41) / 40.0 - 0.5
    average = np.mean(
        [
            ndimage.shift(coeffs, (0.0, f * fy, f * fx), order=3, mode="nearest", prefilter=False)
            for f in fractions
        ],
        axis=0,
    )
    ref = torch.from_numpy(np.clip(average, 0.0, 1.0))
    ref = tone_encode(ref, curve) if linear else ref
    border = 14
    crop = (slice(None), slice(border, -border), slice(border, -border))
    return psnr(video.blurry[t].double().numpy()[crop], ref.numpy()[crop])


# ----------------------------------------------------------------------------------------------
# suite, roles, metadata


def test_suite_covers_families_roles_and_exposure_ratios():
    for role in ("evaluation", "development"):
        specs = scenario_suite(role, 3, num_frames=4, size=SIZE)
        assert [s.family for s in specs] == [f for f in FAMILIES for _ in range(3)]
        for family in FAMILIES:
            group = [s for s in specs if s.family == family]
            assert len({s.seed for s in group}) == 3
            assert len({s.model_dump_json(exclude={"index", "seed"}) for s in group}) == 3
        ratios = [s.exposure_ratio for s in specs]
        assert min(ratios) <= 0.22 and max(ratios) == 1.0
        assert all(s.exposure_ratio == 1.0 for s in specs if s.family == "pan")
        assert {s.tone for s in specs if s.family == "tone"} >= {"srgb", "gamma1.8", "gamma2.6"}
        for s in specs:
            photos = {s.photo} | ({s.object_photo} if s.object_photo else set())
            if role == "evaluation":
                assert s.seed >= EVALUATION_SEED_MIN and photos <= set(HELDOUT_PHOTOS)
            else:
                assert s.seed < EVALUATION_SEED_MIN and not photos & set(HELDOUT_PHOTOS)
    assert len(scenario_suite("evaluation", 1, families=("pan", "tone"))) == 2


@pytest.mark.parametrize(
    ("update", "match"),
    [
        (dict(role="evaluation"), "evaluation seeds must be >= 10000"),
        (dict(role="evaluation", seed=10001), "evaluation videos use only HELDOUT_PHOTOS"),
        (dict(photo="astronaut"), "development videos must not use HELDOUT_PHOTOS"),
        (dict(seed=10001), "development seeds must be < 10000"),
        (dict(photo="nope"), "unknown photo 'nope'"),
        (dict(tone="gamma9"), "unknown tone curve 'gamma9'"),
        (dict(exposure_ratio=1.2), "exposure_ratio"),
        (dict(blur_px=(5.0, 2.0)), "blur_px must be"),
        (dict(crf=23), "crf is for"),
        (dict(readout_ratio=0.5), "readout_ratio > 0 is for"),
        (dict(size=(4, 64)), "size must be at least"),
    ],
)
def test_spec_validation(update, match):
    data = spec_of("handheld").model_dump()
    data.update(update)
    with pytest.raises(ValueError, match=match):
        ScenarioSpec.model_validate(data)


def test_draw_and_suite_reject_bad_arguments():
    with pytest.raises(ValueError, match="unknown scenario family 'blur'"):
        draw_scenario("blur", "evaluation", 0)
    with pytest.raises(ValueError, match="role must be one of"):
        draw_scenario("pan", "test", 0)
    with pytest.raises(ValueError, match=r"index must be an int in \[0, 1000\)"):
        draw_scenario("pan", "evaluation", 1000)
    with pytest.raises(ValueError, match="videos_per_family must be in"):
        scenario_suite("evaluation", 0)
    with pytest.raises(ValueError, match="unknown scenario families"):
        scenario_suite("evaluation", 1, families=("pan", "zoom"))
    with pytest.raises(ValueError, match="first must be an int >= 0"):
        scenario_suite("evaluation", 1, first=-1)
    with pytest.raises(ValueError, match="first \\+ videos_per_family must be at most 1000"):
        scenario_suite("evaluation", 2, first=999)
    with pytest.raises(ValueError, match="spec must be a ScenarioSpec"):
        make_scenario("pan")  # type: ignore[arg-type]


def test_a_later_batch_of_the_suite_continues_the_first():
    both = scenario_suite("evaluation", 5, families=("pan", "tone"))
    first = scenario_suite("evaluation", 3, families=("pan", "tone"))
    later = scenario_suite("evaluation", 2, families=("pan", "tone"), first=3)
    assert [s.index for s in later] == [3, 4, 3, 4]
    assert [s.seed for s in first[:3] + later[:2] + first[3:] + later[2:]] == [s.seed for s in both]


@pytest.mark.parametrize("family", ["handheld", "lowlight", "h264", "moving_object"])
def test_deterministic_per_spec_and_metadata(family):
    spec = spec_of(family, num_frames=3)
    a, b = make_scenario(spec), make_scenario(spec)
    assert isinstance(a, ScenarioVideo) and isinstance(a, SyntheticVideo)
    for name in ("blurry", "sharp", "flow", "magnitude", "motion", "object_id"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    other = make_scenario(spec_of(family, index=1, num_frames=3))
    assert not torch.equal(a.blurry, other.blurry)
    meta = a.metadata
    assert meta["family"] == family and meta["seed"] == spec.seed and meta["photo"] == spec.photo
    assert meta["exposure_ratio"] == a.exposure_ratio == spec.exposure_ratio
    assert meta["exposure_ms"] == pytest.approx(spec.exposure_ratio * 1000.0 / spec.fps)
    assert a.params.exposure_ms == pytest.approx(meta["exposure_ms"])
    assert a.blurry.shape == (3, 3, *SIZE) and a.motion.shape == (2, 2, *SIZE)
    assert a.blurry.dtype == torch.float32 and 0 <= a.blurry.min() and a.blurry.max() <= 1


# ----------------------------------------------------------------------------------------------
# ground truth per family


def test_pan_constant_blur_equals_speed_times_exposure():
    spec = spec_of("pan", index=2)
    video = make_scenario(spec, noise=False)
    blur = spec.blur_px[0]
    rad = math.radians(spec.direction_deg)
    unit = torch.tensor([math.cos(rad), math.sin(rad)]).view(1, 2, 1, 1)
    assert (video.magnitude - blur).abs().max() < 1e-3
    assert (video.flow - blur * unit).abs().max() < 1e-3
    # exposure = frame interval: the content moves the blur length from frame to frame
    assert (video.motion - blur * unit).abs().max() < 1e-3
    for t in range(2):
        assert box_blur_psnr(video, t, spec.tone) > 40.0  # measured ~50 dB


def test_handheld_has_still_frames_and_strong_blur():
    spec = spec_of("handheld", index=1, num_frames=16)
    video = make_scenario(spec, noise=False)
    per_frame = video.magnitude.mean(dim=(1, 2, 3))
    assert float(per_frame.min()) < 1.0
    moving = per_frame[per_frame > 1.0]
    assert len(moving) >= 4
    assert float(moving.min()) > 0.9 * spec.blur_px[0]
    assert float(moving.max()) < 1.1 * spec.blur_px[1]
    assert (video.flow.norm(dim=1, keepdim=True) <= video.magnitude + 1e-3).all()
    for t in range(3):
        assert warp_psnr(video, t) > 30.0


def test_handheld_straight_stroke_is_a_linear_light_box_blur():
    """No slope, spread or shake: each frame is a straight constant-speed stroke, so the
    blurry frame is the sharp frame averaged along its flow in linear light."""
    spec = spec_of(
        "tone", still_prob=0.0, speed_slope=0.0, direction_spread_deg=0.0, shake_deg_s=0.0
    )
    for curve in ("log", "srgb"):
        video = make_scenario(spec.model_copy(update=dict(tone=curve)), noise=False)
        assert (video.magnitude.std(dim=(2, 3)) < 1e-3).all()
        exact = box_blur_psnr(video, 1, curve)
        assert exact > 40.0  # measured ~50 dB
        if curve == "log":  # blur in display values instead: clearly worse
            assert box_blur_psnr(video, 1, curve, linear=False) < exact - 5.0


def test_rotation_zoom_blur_varies_across_the_frame():
    spec = spec_of("rotation_zoom", index=1)
    video = make_scenario(spec, noise=False)
    h, w = SIZE
    for t in range(5):
        mag = video.magnitude[t, 0]
        centre = float(mag[h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1].max())
        corner = float(mag[[0, 0, -1, -1], [0, -1, 0, -1]].min())
        assert corner > 5.0 * max(centre, 0.05)
        assert 0.5 * spec.blur_px[0] < corner < 1.5 * spec.blur_px[1]
    for t in range(3):
        assert warp_psnr(video, t) > 30.0


def test_moving_object_over_still_background():
    spec = spec_of("moving_object", index=1)
    video = make_scenario(spec, noise=False)
    assert spec.num_objects == 2
    mask = video.object_id[:, 0] > 0
    assert set(video.object_id.unique().tolist()) == {0, 1, 2}
    assert mask.any(dim=(1, 2)).all()
    reach = float(video.magnitude.max()) + 4.0
    for t in range(5):
        distance = torch.from_numpy(ndimage.distance_transform_edt(~mask[t].numpy()))
        far = distance > reach
        assert int(far.sum()) > 100
        assert (video.magnitude[t, 0][~mask[t]] == 0).all()
        assert (video.flow[t][:, ~mask[t]] == 0).all()
        assert (video.blurry[t][:, far] - video.sharp[t][:, far]).abs().max() < 1e-5
        on_object = video.magnitude[t, 0][mask[t]]
        assert float(on_object.median()) > 0.5 * spec.blur_px[0]
    # motion on object pixels (a hard-masked object at a larger size: interiors to compare)
    hard = make_scenario(
        spec.model_copy(update=dict(object_mask="hard", size=(96, 128))), noise=False
    )
    ids = hard.object_id[:, 0].numpy()
    ys, xs = np.mgrid[0:96, 0:128]
    checked = 0
    for t in range(3):
        tx = np.clip(np.rint(xs + hard.motion[t, 0].numpy()), 0, 127).astype(int)
        ty = np.clip(np.rint(ys + hard.motion[t, 1].numpy()), 0, 95).astype(int)
        for k in (1, 2):  # pixels of object k that stay inside object k (no occlusion)
            keep = ndimage.binary_erosion(ids[t] == k, iterations=2)
            keep &= ndimage.binary_erosion(ids[t + 1] == k, iterations=2)[ty, tx]
            if keep.sum() > 50:
                assert warp_psnr(hard, t, keep=torch.from_numpy(keep)) > 30.0
                checked += 1
    assert checked >= 3
    assert (video.motion[:, :, ~mask[:-1].any(dim=0)] == 0).all()


def test_rolling_shutter_rows_follow_their_own_exposure_time():
    spec = spec_of("rolling_shutter", index=2, num_frames=6, shake_deg_s=0.0)
    video = make_scenario(spec, noise=False)
    assert spec.readout_ratio > 0.5
    offsets = video.row_offset_s
    interval = 1.0 / spec.fps
    assert offsets[-1] - offsets[0] == pytest.approx(spec.readout_ratio * interval * 47 / 48)
    exposure = spec.exposure_ratio * interval
    row_gap = []
    for t in range(6):
        times = t * interval + offsets
        _, _, start = video.camera.pose(times - exposure / 2.0)
        _, _, end = video.camera.pose(times + exposure / 2.0)
        expected = torch.from_numpy(end - start).float().T[:, :, None]  # (2, H, 1)
        assert (video.flow[t] - expected).abs().max() < 1e-3
        row_gap.append(float((video.flow[t, :, 0, 0] - video.flow[t, :, -1, 0]).norm()))
        # the flow is a finite difference of the trajectory: velocity x exposure to first order
        _, _, ahead = video.camera.pose(times + 1e-6)
        _, _, behind = video.camera.pose(times - 1e-6)
        velocity = (ahead - behind) / 2e-6
        approx = torch.from_numpy(velocity * exposure).float().T[:, :, None]
        assert (video.flow[t] - approx).abs().median() < 0.1 * float(video.flow[t].abs().max())
    assert max(row_gap) > 0.5  # the camera accelerates: top and bottom rows blur differently
    for t in range(3):
        assert warp_psnr(video, t) > 30.0


def test_h264_compresses_only_the_blurry_video():
    spec = spec_of("h264", index=2, num_frames=4)
    assert 23 <= spec.crf <= 30
    coded = make_scenario(spec, noise=False)
    raw = make_scenario(spec, noise=False, compress=False)
    assert not torch.equal(coded.blurry, raw.blurry)
    assert 30.0 < psnr(coded.blurry, raw.blurry) < 60.0
    for name in ("sharp", "flow", "magnitude", "motion"):
        assert torch.equal(getattr(coded, name), getattr(raw, name)), name
    odd = make_scenario(spec.model_copy(update=dict(size=(47, 63))), noise=False)
    assert odd.blurry.shape == (4, 3, 47, 63)


def test_h264_videos_are_the_same_bits_on_every_call():
    """x264's SIMD code gave this 128 x 160 video 3 variants in 3 calls."""
    from ttblur.scenarios import scenario_suite

    (spec,) = scenario_suite(
        role="development",
        families=("h264",),
        videos_per_family=1,
        num_frames=8,
        size=(128, 160),
    )
    first = make_scenario(spec).blurry
    for _ in range(3):
        assert torch.equal(make_scenario(spec).blurry, first)


def test_lowlight_noise_is_poisson_gaussian_in_linear_light():
    spec = spec_of("lowlight", num_frames=2).model_copy(
        update=dict(photons_at_white=60.0, read_noise_e=3.0, brightness=0.5)
    )
    noisy, clean = make_scenario(spec), make_scenario(spec, noise=False)
    assert torch.equal(noisy.sharp, clean.sharp)
    lin_noisy = tone_decode(noisy.blurry.double(), spec.tone)
    lin_clean = tone_decode(clean.blurry.double(), spec.tone)
    assert float(lin_clean.max()) <= 0.5 + 1e-4  # dark exposure
    keep = (lin_clean > 0.1) & (lin_clean < 0.4)
    residual = (lin_noisy - lin_clean)[keep]
    n, read = spec.photons_at_white, spec.read_noise_e
    expected = (lin_clean[keep] * n + read**2) / n**2
    assert float((residual**2).mean() / expected.mean()) == pytest.approx(1.0, rel=0.1)
    assert abs(float(residual.mean())) < 0.01


def test_tone_curves_are_exact_inverses_and_sharp_frames_keep_the_photo():
    x = torch.linspace(0, 1, 501, dtype=torch.float64)
    for curve in TONE_CURVES:
        assert (tone_decode(tone_encode(x, curve), curve) - x).abs().max() < 1e-5
        assert (torch.diff(tone_encode(x, curve)) > 0).all()
    base = spec_of("tone", num_frames=2)
    frames = {
        c: make_scenario(base.model_copy(update=dict(tone=c)), noise=False) for c in TONE_CURVES
    }
    reference = frames["gamma2.2"]
    for curve, video in frames.items():
        assert psnr(video.sharp, reference.sharp) > 35.0, curve
        assert torch.equal(video.magnitude, reference.magnitude)
    assert psnr(frames["log"].blurry, reference.blurry) < 45.0


def test_piecewise_linear_integral_is_exact():
    f = PiecewiseLinear(np.array([0.0, 1.0, 1.0, 3.0]), np.array([1.0, 3.0, -1.0, 1.0]))
    t = np.linspace(-1.0, 4.0, 5001)
    values = f(t)[:, 0]
    numeric = np.concatenate([[0.0], np.cumsum((values[1:] + values[:-1]) / 2 * np.diff(t))])
    numeric -= numeric[np.argmin(np.abs(t))]
    assert np.abs(f.integral(t)[:, 0] - numeric).max() < 3e-3  # the jump at t = 1 costs one step
    assert f.integral(np.array(1.0))[0] == pytest.approx(2.0)
    assert f.integral(np.array(3.0))[0] == pytest.approx(2.0)
    assert f.integral(np.array(4.0))[0] == pytest.approx(3.0)
    assert f.integral(np.array(-1.0))[0] == pytest.approx(-1.0)


def test_synth_serves_the_scenario_names():
    from ttblur import scenarios, synth

    for name in ("FAMILIES", "ScenarioSpec", "scenario_suite", "make_scenario", "draw_scenario"):
        assert getattr(synth, name) is getattr(scenarios, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        synth.nope  # noqa: B018


def test_numpy_integers_index_a_scenario_and_numpy_floats_normalise_a_condition():
    from ttblur.scenarios import draw_scenario
    from ttblur.synth import make_video

    assert draw_scenario("pan", "development", np.int64(3)) == draw_scenario(
        "pan", "development", 3
    )
    clip = make_video("coffee", "gopro", num_frames=3, size=(32, 48), seed=1)
    assert torch.equal(clip.condition(np.float32(20.0)), clip.condition(20.0))
