"""An independent renderer of blurry clips with exact ground truth (shares no code with
``ttblur.synth``, ``ttblur.scenarios`` or their motion and scene helpers).

Every default of ttblur was chosen on videos of ttblur's own generator, so a gain measured
there may only hold on that generator's assumptions. This renderer makes other ones:

* **camera**: a rotating pinhole camera looking at a photo (the homography ``K_s R(u)
  K_o(u)^-1`` of yaw, pitch, roll and focal-length zoom), not image-plane shifts;
* **motion**: continuous-time angular velocity profiles (a steady pan, hand-held shake with
  pauses, jerks and speed changes, rotation with zoom), integrated at sub-frame steps; a
  moving object is an alpha-matted sprite cut from another photo;
* **exposure**: frame ``k`` integrates linear light over ``[k, k + e]`` (``e`` the exposure
  ratio, 0.1-1.0), sampled finely enough that no step exceeds 0.5 px; its ground truth is
  the instant ``k + e / 2``;
* **camera processing**: Poisson-Gaussian noise in linear light, a tone curve (sRGB, gamma
  2.4, a filmic S-curve, gamma 2.2), 8-bit quantisation and, for some kinds, H.264 (libx264,
  ``yuv420p``, decoded by ``ttblur.load_video`` as a user's file would be).

:func:`render_clip` returns the clip, its sharp frames and its true blur per pixel (the path,
px, that the point seen there travels during the exposure).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["KINDS", "Clip", "ClipSpec", "render_clip", "tone_curve"]

#: The kinds of clip, each with its own camera, motion and processing (:func:`render_clip`).
KINDS: tuple[str, ...] = (
    "pan_h264",
    "handheld_pauses",
    "handheld_jerks",
    "rotate_zoom",
    "moving_object",
    "lowlight",
    "handheld_short",
)
#: Sub-frame samples per frame interval (an exposure of ratio ``e`` averages ``e * STEPS + 1``).
STEPS = 96


@dataclass(frozen=True)
class ClipSpec:
    """One clip: its kind, its scene photo (``(3, H, W)`` sRGB in ``[0, 1]``) and a seed.

    ``sprite`` is the photo the moving object is cut from (``moving_object`` only; None: the
    scene photo)."""

    kind: str
    photo_name: str
    photo: Tensor
    seed: int
    frames: int = 16
    size: tuple[int, int] = (192, 256)
    sprite: Tensor | None = None


@dataclass
class Clip:
    """A rendered clip.

    Attributes:
        blurry: ``(T, 3, H, W)`` float32 in ``[0, 1]``, as the camera wrote it.
        sharp: ``(T, 3, H, W)`` the instant in the middle of each exposure, same processing
            without noise or compression.
        magnitude: ``(T, 1, H, W)`` the path (px) that the scene point seen at each pixel in
            the middle of the exposure travels during it (the true blur length there).
        exposure: the exposure ratio ``e``.
        tone: the tone curve's name; ``crf``: the H.264 quality (None: not compressed).
    """

    blurry: Tensor
    sharp: Tensor
    magnitude: Tensor
    exposure: float
    tone: str
    crf: int | None

    @property
    def blur_px(self) -> list[float]:
        """Per frame, the longest blur path of any of its pixels, px."""
        return self.magnitude.flatten(1).amax(dim=1).tolist()


def srgb_to_linear(x: Tensor) -> Tensor:
    """Inverse sRGB transfer function of values in ``[0, 1]``."""
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def tone_curve(name: str) -> Callable[[Tensor], Tensor]:
    """The camera's tone curve: linear light in ``[0, inf)`` -> display values in ``[0, 1]``."""

    def srgb(x: Tensor) -> Tensor:
        x = x.clamp(0.0, 1.0)
        return torch.where(
            x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(1e-12) ** (1 / 2.4) - 0.055
        )

    def power(gamma: float) -> Callable[[Tensor], Tensor]:
        return lambda x: x.clamp(0.0, 1.0) ** (1.0 / gamma)

    def filmic(x: Tensor) -> Tensor:
        # A rational S-curve (shoulder and toe) on 1.6x exposed linear light, then gamma 2.2.
        y = 1.6 * x.clamp_min(0.0)
        y = (y * (2.51 * y + 0.03)) / (y * (2.43 * y + 0.59) + 0.14)
        return y.clamp(0.0, 1.0) ** (1 / 2.2)

    curves = {"srgb": srgb, "gamma24": power(2.4), "gamma22": power(2.2), "filmic": filmic}
    if name not in curves:
        raise ValueError(f"unknown tone curve {name!r}; choose from {', '.join(curves)}")
    return curves[name]


def _rotation(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """``(N, 3, 3)`` rotations ``Rz(roll) Ry(yaw) Rx(pitch)`` of angles ``(N,)`` in radians."""
    zeros, ones = torch.zeros_like(yaw), torch.ones_like(yaw)
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    ry = torch.stack([cy, zeros, sy, zeros, ones, zeros, -sy, zeros, cy], -1).view(-1, 3, 3)
    rx = torch.stack([ones, zeros, zeros, zeros, cp, -sp, zeros, sp, cp], -1).view(-1, 3, 3)
    rz = torch.stack([cr, -sr, zeros, sr, cr, zeros, zeros, zeros, ones], -1).view(-1, 3, 3)
    return rz @ ry @ rx


@dataclass
class _Path:
    """The camera (and object) at fine time steps: ``steps`` per frame interval."""

    steps: int
    yaw: Tensor  # radians, (frames * steps + 1,)
    pitch: Tensor
    roll: Tensor
    zoom: Tensor  # focal-length factor
    object_xy: Tensor | None  # (frames * steps + 1, 2) object centre in output px


def _smooth_noise(
    rng: np.random.Generator, n: int, knots_per_frame: float, steps: int
) -> np.ndarray:
    """A smooth random signal of ``n`` fine samples (cubic interpolation of random knots)."""
    knots = max(4, math.ceil(n / steps * knots_per_frame) + 4)
    values = rng.standard_normal(knots)
    x = np.linspace(0, knots - 3, n)
    i = np.clip(x.astype(int), 1, knots - 3)
    t = x - i
    p0, p1, p2, p3 = values[i - 1], values[i], values[i + 1], values[i + 2]
    return 0.5 * (
        2 * p1
        + (-p0 + p2) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
    )


def _envelope(
    frames: int, steps: int, pause_frames: set[int], ramp: float, floor: float
) -> np.ndarray:
    """A speed envelope of ``frames * steps + 1`` samples: 1, dropping to ``floor`` on the
    frame intervals in ``pause_frames`` with cosine ramps ``ramp`` frames long."""
    u = np.arange(frames * steps + 1) / steps
    env = np.ones_like(u)
    for k in pause_frames:
        d = np.maximum(np.maximum(k - u, u - (k + 1)), 0.0)  # distance to the interval [k, k+1]
        dip = np.where(d < ramp, 0.5 * (1 + np.cos(np.pi * d / ramp)), 0.0)
        env = np.minimum(env, 1 - (1 - floor) * dip)
    return env


def _camera_path(
    kind: str,
    rng: np.random.Generator,
    frames: int,
    steps: int,
    focal: float,
    size: tuple[int, int],
) -> tuple[_Path, float]:
    """The kind's motion (angles from px / frame velocities) and its exposure ratio."""
    n = frames * steps + 1
    vx = np.zeros(n)
    vy = np.zeros(n)
    vroll = np.zeros(n)
    vzoom = np.zeros(n)
    object_xy = None
    if kind == "pan_h264":
        speed = rng.uniform(6.0, 10.0)
        angle = rng.uniform(-0.25, 0.25) + (math.pi if rng.random() < 0.5 else 0.0)
        vx += speed * math.cos(angle) + 0.3 * _smooth_noise(rng, n, 1.0, steps)
        vy += speed * math.sin(angle) + 0.3 * _smooth_noise(rng, n, 1.0, steps)
        exposure = 1.0
    elif kind == "handheld_pauses":
        # The hand-held clip: 6-16 px / frame at ~100 deg +- 25 deg, every third frame
        # nearly still.
        speed = 11.0 + 5.0 * np.clip(_smooth_noise(rng, n, 0.7, steps), -1, 1)
        angle = math.radians(100.0) + math.radians(25.0) * np.clip(
            _smooth_noise(rng, n, 0.5, steps), -1, 1
        )
        env = _envelope(frames, steps, set(range(int(rng.integers(0, 3)), frames, 3)), 0.25, 0.02)
        vx, vy = speed * np.cos(angle) * env, speed * np.sin(angle) * env
        exposure = 0.9
    elif kind == "handheld_jerks":
        base = 2.0 + 3.0 * rng.random()
        vx = base * _smooth_noise(rng, n, 1.5, steps)
        vy = base * _smooth_noise(rng, n, 1.5, steps)
        u = np.arange(n) / steps
        for _ in range(int(rng.integers(2, 5))):  # jerks: short bursts of 15-25 px / frame
            centre, width = rng.uniform(1, frames - 1), rng.uniform(0.15, 0.3)
            amp, angle = rng.uniform(15, 25), rng.uniform(0, 2 * math.pi)
            bump = np.exp(-0.5 * ((u - centre) / width) ** 2)
            vx += amp * math.cos(angle) * bump
            vy += amp * math.sin(angle) * bump
        pauses = set(rng.choice(frames, size=max(1, frames // 5), replace=False).tolist())
        env = _envelope(frames, steps, pauses, 0.2, 0.01)
        vx, vy = vx * env, vy * env
        vroll = math.radians(0.15) * _smooth_noise(rng, n, 1.0, steps) * env
        exposure = float(rng.uniform(0.1, 1.0))
    elif kind == "rotate_zoom":
        vroll += math.radians(rng.uniform(1.0, 2.5)) * (1 if rng.random() < 0.5 else -1)
        vzoom += rng.uniform(0.01, 0.03) * (1 if rng.random() < 0.5 else -1)
        vx += 0.5 * _smooth_noise(rng, n, 1.0, steps)
        vy += 0.5 * _smooth_noise(rng, n, 1.0, steps)
        exposure = float(rng.uniform(0.5, 1.0))
    elif kind == "moving_object":
        vx += 0.05 * _smooth_noise(rng, n, 1.0, steps)  # a tripod: a tremor well under 1 px
        vy += 0.05 * _smooth_noise(rng, n, 1.0, steps)
        h, w = size
        speed = rng.uniform(6.0, 14.0)
        heading = rng.uniform(-0.4, 0.4) + (math.pi if rng.random() < 0.5 else 0.0)
        turn = rng.uniform(-0.05, 0.05)  # radians per frame: a gently curving path
        theta = heading + turn * np.arange(n) / steps
        ox = np.cumsum(speed * np.cos(theta)) / steps
        oy = np.cumsum(speed * np.sin(theta)) / steps
        ox += w / 2 - (ox.max() + ox.min()) / 2
        oy += h / 2 - (oy.max() + oy.min()) / 2 + rng.uniform(-0.1, 0.1) * h
        object_xy = torch.tensor(np.stack([ox, oy], -1), dtype=torch.float64)
        exposure = float(rng.uniform(0.4, 1.0))
    elif kind == "lowlight":
        speed = 4.0 + 6.0 * rng.random()
        angle = rng.uniform(0, 2 * math.pi) + 0.6 * _smooth_noise(rng, n, 0.5, steps)
        pauses = set(rng.choice(frames, size=max(1, frames // 4), replace=False).tolist())
        env = _envelope(frames, steps, pauses, 0.25, 0.02)
        vx, vy = speed * np.cos(angle) * env, speed * np.sin(angle) * env
        exposure = float(rng.uniform(0.3, 0.8))
    elif kind == "handheld_short":
        # A short exposure: the camera moves much farther between frames than during them.
        speed = 14.0 + 6.0 * np.clip(_smooth_noise(rng, n, 0.7, steps), -1, 1)
        angle = rng.uniform(0, 2 * math.pi) + 1.2 * _smooth_noise(rng, n, 0.6, steps)
        pauses = set(rng.choice(frames, size=max(1, frames // 4), replace=False).tolist())
        env = _envelope(frames, steps, pauses, 0.25, 0.02)
        vx, vy = speed * np.cos(angle) * env, speed * np.sin(angle) * env
        exposure = float(rng.uniform(0.1, 0.35))
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    # px / frame at the centre -> radians: yaw turns the view right (+x), pitch down (+y).
    yaw = np.concatenate([[0.0], np.cumsum(vx[1:]) / steps]) / focal
    pitch = np.concatenate([[0.0], np.cumsum(vy[1:]) / steps]) / focal
    roll = np.concatenate([[0.0], np.cumsum(vroll[1:]) / steps])
    zoom = np.exp(np.concatenate([[0.0], np.cumsum(vzoom[1:]) / steps]))
    # Centre the camera's excursion on the photo.
    yaw -= (yaw.max() + yaw.min()) / 2
    pitch -= (pitch.max() + pitch.min()) / 2
    zoom /= math.sqrt(zoom.max() * zoom.min())

    def t(a: np.ndarray) -> Tensor:
        return torch.tensor(a, dtype=torch.float64)

    return _Path(steps, t(yaw), t(pitch), t(roll), t(zoom), object_xy), exposure


def _homographies(
    path: _Path, index: Tensor, focal: float, out_hw: tuple[int, int], scene_hw: tuple[int, int]
) -> Tensor:
    """``(N, 3, 3)`` output-pixel -> scene-pixel homographies at fine steps ``index``."""
    h, w = out_hw
    sh, sw = scene_hw
    k_scene = torch.tensor(
        [[focal, 0, (sw - 1) / 2], [0, focal, (sh - 1) / 2], [0, 0, 1]], dtype=torch.float64
    )
    f = focal * path.zoom[index]
    k_out_inv = torch.zeros(len(index), 3, 3, dtype=torch.float64)
    k_out_inv[:, 0, 0] = 1 / f
    k_out_inv[:, 1, 1] = 1 / f
    k_out_inv[:, 0, 2] = -((w - 1) / 2) / f
    k_out_inv[:, 1, 2] = -((h - 1) / 2) / f
    k_out_inv[:, 2, 2] = 1
    rot = _rotation(path.yaw[index], path.pitch[index], path.roll[index])
    return k_scene @ rot @ k_out_inv


def _pixels(h: int, w: int) -> tuple[Tensor, Tensor]:
    """``(ys, xs)``: each pixel's row and column, ``(h, w)`` float64."""
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    return ys, xs


def _warp(scene: Tensor, homographies: Tensor, pixels: tuple[Tensor, Tensor]) -> Tensor:
    """Sample ``scene`` ``(3, sh, sw)`` through each homography: ``(N, 3, h, w)``."""
    ys, xs = pixels
    h, w = xs.shape
    sh, sw = scene.shape[-2:]
    points = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(-1, 3)
    mapped = torch.einsum("nij,pj->npi", homographies, points)
    xy = mapped[..., :2] / mapped[..., 2:3]
    grid = torch.stack([2 * xy[..., 0] / (sw - 1) - 1, 2 * xy[..., 1] / (sh - 1) - 1], -1)
    grid = grid.view(-1, h, w, 2).float()
    batch = scene.unsqueeze(0).expand(len(homographies), -1, -1, -1)
    return F.grid_sample(
        batch, grid, mode="bicubic", padding_mode="reflection", align_corners=True
    ).clamp_min(0.0)


def _camera_blur(hom: Tensor, out_hw: tuple[int, int]) -> Tensor:
    """``(h, w)``: the path (px) that the scene point seen at each pixel in the middle of the
    fine steps whose homographies are ``hom`` ``(N, 3, 3)`` travels over them (computed every
    8 px, bilinear in between)."""
    h, w = out_hw
    gh, gw = max(2, math.ceil((h - 1) / 8) + 1), max(2, math.ceil((w - 1) / 8) + 1)
    ys, xs = torch.meshgrid(
        torch.linspace(0, h - 1, gh, dtype=torch.float64),
        torch.linspace(0, w - 1, gw, dtype=torch.float64),
        indexing="ij",
    )
    points = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(-1, 3)
    scene_points = torch.einsum("ij,pj->pi", hom[len(hom) // 2], points)
    back = torch.einsum("nij,pj->npi", torch.linalg.inv(hom), scene_points)
    xy = back[..., :2] / back[..., 2:3]
    length = (xy[1:] - xy[:-1]).norm(dim=-1).sum(0).view(1, 1, gh, gw).float()
    return F.interpolate(length, size=(h, w), mode="bilinear", align_corners=True)[0, 0]


def _object_cover(centres: Tensor, radius: int, pixels: tuple[Tensor, Tensor]) -> Tensor:
    """``(h, w)`` bool: the pixels the object (the sprite's ellipse) covers at any of
    ``centres`` ``(N, 2)``."""
    ys, xs = pixels
    cover = torch.zeros(xs.shape, dtype=torch.bool)
    for cx, cy in centres.tolist():
        cover |= (xs - cx) ** 2 + (ys - cy) ** 2 / 0.6 <= radius**2
    return cover


def _sprite(rng: np.random.Generator, sprite_photo: Tensor, radius: int) -> tuple[Tensor, Tensor]:
    """A round cut-out ``(3, 2r+1, 2r+1)`` of ``sprite_photo`` and its soft alpha."""
    side = 2 * radius + 1
    _, sh, sw = sprite_photo.shape

    def cut(corner: tuple[int, int]) -> Tensor:
        return sprite_photo[:, corner[0] : corner[0] + side, corner[1] : corner[1] + side]

    def detail(patch: Tensor) -> float:
        return float(
            (patch[:, 1:] - patch[:, :-1]).abs().mean()
            + (patch[..., 1:] - patch[..., :-1]).abs().mean()
        )

    # The most detailed of eight random cut-outs (an object the eye can follow).
    corners = [
        (int(rng.integers(0, max(1, sh - side))), int(rng.integers(0, max(1, sw - side))))
        for _ in range(8)
    ]
    patch = max((cut(c) for c in corners), key=detail)
    yy, xx = torch.meshgrid(torch.arange(side) - radius, torch.arange(side) - radius, indexing="ij")
    r = (xx.float() ** 2 + yy.float() ** 2 / 0.6).sqrt()
    alpha = ((radius - r) / 2.0).clamp(0.0, 1.0)
    return patch, alpha.unsqueeze(0)


def _place(
    canvas: Tensor, sprite: Tensor, alpha: Tensor, centre: Tensor, pixels: tuple[Tensor, Tensor]
) -> Tensor:
    """Composite ``sprite`` over ``canvas`` ``(3, h, w)`` at a sub-pixel ``centre`` (x, y)."""
    ys, xs = pixels
    side = sprite.shape[-1]
    radius = side // 2
    gx = (xs - float(centre[0]) + radius) / (side - 1) * 2 - 1
    gy = (ys - float(centre[1]) + radius) / (side - 1) * 2 - 1
    grid = torch.stack([gx, gy], -1).unsqueeze(0).float()
    both = torch.cat([sprite, alpha]).unsqueeze(0)
    moved = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    a = moved[3:].clamp(0.0, 1.0)
    return canvas * (1 - a) + moved[:3] * a


def _encode_h264(frames: Tensor, crf: int) -> Tensor:
    """``(T, 3, H, W)`` in ``[0, 1]`` through libx264 (yuv420p, C code) and
    ``ttblur.load_video``: what a user's phone file would be. Not ``ttblur.save_video``: a
    camera's encoder is not ttblur's writer, and x264's C code (``asm=0``, one thread) gives
    the same bits on every CPU (its SIMD code did not: docs/results.md, twenty-first session)."""
    import av

    import ttblur

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libx264", rate=Fraction(30))
            stream.width, stream.height = frames.shape[-1], frames.shape[-2]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "medium", "x264-params": "asm=0"}
            stream.thread_count = 1
            for frame in frames:
                rgb = (frame.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        decoded = ttblur.load_video(path)
    return decoded.float()


def _scene_scale(photo: Tensor, size: tuple[int, int]) -> Tensor:
    """The photo in linear light ``(3, sh, sw)``, enlarged to at least 1.8x the frame."""
    img = photo.float()
    scale = max(1.0, 1.8 * size[0] / img.shape[-2], 1.8 * size[1] / img.shape[-1])
    if scale > 1.0:
        hw = (round(img.shape[-2] * scale), round(img.shape[-1] * scale))
        img = F.interpolate(img.unsqueeze(0), size=hw, mode="bicubic", align_corners=False)[0]
    return srgb_to_linear(img.clamp(0.0, 1.0))


#: Per kind: the tone curve, the H.264 CRF (None: not compressed) and the noise (a, b) of
#: ``variance = a * x + b`` in linear light, and a brightness gain (low light).
_PROCESSING: dict[str, tuple[str, int | None, tuple[float, float], float]] = {
    "pan_h264": ("srgb", 23, (1e-4, 1e-6), 1.0),
    "handheld_pauses": ("gamma24", None, (1.5e-4, 1e-6), 1.0),
    "handheld_jerks": ("filmic", 24, (1e-4, 1e-6), 1.0),
    "rotate_zoom": ("srgb", None, (1e-4, 1e-6), 1.0),
    "moving_object": ("gamma22", None, (1e-4, 1e-6), 1.0),
    "lowlight": ("gamma22", None, (1.5e-3, 5e-5), 0.25),
    "handheld_short": ("srgb", None, (1e-4, 1e-6), 1.0),
}


def render_clip(spec: ClipSpec) -> Clip:
    """Render one clip (see the module docstring). Deterministic for a given spec."""
    if spec.kind not in KINDS:
        raise ValueError(f"unknown kind {spec.kind!r}; choose from {', '.join(KINDS)}")
    rng = np.random.default_rng(spec.seed)
    h, w = spec.size
    scene = _scene_scale(spec.photo, spec.size)
    scene_hw = (int(scene.shape[-2]), int(scene.shape[-1]))
    focal = 1.1 * w
    steps = STEPS
    path, exposure = _camera_path(spec.kind, rng, spec.frames, steps, focal, spec.size)
    tone_name, crf, (a, b), gain = _PROCESSING[spec.kind]
    tone = tone_curve(tone_name)
    sprite = alpha = None
    radius = int(0.22 * min(h, w))
    if path.object_xy is not None:
        source = spec.sprite if spec.sprite is not None else spec.photo
        sprite_photo = _scene_scale(source, spec.size)
        sprite, alpha = _sprite(rng, sprite_photo, radius=radius)
    noise = torch.Generator().manual_seed(spec.seed)
    blurry, sharp, magnitude = [], [], []
    span = round(exposure * steps)
    pixels = _pixels(h, w)
    for k in range(spec.frames):
        lo, hi = k * steps, k * steps + max(span, 1)
        # Every fine step of the exposure, then the instant of the ground truth.
        index = torch.cat([torch.arange(lo, hi + 1), torch.tensor([k * steps + span // 2])])
        hom = _homographies(path, index, focal, spec.size, scene_hw)
        blur = _camera_blur(hom[:-1], spec.size)
        if path.object_xy is not None:
            step = path.object_xy[lo + 1 : hi + 1] - path.object_xy[lo:hi]
            cover = _object_cover(path.object_xy[lo : hi + 1], radius, pixels)
            blur = torch.where(cover, blur.clamp_min(float(step.norm(dim=-1).sum())), blur)
        magnitude.append(blur if span > 0 else torch.zeros_like(blur))
        frames_lin = _warp(scene, hom, pixels)
        if sprite is not None and alpha is not None and path.object_xy is not None:
            frames_lin = torch.stack(
                [
                    _place(f, sprite, alpha, path.object_xy[int(i)], pixels)
                    for f, i in zip(frames_lin, index, strict=True)
                ]
            )
        exposed = frames_lin[:-1].mean(0) * gain
        instant = frames_lin[-1] * gain
        exposed = exposed + (a * exposed + b).sqrt() * torch.randn(exposed.shape, generator=noise)
        # Low light: the camera lifts the dark exposure back up (noise and all).
        blurry.append(tone(exposed / gain))
        sharp.append(tone(instant / gain))
    blurry_t = (torch.stack(blurry) * 255).round() / 255
    sharp_t = (torch.stack(sharp) * 255).round() / 255
    if crf is not None:
        blurry_t = _encode_h264(blurry_t, crf)
    return Clip(
        blurry_t.float(), sharp_t.float(), torch.stack(magnitude)[:, None], exposure, tone_name, crf
    )
