"""Pictures of blur conditions, flows and magnitude maps, for docs and debugging.

* :func:`condition_to_rgb`: a blur condition map as colour: the direction's angle is the hue
  (``+x`` red, ``+y`` (down) yellow-green, ``-x`` cyan, ``-y`` violet, HSV hue = angle), the
  magnitude ``z`` is the value (``z = 0`` black), full saturation.
* :func:`flow_to_rgb`: the same colour coding for a flow field in pixels.
* :func:`magnitude_to_heatmap`: a magnitude map in pixels through a perceptual colormap
  (matplotlib's *inferno*, approximated by linear interpolation of 11 anchor colours).
* :func:`save_png`: write an RGB ``uint8`` image with OpenCV.

All functions take torch tensors or numpy arrays and return numpy ``uint8`` arrays with the
colour last, ready for :func:`save_png`.

Example:
    >>> import torch
    >>> from ttblur.viz import condition_to_rgb
    >>> cond = torch.zeros(3, 4, 4)
    >>> cond[0], cond[2] = 1.0, 1.0          # +x, full magnitude
    >>> condition_to_rgb(cond)[0, 0].tolist()
    [255, 0, 0]
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

__all__ = [
    "INFERNO_ANCHORS",
    "condition_to_rgb",
    "flow_to_rgb",
    "hsv_to_rgb",
    "magnitude_to_heatmap",
    "save_png",
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
        path: output file; its folder must exist.

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
    if not cv2.imwrite(str(out), np.ascontiguousarray(image)):
        raise OSError(f"OpenCV could not write {out} (is the extension .png?)")
    return out
