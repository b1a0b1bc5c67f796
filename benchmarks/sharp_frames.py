"""How a deblurring network treats each kind of frame of the scenario families.

A network that fuses misaligned neighbours into a sharp frame destroys it; the mean PSNR of a
video hides that behind its blurred frames. For every model (``--models``: names of
``ttblur.reference_model`` or weights folders) and every scenario video (``ttblur.scenarios``,
role ``evaluation`` by default: held-out photos and seeds), this runs ``ttblur.deblur`` (no
adaptation) and reports per family the frames of each group of
``ttblur.training.reference_eval.blur_groups``: moving (true blur > 2 px), nearly still
(<= 1 px) and nearly still beside a moving frame, each as blurry -> restored PSNR (mean over the
frames), and the worst frame of the family (restored minus blurry).

Usage::

    PYTHONPATH=src python benchmarks/sharp_frames.py --models tiny /path/to/weights \\
        --videos 3 --frames 16 --size 192 256
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from suite_cli import add_suite_arguments, finish, frame_blur_px, suite_kwargs

import ttblur
from ttblur import metrics
from ttblur.nets.reference import ReferenceNet
from ttblur.scenarios import make_scenario, scenario_suite
from ttblur.training.reference_eval import blur_groups

#: The frame groups reported, in table order.
GROUPS = ("moving", "still", "isolated")
#: Table headings of the groups.
HEADINGS = {"moving": "moving", "still": "nearly still", "isolated": "still beside moving"}


@dataclass
class FamilyRow:
    """One model on one family (``family = "all"``: every video): per group the frames'
    PSNR of the blurry input and of the restored output, and the worst frame."""

    model: str
    family: str
    videos: int = 0
    blurry: dict[str, list[float]] = field(default_factory=lambda: {g: [] for g in GROUPS})
    restored: dict[str, list[float]] = field(default_factory=lambda: {g: [] for g in GROUPS})
    worst_gain: float = float("inf")
    worst_frame: str = ""

    def add(self, name: str, blurry: list[float], restored: list[float], blur: list[float]) -> None:
        """Add one video's per-frame PSNRs (``name`` labels its worst frame)."""
        self.videos += 1
        for t, groups in enumerate(blur_groups(blur)):
            for group in groups:
                self.blurry[group].append(blurry[t])
                self.restored[group].append(restored[t])
            gain = restored[t] - blurry[t]
            if gain < self.worst_gain:
                self.worst_gain, self.worst_frame = gain, f"{name} t={t} ({blur[t]:.1f} px)"

    @classmethod
    def pooled(cls, model: str, rows: Sequence[FamilyRow]) -> FamilyRow:
        """The ``"all"`` row of ``rows`` (one model's families): their frames pooled, the
        worst frame labelled with its family."""
        total = cls(model, "all", videos=sum(r.videos for r in rows))
        for r in rows:
            for group in GROUPS:
                total.blurry[group] += r.blurry[group]
                total.restored[group] += r.restored[group]
            if r.worst_gain < total.worst_gain:
                total.worst_gain, total.worst_frame = r.worst_gain, f"{r.family} {r.worst_frame}"
        return total

    def cell(self, group: str) -> str:
        """``n: blurry -> restored (gain)`` for a group, ``-`` without frames."""
        before, after = self.blurry[group], self.restored[group]
        if not before:
            return "-"
        b, r = sum(before) / len(before), sum(after) / len(after)
        return f"{len(before)}: {b:.2f} -> {r:.2f} ({r - b:+.2f})"


def frame_psnrs(
    model: ReferenceNet, family: str, spec_kwargs: dict[str, Any]
) -> list[tuple[str, list[float], list[float], list[float]]]:
    """Per video of ``family``: its name and the per-frame blurry / restored PSNR and blur."""
    out = []
    for spec in scenario_suite(families=(family,), **spec_kwargs):
        video = make_scenario(spec)
        restored = ttblur.deblur(model, video.blurry, spec=model.spec, progress=False)
        restored = restored.clamp(0, 1)
        blurry = [float(metrics.psnr(b, s)) for b, s in zip(video.blurry, video.sharp)]
        after = [float(metrics.psnr(r, s)) for r, s in zip(restored, video.sharp)]
        blur = frame_blur_px(video.magnitude)
        out.append((f"{spec.photo}/{spec.seed}", blurry, after, blur))
    return out


def run(
    models: Sequence[str],
    families: Sequence[str],
    *,
    role: str,
    videos: int,
    frames: int,
    size: tuple[int, int],
) -> list[FamilyRow]:
    """Every model on every family, then an ``"all"`` row per model."""
    spec_kwargs: dict[str, Any] = dict(
        role=role, videos_per_family=videos, num_frames=frames, size=size
    )
    rows = []
    for name in models:
        model = ttblur.reference_model(name)
        mine = []
        for family in families:
            row = FamilyRow(name, family)
            for video in frame_psnrs(model, family, spec_kwargs):
                row.add(*video)
            mine.append(row)
            print(f"{name} {family}: {row.cell('isolated')}", file=sys.stderr, flush=True)
        rows += [*mine, FamilyRow.pooled(name, mine)]
    return rows


def format_table(rows: Sequence[FamilyRow]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| model | family | videos | "
        + " | ".join(f"{HEADINGS[g]}: frames, blurry -> restored dB" for g in GROUPS)
        + " | worst frame: restored - blurry |",
        "|---|---|---|" + "---|" * (len(GROUPS) + 1),
    ]
    for r in rows:
        cells = " | ".join(r.cell(g) for g in GROUPS)
        family = f"**{r.family}**" if r.family == "all" else r.family
        worst = f"{r.worst_gain:+.2f} ({r.worst_frame})"
        lines.append(f"| {r.model} | {family} | {r.videos} | {cells} | {worst} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_suite_arguments(parser, role="evaluation")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rows = run(args.models, args.families, **suite_kwargs(args))
    finish(format_table(rows), rows, __file__, argv, started, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
