"""What an adaptation run returns: the JSON report and the typed output of the pipeline.

:class:`AdaptReport` is the serialisable summary (numbers, patch boxes, losses, config).
:class:`AdaptOutput` is everything :class:`~ttblur.pipeline.AdaptPipeline` produced, the report
included: the selection with its magnitude maps, the condition maps, the pseudo pairs and the
fine-tuning result. The visual report (:mod:`ttblur.report`) draws every figure from it.
:class:`AdaptResult` is the part :func:`ttblur.adapt` has always returned (model, report, spec,
device); an :class:`AdaptOutput` is an :class:`AdaptResult`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from ttblur.config import AdaptConfig
from ttblur.finetune import FinetuneResult, PseudoPairs
from ttblur.inference import deblur
from ttblur.specs import ModelSpec
from ttblur.types import ExposureEstimate, PatchLocation, Selection, warn_mag_norm_ignored
from ttblur.video import VideoSource

__all__ = [
    "AdaptOutput",
    "AdaptReport",
    "AdaptResult",
    "ConditionStats",
    "axial_mean",
    "condition_stats",
]


class ConditionStats(BaseModel):
    """Summary of the blur conditions that drove the synthesis.

    ``direction_deg`` is the axial mean direction of blur (degrees in [0, 180), image x to the
    right, y down) and ``direction_concentration`` its mean resultant length in [0, 1] (1: all
    blur along one axis). Magnitudes are in pixels (the condition's z channel).
    """

    magnitude_mean_px: float
    magnitude_p10_px: float
    magnitude_p90_px: float
    direction_deg: float
    direction_concentration: float


class AdaptReport(BaseModel):
    """What :func:`ttblur.adapt` did, serialisable to JSON (``report.model_dump_json()``;
    ``-inf``, e.g. the guard's score of an epoch whose restoration held NaN, is written as the
    string ``"-Infinity"`` and read back by ``AdaptReport.model_validate_json``)."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

    num_frames: int
    frame_size: tuple[int, int]
    device: str
    spec: str
    patches: list[PatchLocation]
    candidates: int
    threshold_px: float | None
    condition: ConditionStats | None
    noise_std: float | None = None
    #: Exposure / frame interval fitted by DBCGM (``dbcgm.magnitude="exposure"``), else None.
    exposure_ratio: float | None = None
    #: Spread of the fitted exposure ratio (standard deviation over resamplings of the
    #: comparisons it was fitted on); None when no ratio was fitted.
    exposure_ratio_std: float | None = None
    #: The video's motion per frame in px (``magnitude="exposure"`` or synthesized clips).
    motion_px: float | None = None
    train_loss: list[float] = Field(default_factory=list)
    val_loss: list[float] = Field(default_factory=list)
    baseline_val_loss: float | None = None
    best_epoch: int = 0
    #: The guard's score (dB, higher is better; which score: ``guard_score``) of the
    #: unadapted model and after each epoch; None / empty when the guard is off.
    baseline_guard_score: float | None = None
    guard_scores: list[float] = Field(default_factory=list)
    #: Which score the guard used on this video: ``"reference"`` (PSNR against the video's
    #: own sharp frames warped onto blurred neighbours), ``"reblur"`` (re-blur consistency
    #: minus blur left, for videos without sharp frames), a custom guard's kind, or None.
    guard_score: str | None = None
    #: The score gain an epoch needed over the unadapted model to be kept (dB), or None.
    guard_min_gain_db: float | None = None
    #: False when the guard's score could not keep an adaptation on this video (the re-blur
    #: score with ``guard.trust_reblur = False``): the unadapted model was kept; None without
    #: a guard.
    guard_may_keep: bool | None = None
    #: The epoch the held-out pseudo pairs alone would have kept (0: the unadapted model).
    val_best_epoch: int = 0
    #: True when the guard found no epoch better than the unadapted model on the video.
    guard_rejected: bool = False
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
    """The outcome of :func:`ttblur.adapt`.

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

        ``video`` is anything :func:`ttblur.adapt` accepts (a float or ``uint8`` tensor, an
        array, a path, an iterable of frames): both go through the same conversion.
        """
        return deblur(self.model, video, spec=self.spec, device=self.device, progress=progress)

    def __repr__(self) -> str:
        r = self.report
        return (
            f"{type(self).__name__}(spec={r.spec!r}, patches={len(r.patches)}, "
            f"best_epoch={r.best_epoch}, reverted={r.reverted}, device={r.device!r})"
        )


class AdaptOutput(AdaptResult):
    """Everything one run of :class:`~ttblur.pipeline.AdaptPipeline` produced.

    Attributes:
        model, report, spec, device: as :class:`AdaptResult`.
        selection: the detector's :class:`~ttblur.types.Selection` (patches, magnitude maps
            in px on the CPU, threshold, candidate count).
        conditions: the condition generator's maps, float32 on the CPU; ``None`` when no
            patch was chosen.
        exposure: the exposure fitted by the condition generator, or the video's motion
            measured for motion-consistent clips (``ratio`` None), else ``None``.
        pairs: the pseudo training pairs the model was fine-tuned on (``inputs[:, centre]``
            are the re-blurred patches, noise included); ``None`` when no patch was chosen.
        finetune: the fine-tuning loop's :class:`~ttblur.finetune.FinetuneResult`.
        noise_std: the video's noise level the re-blurred patches were topped up to.
        guard_scores: the guard's scores (dB, higher is better) by model: ``"unadapted"``
            and ``"epoch k"`` (empty when the guard is off or nothing was fine-tuned).
        guard_windows: the windows of the video the guard scored
            (:class:`~ttblur.stages.guard.GuardWindows` for the re-blur score,
            :class:`~ttblur.stages.sharp_neighbours.ReferenceWindows` for sharp neighbours),
            or ``None``.

    Shape:
        - selection.magnitude: ``(T, 1, H, W)``.
        - conditions: ``(N, 3, p, p)``, ``N = len(selection.patches)``.
        - pairs.inputs: ``(N, L, 3, p, p)``; pairs.targets: ``(N, 3, p, p)``.

    The tensors stay referenced as long as the output does; drop it (or keep only
    ``.model`` and ``.report``) to free them.
    """

    def __init__(
        self,
        model: nn.Module,
        report: AdaptReport,
        spec: ModelSpec,
        device: torch.device,
        *,
        selection: Selection,
        conditions: Tensor | None = None,
        exposure: ExposureEstimate | None = None,
        pairs: PseudoPairs | None = None,
        finetune: FinetuneResult | None = None,
        noise_std: float | None = None,
        guard_scores: dict[str, float] | None = None,
        guard_windows: Any = None,
    ) -> None:
        super().__init__(model, report, spec, device)
        self.selection = selection
        self.conditions = conditions
        self.exposure = exposure
        self.pairs = pairs
        self.finetune = finetune
        self.noise_std = noise_std
        self.guard_scores: dict[str, float] = dict(guard_scores or {})
        self.guard_windows = guard_windows

    @property
    def reblurred(self) -> Tensor | None:
        """The re-blurred pseudo-sharp patches ``(N, 3, p, p)`` (each clip's centre frame)."""
        if self.pairs is None:
            return None
        return self.pairs.inputs[:, self.pairs.centre]

    @property
    def sharp(self) -> Tensor | None:
        """The pseudo-sharp patches ``(N, 3, p, p)`` (the fine-tuning targets)."""
        return None if self.pairs is None else self.pairs.targets


def axial_mean(condition: Tensor) -> tuple[float, float]:
    """Magnitude-weighted axial mean direction of condition maps.

    Returns:
        degrees in ``[0, 180)`` and the concentration in ``[0, 1]`` (1: every pixel along
        one axis).

    Shape:
        - condition: ``(..., 3, h, w)`` (x, y direction, z magnitude).
    """
    x, y, z = condition.unbind(dim=-3)
    angle2 = 2.0 * torch.atan2(y, x).flatten().double()
    weights = z.flatten().double().clamp_min(1e-12)
    c = float((weights * torch.cos(angle2)).sum() / weights.sum())
    s = float((weights * torch.sin(angle2)).sum() / weights.sum())
    return math.degrees(math.atan2(s, c) / 2.0) % 180.0, math.hypot(c, s)


def condition_stats(condition: Tensor, mag_norm: float | None = None) -> ConditionStats:
    """Summary of condition maps: magnitude mean and 10 / 90 % quantiles in px, direction.

    ``mag_norm``: deprecated and ignored (DeprecationWarning); z is the blur length in px.

    Shape:
        - condition: ``(N, 3, h, w)``.
    """
    warn_mag_norm_ignored("condition_stats", mag_norm)
    z = condition[:, 2].flatten().double()
    direction_deg, concentration = axial_mean(condition)
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


def __getattr__(name: str) -> Any:
    if name == "PatchRecord":
        warnings.warn(
            "PatchRecord is deprecated: the report's patches are ttblur.types.PatchLocation",
            DeprecationWarning,
            stacklevel=2,
        )
        return PatchLocation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
