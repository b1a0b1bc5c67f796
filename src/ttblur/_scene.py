"""Rendering engine of :mod:`ttblur.scenarios`: camera paths, moving objects, rolling shutter.

A scene is a photo placed on a canvas, seen by a camera whose image-space pose is
``(theta(t), s(t), d(t))`` (roll, zoom, translation; the same convention as
:mod:`ttblur.synth`: the canvas point ``X`` is seen at the centred pixel
``p = R(-theta)(X - c0 + d) / s``), plus optional textured objects moving in frame coordinates
in front of it. Every motion is a piecewise-linear *velocity* in time, so poses are exact
closed-form integrals. Each frame integrates sub-frames in linear light; with a rolling shutter
row ``y`` is exposed ``(y - (H - 1) / 2) * readout / H`` seconds after the frame centre.
Ground truth (flow, magnitude, motion) follows the scene point seen at each pixel of the sharp
(mid-exposure) frame along the same closed-form motion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "TONE_CURVES",
    "CameraPath",
    "MovingObject",
    "PiecewiseLinear",
    "Rendered",
    "affine_field",
    "path_length",
    "render_scene",
    "tone_decode",
    "tone_encode",
]

#: Canvas margin around every rendered view, canvas px (interpolation support).
_MARGIN = 2.0
#: Sub-frames rendered per grid_sample call (bounds memory).
_CHUNK = 16
#: Samples per exposure used to bound the path length of the fastest pixel.
_PROBE_STEPS = 64
#: Rows probed for the path length bound under a rolling shutter.
_PROBE_ROWS = 9
#: Fixed-point iterations for the rolling-shutter motion ground truth, and their tolerance (px).
_RS_ITERATIONS = 30
_RS_TOL = 1e-4


class PiecewiseLinear:
    """A piecewise-linear function of time with an exact integral.

    Between knots the value is interpolated linearly; two knots at the same time make a jump.
    Before the first knot and after the last one the value is constant.

    Args:
        knots: ``(K,)`` non-decreasing times, s (``K >= 1``).
        values: ``(K, D)`` values at the knots.
    """

    def __init__(self, knots: np.ndarray, values: np.ndarray) -> None:
        knots = np.asarray(knots, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if knots.ndim != 1 or knots.size < 1 or values.shape[0] != knots.size:
            raise ValueError(
                f"knots (K,) and values (K, D) mismatch: {knots.shape}, {values.shape}"
            )
        if np.any(np.diff(knots) < 0):
            raise ValueError("knots must be non-decreasing")
        self.knots, self.values = knots, values
        step = np.diff(knots)
        rise = np.diff(values, axis=0)
        slope = np.divide(rise, step[:, None], out=np.zeros_like(rise), where=step[:, None] > 0)
        self._slope = np.concatenate([slope, np.zeros((1, values.shape[1]))])
        area = 0.5 * (values[1:] + values[:-1]) * step[:, None]
        self._cum = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(area, axis=0)])

    @classmethod
    def constant(cls, value: Sequence[float] | np.ndarray | float) -> PiecewiseLinear:
        """A constant function (one knot at ``t = 0``)."""
        return cls(np.zeros(1), np.atleast_1d(np.asarray(value, dtype=np.float64))[None])

    def _segment(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        j = np.searchsorted(self.knots, t, side="right") - 1
        before = j < 0
        jc = np.clip(j, 0, self.knots.size - 1)
        return jc, np.where(before, 0.0, t - self.knots[jc]), before

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        """Value at ``t`` (any shape): ``(..., D)``."""
        t = np.asarray(t, dtype=np.float64)
        jc, dt, before = self._segment(t)
        out = self.values[jc] + self._slope[jc] * dt[..., None]
        return np.where(before[..., None], self.values[0], out)

    def integral(self, t: np.ndarray | float) -> np.ndarray:
        """Integral from the first knot to ``t`` (negative before it): ``(..., D)``."""
        t = np.asarray(t, dtype=np.float64)
        jc, dt, before = self._segment(t)
        d = dt[..., None]
        out = self._cum[jc] + self.values[jc] * d + 0.5 * self._slope[jc] * d * d
        return np.where(before[..., None], self.values[0] * (t - self.knots[0])[..., None], out)

    @property
    def is_zero(self) -> bool:
        return bool(np.all(self.values == 0.0))


def _rotation(angle: np.ndarray) -> np.ndarray:
    """``(..., 2, 2)`` rotation matrices."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([c, -s], axis=-1), np.stack([s, c], axis=-1)], axis=-2)


@dataclass(frozen=True)
class CameraPath:
    """Image-space camera motion: velocities of translation (px/s, 2-D), roll (rad/s) and
    log-zoom (1/s), each a :class:`PiecewiseLinear` of time in seconds."""

    velocity: PiecewiseLinear
    spin: PiecewiseLinear
    zoom_rate: PiecewiseLinear

    @classmethod
    def still(cls) -> CameraPath:
        return cls(
            PiecewiseLinear.constant([0.0, 0.0]),
            PiecewiseLinear.constant(0.0),
            PiecewiseLinear.constant(0.0),
        )

    @property
    def is_still(self) -> bool:
        return self.velocity.is_zero and self.spin.is_zero and self.zoom_rate.is_zero

    def pose(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Roll ``theta`` (rad), zoom ``s`` and translation ``d`` ``(..., 2)`` px at ``t``."""
        theta = self.spin.integral(t)[..., 0]
        scale = np.exp(self.zoom_rate.integral(t)[..., 0])
        return theta, scale, self.velocity.integral(t)

    def relative(
        self, t_ref: np.ndarray | float, t: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Affine map ``u(t) = M p + b`` of the point seen at centred pixel ``p`` at ``t_ref``
        (``t_ref`` and ``t`` broadcast): ``M`` ``(..., 2, 2)``, ``b`` ``(..., 2)``."""
        th_r, s_r, d_r = self.pose(t_ref)
        th_t, s_t, d_t = self.pose(t)
        m = _rotation(th_r - th_t) * (s_r / s_t)[..., None, None]
        b = np.einsum("...ij,...j->...i", _rotation(-th_t), d_t - d_r) / s_t[..., None]
        return m, b


@dataclass(frozen=True)
class MovingObject:
    """A textured object moving in front of the background, in centred frame coordinates.

    Attributes:
        texture: ``(4, h, w)`` float32: linear-light RGB premultiplied by alpha, then alpha.
        velocity: 2-D velocity of the object's centre, px/s.
        spin: angular velocity of the object, rad/s.
        origin: ``(x, y)`` centre position (centred px) at the velocity's first knot.
    """

    texture: Tensor
    velocity: PiecewiseLinear
    spin: PiecewiseLinear
    origin: tuple[float, float]

    def pose(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Centre ``(..., 2)`` and angle ``(...)`` at ``t``."""
        return np.asarray(self.origin) + self.velocity.integral(t), self.spin.integral(t)[..., 0]

    def corners(self) -> np.ndarray:
        """``(4, 2)`` texture-box corners relative to the centre, px."""
        h, w = self.texture.shape[-2:]
        hx, hy = (w - 1) / 2.0, (h - 1) / 2.0
        return np.array([[-hx, -hy], [hx, -hy], [-hx, hy], [hx, hy]])


@dataclass(frozen=True)
class Rendered:
    """Linear-light frames and exact ground truth of one rendered scene (see module doc)."""

    blurry_lin: Tensor  # (T, 3, H, W)
    sharp_lin: Tensor  # (T, 3, H, W)
    flow: Tensor  # (T, 2, H, W)
    magnitude: Tensor  # (T, 1, H, W)
    motion: Tensor  # (T - 1, 2, H, W)
    object_id: Tensor  # (T, 1, H, W) uint8: 1 + index of the object a pixel shows, 0 = none
    num_subframes: tuple[int, ...]
    photo_scale: float


def subframe_count(path_px: float, max_step_px: float, lo: int, hi: int) -> int:
    """Odd sub-frame count in ``[lo, hi]`` keeping sub-frames ``<= max_step_px`` apart.

    The count is odd so that the middle sub-frame is the sharp frame. It is the smallest odd
    number ``>= path_px / max_step_px`` and ``>= lo``, capped at the largest odd number
    ``<= hi``.

    Raises:
        ValueError: if ``[lo, hi]`` holds no odd number (``lo == hi``, even).
    """
    check_subframe_range(lo, hi)
    n = min(max(lo, math.ceil(path_px / max_step_px)), hi)
    if n % 2 == 1:
        return n
    return n + 1 if n + 1 <= hi else n - 1


def check_subframe_range(lo: int, hi: int) -> None:
    """Refuse sub-frame limits that admit no odd count (the one rule for them)."""
    if lo < 1 or hi < lo:
        raise ValueError(
            f"max_subframes ({hi}) must be >= min_subframes ({lo}), and min_subframes >= 1"
        )
    if lo == hi and lo % 2 == 0:
        raise ValueError(
            f"min_subframes = max_subframes = {lo} admits no odd sub-frame count; sub-frame "
            "counts are odd (the middle sub-frame is the sharp frame): use an odd number"
        )


def _path(points: np.ndarray) -> float:
    """Longest polyline among ``(steps, P, 2)`` trajectories."""
    return float(np.linalg.norm(np.diff(points, axis=0), axis=-1).sum(axis=0).max(initial=0.0))


def render_scene(
    background: Tensor,
    camera: CameraPath,
    objects: Sequence[MovingObject],
    *,
    centres: np.ndarray,
    exposure_s: float,
    readout_s: float,
    size: tuple[int, int],
    placement: tuple[float, float],
    max_step_px: float = 0.5,
    min_subframes: int = 5,
    max_subframes: int = 301,
    max_photo_scale: float = 4.0,
) -> Rendered:
    """Render blurry and sharp frames in linear light with exact ground truth.

    Args:
        background: ``(3, Hp, Wp)`` linear-light photo (scaled onto the canvas).
        camera: camera motion.
        objects: objects drawn over the background, bottom to top (frame coordinates;
            only with ``readout_s == 0``).
        centres: ``(T,)`` frame centre times, s.
        exposure_s: exposure time, s.
        readout_s: rolling-shutter readout time (top to bottom row), s; 0 = global shutter.
        size: ``(H, W)``.
        placement: two numbers in ``[0, 1]``: where the views lie inside the canvas slack.
    """
    h, w = size
    num = len(centres)
    e = float(exposure_s)
    if objects and readout_s > 0:
        raise ValueError("moving objects are rendered with a global shutter only")
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    xs_np, ys_np = np.arange(w) - cx, np.arange(h) - cy
    rolling = readout_s > 0
    row_offset = ys_np * (readout_s / h) if rolling else np.zeros(1)  # (Hr,)

    # Sub-frame counts: bound the longest path of any pixel over each exposure.
    if rolling:
        probe_rows = np.unique(np.linspace(0, h - 1, _PROBE_ROWS).round().astype(int))
        probe_pts = np.array([[sx * cx, ys_np[r]] for r in probe_rows for sx in (-1.0, 1.0)])
        probe_off = np.repeat(row_offset[probe_rows], 2)
    else:
        probe_pts = np.array([[-cx, -cy], [cx, -cy], [-cx, cy], [cx, cy]])
        probe_off = np.zeros(4)
    frac = np.linspace(-0.5, 0.5, _PROBE_STEPS + 1)[:, None]
    counts: list[int] = []
    for c in centres:
        ref = c + probe_off[None, :]
        m, b = camera.relative(ref, ref + frac * e)
        path = _path(np.einsum("kpij,pj->kpi", m, probe_pts) + b)
        for obj in objects:
            times = c + frac[:, 0] * e
            centre, angle = obj.pose(times)
            pts = centre[:, None, :] + np.einsum("kij,pj->kpi", _rotation(angle), obj.corners())
            path = max(path, _path(pts))
        counts.append(subframe_count(path, max_step_px, min_subframes, max_subframes))
    sub_times = [
        c - e / 2.0 + (np.arange(n) + 0.5)[:, None] * (e / n) + row_offset[None, :]
        for c, n in zip(centres, counts)
    ]  # each (n, Hr)

    # Canvas: bounding box of every view (row end points under a rolling shutter).
    if camera.is_still:
        x_min, x_max, y_min, y_max = -cx, cx, -cy, cy
    else:
        all_t = np.concatenate(sub_times)
        theta, scale, shift = camera.pose(all_t)
        if rolling:
            pts = np.stack(np.broadcast_arrays(np.array([-cx, cx])[:, None], ys_np[None, :]), -1)
            pts = pts[None]  # (1, 2, H, 2): both ends of every row
            theta, scale, shift = theta[:, None], scale[:, None], shift[:, None]
        else:
            pts = np.array([[-cx, -cy], [cx, -cy], [-cx, cy], [cx, cy]])[None, :, None]
            theta, scale, shift = theta[:, None], scale[:, None], shift[:, None]
        ca, sa = np.cos(theta), np.sin(theta)
        vx = -shift[..., 0] + scale * (ca * pts[..., 0] - sa * pts[..., 1])
        vy = -shift[..., 1] + scale * (sa * pts[..., 0] + ca * pts[..., 1])
        x_min, x_max, y_min, y_max = vx.min(), vx.max(), vy.min(), vy.max()
    need_w = float(x_max - x_min) + 1.0 + 2.0 * _MARGIN
    need_h = float(y_max - y_min) + 1.0 + 2.0 * _MARGIN
    photo_h, photo_w = background.shape[-2:]
    k = max(need_w / photo_w, need_h / photo_h)
    if k <= max_photo_scale:
        canvas_w = max(math.ceil(photo_w * k - 1e-6), math.ceil(need_w))
        canvas_h = max(math.ceil(photo_h * k - 1e-6), math.ceil(need_h))
        c0x = _MARGIN - x_min + placement[0] * (canvas_w - need_w)
        c0y = _MARGIN - y_min + placement[1] * (canvas_h - need_h)
    else:
        canvas_w = math.ceil(photo_w * max_photo_scale)
        canvas_h = math.ceil(photo_h * max_photo_scale)
        c0x = (canvas_w - 1) / 2.0 - (x_min + x_max) / 2.0
        c0y = (canvas_h - 1) / 2.0 - (y_min + y_max) / 2.0
    canvas = F.interpolate(
        background[None], size=(canvas_h, canvas_w), mode="bicubic", antialias=True
    ).clamp_min(0.0)
    gx, gy = 2.0 / max(canvas_w - 1, 1), 2.0 / max(canvas_h - 1, 1)

    xs, ys = torch.from_numpy(xs_np).float(), torch.from_numpy(ys_np).float()
    xrow, ycol = xs.view(1, 1, w), ys.view(1, h, 1)
    blurry = torch.empty(num, 3, h, w)
    sharp = torch.empty(num, 3, h, w)
    obj_id = torch.zeros(num, 1, h, w, dtype=torch.uint8)
    sharp_alpha: list[list[Tensor]] = []
    static_bg: Tensor | None = None
    if camera.is_still:
        grid = torch.stack(
            [((c0x + xrow) * gx - 1.0).expand(1, h, w), ((c0y + ycol) * gy - 1.0).expand(1, h, w)],
            dim=-1,
        )
        static_bg = F.grid_sample(canvas, grid, mode="bilinear", align_corners=True)[0]
    for t, (n, times) in enumerate(zip(counts, sub_times)):
        total = torch.zeros(3, h, w)
        mid = (n - 1) // 2
        alphas = [torch.zeros(h, w) for _ in objects]
        for j0 in range(0, n, _CHUNK):
            j1 = min(n, j0 + _CHUNK)
            box = _objects_box(objects, times[j0:j1, 0], cx, cy, h, w)
            if static_bg is not None:
                total += static_bg * float(j1 - j0)
                if j0 <= mid < j1:
                    sharp[t] = static_bg
                if box is None:
                    continue
                y0, y1, x0, x1 = box
                under = static_bg[:, None, y0:y1, x0:x1].expand(3, j1 - j0, y1 - y0, x1 - x0)
            else:
                theta, scale, shift = camera.pose(times[j0:j1])  # (m, Hr)
                a = torch.from_numpy(scale * np.cos(theta)).float()[..., None]
                bb = torch.from_numpy(scale * np.sin(theta)).float()[..., None]
                ox = torch.from_numpy((c0x - shift[..., 0]) * gx - 1.0).float()[..., None]
                oy = torch.from_numpy((c0y - shift[..., 1]) * gy - 1.0).float()[..., None]
                grid = torch.stack(
                    [
                        (a * gx) * xrow + (ox - (bb * gx) * ycol),
                        (bb * gy) * xrow + (oy + (a * gy) * ycol),
                    ],
                    dim=-1,
                )
                layer = F.grid_sample(
                    canvas,
                    grid.view(1, (j1 - j0) * h, w, 2),
                    mode="bilinear",
                    padding_mode="reflection",
                    align_corners=True,
                ).view(3, j1 - j0, h, w)
                total += layer.sum(dim=1)
                if j0 <= mid < j1:
                    sharp[t] = layer[:, mid - j0]
                if box is None:
                    continue
                y0, y1, x0, x1 = box
                under = layer[:, :, y0:y1, x0:x1]
            over = under
            for i, obj in enumerate(objects):
                rgba = _sample_object(obj, times[j0:j1, 0], xrow[..., x0:x1], ycol[:, y0:y1])
                over = rgba[:3] + (1.0 - rgba[3:]) * over
                if j0 <= mid < j1:
                    alphas[i][y0:y1, x0:x1] = rgba[3, mid - j0]
            total[:, y0:y1, x0:x1] += (over - under).sum(dim=1)
            if j0 <= mid < j1:
                sharp[t, :, y0:y1, x0:x1] = over[:, mid - j0]
        blurry[t] = total / n
        sharp_alpha.append(alphas)

    flow = torch.empty(num, 2, h, w)
    magnitude = torch.empty(num, 1, h, w)
    for t, (c, n) in enumerate(zip(centres, counts)):
        ref = c + row_offset  # (Hr,)
        steps = ref[None, :] - e / 2.0 + (np.arange(n + 1) * (e / n))[:, None]  # (n + 1, Hr)
        m, b = camera.relative(ref[None, :], steps)
        flow[t] = affine_field(m[-1] - m[0], b[-1] - b[0], xs, ys)
        magnitude[t, 0] = path_length(np.diff(m, axis=0), np.diff(b, axis=0), xs, ys)
        for k, (obj, alpha) in enumerate(zip(objects, sharp_alpha[t])):
            inside = alpha >= 0.5
            if not bool(inside.any()):
                continue
            ofl, omag, _ = _object_truth(obj, c + (np.arange(n + 1) / n - 0.5) * e, c, xs, ys)
            flow[t] = torch.where(inside, ofl, flow[t])
            magnitude[t, 0] = torch.where(inside, omag, magnitude[t, 0])
            obj_id[t, 0][inside] = k + 1

    motion = torch.empty(max(num - 1, 0), 2, h, w)
    for t in range(num - 1):
        if rolling:
            motion[t] = _rolling_motion(camera, centres[t], centres[t + 1], readout_s, xs_np, ys_np)
        else:
            m, b = camera.relative(centres[t], np.array([centres[t + 1]]))
            motion[t] = affine_field(m[0] - np.eye(2), b[0], xs, ys)
        for obj, alpha in zip(objects, sharp_alpha[t]):
            inside = alpha >= 0.5
            if bool(inside.any()):
                _, _, pos = _object_truth(obj, np.array([centres[t + 1]]), centres[t], xs, ys)
                grid_p = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)])
                motion[t] = torch.where(inside, pos - grid_p, motion[t])

    return Rendered(
        blurry_lin=blurry,
        sharp_lin=sharp,
        flow=flow,
        magnitude=magnitude,
        motion=motion,
        object_id=obj_id,
        num_subframes=tuple(counts),
        photo_scale=float(canvas_w / photo_w),
    )


def _objects_box(
    objects: Sequence[MovingObject], times: np.ndarray, cx: float, cy: float, h: int, w: int
) -> tuple[int, int, int, int] | None:
    """Pixel box ``(y0, y1, x0, x1)`` holding every object at every time, or None."""
    if not objects:
        return None
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for obj in objects:
        centre, _ = obj.pose(times)
        reach = float(np.linalg.norm(obj.corners()[0])) + 2.0
        lo = np.minimum(lo, centre.min(axis=0) - reach)
        hi = np.maximum(hi, centre.max(axis=0) + reach)
    x0, x1 = max(0, math.floor(lo[0] + cx)), min(w, math.ceil(hi[0] + cx) + 1)
    y0, y1 = max(0, math.floor(lo[1] + cy)), min(h, math.ceil(hi[1] + cy) + 1)
    return (y0, y1, x0, x1) if x0 < x1 and y0 < y1 else None


def _sample_object(obj: MovingObject, times: np.ndarray, xrow: Tensor, ycol: Tensor) -> Tensor:
    """``(4, m, H, W)`` premultiplied RGBA of the object at ``m`` times (zero outside it)."""
    centre, angle = obj.pose(times)
    th, tw = obj.texture.shape[-2:]
    ca = torch.from_numpy(np.cos(angle)).float().view(-1, 1, 1)
    sa = torch.from_numpy(np.sin(angle)).float().view(-1, 1, 1)
    dx = xrow - torch.from_numpy(centre[:, 0]).float().view(-1, 1, 1)
    dy = ycol - torch.from_numpy(centre[:, 1]).float().view(-1, 1, 1)
    qx = (ca * dx + sa * dy + (tw - 1) / 2.0) * (2.0 / (tw - 1)) - 1.0
    qy = (-sa * dx + ca * dy + (th - 1) / 2.0) * (2.0 / (th - 1)) - 1.0
    m, h, w = qx.shape
    grid = torch.stack([qx, qy], dim=-1).view(1, m * h, w, 2)
    out = F.grid_sample(
        obj.texture[None], grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return out.view(4, m, h, w)


def _object_truth(
    obj: MovingObject, times: np.ndarray, t_ref: float, xs: Tensor, ys: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """For the object point at each pixel at ``t_ref``: flow (first to last of ``times``)
    ``(2, H, W)``, path length through ``times`` ``(H, W)`` and last position ``(2, H, W)``."""
    centre_r, angle_r = obj.pose(np.array([t_ref]))
    centre, angle = obj.pose(times)
    rel = _rotation(angle - angle_r[0])  # (K, 2, 2)
    # u(t) = c(t) + R(a(t) - a_ref)(p - c_ref) = R p + (c(t) - R c_ref)
    offset = centre - np.einsum("kij,j->ki", rel, centre_r[0])
    first = affine_field(rel[0], offset[0], xs, ys)
    last = affine_field(rel[-1], offset[-1], xs, ys)
    path = path_length(np.diff(rel, axis=0)[:, None], np.diff(offset, axis=0)[:, None], xs, ys)
    return last - first, path, last


def _rolling_motion(
    camera: CameraPath, c0: float, c1: float, readout_s: float, xs: np.ndarray, ys: np.ndarray
) -> Tensor:
    """``(2, H, W)``: where the point seen at ``p`` in rolling-shutter sharp frame ``c0`` is in
    sharp frame ``c1``, whose row ``y`` is seen at ``c1 + y * readout / H`` (fixed point)."""
    h, w = ys.size, xs.size
    px, py = np.broadcast_to(xs[None, :], (h, w)), np.broadcast_to(ys[:, None], (h, w))
    th_r, s_r, d_r = camera.pose(c0 + py * (readout_s / h))
    qx, qy = px.copy(), py.copy()
    for _ in range(_RS_ITERATIONS):
        th_t, s_t, d_t = camera.pose(c1 + qy * (readout_s / h))
        # u = (s_r / s_t) R(th_r - th_t) p + R(-th_t)(d_t - d_r) / s_t
        rel, ratio = th_r - th_t, s_r / s_t
        cr, sr = np.cos(rel) * ratio, np.sin(rel) * ratio
        ct, st = np.cos(th_t) / s_t, np.sin(th_t) / s_t
        dx, dy = d_t[..., 0] - d_r[..., 0], d_t[..., 1] - d_r[..., 1]
        nx = cr * px - sr * py + ct * dx + st * dy
        ny = sr * px + cr * py - st * dx + ct * dy
        change = max(float(np.abs(nx - qx).max()), float(np.abs(ny - qy).max()))
        qx, qy = nx, ny
        if change < _RS_TOL:
            break
    return torch.from_numpy(np.stack([qx - px, qy - py])).float()


def affine_field(m: np.ndarray, b: np.ndarray, xs: Tensor, ys: Tensor) -> Tensor:
    """``(2, H, W)`` field ``m @ p + b`` over the centred pixel grid ``p = (xs[x], ys[y])``;
    ``m`` ``(2, 2)`` or per row ``(H, 2, 2)``, ``b`` ``(2,)`` or ``(H, 2)``."""
    mt = torch.from_numpy(np.asarray(m, dtype=np.float64)).float()
    bt = torch.from_numpy(np.asarray(b, dtype=np.float64)).float()
    if mt.ndim == 2:
        mt, bt = mt[None], bt[None]
    x, y = xs.view(1, -1), ys.view(-1, 1)
    m00, m01 = mt[:, 0, 0].view(-1, 1), mt[:, 0, 1].view(-1, 1)
    m10, m11 = mt[:, 1, 0].view(-1, 1), mt[:, 1, 1].view(-1, 1)
    fx = m00 * x + (m01 * y + bt[:, 0].view(-1, 1))
    fy = m10 * x + (m11 * y + bt[:, 1].view(-1, 1))
    return torch.stack([fx, fy])


def path_length(dm: np.ndarray, db: np.ndarray, xs: Tensor, ys: Tensor) -> Tensor:
    """``(H, W)`` sum over sub-steps ``k`` of ``|dm_k p + db_k|`` over the centred grid
    ``p = (xs[x], ys[y])``; ``dm`` ``(K, 2, 2)`` or per row ``(K, Hr, 2, 2)`` (``Hr`` 1 or
    ``H``), ``db`` ``(K, 2)`` or ``(K, Hr, 2)``. A pure translation is summed exactly."""
    h, w = ys.numel(), xs.numel()
    reach = max(float(xs.abs().max()), float(ys.abs().max()), 1.0)
    if np.abs(dm).max(initial=0.0) * reach < 1e-9 and db.ndim == 2:
        return torch.full((h, w), float(np.linalg.norm(db, axis=-1).sum()))
    if dm.ndim == 3:
        dm, db = dm[:, None], db[:, None]
    dmt, dbt = torch.from_numpy(dm).float(), torch.from_numpy(db).float()
    x, y = xs.view(1, 1, w), ys.view(1, h, 1)
    total = torch.zeros(h, w)
    for k0 in range(0, dm.shape[0], _CHUNK):
        mm, bv = dmt[k0 : k0 + _CHUNK, ..., None], dbt[k0 : k0 + _CHUNK, ..., None]
        dx = mm[:, :, 0, 0] * x + (mm[:, :, 0, 1] * y + bv[:, :, 0])
        dy = mm[:, :, 1, 0] * x + (mm[:, :, 1, 1] * y + bv[:, :, 1])
        total += torch.hypot(dx, dy).sum(dim=0)
    return total


# ----------------------------------------------------------------------------------------------
# tone curves: display value = encode(linear light), linear = decode(display value), exact inverses

#: Exponent of the filmic S-curve (contrast about mid-grey of the gamma-2.2 encoded value).
_FILMIC_CONTRAST = 1.6
#: Log-curve strength: ``encode(x) = log(1 + a x) / log(1 + a)``.
_LOG_STRENGTH = 64.0

TONE_CURVES: tuple[str, ...] = ("gamma2.2", "srgb", "gamma1.8", "gamma2.6", "filmic", "log")


def _s_curve(y: Tensor, c: float) -> Tensor:
    a, b = y**c, (1.0 - y) ** c
    return a / (a + b).clamp_min(1e-12)


def tone_encode(linear: Tensor, curve: str) -> Tensor:
    """Linear light in ``[0, 1]`` -> display value in ``[0, 1]`` through ``curve``."""
    x = linear.clamp(0.0, 1.0)
    if curve.startswith("gamma"):
        return x ** (1.0 / float(curve[5:]))
    if curve == "srgb":
        return torch.where(
            x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(1e-12) ** (1 / 2.4) - 0.055
        )
    if curve == "filmic":
        return _s_curve(x ** (1.0 / 2.2), _FILMIC_CONTRAST)
    if curve == "log":
        return torch.log1p(_LOG_STRENGTH * x) / math.log1p(_LOG_STRENGTH)
    raise ValueError(f"unknown tone curve {curve!r}; available: {', '.join(TONE_CURVES)}")


def tone_decode(display: Tensor, curve: str) -> Tensor:
    """Display value in ``[0, 1]`` -> linear light (the inverse of :func:`tone_encode`)."""
    y = display.clamp(0.0, 1.0)
    if curve.startswith("gamma"):
        return y ** float(curve[5:])
    if curve == "srgb":
        return torch.where(y <= 0.04045, y / 12.92, ((y + 0.055) / 1.055) ** 2.4)
    if curve == "filmic":
        return _s_curve(y, 1.0 / _FILMIC_CONTRAST) ** 2.2
    if curve == "log":
        return torch.expm1(y * math.log1p(_LOG_STRENGTH)) / _LOG_STRENGTH
    raise ValueError(f"unknown tone curve {curve!r}; available: {', '.join(TONE_CURVES)}")
