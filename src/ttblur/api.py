"""``ttblur.adapt``: test-time adaptation of a deblurring network to one blurry video.

Pipeline (see ``docs/architecture.md``)::

    video --RSDM--> pseudo-sharp patches + magnitude maps
          --DBCGM--> blur condition per patch
          --synthesizer--> re-blurred patches (noise topped up to the video's own level)
          --fine-tune--> adapted copy of the user's model

No ground truth is used anywhere: the epoch is chosen on held-out pseudo pairs.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from ttblur._state import ModuleSnapshot
from ttblur.config import AdaptConfig
from ttblur.finetune import (
    FinetuneResult,
    LossFn,
    PseudoPairs,
    build_pseudo_pairs,
    clip_radius,
    copy_model,
    finetune,
    select_trainable,
)
from ttblur.inference import _to_video, deblur, resolve_device
from ttblur.protocols import (
    BlurSynthesizer,
    ConditionGenerator,
    PatchLocation,
    Selection,
    SharpnessDetector,
)
from ttblur.specs import ModelSpec, _declared_spec, infer_spec, model_device
from ttblur.stages.clips import synthesize_motion_clips
from ttblur.stages.exposure import ExposureEstimate, video_motion
from ttblur.stages.flow import MIN_FLOW_SIZE, build_flow
from ttblur.stages.reblur import match_noise, video_noise_std
from ttblur.video import VideoSource

__all__ = ["AdaptReport", "AdaptResult", "ConditionStats", "PatchRecord", "adapt"]

# The noise top-up draws from its own generator so that it never shifts other random streams.
_NOISE_SEED_OFFSET = 7919


class PatchRecord(BaseModel):
    """One chosen pseudo-sharp patch (pixels)."""

    frame: int
    top: int
    left: int
    size: int


class ConditionStats(BaseModel):
    """Summary of the blur conditions that drove the synthesis.

    ``direction_deg`` is the axial mean direction of blur (degrees in [0, 180), image x to the
    right, y down) and ``direction_concentration`` its mean resultant length in [0, 1] (1: all
    blur along one axis). Magnitudes are in pixels (``z * mag_norm``).
    """

    magnitude_mean_px: float
    magnitude_p10_px: float
    magnitude_p90_px: float
    direction_deg: float
    direction_concentration: float


class AdaptReport(BaseModel):
    """What :func:`adapt` did, serialisable to JSON (``report.model_dump_json()``)."""

    model_config = ConfigDict(extra="forbid")

    num_frames: int
    frame_size: tuple[int, int]
    device: str
    spec: str
    patches: list[PatchRecord]
    candidates: int
    threshold_px: float | None
    condition: ConditionStats | None
    noise_std: float | None = None
    #: Exposure / frame interval fitted by DBCGM (``dbcgm.magnitude="exposure"``), else None.
    exposure_ratio: float | None = None
    #: The video's motion per frame in px (``magnitude="exposure"`` or synthesized clips).
    motion_px: float | None = None
    train_loss: list[float] = Field(default_factory=list)
    val_loss: list[float] = Field(default_factory=list)
    baseline_val_loss: float | None = None
    best_epoch: int = 0
    #: True when the returned model holds the unadapted weights (no pseudo-sharp patch, no
    #: epoch better than the unadapted model, or fine-tuning diverged); ``messages`` says why.
    reverted: bool = False
    #: True when fine-tuning diverged (NaN / inf loss or weights); the unadapted model was
    #: restored bit for bit and returned instead of raising.
    diverged: bool = False
    num_train_pairs: int = 0
    num_val_pairs: int = 0
    seconds: dict[str, float] = Field(default_factory=dict)
    messages: list[str] = Field(default_factory=list)
    config: AdaptConfig


class AdaptResult:
    """The outcome of :func:`adapt`.

    Attributes:
        model: the adapted network (a copy of the user's model unless ``in_place=True``).
        report: an :class:`AdaptReport`.
        spec: the :class:`~ttblur.specs.ModelSpec` used to call the network.
        device: the device the adaptation ran on.
    """

    def __init__(
        self, model: nn.Module, report: AdaptReport, spec: ModelSpec, device: torch.device
    ) -> None:
        self.model = model
        self.report = report
        self.spec = spec
        self.device = device

    def deblur(self, video: VideoSource, *, progress: bool = True) -> Tensor:
        """Deblur a video with the adapted model: ``(T, 3, H, W)`` in [0, 1] on the CPU.

        ``video`` is anything :func:`adapt` accepts (a float or ``uint8`` tensor, an array, a
        path, an iterable of frames): both go through the same conversion.
        """
        return deblur(self.model, video, spec=self.spec, device=self.device, progress=progress)

    def __repr__(self) -> str:
        r = self.report
        return (
            f"AdaptResult(spec={r.spec!r}, patches={len(r.patches)}, best_epoch={r.best_epoch}, "
            f"reverted={r.reverted}, device={r.device!r})"
        )


def _resolve_config(config: AdaptConfig | dict[str, Any] | str | Path | None) -> AdaptConfig:
    if config is None:
        return AdaptConfig()
    if isinstance(config, AdaptConfig):
        return config.model_copy(deep=True)
    if isinstance(config, dict):
        return AdaptConfig.model_validate(config)
    if isinstance(config, (str, Path)):
        return AdaptConfig.load(config)
    raise TypeError(f"config must be an AdaptConfig, a dict or a JSON path, got {type(config)}")


def _default_loss(pred: Tensor, target: Tensor) -> Tensor:
    return torch.nn.functional.l1_loss(pred, target)


def _uses_flow(config: AdaptConfig, spec: ModelSpec, own_generator: bool) -> bool:
    """Whether the run will estimate optical flow on the video's frames."""
    condition_flow = not own_generator and config.dbcgm.name != "random"
    clip_flow = (
        config.synthesis.clip == "synthesized" and clip_radius(spec, config.dbcgm.neighbours) > 0
    )
    return condition_flow or clip_flow


def _check_video(
    video: Tensor, config: AdaptConfig, spec: ModelSpec, *, needs_flow: bool = True
) -> None:
    num_frames, _, height, width = video.shape
    needed = max(2 * config.rsdm.border_frames + 1, 2 * clip_radius(spec) + 1, 5)
    if num_frames < needed:
        raise ValueError(
            f"video has {num_frames} frames; adapt needs at least {needed} (a patch at frame t "
            f"uses frames t-2..t+2 and the first and last {config.rsdm.border_frames} frames "
            "are never chosen)"
        )
    if needs_flow and min(height, width) < MIN_FLOW_SIZE:
        raise ValueError(
            f"frames are {height}x{width}; adapt estimates optical flow on them, which needs "
            f"frames of at least {MIN_FLOW_SIZE}x{MIN_FLOW_SIZE} px: use larger frames"
        )
    patch = config.rsdm.patch_size
    if height < patch or width < patch:
        raise ValueError(
            f"frames are {height}x{width}, smaller than the {patch}x{patch} pseudo-sharp patch; "
            "lower config.rsdm.patch_size (e.g. AdaptConfig(rsdm={'patch_size': "
            f"{_largest_patch(height, width)}}})) or use larger frames"
        )


def _largest_patch(height: int, width: int) -> int:
    """A patch side that fits frames of ``height x width``: the shorter side rounded down to
    a multiple of 16 (the side itself below 16 px)."""
    side = min(height, width)
    return side - side % 16 if side >= 16 else side


def _check_loss(loss_fn: LossFn, device: torch.device) -> None:
    # A local generator: checking the loss must not consume the caller's global RNG.
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, 8, 8, generator=gen).to(device).requires_grad_(True)
    target = torch.rand(2, 3, 8, 8, generator=gen).to(device)
    try:
        value = loss_fn(pred, target)
    except Exception as err:
        raise ValueError(
            f"loss_fn(pred, target) failed on (2, 3, 8, 8) tensors: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(value, Tensor) or value.numel() != 1 or value.ndim != 0:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"loss_fn must return a scalar tensor, got {shape}")
    if not value.requires_grad:
        raise ValueError("loss_fn's result does not depend on pred (no gradient would flow)")
    if not torch.isfinite(value.detach()).all():
        raise ValueError(
            f"loss_fn(pred, target) returned {float(value.detach())} on (2, 3, 8, 8) tensors in "
            "[0, 1]: it must be finite (fine-tuning on it could only diverge)"
        )


def _build_detector(config: AdaptConfig, device: torch.device) -> SharpnessDetector:
    from ttblur.stages.rsdm import RandomPatchSelector, RelativeSharpnessDetector

    if config.rsdm.name == "random":
        return RandomPatchSelector.from_config(config.rsdm, seed=config.seed, device=device)
    return RelativeSharpnessDetector.from_config(config.rsdm, device=device)


def _build_generator(config: AdaptConfig) -> ConditionGenerator:
    from ttblur.stages.dbcgm import build_condition_generator

    return build_condition_generator(config.dbcgm, config.mag_norm, seed=config.seed)


def _build_synthesizer(config: AdaptConfig, device: torch.device) -> BlurSynthesizer:
    from ttblur.stages.synthesis import build_synthesizer

    return build_synthesizer(config.synthesis, config.mag_norm, device=device, seed=config.seed)


def _axial_mean(condition: Tensor) -> tuple[float, float]:
    """Magnitude-weighted axial mean direction of condition maps ``(..., 3, h, w)``: degrees in
    ``[0, 180)`` and the concentration in ``[0, 1]`` (1: every pixel along one axis)."""
    x, y, z = condition.unbind(dim=-3)
    angle2 = 2.0 * torch.atan2(y, x).flatten().double()
    weights = z.flatten().double().clamp_min(1e-12)
    c = float((weights * torch.cos(angle2)).sum() / weights.sum())
    s = float((weights * torch.sin(angle2)).sum() / weights.sum())
    return math.degrees(math.atan2(s, c) / 2.0) % 180.0, math.hypot(c, s)


def _condition_stats(condition: Tensor, mag_norm: float) -> ConditionStats:
    z = condition[:, 2].flatten().double() * mag_norm
    direction_deg, concentration = _axial_mean(condition)
    quantiles = torch.quantile(
        z[:: max(1, z.numel() // 100_000)], torch.tensor([0.1, 0.9]).double()
    )
    return ConditionStats(
        magnitude_mean_px=float(z.mean()),
        magnitude_p10_px=float(quantiles[0]),
        magnitude_p90_px=float(quantiles[1]),
        direction_deg=direction_deg,
        direction_concentration=concentration,
    )


def _sharpest(patches: list[PatchLocation], magnitude: Tensor, count: int) -> list[PatchLocation]:
    """The ``count`` patches with the lowest mean predicted magnitude, in their original order."""
    scores = torch.stack([p.crop(magnitude[p.frame]).float().mean() for p in patches])
    keep = set(torch.argsort(scores, stable=True)[:count].tolist())
    return [p for i, p in enumerate(patches) if i in keep]


@contextmanager
def _timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start


def _synthesize(
    synthesizer: BlurSynthesizer, sharp: Tensor, condition: Tensor, batch: int, device: torch.device
) -> Tensor:
    outputs = []
    with torch.no_grad():
        for start in range(0, sharp.shape[0], batch):
            chunk = slice(start, start + batch)
            out = synthesizer(sharp[chunk].to(device), condition[chunk].to(device))
            outputs.append(out.detach().float().cpu().clamp(0.0, 1.0))
    return torch.cat(outputs)


def adapt(
    model: nn.Module,
    video: VideoSource,
    loss_fn: LossFn | None = None,
    *,
    config: AdaptConfig | dict[str, Any] | str | Path | None = None,
    spec: ModelSpec | str | None = None,
    device: str | torch.device | None = None,
    in_place: bool = False,
    detector: SharpnessDetector | None = None,
    condition_generator: ConditionGenerator | None = None,
    synthesizer: BlurSynthesizer | None = None,
    progress: bool = True,
) -> AdaptResult:
    """Adapt a deblurring network to one blurry video by test-time blurring.

    Args:
        model: the user's trained deblurring network. It is never modified unless
            ``in_place=True``: a deep copy is adapted (same dtype), moved to ``device``.
        video: ``(T, 3, H, W)`` tensor (float in [0, 1] or ``uint8``), ``(T, H, W, 3)``
            array, frame folder, video file (anything :func:`ttblur.load_video` reads) or an
            iterable of ``(3, H, W)`` frames: the inputs :func:`ttblur.deblur` accepts. At
            least 5 frames, each at least ``config.rsdm.patch_size`` pixels on both sides.
        loss_fn: ``loss_fn(pred, target) -> scalar tensor`` on ``(B, 3, h, w)`` tensors in
            [0, 1] (the model's outputs mapped back to [0, 1] by the spec). Default: L1.
        config: an :class:`~ttblur.config.AdaptConfig`, a dict or a JSON file path.
        spec: how to call ``model``: a :class:`~ttblur.specs.ModelSpec` or a built-in name
            (``"estrnn"``, ``"mmp_rnn"``, ``"dstnet"``, ``"shiftnet"``, ``"image"``). ``None``
            uses ``model.spec`` if present, else the image convention, verified by one tiny
            forward pass on the run device (as :func:`ttblur.deblur` does), run on the copy
            that is adapted.
        device: ``None`` picks CUDA when available, else the CPU.
        in_place: adapt ``model`` itself instead of a copy. Its parameters, buffers,
            gradients, ``requires_grad`` flags and modes are recorded first; if the run fails,
            is interrupted (``KeyboardInterrupt``) or diverges, they are restored bit for bit.
        detector, condition_generator, synthesizer: user objects implementing the stage
            protocols; each replaces the stage that ``config`` would build.
        progress: show progress bars.

    Returns:
        :class:`AdaptResult` with the adapted ``model``, the ``report`` and ``deblur()``. When
        fine-tuning diverges (NaN / inf loss, e.g. a float16 model or a huge ``lr``) nothing
        is raised: the unadapted model is returned (the caller's own model, restored, for
        ``in_place=True``) with ``report.reverted`` and ``report.diverged`` set and the cause
        in ``report.messages``.

    Raises:
        ValueError: bad video (too few frames, frames smaller than a patch or than optical
            flow needs, NaN, range, layout, dtype), a model whose output does not fit its spec
            (the message gives the cause), a ``loss_fn`` that fails or does not return a
            scalar depending on its input, or a ``config.finetune.trainable`` that selects no
            parameter. All checks run before any expensive work.
        TypeError: ``model`` is not an ``nn.Module``.

    Notes:
        The caller's global torch RNG state (CPU and the run device) is the same after the
        call as before; every random choice inside comes from ``config.seed``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    cfg = _resolve_config(config)
    run_device = resolve_device(device)
    frames = _to_video(video)
    loss = loss_fn if loss_fn is not None else _default_loss
    cuda = [_cuda_index(run_device)] if run_device.type == "cuda" else []
    # Nothing inside may move the caller's global random streams: they are forked here and
    # seeded from the config, so user stages that draw from them are reproducible too.
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(cfg.seed)
        if cuda:
            with torch.cuda.device(cuda[0]):
                torch.cuda.manual_seed(cfg.seed)
        return _adapt(
            model,
            frames,
            loss,
            cfg,
            spec,
            run_device,
            in_place,
            detector,
            condition_generator,
            synthesizer,
            progress,
        )


def _cuda_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def _adapt(
    model: nn.Module,
    frames: Tensor,
    loss: LossFn,
    cfg: AdaptConfig,
    spec: ModelSpec | str | None,
    run_device: torch.device,
    in_place: bool,
    detector: SharpnessDetector | None,
    condition_generator: ConditionGenerator | None,
    synthesizer: BlurSynthesizer | None,
    progress: bool,
) -> AdaptResult:
    """:func:`adapt` after argument resolution, with the rollback of ``in_place`` runs."""
    home = model_device(model)
    seconds: dict[str, float] = {}
    with _timed(seconds, "setup"):
        # Every check that needs no forward pass runs first, on the caller's model untouched.
        declared = _declared_spec(model, spec)
        needs_flow = _uses_flow(cfg, declared, condition_generator is not None)
        _check_video(frames, cfg, declared, needs_flow=needs_flow)
        _check_loss(loss, run_device)
        select_trainable(model, cfg.finetune.trainable)
        # in_place: the caller's exact state, restored on any failure, interrupt or divergence.
        snapshot = ModuleSnapshot.capture(model) if in_place else None
    try:
        return _run(
            model,
            home,
            frames,
            loss,
            cfg,
            declared,
            run_device,
            snapshot,
            detector,
            condition_generator,
            synthesizer,
            progress,
            seconds,
        )
    except BaseException:
        if snapshot is not None:
            snapshot.restore()
        raise


def _run(
    model: nn.Module,
    home: torch.device,
    frames: Tensor,
    loss: LossFn,
    cfg: AdaptConfig,
    declared: ModelSpec,
    run_device: torch.device,
    snapshot: ModuleSnapshot | None,
    detector: SharpnessDetector | None,
    condition_generator: ConditionGenerator | None,
    synthesizer: BlurSynthesizer | None,
    progress: bool,
    seconds: dict[str, float],
) -> AdaptResult:
    """The pipeline proper; ``snapshot`` is the caller's state for an ``in_place`` run."""
    messages: list[str] = []
    with _timed(seconds, "setup"):
        work = model if snapshot is not None else copy_model(model)
        work.to(run_device)
        # The spec probe runs where deblur runs it (the run device), on the model that is
        # adapted; it restores the buffers a forward pass may update.
        resolved_spec = infer_spec(work, declared, device=run_device)
        detector = detector or _build_detector(cfg, run_device)
        generator = condition_generator or _build_generator(cfg)
        synth = synthesizer or _build_synthesizer(cfg, run_device)

    def unadapted() -> nn.Module:
        """The model as it came in: the caller's own, restored, or the fresh copy."""
        if snapshot is not None:
            snapshot.restore()
            return model
        return work.to(home)

    with _timed(seconds, "rsdm"):
        selection: Selection = detector.select(frames)
    patches = list(selection.patches)
    if cfg.rsdm.max_patches is not None and len(patches) > cfg.rsdm.max_patches:
        patches = _sharpest(patches, selection.magnitude, cfg.rsdm.max_patches)
        selection.patches = patches
    report_kwargs: dict[str, Any] = dict(
        num_frames=int(frames.shape[0]),
        frame_size=(int(frames.shape[2]), int(frames.shape[3])),
        device=str(run_device),
        spec=resolved_spec.name,
        patches=[PatchRecord(frame=p.frame, top=p.top, left=p.left, size=p.size) for p in patches],
        candidates=int(selection.candidates),
        threshold_px=selection.threshold,
        config=cfg,
    )
    if not patches:
        message = "the detector selected no pseudo-sharp patch: the model was not adapted"
        warnings.warn(message, RuntimeWarning, stacklevel=4)
        report = AdaptReport(
            **report_kwargs, condition=None, reverted=True, seconds=seconds, messages=[message]
        )
        return AdaptResult(unadapted(), report, resolved_spec, run_device)

    with _timed(seconds, "dbcgm"):
        condition = generator(frames, selection).float().cpu()
    sharp = torch.stack([p.crop(frames[p.frame]) for p in patches])
    if condition.shape != sharp.shape:
        raise ValueError(
            f"condition generator returned {tuple(condition.shape)}, expected {tuple(sharp.shape)}"
        )
    exposure: ExposureEstimate | None = getattr(generator, "last_exposure", None)
    radius = clip_radius(resolved_spec, cfg.dbcgm.neighbours)
    with _timed(seconds, "synthesis"):
        clips = None
        if cfg.synthesis.clip == "synthesized":
            if radius and exposure is None:
                exposure = ExposureEstimate(None, video_motion(frames, build_flow(cfg.dbcgm)))
            step = exposure.motion_px if exposure is not None else 0.0
            clips = synthesize_motion_clips(
                frames,
                patches,
                condition,
                lambda boxes, cond: _synthesize(
                    synth, boxes, cond, cfg.synthesis.batch_size, run_device
                ),
                step_px=step,
                radius=radius,
                mag_norm=cfg.mag_norm,
                batch_size=cfg.synthesis.batch_size,
            )
            synthesized = clips.flatten(0, 1)
        else:
            synthesized = _synthesize(synth, sharp, condition, cfg.synthesis.batch_size, run_device)
        noise_level = None
        if cfg.synthesis.match_noise:
            # Blurring averages the patch's own noise away; real blurry frames keep theirs.
            noise_level = video_noise_std(frames)
            gen = torch.Generator().manual_seed(cfg.seed + _NOISE_SEED_OFFSET)
            synthesized = match_noise(synthesized, noise_level, generator=gen)
    with _timed(seconds, "pairs"):
        if clips is not None:
            pairs = PseudoPairs(synthesized.view_as(clips), sharp, radius, patches)
        else:
            pairs = build_pseudo_pairs(
                frames, patches, synthesized, resolved_spec, neighbours=cfg.dbcgm.neighbours
            )
    with _timed(seconds, "finetune"):
        outcome = finetune(
            work,
            pairs,
            loss,
            cfg.finetune,
            spec=resolved_spec,
            device=run_device,
            seed=cfg.seed,
            progress=progress,
        )
    messages.extend(_outcome_messages(outcome, cfg))
    if outcome.diverged:
        warnings.warn(messages[0], RuntimeWarning, stacklevel=4)
        adapted = unadapted()
    else:
        adapted = work.to(home)
    report = AdaptReport(
        **report_kwargs,
        condition=_condition_stats(condition, cfg.mag_norm),
        noise_std=noise_level,
        exposure_ratio=exposure.ratio if exposure is not None else None,
        motion_px=exposure.motion_px if exposure is not None else None,
        train_loss=outcome.train_loss,
        val_loss=outcome.val_loss,
        baseline_val_loss=outcome.baseline_val_loss,
        best_epoch=outcome.best_epoch,
        reverted=outcome.reverted,
        diverged=outcome.diverged,
        num_train_pairs=outcome.num_train,
        num_val_pairs=outcome.num_val,
        seconds=seconds,
        messages=messages,
    )
    return AdaptResult(adapted, report, resolved_spec, run_device)


def _outcome_messages(outcome: FinetuneResult, cfg: AdaptConfig) -> list[str]:
    """What the report says about the fine-tuning outcome (the most important first)."""
    if outcome.diverged:
        return [outcome.message or "fine-tuning diverged: the unadapted weights were restored"]
    messages = []
    if outcome.reverted:
        messages.append(
            "no fine-tuning epoch beat the unadapted model on the held-out pseudo pairs: "
            "the unadapted weights were kept"
        )
    if outcome.num_val == 0:
        if cfg.finetune.val_fraction == 0:
            messages.append(
                "validation is disabled by configuration (finetune.val_fraction = 0): no pseudo "
                "pairs were held out and the last epoch was kept"
            )
        else:
            messages.append(
                f"too few pseudo pairs ({outcome.num_train}) for a validation split: the last "
                "epoch was kept"
            )
    return messages
