"""Synthetic blurry videos with exact ground truth, rendered from real sharp photos.

A hand-held camera moves over a photo: smooth strokes of random translation (speed rises,
plateaus and falls back near zero between strokes; optionally the hand pauses and the camera
stops), plus small random rotation and zoom about the frame centre. Each video frame integrates
the light of many sub-frames rendered inside its exposure window by sub-pixel warping of the
(rescaled) photo, in *linear* light (``photo ** gamma``, average, ``** (1 / gamma)``), then gets
heteroscedastic sensor noise and is clamped to ``[0, 1]``. The sharp frame is the noise-free
mid-exposure sub-frame. Because the trajectory is known in closed form, the per-pixel blur ground
truth is exact:

* ``flow``: where the scene point seen at pixel ``p`` of the sharp frame is at exposure end
  minus where it is at exposure start (px, channel 0 = x, 1 = y);
* ``magnitude``: the length of that point's path over the exposure (sum of sub-step
  displacement norms, sub-steps <= ``max_step_px`` at the fastest pixel), ``>= |flow|``;
* ``motion``: where the point at ``p`` of sharp frame ``t`` is in sharp frame ``t + 1``, minus
  ``p``.

Presets (:data:`PRESETS`) name domains: the GoPro-like source domain and BSD-like target domains
(15 fps beam-splitter captures with 8 / 16 / 24 ms exposure) plus a low-light one. See
``docs/synthetic-data.md`` for the physical meaning and measured statistics of each.

Example:
    >>> from ttblur.synth import make_video
    >>> video = make_video("astronaut", preset="bsd-2ms16ms", num_frames=8, size=(64, 80))
    >>> video.blurry.shape, video.magnitude.shape, video.motion.shape
    (torch.Size([8, 3, 64, 80]), torch.Size([8, 1, 64, 80]), torch.Size([7, 2, 64, 80]))
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from ttblur._photos import HELDOUT_PHOTOS, PHOTOS, TRAIN_PHOTOS, coerce_image, load_photo
from ttblur._scene import affine_field, check_subframe_range, path_length, subframe_count

__all__ = [
    "HELDOUT_PHOTOS",
    "PHOTOS",
    "PRESETS",
    "TRAIN_PHOTOS",
    "SynthParams",
    "SyntheticVideo",
    "load_photo",
    "make_video",
]

#: Share of a stroke spent accelerating (and, symmetrically, decelerating).
_RAMP = 0.3
#: Sinusoids summed for the rotation and zoom velocity processes, and their frequency band (Hz).
_SHAKE_TERMS = 4
_SHAKE_BAND_HZ = (0.5, 3.0)
#: Samples per exposure used to bound the path length at the frame corners.
_PROBE_STEPS = 64
#: Canvas margin around every rendered view, canvas px (interpolation support).
_MARGIN = 2.0
#: Sub-frames rendered per grid_sample call (bounds memory).
_CHUNK = 24
#: Below this flow norm (px) the condition direction falls back to (1, 0).
_FLOW_EPS = 1e-6


class SynthParams(BaseModel):
    """Physical parameters of a synthetic domain (all overridable in :func:`make_video`).

    Speeds are in pixels of the *output* frames per second; times in milliseconds; angles in
    degrees (0 = +x / right, 90 = +y / down, image coordinates).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    frame_interval_ms: float = Field(gt=0, description="time between frame centres, ms")
    exposure_ms: float = Field(gt=0, description="exposure of a blurry frame, ms")
    speed_px_s: float = Field(ge=0, description="mean image speed of the camera shake, px/s")
    speed_variation: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="share of the motion made of strokes whose speed falls to ~0 between them; "
        "0 = constant velocity along the drift direction",
    )
    stroke_min_ms: float = Field(default=200.0, gt=0, description="shortest hand stroke, ms")
    stroke_max_ms: float = Field(default=600.0, gt=0, description="longest hand stroke, ms")
    stroke_speed_jitter: float = Field(
        default=0.3, ge=0, description="log-normal std of the per-stroke mean speed"
    )
    recentre_prob: float = Field(
        default=0.8, ge=0, le=1, description="probability a stroke heads back toward the start"
    )
    pause_prob: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="probability the hand pauses after a stroke: the camera stops (translation, "
        "roll and zoom) for pause_min_ms..pause_max_ms; 0 = never",
    )
    pause_min_ms: float = Field(default=40.0, ge=0, description="shortest hand pause, ms")
    pause_max_ms: float = Field(default=150.0, ge=0, description="longest hand pause, ms")
    pause_where: Literal["stroke_end", "anywhere"] = Field(
        default="stroke_end",
        description="where a pause starts: where the stroke's speed has fallen to ~0, or at a "
        "uniform point of the stroke (an abrupt stop: a sharp frame beside blurred ones)",
    )
    direction_deg: float = Field(default=0.0, description="main axis of the motion, deg")
    direction_spread_deg: float = Field(
        default=20.0, ge=0, description="std of stroke / drift directions about the axis, deg"
    )
    rotation_std: float = Field(default=6.0, ge=0, description="std of roll velocity, deg/s")
    zoom_std: float = Field(default=0.1, ge=0, description="std of log-zoom velocity, 1/s")
    gamma: float = Field(default=2.2, gt=0, description="display gamma: linear = value ** gamma")
    noise_std: float = Field(
        default=0.01, ge=0, description="noise std at white, in output [0, 1] units (0: off)"
    )
    shot_fraction: float = Field(
        default=0.5, ge=0, le=1, description="signal-dependent share of the noise variance at white"
    )
    max_step_px: float = Field(
        default=0.5, gt=0, description="largest motion between sub-frames at the fastest pixel"
    )
    min_subframes: int = Field(default=5, ge=1, description="fewest sub-frames per exposure")
    max_subframes: int = Field(default=301, ge=1, description="most sub-frames per exposure")
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    max_photo_scale: float = Field(
        default=4.0,
        gt=0,
        description="largest photo upsampling; beyond it views leave the photo (reflected)",
    )

    @model_validator(mode="after")
    def _check(self) -> SynthParams:
        if self.exposure_ms > self.frame_interval_ms:
            raise ValueError(
                f"exposure_ms ({self.exposure_ms}) must be <= frame_interval_ms "
                f"({self.frame_interval_ms})"
            )
        if self.stroke_max_ms < self.stroke_min_ms:
            raise ValueError(
                f"stroke_max_ms ({self.stroke_max_ms}) must be >= stroke_min_ms "
                f"({self.stroke_min_ms})"
            )
        if self.pause_max_ms < self.pause_min_ms:
            raise ValueError(
                f"pause_max_ms ({self.pause_max_ms}) must be >= pause_min_ms ({self.pause_min_ms})"
            )
        check_subframe_range(self.min_subframes, self.max_subframes)
        return self


_GOPRO_MS = 1000.0 / 240.0  # one 240 fps sub-frame

#: Built-in domains. ``gopro`` is the source domain; the others are target domains.
PRESETS: dict[str, SynthParams] = {
    # GoPro-like: 240 fps footage, 7 frames per blurry frame, 6 of them integrated.
    "gopro": SynthParams(
        frame_interval_ms=7 * _GOPRO_MS,
        exposure_ms=6 * _GOPRO_MS,
        speed_px_s=330.0,
        direction_deg=0.0,
        direction_spread_deg=20.0,
        gamma=2.2,
        noise_std=0.01,
        shot_fraction=0.5,
    ),
    # BSD-like: 15 fps beam-splitter rig; the blurry camera exposes 8 / 16 / 24 ms (its sharp
    # partner 1 / 2 / 3 ms). Same hand-held shake in all three; mostly vertical / diagonal /
    # broad directions; linear-ish machine-vision tone curve; gain (noise) falls as exposure grows.
    "bsd-1ms8ms": SynthParams(
        frame_interval_ms=1000.0 / 15.0,
        exposure_ms=8.0,
        speed_px_s=330.0,
        stroke_speed_jitter=0.2,
        direction_deg=90.0,
        direction_spread_deg=25.0,
        gamma=1.8,
        noise_std=0.03,
        shot_fraction=0.7,
    ),
    "bsd-2ms16ms": SynthParams(
        frame_interval_ms=1000.0 / 15.0,
        exposure_ms=16.0,
        speed_px_s=330.0,
        stroke_speed_jitter=0.2,
        direction_deg=45.0,
        direction_spread_deg=30.0,
        gamma=1.8,
        noise_std=0.025,
        shot_fraction=0.7,
    ),
    "bsd-3ms24ms": SynthParams(
        frame_interval_ms=1000.0 / 15.0,
        exposure_ms=24.0,
        speed_px_s=330.0,
        stroke_speed_jitter=0.2,
        direction_deg=60.0,
        direction_spread_deg=60.0,
        gamma=1.8,
        noise_std=0.02,
        shot_fraction=0.7,
    ),
    # Low light: 30 fps, long 30 ms exposure at high gain, dark tone curve.
    "lowlight": SynthParams(
        frame_interval_ms=1000.0 / 30.0,
        exposure_ms=30.0,
        speed_px_s=260.0,
        direction_deg=30.0,
        direction_spread_deg=45.0,
        gamma=2.4,
        noise_std=0.06,
        shot_fraction=0.8,
    ),
}


@dataclass(frozen=True)
class SyntheticVideo:
    """A synthetic blurry video and its ground truth.

    Attributes:
        blurry: ``(T, 3, H, W)`` float32 in ``[0, 1]``: exposure average in linear light + noise.
        sharp: ``(T, 3, H, W)`` float32 in ``[0, 1]``: the mid-exposure sub-frame, no noise.
        flow: ``(T, 2, H, W)`` float32 px: for the scene point at pixel ``p`` of the sharp frame,
            position at exposure end minus position at exposure start (0 = x, 1 = y).
        magnitude: ``(T, 1, H, W)`` float32 px: that point's path length over the exposure.
        motion: ``(T - 1, 2, H, W)`` float32 px: sharp frame ``t`` pixel ``p`` is at
            ``p + motion`` in sharp frame ``t + 1``.
        params: the :class:`SynthParams` used (preset + overrides).
        num_subframes: sub-frames averaged in each blurry frame (odd; the middle one is sharp).
        photo_scale: photo-to-frame scale factor (``> 1``: the photo was upsampled to keep every
            view inside real content).
    """

    blurry: Tensor
    sharp: Tensor
    flow: Tensor
    magnitude: Tensor
    motion: Tensor
    params: SynthParams
    num_subframes: tuple[int, ...]
    photo_scale: float

    def condition(self, mag_norm: float) -> Tensor:
        """Ground-truth ID-Blau blur condition.

        Args:
            mag_norm: pixels that map to ``z = 1`` (> 0).

        Returns:
            ``(T, 3, H, W)`` float32: channels ``x, y = flow / |flow|`` (``(1, 0)`` where
            ``|flow| <= 1e-6`` px) and ``z = min(magnitude / mag_norm, 1)`` in ``[0, 1]``.
        """
        if isinstance(mag_norm, bool) or not isinstance(mag_norm, numbers.Real):
            raise ValueError(f"mag_norm must be a number, got {type(mag_norm).__name__}")
        mag_norm = float(mag_norm)
        if not (math.isfinite(mag_norm) and mag_norm > 0):
            raise ValueError(f"mag_norm must be a finite number > 0, got {mag_norm}")
        norm = torch.linalg.vector_norm(self.flow, dim=1, keepdim=True)
        unit = self.flow / norm.clamp_min(_FLOW_EPS)
        fallback = torch.zeros_like(self.flow)
        fallback[:, 0] = 1.0
        direction = torch.where(norm > _FLOW_EPS, unit, fallback)
        z = (self.magnitude / float(mag_norm)).clamp(0.0, 1.0)
        return torch.cat([direction, z], dim=1)


# ----------------------------------------------------------------------------------------------
# trajectory (closed form in time)


def _ramp_integral(x: np.ndarray) -> np.ndarray:
    """Integral over [0, x] of the acceleration ramp sin^2(pi u / (2 r)), x in [0, r]."""
    return x / 2.0 - (_RAMP / (2.0 * math.pi)) * np.sin(math.pi * x / _RAMP)


def _stroke_integral(tau: np.ndarray) -> np.ndarray:
    """Integral over [0, tau] of the stroke speed profile normalised to mean 1 (tau in [0, 1])."""
    total = 1.0 - _RAMP
    up = _ramp_integral(np.clip(tau, 0.0, _RAMP))
    mid = np.clip(tau, _RAMP, 1.0 - _RAMP) - _RAMP
    down_left = np.clip(1.0 - tau, 0.0, _RAMP)
    down = np.where(tau > 1.0 - _RAMP, (_RAMP / 2.0) - _ramp_integral(down_left), 0.0)
    return (up + mid + down) / total


@dataclass(frozen=True)
class _Trajectory:
    """Image-space camera shake: translation ``d(t)`` (px), roll ``theta(t)`` (rad), zoom
    ``s(t)``; a scene point at canvas position X is seen at ``R(-theta)(X - c0 + d) / s``."""

    bounds: np.ndarray  # (K + 1,) stroke boundaries, s
    velocity: np.ndarray  # (K, 2) mean velocity of each stroke, px/s
    start: np.ndarray  # (K, 2) stroke displacement accumulated at each stroke start, px
    drift: np.ndarray  # (2,) constant velocity, px/s
    rot: tuple[np.ndarray, np.ndarray, np.ndarray]  # amplitude rad/s, frequency Hz, phase
    zoom: tuple[np.ndarray, np.ndarray, np.ndarray]  # amplitude 1/s, frequency Hz, phase
    # Hand pauses, in motion time: the motion clock stops at pause_at[j] for pause_len[j] s.
    pause_at: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (P,) ascending, s
    pause_len: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (P,) s

    def motion_time(self, t: np.ndarray) -> np.ndarray:
        """Time on the motion clock at real time ``t``: ``t`` less the pauses already spent,
        constant inside a pause (there every motion stops)."""
        t = np.asarray(t, dtype=np.float64)
        if not len(self.pause_at):
            return t
        before = np.concatenate([[0.0], np.cumsum(self.pause_len)])
        starts = self.pause_at + before[:-1]  # real time each pause begins
        j = np.searchsorted(starts, t, side="right")  # pauses begun by t
        m = t - before[j]
        inside = j > 0
        last = np.clip(j - 1, 0, None)
        paused = inside & (t < starts[last] + self.pause_len[last])
        return np.where(paused, self.pause_at[last], m)

    def translation(self, t: np.ndarray) -> np.ndarray:
        t = self.motion_time(t)
        k = np.clip(np.searchsorted(self.bounds, t, side="right") - 1, 0, len(self.velocity) - 1)
        length = self.bounds[k + 1] - self.bounds[k]
        tau = np.clip((t - self.bounds[k]) / length, 0.0, 1.0)
        strokes = self.start[k] + self.velocity[k] * (length * _stroke_integral(tau))[..., None]
        return strokes + self.drift * t[..., None]

    @staticmethod
    def _integrated(terms: tuple[np.ndarray, np.ndarray, np.ndarray], t: np.ndarray) -> np.ndarray:
        amp, freq, phase = terms
        omega = 2.0 * math.pi * freq
        arg = omega * t[..., None] + phase
        return ((np.sin(arg) - np.sin(phase)) * (amp / omega)).sum(axis=-1)

    def angle(self, t: np.ndarray) -> np.ndarray:
        return self._integrated(self.rot, self.motion_time(t))

    def scale(self, t: np.ndarray) -> np.ndarray:
        return np.exp(self._integrated(self.zoom, self.motion_time(t)))

    def relative(self, t_ref: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Affine map ``u(t) = M p + b`` of a point seen at ``p`` (centred px) at ``t_ref``.

        Returns ``M`` ``(..., 2, 2)`` and ``b`` ``(..., 2)``.
        """
        t = np.asarray(t, dtype=np.float64)
        ref = np.array([t_ref], dtype=np.float64)
        th_r, th_t = self.angle(ref)[0], self.angle(t)
        s_r, s_t = self.scale(ref)[0], self.scale(t)
        d_r, d_t = self.translation(ref)[0], self.translation(t)
        rel = th_r - th_t
        ratio = s_r / s_t
        m = (
            np.stack(
                [
                    np.stack([np.cos(rel), -np.sin(rel)], axis=-1),
                    np.stack([np.sin(rel), np.cos(rel)], axis=-1),
                ],
                axis=-2,
            )
            * ratio[..., None, None]
        )
        diff = d_t - d_r
        cos_t, sin_t = np.cos(th_t), np.sin(th_t)
        b = (
            np.stack(
                [
                    cos_t * diff[..., 0] + sin_t * diff[..., 1],
                    -sin_t * diff[..., 0] + cos_t * diff[..., 1],
                ],
                axis=-1,
            )
            / s_t[..., None]
        )
        return m, b


def _shake_terms(rng: np.random.Generator, std: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum of sinusoids with unit variance times ``std``: amplitude, frequency, phase."""
    freq = rng.uniform(*_SHAKE_BAND_HZ, size=_SHAKE_TERMS)
    phase = rng.uniform(0.0, 2.0 * math.pi, size=_SHAKE_TERMS)
    amp = np.full(_SHAKE_TERMS, std * math.sqrt(2.0 / _SHAKE_TERMS))
    return amp, freq, phase


def _make_trajectory(p: SynthParams, t_lo: float, t_hi: float, seed: int) -> _Trajectory:
    """Random hand-held trajectory covering ``[t_lo, t_hi]`` seconds."""
    seq = np.random.SeedSequence(seed)
    # A fourth stream draws the pauses: the first three (and so every video without pauses)
    # are the same whether or not it is spawned.
    rng_stroke, rng_rot, rng_zoom, rng_pause = (np.random.default_rng(s) for s in seq.spawn(4))
    axis = math.radians(p.direction_deg)
    spread = math.radians(p.direction_spread_deg)

    drift_angle = axis + spread * rng_stroke.standard_normal()
    drift = (
        (1.0 - p.speed_variation)
        * p.speed_px_s
        * np.array([math.cos(drift_angle), math.sin(drift_angle)])
    )

    lo_s, hi_s = p.stroke_min_ms / 1000.0, p.stroke_max_ms / 1000.0
    first = rng_stroke.uniform(lo_s, hi_s)
    bounds = [t_lo - rng_stroke.uniform(0.0, 1.0) * first]
    lengths = [first]
    velocity: list[np.ndarray] = []
    start: list[np.ndarray] = []
    accumulated = np.zeros(2)
    jitter = p.stroke_speed_jitter
    while True:
        length = lengths[-1]
        angle = axis + spread * rng_stroke.standard_normal()
        unit = np.array([math.cos(angle), math.sin(angle)])
        position = accumulated + drift * bounds[-1]
        heading_away = float(position @ unit) > 0.0
        back = rng_stroke.uniform() < p.recentre_prob
        if heading_away == back:
            unit = -unit
        amplitude = math.exp(jitter * rng_stroke.standard_normal() - jitter * jitter / 2.0)
        vel = p.speed_variation * p.speed_px_s * amplitude * unit
        start.append(accumulated.copy())
        velocity.append(vel)
        accumulated = accumulated + vel * length
        bounds.append(bounds[-1] + length)
        if bounds[-1] > t_hi:
            break
        lengths.append(rng_stroke.uniform(lo_s, hi_s))

    pause_at, pause_len = _pauses(p, np.asarray(bounds), rng_pause)
    return _Trajectory(
        bounds=np.asarray(bounds),
        velocity=np.asarray(velocity),
        start=np.asarray(start),
        drift=drift,
        rot=_shake_terms(rng_rot, math.radians(p.rotation_std)),
        zoom=_shake_terms(rng_zoom, p.zoom_std),
        pause_at=pause_at,
        pause_len=pause_len,
    )


def _pauses(
    p: SynthParams, bounds: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Hand pauses (motion time, s; ascending): one per stroke with ``pause_prob``, at its end
    or at a uniform point of it (``pause_where``), lasting a uniform ``pause_min_ms`` ..
    ``pause_max_ms``. ``bounds`` are the ``(K + 1,)`` stroke boundaries. Nothing is drawn when
    ``pause_prob`` is 0."""
    strokes = len(bounds) - 1
    if p.pause_prob == 0.0 or strokes < 1:
        return np.zeros(0), np.zeros(0)
    chosen = rng.uniform(size=strokes) < p.pause_prob
    lengths = rng.uniform(p.pause_min_ms, p.pause_max_ms, size=strokes) / 1000.0
    where = rng.uniform(size=strokes) if p.pause_where == "anywhere" else np.ones(strokes)
    at = bounds[:-1] + where * np.diff(bounds)
    keep = chosen & (lengths > 0.0)
    return at[keep], lengths[keep]


# ----------------------------------------------------------------------------------------------
# rendering


def _validate_size(size: Any) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
    ):
        raise ValueError(f"size must be a pair of ints (H, W), got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got (H, W) = ({h}, {w})")
    return h, w


def _resolve_params(preset: str | SynthParams, overrides: dict[str, Any]) -> SynthParams:
    if isinstance(preset, SynthParams):
        base = preset
    elif isinstance(preset, str) and preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; available presets: {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(SynthParams.model_fields))
    if unknown:
        raise ValueError(
            f"unknown SynthParams override(s): {', '.join(map(repr, unknown))}; "
            f"valid fields: {', '.join(SynthParams.model_fields)}"
        )
    if not overrides:
        return base
    return SynthParams.model_validate({**base.model_dump(), **overrides})


def make_video(
    image: str | np.ndarray | Tensor,
    preset: str | SynthParams = "gopro",
    num_frames: int = 24,
    size: tuple[int, int] = (256, 320),
    seed: int = 0,
    **overrides: Any,
) -> SyntheticVideo:
    """Render a synthetic blurry video of a photo under a hand-held camera trajectory.

    Args:
        image: a name from :data:`PHOTOS` (needs scikit-image, ``pip install ttblur[data]``),
            an ``(H, W, 3)`` / ``(H, W)`` numpy array (``uint8`` or float in ``[0, 1]``) or a
            ``(3, H, W)`` tensor in ``[0, 1]``. It is rescaled (antialiased) so that every view
            of the trajectory stays inside real content.
        preset: a key of :data:`PRESETS` or a :class:`SynthParams`.
        num_frames: ``T >= 1``.
        size: ``(H, W)`` of the frames, px.
        seed: non-negative int; the same seed gives bit-identical tensors.
        **overrides: any :class:`SynthParams` field, e.g. ``noise_std=0``.

    Returns:
        :class:`SyntheticVideo` with ``blurry``/``sharp`` ``(T, 3, H, W)``, ``flow``
        ``(T, 2, H, W)``, ``magnitude`` ``(T, 1, H, W)`` and ``motion`` ``(T - 1, 2, H, W)``
        (all float32; images in ``[0, 1]``, flows and magnitudes in px).

    Raises:
        ValueError: unknown preset / photo / override, invalid parameter values, bad
            ``num_frames`` / ``size`` / ``seed`` or an invalid image.
    """
    params = _resolve_params(preset, overrides)
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)):
        raise ValueError(f"num_frames must be an int, got {type(num_frames).__name__}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a non-negative int below 2**63, got {seed!r}")
    h, w = _validate_size(size)
    photo = load_photo(image) if isinstance(image, str) else coerce_image(image)
    num_frames, seed = int(num_frames), int(seed)

    interval = params.frame_interval_ms / 1000.0
    exposure = params.exposure_ms / 1000.0
    centres = np.arange(num_frames, dtype=np.float64) * interval
    traj = _make_trajectory(params, -exposure / 2.0, centres[-1] + exposure / 2.0, seed)

    # Centred pixel coordinates (pixel centres), the frame corners, and the probe of path lengths.
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    corners = np.array([[-cx, -cy], [cx, -cy], [-cx, cy], [cx, cy]])
    counts: list[int] = []
    for c in centres:
        probe = np.linspace(c - exposure / 2.0, c + exposure / 2.0, _PROBE_STEPS + 1)
        m, b = traj.relative(c, probe)
        pos = np.einsum("kij,cj->kci", m, corners) + b[:, None, :]
        path = np.linalg.norm(np.diff(pos, axis=0), axis=-1).sum(axis=0).max()
        counts.append(
            subframe_count(
                float(path), params.max_step_px, params.min_subframes, params.max_subframes
            )
        )

    # Sub-frame times (midpoint rule; the middle one is the frame centre).
    sub_times = [
        c - exposure / 2.0 + (np.arange(n) + 0.5) * (exposure / n) for c, n in zip(centres, counts)
    ]
    all_times = np.concatenate(sub_times)
    theta, scale, shift = traj.angle(all_times), traj.scale(all_times), traj.translation(all_times)

    # Canvas placement: bounding box of every view relative to the canvas anchor c0.
    cos_a, sin_a = np.cos(theta), np.sin(theta)
    view_x = -shift[:, None, 0] + scale[:, None] * (
        cos_a[:, None] * corners[None, :, 0] - sin_a[:, None] * corners[None, :, 1]
    )
    view_y = -shift[:, None, 1] + scale[:, None] * (
        sin_a[:, None] * corners[None, :, 0] + cos_a[:, None] * corners[None, :, 1]
    )
    x_min, x_max = float(view_x.min()), float(view_x.max())
    y_min, y_max = float(view_y.min()), float(view_y.max())
    need_w = x_max - x_min + 1.0 + 2.0 * _MARGIN
    need_h = y_max - y_min + 1.0 + 2.0 * _MARGIN
    photo_h, photo_w = photo.shape[-2:]
    k = max(need_w / photo_w, need_h / photo_h)
    place = np.random.default_rng(np.random.SeedSequence([seed, 1])).uniform(size=2)
    if k <= params.max_photo_scale:
        # every view inside real content; random placement inside the slack
        canvas_w = max(math.ceil(photo_w * k - 1e-6), math.ceil(need_w))
        canvas_h = max(math.ceil(photo_h * k - 1e-6), math.ceil(need_h))
        c0x = _MARGIN - x_min + place[0] * (canvas_w - need_w)
        c0y = _MARGIN - y_min + place[1] * (canvas_h - need_h)
    else:
        # very long drifts: cap the upsampling, centre the path, reflect beyond the photo
        canvas_w = math.ceil(photo_w * params.max_photo_scale)
        canvas_h = math.ceil(photo_h * params.max_photo_scale)
        c0x = (canvas_w - 1) / 2.0 - (x_min + x_max) / 2.0
        c0y = (canvas_h - 1) / 2.0 - (y_min + y_max) / 2.0

    canvas = F.interpolate(
        photo[None], size=(canvas_h, canvas_w), mode="bicubic", antialias=True, align_corners=False
    ).clamp(0.0, 1.0)
    linear = canvas**params.gamma

    ys = torch.arange(h, dtype=torch.float32) - cy
    xs = torch.arange(w, dtype=torch.float32) - cx

    # Sampling grid of every sub-frame: canvas X = c0 - d + s R(theta) p, normalised for
    # grid_sample (align_corners=True). Each coordinate is a sum of a term in x and one in y.
    gx_scale, gy_scale = 2.0 / max(canvas_w - 1, 1), 2.0 / max(canvas_h - 1, 1)
    a_all = torch.from_numpy(scale * cos_a).float()
    b_all = torch.from_numpy(scale * sin_a).float()
    ox_all = torch.from_numpy((c0x - shift[:, 0]) * gx_scale - 1.0).float()
    oy_all = torch.from_numpy((c0y - shift[:, 1]) * gy_scale - 1.0).float()
    xs_x, xs_y = (xs * gx_scale).view(1, 1, w), (xs * gy_scale).view(1, 1, w)
    ys_x, ys_y = (ys * gx_scale).view(1, h, 1), (ys * gy_scale).view(1, h, 1)

    blurry_lin = torch.empty(num_frames, 3, h, w)
    sharp_lin = torch.empty(num_frames, 3, h, w)
    flow = torch.empty(num_frames, 2, h, w)
    magnitude = torch.empty(num_frames, 1, h, w)
    offset = 0
    for t, n in enumerate(counts):
        total = torch.zeros(3, h, w)
        mid = (n - 1) // 2
        for j0 in range(0, n, _CHUNK):
            j1 = min(n, j0 + _CHUNK)
            sl = slice(offset + j0, offset + j1)
            ca, cb = a_all[sl].view(-1, 1, 1), b_all[sl].view(-1, 1, 1)
            grid = torch.empty(j1 - j0, h, w, 2)
            torch.add(ca * xs_x, ox_all[sl].view(-1, 1, 1) - cb * ys_x, out=grid[..., 0])
            torch.add(cb * xs_y, oy_all[sl].view(-1, 1, 1) + ca * ys_y, out=grid[..., 1])
            out = F.grid_sample(
                linear,
                grid.view(1, (j1 - j0) * h, w, 2),
                mode=params.interpolation,
                padding_mode="reflection",
                align_corners=True,
            ).view(3, j1 - j0, h, w)
            total += out.sum(dim=1)
            if j0 <= mid < j1:
                sharp_lin[t] = out[:, mid - j0]
        offset += n
        blurry_lin[t] = total / n

        # Ground truth: exact path of each pixel's scene point over the exposure.
        c = centres[t]
        steps = np.linspace(c - exposure / 2.0, c + exposure / 2.0, n + 1)
        m, b = traj.relative(c, steps)
        flow[t] = affine_field(m[-1] - m[0], b[-1] - b[0], xs, ys)
        magnitude[t, 0] = path_length(np.diff(m, axis=0), np.diff(b, axis=0), xs, ys)

    motion = torch.empty(max(num_frames - 1, 0), 2, h, w)
    eye = np.eye(2)
    for t in range(num_frames - 1):
        m, b = traj.relative(centres[t], centres[t + 1 : t + 2])
        motion[t] = affine_field(m[0] - eye, b[0], xs, ys)

    inv_gamma = 1.0 / params.gamma
    blurry = blurry_lin.clamp(0.0, 1.0) ** inv_gamma
    sharp = (sharp_lin.clamp(0.0, 1.0) ** inv_gamma).contiguous()
    if params.noise_std > 0:
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(blurry.shape, generator=gen, dtype=torch.float32)
        sigma = params.noise_std * torch.sqrt(
            params.shot_fraction * blurry + (1.0 - params.shot_fraction)
        )
        blurry = (blurry + sigma * noise).clamp(0.0, 1.0)

    return SyntheticVideo(
        blurry=blurry.contiguous(),
        sharp=sharp,
        flow=flow,
        magnitude=magnitude,
        motion=motion,
        params=params,
        num_subframes=tuple(counts),
        photo_scale=float(canvas_w / photo_w),
    )


_SCENARIO_NAMES = frozenset(
    {
        "FAMILIES",
        "ScenarioSpec",
        "ScenarioVideo",
        "draw_scenario",
        "make_scenario",
        "scenario_suite",
    }
)


def __getattr__(name: str) -> Any:
    """Serve the scenario families of :mod:`ttblur.scenarios` lazily (no import cycle)."""
    if name in _SCENARIO_NAMES:
        from ttblur import scenarios

        return getattr(scenarios, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
