"""Scenario-suite benchmark: does adaptation hold on footage it was not tuned on?

For every video of ``ttblur.scenarios.scenario_suite(role)`` (eight families: steady pan at full
exposure, hand-held with still moments, rotation and zoom, moving objects, rolling shutter,
H.264, low light, tone curves; exact ground truth) and every reference network named by
``--models``, it scores against the sharp frames (``ttblur.metrics``, RGB, all frames):

* the blurry input,
* the unadapted network,
* the network after ``ttblur.adapt`` with each configuration named by ``--configs``
  (:data:`CONFIGS`): ``default`` (``AdaptConfig()``), ``paper`` (the paper's pseudo pairs:
  ``dbcgm.magnitude = "bme"``, ``synthesis.clip = "original"``), ``bme-clips``, ``exposure``
  (the previous default: one blur length per video), ``no-guard`` (the epoch chosen by
  the held-out pseudo pairs alone), ``blurred-frames-guard`` (the guard's sharp-neighbour
  score on the blurred frames only, ``guard.still_frames = False``, the default until
  evaluation run 16), ``video-lengths`` (``dbcgm.lengths = "video"``: the
  pairs' blur lengths follow the video's own blur distribution, near-identity pairs
  included), ``video-lengths-no-guard``, ``pyramid-flow`` (``dbcgm.flow = "pyramid"``, the
  batched torch flow, for every flow of the run), ``pyramid-flow-no-guard`` and ``lr-2e-4``
  (the fine-tuning learning rate before 1e-4).

Per video it prints the adapted - unadapted PSNR change, the worst per-frame change, the change
on frames whose true blur is under 1 px, the true and fitted exposure ratios (with the fit's
spread), whether the run reverted, and the guard's score change beside the true change of the
epoch it keeps; then per family means and the suite summary (mean, worst video, videos below
-0.1 dB, the guard's Spearman correlation, the exposure fit per family). The guard runs with
``rollback = False`` and a rollback is applied afterwards (it returns the unadapted weights bit
for bit, so the rolled-back row is the unadapted row). ``adapt`` never sees the ground truth.

The ``evaluation`` role (default) uses only held-out photos and seeds >= 10000: report on it,
never tune on it; tune on ``--role development``.

Usage::

    PYTHONPATH=src python benchmarks/scenario_suite.py --quick                 # minutes
    PYTHONPATH=src python benchmarks/scenario_suite.py --models tiny base --out suite.md
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from suite_cli import frame_blur_px

import ttblur
from ttblur import metrics
from ttblur.config import AdaptConfig
from ttblur.scenarios import FAMILIES, ScenarioSpec, make_scenario, scenario_suite
from ttblur.stages.exposure import estimate_exposure
from ttblur.stages.flow import OpenCVFlow

#: Adapted rows: name -> AdaptConfig overrides (JSON-able).
CONFIGS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {},
    "paper": {"dbcgm": {"magnitude": "bme"}, "synthesis": {"clip": "original"}},
    "bme-clips": {"dbcgm": {"magnitude": "bme"}, "synthesis": {"clip": "synthesized"}},
    "exposure": {"dbcgm": {"magnitude": "exposure"}, "synthesis": {"clip": "synthesized"}},
    "no-guard": {"guard": {"enabled": False}},
    "blurred-frames-guard": {"guard": {"still_frames": False}},
    "lr-2e-4": {"finetune": {"lr": 2e-4}},
    "video-lengths": {"dbcgm": {"lengths": "video"}},
    "video-lengths-no-guard": {"dbcgm": {"lengths": "video"}, "guard": {"enabled": False}},
    "pyramid-flow": {"dbcgm": {"flow": "pyramid"}},
    "pyramid-flow-no-guard": {"dbcgm": {"flow": "pyramid"}, "guard": {"enabled": False}},
}
#: A frame counts as nearly sharp when its mean true blur path is below this (px).
SHARP_PX = 1.0
#: A video "loses" when adapted - unadapted is below this (dB).
LOSS_DB = -0.1


@dataclass
class Settings:
    """What to run. Defaults are the full benchmark."""

    role: str = "evaluation"
    families: tuple[str, ...] = tuple(FAMILIES)
    videos_per_family: int = 3
    #: Index of each family's first video (a later batch, unseen by earlier runs).
    first_video: int = 0
    frames: int = 24
    size: tuple[int, int] = (256, 320)
    patch_size: int = 128
    models: tuple[str, ...] = ("tiny",)
    configs: tuple[str, ...] = ("default", "paper")
    epochs: int | None = None
    seed: int = 0
    threads: int = 1


@dataclass
class VideoRow:
    """Scores of one (model, video, config)."""

    model: str
    family: str
    photo: str
    seed: int
    config: str
    exposure_true: float
    exposure_fit: float | None
    exposure_std: float | None
    blurry: float
    unadapted: float
    adapted: float
    worst_frame: float
    sharp_frames: int
    sharp_delta: float
    reverted: bool
    seconds: float
    #: The epoch the guard would keep, scored against the truth (what ``guard.rollback =
    #: False`` returns): adapted - unadapted PSNR, and the guard's own score change, dB.
    candidate_delta: float = math.nan
    guard_gain: float = math.nan
    #: Which score the guard used (``AdaptReport.guard_score``) and the gain it needed, dB.
    guard_score: str | None = None
    guard_min_gain_db: float | None = None

    @property
    def guard_margin(self) -> float:
        """The guard's score change in units of the gain it needed (its two scores have
        different scales: this is what ranks runs across them); the raw change when the
        needed gain is 0 or unknown."""
        needed = self.guard_min_gain_db
        return self.guard_gain / needed if needed else self.guard_gain

    @property
    def delta(self) -> float:
        """Adapted - unadapted PSNR, dB."""
        return self.adapted - self.unadapted


@dataclass
class Results:
    settings: Settings
    rows: list[VideoRow] = field(default_factory=list)


def adapt_config(name: str, settings: Settings) -> AdaptConfig:
    """``AdaptConfig`` of an adapted row (its overrides, the patch size, seed and epochs)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown config {name!r}; choose from {', '.join(CONFIGS)}")
    cfg = AdaptConfig.model_validate(CONFIGS[name])
    cfg.seed = settings.seed
    cfg.rsdm.patch_size = settings.patch_size
    # The guard scores but never rolls back here: the benchmark scores the epoch it would
    # keep, and a rollback returns the unadapted weights bit for bit, so the rolled-back
    # result is the unadapted row (applied in ``run``).
    cfg.guard.rollback = False
    if settings.epochs is not None:
        cfg.finetune.epochs = settings.epochs
    return cfg


def suite_specs(settings: Settings) -> list[ScenarioSpec]:
    """The scenario videos ``settings`` names (role, videos per family from the first one,
    frames, size, families)."""
    return scenario_suite(
        settings.role,
        settings.videos_per_family,
        num_frames=settings.frames,
        size=settings.size,
        families=settings.families,
        first=settings.first_video,
    )


def run(settings: Settings, log: Callable[[str], None] = print) -> Results:
    """Run the benchmark; ``log`` receives one line per (model, video)."""
    torch.set_num_threads(settings.threads)
    results = Results(settings)
    specs = suite_specs(settings)
    flow = OpenCVFlow()
    for model_name in settings.models:
        model = ttblur.reference_model(model_name)
        for spec in specs:
            video = make_scenario(spec)
            rows = score_video(
                model,
                VideoCase(
                    model=model_name,
                    family=spec.family,
                    photo=spec.photo,
                    seed=spec.seed,
                    exposure_true=float(video.exposure_ratio),
                    blurry=video.blurry,
                    sharp=video.sharp,
                    sharp_mask=torch.tensor(frame_blur_px(video.magnitude)) < SHARP_PX,
                ),
                settings,
                flow,
            )
            results.rows.extend(rows)
            log(describe(rows))
    return results


@dataclass
class VideoCase:
    """One (network, video) to score: its labels and frames.

    ``blurry``, ``sharp``: ``(T, 3, H, W)`` in ``[0, 1]``; ``sharp_mask``: ``(T,)`` bool, the
    frames whose true blur is under :data:`SHARP_PX` at every pixel."""

    model: str
    family: str
    photo: str
    seed: int
    exposure_true: float
    blurry: torch.Tensor
    sharp: torch.Tensor
    sharp_mask: torch.Tensor


def score_video(
    model: torch.nn.Module, case: VideoCase, settings: Settings, flow: OpenCVFlow
) -> list[VideoRow]:
    """Adapt ``model`` to ``case.blurry`` with each of ``settings.configs`` and score the
    blurry input, the unadapted and the adapted model against ``case.sharp``: one row per
    configuration. ``adapt`` never sees the ground truth."""
    blurry, sharp = case.blurry, case.sharp
    blurry_psnr = float(metrics.psnr(blurry, sharp))
    unadapted = ttblur.deblur(model, blurry, progress=False)
    base_frames = metrics.psnr(unadapted.clamp(0, 1), sharp, reduction="none")
    base_psnr = float(base_frames.mean())  # metrics.psnr's "mean" reduction
    rows = []
    exposure = None
    for name in settings.configs:
        start = time.perf_counter()
        result = ttblur.adapt(model, blurry, config=adapt_config(name, settings), progress=False)
        report = result.report
        if exposure is None:  # a diagnostic per video, on the first run's patches
            exposure = estimate_exposure(
                blurry, result.selection.patches, flow, magnitude=result.selection.magnitude
            )
        candidate = metrics.psnr(
            result.deblur(blurry, progress=False).clamp(0, 1), sharp, reduction="none"
        )
        seconds = time.perf_counter() - start
        rolled_back = report.guard_rejected  # what guard.rollback = True returns
        adapted = base_frames if rolled_back else candidate
        frames = adapted - base_frames
        mask = case.sharp_mask
        rows.append(
            VideoRow(
                model=case.model,
                family=case.family,
                photo=case.photo,
                seed=case.seed,
                config=name,
                exposure_true=case.exposure_true,
                exposure_fit=exposure.ratio,
                exposure_std=exposure.ratio_std,
                blurry=blurry_psnr,
                unadapted=base_psnr,
                adapted=float(adapted.mean()),
                worst_frame=float(frames.min()),
                sharp_frames=int(mask.sum()),
                sharp_delta=float(frames[mask].mean()) if mask.any() else math.nan,
                reverted=report.reverted or rolled_back,
                seconds=seconds,
                candidate_delta=float(candidate.mean()) - base_psnr,
                guard_gain=_guard_gain(report.baseline_guard_score, report.guard_scores),
                guard_score=report.guard_score,
                guard_min_gain_db=report.guard_min_gain_db,
            )
        )
    return rows


def describe(rows: Sequence[VideoRow]) -> str:
    """One log line for one (model, video): its PSNRs per configuration."""
    first = rows[0]
    parts = ", ".join(f"{r.config} {r.adapted:.2f} ({r.delta:+.2f})" for r in rows)
    return (
        f"{first.model} {first.family} {first.photo} seed {first.seed}: blurry "
        f"{first.blurry:.2f}, unadapted {first.unadapted:.2f}, {parts}"
    )


def _guard_gain(baseline: float | None, scores: Sequence[float]) -> float:
    """Best epoch's guard score minus the unadapted model's, dB (NaN without a guard)."""
    return max(scores) - baseline if baseline is not None and scores else math.nan


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _signed(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+.2f}"


def format_videos(results: Results) -> str:
    """One Markdown row per (model, video, config)."""
    lines = [
        "| model | family | photo | seed | config | exposure true / fit | blurry | unadapted "
        "| adapted | vs unadapted | worst frame | sharp frames: change | reverted "
        "| guard: kept epoch true change / score change |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results.rows:
        fit = "-" if r.exposure_fit is None else f"{r.exposure_fit:.2f}"
        if r.exposure_std is not None:
            fit += f" +- {r.exposure_std:.2f}"
        sharp = f"{r.sharp_frames}: {r.sharp_delta:+.2f}" if r.sharp_frames else "0: -"
        lines.append(
            f"| {r.model} | {r.family} | {r.photo} | {r.seed} | {r.config} | "
            f"{r.exposure_true:.2f} / {fit} | {r.blurry:.2f} | {r.unadapted:.2f} | "
            f"{r.adapted:.2f} | {r.delta:+.2f} | {r.worst_frame:+.2f} | {sharp} | "
            f"{'yes' if r.reverted else 'no'} | {_signed(r.candidate_delta)} / "
            f"{_signed(r.guard_gain)} |"
        )
    return "\n".join(lines)


def format_summary(results: Results) -> str:
    """Per (model, config, family) means, then the suite summary per (model, config)."""
    lines = [
        "| model | config | family | videos | blurry | unadapted | adapted | vs unadapted "
        "| vs blurry | worst video | worst frame | sharp-frame change | reverted |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r.model, r.config) for r in results.rows}, key=lambda k: (k[0], k[1]))
    for model, config in keys:
        mine = [r for r in results.rows if (r.model, r.config) == (model, config)]
        groups = [(f, [r for r in mine if r.family == f]) for f in results.settings.families]
        groups.append(("**all**", mine))
        for family, rows in groups:
            if not rows:
                continue
            lines.append(
                f"| {model} | {config} | {family} | {len(rows)} | "
                f"{_mean([r.blurry for r in rows]):.2f} | "
                f"{_mean([r.unadapted for r in rows]):.2f} | "
                f"{_mean([r.adapted for r in rows]):.2f} | "
                f"{_mean([r.delta for r in rows]):+.2f} | "
                f"{_mean([r.adapted - r.blurry for r in rows]):+.2f} | "
                f"{min(r.delta for r in rows):+.2f} | "
                f"{min(r.worst_frame for r in rows):+.2f} | "
                f"{_signed(_mean([r.sharp_delta for r in rows]))} | "
                f"{sum(r.reverted for r in rows)} |"
            )
    runs = {k: [r for r in results.rows if (r.model, r.config) == k] for k in keys}
    losing = {k: sum(r.delta < LOSS_DB for r in rows) for k, rows in runs.items()}
    perfect = {k: perfect_keep(rows) for k, rows in runs.items()}
    notes = [
        f"Videos below {LOSS_DB} dB vs unadapted: "
        + ", ".join(f"{m}/{c} {n}" for (m, c), n in losing.items())
        + ".",
        f"Sharp-frame change: adapted - unadapted PSNR on frames whose true blur is under "
        f"{SHARP_PX:g} px at every pixel (mean over videos that have such frames).",
        "Guard: Spearman rank correlation of the guard's score change (in units of the gain "
        "it needed: its sharp-neighbour and re-blur scores differ in scale) with the true PSNR "
        "change of the epoch it keeps, over all runs: "
        + ", ".join(f"{m}/{c} {_rho(results.rows, (m, c))}" for (m, c) in keys)
        + f"; all runs {_rho(results.rows, None)}.",
        "Perfect keep-or-rollback (the guard's epoch kept exactly where it gains: the most a "
        "better keep decision could give with the same epochs), mean vs unadapted: "
        + ", ".join(f"{m}/{c} {_signed(v)}" for (m, c), v in perfect.items())
        + ".",
        "Exposure fit (ttblur.stages.exposure.estimate_exposure on the first configuration's "
        "pseudo-sharp patches), per "
        "family: "
        + "; ".join(_exposure_summary(results, f) for f in results.settings.families)
        + ".",
    ]
    return "\n".join([*lines, "", *notes])


def perfect_keep(rows: Sequence[VideoRow]) -> float:
    """Mean change vs the unadapted model had each run kept the guard's epoch exactly where it
    gains (``max(candidate_delta, 0)``); NaN when no run has a guard's epoch."""
    return _mean([max(r.candidate_delta, 0.0) for r in rows if not math.isnan(r.candidate_delta)])


def _rho(rows: Sequence[VideoRow], key: tuple[str, str] | None) -> str:
    chosen = [r for r in rows if key is None or (r.model, r.config) == key]
    value = metrics.spearman([r.guard_margin for r in chosen], [r.candidate_delta for r in chosen])
    return "-" if math.isnan(value) else f"{value:+.2f}"


def _exposure_summary(results: Results, family: str) -> str:
    # One row per video: the first model's and config's (the fit reads the detector's
    # patches, not the network: every model's row holds the same fit).
    first = (results.settings.models[0], results.settings.configs[0])
    rows = [r for r in results.rows if r.family == family and (r.model, r.config) == first]
    fitted = [r for r in rows if r.exposure_fit is not None]
    if not rows:
        return f"{family} -"
    errors = [abs(r.exposure_fit - r.exposure_true) for r in fitted if r.exposure_fit is not None]
    worst = f", worst error {max(errors):.2f}" if errors else ""
    return f"{family} {len(fitted)}/{len(rows)} fitted{worst}"


def format_report(
    results: Results, command: str, seconds: float, *, source: str = "scenario suite"
) -> str:
    """The whole report: what ran (``source``: the videos' generator), the summary and the
    rows."""
    s = results.settings
    header = (
        f"Command: `{command}`\n\n{source[:1].upper()}{source[1:]}, {s.role} role, "
        f"{len(s.families)} families x {s.videos_per_family} videos (from index "
        f"{s.first_video}), {s.frames} frames of {s.size[0]}x{s.size[1]}, patch "
        f"{s.patch_size} px, epochs {s.epochs if s.epochs is not None else 'default'}, seed "
        f"{s.seed}, {s.threads} torch thread(s). Total {seconds:.0f} s.\n"
    )
    return "\n".join([header, format_summary(results), "", format_videos(results)]) + "\n"


def emit(
    results: Results,
    command: str,
    seconds: float,
    out: Path | None,
    json_path: Path | None,
    *,
    source: str = "scenario suite",
) -> None:
    """Print the report; also write it to ``out`` and the rows to ``json_path`` when given."""
    report = format_report(results, command.rstrip(), seconds, source=source)
    print()
    print(report, end="")
    if out is not None:
        out.write_text(report, encoding="utf-8")
    if json_path is not None:
        rows = [asdict(r) | {"delta": r.delta} for r in results.rows]
        json_path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 video per family, small frames")
    parser.add_argument("--role", choices=["evaluation", "development"], default="evaluation")
    parser.add_argument("--families", nargs="+", default=None, choices=list(FAMILIES))
    parser.add_argument("--videos", type=int, default=None, help="videos per family")
    parser.add_argument(
        "--first-video", type=int, default=None, help="index of each family's first video"
    )
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--patch-size", type=int, default=None)
    parser.add_argument("--models", nargs="+", default=None, help="reference_model names")
    parser.add_argument("--configs", nargs="+", default=None, choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=None, help="override finetune.epochs")
    parser.add_argument("--seed", type=int, default=0, help="AdaptConfig.seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.quick:
        settings.videos_per_family, settings.frames = 1, 12
        settings.size, settings.patch_size = (128, 160), 64
    overrides = {
        "families": args.families,
        "videos_per_family": args.videos,
        "first_video": args.first_video,
        "frames": args.frames,
        "size": args.size,
        "patch_size": args.patch_size,
        "models": args.models,
        "configs": args.configs,
    }
    for name, value in overrides.items():
        if value is not None:  # lists from nargs become the tuples Settings holds
            setattr(settings, name, tuple(value) if isinstance(value, list) else value)
    settings.role, settings.epochs = args.role, args.epochs
    settings.seed, settings.threads = args.seed, args.threads
    return settings, args


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    settings, args = parse_args(argv)
    words = list(sys.argv[1:] if argv is None else argv)
    command = "PYTHONPATH=src python benchmarks/scenario_suite.py " + shlex.join(words)
    start = time.perf_counter()
    results = run(settings)
    emit(results, command, time.perf_counter() - start, args.out, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
