"""Bundled photos for :mod:`ttblur.synth` (scikit-image's sample images) and image coercion.

scikit-image is an optional dependency (the ``ttblur[data]`` extra); it is imported lazily,
only when a photo is loaded by name.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["HELDOUT_PHOTOS", "PHOTOS", "TRAIN_PHOTOS", "coerce_image", "load_photo"]

#: Smallest accepted side of an input image, px.
MIN_IMAGE_SIDE = 8
_RANGE_TOL = 1e-4

# name -> (scikit-image loader, index into a tuple result or None)
_LOADERS: dict[str, tuple[str, int | None]] = {
    # natural colour photos
    "astronaut": ("astronaut", None),
    "coffee": ("coffee", None),
    "chelsea": ("chelsea", None),  # ``skimage.data.cat`` is the same picture: not listed
    "rocket": ("rocket", None),
    "motorcycle": ("stereo_motorcycle", 0),
    # natural grayscale photos (replicated to 3 channels)
    "camera": ("camera", None),
    "moon": ("moon", None),
    "coins": ("coins", None),
    "clock": ("clock", None),
    "grass": ("grass", None),
    "gravel": ("gravel", None),
    "brick": ("brick", None),
    "page": ("page", None),
    "text": ("text", None),
    "cell": ("cell", None),
    # scientific colour images
    "hubble_deep_field": ("hubble_deep_field", None),
    "immunohistochemistry": ("immunohistochemistry", None),
    "retina": ("retina", None),
}

#: Photos held out for evaluation: three natural colour photos never used for training.
HELDOUT_PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "chelsea")
#: Photos for training (BME, ID-Blau, reference model); disjoint from :data:`HELDOUT_PHOTOS`.
TRAIN_PHOTOS: tuple[str, ...] = tuple(n for n in _LOADERS if n not in HELDOUT_PHOTOS)
#: Every bundled photo name usable with :func:`load_photo`.
PHOTOS: tuple[str, ...] = TRAIN_PHOTOS + HELDOUT_PHOTOS


@functools.lru_cache(maxsize=32)
def _load_array(name: str) -> np.ndarray:
    try:
        import skimage.data as data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "bundled photos need scikit-image: install it with `pip install ttblur[data]`"
        ) from exc
    func_name, index = _LOADERS[name]
    array: Any = getattr(data, func_name)()
    if index is not None:
        array = array[index]
    array = np.asarray(array)
    array.setflags(write=False)
    return array


def load_photo(name: str) -> Tensor:
    """Load a bundled photo by name.

    Args:
        name: one of :data:`PHOTOS` (scikit-image sample images; ``"motorcycle"`` is the left
            view of ``stereo_motorcycle``).

    Returns:
        ``(3, H, W)`` float32 RGB in ``[0, 1]`` (grayscale photos replicated to 3 channels).

    Raises:
        ValueError: unknown name.
        ImportError: scikit-image is not installed (``pip install ttblur[data]``).
    """
    if not isinstance(name, str) or name not in _LOADERS:
        raise ValueError(f"unknown photo {name!r}; available photos: {', '.join(PHOTOS)}")
    return coerce_image(_load_array(name), what=f"photo {name!r}")


def coerce_image(image: Any, what: str = "image") -> Tensor:
    """Validate an image and convert it to a ``(3, H, W)`` float32 tensor in ``[0, 1]``.

    Accepted: a numpy array ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` (``uint8`` in
    ``[0, 255]`` or float in ``[0, 1]``; ``bool`` is rejected), or a tensor ``(1, H, W)`` /
    ``(3, H, W)`` float in ``[0, 1]`` (or ``uint8``). Single-channel images are replicated.

    Raises:
        ValueError: wrong type, rank or channel count, side < 8 px, NaN/inf or out of range.
    """
    if isinstance(image, Tensor):
        tensor = image.detach().cpu()
        if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
            raise ValueError(
                f"{what}: a tensor must be (3, H, W) or (1, H, W), got {tuple(tensor.shape)}"
            )
        if tensor.dtype == torch.uint8:
            tensor = tensor.float() / 255.0
        elif not tensor.is_floating_point():
            raise ValueError(
                f"{what}: a tensor must be float in [0, 1] or uint8, got {tensor.dtype}"
            )
        chw = tensor.float()
    elif isinstance(image, np.ndarray):
        array = image
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3 or array.shape[2] not in (1, 3):
            raise ValueError(
                f"{what}: an array must be (H, W), (H, W, 1) or (H, W, 3), got {image.shape}"
            )
        if array.dtype == np.uint8:
            chw = torch.from_numpy(np.array(array.transpose(2, 0, 1), np.float32)) / 255.0
        elif np.issubdtype(array.dtype, np.floating):
            chw = torch.from_numpy(np.array(array.transpose(2, 0, 1), np.float32))
        else:
            raise ValueError(f"{what}: an array must be uint8 or float, got dtype {array.dtype}")
    else:
        raise ValueError(
            f"{what}: expected a photo name, a numpy array or a torch tensor, "
            f"got {type(image).__name__}"
        )
    h, w = chw.shape[-2:]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise ValueError(f"{what}: each side must be >= {MIN_IMAGE_SIDE} px, got {h}x{w}")
    if not bool(torch.isfinite(chw).all()):
        raise ValueError(f"{what}: contains NaN or inf")
    low, high = float(chw.min()), float(chw.max())
    if low < -_RANGE_TOL or high > 1.0 + _RANGE_TOL:
        raise ValueError(
            f"{what}: float values must be in [0, 1], got range [{low:.4g}, {high:.4g}]"
            + (" (divide uint8-like data by 255)" if high > 1.0 and math.isfinite(high) else "")
        )
    chw = chw.clamp(0.0, 1.0)
    if chw.shape[0] == 1:
        chw = chw.expand(3, -1, -1)
    return chw.contiguous()
