"""How well does each no-ground-truth estimate follow a frame's true blur?

For every development-role scenario video (``ttblur.scenarios``, exact per-pixel blur known),
it compares the true mean blur of each frame with two estimates that need no ground truth:

* ``bme``: the detector's blur magnitude map of the frame (``Selection.magnitude``), the
  paper's per-patch source, used by ``dbcgm.magnitude = "bme"`` and by the guard;
* ``rho*flow``: the optical-flow motion around the frame times the video's *true* exposure
  ratio (the best the ``"exposure"`` shortcut could do with a perfect ratio fit).

It prints, per video, the mean of each and its Pearson correlation with the truth over the
frames (``nan`` when the truth is constant, as on a steady pan).

``--sharp-frames`` prints instead what the guard's sharp-frame rule sees
(``guard.sharp_px``: a frame whose mean BME reading is under it can be a reference): per video,
the frames whose true mean blur is under 1 px, how many of them read under ``--sharp-px`` (the
shipped ``guard.sharp_px`` by default), their readings (mean, largest), and the smallest and
median reading of the frames truly blurred by more than 2 px. A reading that does not separate
the two groups cannot find the video's sharp frames at any threshold.

Usage::

    PYTHONPATH=src python benchmarks/blur_estimates.py [--videos 2] [--frames 12] \\
        [--role development] [--sharp-frames]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import torch
from suite_cli import scenario_specs

from ttblur.config import GuardConfig
from ttblur.pipeline import AdaptPipeline
from ttblur.scenarios import ScenarioSpec, make_scenario
from ttblur.stages.exposure import frame_motion


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 1e-12 else math.nan


def _cell(values: torch.Tensor, how: str) -> str:
    """``values``' mean, max, min or median to 0.1 px, ``-`` when empty."""
    if values.numel() == 0:
        return "-"
    reduce = {"mean": torch.mean, "max": torch.max, "min": torch.min, "median": torch.median}
    return f"{float(reduce[how](values)):.1f}"


def sharp_frame_row(truth: torch.Tensor, bme: torch.Tensor, sharp_px: float) -> list[str]:
    """The sharp-frame cells of one video from the frames' true mean blur ``(T,)`` and mean
    BME reading ``(T,)`` px: truly sharp frames (< 1 px), how many read under ``sharp_px``,
    their readings' mean / largest, and the blurred frames' (> 2 px) smallest / median."""
    sharp, blurred = bme[truth < 1.0], bme[truth > 2.0]
    return [
        str(sharp.numel()),
        str(int((sharp < sharp_px).sum())),
        f"{_cell(sharp, 'mean')} / {_cell(sharp, 'max')}",
        f"{_cell(blurred, 'min')} / {_cell(blurred, 'median')}",
    ]


def sharp_frames_table(pipe: AdaptPipeline, specs: Sequence[ScenarioSpec], sharp_px: float) -> None:
    """Print :func:`sharp_frame_row` for every video of ``specs`` and the share found."""
    print(
        f"| family | seed | photo | sharp frames (true < 1 px) | of them read < {sharp_px:g} px | "
        "bme on them: mean / max px | blurred frames (true > 2 px): bme min / median px |"
    )
    print("|---|---|---|---|---|---|---|")
    found = total = 0
    for spec in specs:
        video = make_scenario(spec)
        truth = video.magnitude.flatten(1).mean(dim=1)
        bme = pipe.detector.select(video.blurry).magnitude.flatten(1).mean(dim=1)
        cells = sharp_frame_row(truth, bme, sharp_px)
        total, found = total + int(cells[0]), found + int(cells[1])
        print(f"| {spec.family} | {spec.seed} | {spec.photo} | " + " | ".join(cells) + " |")
    print(f"\nTruly sharp frames read under {sharp_px:g} px: {found} of {total}.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--videos", type=int, default=2, help="videos per family")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--role", choices=("development", "evaluation"), default="development")
    parser.add_argument("--first-video", type=int, default=0, help="first video of each family")
    parser.add_argument(
        "--sharp-frames", action="store_true", help="the sharp-frame rule's view (module doc)"
    )
    parser.add_argument(
        "--sharp-px",
        type=float,
        default=GuardConfig().sharp_px,
        help="reading under which a frame counts as sharp (default: guard.sharp_px)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = AdaptPipeline.from_config({"rsdm": {"patch_size": 128}})
    specs = scenario_specs(args)
    if args.sharp_frames:
        sharp_frames_table(pipe, specs, args.sharp_px)
        return 0
    detector, flow = pipe.detector, pipe.flow
    print(
        "| family | seed | true rho | true blur px | bme px | r(bme) | rho*flow px | r(rho*flow) |"
    )
    print("|---|---|---|---|---|---|---|---|")
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
