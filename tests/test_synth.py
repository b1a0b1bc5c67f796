"""Tests of ttblur.synth: exact ground truth, presets, determinism and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ttblur.synth import (
    HELDOUT_PHOTOS,
    PHOTOS,
    PRESETS,
    TRAIN_PHOTOS,
    SyntheticVideo,
    SynthParams,
    load_photo,
    make_video,
)

ndimage = pytest.importorskip("scipy.ndimage")
pytest.importorskip("skimage")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Rendering is many small grid_samples: one thread is fastest on a shared 2-core CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


TRANSLATION = dict(
    speed_variation=0.0,
    direction_spread_deg=0.0,
    rotation_std=0.0,
    zoom_std=0.0,
    noise_std=0.0,
)


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    mse = float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean())
    return 10.0 * math.log10(1.0 / mse)


def centred_radius(h: int, w: int) -> torch.Tensor:
    ys = torch.arange(h, dtype=torch.float64) - (h - 1) / 2
    xs = torch.arange(w, dtype=torch.float64) - (w - 1) / 2
    return torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)


@pytest.mark.parametrize("direction", [0.0, 90.0, 210.0])
def test_pure_translation_has_exact_ground_truth(direction):
    speed = 400.0  # px/s; gopro exposure = 25 ms -> 10 px of blur
    video = make_video(
        "astronaut",
        preset="gopro",
        num_frames=3,
        size=(64, 96),
        seed=3,
        speed_px_s=speed,
        direction_deg=direction,
        **TRANSLATION,
    )
    length = speed * PRESETS["gopro"].exposure_ms / 1000.0
    assert length == pytest.approx(10.0)
    rad = math.radians(direction)
    expected = torch.tensor([math.cos(rad), math.sin(rad)]).view(1, 2, 1, 1) * length
    assert (video.magnitude - length).abs().max() < 1e-3
    assert (video.flow - expected).abs().max() < 1e-3
    # sharp t -> t+1: the camera keeps its velocity for one frame interval
    step = speed * PRESETS["gopro"].frame_interval_ms / 1000.0
    assert (video.motion - expected * step / length).abs().max() < 1e-3
    # at least one sub-frame every max_step_px
    assert min(video.num_subframes) >= length / video.params.max_step_px


def test_translation_blur_equals_average_of_shifted_sharp_frames():
    """The blurry frame equals the linear-light average of the sharp frame shifted along the
    known path, computed here independently with scipy (cubic spline shifts)."""
    # measured: ~51 dB (bilinear rendering, 41 reference shifts); blurry vs sharp ~20 dB
    speed, gamma = 480.0, 2.2  # 12 px over the 25 ms exposure
    video = make_video(
        "coffee",
        preset="gopro",
        num_frames=2,
        size=(96, 128),
        seed=1,
        speed_px_s=speed,
        direction_deg=0.0,
        gamma=gamma,
        **TRANSLATION,
    )
    length = speed * video.params.exposure_ms / 1000.0
    border = 12
    for t in range(2):
        linear = video.sharp[t].double().numpy() ** gamma
        coeffs = ndimage.spline_filter(linear, order=3, mode="nearest")
        offsets = (np.arange(41) / 40.0 - 0.5) * length  # box over the path, 41 samples
        average = np.mean(
            [
                ndimage.shift(coeffs, (0.0, 0.0, dx), order=3, mode="nearest", prefilter=False)
                for dx in offsets
            ],
            axis=0,
        )
        reference = np.clip(average, 0.0, 1.0) ** (1.0 / gamma)
        crop = (slice(None), slice(border, -border), slice(border, -border))
        blurry = video.blurry[t].double().numpy()
        assert psnr(blurry[crop], reference[crop]) > 45.0
        # and the blur is real: the sharp frame is far from the blurry one
        assert psnr(blurry[crop], video.sharp[t].double().numpy()[crop]) < 30.0


def test_still_camera_gives_identical_frames_and_zero_blur():
    video = make_video(
        "chelsea", num_frames=4, size=(40, 56), seed=0, speed_px_s=0.0, **TRANSLATION
    )
    assert video.magnitude.abs().max() == 0.0
    assert video.flow.abs().max() == 0.0
    assert video.motion.abs().max() == 0.0
    assert torch.allclose(video.blurry, video.sharp, atol=1e-6)
    assert torch.allclose(video.sharp[0], video.sharp[-1], atol=1e-6)


def test_zoom_magnitude_grows_linearly_with_radius():
    h, w = 48, 64
    video = make_video(
        "rocket",
        num_frames=6,
        size=(h, w),
        seed=2,
        speed_px_s=0.0,
        rotation_std=0.0,
        zoom_std=1.5,
        noise_std=0.0,
    )
    radius = centred_radius(h, w)
    ring = radius > 8
    for t in range(6):
        mag = video.magnitude[t, 0].double()
        ratio = mag[ring] / radius[ring]
        assert ratio.mean() > 0.01  # px of blur per px of radius: really zooming
        assert (ratio.std() / ratio.mean()) < 1e-3  # magnitude = c * r
        assert mag.min() < 0.02 * mag.max()  # ~0 at the centre
        # zoom blur is radial: the flow is parallel to the radius vector
        ys = torch.arange(h, dtype=torch.float64) - (h - 1) / 2
        xs = torch.arange(w, dtype=torch.float64) - (w - 1) / 2
        fx, fy = video.flow[t, 0].double(), video.flow[t, 1].double()
        cross = (fx * ys[:, None] - fy * xs[None, :]).abs()
        assert (
            cross[ring] / (video.flow[t].double().norm(dim=0)[ring] * radius[ring])
        ).max() < 1e-3


def test_rotation_magnitude_grows_with_radius_and_flow_is_tangential():
    h, w = 48, 64
    video = make_video(
        "rocket",
        num_frames=6,
        size=(h, w),
        seed=4,
        speed_px_s=0.0,
        rotation_std=90.0,
        zoom_std=0.0,
        noise_std=0.0,
    )
    radius = centred_radius(h, w)
    ring = radius > 8
    ys = torch.arange(h, dtype=torch.float64) - (h - 1) / 2
    xs = torch.arange(w, dtype=torch.float64) - (w - 1) / 2
    for t in range(6):
        mag = video.magnitude[t, 0].double()
        ratio = mag[ring] / radius[ring]
        assert (ratio.std() / ratio.mean()) < 1e-3
        # for a rotation by angle a, |flow| = 2 r sin(|a| / 2) <= path = r |a|
        assert (video.flow[t].double().norm(dim=0) <= mag + 1e-4).all()
        dot = video.flow[t, 0].double() * xs[None, :] + video.flow[t, 1].double() * ys[:, None]
        cos = dot[ring].abs() / (video.flow[t].double().norm(dim=0)[ring] * radius[ring] + 1e-12)
        assert cos.max() < 0.02


def test_motion_maps_sharp_frames_onto_each_other():
    """sharp_t(p) == sharp_{t+1}(p + motion_t(p)) with rotation, zoom and translation on."""
    h, w = 96, 128
    video = make_video("coffee", num_frames=6, size=(h, w), seed=5, rotation_std=20.0, zoom_std=0.3)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    assert video.motion.norm(dim=1).mean() > 2.0
    for t in range(5):
        tx = xs + video.motion[t, 0]
        ty = ys + video.motion[t, 1]
        grid = torch.stack([2 * tx / (w - 1) - 1, 2 * ty / (h - 1) - 1], dim=-1)[None]
        warped = F.grid_sample(video.sharp[t + 1 : t + 2], grid, align_corners=True)[0]
        inside = (tx > 1) & (tx < w - 2) & (ty > 1) & (ty < h - 2)
        inside[:16] = inside[-16:] = False
        inside[:, :16] = inside[:, -16:] = False
        diff = (warped - video.sharp[t])[:, inside]
        assert 10 * math.log10(1.0 / float((diff**2).mean())) > 30.0
        assert (video.flow[t].norm(dim=0) <= video.magnitude[t, 0] + 1e-3).all()


def test_longer_bsd_exposure_blurs_more():
    values = {}
    for name in ("bsd-1ms8ms", "bsd-2ms16ms", "bsd-3ms24ms"):
        video = make_video("astronaut", preset=name, num_frames=10, size=(64, 80), seed=7)
        values[name] = (psnr(video.blurry, video.sharp), float(video.magnitude.mean()))
    p1, m1 = values["bsd-1ms8ms"]
    p2, m2 = values["bsd-2ms16ms"]
    p3, m3 = values["bsd-3ms24ms"]
    assert p1 > p2 + 1.0 and p2 > p3 + 1.0
    assert m1 < m2 < m3
    # same hand shake, blur proportional to the exposure (8 : 16 : 24 ms)
    assert m2 / m1 == pytest.approx(2.0, rel=0.1)
    assert m3 / m1 == pytest.approx(3.0, rel=0.1)


@pytest.mark.parametrize("preset", ["gopro", "bsd-2ms16ms"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_speed_variation_gives_nearly_still_frames(preset, seed):
    video = make_video("camera", preset=preset, num_frames=24, size=(32, 40), seed=seed)
    per_frame = video.magnitude.mean(dim=(1, 2, 3))
    assert per_frame.min() < per_frame.mean() / 3
    assert per_frame.max() > per_frame.mean() * 1.2


def test_zero_speed_variation_gives_constant_blur():
    video = make_video(
        "camera", num_frames=24, size=(32, 40), seed=0, speed_px_s=300.0, **TRANSLATION
    )
    per_frame = video.magnitude.mean(dim=(1, 2, 3))
    assert torch.allclose(per_frame, torch.full_like(per_frame, 300.0 * 0.025), atol=1e-3)


def test_disabled_pauses_draw_nothing():
    plain = make_video("camera", num_frames=8, size=(32, 40), seed=5)
    off = make_video(
        "camera",
        num_frames=8,
        size=(32, 40),
        seed=5,
        pause_prob=0.0,
        pause_where="anywhere",
        pause_max_ms=400.0,
    )
    assert torch.equal(plain.blurry, off.blurry) and torch.equal(plain.magnitude, off.magnitude)


def test_a_hand_pause_stops_the_camera():
    # Pauses after every stroke, each longer than three frame intervals: some consecutive frames
    # show the same view with no blur at all.
    video = make_video(
        "camera",
        num_frames=24,
        size=(32, 40),
        seed=0,
        speed_px_s=400.0,
        noise_std=0.0,
        pause_prob=1.0,
        pause_min_ms=120.0,
        pause_max_ms=120.0,
    )
    per_frame = video.magnitude.mean(dim=(1, 2, 3))
    still = [t for t in range(23) if per_frame[t] == 0 and per_frame[t + 1] == 0]
    assert still, per_frame
    t = still[0]
    assert float(video.motion[t].abs().max()) < 1e-6
    assert torch.allclose(video.sharp[t], video.sharp[t + 1], atol=1e-6)
    assert torch.allclose(video.blurry[t], video.sharp[t], atol=1e-5)
    assert per_frame.max() > 5.0  # the strokes still move


def test_abrupt_pauses_put_sharp_frames_between_blurred_ones():
    def sharp_beside_blurred(**pauses):
        count = 0
        for seed in range(8):
            video = make_video(
                "camera",
                num_frames=24,
                size=(32, 40),
                seed=seed,
                speed_px_s=500.0,
                speed_variation=1.0,
                **pauses,
            )
            b = video.magnitude.mean(dim=(1, 2, 3)).tolist()
            count += sum(b[t] <= 0.5 and max(b[t - 1], b[t + 1]) > 6.0 for t in range(1, 23))
        return count

    pauses = dict(pause_prob=1.0, pause_min_ms=30.0, pause_max_ms=60.0)
    # Measured: 2 frames without pauses, 2 with pauses at stroke ends (the speed has ramped
    # down there), 6 when the hand stops anywhere in a stroke.
    anywhere = sharp_beside_blurred(pause_where="anywhere", **pauses)
    assert anywhere >= 5
    assert anywhere > sharp_beside_blurred(pause_where="stroke_end", **pauses) + 2
    assert anywhere > sharp_beside_blurred() + 2


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_render_valid_videos(preset):
    video = make_video("moon", preset=preset, num_frames=5, size=(48, 64), seed=0)
    t, h, w = 5, 48, 64
    assert video.blurry.shape == video.sharp.shape == (t, 3, h, w)
    assert video.flow.shape == (t, 2, h, w) and video.magnitude.shape == (t, 1, h, w)
    assert video.motion.shape == (t - 1, 2, h, w)
    for tensor in (video.blurry, video.sharp, video.flow, video.magnitude, video.motion):
        assert tensor.dtype == torch.float32 and torch.isfinite(tensor).all()
    assert video.blurry.min() >= 0 and video.blurry.max() <= 1
    assert video.sharp.min() >= 0 and video.sharp.max() <= 1
    assert (video.flow.norm(dim=1, keepdim=True) <= video.magnitude + 1e-3).all()
    assert video.params == PRESETS[preset]
    assert all(n % 2 == 1 for n in video.num_subframes)


def test_noise_level_follows_noise_std():
    base = dict(num_frames=2, size=(64, 64), seed=0, speed_px_s=0.0, rotation_std=0.0)
    clean = make_video("brick", zoom_std=0.0, noise_std=0.0, **base)
    noisy = make_video("brick", zoom_std=0.0, noise_std=0.05, shot_fraction=0.0, **base)
    residual = (noisy.blurry - clean.blurry)[(clean.blurry > 0.1) & (clean.blurry < 0.9)]
    assert float(residual.std()) == pytest.approx(0.05, rel=0.05)
    assert torch.equal(clean.sharp, noisy.sharp)


def test_deterministic_by_seed():
    a = make_video("astronaut", num_frames=4, size=(32, 48), seed=11)
    b = make_video("astronaut", num_frames=4, size=(32, 48), seed=11)
    c = make_video("astronaut", num_frames=4, size=(32, 48), seed=12)
    for name in ("blurry", "sharp", "flow", "magnitude", "motion"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.blurry, c.blurry)
    assert not torch.equal(a.flow, c.flow)


def test_condition_channels():
    video = make_video("astronaut", num_frames=3, size=(32, 48), seed=0)
    mag_norm = float(video.magnitude.median())  # so that z clips on about half the pixels
    cond = video.condition(mag_norm)
    assert cond.shape == (3, 3, 32, 48)
    assert torch.allclose(cond[:, 0] ** 2 + cond[:, 1] ** 2, torch.ones(3, 32, 48), atol=1e-5)
    assert cond[:, 2].min() >= 0 and cond[:, 2].max() <= 1
    assert torch.allclose(cond[:, 2:], (video.magnitude / mag_norm).clamp(max=1.0))
    assert 0.3 < float((cond[:, 2] == 1).float().mean()) < 0.7
    unit = video.flow / video.flow.norm(dim=1, keepdim=True)
    assert torch.allclose(cond[:, :2], unit, atol=1e-5)
    still = make_video("astronaut", num_frames=2, size=(16, 16), speed_px_s=0.0, **TRANSLATION)
    fallback = still.condition(10.0)
    assert torch.equal(fallback[:, 0], torch.ones(2, 16, 16))
    assert torch.equal(fallback[:, 1:], torch.zeros(2, 2, 16, 16))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="mag_norm"):
            video.condition(bad)


def test_image_inputs_are_equivalent():
    photo = load_photo("chelsea")
    assert photo.shape == (3, 300, 451) and photo.dtype == torch.float32
    as_uint8 = (photo.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    as_float = as_uint8.astype(np.float32) / 255.0
    kwargs = dict(num_frames=2, size=(32, 40), seed=0)
    by_name = make_video("chelsea", **kwargs)
    for image in (as_uint8, as_float, torch.from_numpy(as_float).permute(2, 0, 1)):
        assert torch.equal(make_video(image, **kwargs).blurry, by_name.blurry)
    gray = as_uint8[..., 0]
    video = make_video(gray, **kwargs)
    assert torch.equal(video.sharp[:, 0], video.sharp[:, 1])


def test_photo_lists():
    assert set(TRAIN_PHOTOS).isdisjoint(HELDOUT_PHOTOS)
    assert set(PHOTOS) == set(TRAIN_PHOTOS) | set(HELDOUT_PHOTOS)
    assert {"astronaut", "coffee", "chelsea"} <= set(HELDOUT_PHOTOS)
    assert len(TRAIN_PHOTOS) >= 10
    for name in PHOTOS:
        photo = load_photo(name)
        assert photo.ndim == 3 and photo.shape[0] == 3 and min(photo.shape[1:]) >= 100
        assert photo.dtype == torch.float32 and 0 <= photo.min() and photo.max() <= 1
        assert float(photo.std()) > 0.02, name  # real content, not a flat image


def test_overrides_and_params():
    video = make_video("astronaut", num_frames=1, size=(16, 16), exposure_ms=10.0, gamma=2.0)
    assert video.params.exposure_ms == 10.0 and video.params.gamma == 2.0
    assert video.params.frame_interval_ms == PRESETS["gopro"].frame_interval_ms
    assert video.motion.shape == (0, 2, 16, 16)
    custom = SynthParams(frame_interval_ms=40.0, exposure_ms=20.0, speed_px_s=100.0)
    assert make_video("astronaut", preset=custom, num_frames=2, size=(16, 16)).params == custom
    assert isinstance(video, SyntheticVideo)
    with pytest.raises(ValueError):  # frozen
        PRESETS["gopro"].gamma = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(num_frames=0), "num_frames must be >= 1"),
        (dict(num_frames=2.5), "num_frames must be an int"),
        (dict(size=(0, 16)), "size must be positive"),
        (dict(size=(16,)), "size must be a pair"),
        (dict(seed=-1), "seed must be a non-negative int"),
        (dict(preset="bsd"), "unknown preset 'bsd'"),
        (dict(speed=3.0), "unknown SynthParams override.*'speed'"),
        (dict(exposure_ms=50.0), "exposure_ms .* must be <= frame_interval_ms"),
        (dict(noise_std=-0.1), "noise_std"),
        (dict(interpolation="nearest"), "interpolation"),
        (dict(pause_min_ms=90.0, pause_max_ms=50.0), "pause_max_ms .* must be >= pause_min_ms"),
        (dict(pause_prob=1.5), "pause_prob"),
        (dict(pause_where="middle"), "pause_where"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = dict(num_frames=2, size=(16, 16))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_video("astronaut", **args)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        ("no-such-photo", "unknown photo 'no-such-photo'"),
        (np.zeros((4, 32, 32, 3), np.uint8), r"must be \(H, W\), \(H, W, 1\) or \(H, W, 3\)"),
        (np.zeros((32, 32, 4), np.uint8), r"must be \(H, W\), \(H, W, 1\) or \(H, W, 3\)"),
        (np.zeros((32, 32, 3), np.int32), "must be uint8 or float"),
        (np.full((32, 32, 3), 2.0, np.float32), r"must be in \[0, 1\]"),
        (np.full((32, 32, 3), np.nan, np.float32), "NaN or inf"),
        (np.zeros((4, 32, 3), np.uint8), "each side must be >= 8 px"),
        (torch.zeros(32, 32, 3), r"tensor must be \(3, H, W\)"),
        (torch.zeros(3, 32, 32, dtype=torch.int64), "tensor must be float"),
        ([[0.0]], "expected a photo name"),
    ],
)
def test_bad_images_raise(image, match):
    with pytest.raises(ValueError, match=match):
        make_video(image, num_frames=1, size=(16, 16))


def test_an_infinite_speed_or_a_huge_seed_is_refused_with_a_clear_message():
    from pydantic import ValidationError

    from ttblur.synth import make_video

    with pytest.raises(ValidationError, match="finite number"):
        make_video("coffee", "gopro", num_frames=3, size=(32, 48), speed_px_s=float("inf"))
    with pytest.raises(ValueError, match=r"seed must be a non-negative int below 2\*\*63"):
        make_video("coffee", "gopro", num_frames=3, size=(32, 48), seed=2**64)


def test_subframe_counts_stay_odd_and_inside_the_limits():
    from ttblur._scene import subframe_count

    # Still motion: the lower limit, rounded up to odd; an even upper limit caps at hi - 1.
    assert subframe_count(0.0, 0.5, 4, 6) == 5
    assert subframe_count(0.0, 0.5, 4, 5) == 5
    assert subframe_count(100.0, 0.5, 3, 4) == 3
    assert subframe_count(100.0, 0.5, 5, 301) == 201
    assert subframe_count(2.2, 0.5, 1, 301) == 5
    for lo, hi in [(1, 1), (3, 3), (2, 3), (4, 9), (6, 8)]:
        for path in (0.0, 1.0, 3.3, 1000.0):
            n = subframe_count(path, 0.5, lo, hi)
            assert n % 2 == 1 and lo <= n <= hi
    video = make_video(
        "moon", num_frames=3, size=(32, 32), seed=0, min_subframes=4, max_subframes=6
    )
    assert all(n == 5 for n in video.num_subframes)


@pytest.mark.parametrize("limit", [2, 4])
def test_even_equal_subframe_limits_are_refused(limit):
    with pytest.raises(ValueError, match="admits no odd sub-frame count"):
        make_video("moon", num_frames=2, size=(16, 16), min_subframes=limit, max_subframes=limit)
