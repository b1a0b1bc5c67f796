"""How well does each no-ground-truth estimate follow a frame's true blur?

For every development-role scenario video (``ttblur.scenarios``, exact per-pixel blur known),
it compares the true mean blur of each frame with two estimates that need no ground truth:

* ``bme``: the detector's blur magnitude map of the frame (``Selection.magnitude``), the
  paper's per-patch source, used by ``dbcgm.magnitude = "bme"`` and by the guard;
* ``rho*flow``: the optical-flow motion around the frame times the video's *true* exposure
  ratio (the best the ``"exposure"`` shortcut could do with a perfect ratio fit).

It prints, per video, the mean of each and its Pearson correlation with the truth over the
frames (``nan`` when the truth is constant, as on a steady pan).

Usage::

    PYTHONPATH=src python benchmarks/blur_estimates.py [--videos 2] [--frames 12]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import torch

from ttblur.pipeline import AdaptPipeline
from ttblur.scenarios import make_scenario, scenario_suite
from ttblur.stages.exposure import frame_motion


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 1e-12 else math.nan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--videos", type=int, default=2, help="videos per family")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = AdaptPipeline.from_config({"rsdm": {"patch_size": 128}})
    detector, flow = pipe.detector, pipe.flow
    print(
        "| family | seed | true rho | true blur px | bme px | r(bme) | rho*flow px | r(rho*flow) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    specs = scenario_suite(
        "development", args.videos, num_frames=args.frames, size=tuple(args.size)
    )
    for spec in specs:
        video = make_scenario(spec)
        truth = video.magnitude.flatten(1).mean(dim=1)
        bme = detector.select(video.blurry).magnitude.flatten(1).mean(dim=1)
        pair = flow(video.blurry[:-1], video.blurry[1:])
        lengths = torch.hypot(pair[:, 0], pair[:, 1]).flatten(1).mean(dim=1)
        shortcut = video.exposure_ratio * frame_motion(lengths)
        print(
            f"| {spec.family} | {spec.seed} | {video.exposure_ratio:.2f} | {truth.mean():.1f} | "
            f"{bme.mean():.1f} | {_pearson(truth, bme):+.2f} | {shortcut.mean():.1f} | "
            f"{_pearson(truth, shortcut):+.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
