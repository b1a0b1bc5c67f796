import numpy as np
import pytest
import torch

from ttblur.config import RSDMConfig
from ttblur.nets.bme import BlurMagnitudeEstimator, BMEConfig
from ttblur.protocols import PatchLocation, SharpnessDetector
from ttblur.stages.rsdm import (
    RandomPatchSelector,
    RelativeSharpnessDetector,
    candidate_grid,
    estimate_magnitude,
    select_relatively_sharp,
)


def _zero_bme(frames: torch.Tensor) -> torch.Tensor:
    return torch.zeros(frames.shape[0], 1, *frames.shape[2:])


def _per_frame(values, height=64, width=96) -> torch.Tensor:
    """Magnitude maps constant per frame: ``values[t]`` px everywhere in frame t."""
    v = torch.as_tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)
    return v.expand(-1, 1, height, width).contiguous()


def test_candidate_grid_layout():
    grid = candidate_grid(10, 100, 300, patch_size=64, border_frames=2)
    assert grid.frames == tuple(range(2, 8))
    assert grid.tops == (0, 32, 36)  # last row flush with the bottom border
    assert grid.lefts == (0, 32, 64, 96, 128, 160, 192, 224, 236)
    assert len(grid) == 6 * 3 * 9 and grid.per_frame == 27
    assert grid.location(0) == PatchLocation(2, 0, 0, 64)
    assert grid.location(len(grid) - 1) == PatchLocation(7, 36, 236, 64)
    assert grid.target_count(0.2) == round(0.2 * 162)
    exact = candidate_grid(5, 64, 64, patch_size=64, border_frames=2)
    assert len(exact) == 1 and exact.target_count(0.2) == 1


def test_candidate_grid_errors_name_sizes():
    with pytest.raises(ValueError, match=r"4 frames.*at least 5"):
        candidate_grid(4, 64, 64, patch_size=32, border_frames=2)
    with pytest.raises(ValueError, match=r"60x200 px.*64x64 patch"):
        candidate_grid(8, 60, 200, patch_size=64)
    with pytest.raises(ValueError, match="stride"):
        candidate_grid(8, 64, 64, patch_size=32, stride=0)


def test_detector_protocol_and_video_errors():
    det = RelativeSharpnessDetector(bme=_zero_bme, patch_size=32)
    assert isinstance(det, SharpnessDetector)
    assert isinstance(RandomPatchSelector(bme=_zero_bme, patch_size=32), SharpnessDetector)
    with pytest.raises(ValueError, match=r"16x40 px are smaller than the 32x32"):
        det.select(torch.rand(8, 3, 16, 40))
    with pytest.raises(ValueError, match=r"4 frames"):
        det.select(torch.rand(4, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\)"):
        det.select(torch.rand(8, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        det.select(torch.rand(8, 3, 32, 32) * 3)
    with pytest.raises(ValueError, match="must be >= 0 px"):
        det.select(torch.rand(8, 3, 32, 32), magnitude=-torch.ones(8, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(T, 1, H, W\)"):
        det.select(torch.rand(8, 3, 32, 32), magnitude=torch.ones(8, 1, 32, 31))


def test_bad_magnitude_callable_is_reported():
    det = RelativeSharpnessDetector(bme=lambda f: f[:, :2], patch_size=16)
    with pytest.raises(ValueError, match=r"must return \(N, 1, H, W\)"):
        det.select(torch.rand(6, 3, 16, 16))


def test_sharpest_frames_are_chosen_with_injected_magnitudes():
    # 12 frames, the sharpest ones (1 px) are frames 4 and 9; others 5..20 px
    values = [20, 18, 16, 14, 1, 12, 10, 9, 8, 1, 6, 5]
    magnitude = _per_frame(values, 64, 64)
    det = RelativeSharpnessDetector(bme=_zero_bme, patch_size=32, ratio=0.25)
    sel = det.select(torch.rand(12, 3, 64, 64), magnitude=magnitude)
    grid = candidate_grid(12, 64, 64, patch_size=32)
    assert sel.candidates == len(grid) == 8 * 9
    assert sel.info["target"] == 18
    assert {p.frame for p in sel.patches} == {4, 9}  # exactly the two sharp frames
    assert len(sel) == 18 and sel.info["converged"] == 1.0
    assert 1.0 < sel.threshold <= 6.0
    assert sel.magnitude.shape == (12, 1, 64, 64)
    assert torch.equal(sel.magnitude, magnitude)


def test_sharp_region_gets_a_patch_placed_over_it():
    # blurred frames with one sharp square region off the candidate grid in frame 3
    magnitude = torch.full((9, 1, 80, 120), 30.0)
    magnitude[3, 0, 13 : 13 + 32, 57 : 57 + 32] = 2.0
    magnitude[5, 0, 40:80, 0:40] = 4.0  # a second, slightly less sharp region (4 patches)
    magnitude[7, 0] = 0.0  # a border frame is never chosen
    sel = select_relatively_sharp(
        magnitude, patch_size=32, ratio=0.015, border_frames=2, tolerance=0.001
    )
    assert sel.candidates == 5 * 4 * 7
    assert sel.info["target"] == 2 and len(sel) == 2
    assert sel.patches[0] == PatchLocation(3, 13, 57, 32)  # centred on the region, sharpest
    assert sel.patches[1].frame == 5
    box = sel.patches[1]
    assert float(magnitude[5, 0, box.top : box.bottom, box.left : box.right].max()) == 4.0


def test_patches_are_clamped_inside_the_frame():
    magnitude = torch.full((5, 1, 64, 64), 20.0)
    magnitude[2, 0, 50:64, 50:64] = 0.0  # sharp corner smaller than a patch
    magnitude[2, 0, 32:64, 32:64] = 0.0
    sel = select_relatively_sharp(magnitude, patch_size=32, ratio=0.1, border_frames=2)
    assert sel.patches[0] == PatchLocation(2, 32, 32, 32)
    for p in sel.patches:
        assert p.bottom <= 64 and p.right <= 64


@pytest.mark.parametrize(
    "magnitude",
    [
        torch.full((9, 1, 64, 96), 7.5),  # constant
        torch.zeros(9, 1, 64, 96),  # all sharp
        torch.full((9, 1, 64, 96), 205.0),  # all heavily blurred
        torch.full((9, 1, 64, 96), 1e-7),  # tiny constant
    ],
    ids=["constant", "all-sharp", "all-blurred", "tiny"],
)
def test_threshold_search_terminates_on_degenerate_videos(magnitude):
    sel = select_relatively_sharp(magnitude, patch_size=32, ratio=0.2, max_iterations=30)
    target = int(sel.info["target"])
    assert target == round(0.2 * sel.candidates)
    assert len(sel) == target  # fallback: the sharpest-ranked candidates
    assert sel.info["iterations"] <= 30
    assert sel.info["converged"] == 0.0
    # deterministic tie break: frame, then row, then column
    keys = [(p.frame, p.top, p.left) for p in sel.patches]
    assert keys == sorted(keys)


def test_search_respects_iteration_cap_on_noise():
    torch.manual_seed(0)
    magnitude = torch.rand(8, 1, 64, 64) * 50  # pixel noise: sharp regions never fill a patch
    sel = select_relatively_sharp(magnitude, patch_size=32, ratio=0.2, max_iterations=7)
    assert sel.info["iterations"] <= 7
    assert len(sel) == sel.info["target"]


def test_selection_is_deterministic_and_respects_borders():
    torch.manual_seed(1)
    coarse = torch.rand(10, 1, 4, 6) * 40
    magnitude = torch.nn.functional.interpolate(coarse, size=(96, 128), mode="bilinear")
    a = select_relatively_sharp(magnitude, patch_size=32)
    b = select_relatively_sharp(magnitude.clone(), patch_size=32)
    assert a.patches == b.patches and a.threshold == b.threshold
    assert all(2 <= p.frame <= 7 for p in a.patches)
    assert abs(len(a) - a.info["target"]) <= 0.02 * a.candidates + 1e-9
    assert len(a) <= a.info["target"]
    # sharpest first
    means = [float(p.crop(magnitude[p.frame]).mean()) for p in a.patches]
    assert means == sorted(means)
    assert a.info["mean_magnitude_kept"] < a.info["mean_magnitude_candidates"]


def test_max_patches_keeps_the_sharpest():
    magnitude = _per_frame([9, 9, 1, 2, 3, 4, 9, 9], 32, 64)
    det = RelativeSharpnessDetector(bme=_zero_bme, patch_size=32, ratio=0.5, max_patches=2)
    sel = det.select(torch.rand(8, 3, 32, 64), magnitude=magnitude)
    assert len(sel) == 2 and all(p.frame == 2 for p in sel.patches)


def test_random_selector_caps_with_a_random_subset_not_the_first_frames():
    video, magnitude = torch.rand(20, 3, 32, 48), torch.rand(20, 1, 32, 48)
    full = RandomPatchSelector(bme=_zero_bme, patch_size=16, seed=1).select(video, magnitude)
    capped = RandomPatchSelector(bme=_zero_bme, patch_size=16, max_patches=5, seed=1)
    sel = capped.select(video, magnitude)
    assert len(sel) == 5 and set(sel.patches) <= set(full.patches)
    frames = [p.frame for p in sel.patches]
    assert frames == sorted(frames) and max(frames) - min(frames) >= 5  # was [2, 2, 2, 2, 3]


def test_estimate_magnitude_batches_and_bounds_memory():
    calls = []

    def fake(frames):
        calls.append(frames.shape[0])
        return frames.mean(dim=1, keepdim=True) * 10

    video = torch.rand(7, 3, 16, 24)
    out = estimate_magnitude(fake, video, batch_size=3)
    assert calls == [3, 3, 1]
    assert out.shape == (7, 1, 16, 24) and out.dtype == torch.float32
    assert torch.allclose(out, video.mean(dim=1, keepdim=True) * 10)
    with pytest.raises(ValueError, match="batch_size"):
        estimate_magnitude(fake, video, batch_size=0)


def test_estimate_magnitude_with_a_network_matches_predict():
    torch.manual_seed(0)
    bme = BlurMagnitudeEstimator(BMEConfig()).eval()
    video = torch.rand(5, 3, 40, 40)
    out = estimate_magnitude(bme, video, batch_size=2)
    assert torch.allclose(out, bme.predict(video, batch_size=5), atol=1e-4)


def test_random_selector_count_candidates_and_seed():
    magnitude = _per_frame(np.linspace(1, 30, 12), 96, 128)
    video = torch.rand(12, 3, 96, 128)
    rsdm = RelativeSharpnessDetector(bme=_zero_bme, patch_size=32).select(video, magnitude)
    sel_a = RandomPatchSelector(bme=_zero_bme, patch_size=32, seed=3).select(video, magnitude)
    sel_b = RandomPatchSelector(bme=_zero_bme, patch_size=32, seed=3).select(video, magnitude)
    sel_c = RandomPatchSelector(bme=_zero_bme, patch_size=32, seed=4).select(video, magnitude)
    grid = candidate_grid(12, 96, 128, patch_size=32)
    assert sel_a.candidates == rsdm.candidates == len(grid)
    assert len(sel_a) == round(0.2 * len(grid)) == rsdm.info["target"] == len(rsdm)
    assert sel_a.patches == sel_b.patches
    assert sel_a.patches != sel_c.patches
    allowed = {grid.location(i) for i in range(len(grid))}
    assert set(sel_a.patches) <= allowed and len(set(sel_a.patches)) == len(sel_a)
    assert torch.equal(sel_a.magnitude, magnitude)
    assert sel_a.threshold is None
    # random patches are not sharper than average, RSDM's are
    mean_random = np.mean([float(p.crop(magnitude[p.frame]).mean()) for p in sel_a.patches])
    mean_rsdm = np.mean([float(p.crop(magnitude[p.frame]).mean()) for p in rsdm.patches])
    assert mean_rsdm < 0.5 * mean_random


def test_random_selector_runs_the_magnitude_estimator():
    seen = []

    def fake(frames):
        seen.append(frames.shape[0])
        return torch.ones(frames.shape[0], 1, *frames.shape[2:])

    sel = RandomPatchSelector(bme=fake, patch_size=16, batch_size=4).select(
        torch.rand(6, 3, 16, 16)
    )
    assert seen == [4, 2]
    assert torch.equal(sel.magnitude, torch.ones(6, 1, 16, 16))


def test_from_config_uses_section_and_weights(tmp_path):
    torch.manual_seed(0)
    BlurMagnitudeEstimator(BMEConfig(mag_norm=100.0)).save_pretrained(tmp_path / "bme")
    section = RSDMConfig(weights=str(tmp_path / "bme"), patch_size=48, ratio=0.3, batch_size=2)
    det = RelativeSharpnessDetector.from_config(section, device="cpu")
    assert isinstance(det.bme, BlurMagnitudeEstimator) and det.bme.mag_norm == 100.0
    assert (det.patch_size, det.ratio, det.batch_size) == (48, 0.3, 2)
    rand = RandomPatchSelector.from_config(section, seed=5)
    assert rand.seed == 5 and rand.patch_size == 48
    sel = det.select(torch.rand(6, 3, 48, 64))
    assert sel.magnitude.shape == (6, 1, 48, 64)
    assert len(sel) <= sel.info["target"]


# ---------------------------------------------------------------------------- synthetic videos
@pytest.fixture(scope="module")
def varying_speed_videos():
    synth = pytest.importorskip("ttblur.synth")
    # hand-shake strokes: the speed falls to ~0 between strokes (speed_variation 0.9)
    return [
        synth.make_video(photo, preset=preset, num_frames=12, size=(96, 128), seed=20_000 + i)
        for i, (preset, photo) in enumerate(
            [("gopro", "astronaut"), ("bsd-2ms16ms", "coffee"), ("lowlight", "chelsea")]
        )
    ]


def _patch_mean(magnitude, patches):
    return float(np.mean([float(p.crop(magnitude[p.frame]).mean()) for p in patches]))


def test_precision_with_ground_truth_magnitudes(varying_speed_videos):
    for video in varying_speed_videos:
        gt = video.magnitude
        det = RelativeSharpnessDetector(bme=_zero_bme, patch_size=48)
        sel = det.select(video.blurry, magnitude=gt)
        assert abs(len(sel) - sel.info["target"]) <= 0.02 * sel.candidates + 1e-9
        assert _patch_mean(gt, sel.patches) <= 0.5 * float(gt.mean())
        assert _patch_mean(gt, sel.patches) <= 0.5 * float(gt[2:-2].mean())


def test_precision_with_the_shipped_bme(varying_speed_videos):
    det = RelativeSharpnessDetector(patch_size=48)  # shipped bme-lite weights
    rand = RandomPatchSelector(det.bme, patch_size=48, seed=0)
    for video in varying_speed_videos:
        gt = video.magnitude
        sel = det.select(video.blurry)
        assert sel.magnitude.shape == gt.shape
        kept = _patch_mean(gt, sel.patches)
        assert kept <= 0.5 * float(gt.mean()), (kept, float(gt.mean()))
        # the ablation reuses the same BME maps and count but is not selective
        random_sel = rand.select(video.blurry, magnitude=sel.magnitude)
        assert len(random_sel) == sel.info["target"]
        assert kept < _patch_mean(gt, random_sel.patches)


@pytest.mark.parametrize("selector", [RelativeSharpnessDetector, RandomPatchSelector])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patch_size": 0}, "patch_size must be > 0"),
        ({"ratio": 0.0}, r"ratio must be in \(0, 1\]"),
        ({"ratio": 1.5}, r"ratio must be in \(0, 1\]"),
        ({"batch_size": 0}, "batch_size must be > 0"),
        ({"max_patches": 0}, "max_patches must be > 0"),
    ],
)
def test_both_selectors_refuse_bad_settings(selector, kwargs, message):
    with pytest.raises(ValueError, match=message):
        selector(bme=_zero_bme, **kwargs)


def test_long_passes_report_progress_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    video = torch.rand(9, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    detector = RelativeSharpnessDetector(bme=lambda frames: frames[:, :1] * 4.0, patch_size=16)
    quiet = detector.select(video)
    assert "blur magnitude" not in capsys.readouterr().err
    shown = detector.select(video, progress=True)
    err = capsys.readouterr().err
    assert "blur magnitude" in err and "9/9" in err and "sharpness threshold" in err
    assert shown.patches == quiet.patches
