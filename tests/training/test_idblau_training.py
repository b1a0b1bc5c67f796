import json
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ttblur.diffusion import DDPMProcess
from ttblur.nets.idblau_unet import IDBlauConfig
from ttblur.stages.idblau import IDBlau
from ttblur.stages.reblur import motion_blur
from ttblur.training.idblau import (
    STATE_JSON,
    STATE_TENSORS,
    FramesFolderPairs,
    SyntheticPairs,
    TensorPairs,
    augment_pair,
    charbonnier_loss,
    condition_from_flow,
    main,
    train_idblau,
)
from ttblur.types import pixel_condition

MAG_NORM = 147.0


def textured(n, size, seed, cell=4):
    """Random colour textures in [0, 1]: noise of ``cell`` px cells, upsampled bicubically."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // cell, size // cell, generator=g)
    img = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return img.clamp(0, 1)


def tiny_pairs(n=4, size=32, seed=0, length_px=6.0, cell=4):
    sharp = textured(n, size, seed, cell)
    cond = torch.zeros(n, 3, size, size)
    angles = torch.linspace(0, math.pi, n + 1)[:-1]
    cond[:, 0] = torch.cos(angles).view(n, 1, 1)
    cond[:, 1] = torch.sin(angles).view(n, 1, 1)
    cond[:, 2] = length_px / MAG_NORM
    return motion_blur(sharp, pixel_condition(cond, MAG_NORM)), sharp, cond


@pytest.fixture
def one_thread():
    """Tiny networks train faster on one thread, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def psnr(a, b):
    return (10 * torch.log10(1.0 / ((a - b) ** 2).mean(dim=(1, 2, 3)))).mean().item()


def test_charbonnier_values():
    x = torch.zeros(2, 3)
    assert charbonnier_loss(x, x).item() == pytest.approx(1e-3)
    assert charbonnier_loss(x, x + 1).item() == pytest.approx(math.sqrt(1 + 1e-6))
    with pytest.raises(ValueError, match="differ"):
        charbonnier_loss(x, torch.zeros(3))


def test_condition_from_flow_values():
    flow = torch.zeros(1, 2, 1, 3)
    flow[0, :, 0, 0] = torch.tensor([3.0, 4.0])
    flow[0, :, 0, 2] = torch.tensor([0.0, -300.0])
    cond = condition_from_flow(flow, MAG_NORM)[0, :, 0]
    assert cond[:, 0].tolist() == pytest.approx([0.6, 0.8, 5 / MAG_NORM])
    assert cond[:, 1].tolist() == [1.0, 0.0, 0.0]  # no motion: fallback direction, z = 0
    assert cond[:, 2].tolist() == [0.0, -1.0, 1.0]  # 300 px saturates


def test_augmentation_transforms_the_condition_with_the_image():
    """Blur commutes with flips / rot90 only if the direction vectors are transformed too."""
    torch.manual_seed(0)
    sharp = textured(1, 24, 1)[0]
    cond = torch.zeros(3, 24, 24)
    angle = torch.linspace(0.2, 1.3, 24).view(1, 24).expand(24, 24)  # varies along x
    cond[0], cond[1], cond[2] = torch.cos(angle), torch.sin(angle), 7.0 / MAG_NORM
    blurry = motion_blur(sharp[None], pixel_condition(cond[None], MAG_NORM))[0]
    seen = set()
    for seed in range(24):
        g = torch.Generator().manual_seed(seed)
        b, s, c = augment_pair(blurry, sharp, cond, None, g)
        seen.add((c[0, 0, 0].item() > 0, c[1, 0, 0].item() > 0, round(c[0, 0, 0].item(), 3)))
        assert torch.allclose(
            motion_blur(s[None], pixel_condition(c[None], MAG_NORM))[0], b, atol=1e-4
        )
    assert len(seen) >= 6  # several distinct flips / rotations were exercised


def test_augmentation_keeps_condition_vectors_pointing_along_the_image_motion():
    """Signed check (blur itself cannot tell (x, y) from (-x, -y)): the condition points from
    a marker A to a marker B; after any flip / rotation it must still point from A to B."""
    image = torch.zeros(3, 9, 9)
    image[0, 2, 3] = 1.0  # marker A (red), row 2, col 3
    image[1, 5, 7] = 1.0  # marker B (green), row 5, col 7
    direction = torch.tensor([4.0, 3.0]) / 5.0  # from A to B: dx = 4, dy = 3
    cond = torch.zeros(3, 9, 9)
    cond[0], cond[1], cond[2] = direction[0], direction[1], 0.1
    seen = set()
    for seed in range(32):
        _, s, c = augment_pair(image, image, cond, None, torch.Generator().manual_seed(seed))
        ya, xa = (s[0] == 1).nonzero()[0].tolist()
        yb, xb = (s[1] == 1).nonzero()[0].tolist()
        expected = torch.tensor([xb - xa, yb - ya], dtype=torch.float32) / 5.0
        assert torch.allclose(c[:2, 0, 0], expected, atol=1e-6)
        seen.add(tuple(expected.tolist()))
    assert len(seen) == 8  # all flips x rotations occurred


def test_augmentation_crops_all_three_alike():
    base = torch.arange(16 * 20, dtype=torch.float32).view(1, 16, 20).repeat(3, 1, 1)
    b, s, c = augment_pair(base, base + 1, base + 2, 8, torch.Generator().manual_seed(3))
    assert b.shape == (3, 8, 8)
    assert torch.equal(s, b + 1)
    assert torch.equal(c[2], b[2] + 2)
    with pytest.raises(ValueError, match="crop_size"):
        augment_pair(base, base, base, 32, torch.Generator())


def test_tensor_pairs_validation():
    x = torch.rand(2, 3, 8, 8)
    assert len(TensorPairs(x, x, x)) == 2
    with pytest.raises(ValueError, match="shapes differ"):
        TensorPairs(x, x[:1], x)
    with pytest.raises(ValueError, match="NaN"):
        TensorPairs(x, x * float("nan"), x)


def test_resume_continues_exactly(tmp_path, one_thread):
    pairs = TensorPairs(*tiny_pairs(n=2, size=16))
    kwargs = dict(
        config="small", batch_size=2, crop_size=8, lr=1e-3, seed=5, progress=False, save_every=3
    )
    straight = train_idblau(tmp_path / "a", pairs, steps=6, **kwargs)
    first = train_idblau(tmp_path / "b", pairs, steps=3, **kwargs)
    assert first.step == 3
    resumed = train_idblau(tmp_path / "b", pairs, steps=6, **kwargs)
    assert resumed.step == 6
    assert resumed.losses == straight.losses
    for key, value in straight.network.state_dict().items():
        assert torch.equal(resumed.network.state_dict()[key], value), key
    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files == sorted(["config.json", "model.safetensors", STATE_JSON, STATE_TENSORS])
    state = json.loads((tmp_path / "b" / STATE_JSON).read_text())
    assert state["step"] == 6 and len(state["losses"]) == 6
    # the checkpoint folder loads as a synthesizer
    model = IDBlau.from_pretrained(tmp_path / "b", num_steps=2)
    assert model.network.config == IDBlauConfig.small()
    # resuming picks the checkpoint's config by default and refuses a different one
    kwargs.pop("config")
    assert train_idblau(tmp_path / "b", pairs, steps=7, **kwargs).step == 7
    with pytest.raises(ValueError, match="another network config"):
        train_idblau(tmp_path / "b", pairs, steps=8, config="official", **kwargs)
    # other settings, or a fresh start over the published weights, are refused
    weights = (tmp_path / "b" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match=r"other settings \(lr, seed differ"):
        train_idblau(tmp_path / "b", pairs, steps=9, **{**kwargs, "lr": 0.5, "seed": 9})
    with pytest.raises(ValueError, match="already holds an ID-Blau run"):
        train_idblau(tmp_path / "b", pairs, steps=2, resume=False, **kwargs)
    assert (tmp_path / "b" / "model.safetensors").read_bytes() == weights


@pytest.mark.slow
def test_short_training_lowers_the_loss_and_learns_the_pair_relation(tmp_path, one_thread):
    blurry, sharp, cond = tiny_pairs(n=4, size=16, length_px=8.0, cell=2)
    result = train_idblau(
        tmp_path,
        TensorPairs(blurry, sharp, cond),
        config="small",
        steps=600,
        batch_size=4,
        crop_size=None,
        lr=1e-3,
        seed=0,
        progress=False,
    )
    first = sum(result.losses[:20]) / 20
    last = sum(result.losses[-20:]) / 20
    assert last < 0.4 * first  # measured: 0.19-0.22 for seeds 0-2
    # Denoising check at t = 100 (noise std 0.16 in [-0.5, 0.5] units): the clean estimate
    # beats both the noisy input alone and the sharp image alone, so the network combines them.
    sched = DDPMProcess()
    t = torch.full((4,), 100)
    ab = sched.schedule.alphas_cumprod[100].item()
    noise = torch.randn(blurry.shape, generator=torch.Generator().manual_seed(1))
    noisy = sched.add_noise(blurry - 0.5, noise, t)
    with torch.no_grad():
        eps = result.network(torch.cat((noisy, sharp - 0.5, cond), dim=1), t)
    estimate = sched.predict_original(noisy, eps, t).clamp(-0.5, 0.5) + 0.5
    trivial = (noisy / math.sqrt(ab)).clamp(-0.5, 0.5) + 0.5
    # measured (seeds 0-2): estimate 19.2-19.9 dB, sharp 13.7-14.1 dB, noisy input 15.8 dB
    assert psnr(estimate, blurry) > psnr(sharp, blurry) + 3.0
    assert psnr(estimate, blurry) > psnr(trivial, blurry) + 2.5


def write_translating_frames(folder, count, shift_px):
    """Frames of a textured image moving right by ``shift_px`` px per frame."""
    folder.mkdir(parents=True)
    big = (textured(1, 160, 7)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    for k in range(count):
        x0 = 40 - k * shift_px
        frame = big[40:104, x0 : x0 + 96]
        cv2.imwrite(str(folder / f"{k}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def test_frames_folder_pairs_average_frames_and_measure_the_motion(tmp_path):
    write_translating_frames(tmp_path / "frames" / "video0", count=10, shift_px=1)
    pairs = FramesFolderPairs(tmp_path / "frames", frames_per_blur=5, cache_dir=tmp_path / "cache")
    assert len(pairs) == 2  # windows 0-4 and 5-9
    blurry, sharp, cond = pairs[0]
    frames = [
        torch.from_numpy(
            cv2.cvtColor(
                cv2.imread(str(tmp_path / "frames" / "video0" / f"{k}.png")), cv2.COLOR_BGR2RGB
            )
        )
        .permute(2, 0, 1)
        .float()
        / 255
        for k in range(5)
    ]
    assert torch.allclose(sharp, frames[2])
    expected = torch.stack(frames).pow(2.2).mean(0).pow(1 / 2.2)
    assert torch.allclose(blurry, expected, atol=1e-5)
    centre = cond[:, 16:-16, 16:-16]
    # content moves +1 px per frame: 4 px over the window, towards +x
    assert centre[0].median().item() == pytest.approx(1.0, abs=0.02)
    assert centre[1].median().abs().item() < 0.05
    assert centre[2].median().item() * MAG_NORM == pytest.approx(4.0, abs=0.4)
    assert (tmp_path / "cache" / "pair_000000.safetensors").is_file()
    again = pairs[0]
    assert torch.equal(again[2], cond)


def test_frames_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        FramesFolderPairs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no window"):
        FramesFolderPairs(tmp_path / "empty")


def test_cli_help_and_a_tiny_run(tmp_path, capsys, one_thread):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--data" in capsys.readouterr().out
    write_translating_frames(tmp_path / "frames", count=6, shift_px=2)
    status = main(
        [
            "--out",
            str(tmp_path / "run"),
            "--data",
            str(tmp_path / "frames"),
            "--frames-per-blur",
            "3",
            "--config",
            "small",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--crop-size",
            "32",
            "--no-progress",
        ]
    )
    assert status == 0
    state = json.loads((tmp_path / "run" / STATE_JSON).read_text())
    assert state["step"] == 2
    assert state["settings"]["pairs"] == 2


def test_synthetic_pairs_carry_the_ground_truth_condition():
    synth = pytest.importorskip("ttblur.synth")
    pairs = SyntheticPairs(
        ["rocket"], ("gopro", "bsd-3ms24ms"), frames_per_video=2, size=(32, 40), seed=3
    )
    assert len(pairs) == 4
    video = synth.make_video("rocket", preset="bsd-3ms24ms", num_frames=2, size=(32, 40), seed=4)
    blurry, sharp, cond = pairs[2]
    assert torch.equal(blurry, video.blurry[0])
    assert torch.equal(sharp, video.sharp[0])
    assert torch.equal(cond, video.condition(MAG_NORM)[0])
    with pytest.raises(ValueError, match="held-out"):
        SyntheticPairs([synth.HELDOUT_PHOTOS[0]], frames_per_video=1, size=(16, 16))
