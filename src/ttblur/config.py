"""Explicit, serialisable configuration of a test-time adaptation run.

:class:`AdaptConfig` holds one section per pipeline stage. Each section names the stage
implementation it builds (``name``) and that implementation's parameters. Every model rejects
unknown keys, so a typo in a JSON file is an error rather than a silently ignored setting.

Example:
    >>> from ttblur.config import AdaptConfig
    >>> cfg = AdaptConfig(seed=3)
    >>> AdaptConfig.from_json(cfg.to_json()) == cfg
    True
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ttblur import registry

__all__ = [
    "MAX_SEED",
    "MAX_TAPS",
    "AdaptConfig",
    "DBCGMConfig",
    "FinetuneConfig",
    "GuardConfig",
    "RSDMConfig",
    "SynthesisConfig",
    "parse_trainable",
]


#: Largest accepted ``seed``: stages derive their own seeds by adding small offsets, and every
#: derived seed must stay inside ``torch.Generator.manual_seed``'s range.
MAX_SEED = 2**63 - 1
#: Largest accepted ``synthesis.taps``: each tap is one pass over a batch of patches (the
#: automatic choice takes one sample every 0.5 px and stops at 301).
MAX_TAPS = 1024

_REVISION_HELP = (
    "Hub revision (branch, tag or commit hash) of {field} when it is a repo id; None: the "
    "default branch"
)


def _plain_value(value: Any) -> Any:
    """NumPy scalars as the Python numbers they hold, paths as their text; other values as
    they are (also ``json.dumps``'s fallback for a user stage's parameters)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _json_value(value: Any) -> Any:
    """``json.dumps``'s fallback: a NumPy scalar or a path in plain form, else refused."""
    plain = _plain_value(value)
    if plain is value:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return plain


class _Section(BaseModel):
    """Base of every config section: unknown keys are rejected, assignments validated, no
    float field accepts NaN or +-inf, and values keep their type: an integer field refuses
    ``True`` and ``"7"``, a switch refuses ``1`` and ``"yes"`` (an integer is a valid float).
    NumPy scalars count as the Python numbers they hold, a list as a tuple (JSON has no
    tuples), and a path (``pathlib.Path``) as its text (the weights fields)."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False, strict=True
    )

    @field_validator("*", mode="before")
    @classmethod
    def _plain_values(cls, value: Any) -> Any:
        value = _plain_value(value)
        return tuple(value) if isinstance(value, list) else value  # JSON has no tuples

    def __setattr__(self, name: str, value: Any) -> None:
        # pydantic stores an assigned value before the model's cross-field rules run, so a
        # refused assignment would stay in place; put the section back as it was.
        fields = dict(self.__dict__)
        extra = None if self.__pydantic_extra__ is None else dict(self.__pydantic_extra__)
        fields_set = set(self.__pydantic_fields_set__)
        try:
            super().__setattr__(name, value)
        except ValidationError:
            self.__dict__.clear()
            self.__dict__.update(fields)
            if extra is not None:
                object.__setattr__(self, "__pydantic_extra__", extra)
            object.__setattr__(self, "__pydantic_fields_set__", fields_set)
            raise


class _StageSection(_Section):
    """A section that names a registered stage: ``{"name": ..., **params}``.

    The typed fields are the built-in stages' parameters (and the pipeline's own knobs, such
    as ``patch_size`` or ``neighbours``). A built-in name refuses unknown keys; the name of a
    stage registered by the user (:mod:`ttblur.registry`) takes its own parameters as extra
    keys, checked against its constructor's signature, and they are what it is built with.
    """

    model_config = ConfigDict(
        extra="allow", validate_assignment=True, frozen=False, allow_inf_nan=False, strict=True
    )
    _registry: ClassVar[str] = ""

    name: str

    @model_validator(mode="after")
    def _check_stage(self) -> Any:
        stages: registry.Registry[Any] = getattr(registry, self._registry)
        for key, value in self.params.items():
            try:  # as the config's JSON (a saved config, report.json) gives it back
                plain = json.loads(json.dumps(value, allow_nan=False, default=_json_value))
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"{key}={value!r:.60} cannot be written to the config's JSON ({err}); a "
                    "registered stage's parameters must be JSON values (numbers, strings, "
                    "booleans, None, lists and dicts of them)"
                ) from None
            if self.__pydantic_extra__ is not None:
                self.__pydantic_extra__[key] = plain
        params = self.params
        if stages.is_builtin(self.name):
            if params:
                raise ValueError(
                    f"unknown key(s) {sorted(params)} for the built-in {stages.kind} "
                    f"{self.name!r} (extra keys are the parameters of a stage you register)"
                )
        else:
            stages.check_params(self.name, params)
        return self

    @property
    def params(self) -> dict[str, Any]:
        """The extra keys: the parameters of a user-registered stage (empty for built-ins)."""
        return dict(self.model_extra or {})


def _check_revision(weights: str | None, revision: str | None, field: str) -> None:
    if revision is not None and weights is None:
        raise ValueError(
            f"{field}_revision={revision!r} is set but {field} is None: a revision pins a Hub "
            f"repo id, so set {field} to the repo id as well"
        )


class RSDMConfig(_StageSection):
    """Relative Sharpness Detection Module: which patches become pseudo-sharp images.

    ``name``: ``"relative_sharpness"`` (BME + adaptive threshold, the paper's RSDM),
    ``"random"`` (uniformly random patches, the paper's ablation), which keeps the same count,
    or a detector registered in ``ttblur.registry.DETECTORS``.
    """

    _registry: ClassVar[str] = "DETECTORS"
    name: str = Field(
        default="relative_sharpness",
        description=(
            '"relative_sharpness" (BME + adaptive threshold, the paper\'s RSDM), "random" (the '
            "paper's ablation: as many random patches) or a detector registered in "
            "ttblur.registry.DETECTORS, whose parameters are then extra keys of this section"
        ),
    )
    weights: str | None = Field(
        default=None,
        description="BME weights: local folder or Hub repo id; None loads the shipped default.",
    )
    weights_revision: str | None = Field(
        default=None, min_length=1, description=_REVISION_HELP.format(field="weights")
    )
    patch_size: int = Field(default=256, gt=0, description="side of a pseudo-sharp patch, px")
    ratio: float = Field(
        default=0.2, gt=0.0, le=1.0, description="share of candidate patches kept (paper: 20%)"
    )
    border_frames: int = Field(
        default=2, ge=0, description="frames skipped at each end (they lack +-2 neighbours)"
    )
    tolerance: float = Field(
        default=0.02, gt=0.0, lt=1.0, description="threshold search stops within this share"
    )
    batch_size: int = Field(default=4, gt=0, description="frames per BME forward pass")
    max_patches: int | None = Field(
        default=None, gt=0, description="cap on kept patches (the sharpest are kept)"
    )

    @model_validator(mode="after")
    def _check_weights(self) -> RSDMConfig:
        _check_revision(self.weights, self.weights_revision, "weights")
        return self


class DBCGMConfig(_StageSection):
    """Domain-adaptive Blur Condition Generation Module: the blur condition of each patch.

    ``name``: ``"dbcgm"`` (flow direction + BME magnitude adaptation, the paper's module),
    ``"flow_only"`` (direction and magnitude from optical flow alone), ``"random"`` or a
    generator registered in ``ttblur.registry.CONDITION_GENERATORS``. ``flow`` names the
    pipeline's optical flow estimator (``ttblur.registry.FLOWS``).
    """

    _registry: ClassVar[str] = "CONDITION_GENERATORS"
    name: str = Field(
        default="dbcgm",
        description=(
            '"dbcgm" (flow direction + BME magnitude adaptation, the paper\'s module), '
            '"flow_only" (direction and magnitude from optical flow alone), "random" or a '
            "generator registered in ttblur.registry.CONDITION_GENERATORS (parameters as "
            "extra keys)"
        ),
    )
    flow: str = Field(
        default="opencv",
        description=(
            'optical flow: "opencv" (DIS, no weights, CPU), "pyramid" (batched torch Lucas-'
            'Kanade, no weights, on the run device), "raft" (torchvision RAFT) or a flow '
            "estimator registered in ttblur.registry.FLOWS (built without arguments)"
        ),
    )
    flow_preset: Literal["ultrafast", "fast", "medium"] = Field(
        default="medium", description="DIS speed/quality preset (OpenCV flow only)"
    )
    flow_weights: str | None = Field(
        default=None, description="RAFT weights: local file/folder or Hub repo id"
    )
    flow_weights_revision: str | None = Field(
        default=None, min_length=1, description=_REVISION_HELP.format(field="flow_weights")
    )
    neighbours: int = Field(default=2, ge=1, description="frames used on each side of t")
    context: int = Field(
        default=32, ge=0, description="margin in px around a patch over which flow is computed"
    )
    magnitude: Literal["bme", "exposure"] = Field(
        default="bme",
        description=(
            "magnitude source: BME magnitude adaptation per patch (the paper's), or the "
            "video's fitted exposure ratio x its motion per frame (one length per video)"
        ),
    )
    magnitude_offset: float = Field(
        default=3.0,
        ge=0.0,
        description="px added to the adapted magnitude (official: 10, tuned for ID-Blau)",
    )
    motion_cap: bool = Field(
        default=True,
        description="cap the adapted magnitude by the per-frame motion |F| / n (px)",
    )
    lengths: Literal["patch", "video"] = Field(
        default="patch",
        description=(
            "pseudo pairs' blur lengths: each patch's own estimate (the paper's), or those "
            "estimates mapped by rank onto the video's own distribution of blur (BME maps of "
            "every frame), the patch's own blur removed, so near-still videos give near-"
            "identity pairs"
        ),
    )
    identity_px: float = Field(
        default=0.5,
        ge=0.0,
        description='lengths="video": a pair whose length is below this is an identity pair (px)',
    )
    min_flow: float = Field(
        default=0.5, ge=0.0, description="|F| in px below which the direction falls back"
    )
    random_magnitude: tuple[float, float] = Field(
        default=(0.0, 147.0),
        description="range of the blur length z (px) for the random ablation, 0 <= low <= high",
    )

    @field_validator("flow")
    @classmethod
    def _check_flow(cls, value: str) -> str:
        if value not in registry.FLOWS:
            registry.FLOWS.get_entry(value)  # raises, listing the known names
        return value

    @model_validator(mode="after")
    def _check_range(self) -> DBCGMConfig:
        low, high = self.random_magnitude
        if not 0.0 <= low <= high:
            raise ValueError(
                f"random_magnitude must satisfy 0 <= low <= high (px), got {low, high}"
            )
        _check_revision(self.flow_weights, self.flow_weights_revision, "flow_weights")
        return self


class SynthesisConfig(_StageSection):
    """Blur synthesis: how pseudo-sharp patches are blurred with their condition maps.

    ``name``: ``"physical"`` (weight-free motion blur along the condition, the default),
    ``"idblau"`` (the ID-Blau conditional diffusion model; needs weights) or a synthesizer
    registered in ``ttblur.registry.SYNTHESIZERS``.
    """

    _registry: ClassVar[str] = "SYNTHESIZERS"
    name: str = Field(
        default="physical",
        description=(
            '"physical" (weight-free motion blur along the condition), "idblau" (the ID-Blau '
            "conditional diffusion model; needs weights) or a synthesizer registered in "
            "ttblur.registry.SYNTHESIZERS (parameters as extra keys)"
        ),
    )
    weights: str | None = Field(default=None, description="ID-Blau weights: folder or repo id")
    weights_revision: str | None = Field(
        default=None, min_length=1, description=_REVISION_HELP.format(field="weights")
    )
    gamma: float = Field(default=2.2, gt=0.0, description="display gamma for linear-light blur")
    taps: int | None = Field(
        default=None,
        gt=1,
        le=MAX_TAPS,
        description="samples per blur segment; None: automatic (one per 0.5 px, at most 301)",
    )
    noise_std: float = Field(default=0.0, ge=0.0, description="Gaussian sensor noise, [0,1] units")
    match_noise: bool = Field(
        default=True,
        description="top up the noise of re-blurred patches to the level estimated on the video",
    )
    clip: Literal["original", "synthesized"] = Field(
        default="synthesized",
        description=(
            "neighbour frames of a fine-tuning clip: synthesised from the pseudo-sharp patch, "
            "moving as the video moves, or the video's own (the paper's)"
        ),
    )
    num_steps: int = Field(default=20, gt=0, description="DDIM sampling steps (ID-Blau)")
    eta: float = Field(default=0.0, ge=0.0, description="DDIM eta (0: deterministic)")
    batch_size: int = Field(default=8, gt=0, description="patches per synthesizer call")

    @field_validator("taps", mode="before")
    @classmethod
    def _check_taps(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TAPS:
            raise ValueError(
                f"taps={value} is above the maximum {MAX_TAPS}: every tap is one pass over a "
                "batch of patches, so such a run would not finish; use None (automatic: one "
                f"sample per 0.5 px of blur, at most 301) or a value in [2, {MAX_TAPS}]"
            )
        return value

    @model_validator(mode="after")
    def _check_weights(self) -> SynthesisConfig:
        _check_revision(self.weights, self.weights_revision, "weights")
        return self


def parse_trainable(trainable: str) -> Literal["all", "norm"] | re.Pattern[str]:
    """``finetune.trainable`` parsed: ``"all"``, ``"norm"`` or the compiled regex of a
    ``"re:<regex>"`` value.

    Raises:
        ValueError: any other value, or a regex that does not compile.
    """
    if trainable == "all":
        return "all"
    if trainable == "norm":
        return "norm"
    if not trainable.startswith("re:"):
        raise ValueError(f'trainable must be "all", "norm" or "re:<regex>", got {trainable!r}')
    try:
        return re.compile(trainable[3:])
    except re.error as err:
        raise ValueError(f"bad regex in trainable={trainable!r}: {err}") from err


class FinetuneConfig(_Section):
    """Fine-tuning of the user's model on the pseudo training pairs (official recipe)."""

    epochs: int = Field(default=10, gt=0, description="passes over the training pseudo pairs")
    batch_size: int = Field(default=8, gt=0, description="pseudo pairs per optimiser step")
    lr: float = Field(
        default=1e-4,
        gt=0.0,
        description="Adam learning rate at the start, finite (official: 5e-4)",
    )
    lr_min: float = Field(
        default=1e-7, ge=0.0, description="end of the cosine schedule, at most lr"
    )
    grad_clip: float | None = Field(
        default=20.0, gt=0.0, description="max gradient L2 norm; None disables clipping"
    )
    val_fraction: float = Field(
        default=0.2, ge=0.0, lt=1.0, description="pseudo pairs held out to choose the epoch"
    )
    trainable: str = Field(
        default="all",
        description='"all", "norm" (normalisation layers only) or "re:<regex>" on names',
    )
    crop_size: int | None = Field(
        default=None, gt=0, description="random crop inside a patch; None keeps the patch"
    )
    augment: bool = Field(default=True, description="random flips and rot90")
    amp: bool = Field(default=True, description="mixed precision on CUDA")

    @field_validator("trainable")
    @classmethod
    def _check_trainable(cls, value: str) -> str:
        parse_trainable(value)
        return value

    @model_validator(mode="after")
    def _check_schedule(self) -> FinetuneConfig:
        if self.lr_min > self.lr:
            raise ValueError(
                f"lr_min={self.lr_min:g} is above lr={self.lr:g}: the cosine schedule goes "
                "from lr down to lr_min, so lr_min must be <= lr"
            )
        return self


class GuardConfig(_StageSection):
    """The guard: a no-reference score of the model on the video's own frames that chooses
    the epoch and rolls back an adaptation that made the video worse
    (:class:`~ttblur.stages.guard.ReblurGuard`): the PSNR against the video's own sharp
    frames warped onto blurred neighbours where it has them (``reference_*``), else re-blur
    consistency (``blur_weight``, ``shortfall_weight``, ``min_gain_db``), which keeps an
    adaptation only with ``trust_reblur``.

    ``name`` is a guard registered in :data:`ttblur.registry.GUARDS`.
    """

    _registry: ClassVar[str] = "GUARDS"
    name: str = Field(default="reblur", description="a guard registered in ttblur.registry.GUARDS")
    enabled: bool = Field(
        default=True,
        description="score every epoch on the video; False: the pseudo-pair loss alone chooses",
    )
    frames: int = Field(default=8, gt=0, description="frames scored (one box each)")
    box: int = Field(default=128, ge=8, description="side of a scored box, px")
    margin: int = Field(default=16, ge=0, description="context around a box, px")
    batch_size: int = Field(default=4, gt=0, description="windows per forward pass")
    blur_weight: float = Field(
        default=2.0, ge=0.0, description="dB of score per px of blur left in the outputs"
    )
    shortfall_weight: float = Field(
        default=5.0,
        ge=0.0,
        description="dB of score per dB the re-blurred output falls below the unadapted model's",
    )
    min_gain_db: float = Field(
        default=1.5,
        ge=0.0,
        description="dB of score the best epoch must gain over the unadapted model, else roll "
        "back (chosen on development videos of three networks: docs/results.md)",
    )
    rollback: bool = Field(
        default=True,
        description="roll back when no epoch gains min_gain_db; False: keep it, say so",
    )
    reference_radius: int = Field(
        default=3,
        ge=0,
        description="frames on each side searched for a sharp neighbour to score blurred "
        "frames against (ttblur.stages.sharp_neighbours); 0: always the re-blur score",
    )
    sharp_px: float = Field(
        default=1.0,
        gt=0.0,
        description="a frame is a sharp reference when the detector's mean blur reading of "
        "it is below this, px",
    )
    reference_max_noise: float = Field(
        default=0.03,
        gt=0.0,
        description="no sharp-neighbour score on a video whose estimated noise std is above "
        "this (the blur estimator reads noisy blurred frames as sharp; development videos: "
        "docs/results.md)",
    )
    reference_min_gain_db: float = Field(
        default=2.0,
        ge=0.0,
        description="dB of PSNR against the sharp neighbours the best epoch must gain over the "
        "unadapted model, else roll back (development videos of two networks: on one that "
        "deblurs, adaptations that lost up to 1.73 dB gained up to 1.76 dB on this score; "
        "docs/results.md)",
    )
    reference_shift_px: int = Field(
        default=0,
        ge=0,
        description="px each 16 px block of a restoration may shift (whole pixels) to meet its "
        "warped sharp neighbour (the warp's misalignment scores blurred outputs up); 0: in "
        "place. On development videos 2 px removed the false gains on a network that deblurs "
        "but also most true gains on tiny (docs/results.md)",
    )
    still_frames: bool = Field(
        default=True,
        description="with sharp neighbours, also restore those sharp frames and score how "
        "closely the restorations keep them (ttblur.stages.sharp_neighbours.still_psnr): an "
        "epoch is kept when either score gains its threshold and neither falls",
    )
    still_box_sharp: bool = Field(
        default=True,
        description="score a sharp frame's restoration against itself only where the blur "
        "estimator, run on the scored box alone, also reads it under sharp_px (the frame's "
        "mean reading can call a blurred frame sharp; copying such a frame scores up while the "
        "true PSNR does not rise: docs/results.md)",
    )
    still_box_veto: bool = Field(
        default=True,
        description="with still_box_sharp, a sharp frame whose scored box does not read sharp "
        "alone is still restored but only for the veto (still_veto_cap_db), with no credit; "
        "false: it is not restored at all (an adaptation that damaged it could be kept: "
        "docs/results.md)",
    )
    reference_reblur_check: bool = Field(
        default=True,
        description="score a blurred frame against its sharp neighbour only where that "
        "neighbour, blurred by the frame's estimated condition, fits the observed frame better "
        "than it does unblurred (the re-blur test of Reblur2Deblur); a neighbour as blurred as "
        "the frame fails it (a rotation or zoom read sharp: docs/results.md)",
    )
    reference_median: bool = Field(
        default=True,
        description="the blurred frames' gain is the median of the scored windows' own gains, "
        "not the gain of their pooled PSNR: one window whose warped reference the adapted model "
        "learns to copy cannot keep an epoch (docs/results.md)",
    )
    still_min_gain_db: float = Field(
        default=3.0,
        gt=0.0,
        description="dB the sharp frames' capped PSNR must gain over the unadapted model to keep "
        "an epoch on that ground (development videos of two networks: docs/results.md)",
    )
    still_cap_db: float = Field(
        default=40.0,
        gt=0.0,
        description="a restored sharp frame closer than this to its input counts the same (so a "
        "network that already keeps sharp frames earns nothing for copying their noise)",
    )
    still_veto_cap_db: float = Field(
        default=48.13,
        gt=0.0,
        description="the veto's cap: an epoch is not kept when the restored sharp frames' mean "
        "PSNR against themselves, each capped at this, falls (48.13 dB: one 8-bit level RMS, "
        "so a fall an 8-bit file cannot show does not count). Higher than still_cap_db because "
        "a network that denoises restores sharp frames 44-46 dB from their input, and a fall "
        "there is a true loss the credit cap hides (docs/results.md)",
    )
    trust_reblur: bool = Field(
        default=False,
        description="let the re-blur score keep an adaptation on a video without usable sharp "
        "neighbours; False: such a video keeps the unadapted model (the score is still "
        "reported; on development videos it ranked adaptations poorly, Spearman +0.25, and "
        "kept two that lost 2.5 and 4.1 dB: docs/results.md)",
    )


class AdaptConfig(_Section):
    """Full configuration of :func:`ttblur.adapt`.

    Attributes:
        rsdm: patch selection section.
        dbcgm: condition generation section.
        synthesis: blur synthesis section.
        finetune: fine-tuning recipe.
        guard: the no-reference score on the video that chooses the epoch and rolls back.
        mag_norm: deprecated and ignored (a DeprecationWarning when set). Blur conditions
            carry the blur length in pixels between stages; ID-Blau converts to its own scale
            (``IDBlauConfig.mag_norm`` in its weights' ``config.json``, 147 px), and the BME
            keeps its own (205 px).
        seed: seed for every random choice of the run, in ``[0, 2**63 - 1]``.

    Every section refuses unknown keys, and no float field accepts NaN or +-inf (``Infinity``
    in a JSON file included). Cross-field rules: ``finetune.lr_min <= finetune.lr``; a
    ``*_revision`` field needs the weights field next to it. All are checked when the config
    is built, before :func:`ttblur.adapt` does any work.
    """

    rsdm: RSDMConfig = Field(default_factory=RSDMConfig)
    dbcgm: DBCGMConfig = Field(default_factory=DBCGMConfig)
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    mag_norm: float | None = Field(default=None, gt=0.0)
    seed: int = Field(
        default=0,
        ge=0,
        le=MAX_SEED,
        description="seed of every random choice of the run, in [0, 2**63 - 1]",
    )

    @field_validator("seed", mode="before")
    @classmethod
    def _check_seed(cls, value: Any) -> Any:
        if isinstance(value, np.integer):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_SEED:
            raise ValueError(
                f"seed={value} is outside [0, 2**63 - 1]: torch and numpy generators take "
                "non-negative seeds of at most 64 bits and ttblur derives further seeds from "
                "it; pick a smaller non-negative integer"
            )
        return value

    @field_validator("mag_norm")
    @classmethod
    def _deprecate_mag_norm(cls, value: float | None) -> float | None:
        if value is not None:
            warnings.warn(
                "AdaptConfig.mag_norm is deprecated and ignored: blur conditions carry the blur "
                "length in pixels, and ID-Blau converts to its own scale "
                "(IDBlauConfig.mag_norm, or IDBlau(network, mag_norm=...))",
                DeprecationWarning,
                stacklevel=2,
            )
        return value

    def to_json(self, *, indent: int | None = 2) -> str:
        """Serialise to a JSON string (the deprecated ``mag_norm`` only when set)."""
        exclude = {"mag_norm"} if self.mag_norm is None else None
        return self.model_dump_json(indent=indent, exclude=exclude)

    @classmethod
    def from_json(cls, text: str) -> AdaptConfig:
        """Parse a JSON string; unknown keys raise :class:`pydantic.ValidationError`."""
        return cls.model_validate_json(text)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON to ``path``."""
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> AdaptConfig:
        """Read a JSON config file written by :meth:`save` (or by hand)."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
