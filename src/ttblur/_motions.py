"""Motion models and the H.264 round trip of :mod:`ttblur.scenarios` (see its docs).

Every velocity is piecewise linear in time, so poses are exact integrals
(:class:`ttblur._scene.PiecewiseLinear`).
"""

from __future__ import annotations

import io
import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ttblur._photos import load_photo
from ttblur._scene import CameraPath, MovingObject, PiecewiseLinear, tone_decode

if TYPE_CHECKING:
    from ttblur.scenarios import ScenarioSpec

__all__ = [
    "h264_roundtrip",
    "handheld_camera",
    "make_objects",
    "pan_camera",
    "rotation_zoom_camera",
]


# ----------------------------------------------------------------------------------------------
# motion models (velocities piecewise linear in time: poses are exact integrals)


def _unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


def handheld_camera(spec: ScenarioSpec, rng: np.random.Generator) -> CameraPath:
    """Per frame window ``[c - I/2, c + I/2]``: still (< 0.3 px of blur) or a jerky stroke of
    ``U(blur_px)`` px over the exposure, its own direction (heading back toward the start with
    probability 0.75) and a linear speed change ``+-speed_slope`` across the window; velocity
    jumps between windows. Small roll shake (``shake_deg_s``) at the frame centres."""
    num, interval = spec.num_frames, 1.0 / spec.fps
    exposure = spec.exposure_ratio * interval
    still = rng.uniform(size=num) < spec.still_prob
    if spec.still_prob > 0 and num >= 3 and not still.any():
        still[int(rng.integers(num))] = True
    axis, spread = math.radians(spec.direction_deg), math.radians(spec.direction_spread_deg)
    knots: list[float] = []
    values: list[np.ndarray] = []
    position = np.zeros(2)
    for i in range(-1, num + 1):
        if 0 <= i < num and still[i]:
            speed = float(rng.uniform(0.0, 0.3)) / exposure
        else:
            speed = float(rng.uniform(*spec.blur_px)) / exposure
        unit = _unit(axis + spread * float(rng.standard_normal()))
        if (float(position @ unit) > 0.0) == (rng.uniform() < 0.75):
            unit = -unit
        slope = float(rng.uniform(-spec.speed_slope, spec.speed_slope))
        knots += [(i - 0.5) * interval, (i + 0.5) * interval]
        values += [speed * (1.0 - slope) * unit, speed * (1.0 + slope) * unit]
        position = position + speed * interval * unit
    centres = np.arange(-1, num + 1) * interval
    spin = rng.standard_normal(centres.size) * math.radians(spec.shake_deg_s)
    return CameraPath(
        PiecewiseLinear(np.asarray(knots), np.asarray(values)),
        PiecewiseLinear(centres, spin),
        PiecewiseLinear.constant(0.0),
    )


def pan_camera(spec: ScenarioSpec) -> CameraPath:
    """Constant velocity: ``blur_px[0]`` px over the exposure along ``direction_deg``."""
    speed = spec.blur_px[0] / (spec.exposure_ratio / spec.fps)
    velocity = speed * _unit(math.radians(spec.direction_deg))
    zero = PiecewiseLinear.constant(0.0)
    return CameraPath(PiecewiseLinear.constant(velocity), zero, zero)


def rotation_zoom_camera(spec: ScenarioSpec, rng: np.random.Generator) -> CameraPath:
    """Roll and zoom about the frame centre, no translation: at each frame centre the corner
    of the frame moves ``U(blur_px)`` px over the exposure, split by ``rotation_share``; the
    roll (zoom) reverses beyond 20 deg (log-zoom 0.3) and at random (p = 0.15)."""
    h, w = spec.size
    interval = 1.0 / spec.fps
    exposure = spec.exposure_ratio * interval
    radius = math.hypot((w - 1) / 2.0, (h - 1) / 2.0)
    share = math.pi / 2.0 * spec.rotation_share
    centres = np.arange(-1, spec.num_frames + 1) * interval
    spin, zoom = np.empty(centres.size), np.empty(centres.size)
    angle = log_zoom = 0.0
    sign_r, sign_z = 1.0, 1.0
    for k in range(centres.size):
        rate = float(rng.uniform(*spec.blur_px)) / (radius * exposure)
        if (abs(angle) > math.radians(20.0) and sign_r * angle > 0) or rng.uniform() < 0.15:
            sign_r = -sign_r
        if (abs(log_zoom) > 0.3 and sign_z * log_zoom > 0) or rng.uniform() < 0.15:
            sign_z = -sign_z
        spin[k], zoom[k] = sign_r * rate * math.sin(share), sign_z * rate * math.cos(share)
        angle += spin[k] * interval
        log_zoom += zoom[k] * interval
    return CameraPath(
        PiecewiseLinear.constant([0.0, 0.0]),
        PiecewiseLinear(centres, spin),
        PiecewiseLinear(centres, zoom),
    )


def make_objects(spec: ScenarioSpec, rng: np.random.Generator) -> list[MovingObject]:
    """Patches cut from ``object_photo`` under an elliptic mask (soft: 5 px feather), each
    moving ``U(blur_px)`` px per exposure, turning slowly, bouncing off 80 % of the frame."""
    assert spec.object_photo is not None
    h, w = spec.size
    interval = 1.0 / spec.fps
    exposure = spec.exposure_ratio * interval
    photo = load_photo(spec.object_photo)
    side = min(h, w)
    objects = []
    for _ in range(spec.num_objects):
        oh = max(8, round(spec.object_size * side * rng.uniform(0.8, 1.2)))
        ow = max(8, round(spec.object_size * side * rng.uniform(0.9, 1.5)))
        short = max(oh, ow, round(side * rng.uniform(0.9, 1.4)))
        ph, pw = photo.shape[-2:]
        scale = short / min(ph, pw)
        size = (max(oh, round(ph * scale)), max(ow, round(pw * scale)))
        src = F.interpolate(photo[None], size=size, mode="bicubic", antialias=True)[0]
        y0, x0 = int(rng.integers(size[0] - oh + 1)), int(rng.integers(size[1] - ow + 1))
        patch = tone_decode(src[:, y0 : y0 + oh, x0 : x0 + ow], spec.tone)
        yy = (torch.arange(oh, dtype=torch.float32) - (oh - 1) / 2.0) / ((oh - 1) / 2.0)
        xx = (torch.arange(ow, dtype=torch.float32) - (ow - 1) / 2.0) / ((ow - 1) / 2.0)
        radius = torch.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)
        if spec.object_mask == "soft":
            inner = (1.0 - radius) * (min(oh, ow) - 1) / 2.0 / 5.0
            alpha = inner.clamp(0.0, 1.0)
            alpha = alpha * alpha * (3.0 - 2.0 * alpha)
        else:
            alpha = (radius <= 1.0).float()
        texture = torch.cat([patch * alpha, alpha[None]])
        box = np.array([0.4 * (w - 1), 0.4 * (h - 1)])
        origin = rng.uniform(-box, box)
        position = origin.copy()
        heading = float(rng.uniform(0.0, 2.0 * math.pi))
        knots: list[float] = []
        values: list[np.ndarray] = []
        for i in range(-1, spec.num_frames + 1):
            heading += math.radians(20.0) * float(rng.standard_normal())
            speed = float(rng.uniform(*spec.blur_px)) / exposure
            unit = _unit(heading)
            step = position + speed * interval * unit
            flip = np.abs(step) > box
            unit[flip] = -unit[flip]
            heading = math.atan2(unit[1], unit[0])
            slope = float(rng.uniform(-spec.speed_slope, spec.speed_slope))
            knots += [(i - 0.5) * interval, (i + 0.5) * interval]
            values += [speed * (1.0 - slope) * unit, speed * (1.0 + slope) * unit]
            position = position + speed * interval * unit
        spin = PiecewiseLinear.constant(math.radians(float(rng.uniform(-30.0, 30.0))))
        objects.append(
            MovingObject(
                texture=texture.contiguous(),
                velocity=PiecewiseLinear(np.asarray(knots), np.asarray(values)),
                spin=spin,
                origin=(float(origin[0]), float(origin[1])),
            )
        )
    return objects


def h264_roundtrip(frames: Tensor, crf: int, fps: float) -> Tensor:
    """Encode ``(T, 3, H, W)`` in ``[0, 1]`` with libx264 (yuv420p, preset medium, one thread,
    C code only) in memory and decode it back; odd sizes are padded by edge replication, then
    cropped."""
    import av

    t, _, h, w = frames.shape
    pad_h, pad_w = h % 2, w % 2
    padded = F.pad(frames, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else frames
    rgb = (padded.permute(0, 2, 3, 1) * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream: Any = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = w + pad_w, h + pad_h
        stream.pix_fmt = "yuv420p"
        # With x264's SIMD code some videos came out differently from call to call (3 variants
        # in 8 calls of a 128 x 160 one; more threads did not matter) and its output depends on
        # the CPU's instruction set: its C code only, the same bits on every call and machine.
        stream.options = {
            "crf": str(crf),
            "preset": "medium",
            "threads": "1",
            "x264-params": "asm=0",
        }
        for image in rgb:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    decoded = []
    with av.open(buffer, mode="r") as container:
        for frame in container.decode(video=0):
            decoded.append(frame.to_ndarray(format="rgb24"))
    if len(decoded) != t:
        raise RuntimeError(f"H.264 round trip returned {len(decoded)} frames for {t}")
    out = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).float() / 255.0
    return out[:, :, :h, :w].contiguous()
