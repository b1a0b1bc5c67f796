"""Patches per second of the two blur synthesizers on this machine.

``PhysicalReblur`` (weight-free linear-light motion blur) and ``IDBlau`` (official network
configuration, random weights, DDIM with 20 steps) on 256x256 patches with random blur
conditions. Speed does not depend on the weights, so random ones measure the real cost.

Usage::

    PYTHONPATH=src python benchmarks/synthesis_speed.py            # defaults below
    PYTHONPATH=src python benchmarks/synthesis_speed.py --device cuda --idblau-patches 8
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from ttblur.nets.idblau_unet import IDBlauConfig, IDBlauUNet
from ttblur.stages.idblau import IDBlau
from ttblur.stages.reblur import PhysicalReblur


def random_inputs(
    n: int, size: int, z_range: tuple[float, float], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sharp patches ``(n, 3, size, size)`` and conditions with one random direction and
    blur length per patch (z uniform in ``z_range``, px)."""
    g = torch.Generator().manual_seed(seed)
    sharp = torch.rand(n, 3, size, size, generator=g)
    angle = torch.rand(n, generator=g) * 2 * torch.pi
    z = z_range[0] + (z_range[1] - z_range[0]) * torch.rand(n, generator=g)
    cond = torch.stack((angle.cos(), angle.sin(), z), dim=1)[:, :, None, None]
    return sharp, cond.expand(n, 3, size, size).contiguous()


def time_call(fn, sharp: torch.Tensor, cond: torch.Tensor, device: str, repeats: int) -> float:
    """Best-of-``repeats`` patches per second of ``fn(sharp, cond)`` (one warm-up call)."""
    sharp, cond = sharp.to(device), cond.to(device)
    fn(sharp[:1], cond[:1])
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(sharp, cond)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return sharp.shape[0] / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--patches", type=int, default=8, help="patches per PhysicalReblur call")
    parser.add_argument("--idblau-patches", type=int, default=1, help="patches per IDBlau call")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--idblau-repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"cpu={platform.processor() or platform.machine()} size={args.size}x{args.size}"
    )

    reblur = PhysicalReblur(batch_size=args.patches)
    rates = {}
    for label, z_range in (("z in [0, 44.1] px", (0.0, 44.1)), ("z = 147 px", (147.0, 147.0))):
        sharp, cond = random_inputs(args.patches, args.size, z_range, seed=0)
        rates[label] = time_call(reblur, sharp, cond, args.device, args.repeats)
        print(f"PhysicalReblur  {label:16s} {rates[label]:10.2f} patches/s")

    torch.manual_seed(0)
    network = IDBlauUNet(IDBlauConfig.official())
    idblau = IDBlau(
        network, num_steps=args.steps, batch_size=args.idblau_patches, device=args.device
    )
    sharp, cond = random_inputs(args.idblau_patches, args.size, (0.0, 44.1), seed=1)
    with torch.inference_mode():
        rate_idblau = time_call(idblau, sharp, cond, args.device, args.idblau_repeats)
    print(f"IDBlau official, {args.steps} DDIM steps     {rate_idblau:10.4f} patches/s")
    for label, rate in rates.items():
        print(f"ratio PhysicalReblur ({label}) / IDBlau: {rate / rate_idblau:10.1f}x")


if __name__ == "__main__":
    main()
