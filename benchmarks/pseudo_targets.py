"""How sharp the pseudo-sharp targets are, beside what the unadapted network already gives there.

Test-time blurring trains the network to turn re-blurred pseudo-sharp patches back into those
patches, so the patches are the training targets. Where the video has still moments they are
sharp; where it has none (a steady pan, rotation, a rolling shutter) RSDM's "relatively sharp"
patches still carry the video's blur, and a network that already deblurs is then pulled toward
a blurrier output than its own. For every model (``--models``: names of
``ttblur.reference_model`` or weights folders) and every scenario video (``ttblur.scenarios``,
role ``development`` by default), this runs the shipped detector (``rsdm.patch_size`` from
``--patch-size``) and ``ttblur.deblur`` (no adaptation), and reports per family, over the
selected patches: their true blur, the PSNR against the true sharp patch of the target (the
observed patch) and of the unadapted network's output at the same place, and in how many videos
that output beats the target; beside it the video's mean true blur.

Usage::

    PYTHONPATH=src python benchmarks/pseudo_targets.py --models tiny /path/to/weights \\
        --videos 3 --frames 16 --size 192 256
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

import torch
from suite_cli import add_suite_arguments, finish, suite_kwargs

import ttblur
from ttblur import metrics
from ttblur.config import AdaptConfig
from ttblur.nets.reference import ReferenceNet
from ttblur.pipeline import AdaptPipeline
from ttblur.scenarios import ScenarioSpec, make_scenario, scenario_suite


@dataclass(frozen=True)
class VideoRow:
    """One model on one video: means over the selected patches (PSNR against the true sharp
    patch, blur in px), and the video's mean true blur."""

    model: str
    family: str
    name: str
    patches: int
    patch_blur: float
    video_blur: float
    target_psnr: float
    model_psnr: float

    @property
    def model_gain(self) -> float:
        """How far the unadapted output at the patches beats the target, dB."""
        return self.model_psnr - self.target_psnr


def measure(
    models: dict[str, ReferenceNet], spec: ScenarioSpec, pipe: AdaptPipeline
) -> list[VideoRow]:
    """One row per model: the patches ``pipe``'s detector selects on ``spec``'s video (once),
    scored; no row without a patch."""
    video = make_scenario(spec)
    selection = pipe.detector.select(video.blurry, progress=False)
    patches = selection.patches
    if not patches:
        return []
    truths = [p.crop(video.sharp[p.frame])[None] for p in patches]
    target = [
        float(metrics.psnr(p.crop(video.blurry[p.frame])[None], truth))
        for p, truth in zip(patches, truths, strict=True)
    ]
    blur = [float(p.crop(video.magnitude[p.frame]).mean()) for p in patches]
    rows = []
    for name, model in models.items():
        restored = ttblur.deblur(model, video.blurry, spec=model.spec, progress=False)
        restored = restored.clamp(0, 1)
        output = [
            float(metrics.psnr(p.crop(restored[p.frame])[None], truth))
            for p, truth in zip(patches, truths, strict=True)
        ]
        rows.append(
            VideoRow(
                model=name,
                family=spec.family,
                name=f"{spec.photo}/{spec.seed}",
                patches=len(patches),
                patch_blur=fmean(blur),
                video_blur=float(video.magnitude.mean()),
                target_psnr=fmean(target),
                model_psnr=fmean(output),
            )
        )
    return rows


def run(
    models: Sequence[str],
    families: Sequence[str],
    *,
    role: str,
    videos: int,
    frames: int,
    size: tuple[int, int],
    patch_size: int,
) -> list[VideoRow]:
    """Every model on every video of ``families`` (videos without a selected patch skipped),
    model by model."""
    cfg = AdaptConfig()
    cfg.rsdm.patch_size = patch_size
    pipe = AdaptPipeline.from_config(cfg)
    specs = scenario_suite(role, videos, num_frames=frames, size=size, families=tuple(families))
    loaded = {name: ttblur.reference_model(name) for name in models}
    rows = []
    for spec in specs:  # each video rendered and searched once, for every model
        for row in measure(loaded, spec, pipe):
            rows.append(row)
            print(
                f"{row.model} {row.family} {row.name}: target {row.target_psnr:.2f}, "
                f"model {row.model_psnr:.2f}",
                file=sys.stderr,
                flush=True,
            )
    order = list(loaded)
    return sorted(rows, key=lambda row: order.index(row.model))  # stable: videos keep order


def format_table(rows: Sequence[VideoRow]) -> str:
    """Per model and family (then ``all``): means over its videos, as a Markdown table."""
    lines = [
        "| model | family | videos | patch true blur px | video true blur px | target dB "
        "| unadapted output dB | output - target dB | videos where the output beats it |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        groups = {
            f: [r for r in mine if r.family == f] for f in dict.fromkeys(r.family for r in mine)
        }
        for family, group in [*groups.items(), ("**all**", mine)]:
            beats = sum(r.model_gain > 0 for r in group)
            lines.append(
                f"| {model} | {family} | {len(group)} | {fmean(r.patch_blur for r in group):.2f} "
                f"| {fmean(r.video_blur for r in group):.2f} "
                f"| {fmean(r.target_psnr for r in group):.2f} "
                f"| {fmean(r.model_psnr for r in group):.2f} "
                f"| {fmean(r.model_gain for r in group):+.2f} | {beats} of {len(group)} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_suite_arguments(parser, role="development")
    parser.add_argument("--patch-size", type=int, default=128, help="rsdm.patch_size")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rows = run(args.models, args.families, patch_size=args.patch_size, **suite_kwargs(args))
    if not rows:
        print("no video had a selected patch", file=sys.stderr)
        return 1
    finish(format_table(rows), rows, __file__, argv, started, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
