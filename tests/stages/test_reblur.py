import math

import pytest
import torch

from ttblur.config import SynthesisConfig
from ttblur.protocols import BlurSynthesizer
from ttblur.stages.idblau import IDBlau
from ttblur.stages.reblur import (
    MAX_AUTO_TAPS,
    PhysicalReblur,
    auto_taps,
    estimate_noise_std,
    match_noise,
    motion_blur,
    validate_synthesis_inputs,
    video_noise_std,
)
from ttblur.stages.synthesis import build_synthesizer
from ttblur.types import pixel_condition

MAG_NORM = 147.0


def uniform_condition(n, h, w, x, y, length_px):
    cond = torch.empty(n, 3, h, w)
    cond[:, 0] = x
    cond[:, 1] = y
    cond[:, 2] = length_px
    return cond


def test_zero_magnitude_is_exact_identity():
    torch.manual_seed(0)
    sharp = torch.rand(2, 3, 17, 23)
    cond = uniform_condition(2, 17, 23, 0.6, 0.8, 0.0)
    assert torch.equal(motion_blur(sharp, cond), sharp)
    assert torch.equal(PhysicalReblur()(sharp, cond), sharp)


def test_pixels_with_zero_length_stay_exact_in_a_mixed_map():
    torch.manual_seed(1)
    sharp = torch.rand(1, 3, 16, 16)
    cond = uniform_condition(1, 16, 16, 1.0, 0.0, 6.0)
    cond[:, 2, :, :8] = 0.0
    out = motion_blur(sharp, cond)
    assert torch.equal(out[..., :8], sharp[..., :8])
    assert (out[..., 9:] - sharp[..., 9:]).abs().mean() > 0.05


def edge_expectation(a_lin, b_lin, x, edge, length):
    """Continuous average over [x - L/2, x + L/2] of the bilinear ramp between column
    edge - 1 (value a) and column edge (value b)."""
    lo, hi = x - length / 2, x + length / 2
    steps = 20000
    total = 0.0
    for i in range(steps):
        u = lo + (i + 0.5) * (hi - lo) / steps
        frac = min(max(u - (edge - 1), 0.0), 1.0)
        total += a_lin * (1 - frac) + b_lin * frac
    return total / steps


def test_horizontal_blur_spreads_a_vertical_edge_in_linear_light():
    h, w, edge, length = 8, 40, 20, 10.0
    a, b = 0.2, 0.9
    sharp = torch.full((1, 3, h, w), a)
    sharp[..., edge:] = b
    cond = uniform_condition(1, h, w, 1.0, 0.0, length)
    out = motion_blur(sharp, cond, gamma=2.2)
    row = out[0, 0, 4]
    for x in (edge - 4, edge - 1, edge, edge + 2, edge + 4):
        expected = edge_expectation(a**2.2, b**2.2, x, edge, length) ** (1 / 2.2)
        assert row[x].item() == pytest.approx(expected, abs=3e-3)
    # a 10 px segment does not reach pixels 6 px or more from the ramp
    assert torch.allclose(row[: edge - 7], torch.tensor(a), atol=1e-5)
    assert torch.allclose(row[edge + 6 :], torch.tensor(b), atol=1e-5)
    # linear light: the pixel centred between the plateaus is brighter than the display mean
    mid = edge_expectation(a**2.2, b**2.2, edge - 0.5, edge, length) ** (1 / 2.2)
    assert mid > (a + b) / 2 + 0.05


def test_horizontal_blur_leaves_a_horizontal_edge_unchanged():
    sharp = torch.full((1, 3, 30, 30), 0.1)
    sharp[..., 15:, :] = 0.8
    cond = uniform_condition(1, 30, 30, -1.0, 0.0, 12.0)
    out = motion_blur(sharp, cond)
    assert (out - sharp).abs().max().item() < 1e-5


def test_blur_of_a_dot_lies_along_the_condition_direction():
    size = 65
    sharp = torch.zeros(1, 3, size, size)
    sharp[..., 32, 32] = 1.0
    angle = math.radians(30.0)
    cond = uniform_condition(1, size, size, math.cos(angle), math.sin(angle), 24.0)
    out = motion_blur(sharp, cond, gamma=1.0)[0, 0]
    # gamma 1: the blur only redistributes the dot's energy
    assert out.sum().item() == pytest.approx(1.0, rel=1e-3)
    coords = torch.arange(float(size))
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    weight = out / out.sum()
    mx, my = (weight * xs).sum(), (weight * ys).sum()
    assert (mx.item(), my.item()) == pytest.approx((32.0, 32.0), abs=0.05)
    cxx = (weight * (xs - mx) ** 2).sum()
    cyy = (weight * (ys - my) ** 2).sum()
    cxy = (weight * (xs - mx) * (ys - my)).sum()
    principal = 0.5 * math.atan2(2 * cxy.item(), (cxx - cyy).item())
    assert math.degrees(principal) == pytest.approx(30.0, abs=1.0)
    # a uniform segment of length L has variance L^2 / 12 along it (+ bilinear spread)
    along = cxx + cyy
    assert along.item() == pytest.approx(24.0**2 / 12, rel=0.05)


def test_condition_vector_sign_does_not_matter_and_directions_are_renormalised():
    torch.manual_seed(2)
    sharp = torch.rand(1, 3, 24, 24)
    cond = uniform_condition(1, 24, 24, 0.6, 0.8, 9.0)
    flipped = cond.clone()
    flipped[:, :2] *= -1
    shorter = cond.clone()
    shorter[:, :2] *= 0.5
    ref = motion_blur(sharp, cond)
    assert torch.allclose(motion_blur(sharp, flipped), ref, atol=1e-5)
    assert torch.allclose(motion_blur(sharp, shorter), ref, atol=1e-6)


def test_float32_blur_matches_float64_for_per_pixel_directions_of_any_length():
    gen = torch.Generator().manual_seed(12)
    sharp = torch.rand(2, 3, 20, 28, generator=gen)
    cond = torch.rand(2, 3, 20, 28, generator=gen)
    cond[:, :2] = cond[:, :2] * 2 - 1  # directions of lengths 0 .. 1.41, renormalised
    cond[:, :2].clamp_(-1, 1)
    cond[:, 2] *= 12.0
    cond[0, :2, :4] = 0.0  # no direction: no blur there
    out32 = motion_blur(sharp, cond)
    out64 = motion_blur(sharp.double(), cond.double())
    assert torch.allclose(out32.double(), out64, atol=2e-5)
    assert torch.equal(out32[0, :, :4], sharp[0, :, :4])


def test_mag_norm_is_deprecated_and_ignored():
    torch.manual_seed(3)
    sharp = torch.rand(1, 3, 20, 20)
    cond = uniform_condition(1, 20, 20, 1.0, 0.0, 8.0)
    # the functional form reads a normalised z the old way when given mag_norm
    normalised = cond.clone()
    normalised[:, 2] = 8.0 / 100.0
    with pytest.warns(DeprecationWarning, match="mag_norm"):
        legacy = motion_blur(sharp, normalised, 100.0)
    assert torch.allclose(legacy, motion_blur(sharp, cond), atol=1e-6)
    with pytest.raises(ValueError, match="mag_norm"), pytest.warns(DeprecationWarning):
        motion_blur(sharp, normalised, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"), pytest.warns(DeprecationWarning):
        motion_blur(sharp, cond, 100.0)  # z = 8 is no normalised value
    # a stage object is fed pixel conditions by the pipeline: it ignores mag_norm
    with pytest.warns(DeprecationWarning, match="mag_norm"):
        reblur = PhysicalReblur(MAG_NORM)
    assert torch.equal(reblur(sharp, cond), motion_blur(sharp, cond))


def test_blur_longer_than_147_px_is_not_capped():
    # z is the length in px: the old normalised scale capped blur at mag_norm = 147 px.
    sharp = torch.zeros(1, 3, 1, 401)
    sharp[..., 200] = 1.0
    cond = uniform_condition(1, 1, 401, 1.0, 0.0, 200.0)
    out = motion_blur(sharp, cond, gamma=1.0)[0, 0, 0]
    spread = int((out > 1e-6).sum())
    assert 190 <= spread <= 210, spread


def test_auto_taps():
    assert auto_taps(0.0) == 2
    assert auto_taps(10.0) == 21
    assert auto_taps(147.0) == 295
    assert auto_taps(1000.0) == MAX_AUTO_TAPS
    with pytest.raises(ValueError, match="max_length"):
        auto_taps(-1.0)


def test_explicit_taps_converge_to_auto():
    torch.manual_seed(4)
    sharp = torch.rand(1, 3, 32, 32)
    cond = uniform_condition(1, 32, 32, 0.8, -0.6, 14.0)
    auto = motion_blur(sharp, cond)
    coarse = motion_blur(sharp, cond, taps=3)
    fine = motion_blur(sharp, cond, taps=57)
    assert (fine - auto).abs().mean() < 0.3 * (coarse - auto).abs().mean()


def test_gradcheck_with_respect_to_sharp():
    torch.manual_seed(5)
    sharp = (0.1 + 0.8 * torch.rand(1, 3, 5, 6, dtype=torch.float64)).requires_grad_()
    cond = torch.zeros(1, 3, 5, 6, dtype=torch.float64)
    cond[:, 0], cond[:, 1] = 0.6, 0.8
    cond[:, 2] = torch.linspace(0.01, 0.03, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda s: motion_blur(s, cond, taps=4), (sharp,), eps=1e-6, atol=1e-5
    )


def test_gradient_with_respect_to_condition_is_finite_and_nonzero():
    torch.manual_seed(6)
    sharp = torch.rand(2, 3, 16, 16)
    cond = uniform_condition(2, 16, 16, 0.6, 0.8, 7.0).requires_grad_()
    motion_blur(sharp, cond).square().sum().backward()
    assert cond.grad is not None
    assert torch.isfinite(cond.grad).all()
    assert cond.grad[:, 2].abs().sum() > 0
    assert cond.grad[:, :2].abs().sum() > 0


def test_batch_is_processed_like_single_images():
    torch.manual_seed(7)
    sharp = torch.rand(5, 3, 12, 14)
    cond = uniform_condition(5, 12, 14, 1.0, 0.0, 5.0)
    cond[:, 2] *= torch.linspace(0.2, 1.0, 5).view(5, 1, 1)
    reblur = PhysicalReblur(taps=15, batch_size=2)
    batched = reblur(sharp, cond)
    singles = torch.cat([motion_blur(s[None], c[None], taps=15) for s, c in zip(sharp, cond)])
    assert torch.allclose(batched, singles, atol=1e-6)


def test_sensor_noise_is_seeded_and_has_the_requested_std():
    sharp = torch.full((2, 3, 64, 64), 0.5)
    cond = uniform_condition(2, 64, 64, 1.0, 0.0, 4.0)
    a = PhysicalReblur(noise_std=0.02, seed=11)(sharp, cond)
    b = PhysicalReblur(noise_std=0.02, seed=11)(sharp, cond)
    c = PhysicalReblur(noise_std=0.02, seed=12)(sharp, cond)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a - 0.5).std().item() == pytest.approx(0.02, rel=0.05)
    gen = torch.Generator().manual_seed(3)
    d = PhysicalReblur(noise_std=0.02)(sharp, cond, generator=gen)
    e = PhysicalReblur(noise_std=0.02)(sharp, cond, generator=torch.Generator().manual_seed(3))
    assert torch.equal(d, e)


def test_output_keeps_dtype_and_range():
    torch.manual_seed(8)
    sharp = torch.rand(1, 3, 10, 10, dtype=torch.float64)
    cond = uniform_condition(1, 10, 10, 0.0, 1.0, 30.0).double()
    out = motion_blur(sharp, cond)
    assert out.dtype == torch.float64
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    ("sharp", "cond", "match"),
    [
        (torch.rand(3, 8, 8), torch.zeros(1, 3, 8, 8), "sharp must be"),
        (torch.rand(1, 4, 8, 8), torch.zeros(1, 3, 8, 8), "sharp must be"),
        (torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 8), "condition must be"),
        (torch.rand(1, 3, 8, 8), torch.zeros(2, 3, 8, 8), "must match"),
        (torch.rand(1, 3, 8, 8), torch.zeros(1, 3, 8, 9), "must match"),
        (torch.rand(1, 3, 8, 8) * 2, torch.zeros(1, 3, 8, 8), r"\[0, 1\]"),
        (torch.full((1, 3, 8, 8), float("nan")), torch.zeros(1, 3, 8, 8), "NaN"),
        (torch.rand(1, 3, 8, 8), torch.full((1, 3, 8, 8), float("inf")), "NaN or inf"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 3, 8, 8), "floating"),
    ],
)
def test_invalid_inputs_raise(sharp, cond, match):
    with pytest.raises(ValueError, match=match):
        motion_blur(sharp, cond)


def test_condition_ranges_are_checked():
    sharp = torch.rand(1, 3, 8, 8)
    cond = uniform_condition(1, 8, 8, 1.0, 0.0, 5.0)
    cond[0, 2, 0, 0] = -0.5
    with pytest.raises(ValueError, match="channel z"):
        validate_synthesis_inputs(sharp, cond)
    cond = uniform_condition(1, 8, 8, 2.0, 0.0, 5.0)
    with pytest.raises(ValueError, match="x, y"):
        validate_synthesis_inputs(sharp, cond)
    with pytest.raises(ValueError, match="taps"):
        motion_blur(sharp, uniform_condition(1, 8, 8, 1.0, 0.0, 5.0), taps=1)
    with pytest.raises(ValueError, match="noise_std"):
        PhysicalReblur(noise_std=-1.0)


def test_from_config_and_factory():
    section = SynthesisConfig(name="physical", gamma=2.0, taps=9, noise_std=0.01, batch_size=3)
    reblur = PhysicalReblur.from_config(section, seed=5)
    assert (reblur.gamma, reblur.taps, reblur.noise_std) == (2.0, 9, 0.01)
    assert reblur.batch_size == 3
    built = build_synthesizer(section, seed=5)
    assert isinstance(built, PhysicalReblur)
    assert isinstance(built, BlurSynthesizer)
    sharp = torch.rand(2, 3, 8, 8)
    cond = uniform_condition(2, 8, 8, 1.0, 0.0, 3.0)
    assert torch.equal(built(sharp, cond), reblur(sharp, cond))


def test_factory_refuses_idblau_without_weights():
    with pytest.raises(FileNotFoundError, match=r"python -m ttblur\.training\.idblau"):
        build_synthesizer(SynthesisConfig(name="idblau"))


def test_factory_builds_idblau_from_a_weights_folder(tmp_path):
    from ttblur.nets.idblau_unet import IDBlauConfig, IDBlauUNet

    IDBlauUNet(IDBlauConfig.small()).save_pretrained(tmp_path / "w")
    section = SynthesisConfig(name="idblau", weights=str(tmp_path / "w"), num_steps=3, eta=0.5)
    built = build_synthesizer(section)
    assert isinstance(built, IDBlau)
    assert (built.sampler.num_steps, built.sampler.eta) == (3, 0.5)


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU visible to torch (torch.cuda.is_available() is False here)",
)
def test_cpu_and_cuda_agree():
    torch.manual_seed(9)
    sharp = torch.rand(2, 3, 32, 32)
    cond = uniform_condition(2, 32, 32, 0.6, 0.8, 11.0)
    cpu = motion_blur(sharp, cond)
    gpu = motion_blur(sharp.cuda(), cond.cuda()).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4)


def cropped_psnr(a, b, border):
    """Per-image PSNR (data range 1) after removing ``border`` px on every side."""
    a = a[..., border:-border, border:-border]
    b = b[..., border:-border, border:-border]
    return 10 * torch.log10(1.0 / ((a - b) ** 2).mean(dim=(1, 2, 3)))


def test_agrees_with_synthetic_blur_for_translation():
    """Re-blurring a synthetic sharp frame with its ground-truth condition reproduces the
    synthetic blurry frame (the synthesizer and ttblur.synth share one blur model)."""
    synth = pytest.importorskip("ttblur.synth")
    still = {"rotation_std": 0.0, "zoom_std": 0.0, "noise_std": 0.0}
    # hand shake (curved strokes, varying speed), translation only
    video = synth.make_video("astronaut", "gopro", num_frames=4, size=(96, 128), seed=0, **still)
    out = PhysicalReblur(gamma=video.params.gamma)(
        video.sharp, pixel_condition(video.condition(MAG_NORM), MAG_NORM)
    )
    value = cropped_psnr(out, video.blurry, 12)
    assert value.min().item() >= 30.0  # measured 34.1-42.7 dB
    # straight constant-speed motion, 15 px per exposure at 30 degrees
    straight = {"speed_px_s": 600.0, "speed_variation": 0.0, "direction_spread_deg": 0.0}
    video = synth.make_video(
        "camera",
        "gopro",
        num_frames=3,
        size=(96, 128),
        seed=1,
        direction_deg=30.0,
        **still,
        **straight,
    )
    assert video.magnitude.amin().item() > 10.0
    out = PhysicalReblur(gamma=video.params.gamma)(
        video.sharp, pixel_condition(video.condition(MAG_NORM), MAG_NORM)
    )
    value = cropped_psnr(out, video.blurry, 12)
    baseline = cropped_psnr(video.sharp, video.blurry, 12)
    assert value.min().item() >= 40.0  # measured 45-52 dB
    assert (value > baseline + 20.0).all()  # the blur itself costs ~18-20 dB


def _smooth_image(n: int = 2, size: int = 96) -> torch.Tensor:
    """Smooth random images in [0.2, 0.8] (content the noise estimator must ignore)."""
    coarse = torch.rand(n, 3, 6, 6, generator=torch.Generator().manual_seed(4))
    image = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic")
    return (0.2 + 0.6 * image).clamp(0.0, 1.0)


def test_noise_estimate_is_the_median_second_difference_response():
    gen = torch.Generator().manual_seed(3)
    images = (torch.rand(3, 3, 17, 23, generator=gen) * 255).round() / 255
    images = (images + 0.02 * torch.randn(images.shape, generator=gen)).clamp(0, 1)
    kernel = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
    response = torch.nn.functional.conv2d(
        images.double().reshape(9, 1, 17, 23), kernel.double().view(1, 1, 3, 3)
    )
    expected = response.abs().reshape(3, -1).median(dim=1).values * 1.4826 / 6.0
    got = estimate_noise_std(images, per_image=True)
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), expected, rtol=0, atol=1e-6)


def test_noise_estimate_recovers_the_noise_level_without_a_reference():
    clean = _smooth_image()
    assert float(estimate_noise_std(clean)) < 0.002
    gen = torch.Generator().manual_seed(0)
    for std in (0.01, 0.03):
        noisy = clean + std * torch.randn(clean.shape, generator=gen)
        assert float(estimate_noise_std(noisy)) == pytest.approx(std, rel=0.05)
    per_image = estimate_noise_std(noisy, per_image=True)
    assert per_image.shape == (2,)
    assert torch.allclose(per_image, torch.full((2,), 0.03), rtol=0.05)
    with pytest.raises(ValueError, match="H, W >= 3"):
        estimate_noise_std(torch.rand(1, 3, 2, 9))


def test_match_noise_tops_up_to_the_target_level():
    clean = _smooth_image()
    gen = torch.Generator().manual_seed(1)
    quiet = clean + 0.01 * torch.randn(clean.shape, generator=gen)
    topped = match_noise(quiet, 0.03, generator=torch.Generator().manual_seed(2))
    assert float(estimate_noise_std(topped)) == pytest.approx(0.03, rel=0.05)
    # Zero-mean: the brightness is unchanged (away from the clipping bounds).
    assert float((topped - quiet).mean()) == pytest.approx(0.0, abs=1e-3)
    # Reproducible with a seeded generator; images already noisier are left as they are.
    again = match_noise(quiet, 0.03, generator=torch.Generator().manual_seed(2))
    assert torch.equal(topped, again)
    assert torch.equal(match_noise(topped, 0.005), topped.clamp(0.0, 1.0))
    with pytest.raises(ValueError, match="target_std"):
        match_noise(quiet, -0.1)


def _quiet_images(n: int) -> torch.Tensor:
    clean = _smooth_image(n, 48)
    gen = torch.Generator().manual_seed(1)
    return (clean + 0.01 * torch.randn(clean.shape, generator=gen)).clamp(0.0, 1.0)


def test_match_noise_in_batches_tops_up_each_image_and_is_seeded():
    quiet = _quiet_images(10)
    whole = match_noise(quiet, 0.03, generator=torch.Generator().manual_seed(2))
    # One batch holding every image, or the images' own device named: the same draws.
    for kwargs in ({"batch_size": 10}, {"batch_size": 64}, {"device": "cpu"}):
        again = match_noise(quiet, 0.03, generator=torch.Generator().manual_seed(2), **kwargs)
        assert torch.equal(again, whole), kwargs
    batched = match_noise(
        quiet, 0.03, generator=torch.Generator().manual_seed(2), device="cpu", batch_size=3
    )
    assert batched.shape == quiet.shape and batched.dtype == quiet.dtype
    levels = estimate_noise_std(batched, per_image=True)
    assert torch.allclose(levels, torch.full((10,), 0.03), rtol=0.08)
    repeat = match_noise(quiet, 0.03, generator=torch.Generator().manual_seed(2), batch_size=3)
    assert torch.equal(repeat, batched)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            match_noise(quiet, 0.03, batch_size=bad)


def test_video_noise_std_on_a_named_device_equals_where_the_frames_are():
    frames = _quiet_images(12)
    assert video_noise_std(frames, device="cpu") == video_noise_std(frames)
    assert video_noise_std(frames) == pytest.approx(0.01, rel=0.15)


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU visible to torch (torch.cuda.is_available() is False here)",
)
def test_match_noise_tops_up_host_images_on_cuda_in_batches() -> None:
    quiet = _quiet_images(10)
    topped = match_noise(
        quiet, 0.03, generator=torch.Generator().manual_seed(2), device="cuda", batch_size=3
    )
    assert topped.device == quiet.device and topped.shape == quiet.shape
    levels = estimate_noise_std(topped, per_image=True)
    assert torch.allclose(levels, torch.full((10,), 0.03), rtol=0.08)
    again = match_noise(
        quiet, 0.03, generator=torch.Generator().manual_seed(2), device="cuda", batch_size=3
    )
    assert torch.equal(topped, again)
    host = video_noise_std(quiet)
    assert video_noise_std(quiet, device="cuda") == pytest.approx(host, rel=1e-5)


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU visible to torch (torch.cuda.is_available() is False here)",
)
def test_match_noise_draws_on_the_cuda_device() -> None:
    clean = _smooth_image().cuda()
    quiet = (clean + 0.01 * torch.randn_like(clean)).clamp(0.0, 1.0)
    topped = match_noise(quiet, 0.03, generator=torch.Generator().manual_seed(2))
    assert topped.device == quiet.device
    assert float(estimate_noise_std(topped)) == pytest.approx(0.03, rel=0.05)
    again = match_noise(quiet, 0.03, generator=torch.Generator().manual_seed(2))
    assert torch.equal(topped, again)
