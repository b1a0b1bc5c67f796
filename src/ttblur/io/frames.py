"""Frames in memory: the video sources ttblur accepts, their checks and their conversion.

A video in memory is a ``torch.Tensor`` ``(T, 3, H, W)`` (float in ``[0, 1]`` or ``uint8``) or
a ``numpy.ndarray`` ``(T, H, W, 3)`` (``uint8``, ``uint16`` or float in ``[0, 1]``).
:func:`check_frames` validates one (the message gives the shape received and the one expected),
:func:`frames_to_float` converts it to float32 ``(n, 3, H, W)`` in ``[0, 1]``, and
:func:`float_chunks` does so a chunk at a time. Float values within
:data:`ttblur.types.VIDEO_RANGE_TOLERANCE` of ``[0, 1]`` are rounding and get clamped; farther
is an error (:func:`check_float_range`, built on :func:`ttblur.types.finite_range`, the checks
:func:`ttblur.types.validate_video` applies to the frames handed to a stage).

Used by the readers (:mod:`ttblur.io.video`) and the writers (:mod:`ttblur.io.video_write`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import TypeAlias

import numpy as np
import torch
from torch import Tensor

from ttblur.types import VIDEO_RANGE_TOLERANCE, finite_range

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VideoSource",
    "check_float_range",
    "check_frames",
    "float_chunks",
    "frames_to_float",
]

VideoSource: TypeAlias = Tensor | np.ndarray | str | os.PathLike[str]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".avi", ".mov", ".m4v")


def check_float_range(values: Tensor | np.ndarray, what: str) -> None:
    """Raise unless float values are finite and within ``[0, 1]`` up to
    :data:`ttblur.types.VIDEO_RANGE_TOLERANCE` (the one tolerance every stage uses).

    Args:
        values: a float tensor or array of any shape (empty passes).
        what: how the message calls it (``"video tensor"``, ``"image file 'x.tif'"``).

    Raises:
        ValueError: NaN / inf (:func:`ttblur.types.finite_range`), or values outside the
            range, with the fix for 8-bit data.
    """
    if isinstance(values, np.ndarray):
        if values.size == 0:
            return
        if any(stride < 0 for stride in values.strides):  # a flipped view (BGR -> RGB)
            values = np.ascontiguousarray(values)
        with warnings.catch_warnings():  # a read-only array is only read here
            warnings.simplefilter("ignore", UserWarning)
            values = torch.from_numpy(values)
    if values.numel() == 0:
        return
    low, high = finite_range(values, what)
    if low < -VIDEO_RANGE_TOLERANCE or high > 1.0 + VIDEO_RANGE_TOLERANCE:
        raise ValueError(
            f"{what} values must lie in [0, 1] for float input, got [{low:.4g}, {high:.4g}] "
            "(divide 8-bit values by 255, or pass uint8)"
        )


def _validate_tensor(frames: Tensor) -> None:
    shape = tuple(frames.shape)
    if frames.ndim != 4:
        hint = "; add a time axis with video.unsqueeze(0)" if frames.ndim == 3 else ""
        raise ValueError(
            f"video tensor must have shape (T, 3, H, W), got {frames.ndim} dims {shape}{hint}"
        )
    if shape[1] != 3:
        hint = (
            "; it looks like (T, H, W, 3): use video.permute(0, 3, 1, 2)" if shape[3] == 3 else ""
        )
        raise ValueError(
            f"video tensor must have 3 (RGB) channels in dim 1, i.e. shape (T, 3, H, W); "
            f"got {shape}{hint}"
        )
    if shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"video frames must be at least 1x1 pixels, got shape {shape}")
    if frames.dtype != torch.uint8 and not frames.is_floating_point():
        raise ValueError(f"video tensor must be float in [0, 1] or uint8, got dtype {frames.dtype}")
    if frames.is_floating_point():
        check_float_range(frames.detach(), "video tensor")


def _validate_array(frames: np.ndarray) -> None:
    shape = tuple(frames.shape)
    if frames.ndim != 4:
        hint = "; add a time axis with frames[None]" if frames.ndim == 3 else ""
        raise ValueError(
            f"video array must have shape (T, H, W, 3), got {frames.ndim} dims {shape}{hint}"
        )
    if shape[3] != 3:
        hint = (
            "; it looks like (T, 3, H, W): use torch.from_numpy(frames) or "
            "frames.transpose(0, 2, 3, 1)"
            if shape[1] == 3
            else ""
        )
        raise ValueError(
            f"video array must have 3 (RGB) channels last, i.e. shape (T, H, W, 3); "
            f"got {shape}{hint}"
        )
    if shape[1] < 1 or shape[2] < 1:
        raise ValueError(f"video frames must be at least 1x1 pixels, got shape {shape}")
    if frames.dtype not in (np.uint8, np.uint16) and not np.issubdtype(frames.dtype, np.floating):
        raise ValueError(
            f"video array must be uint8, uint16 or float in [0, 1], got dtype {frames.dtype}"
        )
    if np.issubdtype(frames.dtype, np.floating):
        check_float_range(frames, "video array")


def check_frames(frames: Tensor | np.ndarray) -> None:
    """Validate frames in memory.

    Args:
        frames: ``(T, 3, H, W)`` tensor, float in ``[0, 1]`` or ``uint8``; or ``(T, H, W, 3)``
            array, ``uint8``, ``uint16`` or float in ``[0, 1]``.

    Raises:
        ValueError: wrong rank, channel count or dtype (the message gives the shape received
            and the one expected, with the fix when the layout looks transposed), empty frames,
            NaN / inf, or float values outside ``[0, 1]`` (see :func:`check_float_range`).
    """
    if isinstance(frames, Tensor):
        _validate_tensor(frames)
    else:
        _validate_array(frames)


def _tensor_to_float(frames: Tensor) -> Tensor:
    """Validated ``(n, 3, H, W)`` tensor -> new float32 tensor in ``[0, 1]``."""
    frames = frames.detach()
    if frames.dtype == torch.uint8:
        return frames.to(torch.float32).div_(255.0)
    return frames.to(torch.float32).clamp(0.0, 1.0)


def _array_to_float(frames: np.ndarray) -> Tensor:
    """Validated ``(n, H, W, 3)`` array -> new float32 ``(n, 3, H, W)`` tensor in ``[0, 1]``."""
    out = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if frames.dtype == np.uint8:
        return out.to(torch.float32).div_(255.0).contiguous()
    if frames.dtype == np.uint16:
        return out.to(torch.int32).to(torch.float32).div_(65535.0).contiguous()
    # Not clamp_: a float32 array's tensor shares the caller's memory (a read-only memmap
    # would crash the process, a writable one or an r+ .npy file would be changed).
    return out.to(torch.float32).clamp(0.0, 1.0).contiguous()


def frames_to_float(frames: Tensor | np.ndarray) -> Tensor:
    """Validated frames -> a new float32 ``(n, 3, H, W)`` tensor in ``[0, 1]``.

    ``uint8`` is divided by 255, ``uint16`` by 65535, float is clamped to ``[0, 1]``; a
    tensor keeps its device, an array becomes a CPU tensor.
    """
    if isinstance(frames, Tensor):
        return _tensor_to_float(frames)
    return _array_to_float(frames)


def float_chunks(frames: Tensor | np.ndarray, size: int = 16) -> Iterator[Tensor]:
    """Validated frames -> float32 ``(n, 3, H, W)`` chunks of ``size`` frames (the last may be
    shorter), converted one chunk at a time (see :func:`frames_to_float`)."""
    for start in range(0, frames.shape[0], size):
        yield frames_to_float(frames[start : start + size])
