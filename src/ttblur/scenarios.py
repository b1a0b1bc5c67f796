"""Scenario families: a wider target-domain suite of synthetic blurry videos with exact truth.

Beside the presets of :mod:`ttblur.synth` (one smooth hand-held shake model), eight named
families cover what real footage does: ``pan`` (steady pan, exposure = frame interval),
``handheld`` (jerky strokes, still moments, per-frame speed changes), ``rotation_zoom`` (blur
varying across the frame), ``moving_object`` (objects over a still background), ``rolling_shutter``
(rows exposed at shifted times), ``h264`` (the blurry video through libx264), ``lowlight``
(Poisson-Gaussian photon noise, dark exposure) and ``tone`` (sRGB / gamma 1.8 / 2.6 / filmic /
log tone curves). Every video is rendered by sub-frame integration in linear light and carries
the ground truth of :class:`ttblur.synth.SyntheticVideo` plus its :class:`ScenarioSpec` (family,
photo, seed, true exposure ratio, every drawn parameter).

"Never tune on what you report": each spec has a ``role``. ``evaluation`` videos use only
:data:`~ttblur.synth.HELDOUT_PHOTOS` and seeds ``>= 10000``; ``development`` videos use other
photos and seeds ``< 10000`` (checked by :class:`ScenarioSpec`).

Example:
    >>> from ttblur.scenarios import scenario_suite, make_scenario
    >>> specs = scenario_suite("development", videos_per_family=1, num_frames=4, size=(48, 64))
    >>> video = make_scenario(specs[0])
    >>> video.spec.family, video.blurry.shape, 0 < video.exposure_ratio <= 1
    ('pan', torch.Size([4, 3, 48, 64]), True)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor

from ttblur._motions import (
    h264_roundtrip,
    handheld_camera,
    make_objects,
    pan_camera,
    rotation_zoom_camera,
)
from ttblur._photos import HELDOUT_PHOTOS, PHOTOS, load_photo
from ttblur._scene import (
    TONE_CURVES,
    CameraPath,
    MovingObject,
    render_scene,
    tone_decode,
    tone_encode,
)
from ttblur.synth import SyntheticVideo, SynthParams

__all__ = [
    "FAMILIES",
    "ROLES",
    "TONE_CURVES",
    "CameraPath",
    "ScenarioSpec",
    "ScenarioVideo",
    "draw_scenario",
    "make_scenario",
    "scenario_suite",
]

Family = Literal[
    "pan",
    "handheld",
    "rotation_zoom",
    "moving_object",
    "rolling_shutter",
    "h264",
    "lowlight",
    "tone",
]
Role = Literal["development", "evaluation"]
#: Scenario family names, in suite order.
FAMILIES: tuple[str, ...] = get_args(Family)
#: ``development`` (tune on it) and ``evaluation`` (report on it, never tune).
ROLES: tuple[str, ...] = get_args(Role)
#: Smallest seed of an evaluation video; development seeds are below it.
EVALUATION_SEED_MIN = 10000
#: Photos used by development videos (natural-looking training photos).
DEVELOPMENT_PHOTOS: tuple[str, ...] = (
    "rocket",
    "motorcycle",
    "camera",
    "coins",
    "clock",
    "brick",
    "gravel",
    "grass",
    "moon",
)
_FAMILY_TONES = ("srgb", "gamma1.8", "gamma2.6", "filmic", "log")


class ScenarioSpec(BaseModel):
    """Everything that defines one scenario video; :func:`make_scenario` renders it
    deterministically. Drawn by :func:`draw_scenario`; may also be built by hand.

    Blur lengths are in output pixels over one exposure. ``blur_px`` means, per family: the pan
    blur (``pan``, ``lo`` is used); the blur of moving frames (camera families); the blur at the
    frame corner (``rotation_zoom``); the blur of each object (``moving_object``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: Family
    role: Role
    index: int = Field(ge=0, description="position of the video in its family")
    seed: int = Field(ge=0, description="seeds the trajectory, object and noise draws")
    photo: str = Field(description="background photo, a name of ttblur.synth.PHOTOS")
    num_frames: int = Field(ge=1)
    size: tuple[int, int] = Field(description="(H, W) px")
    fps: float = Field(gt=0, le=1000)
    exposure_ratio: float = Field(gt=0, le=1, description="exposure / frame interval")
    blur_px: tuple[float, float] = Field(description="(lo, hi) blur range, px per exposure")
    still_prob: float = Field(default=0.0, ge=0, le=1, description="share of still frames")
    direction_deg: float = Field(default=0.0, description="main motion axis, deg")
    direction_spread_deg: float = Field(default=0.0, ge=0, description="std about the axis")
    speed_slope: float = Field(
        default=0.0, ge=0, le=0.9, description="largest relative speed change across a frame"
    )
    shake_deg_s: float = Field(default=0.0, ge=0, description="std of the roll velocity, deg/s")
    rotation_share: float = Field(
        default=0.5, ge=0, le=1, description="rotation_zoom: 0 = all zoom, 1 = all rotation"
    )
    readout_ratio: float = Field(
        default=0.0, ge=0, le=1, description="rolling-shutter readout / frame interval"
    )
    object_photo: str | None = None
    num_objects: int = Field(default=0, ge=0, le=3)
    object_size: float = Field(default=0.4, gt=0, le=1, description="share of min(H, W)")
    object_mask: Literal["soft", "hard"] = "soft"
    crf: int | None = Field(default=None, ge=0, le=51, description="libx264 CRF (h264 only)")
    photons_at_white: float | None = Field(
        default=None, gt=0, description="lowlight: electrons of a pixel at full scale"
    )
    read_noise_e: float = Field(default=0.0, ge=0, description="lowlight read noise, electrons")
    brightness: float = Field(default=1.0, gt=0, le=1, description="linear exposure scale")
    tone: str = "gamma2.2"
    noise_std: float = Field(default=0.0, ge=0, le=0.5, description="display-space noise at white")
    shot_fraction: float = Field(default=0.5, ge=0, le=1)

    @field_validator("photo")
    @classmethod
    def _photo(cls, value: str) -> str:
        if value not in PHOTOS:
            raise ValueError(f"unknown photo {value!r}; available photos: {', '.join(PHOTOS)}")
        return value

    @field_validator("tone")
    @classmethod
    def _tone(cls, value: str) -> str:
        if value not in TONE_CURVES:
            raise ValueError(f"unknown tone curve {value!r}; available: {', '.join(TONE_CURVES)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> ScenarioSpec:
        h, w = self.size
        if h < 8 or w < 8:
            raise ValueError(f"size must be at least (8, 8), got {self.size}")
        lo, hi = self.blur_px
        if not (0 <= lo <= hi):
            raise ValueError(f"blur_px must be (lo, hi) with 0 <= lo <= hi, got {self.blur_px}")
        photos = [self.photo] + ([self.object_photo] if self.object_photo else [])
        if self.role == "evaluation":
            if self.seed < EVALUATION_SEED_MIN:
                raise ValueError(
                    f"evaluation seeds must be >= {EVALUATION_SEED_MIN}, got {self.seed}"
                )
            bad = [p for p in photos if p not in HELDOUT_PHOTOS]
            if bad:
                raise ValueError(f"evaluation videos use only HELDOUT_PHOTOS, got {bad}")
        else:
            if self.seed >= EVALUATION_SEED_MIN:
                raise ValueError(
                    f"development seeds must be < {EVALUATION_SEED_MIN}, got {self.seed}"
                )
            bad = [p for p in photos if p in HELDOUT_PHOTOS]
            if bad:
                raise ValueError(f"development videos must not use HELDOUT_PHOTOS, got {bad}")
        fam = self.family
        if (fam == "moving_object") != (self.num_objects > 0 and self.object_photo is not None):
            raise ValueError(
                "moving_object needs num_objects >= 1 and object_photo; other families none"
            )
        if (fam == "rolling_shutter") != (self.readout_ratio > 0):
            raise ValueError("readout_ratio > 0 is for (and required by) rolling_shutter only")
        if (fam == "h264") != (self.crf is not None):
            raise ValueError("crf is for (and required by) the h264 family only")
        if (fam == "lowlight") != (self.photons_at_white is not None):
            raise ValueError("photons_at_white is for (and required by) the lowlight family only")
        if self.object_photo is not None and self.object_photo not in PHOTOS:
            raise ValueError(f"unknown object_photo {self.object_photo!r}")
        return self

    @property
    def frame_interval_ms(self) -> float:
        return 1000.0 / self.fps

    @property
    def exposure_ms(self) -> float:
        return self.exposure_ratio * self.frame_interval_ms


@dataclass(frozen=True)
class ScenarioVideo(SyntheticVideo):
    """A :class:`~ttblur.synth.SyntheticVideo` of a scenario family, with its metadata.

    Attributes (beyond the ground truth of the base class; ``flow``, ``magnitude`` and
    ``motion`` are per pixel: zero on a still background, per-row timing under a rolling
    shutter, the object's own motion on object pixels):
        spec: the :class:`ScenarioSpec` it was rendered from.
        object_id: ``(T, 1, H, W)`` uint8: ``k + 1`` where the sharp frame shows object ``k``
            (its mask alpha >= 0.5, the topmost such object), 0 elsewhere (always 0 outside
            ``moving_object``).
        camera: the exact camera path (image-space pose as a function of time, s).
        row_offset_s: ``(H,)`` float64 time of each row's exposure centre after the frame
            centre, s (all zero with a global shutter).

    ``params`` is a :class:`~ttblur.synth.SynthParams` *summary*: frame interval, exposure,
    mean image speed (mean magnitude / exposure), the tone curve's nearest gamma and the
    display-space noise; its other fields are defaults and do not describe the scenario.
    """

    spec: ScenarioSpec
    object_id: Tensor
    camera: CameraPath
    row_offset_s: np.ndarray

    @property
    def exposure_ratio(self) -> float:
        """True exposure / frame interval."""
        return self.spec.exposure_ratio

    @property
    def metadata(self) -> dict[str, Any]:
        """Family, role, photo, seed, exposure ratio and every parameter (JSON-ready)."""
        meta = self.spec.model_dump(mode="json")
        meta["frame_interval_ms"] = self.spec.frame_interval_ms
        meta["exposure_ms"] = self.spec.exposure_ms
        meta["num_subframes"] = list(self.num_subframes)
        return meta


# ----------------------------------------------------------------------------------------------
# the suite


def _strat(rng: np.random.Generator, lo: float, hi: float, index: int) -> float:
    """Stratified draw: video ``index`` falls in third ``index % 3`` of ``[lo, hi]``."""
    return lo + (hi - lo) * ((index % 3) + float(rng.uniform())) / 3.0


def _log_strat(rng: np.random.Generator, lo: float, hi: float, index: int) -> float:
    """:func:`_strat` on a log scale (exposure ratios: short ones are as common as long)."""
    return float(math.exp(_strat(rng, math.log(lo), math.log(hi), index)))


def draw_scenario(
    family: str,
    role: str,
    index: int,
    *,
    num_frames: int = 24,
    size: tuple[int, int] = (256, 320),
) -> ScenarioSpec:
    """Draw the parameters of video ``index`` of a family from the family's ranges.

    The seed is ``1000 * family_position + index`` (plus 10000 for ``evaluation``); the photo
    cycles through :data:`~ttblur.synth.HELDOUT_PHOTOS` (evaluation) or
    :data:`DEVELOPMENT_PHOTOS` (development). The main parameter of a family is stratified
    over ``index % 3`` so that three consecutive videos differ. Ranges: docs/synthetic-data.md.

    Raises:
        ValueError: unknown family / role, ``index`` not in ``[0, 1000)``, bad size/frames.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown scenario family {family!r}; available: {', '.join(FAMILIES)}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < 1000:
        raise ValueError(f"index must be an int in [0, 1000), got {index!r}")
    index = int(index)
    fam = FAMILIES.index(family)
    seed = 1000 * fam + index + (EVALUATION_SEED_MIN if role == "evaluation" else 0)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    pool = HELDOUT_PHOTOS if role == "evaluation" else DEVELOPMENT_PHOTOS
    photo = pool[(index + fam) % len(pool)]
    spec: dict[str, Any] = dict(
        family=family,
        role=role,
        index=index,
        seed=seed,
        photo=photo,
        num_frames=num_frames,
        size=size,
        fps=float(rng.choice([24.0, 25.0, 30.0])),
        noise_std=float(rng.uniform(0.003, 0.012)),
        shot_fraction=0.6,
    )
    camera_moves = dict(
        still_prob=float(rng.uniform(0.2, 0.35)),
        direction_deg=float(rng.uniform(0.0, 180.0)),
        direction_spread_deg=float(rng.uniform(20.0, 45.0)),
        speed_slope=float(rng.uniform(0.2, 0.6)),
        shake_deg_s=float(rng.uniform(0.5, 2.0)),
    )
    if family == "pan":
        blur = _strat(rng, 3.0, 16.0, index)
        spec.update(
            exposure_ratio=1.0, blur_px=(blur, blur), direction_deg=float(rng.uniform(0, 360))
        )
    elif family == "handheld":
        spec.update(
            camera_moves, exposure_ratio=_log_strat(rng, 0.1, 1.0, index), blur_px=(6.0, 16.0)
        )
    elif family == "rotation_zoom":
        corner = _strat(rng, 8.0, 24.0, index)
        spec.update(
            exposure_ratio=float(rng.uniform(0.4, 1.0)),
            blur_px=(0.7 * corner, 1.3 * corner),
            rotation_share=float(rng.uniform(0.2, 0.8)),
        )
    elif family == "moving_object":
        others = [p for p in pool if p != photo]
        spec.update(
            exposure_ratio=_strat(rng, 0.25, 1.0, index),
            blur_px=(6.0, 20.0),
            object_photo=others[int(rng.integers(len(others)))],
            num_objects=1 + index % 2,
            object_size=float(rng.uniform(0.3, 0.45)),
            object_mask=("soft", "hard")[(index // 2) % 2],
            speed_slope=float(rng.uniform(0.1, 0.4)),
        )
    elif family == "rolling_shutter":
        spec.update(
            camera_moves,
            exposure_ratio=float(rng.uniform(0.1, 0.5)),
            readout_ratio=_strat(rng, 0.5, 0.95, index),
            blur_px=(3.0, 10.0),
            still_prob=float(rng.uniform(0.1, 0.25)),
            direction_deg=float(rng.normal(0.0, 15.0)),
            speed_slope=float(rng.uniform(0.5, 0.9)),
        )
    elif family == "h264":
        spec.update(
            camera_moves,
            exposure_ratio=float(rng.uniform(0.3, 1.0)),
            blur_px=(4.0, 12.0),
            crf=int(min(30, 23 + math.floor(_strat(rng, 0.0, 8.0, index)))),
        )
    elif family == "lowlight":
        spec.update(
            camera_moves,
            exposure_ratio=float(rng.uniform(0.6, 1.0)),
            blur_px=(3.0, 10.0),
            photons_at_white=float(math.exp(_strat(rng, math.log(40.0), math.log(400.0), index))),
            read_noise_e=float(rng.uniform(1.5, 5.0)),
            brightness=float(rng.uniform(0.3, 0.7)),
            noise_std=0.0,
        )
    else:  # tone
        spec.update(
            camera_moves,
            exposure_ratio=_log_strat(rng, 0.1, 1.0, index),
            blur_px=(5.0, 14.0),
            tone=_FAMILY_TONES[index % len(_FAMILY_TONES)],
        )
    return ScenarioSpec.model_validate(spec)


def scenario_suite(
    role: str = "evaluation",
    videos_per_family: int = 3,
    *,
    num_frames: int = 24,
    size: tuple[int, int] = (256, 320),
    families: tuple[str, ...] = FAMILIES,
    first: int = 0,
) -> list[ScenarioSpec]:
    """List the suite: ``videos_per_family`` specs of each family, family by family.

    Args:
        role: ``"evaluation"`` (report on it: held-out photos, seeds >= 10000) or
            ``"development"`` (tune on it).
        videos_per_family: ``1..1000``.
        num_frames: ``T >= 1`` per video.
        size: ``(H, W)`` px, each ``>= 8``.
        families: a subset of :data:`FAMILIES`.
        first: index of each family's first video (videos ``first .. first +
            videos_per_family - 1``): a later batch of videos never seen by earlier runs.

    Returns:
        ``[ScenarioSpec]``; render each with :func:`make_scenario`.

    Raises:
        ValueError: unknown role / family, ``videos_per_family`` or ``first`` out of range.
    """
    if isinstance(videos_per_family, bool) or not isinstance(videos_per_family, int):
        raise ValueError(f"videos_per_family must be an int, got {videos_per_family!r}")
    if not 1 <= videos_per_family <= 1000:
        raise ValueError(f"videos_per_family must be in [1, 1000], got {videos_per_family}")
    if isinstance(first, bool) or not isinstance(first, int) or first < 0:
        raise ValueError(f"first must be an int >= 0, got {first!r}")
    if first + videos_per_family > 1000:
        raise ValueError(
            f"first + videos_per_family must be at most 1000, got {first + videos_per_family}"
        )
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown scenario families {unknown}; available: {', '.join(FAMILIES)}")
    return [
        draw_scenario(f, role, i, num_frames=num_frames, size=size)
        for f in families
        for i in range(first, first + videos_per_family)
    ]


_NEAREST_GAMMA = {"srgb": 2.2, "filmic": 2.2, "log": 1.5}


def make_scenario(
    spec: ScenarioSpec, *, noise: bool = True, compress: bool = True
) -> ScenarioVideo:
    """Render a scenario video with exact ground truth.

    Args:
        spec: from :func:`scenario_suite` / :func:`draw_scenario`, or built by hand.
        noise: ``False`` turns off sensor noise (display-space noise and, for ``lowlight``,
            the Poisson-Gaussian photon and read noise; the dark exposure stays).
        compress: ``False`` skips the H.264 round trip of the ``h264`` family.

    Returns:
        :class:`ScenarioVideo` with ``blurry``/``sharp`` ``(T, 3, H, W)`` in ``[0, 1]``,
        ``flow`` ``(T, 2, H, W)``, ``magnitude`` ``(T, 1, H, W)``, ``motion``
        ``(T - 1, 2, H, W)`` px (all float32), ``object_id`` ``(T, 1, H, W)`` uint8.
        Deterministic: the same spec gives bit-identical tensors.

    Raises:
        ValueError: ``spec`` is not a :class:`ScenarioSpec`.
    """
    if not isinstance(spec, ScenarioSpec):
        raise ValueError(f"spec must be a ScenarioSpec, got {type(spec).__name__}")
    streams = np.random.SeedSequence([spec.seed, 11]).spawn(3)
    rng_motion, rng_place = (np.random.default_rng(s) for s in streams[:2])
    noise_seed = int(streams[2].generate_state(1)[0])
    h, w = spec.size
    interval = 1.0 / spec.fps
    exposure = spec.exposure_ratio * interval
    objects: list[MovingObject] = []
    if spec.family == "pan":
        camera = pan_camera(spec)
    elif spec.family == "rotation_zoom":
        camera = rotation_zoom_camera(spec, rng_motion)
    elif spec.family == "moving_object":
        camera = CameraPath.still()
        objects = make_objects(spec, rng_motion)
    else:
        camera = handheld_camera(spec, rng_motion)
    readout = spec.readout_ratio * interval
    centres = np.arange(spec.num_frames, dtype=np.float64) * interval
    background = tone_decode(load_photo(spec.photo), spec.tone)
    placement = rng_place.uniform(size=2)
    rendered = render_scene(
        background,
        camera,
        objects,
        centres=centres,
        exposure_s=exposure,
        readout_s=readout,
        size=(h, w),
        placement=(float(placement[0]), float(placement[1])),
    )
    blurry_lin = rendered.blurry_lin * spec.brightness
    sharp_lin = rendered.sharp_lin * spec.brightness
    gen = torch.Generator().manual_seed(noise_seed)
    if noise and spec.photons_at_white is not None:
        electrons = torch.poisson(blurry_lin.clamp(0.0, 1.0) * spec.photons_at_white, gen)
        read = spec.read_noise_e * torch.randn(blurry_lin.shape, generator=gen)
        blurry_lin = (electrons + read) / spec.photons_at_white
    blurry = tone_encode(blurry_lin, spec.tone)
    sharp = tone_encode(sharp_lin, spec.tone).contiguous()
    if noise and spec.noise_std > 0:
        sigma = spec.noise_std * torch.sqrt(spec.shot_fraction * blurry + 1 - spec.shot_fraction)
        blurry = (blurry + sigma * torch.randn(blurry.shape, generator=gen)).clamp(0.0, 1.0)
    if compress and spec.crf is not None:
        blurry = h264_roundtrip(blurry, spec.crf, spec.fps)
    mean_speed = float(rendered.magnitude.mean()) / exposure
    gamma = float(spec.tone[5:]) if spec.tone.startswith("gamma") else _NEAREST_GAMMA[spec.tone]
    params = SynthParams(
        frame_interval_ms=spec.frame_interval_ms,
        exposure_ms=spec.exposure_ms,
        speed_px_s=mean_speed,
        gamma=gamma,
        noise_std=spec.noise_std if noise else 0.0,
        shot_fraction=spec.shot_fraction,
    )
    row_offset = (np.arange(h) - (h - 1) / 2.0) * (readout / h)
    return ScenarioVideo(
        blurry=blurry.contiguous(),
        sharp=sharp,
        flow=rendered.flow,
        magnitude=rendered.magnitude,
        motion=rendered.motion,
        params=params,
        num_subframes=rendered.num_subframes,
        photo_scale=rendered.photo_scale,
        spec=spec,
        object_id=rendered.object_id,
        camera=camera,
        row_offset_s=row_offset,
    )
