"""Command-line parts shared by the benchmarks that run over the scenario suite
(``sharp_frames.py``, ``pseudo_targets.py``, ``blur_estimates.py``, ``exposure_fit.py``): the
suite's arguments, the videos they name and the closing lines."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import Tensor

from ttblur.scenarios import FAMILIES, ScenarioSpec, scenario_suite


def frame_blur_px(magnitude: Tensor) -> list[float]:
    """The true blur of each frame, px: the longest blur path of any of its pixels.

    A frame counts as sharp only where nothing in it is blurred: the frame's mean would call
    a still background with a 10 px blurred object sharp (``moving_object``).

    Shape:
        - magnitude: ``(T, 1, H, W)`` (``SyntheticVideo.magnitude`` / ``Scenario.magnitude``).
    """
    return magnitude.flatten(1).amax(dim=1).tolist()


def add_suite_arguments(parser: argparse.ArgumentParser, *, role: str) -> None:
    """``--models --families --role --videos --frames --size --threads --json`` (``role``:
    the default of ``--role``)."""
    parser.add_argument("--models", nargs="+", default=["tiny"], help="names or folders")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--role", choices=["evaluation", "development"], default=role)
    parser.add_argument("--videos", type=int, default=3, help="videos per family")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=[192, 256], metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")


def suite_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The suite's ``role``, ``videos``, ``frames`` and ``size`` from parsed arguments."""
    return dict(
        role=args.role, videos=args.videos, frames=args.frames, size=(args.size[0], args.size[1])
    )


def scenario_specs(args: argparse.Namespace) -> list[ScenarioSpec]:
    """The scenario videos parsed arguments name: ``--role``, ``--videos`` per family,
    ``--frames``, ``--size``, and ``--families`` / ``--first-video`` where the benchmark
    has them (default: every family, from the first video)."""
    return scenario_suite(
        args.role,
        args.videos,
        num_frames=args.frames,
        size=(args.size[0], args.size[1]),
        families=tuple(getattr(args, "families", FAMILIES)),
        first=getattr(args, "first_video", 0),
    )


def finish(
    table: str,
    rows: Sequence[Any],
    script: str,
    argv: Sequence[str] | None,
    started: float,
    json_path: Path | None,
) -> None:
    """Print the table, the seconds since ``started`` and the command that reproduces it
    (``script``: the benchmark's ``__file__``); write ``rows`` (dataclasses) to
    ``json_path`` when given."""
    print(table)
    name = f"benchmarks/{Path(script).name}"
    command = shlex.join(["python", name, *(argv or sys.argv[1:])])
    print(f"\n{time.perf_counter() - started:.0f} s; command: {command}")
    if json_path:
        json_path.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n", "utf-8")
