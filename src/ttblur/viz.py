"""Pictures of blur conditions, flows and magnitude maps, for docs and debugging.

* :func:`condition_to_rgb`: a blur condition map as colour: the direction's angle is the hue
  (``+x`` red, ``+y`` (down) yellow-green, ``-x`` cyan, ``-y`` violet, HSV hue = angle), the
  magnitude ``z`` is the value (``z = 0`` black), full saturation.
* :func:`flow_to_rgb`: the same colour coding for a flow field in pixels.
* :func:`magnitude_to_heatmap`: a magnitude map in pixels through a perceptual colormap
  (matplotlib's *inferno*, approximated by linear interpolation of 11 anchor colours).
* :func:`save_png`: write an RGB ``uint8`` image with OpenCV.

Drawing helpers used by the visual adaptation report (:mod:`ttblur.report`), OpenCV only:

* :func:`to_rgb8`: a ``(3, H, W)`` tensor / ``(H, W, 3)`` array to ``uint8`` RGB;
* :func:`draw_boxes`: rectangles (patch boxes) on an image;
* :func:`fit_width`, :func:`add_caption`, :func:`grid`, :func:`hstack`: resizing, captions
  and contact sheets;
* :func:`line_chart`: a small line chart (loss curves) with axes, ticks, dashed reference lines
  and a legend;
* :func:`colorbar`: the legend of :func:`magnitude_to_heatmap`;
* :func:`direction_wheel`: the legend of :func:`condition_to_rgb`.

All functions take torch tensors or numpy arrays and return numpy ``uint8`` arrays with the
colour last, ready for :func:`save_png`. Text is drawn with OpenCV's Hershey font (ASCII).

Example:
    >>> import torch
    >>> from ttblur.viz import condition_to_rgb
    >>> cond = torch.zeros(3, 4, 4)
    >>> cond[0], cond[2] = 1.0, 1.0          # +x, full magnitude
    >>> condition_to_rgb(cond)[0, 0].tolist()
    [255, 0, 0]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from ttblur.atomic import atomic_path

__all__ = [
    "INFERNO_ANCHORS",
    "PALETTE",
    "add_caption",
    "colorbar",
    "condition_to_rgb",
    "direction_wheel",
    "draw_boxes",
    "fit_width",
    "flow_to_rgb",
    "grid",
    "hstack",
    "hsv_to_rgb",
    "line_chart",
    "magnitude_to_heatmap",
    "save_png",
    "to_rgb8",
]

#: Anchor colours (RGB, 0-255) of matplotlib's *inferno* colormap at 0, 0.1, ..., 1.
INFERNO_ANCHORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 4),
    (22, 11, 57),
    (66, 10, 104),
    (106, 23, 110),
    (147, 38, 103),
    (188, 55, 84),
    (221, 81, 58),
    (243, 120, 25),
    (252, 165, 10),
    (246, 215, 70),
    (252, 255, 164),
)
_TOL = 1e-4


def _as_numpy(x: object, name: str) -> NDArray[np.float64]:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    arr = x.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def hsv_to_rgb(
    hue: NDArray[np.float64], saturation: NDArray[np.float64], value: NDArray[np.float64]
) -> NDArray[np.uint8]:
    """Convert HSV to 8-bit RGB (the standard hexcone model).

    Args:
        hue: angles in degrees, any real values (taken modulo 360).
        saturation: in ``[0, 1]``, broadcastable with ``hue``.
        value: in ``[0, 1]``, broadcastable with ``hue``.

    Returns:
        ``(..., 3)`` uint8 RGB.
    """
    h = np.mod(np.asarray(hue, dtype=np.float64), 360.0) / 60.0
    s = np.clip(np.asarray(saturation, dtype=np.float64), 0.0, 1.0)
    v = np.clip(np.asarray(value, dtype=np.float64), 0.0, 1.0)
    h, s, v = np.broadcast_arrays(h, s, v)
    chroma = v * s
    x = chroma * (1.0 - np.abs(np.mod(h, 2.0) - 1.0))
    zero = np.zeros_like(h)
    sector = np.floor(h).astype(np.int64) % 6
    r = np.choose(sector, [chroma, x, zero, zero, x, chroma])
    g = np.choose(sector, [x, chroma, chroma, x, zero, zero])
    b = np.choose(sector, [zero, zero, x, chroma, chroma, x])
    m = v - chroma
    rgb = np.stack([r + m, g + m, b + m], axis=-1)
    return np.round(rgb * 255.0).astype(np.uint8)


def _direction_hue(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.mod(np.degrees(np.arctan2(y, x)), 360.0)


def condition_to_rgb(condition: torch.Tensor | NDArray[np.floating]) -> NDArray[np.uint8]:
    """Colour picture of blur condition maps.

    Args:
        condition: ``(N, 3, h, w)`` or ``(3, h, w)``: channels x, y = blur direction (only its
            angle is used), z = magnitude in ``[0, 1]``.

    Returns:
        ``(N, h, w, 3)`` or ``(h, w, 3)`` uint8 RGB: hue = direction angle
        ``atan2(y, x)`` in degrees (``+x`` red), saturation 1, value = ``z``.

    Raises:
        ValueError: wrong rank / channels, NaN/inf, or ``z`` outside ``[0, 1]``.
    """
    arr = _as_numpy(condition, "condition")
    if arr.ndim not in (3, 4) or arr.shape[-3] != 3:
        raise ValueError(f"condition must be (N, 3, h, w) or (3, h, w), got {arr.shape}")
    x, y, z = arr[..., 0, :, :], arr[..., 1, :, :], arr[..., 2, :, :]
    if z.size and (z.min() < -_TOL or z.max() > 1 + _TOL):
        raise ValueError(
            f"condition channel z must be in [0, 1], got values in [{z.min():.4g}, {z.max():.4g}]"
        )
    return hsv_to_rgb(_direction_hue(x, y), np.ones_like(z), z)


def flow_to_rgb(
    flow: torch.Tensor | NDArray[np.floating], max_norm: float | None = None
) -> NDArray[np.uint8]:
    """Colour picture of flow fields (same coding as :func:`condition_to_rgb`).

    Args:
        flow: ``(N, 2, H, W)`` or ``(2, H, W)`` in pixels.
        max_norm: flow length in px shown at full brightness; ``None``: the largest length in
            ``flow`` (1 if the flow is zero everywhere).

    Returns:
        ``(N, H, W, 3)`` or ``(H, W, 3)`` uint8 RGB: hue = direction, value = length / max_norm
        (clipped to 1).
    """
    arr = _as_numpy(flow, "flow")
    if arr.ndim not in (3, 4) or arr.shape[-3] != 2:
        raise ValueError(f"flow must be (N, 2, H, W) or (2, H, W), got {arr.shape}")
    u, v = arr[..., 0, :, :], arr[..., 1, :, :]
    length = np.hypot(u, v)
    if max_norm is None:
        peak = float(length.max()) if length.size else 0.0
        max_norm = peak if peak > 0 else 1.0
    if not (np.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"max_norm must be a finite number > 0, got {max_norm}")
    return hsv_to_rgb(_direction_hue(u, v), np.ones_like(length), length / max_norm)


def magnitude_to_heatmap(
    magnitude: torch.Tensor | NDArray[np.floating], vmax: float | None = None
) -> NDArray[np.uint8]:
    """Heat map of blur magnitude maps through an *inferno*-like colormap.

    Args:
        magnitude: ``(..., 1, H, W)`` in pixels, ``>= 0`` (e.g. ``(T, 1, H, W)``).
        vmax: magnitude in px shown as the brightest colour; ``None``: the maximum of
            ``magnitude`` (1 if it is zero everywhere). Values above are clipped.

    Returns:
        ``(..., H, W, 3)`` uint8 RGB; 0 px is near-black, ``vmax`` is pale yellow.

    Raises:
        ValueError: wrong shape, NaN/inf, negative values or ``vmax <= 0``.
    """
    arr = _as_numpy(magnitude, "magnitude")
    if arr.ndim < 3 or arr.shape[-3] != 1:
        raise ValueError(f"magnitude must be (..., 1, H, W), got {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"magnitude must be >= 0 px, got minimum {arr.min():.4g}")
    if vmax is None:
        peak = float(arr.max()) if arr.size else 0.0
        vmax = peak if peak > 0 else 1.0
    if not (np.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax must be a finite number > 0, got {vmax}")
    t = np.clip(arr[..., 0, :, :] / vmax, 0.0, 1.0)
    anchors = np.asarray(INFERNO_ANCHORS, dtype=np.float64)
    stops = np.linspace(0.0, 1.0, len(anchors))
    channels = [np.interp(t, stops, anchors[:, c]) for c in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def save_png(array: torch.Tensor | NDArray[np.uint8], path: str | Path) -> Path:
    """Write an image as PNG with OpenCV (RGB is converted to OpenCV's BGR order).

    Args:
        array: ``(H, W, 3)`` RGB or ``(H, W)`` grey, ``uint8`` (as returned by this module),
            or floating point in ``[0, 1]`` (scaled by 255 and rounded).
        path: output file; its folder must exist. Written atomically
            (:func:`ttblur.atomic.atomic_path`).

    Returns:
        The path written.

    Raises:
        ValueError: wrong shape, dtype or value range.
        FileNotFoundError: the folder does not exist.
        OSError: OpenCV could not write the file.
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    if not isinstance(array, np.ndarray):
        raise ValueError(f"array must be a numpy.ndarray or torch.Tensor, got {type(array)}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(f"array must be (H, W, 3) RGB or (H, W) grey, got {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"array must be uint8 or float in [0, 1], got dtype {array.dtype}")
        if not np.isfinite(array).all() or array.min() < -_TOL or array.max() > 1 + _TOL:
            raise ValueError("a float array must be finite and in [0, 1]")
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    out = Path(path)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"folder {out.parent} does not exist")
    image = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    with atomic_path(out) as tmp:  # an earlier file of that name stays whole until replaced
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(image)):
            raise OSError(f"OpenCV could not write {out} (is the extension .png?)")
    return out


# --------------------------------------------------------------------------------------------
# drawing helpers (report pictures)

#: Line colours (RGB) of :func:`line_chart`, in order of the series.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (230, 85, 13),
    (44, 160, 44),
    (148, 103, 189),
    (214, 39, 40),
    (140, 86, 75),
)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BLACK = (0, 0, 0)
_WHITE = (255, 255, 255)
Box = tuple[int, int, int, int]


def to_rgb8(image: torch.Tensor | NDArray[np.generic]) -> NDArray[np.uint8]:
    """An image as contiguous ``(H, W, 3)`` uint8 RGB.

    Args:
        image: a torch tensor ``(3, H, W)`` (ttblur's frame layout) or a numpy array
            ``(H, W, 3)`` / ``(H, W)`` (grey, replicated); ``uint8``, or float in ``[0, 1]``
            (clipped, scaled by 255 and rounded).

    Raises:
        ValueError: another shape, dtype, or NaN/inf.
    """
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"a tensor image must be (3, H, W), got {tuple(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a torch.Tensor or numpy.ndarray, got {type(image)}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"an array image must be (H, W, 3) or (H, W), got {image.shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be uint8 or float in [0, 1], got dtype {image.dtype}")
    if not np.isfinite(image).all():
        raise ValueError("image contains NaN or inf")
    # C-contiguous whatever the input's strides (a permuted tensor): OpenCV draws only on those.
    return np.ascontiguousarray(np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8))


def draw_boxes(
    image: torch.Tensor | NDArray[np.generic],
    boxes: Iterable[Box],
    *,
    color: tuple[int, int, int] = (0, 255, 0),
    thickness: int = 2,
) -> NDArray[np.uint8]:
    """A copy of ``image`` with rectangles drawn inside the given boxes.

    Args:
        image: anything :func:`to_rgb8` accepts.
        boxes: ``(top, left, bottom, right)`` in pixels, bottom / right exclusive (a
            :class:`~ttblur.protocols.PatchLocation` gives ``(p.top, p.left, p.bottom,
            p.right)``).
        color: RGB of the rectangles; each gets a thin black outline for contrast.
        thickness: line width in pixels.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    out = to_rgb8(image).copy()
    for top, left, bottom, right in boxes:
        corner_a, corner_b = (int(left), int(top)), (int(right) - 1, int(bottom) - 1)
        cv2.rectangle(out, corner_a, corner_b, _BLACK, thickness + 2, cv2.LINE_8)
        cv2.rectangle(out, corner_a, corner_b, color, thickness, cv2.LINE_8)
    return out


def fit_width(image: NDArray[np.uint8], width: int) -> NDArray[np.uint8]:
    """Resize an ``(H, W, 3)`` uint8 image to ``width`` pixels, keeping the aspect ratio.

    Shrinking averages pixels (``INTER_AREA``); enlarging repeats them (``INTER_NEAREST``), so
    small patches stay crisp and their pixels visible.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    height, old = image.shape[:2]
    if old == width:
        return image
    new_height = max(1, round(height * width / old))
    mode = cv2.INTER_AREA if width < old else cv2.INTER_NEAREST
    return np.asarray(cv2.resize(image, (width, new_height), interpolation=mode), dtype=np.uint8)


def _text_width(text: str, scale: float, thickness: int = 1) -> int:
    return int(cv2.getTextSize(_ascii(text), _FONT, scale, thickness)[0][0])


def _put_text(
    image: NDArray[np.uint8],
    text: str,
    origin: tuple[int, int],
    scale: float,
    color: tuple[int, int, int] = _BLACK,
    thickness: int = 1,
) -> None:
    # OpenCV's Hershey fonts draw ASCII only: other characters become "?".
    cv2.putText(image, _ascii(text), origin, _FONT, scale, color, thickness, cv2.LINE_AA)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def add_caption(
    image: NDArray[np.uint8], text: str, *, scale: float = 0.45, below: bool = False
) -> NDArray[np.uint8]:
    """``image`` with a white bar holding one line of black text above (or below) it.

    Text too wide for the image is shortened with ``...``; non-ASCII characters become ``?``.
    """
    width = image.shape[1]
    bar_height = round(30 * scale) + 8
    while len(text) > 3 and _text_width(text, scale) > width - 6:
        text = text[:-4] + "..."
    bar = np.full((bar_height, width, 3), 255, dtype=np.uint8)
    _put_text(bar, text, (3, bar_height - round(9 * scale) - 3), scale)
    return np.concatenate([image, bar] if below else [bar, image], axis=0)


def _pad_to(image: NDArray[np.uint8], height: int, width: int, fill: int) -> NDArray[np.uint8]:
    out = np.full((height, width, 3), fill, dtype=np.uint8)
    out[: image.shape[0], : image.shape[1]] = image
    return out


def grid(
    images: Sequence[NDArray[np.uint8]], *, columns: int, gap: int = 6, fill: int = 255
) -> NDArray[np.uint8]:
    """Contact sheet: ``images`` row by row, ``columns`` per row, ``gap`` pixels apart.

    Cells have the size of the largest image; smaller images sit at the cell's top left.
    """
    if not images:
        raise ValueError("grid needs at least one image")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    columns = min(columns, len(images))
    cell_h = max(int(i.shape[0]) for i in images)
    cell_w = max(int(i.shape[1]) for i in images)
    rows = math.ceil(len(images) / columns)
    sheet = np.full(
        (rows * cell_h + (rows + 1) * gap, columns * cell_w + (columns + 1) * gap, 3),
        fill,
        dtype=np.uint8,
    )
    for index, image in enumerate(images):
        row, col = divmod(index, columns)
        top, left = gap + row * (cell_h + gap), gap + col * (cell_w + gap)
        sheet[top : top + image.shape[0], left : left + image.shape[1]] = image
    return sheet


def hstack(
    images: Sequence[NDArray[np.uint8]], *, gap: int = 6, fill: int = 255
) -> NDArray[np.uint8]:
    """Images side by side (top-aligned, padded to the tallest), ``gap`` pixels apart."""
    if not images:
        raise ValueError("hstack needs at least one image")
    height = max(int(i.shape[0]) for i in images)
    parts: list[NDArray[np.uint8]] = []
    for index, image in enumerate(images):
        if index:
            parts.append(np.full((height, gap, 3), fill, dtype=np.uint8))
        parts.append(_pad_to(image, height, int(image.shape[1]), fill))
    return np.concatenate(parts, axis=1)


def _nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= factor * power:
            return factor * power
    return 10.0 * power


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = _nice_step(high - low, count)
    first = math.ceil(low / step - 1e-9) * step
    values = []
    value = first
    while value <= high + 1e-9 * step:
        values.append(round(value, 12))
        value += step
    return values


def _value_range(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high - low < 1e-12 * max(1.0, abs(high)):
        pad = abs(high) * 0.1 if high else 1.0
        return low - pad, high + pad
    pad = 0.08 * (high - low)
    return low - pad, high + pad


def _dashed_line(
    image: NDArray[np.uint8],
    start: tuple[int, int],
    end: tuple[int, int],
    color: tuple[int, int, int],
    dash: int = 8,
) -> None:
    length = math.hypot(end[0] - start[0], end[1] - start[1])
    pieces = max(1, int(length // dash))
    for k in range(0, pieces, 2):
        a, b = k / pieces, min(1.0, (k + 1) / pieces)
        p = (round(start[0] + a * (end[0] - start[0])), round(start[1] + a * (end[1] - start[1])))
        q = (round(start[0] + b * (end[0] - start[0])), round(start[1] + b * (end[1] - start[1])))
        cv2.line(image, p, q, color, 2, cv2.LINE_AA)


def line_chart(
    series: Mapping[str, Sequence[float]],
    *,
    x: Sequence[float] | None = None,
    hlines: Mapping[str, float] | None = None,
    highlight: tuple[float, float, str] | None = None,
    size: tuple[int, int] = (360, 640),
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    integer_x: bool = True,
) -> NDArray[np.uint8]:
    """A line chart drawn with OpenCV (no plotting library).

    Args:
        series: legend label -> y values; a series of ``n`` values is drawn at ``x[:n]``.
            Non-finite values are skipped. Every point gets a dot, so one-point series show.
        x: the x positions; default ``1, 2, ..., n`` (epochs).
        hlines: legend label -> y of a dashed horizontal reference line.
        highlight: ``(x, y, label)`` of one point to ring and label (e.g. the kept epoch).
        size: ``(height, width)`` in pixels.
        title, xlabel, ylabel: text (ASCII).
        integer_x: x ticks only at whole numbers.

    Returns:
        ``(height, width, 3)`` uint8 RGB on white.

    Raises:
        ValueError: no finite value to draw, or a size too small for the axes.
    """
    height, width = size
    if height < 120 or width < 200:
        raise ValueError(f"size must be at least (120, 200), got {size}")
    hlines = dict(hlines or {})
    longest = max((len(v) for v in series.values()), default=0)
    xs = [float(v) for v in (x if x is not None else range(1, longest + 1))]
    if len(xs) < longest:
        raise ValueError(f"x has {len(xs)} positions, but a series has {longest} values")
    ys = [float(v) for vals in series.values() for v in vals if math.isfinite(float(v))]
    ys += [float(v) for v in hlines.values() if math.isfinite(float(v))]
    if not ys:
        raise ValueError("line_chart needs at least one finite value")
    y_low, y_high = _value_range(ys)
    if integer_x:  # half a step of margin around whole-number positions (epochs)
        x_low, x_high = min(xs, default=0.0) - 0.5, max(xs, default=1.0) + 0.5
    else:
        x_low, x_high = _value_range(xs if xs else [0.0, 1.0])

    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    left, right, top, bottom = 70, width - 16, 34 if title else 14, height - (46 if xlabel else 30)

    def to_px(xv: float, yv: float) -> tuple[int, int]:
        px = left + (xv - x_low) / (x_high - x_low) * (right - left)
        py = bottom - (yv - y_low) / (y_high - y_low) * (bottom - top)
        return round(px), round(py)

    for tick in _ticks(y_low, y_high):
        _, py = to_px(x_low, tick)
        cv2.line(canvas, (left, py), (right, py), (228, 228, 228), 1)
        label = f"{tick:.3g}"
        _put_text(canvas, label, (left - 6 - _text_width(label, 0.4), py + 4), 0.4)
    x_ticks = _ticks(x_low, x_high, min(10, max(2, len(xs))))
    if integer_x:
        x_ticks = sorted({float(round(t)) for t in x_ticks if abs(t - round(t)) < 1e-9})
    for tick in x_ticks:
        px, _ = to_px(tick, y_low)
        if left <= px <= right:
            cv2.line(canvas, (px, bottom), (px, bottom + 4), _BLACK, 1)
            label = f"{tick:g}"
            _put_text(canvas, label, (px - _text_width(label, 0.4) // 2, bottom + 18), 0.4)
    cv2.rectangle(canvas, (left, top), (right, bottom), _BLACK, 1)

    legend: list[tuple[str, tuple[int, int, int], bool]] = []
    for index, (label, value) in enumerate(hlines.items()):
        color = (110, 110, 110) if index == 0 else PALETTE[(index + 3) % len(PALETTE)]
        if math.isfinite(float(value)):
            _dashed_line(canvas, to_px(x_low, value), to_px(x_high, value), color)
        legend.append((label, color, True))
    for index, (label, values) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        points = [to_px(xs[i], float(v)) for i, v in enumerate(values) if math.isfinite(float(v))]
        if len(points) > 1:
            cv2.polylines(canvas, [np.array(points, np.int32)], False, color, 2, cv2.LINE_AA)
        for point in points:
            cv2.circle(canvas, point, 4, color, -1, cv2.LINE_AA)
        legend.append((label, color, False))
    if highlight is not None and all(math.isfinite(float(v)) for v in highlight[:2]):
        point = to_px(float(highlight[0]), float(highlight[1]))
        cv2.circle(canvas, point, 9, _BLACK, 2, cv2.LINE_AA)
        text = highlight[2]
        tx = min(point[0] + 12, right - _text_width(text, 0.42) - 2)
        _put_text(canvas, text, (max(left + 2, tx), max(top + 14, point[1] - 12)), 0.42)

    row = top + 18
    box_w = max((_text_width(lbl, 0.42) for lbl, _, _ in legend), default=0) + 44
    if legend:
        corner_a, corner_b = (right - box_w - 6, top + 4), (right - 4, top + 8 + 18 * len(legend))
        cv2.rectangle(canvas, corner_a, corner_b, _WHITE, -1)
        cv2.rectangle(canvas, corner_a, corner_b, (190, 190, 190), 1)
    for label, color, dashed in legend:
        x0 = right - box_w
        if dashed:
            _dashed_line(canvas, (x0, row - 4), (x0 + 28, row - 4), color, dash=6)
        else:
            cv2.line(canvas, (x0, row - 4), (x0 + 28, row - 4), color, 2, cv2.LINE_AA)
        _put_text(canvas, label, (x0 + 34, row), 0.42)
        row += 18
    if title:
        _put_text(canvas, title, (left, 22), 0.55, thickness=1)
    if xlabel:
        text = xlabel
        _put_text(canvas, text, ((left + right - _text_width(text, 0.45)) // 2, height - 10), 0.45)
    if ylabel:
        text = ylabel
        strip = np.full((20, _text_width(text, 0.45) + 6, 3), 255, dtype=np.uint8)
        _put_text(strip, text, (3, 15), 0.45)
        rotated = np.ascontiguousarray(np.rot90(strip))
        y0 = max(0, (top + bottom - rotated.shape[0]) // 2)
        h = min(rotated.shape[0], height - y0)
        canvas[y0 : y0 + h, 2 : 2 + rotated.shape[1]] = rotated[:h]
    return canvas


def colorbar(
    vmax: float,
    *,
    width: int = 320,
    unit: str = "px",
    marker: tuple[float, str] | None = None,
) -> NDArray[np.uint8]:
    """The legend of :func:`magnitude_to_heatmap`: a horizontal gradient from 0 to ``vmax``.

    Args:
        vmax: the value shown brightest (same as passed to :func:`magnitude_to_heatmap`).
        width: pixels.
        unit: appended to the last tick label.
        marker: ``(value, label)`` drawn as a tick above the bar (e.g. the RSDM threshold).

    Returns:
        ``(H, width, 3)`` uint8 RGB on white.
    """
    if not (math.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax must be a finite number > 0, got {vmax}")
    if width < 60:
        raise ValueError(f"width must be >= 60, got {width}")
    pad, bar_h, top = 14, 14, 18
    ramp = np.linspace(0.0, vmax, width - 2 * pad).reshape(1, 1, 1, -1)
    bar = np.repeat(magnitude_to_heatmap(ramp, vmax=vmax)[0], bar_h, axis=0)
    canvas = np.full((top + bar_h + 20, width, 3), 255, dtype=np.uint8)
    canvas[top : top + bar_h, pad : width - pad] = bar
    ticks = [t for t in _ticks(0.0, vmax, 4) if t <= vmax]
    for index, tick in enumerate(ticks):
        px = pad + round(tick / vmax * (width - 2 * pad - 1))
        cv2.line(canvas, (px, top + bar_h), (px, top + bar_h + 3), _BLACK, 1)
        label = f"{tick:g}" + (f" {unit}" if index == len(ticks) - 1 else "")
        x0 = min(max(0, px - _text_width(label, 0.38) // 2), width - _text_width(label, 0.38))
        _put_text(canvas, label, (x0, top + bar_h + 15), 0.38)
    if marker is not None and math.isfinite(marker[0]) and 0 <= marker[0] <= vmax:
        px = pad + round(marker[0] / vmax * (width - 2 * pad - 1))
        cv2.line(canvas, (px, top - 4), (px, top + bar_h), (0, 170, 255), 2)
        label = marker[1]
        x0 = min(max(0, px - _text_width(label, 0.38) // 2), width - _text_width(label, 0.38))
        _put_text(canvas, label, (x0, top - 6), 0.38)
    return canvas


def direction_wheel(size: int = 96) -> NDArray[np.uint8]:
    """The legend of :func:`condition_to_rgb`: a disc whose hue is the direction from the
    centre and whose brightness is the distance (``z``), on white.

    Image axes: ``+x`` right (red), ``+y`` down.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    coords = (np.arange(size, dtype=np.float64) - (size - 1) / 2) / ((size - 1) / 2)
    xx, yy = np.meshgrid(coords, coords)
    radius = np.hypot(xx, yy)
    condition = np.stack([xx, yy, np.clip(radius, 0.0, 1.0)])
    wheel = condition_to_rgb(condition)
    wheel[radius > 1.0] = 255
    return wheel
