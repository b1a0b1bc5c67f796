"""How close the exposure-ratio fit comes on the scenario suite, video by video.

For every video of the chosen role and families (:func:`ttblur.scenarios.scenario_suite`), the
default detector picks the pseudo-sharp patches and
:func:`ttblur.stages.exposure.estimate_exposure` fits the ratio with the detector's maps, as
the suite benchmark does; the script prints the true ratio, the fit with its bootstrap spread
(or the reason it was refused), and per family how many fits are within 0.15 of the truth.
No network is adapted.

Usage::

    python benchmarks/exposure_fit.py --role evaluation --families pan handheld
    python benchmarks/exposure_fit.py --role development          # all families
    python benchmarks/exposure_fit.py --role evaluation --first-video 3   # a later batch
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from suite_cli import scenario_specs

from ttblur.pipeline import AdaptPipeline
from ttblur.scenarios import FAMILIES, make_scenario
from ttblur.stages.exposure import estimate_exposure
from ttblur.stages.flow import OpenCVFlow

#: A fit this close to the truth counts as right (issue 17's bar).
TOLERANCE = 0.15


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--role", choices=["evaluation", "development"], default="evaluation")
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--videos", type=int, default=3, help="videos per family")
    parser.add_argument(
        "--first-video", type=int, default=0, help="index of each family's first video"
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=[192, 256], metavar=("H", "W"))
    parser.add_argument("--patch-size", type=int, default=128)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    detector = AdaptPipeline.from_config({"rsdm": {"patch_size": args.patch_size}}).detector
    flow = OpenCVFlow()
    specs = scenario_specs(args)
    print("| family | photo | seed | true ratio | fit | note |")
    print("|---|---|---|---|---|---|")
    tally: dict[str, list[str]] = {}
    for spec in specs:
        video = make_scenario(spec)
        selection = detector.select(video.blurry)
        fit = estimate_exposure(
            video.blurry, selection.patches, flow, magnitude=selection.magnitude
        )
        truth = float(video.exposure_ratio)
        if fit.ratio is None:
            shown, outcome = "refused", "refused"
        else:
            shown = f"{fit.ratio:.1f} +- {fit.ratio_std or 0.0:.2f}"
            outcome = "right" if abs(fit.ratio - truth) <= TOLERANCE + 1e-9 else "wrong"
        tally.setdefault(spec.family, []).append(outcome)
        note = (fit.note or "").split(":")[0]
        print(f"| {spec.family} | {spec.photo} | {spec.seed} | {truth:.2f} | {shown} | {note} |")
    print()
    for family, outcomes in tally.items():
        counts = {k: outcomes.count(k) for k in ("right", "refused", "wrong")}
        print(
            f"{family}: {counts['right']} within {TOLERANCE}, {counts['refused']} refused, "
            f"{counts['wrong']} wrong"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
