import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy.stats import spearmanr

from ttblur.nets.bme import BlurMagnitudeEstimator, BMEConfig
from ttblur.training.bme import (
    HighFrameRateDataset,
    SyntheticMagnitudePool,
    TrainBMEConfig,
    spearman,
    train_bme,
)
from ttblur.training.bme_data import make_batch, rescale_crop

TINY_MODEL = BMEConfig(
    encoder_widths=(4, 6, 8, 8, 8),
    encoder_blocks=(0, 1, 0, 0, 0),
    fusion_width=4,
    fused_widths=(4, 4, 4, 8, 8),
    decoder_widths=(4, 4, 4, 8, 8),
    decoder_blocks=1,
    head_width=4,
)


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 1.5)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return np.stack([noise, noise[::-1], 1 - noise], axis=-1)


def _write_sequence(folder, frames: int, shift: float, size=(48, 64), seed=0) -> None:
    """A texture translated by ``shift`` px per frame to the right, saved as 8-bit PNGs."""
    folder.mkdir(parents=True)
    height, width = size
    big = _texture(height + 16, width + 16 + int(shift * frames) + 8, seed)
    for t in range(frames):
        # content moves right by `shift` per frame: sample the source further left each frame
        m = np.float32([[1, 0, 8 + shift * frames - t * shift], [0, 1, 8]])
        frame = cv2.warpAffine(
            big, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        )
        bgr = (np.clip(frame, 0, 1)[..., ::-1] * 255).round().astype(np.uint8)
        cv2.imwrite(str(folder / f"{t + 1:06d}.png"), bgr)


class ConstantFlow:
    """Fake flow estimator: the same displacement for every pixel of every pair."""

    def __init__(self, u: float, v: float, alternate: bool = False) -> None:
        self.u, self.v, self.alternate = u, v, alternate
        self.calls = 0

    def __call__(self, src, dst):
        self.calls += 1
        flow = torch.empty(src.shape[0], 2, *src.shape[2:])
        flow[:, 0], flow[:, 1] = self.u, self.v
        if self.alternate:
            flow[1::2] *= -1
        return flow


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, 40).astype(float)
    b = a + rng.normal(0, 2, 40)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 25]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2], [1, 2, 3])


def test_rescale_scales_magnitude_with_the_image():
    image = torch.rand(3, 64, 64)
    target = torch.full((1, 64, 64), 10.0)
    small_image, small_target = rescale_crop(image, target, 32)
    assert small_image.shape == (3, 32, 32) and small_target.shape == (1, 32, 32)
    assert torch.allclose(small_target, torch.full((1, 32, 32), 5.0), atol=1e-4)


def test_footage_blurry_is_linear_light_average_and_flow_accumulates(tmp_path):
    _write_sequence(tmp_path / "train" / "GOPR0001", frames=9, shift=1.0)
    flow = ConstantFlow(1.5, -2.0)
    data = HighFrameRateDataset(tmp_path, flow=flow, frames_per_blur=(5, 5), margin=4)
    assert len(data) == 1 and data.frame_size(0) == (48, 64)
    blurry, target = data.make(0, 2, 5, top=8, left=10, size=24)
    assert blurry.shape == (3, 24, 24) and target.shape == (1, 24, 24)
    # ground truth: |sum of the 4 pair flows| = 4 * |(1.5, -2)| = 10 px
    assert torch.allclose(target, torch.full_like(target, 10.0))
    assert flow.calls == 1  # one batched call for the 4 pairs
    frames = []
    for t in range(3, 8):
        bgr = cv2.imread(str(tmp_path / "train" / "GOPR0001" / f"{t:06d}.png"))
        frames.append(torch.from_numpy(bgr[8:32, 10:34, ::-1].copy()).permute(2, 0, 1) / 255.0)
    expected = torch.stack(frames).pow(2.2).mean(0).pow(1 / 2.2)
    assert torch.allclose(blurry, expected, atol=1e-5)
    # displacement vs path length: back-and-forth motion cancels only in the displacement
    back_and_forth = ConstantFlow(3.0, 0.0, alternate=True)
    disp = HighFrameRateDataset(tmp_path, flow=back_and_forth, frames_per_blur=(5, 5))
    path = HighFrameRateDataset(
        tmp_path, flow=back_and_forth, frames_per_blur=(5, 5), magnitude="path"
    )
    assert float(disp.make(0, 0, 5, 0, 0, 16)[1].abs().max()) == pytest.approx(0.0)
    assert torch.allclose(path.make(0, 0, 5, 0, 0, 16)[1], torch.full((1, 16, 16), 12.0))


def test_footage_with_opencv_flow_measures_the_motion(tmp_path):
    _write_sequence(tmp_path / "seq", frames=8, shift=1.0, size=(64, 80))
    data = HighFrameRateDataset(tmp_path, frames_per_blur=(7, 7), flow_preset="medium")
    _, target = data.make(0, 0, 7, top=16, left=16, size=32)
    # 6 steps of 1 px: 6 px of blur
    assert float(target.median()) == pytest.approx(6.0, abs=0.6)
    gen = torch.Generator().manual_seed(0)
    image, target = data.sample(gen, crop=32, scale=1.0)
    assert image.shape == (3, 32, 32) and target.shape == (1, 32, 32)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_footage_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no high-frame-rate"):
        HighFrameRateDataset(tmp_path / "missing")
    _write_sequence(tmp_path / "short", frames=4, shift=1.0)
    with pytest.raises(FileNotFoundError, match="13 or more frames"):
        HighFrameRateDataset(tmp_path)
    with pytest.raises(ValueError, match="frames_per_blur"):
        HighFrameRateDataset(tmp_path, frames_per_blur=(1, 3))


def _fake_render(photo: str, preset: str, seed: int):
    """Frames whose blur magnitude is known: a box blur of ``k`` px along x."""
    rng = np.random.default_rng(seed)
    k = 1 + 2 * int(rng.integers(0, 6))  # 1..11 px
    sharp = _texture(40, 48, seed)
    blurred = cv2.blur(sharp, (k, 1))
    frames = torch.from_numpy(blurred).permute(2, 0, 1)[None].repeat(3, 1, 1, 1).float()
    magnitude = torch.full((3, 1, 40, 48), float(k - 1))
    return frames.clamp(0, 1), magnitude


def _tiny_train_config(**overrides) -> TrainBMEConfig:
    values = dict(
        model=TINY_MODEL,
        presets=["a", "b"],
        photos=["p1", "p2"],
        videos_per_preset=3,
        video_frames=3,
        video_size=(40, 48),
        crop=32,
        batch_size=2,
        epochs=2,
        steps_per_epoch=2,
        threads=1,
        device="cpu",
    )
    values.update(overrides)
    return TrainBMEConfig(**values)


def _pool(config: TrainBMEConfig) -> SyntheticMagnitudePool:
    pool = SyntheticMagnitudePool(config, render=_fake_render)
    pool.build(progress=False)
    return pool


def test_pool_and_batches_are_deterministic():
    config = _tiny_train_config()
    pool = _pool(config)
    assert len(pool) == 6
    assert {preset for _, preset, _ in pool.sources} == {"a", "b"}
    assert pool.sources == _pool(config).sources
    assert pool.blurry[0].dtype == torch.uint8 and pool.magnitude[0].dtype == torch.float16
    x1, y1 = make_batch(5, config, pool, None)
    x2, y2 = make_batch(5, config, pool, None)
    x3, _ = make_batch(6, config, pool, None)
    assert x1.shape == (2, 3, 32, 32) and y1.shape == (2, 1, 32, 32)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)


def test_config_checks():
    with pytest.raises(ValueError, match="too small"):
        TrainBMEConfig(crop=320, video_size=(256, 320))
    with pytest.raises(ValueError, match="no training data"):
        TrainBMEConfig(videos_per_preset=0)
    with pytest.raises(ValueError, match="gopro_frames"):
        TrainBMEConfig(gopro_frames=(5, 3))


@pytest.mark.slow
def test_train_writes_weights_and_resumes_exactly(tmp_path):
    config = _tiny_train_config()
    full = train_bme(config, tmp_path / "full", progress=False, pool=_pool(config))
    assert full.steps == 4 and full.epochs == 2 and len(full.epoch_losses) == 2
    assert all(np.isfinite(full.epoch_losses))
    model = BlurMagnitudeEstimator.from_pretrained(tmp_path / "full" / "final")
    assert model.config == TINY_MODEL
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2]
    moments = load_file(str(tmp_path / "full" / "checkpoint" / "optimizer.safetensors"))
    assert any(k.endswith("exp_avg_sq") for k in moments)
    state = json.loads((tmp_path / "full" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 4 and state["epoch"] == 2

    # interrupted after 3 steps (mid-epoch), then resumed: the same weights
    part = train_bme(config, tmp_path / "part", progress=False, pool=_pool(config), stop_after=3)
    assert part.steps == 3 and not (tmp_path / "part" / "final").exists()
    with pytest.raises(ValueError, match="resume"):
        train_bme(config, tmp_path / "part", progress=False, pool=_pool(config))
    with pytest.raises(ValueError, match="different config"):
        train_bme(
            _tiny_train_config(lr=1e-2),
            tmp_path / "part",
            resume=True,
            progress=False,
            pool=_pool(config),
        )
    done = train_bme(config, tmp_path / "part", resume=True, progress=False, pool=_pool(config))
    assert done.steps == 4
    assert done.epoch_losses == pytest.approx(full.epoch_losses, rel=1e-5)
    log = [json.loads(line) for line in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert {"step": 3, "resumed": True} in log and "resumed" not in log[0]
    resumed = BlurMagnitudeEstimator.from_pretrained(tmp_path / "part" / "final")
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


def test_training_learns_blur_magnitude(tmp_path):
    # box blur of k px along x: after a short training the prediction ranks blur amounts
    config = _tiny_train_config(
        model=BMEConfig(
            encoder_widths=(8, 8, 12, 12, 12),
            encoder_blocks=(0, 0, 0, 0, 0),
            fusion_width=8,
            fused_widths=(8, 8, 8, 12, 12),
            decoder_widths=(8, 8, 8, 12, 12),
            decoder_blocks=0,
            head_width=8,
            norm="batch",
            stem_width=0,
            mag_norm=20.0,
        ),
        videos_per_preset=6,
        batch_size=8,
        epochs=1,
        steps_per_epoch=80,
        lr=3e-3,
    )
    result = train_bme(config, tmp_path / "run", progress=False, pool=_pool(config))
    model = BlurMagnitudeEstimator.from_pretrained(tmp_path / "run" / "final")
    preds, truth = [], []
    for seed in range(20_000, 20_012):
        frames, magnitude = _fake_render("x", "y", seed)
        preds.append(float(model.predict(frames[:1]).mean()))
        truth.append(float(magnitude[0].mean()))
    # an untrained network predicts ~2 px everywhere (std < 0.2 px, error ~2.5 px)
    assert spearman(preds, truth) > 0.8
    assert np.mean(np.abs(np.subtract(preds, truth))) < 1.5
    assert np.std(preds) > 2.0
    assert result.epoch_losses[0] < 0.15  # L1 in training space (mag_norm 20)


def test_training_mixes_footage(tmp_path):
    _write_sequence(tmp_path / "footage" / "seq", frames=8, shift=2.0, size=(40, 48))
    config = _tiny_train_config(
        gopro_root=str(tmp_path / "footage"),
        gopro_frames=(3, 5),
        gopro_fraction=1.0,
        videos_per_preset=0,
        epochs=1,
        steps_per_epoch=1,
    )
    result = train_bme(config, tmp_path / "run", progress=False)
    assert result.steps == 1 and np.isfinite(result.final_loss)
    footage = HighFrameRateDataset(
        tmp_path / "footage", frames_per_blur=(3, 5), flow=ConstantFlow(2, 0)
    )
    x, y = make_batch(0, config, None, footage)
    assert x.shape == (2, 3, 32, 32)
    assert set(torch.unique(y).tolist()) <= {4.0, 6.0, 8.0}  # (N - 1) * 2 px


def test_shipped_bme_ranks_held_out_frames():
    pytest.importorskip("ttblur.synth")
    from ttblur.training.bme import evaluate_bme

    bme = BlurMagnitudeEstimator.from_pretrained()
    result = evaluate_bme(
        bme,
        ["gopro", "bsd-1ms8ms", "lowlight"],
        photos=["astronaut", "coffee"],
        num_frames=8,
        size=(96, 128),
        verbose=False,
    )
    assert result.overall.frames == 3 * 2 * 8
    assert result.overall.spearman >= 0.8
    assert result.overall.mae_px < 0.6 * result.overall.mean_gt_px


def test_command_line_train_and_evaluate(tmp_path, capsys):
    pytest.importorskip("ttblur.synth")
    from ttblur.training.bme import main

    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--presets", "gopro", "--photos", "rocket"]
    args += ["--videos-per-preset", "1", "--video-frames", "2", "--video-size", "48", "48"]
    args += ["--crop", "32", "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "2"]
    args += [
        "--num-threads",
        "1",
        "--device",
        "cpu",
        "--no-progress",
        "--export",
        str(tmp_path / "w"),
    ]
    assert main(args) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["crop"] == 32 and saved["presets"] == ["gopro"] and saved["augment_photos"]
    assert BlurMagnitudeEstimator.from_pretrained(tmp_path / "w").config.variant == "lite"
    report = tmp_path / "eval.json"
    evaluate = ["evaluate", "--weights", str(tmp_path / "w"), "--presets", "gopro"]
    evaluate += ["--frames", "2", "--size", "32", "40", "--json", str(report)]
    assert main(evaluate) == 0
    assert "| gopro | 3 | 6 |" in capsys.readouterr().out
    assert json.loads(report.read_text())["overall"]["frames"] == 6
