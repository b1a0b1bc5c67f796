"""Choose the guard's weights and threshold on development videos, from one adaptation per video.

The guard's score of a model is ``reblur PSNR - blur_weight * residual blur px -
shortfall_weight * max(0, floor - reblur PSNR)`` (``ttblur.stages.guard``), and an epoch is
kept when its score beats the unadapted model's by more than ``min_gain_db``. Every part of the
score depends on the model only, not on the weights. So each development video
(``ttblur.scenarios``, role ``development``: never the photos or seeds that are reported) is
adapted once (the shipped configuration, or ``--config``), recording for the unadapted model
and after every epoch the guard's parts *and* the true PSNR of the whole restored video (ground
truth used only here, outside ``adapt``), and the same per guard window (``Trace.window_*``).
Any setting of weights and threshold is then replayed exactly: the epoch it would keep, whether
it would roll back, the true change that results, and how well its score change ranks the true
change (Spearman). Saved traces of several networks are replayed together with ``--traces``.
Last, per family: the blurry input's PSNR beside the unadapted model, what the truth choosing
each epoch would give, and what the shipped guard returns (``print_families``).

With ``--source independent`` the development videos are the development clips of
``independent_render.py`` (training photos, another renderer: ``independent_clips.py``) and
``--families`` names its kinds.

Usage::

    PYTHONPATH=src python benchmarks/guard_sweep.py --videos 3 --frames 16 --size 192 256
    PYTHONPATH=src python benchmarks/guard_sweep.py --source independent --videos 3
    PYTHONPATH=src python benchmarks/guard_sweep.py --traces tiny.json base.json

"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from independent_clips import clip_specs
from independent_render import KINDS, render_clip
from scenario_suite import Settings
from torch import Tensor, nn

import ttblur
from ttblur import metrics
from ttblur.config import AdaptConfig, GuardConfig
from ttblur.pipeline import AdaptPipeline
from ttblur.scenarios import FAMILIES, make_scenario, scenario_suite
from ttblur.specs import ModelSpec
from ttblur.stages.guard import (
    GuardProbe,
    GuardWindows,
    ReblurGuard,
    ReferenceProbe,
    reblur_psnr,
    reference_gain,
)
from ttblur.stages.rsdm import estimate_magnitude
from ttblur.stages.sharp_neighbours import PERFECT_DB, box_readings, still_psnr, window_region
from ttblur.types import Selection

BLUR_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
SHORTFALL_WEIGHTS = (0.0, 1.0, 5.0)
MIN_GAINS = (0.0, 1.0, 1.5, 2.0)
REFERENCE_MIN_GAINS = (0.0, 0.1, 0.3, 0.5)
STILL_MIN_GAINS = (2.0, 3.0, 5.0)
STILL_CAPS = (40.0, 45.0, PERFECT_DB)


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
    #: Per scored window (the guard's boxes, inside their border): the true mean blur (px),
    #: the blur length the guard re-blurs with (its estimate, px) ...
    window_blur: list[float] = field(default_factory=list)
    window_length: list[float] = field(default_factory=list)
    #: ... and, per model scored (unadapted, then each epoch), one value per window: the
    #: re-blur PSNR, the blur the BME reads in the output (px), the output's PSNR against the
    #: observed box (how much the model changes it) and against the true sharp box.
    window_fidelity: list[list[float]] = field(default_factory=list)
    window_residual: list[list[float]] = field(default_factory=list)
    window_change: list[list[float]] = field(default_factory=list)
    window_psnr: list[list[float]] = field(default_factory=list)
    #: The sharp-neighbour score (``ttblur.stages.sharp_neighbours``) of the unadapted model
    #: and after each epoch; empty when the video has no frame with a sharp neighbour.
    reference: list[float] = field(default_factory=list)
    #: Its parts per model: the blurred frames' PSNR against their warped sharp neighbours and,
    #: with ``guard.still_frames``, each restored sharp frame's PSNR against itself (uncapped;
    #: :func:`still_reference` replays any cap and threshold).
    reference_psnr: list[float] = field(default_factory=list)
    #: The blurred frames' gain over the unadapted model as the probe scored it (the median
    #: window's with ``guard.reference_median``, else that of ``reference_psnr``), per model.
    reference_blurred_gain: list[float] = field(default_factory=list)
    #: Per blurred window kept: its reference's re-blur fit gain (dB,
    #: ``guard.reference_reblur_check``; empty when the check is off).
    reference_fit_gain: list[float] = field(default_factory=list)
    window_still: list[list[float]] = field(default_factory=list)
    #: Per reference (sharp) frame scored: True where it may only veto (``guard.still_box_veto``;
    #: empty in traces recorded before it could).
    still_veto: list[bool] = field(default_factory=list)
    #: Per reference (sharp) frame scored: its true blur in the scored box (px, mean and the
    #: longest of any pixel), and per model the restored box's PSNR against the true sharp box.
    still_blur: list[float] = field(default_factory=list)
    still_blur_max: list[float] = field(default_factory=list)
    window_still_psnr: list[list[float]] = field(default_factory=list)
    #: Per model and reference frame: the blur the guard's BME reads in the restored box (px)
    #: and its mean gradient magnitude; ``still_observed_*``: the same of the observed box.
    window_still_bme: list[list[float]] = field(default_factory=list)
    window_still_grad: list[list[float]] = field(default_factory=list)
    still_observed_bme: list[float] = field(default_factory=list)
    still_observed_grad: list[float] = field(default_factory=list)
    #: Per blurred window scored against a sharp neighbour: its true blur (px, mean) and per
    #: model the restored box's PSNR against the true sharp box.
    reference_blur: list[float] = field(default_factory=list)
    window_reference_truth: list[list[float]] = field(default_factory=list)
    #: The detector's mean blur reading (px) of each window's reference frame inside the
    #: window's scored box, and of each still frame inside its own box.
    reference_reading: list[float] = field(default_factory=list)
    still_reading: list[float] = field(default_factory=list)
    #: The guard's BME reading (px) of each window's reference frame in the window's box (the
    #: crop alone, as ``still_observed_bme``).
    reference_observed_bme: list[float] = field(default_factory=list)
    #: Per blurred window: its frame and its reference frame (empty in traces recorded before).
    reference_frame: list[int] = field(default_factory=list)
    reference_source: list[int] = field(default_factory=list)
    #: Per blurred window, the share of its reference's scored box that pseudo-sharp patches
    #: (the fine-tuning's targets) cover, and the same per sharp frame scored.
    reference_overlap: list[float] = field(default_factory=list)
    still_overlap: list[float] = field(default_factory=list)
    #: Per model and blurred window: the weighted squared error against the warped reference
    #: and the weight (``reference_psnr`` of any subset of windows is ``10 log10(sum w / sum e)``;
    #: in place, as with the shipped ``guard.reference_shift_px`` of 0).
    window_reference_error: list[list[float]] = field(default_factory=list)
    reference_weight: list[float] = field(default_factory=list)
    #: PSNR of the blurry input against the truth (NaN in traces recorded before it was).
    blurry: float = math.nan

    def scores(self, blur_weight: float, shortfall_weight: float, floor: str) -> list[float]:
        """The guard's scores; ``floor``: ``"copy"`` (a copy of the input's re-blur PSNR) or
        ``"unadapted"`` (the unadapted model's own re-blur PSNR, as shipped)."""
        level = self.floor if floor == "copy" else self.fidelity[0]
        return [
            f - blur_weight * r - shortfall_weight * max(0.0, level - f)
            for f, r in zip(self.fidelity, self.residual, strict=True)
        ]


def still_reference(
    trace: Trace,
    still_min_gain_db: float | None,
    cap_db: float,
    reference_min_gain_db: float,
    veto_cap_db: float | None = None,
) -> list[float]:
    """The sharp-neighbour scores of ``trace`` (unadapted model, then each epoch) had the guard
    scored the sharp frames with this threshold and cap (``None``: the blurred frames only)
    and, with ``veto_cap_db`` (``guard.still_veto_cap_db``), vetoed an epoch where every sharp
    frame's PSNR capped at it falls on average, as :class:`~ttblur.stages.guard.ReferenceProbe`
    combines them (frames marked ``still_veto`` earn no credit)."""
    if not trace.reference_psnr:  # recorded before the parts were: the scores as run
        return list(trace.reference)
    base = trace.reference_psnr[0]
    blurred_gains = trace.reference_blurred_gain
    if len(blurred_gains) != len(trace.reference_psnr):  # recorded before it was (or no base)
        blurred_gains = [p - base for p in trace.reference_psnr]
    if still_min_gain_db is None or not trace.window_still:
        return [base + gain for gain in blurred_gains]
    veto_only = trace.still_veto or [False] * len(trace.window_still[0])

    def gains(chosen: list[bool], cap: float | None) -> list[float | None]:
        """Per model, the gain of the chosen frames' mean capped PSNR (None: no such part)."""
        if cap is None or not any(chosen):
            return [None] * len(trace.window_still)
        means = [
            sum(min(cap, v) for v, c in zip(row, chosen, strict=True) if c) / sum(chosen)
            for row in trace.window_still
        ]
        return [m - means[0] for m in means]

    credit = gains([not v for v in veto_only], cap_db)
    veto = gains([True] * len(veto_only), veto_cap_db)
    return [
        base
        + reference_gain(
            blurred,
            credited,
            reference_min_gain_db=reference_min_gain_db,
            still_min_gain_db=still_min_gain_db,
            veto_db=vetoing,
        )
        for blurred, credited, vetoing in zip(blurred_gains, credit, veto, strict=True)
    ]


def _gradient(boxes: Tensor) -> list[float]:
    """Mean absolute horizontal + vertical gradient of each gray box of ``(N, 3, h, w)``."""
    gray = boxes.float().mean(dim=1)
    dx = (gray[:, :, 1:] - gray[:, :, :-1]).abs().mean(dim=(1, 2))
    dy = (gray[:, 1:] - gray[:, :-1]).abs().mean(dim=(1, 2))
    return (dx + dy).tolist()


def _interior(boxes: Tensor, border: int) -> Tensor:
    h, w = boxes.shape[-2:]
    return boxes[..., border : h - border, border : w - border]


def box_regions(
    video: Tensor, frames: Sequence[int], boxes: Sequence[tuple[int, int]], side: int, border: int
) -> Tensor:
    """``(N, C, s - 2 border, s - 2 border)``: the ``side`` x ``side`` region of ``video``
    (``(T, C, H, W)``) at ``(top, left)`` of each frame, inside ``border``."""
    inner = side - 2 * border
    if not frames:
        return video.new_zeros(0, video.shape[1], inner, inner).float()
    crops = [
        video[t, :, top : top + side, left : left + side]
        for t, (top, left) in zip(frames, boxes, strict=True)
    ]
    return _interior(torch.stack(crops), border).float()


def regions(video: Tensor, windows: GuardWindows) -> Tensor:
    """:func:`box_regions` of the re-blur windows."""
    side = windows.observed.shape[-1]
    return box_regions(video, windows.frames, windows.boxes, side, windows.border)


def reference_border(probe: ReferenceProbe) -> int:
    """The unscored border of the probe's windows, px (the guard's margin, as
    :func:`~ttblur.stages.sharp_neighbours.window_region` clamps it)."""
    side = probe.windows.clips.shape[-1]
    return window_region(side, probe.guard.margin, side, side, probe.spec.multiple)[1]


def record_windows(trace: Trace, probe: GuardProbe, truth: Tensor) -> None:
    """Append the per-window parts of the probe's last score and the truth there (``truth``:
    :func:`regions` of the sharp video) to ``trace``; NaN when that score was not finite."""
    w, b = probe.windows, probe.windows.border
    restored, left = probe.last_restored, probe.last_blur_left
    if restored is None or left is None:
        for values in (
            trace.window_fidelity,
            trace.window_residual,
            trace.window_change,
            trace.window_psnr,
        ):
            values.append([math.nan] * len(w))
        return
    observed = w.observed.float()
    trace.window_fidelity.append(
        [
            reblur_psnr(restored[i : i + 1], observed[i : i + 1], w.condition[i : i + 1], border=b)
            for i in range(len(w))
        ]
    )
    trace.window_residual.append(_interior(left, b).mean(dim=(1, 2, 3)).tolist())
    inner = _interior(restored, b)
    trace.window_change.append(
        metrics.psnr(inner, _interior(observed, b), reduction="none").tolist()
    )
    trace.window_psnr.append(metrics.psnr(inner, truth, reduction="none").tolist())


def record_reference(
    trace: Trace,
    probe: ReferenceProbe,
    truth: Tensor | None = None,
    still_truth: Tensor | None = None,
) -> None:
    """Append the parts of the probe's last score to ``trace``: the blurred frames' PSNR and,
    when it scored them, each restored sharp frame's uncapped PSNR against itself; with the
    true sharp regions (:func:`box_regions`), the restorations' PSNR against them."""
    trace.reference_psnr.append(probe.last["reference_psnr"])
    if probe.baseline is not None:
        pooled = probe.last["reference_psnr"] - probe.baseline["reference_psnr"]
        trace.reference_blurred_gain.append(probe.last.get("reference_median_gain", pooled))
    w = probe.windows
    border = reference_border(probe)
    if probe.last_restored is not None:
        error = (probe.last_restored - w.reference.float()).square().mean(dim=1, keepdim=True)
        trace.window_reference_error.append((error * w.weight).sum(dim=(1, 2, 3)).tolist())
        trace.reference_weight = w.weight.sum(dim=(1, 2, 3)).tolist()
    if truth is not None and probe.last_restored is not None:
        trace.window_reference_truth.append(
            metrics.psnr(_interior(probe.last_restored, border), truth, reduction="none").tolist()
        )
    if probe.last_still is None:
        return
    restored = replace(w, still_clips=probe.last_still[:, None], centre=0)  # restorations as clips
    trace.window_still_bme.append(
        box_readings(restored, probe.guard.bme, batch_size=probe.guard.batch_size)
    )
    trace.window_still_grad.append(_gradient(_interior(probe.last_still, border)))
    if still_truth is not None:
        trace.window_still_psnr.append(
            metrics.psnr(
                _interior(probe.last_still, border), still_truth, reduction="none"
            ).tolist()
        )
    trace.window_still.append(
        [
            still_psnr(
                probe.last_still[i : i + 1],
                w.still_observed[i : i + 1],
                w.still_weight[i : i + 1],
                cap_db=PERFECT_DB,
            )
            for i in range(len(w.still_frames))
        ]
    )


class _Recorder:
    """A guard that scores with a :class:`ReblurGuard` and records its parts and the truth.

    ``guard`` computes the re-blur parts (its sharp-neighbour score off); ``full`` is the
    configured guard: where it scores against sharp neighbours, that score is recorded too and
    chooses the epoch, as in ``adapt``.
    """

    def __init__(
        self,
        guard: ReblurGuard,
        full: ReblurGuard,
        video: Tensor,
        sharp: Tensor,
        blur: Tensor,
        trace: Trace,
    ) -> None:
        self.guard, self.full, self.video, self.sharp, self.blur = guard, full, video, sharp, blur
        self.trace = trace

    def prepare(self, video: Tensor, selection: Selection, spec: ModelSpec) -> Any:
        chosen = self.full.prepare(video, selection, spec)
        neighbours = chosen if isinstance(chosen, ReferenceProbe) else None
        # The configured guard's re-blur windows, when it chose them; else the same windows anew.
        probe = (
            chosen if isinstance(chosen, GuardProbe) else self.guard.prepare(video, selection, spec)
        )
        assert isinstance(probe, GuardProbe)
        w = probe.windows  # the re-blur PSNR of a copy of the input: the "copy" floor
        self.trace.floor = reblur_psnr(w.observed, w.observed, w.condition, border=w.border)
        self.trace.window_blur = regions(self.blur, w).mean(dim=(1, 2, 3)).tolist()
        lengths = _interior(w.condition[:, 2], w.border)
        self.trace.window_length = lengths.mean(dim=(1, 2)).tolist()
        truth = regions(self.sharp, w)
        ref_truth = still_truth = None
        if neighbours is not None:
            rw, batch = neighbours.windows, self.full.batch_size
            side, border = rw.clips.shape[-1], reference_border(neighbours)

            def at_windows(frames: Tensor) -> Tensor:  # each blurred window's box of its frame
                return box_regions(frames, rw.frames, rw.boxes, side, border)

            def at_sources(frames: Tensor) -> Tensor:  # the same boxes of each one's reference
                return box_regions(frames, rw.sources, rw.boxes, side, border)

            def at_still(frames: Tensor) -> Tensor:  # each sharp frame's own box
                return box_regions(frames, rw.still_frames, rw.still_boxes, side, border)

            ref_truth, still_truth = at_windows(self.sharp), at_still(self.sharp)
            blur = at_still(self.blur)
            self.trace.still_blur = blur.mean(dim=(1, 2, 3)).tolist()
            self.trace.still_blur_max = blur.amax(dim=(1, 2, 3)).tolist()
            self.trace.reference_blur = at_windows(self.blur).mean(dim=(1, 2, 3)).tolist()
            self.trace.reference_reading = (
                at_sources(selection.magnitude).mean(dim=(1, 2, 3)).tolist()
            )
            self.trace.still_reading = at_still(selection.magnitude).mean(dim=(1, 2, 3)).tolist()
            crops = box_regions(video, rw.sources, rw.boxes, side, 0)
            reading = estimate_magnitude(self.full.bme, crops, batch_size=batch)
            self.trace.reference_observed_bme = (
                _interior(reading, border).mean(dim=(1, 2, 3)).tolist()
            )
            self.trace.still_observed_bme = box_readings(rw, self.full.bme, batch_size=batch)
            self.trace.reference_fit_gain = list(rw.fit_gain)
            self.trace.reference_frame = list(rw.frames)
            self.trace.reference_source = list(rw.sources)
            targets = torch.zeros(tuple(selection.magnitude.shape))  # patch cover, no map read
            for patch in selection.patches:
                rows = slice(patch.top, patch.top + patch.size)
                targets[patch.frame, :, rows, patch.left : patch.left + patch.size] = 1.0
            self.trace.reference_overlap = at_sources(targets).mean(dim=(1, 2, 3)).tolist()
            self.trace.still_overlap = at_still(targets).mean(dim=(1, 2, 3)).tolist()
            self.trace.still_veto = list(rw.still_veto)
            self.trace.still_observed_grad = _gradient(_interior(rw.still_observed, border))

        def score(model: nn.Module, device: torch.device) -> float:
            value = probe(model, device)
            self.trace.fidelity.append(probe.last["reblur_psnr"])
            self.trace.residual.append(probe.last["residual_blur_px"])
            record_windows(self.trace, probe, truth)
            restored = ttblur.deblur(model, self.video, spec=spec, device=device, progress=False)
            self.trace.psnr.append(float(metrics.psnr(restored.clamp(0, 1), self.sharp)))
            if neighbours is None:
                return value
            self.trace.reference.append(neighbours(model, device))
            record_reference(self.trace, neighbours, ref_truth, still_truth)
            return self.trace.reference[-1]

        return score


def adapt_config(args: argparse.Namespace) -> AdaptConfig:
    """The configuration adapted with: ``--config`` (inline JSON or a file; default
    ``AdaptConfig()``), then ``--patch-size`` and ``--lr`` when given."""
    cfg = AdaptConfig()
    if args.config is not None:
        text = args.config.strip()
        cfg = AdaptConfig.from_json(text) if text.startswith("{") else AdaptConfig.load(text)
    cfg.rsdm.patch_size = args.patch_size
    if args.lr is not None:
        cfg.finetune.lr = args.lr
    return cfg


def collect(args: argparse.Namespace, cfg: AdaptConfig) -> list[Trace]:
    """Adapt every development video with ``cfg`` (its guard set to keep the best epoch)."""
    torch.set_num_threads(args.threads)
    cfg.guard.rollback = False
    base = AdaptPipeline.from_config(cfg)
    full = ReblurGuard.from_config(cfg.guard, flow=base.flow, bme=base.detector.bme)
    reblur_only = cfg.guard.model_copy(update={"reference_radius": 0})
    guard = ReblurGuard.from_config(reblur_only, flow=base.flow, bme=base.detector.bme)
    model = ttblur.reference_model(args.model)
    traces = []
    for family, seed, video in development_videos(args):
        blurry, sharp, magnitude = video
        trace = Trace(family, math.nan, blurry=float(metrics.psnr(blurry, sharp)))
        recorder = _Recorder(guard, full, blurry, sharp, magnitude, trace)
        pipe = AdaptPipeline.from_config(
            cfg, detector=base.detector, flow=base.flow, guard=recorder
        )
        report = pipe(model, blurry, progress=False).report
        trace.val_loss = [report.baseline_val_loss or math.nan, *report.val_loss]
        traces.append(trace)
        print(
            f"{family} seed {seed}: true PSNR by epoch " + " ".join(f"{p:.2f}" for p in trace.psnr),
            flush=True,
        )
    return traces


def development_videos(
    args: argparse.Namespace,
) -> Iterator[tuple[str, int, tuple[Tensor, Tensor, Tensor]]]:
    """``(family, seed, (blurry, sharp, true blur magnitude))`` of each development video of
    ``--source``: the scenario suite's, or the independent renderer's clips."""
    if args.source == "independent":
        settings = Settings(
            role="development",
            families=tuple(args.families),
            videos_per_family=args.videos,
            first_video=args.first_video,
            frames=args.frames,
            size=(args.size[0], args.size[1]),
        )
        for clip_spec in clip_specs(settings):
            clip = render_clip(clip_spec)
            yield clip_spec.kind, clip_spec.seed, (clip.blurry, clip.sharp, clip.magnitude)
        return
    for spec in scenario_suite(
        "development",
        args.videos,
        num_frames=args.frames,
        size=tuple(args.size),
        families=tuple(args.families),
        first=args.first_video,
    ):
        video = make_scenario(spec)
        yield spec.family, spec.seed, (video.blurry, video.sharp, video.magnitude)


def decide(
    trace: Trace,
    blur_weight: float,
    shortfall_weight: float,
    floor: str = "copy",
    min_gain_db: float = 0.0,
    reference_min_gain_db: float | None = None,
    trust_reblur: bool = True,
    still: tuple[float | None, float] | None = None,
    veto_cap_db: float | None = None,
) -> tuple[float, float, bool]:
    """What the guard with these weights would have done on one video: ``(score gain,
    candidate, kept)``: the best-scoring epoch's score gain over the unadapted model (in units
    of the threshold it needed when ``reference_min_gain_db`` is given), that epoch's true
    change, and whether it beats the threshold (else the guard rolls back).

    With ``reference_min_gain_db``, a video with a sharp-neighbour score uses it instead (and
    that threshold), as ``adapt`` does; without ``trust_reblur`` (``guard.trust_reblur``), a
    video left to the re-blur score keeps nothing. With ``still`` (``(still_min_gain_db or
    None, still_cap_db)``), the sharp-neighbour scores are rebuilt from their recorded parts
    (:func:`still_reference`, with the veto's ``veto_cap_db``) instead of replayed as run.
    """
    scores, needed = trace.scores(blur_weight, shortfall_weight, floor), min_gain_db
    may_keep = True
    if reference_min_gain_db is not None:
        if trace.reference:
            scores, needed = trace.reference, reference_min_gain_db
            if still is not None:
                scores = still_reference(trace, still[0], still[1], needed, veto_cap_db)
        else:
            may_keep = trust_reblur
    best = max(range(1, len(scores)), key=scores.__getitem__)
    gain = scores[best] - scores[0]
    candidate = trace.psnr[best] - trace.psnr[0]
    scaled = gain / needed if reference_min_gain_db is not None and needed else gain
    return scaled, candidate, may_keep and gain > needed


def replay(traces: Sequence[Trace], *args: Any, **kwargs: Any) -> dict[str, float]:
    """What the guard with these settings (:func:`decide`'s) would have returned on every
    video: mean and worst true change, videos below -0.1 dB, roll-backs, and how well its score
    gains rank the true changes of the epochs it would keep (Spearman)."""
    decisions = [decide(t, *args, **kwargs) for t in traces]
    finals = [candidate if kept else 0.0 for _, candidate, kept in decisions]
    return {
        "mean": sum(finals) / len(finals),
        "worst": min(finals),
        "losing": float(sum(f < -0.1 for f in finals)),
        "rolled_back": float(sum(not kept for _, _, kept in decisions)),
        "spearman": metrics.spearman([d[0] for d in decisions], [d[1] for d in decisions]),
    }


def shipped_settings(**sharp_neighbours: Any) -> dict[str, Any]:
    """:func:`decide`'s settings as shipped (``GuardConfig()``: re-blur weights and threshold
    against the unadapted model, sharp-neighbour threshold, ``trust_reblur``, the sharp
    frames' threshold and cap), with ``sharp_neighbours`` overriding any of them."""
    shipped = GuardConfig()
    still = (shipped.still_min_gain_db if shipped.still_frames else None, shipped.still_cap_db)
    settings = {
        "blur_weight": shipped.blur_weight,
        "shortfall_weight": shipped.shortfall_weight,
        "floor": "unadapted",
        "min_gain_db": shipped.min_gain_db,
        "reference_min_gain_db": shipped.reference_min_gain_db,
        "trust_reblur": shipped.trust_reblur,
        "still": still,
        "veto_cap_db": shipped.still_veto_cap_db if shipped.still_frames else None,
    }
    return {**settings, **sharp_neighbours}


def replay_shipped(traces: Sequence[Trace], **sharp_neighbours: Any) -> dict[str, float]:
    """:func:`replay` with the shipped re-blur weights and threshold (against the unadapted
    model) and these sharp-neighbour settings (``reference_min_gain_db``, ...); the
    sharp-neighbour settings not given replay the scores as run."""
    return replay(traces, **shipped_settings(**{"still": None, **sharp_neighbours}))


def family_rows(traces: Sequence[Trace]) -> list[dict[str, Any]]:
    """Per family, then all videos: mean PSNR of the blurry input and the unadapted model,
    the mean true change were the truth to choose each epoch (never rolling back), and what
    the shipped guard returns (mean change, worst video, its mean PSNR minus the input's)."""
    settings = shipped_settings()
    groups: dict[str, list[Trace]] = {}
    for t in traces:
        groups.setdefault(t.family, []).append(t)
    rows = []
    for family, group in [*groups.items(), ("all", list(traces))]:
        finals = []
        for t in group:
            _, candidate, kept = decide(t, **settings)
            finals.append(candidate if kept else 0.0)
        n = len(group)
        unadapted = sum(t.psnr[0] for t in group) / n
        blurry = sum(t.blurry for t in group) / n
        rows.append(
            {
                "family": family,
                "videos": n,
                "blurry": blurry,
                "unadapted": unadapted,
                "oracle": sum(max(t.psnr[1:]) - t.psnr[0] for t in group) / n,
                "kept": sum(finals) / n,
                "worst": min(finals),
                "kept_vs_blurry": unadapted + sum(finals) / n - blurry,
            }
        )
    return rows


def print_families(traces: Sequence[Trace]) -> None:
    """:func:`family_rows` as a table."""
    print(
        "\nPer family, the shipped guard (blurry: the input's PSNR; `-` in traces recorded "
        "before it was):\n"
    )
    print(
        "| family | videos | blurry | unadapted | truth's epoch, vs unadapted | shipped guard, "
        "vs unadapted | worst video | shipped guard, vs blurry |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in family_rows(traces):
        blurry, versus = (
            ("-", "-")
            if math.isnan(r["blurry"])
            else (f"{r['blurry']:.2f}", f"{r['kept_vs_blurry']:+.2f}")
        )
        print(
            f"| {r['family']} | {r['videos']} | {blurry} | {r['unadapted']:.2f} | "
            f"{r['oracle']:+.2f} | {r['kept']:+.2f} | {r['worst']:+.2f} | {versus} |"
        )


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


def settings(
    blur_weights: Sequence[float], shortfall_weights: Sequence[float], min_gains: Sequence[float]
) -> list[tuple[str, float, float, float]]:
    """The ``(floor, blur_weight, shortfall_weight, min_gain_db)`` grid that is replayed."""
    grid = []
    for floor in ("copy", "unadapted"):
        for bw in blur_weights:
            for sw in shortfall_weights:
                if floor == "unadapted" and sw == 0:
                    continue  # the same as "copy" with no shortfall term
                grid.extend((floor, bw, sw, mg) for mg in min_gains)
    return grid


def print_table(
    traces: Sequence[Trace],
    grid: Sequence[tuple[str, float, float, float]],
    reference_gains: Sequence[float] = (),
) -> None:
    """One row per setting: what the guard would have returned on these traces; then, on
    videos with sharp neighbours, the sharp-neighbour score with each of ``reference_gains``."""
    print(
        "| floor | blur_weight | shortfall_weight | min_gain_db | mean change dB "
        "| worst video dB | videos < -0.1 dB | rolled back | Spearman |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    if all(len(t.val_loss) == len(t.psnr) for t in traces):
        r = replay_pseudo_pairs(traces)
        print(
            f"| (no guard: held-out pseudo pairs) | - | - | - | {r['mean']:+.2f} "
            f"| {r['worst']:+.2f} | {r['losing']:.0f} | {r['rolled_back']:.0f} | - |"
        )
    for floor, bw, sw, mg in grid:
        r = replay(traces, bw, sw, floor, mg)
        print(
            f"| {floor} | {bw:g} | {sw:g} | {mg:g} | {r['mean']:+.2f} | {r['worst']:+.2f} | "
            f"{r['losing']:.0f} | {r['rolled_back']:.0f} | {r['spearman']:+.2f} |"
        )
    with_references = sum(bool(t.reference) for t in traces)
    if not with_references or not reference_gains:
        return
    shipped = GuardConfig()
    print(
        f"\nSharp neighbours first ({with_references} of {len(traces)} videos have them; the "
        f"others use the re-blur score with blur_weight {shipped.blur_weight:g}, "
        f"shortfall_weight {shipped.shortfall_weight:g} against the unadapted model, "
        f"min_gain_db {shipped.min_gain_db:g}):\n"
    )
    print(
        "| reference_min_gain_db | trust_reblur | mean change dB | worst video dB "
        "| videos < -0.1 dB | rolled back | Spearman (gain / threshold) |"
    )
    print("|---|---|---|---|---|---|---|")
    for needed in reference_gains:
        for trust in (False, True):
            r = replay_shipped(traces, reference_min_gain_db=needed, trust_reblur=trust)
            print(
                f"| {needed:g} | {trust} | {r['mean']:+.2f} | {r['worst']:+.2f} | "
                f"{r['losing']:.0f} | {r['rolled_back']:.0f} | {r['spearman']:+.2f} |"
            )


def print_still(
    sets: dict[str, Sequence[Trace]], gains: Sequence[float], caps: Sequence[float]
) -> None:
    """On every set of traces that recorded the sharp frames' part: the shipped guard with
    the sharp frames scored at each ``still_min_gain_db`` x ``still_cap_db``, and without."""
    recorded = {n: ts for n, ts in sets.items() if any(t.window_still for t in ts)}
    if not recorded:
        return
    shipped = GuardConfig()
    print(
        f"\nSharp frames in the sharp-neighbour score (reference_min_gain_db "
        f"{shipped.reference_min_gain_db:g}, trust_reblur {shipped.trust_reblur}; the "
        "blurred frames' part and the sharp frames' part must not fall, nor the veto at "
        f"still_veto_cap_db {shipped.still_veto_cap_db:g}):\n"
    )
    names = " | ".join(f"{name}: mean / worst / < -0.1 / Spearman" for name in recorded)
    print(f"| still_min_gain_db | still_cap_db | {names} |")
    print("|---|---|" + "---|" * len(recorded))
    rows: list[tuple[float | None, float]] = [(None, 0.0)]
    rows += [(g, c) for g in gains for c in caps]
    for gain, cap in rows:
        cells = []
        for traces in recorded.values():
            r = replay_shipped(
                traces,
                reference_min_gain_db=shipped.reference_min_gain_db,
                trust_reblur=shipped.trust_reblur,
                still=(gain, cap),
            )
            cells.append(
                f"{r['mean']:+.2f} / {r['worst']:+.2f} / {r['losing']:.0f} / {r['spearman']:+.2f}"
            )
        label = "(blurred frames only) | -" if gain is None else f"{gain:g} | {cap:g}"
        print(f"| {label} | {' | '.join(cells)} |")


def print_pooled(
    sets: dict[str, Sequence[Trace]], grid: Sequence[tuple[str, float, float, float]]
) -> None:
    """Every setting on every set of traces (one per network), fewest losing videos first,
    then the highest mean change of the weakest set."""
    rows = []
    for floor, bw, sw, mg in grid:
        results = [replay(traces, bw, sw, floor, mg) for traces in sets.values()]
        losing = sum(r["losing"] for r in results)
        rows.append((losing, -min(r["mean"] for r in results), (floor, bw, sw, mg), results))
    rows.sort(key=lambda row: (row[0], row[1]))
    names = " | ".join(f"{name}: mean / worst / < -0.1" for name in sets)
    print(f"| floor | blur_weight | shortfall_weight | min_gain_db | {names} | all < -0.1 |")
    print("|---|---|---|---|" + "---|" * len(sets) + "---|")
    for losing, _, (floor, bw, sw, mg), results in rows:
        cells = " | ".join(
            f"{r['mean']:+.2f} / {r['worst']:+.2f} / {r['losing']:.0f}" for r in results
        )
        print(f"| {floor} | {bw:g} | {sw:g} | {mg:g} | {cells} | {losing:.0f} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--videos", type=int, default=3, help="videos per family")
    parser.add_argument("--first-video", type=int, default=0, help="each family's first video")
    parser.add_argument(
        "--source",
        choices=["scenarios", "independent"],
        default="scenarios",
        help="development videos of ttblur.scenarios or of benchmarks/independent_render.py",
    )
    parser.add_argument(
        "--families",
        nargs="+",
        default=None,
        choices=[*FAMILIES, *KINDS],
        help="scenario families (or the independent renderer's kinds); default: all",
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--config",
        default=None,
        help="AdaptConfig JSON file (or inline JSON) adapted with; default: the shipped one",
    )
    parser.add_argument("--lr", type=float, default=None, help="override finetune.lr")
    parser.add_argument("--json", type=Path, default=None, help="also write the traces here")
    parser.add_argument(
        "--traces",
        type=Path,
        nargs="+",
        default=None,
        help="replay saved traces only; several files (one per network) are also pooled",
    )
    parser.add_argument("--blur-weights", type=float, nargs="+", default=BLUR_WEIGHTS)
    parser.add_argument("--shortfall-weights", type=float, nargs="+", default=SHORTFALL_WEIGHTS)
    parser.add_argument("--min-gains", type=float, nargs="+", default=MIN_GAINS)
    parser.add_argument("--reference-min-gains", type=float, nargs="+", default=REFERENCE_MIN_GAINS)
    parser.add_argument("--still-min-gains", type=float, nargs="+", default=STILL_MIN_GAINS)
    parser.add_argument("--still-caps", type=float, nargs="+", default=STILL_CAPS)
    args = parser.parse_args(argv)
    names = KINDS if args.source == "independent" else FAMILIES
    if args.families is None:
        args.families = list(names)
    elif not set(args.families) <= set(names):
        parser.error(f"--families for --source {args.source}: choose from {', '.join(names)}")
    if any(g < 0 for g in args.min_gains):
        parser.error(f"--min-gains must be >= 0, got {args.min_gains}")
    if any(g <= 0 for g in [*args.still_min_gains, *args.still_caps]):
        parser.error("--still-min-gains and --still-caps must be > 0")
    start = time.perf_counter()
    if args.traces is not None:
        sets = {
            path.stem: [Trace(**t) for t in json.loads(path.read_text(encoding="utf-8"))]
            for path in args.traces
        }
        source = "replayed from saved traces"
    else:
        cfg = adapt_config(args)
        sets = {args.model: collect(args, cfg)}
        source = (
            f"{args.frames} frames of {args.size[0]}x{args.size[1]}, finetune.lr "
            f"{cfg.finetune.lr:g}, {time.perf_counter() - start:.0f} s"
        )
    if args.json is not None:
        traces = [asdict(t) for t in next(iter(sets.values()))]
        args.json.write_text(json.dumps(traces) + "\n", encoding="utf-8")
    grid = settings(args.blur_weights, args.shortfall_weights, args.min_gains)
    for name, traces in sets.items():
        best_epoch_gain = sum(max(t.psnr[1:]) - t.psnr[0] for t in traces) / len(traces)
        print(
            f"\n`{name}`: {len(traces)} development videos, {source}. With an oracle "
            f"choosing the epoch (never rolling back): mean {best_epoch_gain:+.2f} dB.\n"
        )
        print_table(traces, grid, args.reference_min_gains)
        print_families(traces)
    if len(sets) > 1:
        print(f"\nPooled over {len(sets)} sets of traces:\n")
        print_pooled(sets, grid)
    print_still(sets, args.still_min_gains, args.still_caps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
