"""The adaptation pipeline: one object that owns its stages and runs them.

:class:`AdaptPipeline` holds the four stage components (a detector, a condition generator, a
synthesizer and an optical flow estimator) and the :class:`~ttblur.config.AdaptConfig` that
sets the pipeline's own knobs. :meth:`AdaptPipeline.from_config` builds every component the
caller did not pass from the registries (:mod:`ttblur.registry`); building happens on first
use, after the inputs are checked, so a bad input fails before any weights are loaded.
Calling the pipeline runs the stages and returns an :class:`~ttblur.outputs.AdaptOutput` with
everything they produced::

    video (T, 3, H, W)
      -> detector.select(video)                  Selection: patches, magnitude (T, 1, H, W) px
      -> condition_generator(video, selection)   maps (N, 3, p, p) [+ fitted exposure]
      -> synthesizer(sharp, maps)                re-blurred patches / motion-consistent clips
      -> noise top-up, pseudo pairs              PseudoPairs (N, L, 3, p, p) -> (N, 3, p, p)
      -> guard.prepare(video, selection, spec)   windows of the real video to score on
      -> finetune(model, pairs, loss_fn, guard)  adapted copy; the guard picks the epoch
                                                 or rolls back
      -> AdaptOutput(model, report, selection, conditions, pairs, finetune, ...)

Example:
    >>> from ttblur.pipeline import AdaptPipeline
    >>> pipe = AdaptPipeline.from_config({"seed": 3})             # doctest: +SKIP
    >>> out = pipe(model, "clip.mp4")                            # doctest: +SKIP
    >>> out.report.best_epoch, out.conditions.shape              # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from ttblur._state import ModuleSnapshot
from ttblur.checks import (
    available_memory,
    check_loss,
    check_materialised,
    check_pair_memory,
    check_video,
    resolve_config,
)
from ttblur.config import AdaptConfig
from ttblur.finetune import (
    EpochGuard,
    FinetuneResult,
    LossFn,
    PseudoPairs,
    build_pseudo_pairs,
    clip_radius,
    copy_model,
    finetune,
    select_trainable,
)
from ttblur.inference import resolve_device, to_video
from ttblur.io.frame_store import Frames
from ttblur.outputs import AdaptOutput, AdaptReport, condition_stats
from ttblur.registry import (
    CONDITION_GENERATORS,
    DETECTORS,
    FLOWS,
    GUARDS,
    SYNTHESIZERS,
    accepted_kwargs,
)
from ttblur.specs import ModelSpec, declared_spec, infer_spec, model_device
from ttblur.stages.clips import synthesize_motion_clips
from ttblur.stages.exposure import video_motion
from ttblur.stages.reblur import match_noise, video_noise_std
from ttblur.stages.sharp_neighbours import window_region
from ttblur.types import (
    BlurConditions,
    BlurSynthesizer,
    ConditionGenerator,
    ExposureEstimate,
    FlowEstimator,
    Guard,
    Selection,
    SharpnessDetector,
    condition_maps,
    guard_score_value,
)
from ttblur.video import VideoSource

__all__ = [
    "NOISE_SEED_OFFSET",
    "SYNTHESIS_RANGE_TOLERANCE",
    "AdaptPipeline",
    "StageCallback",
    "check_blur_lengths",
    "check_loss",
    "default_loss",
    "resolve_config",
    "synthesize_batched",
]

#: The noise top-up draws from its own generator (``seed + NOISE_SEED_OFFSET``) so that it
#: never shifts other random streams.
NOISE_SEED_OFFSET = 7919
#: Re-blurred images copied to the run device per batch of the noise top-up when it is not
#: the CPU (256 x 256 px patches: about 100 MB a batch).
NOISE_BATCH = 128

#: ``callback(stage, produced)`` after each stage: ``"rsdm"`` (``selection``), ``"dbcgm"``
#: (``conditions``, ``exposure``), ``"synthesis"`` (``synthesized``, ``noise_std``),
#: ``"pairs"`` (``pairs``), ``"finetune"`` (``finetune``).
StageCallback = Callable[[str, Mapping[str, Any]], None]


def default_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1, the fine-tuning loss when none is given."""
    return torch.nn.functional.l1_loss(pred, target)


#: How far outside ``[0, 1]`` a synthesizer's output may go before it is refused (then
#: clamped): sensor noise added to a patch pushes a few values over.
SYNTHESIS_RANGE_TOLERANCE = 0.05


def _declared_shape(video: VideoSource) -> tuple[int, int, int, int] | None:
    """``(T, 3, H, W)`` of a video file or frame folder read from its header / listing
    (nothing decoded), ``None`` for other sources or when the count is unknown."""
    if not isinstance(video, (str, os.PathLike)):
        return None
    from ttblur.io.video import video_info  # lazy: optional decoding dependencies

    try:
        info = video_info(video)
    except (OSError, ValueError):  # reported with its full message when it is decoded
        return None
    if info.num_frames <= 0:
        return None
    return (info.num_frames, 3, info.height, info.width)


def check_blur_lengths(condition: Tensor, frame_size: tuple[int, int]) -> None:
    """Refuse condition maps a synthesizer cannot use: NaN / inf anywhere, or a blur length
    (channel 2, ``z`` in px) below 0 or beyond four times the frame's diagonal: no frame of
    this size can show such a blur, and the synthesis boxes, which grow with it, would not fit
    in memory (a million px got the process killed). The slack above one diagonal is for the
    built-in estimates on tiny frames (up to 1.7 diagonals seen in the tests).

    Shape:
        condition: ``(N, 3, p, p)``; ``frame_size`` is ``(H, W)``.
    """
    if not bool(torch.isfinite(condition).all()):
        raise ValueError("the condition generator returned NaN / inf in its condition maps")
    longest = 4 * math.hypot(*frame_size)
    lengths = condition[:, 2]
    low, high = float(lengths.min()), float(lengths.max())
    if low < 0 or high > longest:
        raise ValueError(
            f"the condition generator returned blur lengths from {low:.4g} to {high:.4g} px "
            f"(channel 2 of its maps is z, the blur length in px); they must lie in "
            f"[0, {longest:.0f}], four times the frame's diagonal"
        )


def synthesize_batched(
    synthesizer: BlurSynthesizer, sharp: Tensor, condition: Tensor, batch: int, device: torch.device
) -> Tensor:
    """Run ``synthesizer`` ``batch`` patches at a time on ``device``, without gradients.

    Returns:
        the blurred patches, float32 on the CPU, clamped to ``[0, 1]`` (values within
        :data:`SYNTHESIS_RANGE_TOLERANCE` of it: noise pushes a few over).

    Shape:
        - sharp, condition: ``(N, 3, h, w)``; output: ``(N, 3, h, w)``.

    Raises:
        ValueError: the synthesizer returned something else than a float tensor of its
            input's shape (a shifted or cropped output would misalign every training pair),
            NaN / inf, or values outside ``[0, 1]`` by more than the tolerance (0-255 or
            ``[-1, 1]`` images: clamping them would train on white or black patches).
    """
    outputs = []
    with torch.no_grad():
        for start in range(0, sharp.shape[0], batch):
            chunk = slice(start, start + batch)
            out = synthesizer(sharp[chunk].to(device), condition[chunk].to(device))
            expected = tuple(sharp[chunk].shape)
            if not isinstance(out, Tensor) or tuple(out.shape) != expected:
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(
                    f"synthesizer {synthesizer!r} returned {got} for sharp patches of shape "
                    f"{expected}; a synthesizer must return a tensor of its input's shape"
                )
            out = out.detach().cpu()
            if not out.is_floating_point():
                raise ValueError(
                    f"synthesizer {synthesizer!r} returned a {out.dtype} tensor; a synthesizer "
                    "must return float images in [0, 1], as it is given"
                )
            out = out.float()
            if not bool(torch.isfinite(out).all()):
                raise ValueError(f"synthesizer {synthesizer!r} returned NaN or inf values")
            low, high = float(out.min()), float(out.max())
            tol = SYNTHESIS_RANGE_TOLERANCE
            if low < -tol or high > 1.0 + tol:
                raise ValueError(
                    f"synthesizer {synthesizer!r} returned values in [{low:.4g}, {high:.4g}]; a "
                    f"synthesizer must return images in [0, 1] as it is given them (within "
                    f"{tol:g}; 0-255 or [-1, 1] outputs must be rescaled)"
                )
            outputs.append(out.clamp(0.0, 1.0))
    return torch.cat(outputs)


@contextmanager
def _timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start


def _cuda_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


class AdaptPipeline:
    """Test-time adaptation of a deblurring network to one blurry video.

    Args:
        detector: a :class:`~ttblur.types.SharpnessDetector`; ``None``: built from
            ``config.rsdm`` (:data:`ttblur.registry.DETECTORS`) on first use.
        condition_generator: a :class:`~ttblur.types.ConditionGenerator`; ``None``: built
            from ``config.dbcgm`` with this pipeline's ``flow``.
        synthesizer: a :class:`~ttblur.types.BlurSynthesizer`; ``None``: built from
            ``config.synthesis``.
        guard: a :class:`~ttblur.types.Guard`; ``None``: built from ``config.guard`` (when
            ``config.guard.enabled``) with this pipeline's ``flow``.
        flow: a :class:`~ttblur.types.FlowEstimator`, shared by the built condition generator
            and the motion measure of motion-consistent clips; ``None``: built from
            ``config.dbcgm.flow`` when one of them needs it.
        config: the pipeline's own knobs (patch size, clip mode, noise top-up, fine-tuning)
            and the sections the missing components are built from; ``None``: defaults.
        device: where the detector, the synthesizer and fine-tuning run (``None``: CUDA when
            available, else the CPU).

    Components are registered by name in :attr:`components` (in the manner of diffusers'
    pipelines); a component passed as an object is used as is. ``config`` may be changed
    between calls (``pipe.config.rsdm.patch_size = 48``): the next call rebuilds the
    components it built, so each run gets what a fresh pipeline with that config would.
    """

    #: The component names, in the order the stages run.
    component_names = ("detector", "condition_generator", "synthesizer", "guard", "flow")

    def __init__(
        self,
        detector: SharpnessDetector | None = None,
        condition_generator: ConditionGenerator | None = None,
        synthesizer: BlurSynthesizer | None = None,
        flow: FlowEstimator | None = None,
        guard: Guard | None = None,
        *,
        config: AdaptConfig | dict[str, Any] | str | Path | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.config = resolve_config(config)
        self.device = resolve_device(device)
        self._components: dict[str, Any] = {
            "detector": detector,
            "condition_generator": condition_generator,
            "synthesizer": synthesizer,
            "guard": guard,
            "flow": flow,
        }
        self._given = {name for name, value in self._components.items() if value is not None}
        # The config each built component was built from: a later change rebuilds it.
        self._built_for: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_config(
        cls,
        config: AdaptConfig | dict[str, Any] | str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        **components: Any,
    ) -> AdaptPipeline:
        """A pipeline whose components are the registered stages ``config`` names.

        ``components`` (``detector=``, ``condition_generator=``, ``synthesizer=``, ``guard=``,
        ``flow=``)
        replace the corresponding built stage. Building happens on first access of a
        component (or first call), so no weights are loaded here.
        """
        unknown = sorted(set(components) - set(cls.component_names))
        if unknown:
            raise TypeError(f"unknown component(s) {unknown}; known: {cls.component_names}")
        return cls(**components, config=config, device=device)

    # ------------------------------------------------------------------ components
    @property
    def components(self) -> dict[str, Any]:
        """The components built or given so far, by name (unbuilt ones are absent)."""
        return {k: v for k, v in self._components.items() if v is not None}

    def _component(self, name: str) -> Any:
        if self._components[name] is None:
            self._components[name] = self._build(name)
            self._built_for[name] = self.config.model_dump(mode="json")
        return self._components[name]

    def _build(self, name: str) -> Any:
        cfg = self.config
        if name == "detector":
            return DETECTORS.build(
                cfg.rsdm.name, cfg.rsdm, cfg.rsdm.params, device=self.device, seed=cfg.seed
            )
        if name == "flow":  # on the run device (RAFTFlow, PyramidFlow; DIS stays on the CPU)
            return FLOWS.build(cfg.dbcgm.flow, cfg.dbcgm, device=self.device)
        if name == "condition_generator":
            context: dict[str, Any] = {"seed": cfg.seed}
            if self._generator_takes_flow():
                context["flow"] = self.flow
            return CONDITION_GENERATORS.build(
                cfg.dbcgm.name, cfg.dbcgm, cfg.dbcgm.params, **context
            )
        if name == "synthesizer":
            return SYNTHESIZERS.build(
                cfg.synthesis.name,
                cfg.synthesis,
                cfg.synthesis.params,
                device=self.device,
                seed=cfg.seed,
            )
        if name == "guard":
            return GUARDS.build(
                cfg.guard.name,
                cfg.guard,
                cfg.guard.params,
                flow=self.flow,
                bme=self._detector_bme(),
                neighbours=cfg.dbcgm.neighbours,
                device=self.device,
            )
        raise KeyError(name)

    @property
    def uses_guard(self) -> bool:
        """Whether a run scores epochs with a guard: one was given, or ``config.guard`` is
        enabled."""
        return "guard" in self._given or self.config.guard.enabled

    def _detector_patch(self) -> dict[str, Any]:
        """The side of the patches the detector will cut and what sets it, for the up-front
        checks: ``rsdm.patch_size`` for a built-in built from the config, a given object's
        own integer ``patch_size``; None for a registered user detector or an object without
        one (its own business)."""
        if self._builds_builtin("detector"):
            return {"patch_size": self.config.rsdm.patch_size}
        given = self._components["detector"] if "detector" in self._given else None
        side = getattr(given, "patch_size", None)
        if isinstance(side, int) and not isinstance(side, bool):
            return {"patch_size": side, "patch_setting": f"the detector's patch_size ({side})"}
        return {"patch_size": None}

    def _detector_bme(self) -> Any:
        """The detector's blur magnitude estimator, shared with the guard (None if it has
        none: the guard then loads the shipped one)."""
        return getattr(self.detector, "bme", None)

    @property
    def detector(self) -> SharpnessDetector:
        """The sharpness detector (built from ``config.rsdm`` on first access)."""
        detector: SharpnessDetector = self._component("detector")
        return detector

    @property
    def condition_generator(self) -> ConditionGenerator:
        """The condition generator (built from ``config.dbcgm`` on first access)."""
        generator: ConditionGenerator = self._component("condition_generator")
        return generator

    @property
    def synthesizer(self) -> BlurSynthesizer:
        """The blur synthesizer (built from ``config.synthesis`` on first access)."""
        synthesizer: BlurSynthesizer = self._component("synthesizer")
        return synthesizer

    @property
    def guard(self) -> Guard:
        """The guard (built from ``config.guard`` on first access)."""
        guard: Guard = self._component("guard")
        return guard

    @property
    def flow(self) -> FlowEstimator:
        """The optical flow estimator (built from ``config.dbcgm.flow`` on first access)."""
        flow: FlowEstimator = self._component("flow")
        return flow

    def _builds_builtin(self, name: str) -> bool:
        """Whether the component ``name`` is (to be) built from the config as a built-in."""
        if name in self._given:
            return False
        registry, section = {
            "detector": (DETECTORS, self.config.rsdm.name),
            "condition_generator": (CONDITION_GENERATORS, self.config.dbcgm.name),
            "synthesizer": (SYNTHESIZERS, self.config.synthesis.name),
            "flow": (FLOWS, self.config.dbcgm.flow),
            "guard": (GUARDS, self.config.guard.name),
        }[name]
        return registry.is_builtin(section)

    def _generator_takes_flow(self) -> bool:
        """Whether the condition generator built from the config is handed the flow."""
        if "condition_generator" in self._given:
            return False
        factory = CONDITION_GENERATORS.get_entry(self.config.dbcgm.name)
        builder = getattr(factory, "from_config", None)
        if CONDITION_GENERATORS.is_builtin(self.config.dbcgm.name) and builder is not None:
            factory = builder
        return "flow" in accepted_kwargs(factory, {"flow": None})

    def _uses_flow(self, spec: ModelSpec) -> bool:
        """Whether a run with ``spec`` estimates optical flow on the video's frames."""
        clips = self.config.synthesis.clip == "synthesized"
        return (
            self._generator_takes_flow()
            # A guard built from the config is handed the flow (a given one brings its own).
            or ("guard" not in self._given and self.config.guard.enabled)
            or (clips and clip_radius(spec, self.config.dbcgm.neighbours) > 0)
        )

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v!r}" for k, v in self.components.items())
        return f"AdaptPipeline({parts}, device={str(self.device)!r})"

    # ------------------------------------------------------------------ running
    def __call__(
        self,
        model: nn.Module,
        video: VideoSource,
        loss_fn: LossFn | None = None,
        *,
        spec: ModelSpec | str | None = None,
        in_place: bool = False,
        progress: bool = True,
        callback: StageCallback | None = None,
    ) -> AdaptOutput:
        """Adapt ``model`` to ``video``; see :func:`ttblur.adapt` for the arguments, the
        guarantees (the caller's RNG state, ``in_place`` rollback, checks before work) and
        the exceptions.

        Args:
            callback: ``callback(stage, produced)`` after each stage (:data:`StageCallback`).

        Returns:
            :class:`~ttblur.outputs.AdaptOutput`: the model, the report and what every stage
            produced.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        loss = loss_fn if loss_fn is not None else default_loss
        cuda = [_cuda_index(self.device)] if self.device.type == "cuda" else []
        seconds: dict[str, float] = {}
        # Nothing inside may move the caller's global random streams: they are forked here and
        # seeded from the config, so user stages that draw from them are reproducible too.
        # Fine-tuning needs gradients even when the caller runs under no_grad / inference_mode
        # (restored on exit, like the random streams).
        with torch.random.fork_rng(devices=cuda), torch.inference_mode(False), torch.enable_grad():
            with _timed(seconds, "setup"):
                # Checks of the model, the loss and (for a file, from its header) the video's
                # size run before a long video is decoded; none needs a forward pass.
                declared = declared_spec(model, spec)
                self._check_model_and_loss(model, loss)
                shape = _declared_shape(video)
                if shape is not None:
                    self._check_shape(shape, declared)
            frames = self._frames(video, progress)
            return self._guarded(
                model, frames, loss, declared, in_place, progress, callback, seconds
            )

    def _check_model_and_loss(self, model: nn.Module, loss: LossFn) -> None:
        """The model holds values and trainable parameters; the loss works at the size
        fine-tuning gives it (the crop, else the patch; 32 px when a user detector's patch
        size is unknown)."""
        check_materialised(model)
        select_trainable(model, self.config.finetune.trainable)
        patch = self._detector_patch()["patch_size"]
        side = self.config.finetune.crop_size or patch or 32
        check_loss(loss, self.device, min(side, patch) if patch else side)

    def _check_shape(self, shape: tuple[int, ...], declared: ModelSpec) -> None:
        """The video's length and size suit the run and its pairs fit in memory."""
        check_video(
            shape,
            self.config,
            declared,
            needs_flow=self._uses_flow(declared),
            **self._detector_patch(),
        )
        if self._builds_builtin("detector"):
            check_pair_memory(self.config, declared, shape, available_memory())
        if self.config.guard.enabled and self._builds_builtin("guard"):
            guard = self.config.guard  # the windows it will cut fit the frames
            height, width = int(shape[-2]), int(shape[-1])
            window_region(
                guard.box + 2 * guard.margin, guard.margin, height, width, declared.multiple
            )

    def _seed(self) -> None:
        """Seed the (forked) global random streams from the config, and restart the stages'
        own generators: every run of a reused pipeline or stage object draws what a fresh one
        would (ttblur.stages.seeded)."""
        torch.random.default_generator.manual_seed(self.config.seed)
        if self.device.type == "cuda":
            with torch.cuda.device(_cuda_index(self.device)):
                torch.cuda.manual_seed(self.config.seed)
        for component in self._components.values():
            reseed = getattr(component, "reseed", None)
            if callable(reseed):
                reseed()

    def _build_stages(self, spec: ModelSpec) -> None:
        """Build every stage a run with ``spec`` uses, from seeded streams, so that the first
        call of a pipeline draws from the same streams as every later one (a stage built
        mid-run would consume random numbers only on the first call). Components built from
        an earlier state of ``config`` are rebuilt."""
        current = self.config.model_dump(mode="json")
        for name, built_for in list(self._built_for.items()):
            if built_for != current:  # also one built by reading its property earlier
                self._components[name] = None
                del self._built_for[name]
        self._seed()
        names = ["detector", "condition_generator", "synthesizer"]
        names += ["guard"] if self.uses_guard else []
        names += ["flow"] if self._uses_flow(spec) else []
        for name in names:
            self._component(name)
        self._seed()

    def streams(self, video: VideoSource) -> bool:
        """Whether a run on ``video`` keeps the frames in a disk-backed
        :class:`~ttblur.io.frame_store.FrameStore` instead of memory: ``video`` is a path (a
        video file or a frame folder) and every stage that reads frames (detector, condition
        generator, guard) is a built-in one. User stages are always handed tensors."""
        if not isinstance(video, (str, os.PathLike)):
            return False
        readers = ["detector", "condition_generator"] + (["guard"] if self.uses_guard else [])
        return all(self._builds_builtin(name) for name in readers)

    def _frames(self, video: VideoSource, progress: bool) -> Frames:
        """The video as the stages read it: streamed to a frame store (:meth:`streams`),
        else one in-memory tensor."""
        if self.streams(video):
            from ttblur.io.video import store_video  # lazy: optional decoding dependencies

            return store_video(cast("str | os.PathLike[str]", video), progress=progress)
        return to_video(video)

    def _guarded(
        self,
        model: nn.Module,
        frames: Frames,
        loss: LossFn,
        declared: ModelSpec,
        in_place: bool,
        progress: bool,
        callback: StageCallback | None,
        seconds: dict[str, float],
    ) -> AdaptOutput:
        """The checks of the decoded video, then the run, with the rollback of ``in_place``
        runs."""
        with _timed(seconds, "setup"):
            # The decoded video's own shape (a file may hold fewer frames than it declares).
            self._check_shape(tuple(int(v) for v in frames.shape), declared)
            # in_place: the caller's exact state, restored on any failure, interrupt or divergence.
            snapshot = ModuleSnapshot.capture(model) if in_place else None
        run = _Run(self, model, frames, loss, snapshot, progress, callback, seconds)
        try:
            return run(declared)
        except BaseException:
            if snapshot is not None:
                snapshot.restore()
            raise


class _Run:
    """One call of :class:`AdaptPipeline`: the stages, in order, and the output."""

    def __init__(
        self,
        pipe: AdaptPipeline,
        model: nn.Module,
        frames: Frames,
        loss: LossFn,
        snapshot: ModuleSnapshot | None,
        progress: bool,
        callback: StageCallback | None,
        seconds: dict[str, float],
    ) -> None:
        self.pipe = pipe
        self.cfg = pipe.config
        self.device = pipe.device
        self.model = model
        self.home = model_device(model)
        self.frames = frames
        self.loss = loss
        self.snapshot = snapshot
        self.progress = progress
        self.callback = callback
        self.seconds = seconds
        self.work = model

    def _emit(self, stage: str, **produced: Any) -> None:
        if self.callback is not None:
            self.callback(stage, produced)

    def _unadapted(self) -> nn.Module:
        """The model as it came in: the caller's own, restored, or the fresh copy."""
        if self.snapshot is not None:
            self.snapshot.restore()
            return self.model
        return self.work.to(self.home)

    def __call__(self, declared: ModelSpec) -> AdaptOutput:
        pipe, cfg, frames = self.pipe, self.cfg, self.frames
        with _timed(self.seconds, "setup"):
            self.work = self.model if self.snapshot is not None else copy_model(self.model)
            self.work.to(self.device)
            # The spec probe runs where deblur runs it (the run device), on the model that is
            # adapted; it restores the buffers a forward pass may update.
            pipe._seed()  # a forward pass that draws on its first call draws the same each run
            spec = infer_spec(self.work, declared, device=self.device)
            pipe._build_stages(spec)  # after every check: building loads weights
            detector, generator = pipe.detector, pipe.condition_generator
            synthesizer = pipe.synthesizer

        with _timed(self.seconds, "rsdm"):
            # Built-in stages read a frame store like a tensor (streams()); user stages get one.
            shown = accepted_kwargs(detector.select, {"progress": self.progress})
            selection: Selection = detector.select(cast(Tensor, frames), **shown)
        self._emit("rsdm", selection=selection)
        base: dict[str, Any] = dict(
            num_frames=int(frames.shape[0]),
            frame_size=(int(frames.shape[2]), int(frames.shape[3])),
            device=str(self.device),
            spec=spec.name,
            patches=list(selection.patches),
            candidates=int(selection.candidates),
            threshold_px=selection.threshold,
            config=cfg.model_copy(deep=True),  # the run's own: a later change is not this run's
        )
        if not selection.patches:
            message = "the detector selected no pseudo-sharp patch: the model was not adapted"
            warnings.warn(message, RuntimeWarning, stacklevel=5)
            report = AdaptReport(
                **base, condition=None, reverted=True, seconds=self.seconds, messages=[message]
            )
            return AdaptOutput(self._unadapted(), report, spec, self.device, selection=selection)

        with _timed(self.seconds, "dbcgm"):
            produced = generator(cast(Tensor, frames), selection)
        condition = condition_maps(produced).float().cpu()
        exposure = produced.exposure if isinstance(produced, BlurConditions) else None
        patches = list(selection.patches)
        sharp = torch.stack([p.crop(frames[p.frame]) for p in patches])
        if condition.shape != sharp.shape:
            raise ValueError(
                f"condition generator returned {tuple(condition.shape)}, expected "
                f"{tuple(sharp.shape)}"
            )
        check_blur_lengths(condition, (int(frames.shape[-2]), int(frames.shape[-1])))
        self._emit("dbcgm", conditions=condition, exposure=exposure)

        radius = clip_radius(spec, cfg.dbcgm.neighbours)
        with _timed(self.seconds, "synthesis"):
            synthesized, clips, exposure = self._synthesize(
                synthesizer, patches, sharp, condition, exposure, radius
            )
            noise_level = None
            if cfg.synthesis.match_noise:
                # Blurring averages the patch's own noise away; real blurry frames keep theirs.
                # On a GPU run the estimates and the top-up run there, a batch at a time.
                gen = torch.Generator().manual_seed(cfg.seed + NOISE_SEED_OFFSET)
                noise_level = video_noise_std(frames, device=self.device)
                batch = None if synthesized.device == self.device else NOISE_BATCH
                synthesized = match_noise(
                    synthesized, noise_level, generator=gen, device=self.device, batch_size=batch
                )
        self._emit("synthesis", synthesized=synthesized, noise_std=noise_level)

        with _timed(self.seconds, "pairs"):
            if clips is not None:
                pairs = PseudoPairs(synthesized.view_as(clips), sharp, radius, patches)
            else:
                pairs = build_pseudo_pairs(
                    frames, patches, synthesized, spec, neighbours=cfg.dbcgm.neighbours
                )
        self._emit("pairs", pairs=pairs)

        epoch_guard, windows, scoring = None, None, {"guard": 0.0}
        judged = GuardUse(None, cfg.guard.min_gain_db)
        if pipe.uses_guard:
            with _timed(self.seconds, "guard"):
                # The video's noise, when the synthesis estimated it, is not estimated again.
                known = {} if noise_level is None else {"noise_std": noise_level}
                told = accepted_kwargs(pipe.guard.prepare, known)
                probe = pipe.guard.prepare(cast(Tensor, frames), selection, spec, **told)
                windows = getattr(probe, "windows", None)
            # A probe may carry its own score kind and threshold (the built-in guard does).
            judged = GuardUse(
                str(getattr(probe, "kind", "custom")),
                float(getattr(probe, "min_gain_db", cfg.guard.min_gain_db)),
                bool(getattr(probe, "may_keep", True)),
            )
            device = self.device

            def score(model: nn.Module) -> float:
                # Timed apart: the scoring runs inside fine-tuning but is the guard's cost.
                with _timed(scoring, "guard"):
                    return guard_score_value(probe(model, device), str(judged.kind))

            epoch_guard = EpochGuard(
                score=score,
                min_gain_db=judged.min_gain_db,
                rollback=cfg.guard.rollback,
                may_keep=judged.may_keep,
            )

        with _timed(self.seconds, "finetune"):
            outcome = finetune(
                self.work,
                pairs,
                self.loss,
                cfg.finetune,
                spec=spec,
                device=self.device,
                seed=cfg.seed,
                progress=self.progress,
                guard=epoch_guard,
            )
        if epoch_guard is not None:  # the guard's scoring, moved out of fine-tuning's time
            self.seconds["guard"] += scoring["guard"]
            self.seconds["finetune"] -= scoring["guard"]
        self._emit("finetune", finetune=outcome)
        messages = _outcome_messages(outcome, cfg, judged)
        if exposure is not None and exposure.note:
            messages.append(
                f"{exposure.note}; the conditions use the detector's per-pixel blur maps instead"
            )
        scored = outcome.baseline_guard_score is not None  # the guard scored at least one model
        if outcome.diverged:
            warnings.warn(messages[0], RuntimeWarning, stacklevel=5)
            adapted = self._unadapted()
        else:
            adapted = self.work.to(self.home)
        report = AdaptReport(
            **base,
            condition=condition_stats(condition),
            noise_std=noise_level,
            exposure_ratio=exposure.ratio if exposure is not None else None,
            exposure_ratio_std=exposure.ratio_std if exposure is not None else None,
            motion_px=exposure.motion_px if exposure is not None else None,
            train_loss=outcome.train_loss,
            val_loss=outcome.val_loss,
            baseline_val_loss=outcome.baseline_val_loss,
            best_epoch=outcome.best_epoch,
            baseline_guard_score=outcome.baseline_guard_score,
            guard_scores=outcome.guard_scores,
            guard_score=judged.kind if scored else None,
            guard_min_gain_db=judged.min_gain_db if scored else None,
            guard_may_keep=judged.may_keep if scored else None,
            val_best_epoch=outcome.val_best_epoch,
            guard_rejected=outcome.guard_rejected,
            reverted=outcome.reverted,
            diverged=outcome.diverged,
            num_train_pairs=outcome.num_train,
            num_val_pairs=outcome.num_val,
            seconds=self.seconds,
            messages=messages,
        )
        return AdaptOutput(
            adapted,
            report,
            spec,
            self.device,
            selection=selection,
            conditions=condition,
            exposure=exposure,
            pairs=pairs,
            finetune=outcome,
            noise_std=noise_level,
            guard_scores=_guard_scores(outcome),
            guard_windows=windows,
        )

    def _synthesize(
        self,
        synthesizer: BlurSynthesizer,
        patches: list[Any],
        sharp: Tensor,
        condition: Tensor,
        exposure: ExposureEstimate | None,
        radius: int,
    ) -> tuple[Tensor, Tensor | None, ExposureEstimate | None]:
        """The re-blurred patches ``(N * L, 3, p, p)``, the clips ``(N, L, 3, p, p)`` they
        are a view of (motion-consistent clips only, else None) and the exposure, with the
        video's motion measured when clips need it and the generator fitted none."""
        cfg, device = self.cfg, self.device

        def blur(boxes: Tensor, cond: Tensor) -> Tensor:
            return synthesize_batched(synthesizer, boxes, cond, cfg.synthesis.batch_size, device)

        if cfg.synthesis.clip != "synthesized":
            return blur(sharp, condition), None, exposure
        if radius and exposure is None:
            exposure = ExposureEstimate(None, video_motion(self.frames, self.pipe.flow))
        clips = synthesize_motion_clips(
            self.frames,
            patches,
            condition,
            blur,
            step_px=exposure.motion_px if exposure is not None else 0.0,
            radius=radius,
            batch_size=cfg.synthesis.batch_size,
        )
        return clips.flatten(0, 1), clips, exposure


@dataclass(frozen=True)
class GuardUse:
    """Which score the guard used on a video (``None``: no guard), the gain it needed and
    whether it may keep an adaptation at all."""

    kind: str | None
    min_gain_db: float
    may_keep: bool = True


#: How the report names each built-in guard score, and the setting of its threshold.
_SCORE_WORDS = {
    "reblur": (
        "re-blur consistency and blur left in the output on the video's own frames",
        "guard.min_gain_db",
    ),
    "reference": (
        "PSNR of restored blurred frames against the video's own sharp frames warped onto "
        "them, and of those sharp frames restored against themselves",
        "guard.reference_min_gain_db; on the sharp frames guard.still_min_gain_db, and an "
        "epoch whose sharp frames fall is refused, guard.still_veto_cap_db",
    ),
}


def _outcome_messages(outcome: FinetuneResult, cfg: AdaptConfig, judged: GuardUse) -> list[str]:
    """What the report says about the fine-tuning outcome (the most important first)."""
    if outcome.diverged:
        return [outcome.message or "fine-tuning diverged: the unadapted weights were restored"]
    messages = _guard_messages(outcome, judged)
    if outcome.reverted and outcome.baseline_guard_score is None:
        messages.append(
            "no fine-tuning epoch beat the unadapted model on the held-out pseudo pairs: "
            "the unadapted weights were kept"
        )
    if outcome.num_val == 0:
        kept = (
            "the guard chose the epoch"
            if outcome.baseline_guard_score is not None
            else "the last epoch was kept"
        )
        if cfg.finetune.val_fraction == 0:
            messages.append(
                "validation is disabled by configuration (finetune.val_fraction = 0): no pseudo "
                f"pairs were held out and {kept}"
            )
        else:
            messages.append(
                f"too few pseudo pairs ({outcome.num_train}) for a validation split: {kept}"
            )
    return messages


def _guard_scores(outcome: FinetuneResult) -> dict[str, float]:
    if outcome.baseline_guard_score is None:
        return {}
    scores = {"unadapted": outcome.baseline_guard_score}
    scores.update({f"epoch {i}": v for i, v in enumerate(outcome.guard_scores, start=1)})
    return scores


def _guard_messages(outcome: FinetuneResult, judged: GuardUse) -> list[str]:
    """What the report says about the guard: a rollback, or a disagreement with the
    held-out pseudo pairs."""
    baseline = outcome.baseline_guard_score
    if baseline is None or not outcome.guard_scores:
        return []
    best = max(outcome.guard_scores)
    epoch = outcome.guard_scores.index(best) + 1
    change = f"{best - baseline:+.3f} dB at epoch {epoch}"
    messages = []
    if outcome.guard_rejected:
        action = (
            "the unadapted weights were kept"
            if outcome.reverted
            else f"epoch {outcome.best_epoch} was kept anyway (guard.rollback = False)"
        )
        words, setting = _SCORE_WORDS.get(
            judged.kind or "", ("the custom guard's score", "its min_gain_db")
        )
        if not judged.may_keep:
            messages.append(
                "the guard could only score this video by re-blurring (no frame reads sharp "
                "beside blurred ones, guard.sharp_px; or the video is too noisy, "
                "guard.reference_max_noise; or guard.reference_radius = 0), and that score "
                f"({words}; best {change}) does not keep an adaptation on its own "
                "(guard.trust_reblur = False: on development videos it ranked adaptations "
                f"poorly and kept some that lost up to 4 dB): {action}"
            )
            return messages
        messages.append(
            f"adaptation did not improve the video by the guard's score ({words}, best "
            f"{change}, needed > {judged.min_gain_db:g} dB, {setting}): {action}"
        )
        if outcome.num_val and outcome.val_best_epoch:
            messages.append(
                f"the held-out pseudo pairs disagreed: they improved (best epoch "
                f"{outcome.val_best_epoch}) while the video itself did not"
            )
    elif outcome.num_val and outcome.val_best_epoch == 0:
        messages.append(
            f"the guard kept epoch {outcome.best_epoch} ({change} on the video's own frames) "
            "although no epoch beat the unadapted model on the held-out pseudo pairs"
        )
    elif outcome.num_val and outcome.val_best_epoch != outcome.best_epoch:
        messages.append(
            f"the guard chose epoch {outcome.best_epoch} ({change}); the held-out pseudo pairs "
            f"alone would have chosen epoch {outcome.val_best_epoch}"
        )
    return messages
