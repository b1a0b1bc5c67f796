"""Optical-flow speed (pairs per second) and the DBCGM per-pair flow cache.

1. ``OpenCVFlow`` pairs per second for each DIS preset at 256x256 and 1280x720, on frames of a
   smooth random texture translated by a sub-pixel motion (content does not change DIS's cost
   much, but blank frames would flatter it).
2. DBCGM on a video with many overlapping 256x256 patches: the number of flow computations
   equals the number of distinct frame pairs the patches need (each pair computed once), versus
   ``4 x patches`` for a per-patch computation, and the wall time of the condition generation.

Usage::

    PYTHONPATH=src python benchmarks/flow_speed.py
    PYTHONPATH=src python benchmarks/flow_speed.py --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from typing import Literal, cast

import cv2
import numpy as np
import torch

from ttblur.protocols import PatchLocation, Selection
from ttblur.stages.dbcgm import DomainBlurConditionGenerator, neighbour_pairs
from ttblur.stages.flow import DIS_PRESETS, OpenCVFlow

Preset = Literal["ultrafast", "fast", "medium"]
PRESETS: tuple[Preset, ...] = ("ultrafast", "fast", "medium")


def translating_frames(
    num_frames: int, height: int, width: int, step: tuple[float, float], seed: int = 0
) -> torch.Tensor:
    """``(T, 3, H, W)`` frames of a smooth random texture moving by ``step`` px per frame."""
    rng = np.random.default_rng(seed)
    margin = int(abs(step[0]) * num_frames + abs(step[1]) * num_frames) + 8
    noise = rng.random((height + 2 * margin, width + 2 * margin)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    big = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    frames = []
    for t in range(num_frames):
        m = np.array([[1, 0, t * step[0] - margin], [0, 1, t * step[1] - margin]], np.float32)
        frames.append(cv2.warpAffine(big, m, (width, height), flags=cv2.INTER_LINEAR))
    gray = torch.from_numpy(np.clip(np.stack(frames), 0.0, 1.0))
    return gray.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def pairs_per_second(flow: OpenCVFlow, frames: torch.Tensor, repeats: int) -> float:
    """Best-of-``repeats`` pairs per second of ``flow`` over all consecutive pairs."""
    src, dst = frames[:-1], frames[1:]
    flow(src[:1], dst[:1])  # warm-up (creates the DIS object)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        flow(src, dst)
        best = min(best, time.perf_counter() - start)
    return src.shape[0] / best


def cache_demo(preset: Preset, patch: int, context: int) -> None:
    """Many overlapping patches on a 720p video: count flow computations."""
    frames = translating_frames(14, 720, 1280, (2.5, 1.0), seed=1)
    mags = torch.full((frames.shape[0], 1, 720, 1280), 12.0)
    patches = [
        PatchLocation(t, top, left, patch)
        for t in range(2, 12)
        for top, left in ((0, 0), (64, 96), (128, 160), (200, 300), (400, 900), (464, 1024))
    ]
    distinct = sorted({a for p in patches for a in neighbour_pairs(p.frame, 14, 2)})
    gen = DomainBlurConditionGenerator(
        147.0,
        flow=OpenCVFlow(preset),
        context=context,
        # the settings this benchmark has always timed (the official code's, BME maps)
        magnitude="bme",
        magnitude_offset=10.0,
        motion_cap=False,
    )
    start = time.perf_counter()
    cond = gen(frames, Selection(patches, mags)).maps
    seconds = time.perf_counter() - start
    angle = math.degrees(math.atan2(float(cond[:, 1].mean()), float(cond[:, 0].mean())))
    print(
        f"\ncache demo ({preset}, 1280x720, {len(patches)} patches of {patch}px on frames 2..11, "
        f"context {context}px):"
    )
    print(f"  distinct frame pairs needed : {len(distinct)}")
    print(f"  flow computations (counted) : {gen.flow_computations}")
    print(f"  flow batches                : {int(gen.last_stats['flow_batches'])}")
    print(f"  without a cache it would be : {4 * len(patches)} per-patch pair computations")
    print(f"  condition generation        : {seconds:.2f} s")
    # The same patches one call each: nothing is shared between patches.
    single = DomainBlurConditionGenerator(
        147.0,
        flow=OpenCVFlow(preset),
        context=context,
        # the settings this benchmark has always timed (the official code's, BME maps)
        magnitude="bme",
        magnitude_offset=10.0,
        motion_cap=False,
    )
    start = time.perf_counter()
    for p in patches:
        single(frames, Selection([p], mags))
    separate = time.perf_counter() - start
    print(
        f"  one call per patch          : {single.flow_computations} computations, {separate:.2f} s"
    )
    truth = float(np.degrees(np.arctan2(1.0, 2.5)))
    print(f"  mean direction              : {angle:.1f} deg (true {truth:.1f})")
    assert gen.flow_computations == len(distinct), "per-pair cache failed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=9, help="frames per size (pairs = frames-1)")
    parser.add_argument(
        "--threads", type=int, default=None, help="cv2 and torch threads (default: library's)"
    )
    parser.add_argument("--cache-preset", default="medium", choices=sorted(DIS_PRESETS))
    args = parser.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
        torch.set_num_threads(args.threads)
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, opencv {cv2.__version__}, "
        f"threads cv2 {cv2.getNumThreads()} torch {torch.get_num_threads()}, "
        f"cpu: {platform.processor() or platform.machine()}"
    )
    print(f"{'preset':<10} {'size':>10} {'pairs/s':>9} {'ms/pair':>8}")
    for height, width in ((256, 256), (720, 1280)):
        frames = translating_frames(args.frames, height, width, (2.3, -1.2))
        for preset in PRESETS:
            rate = pairs_per_second(OpenCVFlow(preset), frames, args.repeats)
            print(f"{preset:<10} {f'{width}x{height}':>10} {rate:9.1f} {1000 / rate:8.1f}")
    cache_demo(cast(Preset, args.cache_preset), 256, 32)


if __name__ == "__main__":
    main()
