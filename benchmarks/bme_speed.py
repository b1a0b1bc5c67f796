"""Blur Magnitude Estimator speed: frames per second of ``BlurMagnitudeEstimator.predict``.

Measures both configurations (``lite``, the shipped default, and ``paper``, the ResNet-50
version) at 256x256 and 1280x720 on random frames (the network's cost does not depend on the
content), best of ``--repeats`` timed runs after one warm-up, and the size of the weights.
Also times the RSDM threshold search on magnitude maps of a 1280x720 video.

Usage::

    PYTHONPATH=src python benchmarks/bme_speed.py
    PYTHONPATH=src python benchmarks/bme_speed.py --threads 1 --repeats 3 --variants lite
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from ttblur.nets.bme import BlurMagnitudeEstimator, BMEConfig
from ttblur.stages.rsdm import select_relatively_sharp

SIZES = ((256, 256), (720, 1280))


def frames_per_second(
    bme: BlurMagnitudeEstimator, size: tuple[int, int], batch: int, repeats: int
) -> float:
    """Best-of-``repeats`` frames per second of ``bme.predict`` on ``batch`` frames."""
    frames = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(0))
    bme.predict(frames[:1])  # warm-up (oneDNN primitive creation)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        bme.predict(frames, batch_size=batch)
        best = min(best, time.perf_counter() - start)
    return batch / best


def threshold_search_seconds(num_frames: int, repeats: int) -> tuple[float, int, int]:
    """Seconds of the RSDM search on smooth random 1280x720 magnitude maps."""
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(num_frames, 1, 6, 10, generator=gen) * 30
    speed = 1.2 + torch.sin(torch.arange(num_frames) / 4.0).view(-1, 1, 1, 1)
    maps = torch.nn.functional.interpolate(coarse, size=(720, 1280), mode="bicubic") * speed
    maps = maps.clamp_min(0)
    best = float("inf")
    selection = None
    for _ in range(repeats):
        start = time.perf_counter()
        selection = select_relatively_sharp(maps, patch_size=256, ratio=0.2)
        best = min(best, time.perf_counter() - start)
    assert selection is not None
    return best, len(selection), selection.candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=["lite", "paper"])
    parser.add_argument("--batch", type=int, default=2, help="frames per forward pass")
    parser.add_argument("--search-frames", type=int, default=40)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    print("| variant | params | weights MB | size | frames/s | s/frame |")
    print("|---|---|---|---|---|---|")
    for variant in args.variants:
        if variant == "lite":
            try:
                bme = BlurMagnitudeEstimator.from_pretrained()
            except FileNotFoundError:
                bme = BlurMagnitudeEstimator(BMEConfig(variant="lite")).eval()
        else:
            torch.manual_seed(0)
            bme = BlurMagnitudeEstimator(BMEConfig(variant=variant)).eval()
        params = sum(p.numel() for p in bme.parameters())
        megabytes = sum(t.numel() * t.element_size() for t in bme.state_dict().values()) / 1e6
        for size in SIZES:
            fps = frames_per_second(bme, size, args.batch, args.repeats)
            print(
                f"| {variant} | {params / 1e6:.2f} M | {megabytes:.1f} | {size[1]}x{size[0]} | "
                f"{fps:.2f} | {1 / fps:.3f} |"
            )
    seconds, kept, candidates = threshold_search_seconds(args.search_frames, args.repeats)
    print(
        f"\nRSDM threshold search, {args.search_frames} frames of 1280x720, 256 px patches: "
        f"{seconds:.2f} s ({kept} of {candidates} candidates kept)"
    )


if __name__ == "__main__":
    main()
