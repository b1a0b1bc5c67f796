"""Choose the guard's weights on development videos, from one adaptation per video.

The guard's score of a model is ``reblur PSNR - blur_weight * residual blur px -
shortfall_weight * max(0, floor - reblur PSNR)`` (``ttblur.stages.guard``). Every part of it
depends on the model only, not on the weights. So each development video
(``ttblur.scenarios``, role ``development``: never the photos or seeds that are reported) is
adapted once with the default configuration, recording for the unadapted model and after every
epoch the guard's parts *and* the true PSNR of the whole restored video (ground truth used
only here, outside ``adapt``). Any pair of weights is then replayed exactly: the epoch it
would keep, whether it would roll back, the true change that results, and how well its score
change ranks the true change (Spearman).

Usage::

    PYTHONPATH=src python benchmarks/guard_sweep.py --videos 3 --frames 16 --size 192 256
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import ttblur
from ttblur import metrics
from ttblur.config import AdaptConfig
from ttblur.pipeline import AdaptPipeline
from ttblur.scenarios import make_scenario, scenario_suite
from ttblur.specs import ModelSpec
from ttblur.stages.guard import GuardProbe, ReblurGuard, reblur_psnr
from ttblur.types import Selection

BLUR_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
SHORTFALL_WEIGHTS = (0.0, 1.0, 5.0)


@dataclass
class Trace:
    """One video: the guard's parts and the true PSNR of the unadapted model (index 0) and
    after each epoch."""

    family: str
    floor: float
    fidelity: list[float] = field(default_factory=list)
    residual: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    #: The held-out pseudo-pair loss of the unadapted model and after each epoch.
    val_loss: list[float] = field(default_factory=list)

    def scores(self, blur_weight: float, shortfall_weight: float, floor: str) -> list[float]:
        """The guard's scores; ``floor``: ``"copy"`` (a copy of the input's re-blur PSNR) or
        ``"unadapted"`` (the unadapted model's own re-blur PSNR, as shipped)."""
        level = self.floor if floor == "copy" else self.fidelity[0]
        return [
            f - blur_weight * r - shortfall_weight * max(0.0, level - f)
            for f, r in zip(self.fidelity, self.residual, strict=True)
        ]


class _Recorder:
    """A guard that scores with a :class:`ReblurGuard` and records its parts and the truth."""

    def __init__(self, guard: ReblurGuard, video: Tensor, sharp: Tensor, trace: Trace) -> None:
        self.guard, self.video, self.sharp, self.trace = guard, video, sharp, trace

    def prepare(self, video: Tensor, selection: Selection, spec: ModelSpec) -> Any:
        probe: GuardProbe = self.guard.prepare(video, selection, spec)
        w = probe.windows  # the re-blur PSNR of a copy of the input: the "copy" floor
        self.trace.floor = reblur_psnr(w.observed, w.observed, w.condition, border=w.border)

        def score(model: nn.Module, device: torch.device) -> float:
            value = probe(model, device)
            self.trace.fidelity.append(probe.last["reblur_psnr"])
            self.trace.residual.append(probe.last["residual_blur_px"])
            restored = ttblur.deblur(model, self.video, spec=spec, device=device, progress=False)
            self.trace.psnr.append(float(metrics.psnr(restored.clamp(0, 1), self.sharp)))
            return value

        return score


def collect(args: argparse.Namespace) -> list[Trace]:
    torch.set_num_threads(args.threads)
    cfg = AdaptConfig()
    cfg.rsdm.patch_size = args.patch_size
    cfg.finetune.lr = args.lr
    cfg.guard.rollback = False
    base = AdaptPipeline.from_config(cfg)
    guard = ReblurGuard.from_config(cfg.guard, flow=base.flow, bme=base.detector.bme)
    model = ttblur.reference_model(args.model)
    traces = []
    for spec in scenario_suite(
        "development", args.videos, num_frames=args.frames, size=tuple(args.size)
    ):
        video = make_scenario(spec)
        trace = Trace(spec.family, math.nan)
        recorder = _Recorder(guard, video.blurry, video.sharp, trace)
        pipe = AdaptPipeline.from_config(
            cfg, detector=base.detector, flow=base.flow, guard=recorder
        )
        report = pipe(model, video.blurry, progress=False).report
        trace.val_loss = [report.baseline_val_loss or math.nan, *report.val_loss]
        traces.append(trace)
        print(
            f"{spec.family} seed {spec.seed}: true PSNR by epoch "
            + " ".join(f"{p:.2f}" for p in trace.psnr),
            flush=True,
        )
    return traces


def replay(
    traces: Sequence[Trace], blur_weight: float, shortfall_weight: float, floor: str = "copy"
) -> dict[str, float]:
    """What the guard with these weights would have returned on every video."""
    gains, candidates, finals = [], [], []
    for t in traces:
        scores = t.scores(blur_weight, shortfall_weight, floor)
        best = max(range(1, len(scores)), key=scores.__getitem__)
        gain = scores[best] - scores[0]
        candidate = t.psnr[best] - t.psnr[0]
        gains.append(gain)
        candidates.append(candidate)
        finals.append(candidate if gain > 0 else 0.0)
    return {
        "mean": sum(finals) / len(finals),
        "worst": min(finals),
        "losing": float(sum(f < -0.1 for f in finals)),
        "rolled_back": float(sum(g <= 0 for g in gains)),
        "spearman": metrics.spearman(gains, candidates),
    }


def replay_pseudo_pairs(traces: Sequence[Trace]) -> dict[str, float]:
    """What the held-out pseudo pairs alone (``guard.enabled = False``) would have returned."""
    finals = []
    for t in traces:
        best = min(range(1, len(t.val_loss)), key=t.val_loss.__getitem__)
        finals.append(t.psnr[best] - t.psnr[0] if t.val_loss[best] < t.val_loss[0] else 0.0)
    return {
        "mean": sum(finals) / len(finals),
        "worst": min(finals),
        "losing": float(sum(f < -0.1 for f in finals)),
        "rolled_back": float(sum(f == 0.0 for f in finals)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--videos", type=int, default=3, help="videos per family")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--lr", type=float, default=AdaptConfig().finetune.lr, help="finetune.lr (default: shipped)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the traces here")
    parser.add_argument("--traces", type=Path, default=None, help="replay saved traces only")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.traces is not None:
        traces = [Trace(**t) for t in json.loads(args.traces.read_text(encoding="utf-8"))]
    else:
        traces = collect(args)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(t) for t in traces]) + "\n", encoding="utf-8")
    best_epoch_gain = sum(max(t.psnr[1:]) - t.psnr[0] for t in traces) / len(traces)
    print(
        f"\n{len(traces)} development videos, {args.frames} frames of {args.size[0]}x"
        f"{args.size[1]}, `{args.model}`, finetune.lr {args.lr:g}, "
        f"{time.perf_counter() - start:.0f} s. With an oracle "
        f"choosing the epoch (never rolling back): mean {best_epoch_gain:+.2f} dB.\n"
    )
    print(
        "| floor | blur_weight | shortfall_weight | mean change dB | worst video dB "
        "| videos < -0.1 dB | rolled back | Spearman |"
    )
    print("|---|---|---|---|---|---|---|---|")
    if all(len(t.val_loss) == len(t.psnr) for t in traces):
        r = replay_pseudo_pairs(traces)
        print(
            f"| (no guard: held-out pseudo pairs) | - | - | {r['mean']:+.2f} | {r['worst']:+.2f} "
            f"| {r['losing']:.0f} | {r['rolled_back']:.0f} | - |"
        )
    for floor in ("copy", "unadapted"):
        for bw in BLUR_WEIGHTS:
            for sw in SHORTFALL_WEIGHTS:
                if floor == "unadapted" and sw == 0:
                    continue  # the same as "copy" with no shortfall term
                r = replay(traces, bw, sw, floor)
                print(
                    f"| {floor} | {bw:g} | {sw:g} | {r['mean']:+.2f} | {r['worst']:+.2f} | "
                    f"{r['losing']:.0f} | {r['rolled_back']:.0f} | {r['spearman']:+.2f} |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
