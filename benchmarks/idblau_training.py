"""Longer CPU training run of a small ID-Blau and what its DDIM samples look like.

The unit test (tests/training/test_idblau_training.py) only checks what a 200-step run makes
robust: the loss drops and the denoiser combines the noisy input with the sharp image. Whether
*sampled* blur (20 DDIM steps from pure noise) is closer to the target than the sharp input is
needs a few thousand steps; this script does that run and prints, per pair, the PSNR against
the target blurry image of

* the sharp input,
* the sample with the right condition,
* the sample with the condition's direction turned by 90 degrees (does the condition steer
  the blur?),

for the official sampler (no clipping) and for ``clip_sample = 0.5`` (the IDBlau default);
and, as a diagnostic of what the network learned, the PSNR of its one-step clean estimate
``x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)`` from a noised target at a few timesteps,
with the right and with the turned condition.

Pairs: ``--source photos`` blurs the first four ``ttblur.synth.TRAIN_PHOTOS`` with
``PhysicalReblur`` along ``--directions`` conditions; ``--source synth`` takes frames of
``ttblur.synth`` videos of TRAIN_PHOTOS with their ground-truth conditions.

Usage::

    PYTHONPATH=src python benchmarks/idblau_training.py --steps 6000 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ttblur.diffusion import DDPMProcess
from ttblur.stages.idblau import IDBlau
from ttblur.stages.reblur import PhysicalReblur
from ttblur.training.idblau import SyntheticPairs, TensorPairs, train_idblau
from ttblur.types import pixel_condition


def photo_pairs(size: int, length_px: float, mag_norm: float, directions: int) -> TensorPairs:
    """The first four TRAIN_PHOTOS, each blurred by ``length_px`` along ``directions``
    directions evenly spaced over 180 degrees (2: horizontal and vertical)."""
    from ttblur.synth import TRAIN_PHOTOS, load_photo

    photos = [
        F.interpolate(load_photo(name)[None], size=(size, size), mode="area")
        for name in TRAIN_PHOTOS[:4]
    ]
    sharp = torch.cat(photos).repeat(directions, 1, 1, 1)
    angles = torch.arange(directions).repeat_interleave(len(photos)) * torch.pi / directions
    cond = torch.zeros_like(sharp)
    cond[:, 0] = angles.cos().view(-1, 1, 1)
    cond[:, 1] = angles.sin().view(-1, 1, 1)
    cond[:, 2] = length_px / mag_norm  # ID-Blau's training scale
    blurry = PhysicalReblur()(sharp, pixel_condition(cond, mag_norm))
    return TensorPairs(blurry, sharp, cond)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(1.0 / ((a - b) ** 2).mean(dim=(1, 2, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["photos", "synth"], default="photos")
    parser.add_argument("--out", default="/tmp/ttblur_idblau_small")
    parser.add_argument("--config", default="small")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--length", type=float, default=8.0, help="blur length, px (photos)")
    parser.add_argument("--directions", type=int, default=2, help="directions per photo")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-min", type=float, default=1e-6)
    parser.add_argument("--mag-norm", type=float, default=147.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.source == "photos":
        pairs = photo_pairs(args.size, args.length, args.mag_norm, args.directions)
    else:
        from ttblur.synth import TRAIN_PHOTOS

        pairs = SyntheticPairs(
            TRAIN_PHOTOS[:4],
            ("gopro",),
            frames_per_video=2,
            size=(args.size, args.size),
            mag_norm=args.mag_norm,
            seed=args.seed,
        )
    start = time.perf_counter()
    result = train_idblau(
        Path(args.out),
        pairs,
        config=args.config,
        steps=args.steps,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        lr=args.lr,
        lr_min=args.lr_min,
        seed=args.seed,
        progress=False,
    )
    losses = result.losses
    window = min(200, len(losses))
    print(
        f"{len(pairs)} pairs, {result.step} steps, {time.perf_counter() - start:.0f} s, "
        f"threads={torch.get_num_threads()}; loss mean of first / last {window} steps: "
        f"{sum(losses[:window]) / window:.4f} / {sum(losses[-window:]) / window:.4f}"
    )
    blurry = torch.stack([pairs[i][0] for i in range(len(pairs))])
    sharp = torch.stack([pairs[i][1] for i in range(len(pairs))])
    cond = torch.stack([pairs[i][2] for i in range(len(pairs))])
    turned = torch.stack((-cond[:, 1], cond[:, 0], cond[:, 2]), dim=1)
    print(f"sharp input     PSNR vs target: {psnr(sharp, blurry).mean():6.2f} dB")
    scheduler = DDPMProcess()
    generator = torch.Generator().manual_seed(123)
    for t in (100, 400, 800, 1200):
        steps = torch.full((len(pairs),), t)
        noisy = scheduler.add_noise(
            blurry - 0.5, torch.randn(blurry.shape, generator=generator), steps
        )
        scores = []
        for c in (cond, turned):
            with torch.no_grad():
                eps = result.network(torch.cat((noisy, sharp - 0.5, c), dim=1), steps)
            x0 = scheduler.predict_original(noisy, eps, steps).clamp(-0.5, 0.5) + 0.5
            scores.append(psnr(x0, blurry).mean().item())
        print(
            f"one-step x0 at t={t:4d}: right condition {scores[0]:6.2f} dB, "
            f"turned {scores[1]:6.2f} dB"
        )
    for clip in (None, 0.5):
        for seed in args.sample_seeds:
            # the synthesizer takes z in px and converts to the network's scale itself
            model = IDBlau(result.network, clip_sample=clip, seed=seed)
            right = psnr(model(sharp, pixel_condition(cond, model.mag_norm)), blurry)
            model = IDBlau(result.network, clip_sample=clip, seed=seed)
            wrong = psnr(model(sharp, pixel_condition(turned, model.mag_norm)), blurry)
            per_pair = " ".join(f"{v:5.1f}" for v in right.tolist())
            print(
                f"clip={clip!s:4s} seed={seed}: right condition {right.mean():6.2f} dB "
                f"[{per_pair}], turned 90 deg {wrong.mean():6.2f} dB, "
                f"right beats sharp on {(right > psnr(sharp, blurry)).sum()}/{len(right)}"
            )


if __name__ == "__main__":
    main()
