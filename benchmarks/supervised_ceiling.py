"""How much could fine-tuning on one video give at all? Test-time adaptation against its ceiling.

Issue 17 asks adaptation to lift each shipped network by 1.5 dB on average. The guard can only
choose among the epochs the fine-tuning produces, so this benchmark asks what the fine-tuning
produces when its pairs are perfect. For every network (``--models``: names of
``ttblur.reference_model`` or weights folders) and every video (``--source suite``: the
scenario suite, ``ttblur.scenarios``; ``--source independent``: the clips of
``independent_render.py``, ``--images`` adding photos to its evaluation role), it runs the
shipped ``adapt`` once (its guard scores but does not roll back, as in ``scenario_suite.py``),
then fine-tunes fresh copies of the unadapted network with the shipped recipe
(``FinetuneConfig``, the default L1 loss, the same seed) on three sets of pairs:

* ``pseudo``: the pipeline's own pseudo pairs (``AdaptOutput.pairs``: re-blurred pseudo-sharp
  patches, their blurry neighbours, the observed patch as target), i.e. the shipped fine-tuning
  again;
* ``true@patches``: the same patches, but the real blurry clip as input and the true sharp patch
  as target: what perfect pairs at the places RSDM chose would give;
* ``true@all``: the same with patches tiled over every frame (``ceil(H/p) x ceil(W/p)`` per
  frame): supervised fine-tuning on the whole video's ground truth, the ceiling of this recipe.

The ground truth chooses the epoch in each (the true PSNR of the whole restored video after
every epoch; the unadapted model counts as epoch 0, so no row is below it), and the truth's
choice is printed beside the last epoch. ``adapt`` itself never sees the ground truth.

A second table prints what each set asks the network to undo: the PSNR of its pairs'
centre input against their target (lower: more degradation to remove). The sets differ in
more than the targets' quality: RSDM's patches are the least blurred places of the video, so
``true@patches`` can carry less degradation than the pseudo pairs synthesize there, or more
(a steady pan, where the pseudo-sharp patch is as blurred as the rest and re-blurring it
changes it less).

Usage::

    PYTHONPATH=src python benchmarks/supervised_ceiling.py --source independent \\
        --models tiny base --threads 2 --images china.jpg flower.jpg
    PYTHONPATH=src python benchmarks/supervised_ceiling.py --source suite --first-video 36
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import fmean

import torch
from independent_clips import clip_specs
from independent_render import KINDS, render_clip
from scenario_suite import Settings, adapt_config, suite_specs
from torch import Tensor, nn

import ttblur
from ttblur import metrics
from ttblur.config import AdaptConfig
from ttblur.finetune import EpochGuard, PseudoPairs, build_pseudo_pairs, copy_model, finetune
from ttblur.pipeline import AdaptPipeline, default_loss
from ttblur.scenarios import FAMILIES, make_scenario
from ttblur.specs import ModelSpec
from ttblur.types import PatchLocation

#: The pair sets, in the order they are reported.
PAIR_SETS = ("pseudo", "true@patches", "true@all")


@dataclass
class CeilingRow:
    """One network on one video: PSNR (dB, mean over frames) of the blurry input, the
    unadapted network and the shipped adaptation, and per pair set the true PSNR of the
    unadapted network (index 0) and after every epoch; ``lesson``: per pair set, the PSNR of
    its pairs' centre input against their target (:func:`lesson_psnr`)."""

    model: str
    family: str
    name: str
    patches: int
    tiles: int
    blurry: float
    unadapted: float
    shipped: float
    rolled_back: bool
    epochs: dict[str, list[float]] = field(default_factory=dict)
    lesson: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def best(self, pairs: str) -> float:
        """The truth's choice among the unadapted model and every epoch, minus unadapted."""
        return max(self.epochs[pairs]) - self.unadapted if self.epochs.get(pairs) else 0.0

    def last(self, pairs: str) -> float:
        """The last epoch, minus unadapted (0 when nothing was fine-tuned)."""
        return self.epochs[pairs][-1] - self.unadapted if self.epochs.get(pairs) else 0.0


def tiles(num_frames: int, height: int, width: int, size: int) -> list[PatchLocation]:
    """Patches of side ``size`` covering every frame: ``ceil(H/size) x ceil(W/size)`` per frame,
    evenly spaced from edge to edge (they overlap where the side is not a multiple)."""
    if size > min(height, width):
        raise ValueError(f"patch size {size} does not fit a {height}x{width} frame")

    def starts(side: int) -> list[int]:
        count = math.ceil(side / size)
        if count == 1:
            return [0]
        return [round(i * (side - size) / (count - 1)) for i in range(count)]

    return [
        PatchLocation(frame=t, top=top, left=left, size=size)
        for t in range(num_frames)
        for top in starts(height)
        for left in starts(width)
    ]


def true_pairs(
    blurry: Tensor, sharp: Tensor, patches: Sequence[PatchLocation], spec: ModelSpec
) -> PseudoPairs:
    """Pairs with the real blurry clip around each patch as input and the true sharp patch
    as target (the layout of ``build_pseudo_pairs``, the observed patch at the centre).

    Shape:
        - blurry, sharp: ``(T, 3, H, W)``.
    """
    observed = torch.stack([p.crop(blurry[p.frame]) for p in patches])
    pairs = build_pseudo_pairs(blurry, list(patches), observed, spec)
    pairs.targets = torch.stack([p.crop(sharp[p.frame]) for p in patches])
    return pairs


def lesson_psnr(pairs: PseudoPairs) -> float:
    """PSNR (dB) of the pairs' centre inputs against their targets, of their pooled squared
    error (the patches stacked into one image, so one identical pair is not ``inf``): how much
    degradation the set teaches the network to remove (lower: more)."""

    def stacked(patches: Tensor) -> Tensor:  # (N, 3, p, p) -> (3, N * p, p)
        return patches.transpose(0, 1).flatten(1, 2)

    return float(metrics.psnr(stacked(pairs.inputs[:, pairs.centre]), stacked(pairs.targets)))


def epoch_psnrs(
    model: nn.Module,
    pairs: PseudoPairs,
    blurry: Tensor,
    sharp: Tensor,
    cfg: AdaptConfig,
    spec: ModelSpec,
) -> list[float]:
    """Fine-tune a copy of ``model`` on ``pairs`` with the shipped recipe; the true PSNR of the
    whole restored video for the unadapted model and after each epoch."""

    def truth(candidate: nn.Module) -> float:
        restored = ttblur.deblur(candidate, blurry, spec=spec, progress=False)
        return float(metrics.psnr(restored.clamp(0, 1), sharp))

    result = finetune(
        copy_model(model),
        pairs,
        default_loss,
        cfg.finetune,
        spec=spec,
        device=torch.device("cpu"),
        seed=cfg.seed,
        progress=False,
        guard=EpochGuard(score=truth, min_gain_db=0.0),
    )
    if result.baseline_guard_score is None or result.diverged:
        raise RuntimeError(f"fine-tuning on {len(pairs)} pairs did not run: {result.message}")
    return [result.baseline_guard_score, *result.guard_scores]


def measure(
    model_name: str,
    model: nn.Module,
    family: str,
    name: str,
    video: tuple[Tensor, Tensor],
    settings: Settings,
) -> CeilingRow:
    """The shipped adaptation and the three pair sets on one video."""
    start = time.perf_counter()
    blurry, sharp = video
    cfg = adapt_config("default", settings)
    out = AdaptPipeline.from_config(cfg)(model, blurry, progress=False)
    patches = out.selection.patches
    grid = tiles(blurry.shape[0], blurry.shape[-2], blurry.shape[-1], settings.patch_size)
    sets: dict[str, PseudoPairs] = {}  # in PAIR_SETS order
    if out.pairs is not None and patches:
        sets["pseudo"] = out.pairs
        sets["true@patches"] = true_pairs(blurry, sharp, patches, out.spec)
    sets["true@all"] = true_pairs(blurry, sharp, grid, out.spec)
    epochs = {
        key: epoch_psnrs(model, pairs, blurry, sharp, cfg, out.spec) for key, pairs in sets.items()
    }
    unadapted = epochs["true@all"][0]  # every fine-tuning scores the unadapted model first
    rolled_back = bool(out.report.guard_rejected)
    adapted = unadapted
    if not rolled_back:
        adapted = float(metrics.psnr(out.deblur(blurry, progress=False).clamp(0, 1), sharp))
    return CeilingRow(
        model=model_name,
        family=family,
        name=name,
        patches=len(patches),
        tiles=len(grid),
        blurry=float(metrics.psnr(blurry, sharp)),
        unadapted=unadapted,
        shipped=adapted,
        rolled_back=rolled_back,
        epochs=epochs,
        lesson={key: lesson_psnr(pairs) for key, pairs in sets.items()},
        seconds=time.perf_counter() - start,
    )


def videos(
    source: str, settings: Settings, images: Sequence[Path]
) -> Iterator[tuple[str, str, tuple[Tensor, Tensor]]]:
    """``(family, name, (blurry, sharp))`` of every video of the run."""
    if source == "independent":
        for spec in clip_specs(settings, images):
            clip = render_clip(spec)
            yield spec.kind, f"{spec.photo_name}/{spec.seed}", (clip.blurry, clip.sharp)
        return
    for spec in suite_specs(settings):
        video = make_scenario(spec)
        yield spec.family, f"{spec.photo}/{spec.seed}", (video.blurry, video.sharp)


def row_groups(rows: Sequence[CeilingRow]) -> Iterator[tuple[str, str, list[CeilingRow]]]:
    """``(model, family, rows)`` per network and family in order of appearance, each
    network's ``("**all**", every row of it)`` after its families."""
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        for family in dict.fromkeys(r.family for r in mine):
            yield model, family, [r for r in mine if r.family == family]
        yield model, "**all**", mine


def format_table(rows: Sequence[CeilingRow]) -> str:
    """Per network and family (then ``all``): mean PSNR of the blurry input and the unadapted
    network, and every other column as a change over the unadapted network (the worst video
    in brackets)."""

    def cell(values: list[float]) -> str:
        return f"{fmean(values):+.2f} ({min(values):+.2f})"

    head = (
        "| model | family | videos | blurry dB | unadapted dB | shipped | "
        + " | ".join(f"{p} (truth's epoch)" for p in PAIR_SETS)
        + " | true@all (last epoch) |"
    )
    lines = [head, "|" + "---|" * (7 + len(PAIR_SETS))]
    for model, family, group in row_groups(rows):
        lines.append(
            f"| {model} | {family} | {len(group)} | {fmean(r.blurry for r in group):.2f} "
            f"| {fmean(r.unadapted for r in group):.2f} "
            f"| {cell([r.shipped - r.unadapted for r in group])} | "
            + " | ".join(cell([r.best(p) for r in group]) for p in PAIR_SETS)
            + f" | {cell([r.last('true@all') for r in group])} |"
        )
    return "\n".join(lines)


def format_lessons(rows: Sequence[CeilingRow]) -> str:
    """Per network and family (then ``all``): the mean :func:`lesson_psnr` of each pair set
    (dB; ``-`` where no video of the group has that set)."""

    def cell(group: list[CeilingRow], pairs: str) -> str:
        values = [r.lesson[pairs] for r in group if pairs in r.lesson]
        return f"{fmean(values):.2f}" if values else "-"

    lines = [
        "| model | family | videos | "
        + " | ".join(f"{p} input vs target dB" for p in PAIR_SETS)
        + " |",
        "|" + "---|" * (3 + len(PAIR_SETS)),
    ]
    for model, family, group in row_groups(rows):
        lines.append(
            f"| {model} | {family} | {len(group)} | "
            + " | ".join(cell(group, p) for p in PAIR_SETS)
            + " |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--source", choices=["suite", "independent"], default="independent")
    parser.add_argument("--models", nargs="+", default=["tiny"], help="names or folders")
    parser.add_argument(
        "--families", nargs="+", default=None, help="families (suite) or kinds (independent)"
    )
    parser.add_argument("--role", choices=["evaluation", "development"], default="evaluation")
    parser.add_argument("--videos", type=int, default=3, help="videos per family")
    parser.add_argument("--first-video", type=int, default=0, help="each family's first video")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=[192, 256], metavar=("H", "W"))
    parser.add_argument("--patch-size", type=int, default=128, help="rsdm.patch_size")
    parser.add_argument("--epochs", type=int, default=None, help="override finetune.epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--images", nargs="*", type=Path, default=[], help="more photos (independent, evaluation)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    names = KINDS if args.source == "independent" else FAMILIES
    families = tuple(args.families or names)
    if not set(families) <= set(names):
        parser.error(f"--families for --source {args.source}: choose from {', '.join(names)}")
    for path in args.images:
        if not path.is_file():
            parser.error(f"--images: no such file: {path}")
    settings = Settings(
        role=args.role,
        families=families,
        videos_per_family=args.videos,
        first_video=args.first_video,
        frames=args.frames,
        size=(args.size[0], args.size[1]),
        patch_size=args.patch_size,
        models=tuple(args.models),
        epochs=args.epochs,
        threads=args.threads,
    )
    return settings, args


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    settings, args = parse_args(argv)
    torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    clips = list(videos(args.source, settings, args.images))
    rows = []
    for model_name in settings.models:
        model = ttblur.reference_model(model_name)
        for family, name, video in clips:
            row = measure(model_name, model, family, name, video, settings)
            rows.append(row)
            parts = ", ".join(f"{p} {row.best(p):+.2f}" for p in PAIR_SETS if p in row.epochs)
            print(
                f"{model_name} {family} {name}: blurry {row.blurry:.2f}, unadapted "
                f"{row.unadapted:.2f}, shipped {row.shipped - row.unadapted:+.2f}, {parts} "
                f"({row.seconds:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    print(format_table(rows))
    print("\nWhat each pair set asks the network to undo:\n")
    print(format_lessons(rows))
    words = list(sys.argv[1:] if argv is None else argv)
    command = "PYTHONPATH=src python benchmarks/supervised_ceiling.py " + shlex.join(words)
    print(f"\n{time.perf_counter() - started:.0f} s; command: {command}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
