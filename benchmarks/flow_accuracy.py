"""OpenCV's DIS against the batched torch ``PyramidFlow``: accuracy and speed on scenario videos.

For every video of the chosen role (:func:`ttblur.scenarios.scenario_suite`), the flow between
each pair of consecutive blurry frames by each estimator, scored by the photometric error of
the second frame warped back onto the first (mean absolute grey difference, a 16 px border left
out; lower is better; "no motion" is the zero flow), and by the agreement of the two flows'
directions where DIS moves more than 1 px (mean cosine). Seconds are the estimators' own, on
``--device`` for ``PyramidFlow`` (DIS always runs on the CPU).

Usage::

    python benchmarks/flow_accuracy.py --role evaluation
    python benchmarks/flow_accuracy.py --role evaluation --device cuda      # on a GPU machine
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ttblur.scenarios import FAMILIES, make_scenario, scenario_suite
from ttblur.stages.flow import OpenCVFlow, luma, warp_back
from ttblur.stages.pyramid_flow import PyramidFlow

_BORDER = 16


def photometric_error(src: torch.Tensor, dst: torch.Tensor, flow: torch.Tensor) -> float:
    """Mean |grey(dst) sampled at x + flow(x) - grey(src)(x)| inside the border."""
    warped, _ = warp_back(luma(dst)[:, None], flow)
    inner = (slice(None), slice(None), slice(_BORDER, -_BORDER), slice(_BORDER, -_BORDER))
    return float((warped - luma(src)[:, None])[inner].abs().mean())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--role", choices=["evaluation", "development"], default="evaluation")
    parser.add_argument("--videos", type=int, default=2, help="videos per family")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[192, 256], metavar=("H", "W"))
    parser.add_argument("--device", default="cpu", help="PyramidFlow's device")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dis, pyramid = OpenCVFlow("medium"), PyramidFlow(device=args.device)
    specs = scenario_suite(
        args.role,
        args.videos,
        num_frames=args.frames,
        size=tuple(args.size),
        families=list(FAMILIES),
    )
    shown = sys.argv[1:] if argv is None else list(argv)
    print(f"`python benchmarks/flow_accuracy.py {' '.join(shown)}`".replace(" `", "`"))
    print()
    print("| family | videos | no motion | DIS medium | PyramidFlow | direction agreement |")
    print("|---|---|---|---|---|---|")
    seconds = {"dis": 0.0, "pyramid": 0.0}
    totals: dict[str, list[float]] = {"none": [], "dis": [], "pyramid": []}
    for family in FAMILIES:
        rows: dict[str, list[float]] = {"none": [], "dis": [], "pyramid": [], "cos": []}
        for spec in (s for s in specs if s.family == family):
            video = make_scenario(spec).blurry
            src, dst = video[:-1], video[1:]
            start = time.perf_counter()
            by_dis = dis(src, dst)
            seconds["dis"] += time.perf_counter() - start
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            by_pyramid = pyramid(src, dst)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds["pyramid"] += time.perf_counter() - start
            rows["none"].append(photometric_error(src, dst, torch.zeros_like(by_dis)))
            rows["dis"].append(photometric_error(src, dst, by_dis))
            rows["pyramid"].append(photometric_error(src, dst, by_pyramid))
            inner = (slice(None), slice(_BORDER, -_BORDER), slice(_BORDER, -_BORDER))
            cos = F.cosine_similarity(by_dis, by_pyramid, dim=1)[inner]
            moving = torch.linalg.vector_norm(by_dis, dim=1)[inner] > 1.0
            rows["cos"].append(float(cos[moving].mean()) if moving.any() else float("nan"))
        for key in totals:
            totals[key] += rows[key]

        def mean(values: list[float]) -> float:
            return sum(values) / len(values)

        print(
            f"| {family} | {len(rows['dis'])} | {mean(rows['none']):.4f} | {mean(rows['dis']):.4f} "
            f"| {mean(rows['pyramid']):.4f} | {mean(rows['cos']):+.2f} |"
        )
    count = len(totals["dis"])
    print(
        f"| **all** | {count} | {sum(totals['none']) / count:.4f} | "
        f"{sum(totals['dis']) / count:.4f} | {sum(totals['pyramid']) / count:.4f} | |"
    )
    pairs = count * (args.frames - 1)
    print()
    print(
        f"{pairs} pairs of {args.size[0]}x{args.size[1]}: DIS {seconds['dis']:.1f} s (CPU, "
        f"{args.threads} threads), PyramidFlow {seconds['pyramid']:.1f} s ({args.device})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
