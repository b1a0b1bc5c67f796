"""Video I/O: read and write ``(T, 3, H, W)`` float32 RGB videos in ``[0, 1]``.

Sources (:data:`VideoSource`) are

- a ``torch.Tensor`` ``(T, 3, H, W)``: float in ``[0, 1]``, or ``uint8`` (divided by 255);
- a ``numpy.ndarray`` ``(T, H, W, 3)``: ``uint8`` (/255), ``uint16`` (/65535) or float in
  ``[0, 1]``;
- a folder of frames (``.png .jpg .jpeg .bmp .tif .tiff .webp``, natural order: ``2.png``
  before ``10.png``; other files and hidden files are ignored);
- a single image file (a one-frame video);
- any other file is decoded with PyAV (``.mp4 .avi .mkv .mov ...``).

Image files are decoded with OpenCV: BGR is turned into RGB, 8-bit values are divided by 255,
16-bit values by 65535, float TIFFs must already lie in ``[0, 1]``; grayscale frames are
replicated to 3 channels and an alpha channel is dropped (not composited). Video files are
decoded to 8-bit RGB (``rgb24``), or 16-bit (``rgb48``) when the stream has more than 8 bits
per sample, using the colour matrix and range the stream is tagged with.

:func:`load_video` returns the whole clip, :func:`iter_video` streams it frame by frame (or in
chunks) without holding the clip in memory, :func:`save_video` writes a video file (PyAV,
``libx264``) or a folder of PNGs, :func:`video_info` reads frame count, size and frame rate.

Example:
    >>> import torch
    >>> from ttblur.video import load_video
    >>> load_video(torch.zeros(4, 64, 96, 3, dtype=torch.uint8).numpy()).shape
    torch.Size([4, 3, 64, 96])
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import Tensor

from ttblur.atomic import StagedOutputs, atomic_path

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "TruncatedVideoWarning",
    "VideoInfo",
    "VideoSource",
    "iter_video",
    "load_video",
    "save_video",
    "video_info",
]

VideoSource: TypeAlias = Tensor | np.ndarray | str | os.PathLike[str]
"""What :func:`load_video` and :func:`iter_video` accept: a ``(T, 3, H, W)`` tensor, a
``(T, H, W, 3)`` array, a frame folder, an image file or a video file."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Frame-file extensions read from folders (case-insensitive)."""

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".avi", ".mov", ".m4v")
"""Suffixes :func:`save_video` encodes as a video file; any other path becomes a PNG folder."""

# Values this far outside [0, 1] are float rounding and get clamped; farther is an error.
_RANGE_TOLERANCE = 1e-3
_PNG_NAME = re.compile(r"^[0-9]+\.png$")


@dataclass(frozen=True)
class VideoInfo:
    """Cheap facts about a video source.

    Attributes:
        num_frames: frame count; for video files the container's count, or the number of
            video packets when the container does not store it (no decoding).
        height: frame height in pixels.
        width: frame width in pixels.
        fps: frames per second (``None`` for tensors, arrays and folders).
        kind: ``"tensor"``, ``"array"``, ``"folder"``, ``"image"`` or ``"file"``.
    """

    num_frames: int
    height: int
    width: int
    fps: float | None
    kind: str


# --------------------------------------------------------------------------- validation


def _check_count(value: int | None, name: str, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _too_few(count: int, min_frames: int) -> ValueError:
    return ValueError(f"video has {count} frames, fewer than the {min_frames} required")


def _check_float_values(values: Tensor | np.ndarray, what: str) -> None:
    """Raise if a float tensor/array has NaN/inf or values outside ``[0, 1]`` (+ tolerance)."""
    if isinstance(values, np.ndarray):
        if values.size == 0:
            return
        finite = bool(np.isfinite(values).all())
        low, high = (float(values.min()), float(values.max())) if finite else (0.0, 0.0)
    else:
        if values.numel() == 0:
            return
        finite = bool(torch.isfinite(values).all())
        low, high = (float(values.min()), float(values.max())) if finite else (0.0, 0.0)
    if not finite:
        raise ValueError(f"{what} contains NaN or inf values")
    if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
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
        _check_float_values(frames.detach(), "video tensor")


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
        _check_float_values(frames, "video array")


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
    return out.to(torch.float32).clamp_(0.0, 1.0).contiguous()


# --------------------------------------------------------------------------- image files


def _natural_key(name: str) -> tuple[list[Any], str]:
    parts = re.split(r"([0-9]+)", name)
    key = [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)]
    return key, name


def _list_frames(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    if not files:
        raise ValueError(
            f"folder '{folder}' has no image files ({', '.join(IMAGE_EXTENSIONS)}); nothing to load"
        )
    return sorted(files, key=lambda p: _natural_key(p.name))


def _read_image(path: Path) -> np.ndarray:
    """Decode one image file -> ``(H, W, 3)`` RGB array (uint8, uint16 or float32)."""
    import cv2

    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise ValueError(f"cannot read image file '{path}': {err}") from err
    image = cv2.imdecode(raw, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR) if raw.size else None
    if image is None:
        raise ValueError(f"cannot decode image file '{path}' (corrupt or not an image)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:  # grayscale -> replicate to RGB
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 2:  # gray + alpha
        image = np.repeat(image[:, :, :1], 3, axis=2)
    elif image.shape[2] >= 3:  # BGR(A) -> RGB, alpha dropped
        image = np.ascontiguousarray(image[:, :, 2::-1])
    if image.dtype not in (np.uint8, np.uint16):
        if not np.issubdtype(image.dtype, np.floating):
            raise ValueError(
                f"image file '{path}' has unsupported sample type {image.dtype} "
                "(expected 8-bit, 16-bit or float in [0, 1])"
            )
        image = image.astype(np.float32, copy=False)
        _check_float_values(image, f"image file '{path}'")
    return image


def _image_to_chw(image: np.ndarray) -> Tensor:
    return _array_to_float(image[None])[0]


def _check_same_size(path: Path, image: np.ndarray, first: Path, size: tuple[int, int]) -> None:
    if image.shape[:2] != size:
        h, w = image.shape[:2]
        raise ValueError(
            f"frame '{path.name}' is {h}x{w} (HxW) but the first frame '{first.name}' is "
            f"{size[0]}x{size[1]}; all frames in '{path.parent}' must have the same size"
        )


def _iter_folder(files: list[Path]) -> Iterator[Tensor]:
    size: tuple[int, int] | None = None
    for path in files:
        image = _read_image(path)
        if size is None:
            size = (int(image.shape[0]), int(image.shape[1]))
        else:
            _check_same_size(path, image, files[0], size)
        yield _image_to_chw(image)


# --------------------------------------------------------------------------- video files


def _open_container(path: Path) -> Any:
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise ValueError(f"cannot open '{path}' as a video file (PyAV: {err})") from err
    if not container.streams.video:
        container.close()
        raise ValueError(f"file '{path}' has no video stream")
    return container


def _frame_to_array(frame: Any) -> np.ndarray:
    bits = max((c.bits for c in frame.format.components), default=8)
    return frame.to_ndarray(format="rgb48le" if bits > 8 else "rgb24")


class TruncatedVideoWarning(UserWarning):
    """A video file decoded to fewer frames than its container declares (cut-off download,
    interrupted copy). The frames that could be decoded are returned; ``strict=True`` in
    :func:`load_video` / :func:`iter_video` turns this into a ``ValueError``."""


def _declared_frames(container: Any, stream: Any) -> tuple[int, int]:
    """The frame count the container declares for ``stream`` and the shortfall tolerated.

    The stream's frame count when the header stores one (MP4, AVI: exact, no tolerance);
    otherwise duration x average frame rate (Matroska, WebM: an estimate, 1 frame tolerated);
    ``(0, 0)`` when neither is known.
    """
    if int(stream.frames or 0) > 0:
        return int(stream.frames), 0
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration and stream.time_base and rate:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration and rate:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    else:
        return 0, 0
    return round(seconds * float(rate)), 1


def _truncated(path: Path, declared: int, decoded: int, strict: bool) -> None:
    message = (
        f"video file '{path}' is truncated or damaged: its container declares {declared} "
        f"frames but only {decoded} could be decoded"
    )
    if strict:
        raise ValueError(message)
    import warnings

    warnings.warn(message + " (using those)", TruncatedVideoWarning, stacklevel=4)


def _decode_video(path: Path, max_frames: int | None, strict: bool = False) -> Iterator[np.ndarray]:
    """Yield ``(H, W, 3)`` uint8/uint16 RGB frames decoded one at a time.

    When decoding ends (not cut short by ``max_frames``) with fewer frames than the container
    declares, a :class:`TruncatedVideoWarning` is issued (``ValueError`` when ``strict``)."""
    import av

    container = _open_container(path)
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        declared, tolerance = _declared_frames(container, stream)
        count = 0
        size: tuple[int, int] | None = None
        frames = container.decode(stream)
        while max_frames is None or count < max_frames:
            try:
                frame = next(frames)
                array = _frame_to_array(frame)
            except StopIteration:
                if count < declared - tolerance:
                    _truncated(path, declared, count, strict)
                break
            except (av.FFmpegError, ValueError) as err:
                raise ValueError(
                    f"cannot decode video file '{path}' after {count} frames "
                    f"(corrupt or unsupported: {err})"
                ) from err
            if size is None:
                size = (int(array.shape[0]), int(array.shape[1]))
            elif array.shape[:2] != size:
                raise ValueError(
                    f"frame {count} of '{path}' is {array.shape[0]}x{array.shape[1]} (HxW) "
                    f"but frame 0 is {size[0]}x{size[1]}"
                )
            count += 1
            yield array


# --------------------------------------------------------------------------- sources


def _resolve_path(source: str | os.PathLike[str]) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"video source '{source}' does not exist")
    return path


def _check_source_type(source: object) -> None:
    if not isinstance(source, (Tensor, np.ndarray, str, os.PathLike)):
        raise ValueError(
            "video source must be a (T, 3, H, W) tensor, a (T, H, W, 3) array, a folder of "
            f"frames or a video file path; got {type(source).__name__}"
        )


def load_video(
    source: VideoSource,
    *,
    max_frames: int | None = None,
    min_frames: int = 1,
    strict: bool = False,
) -> Tensor:
    """Load a whole video as a float32 ``(T, 3, H, W)`` RGB tensor in ``[0, 1]``.

    Args:
        source: ``(T, 3, H, W)`` tensor (float in ``[0, 1]`` or uint8), ``(T, H, W, 3)``
            array (uint8, uint16 or float in ``[0, 1]``), a folder of frames (natural order),
            an image file (one frame) or a video file (decoded with PyAV). Float values within
            ``1e-3`` of ``[0, 1]`` are clamped (rounding), farther is an error.
        max_frames: keep only the first ``max_frames`` frames (decoding stops there).
        min_frames: the least number of frames accepted (after ``max_frames``).
        strict: a video file that decodes to fewer frames than its container declares
            raises ``ValueError`` instead of issuing a :class:`TruncatedVideoWarning`.

    Returns:
        a new float32 ``(T, 3, H, W)`` tensor in ``[0, 1]`` with ``min_frames <= T``; tensors
        keep their device, everything else is on the CPU.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: wrong rank, channel count or dtype (the message gives the shape received
            and the one expected), NaN/inf, float values outside ``[0, 1]``, a folder with no
            image files, frames of different sizes (naming the first offending file and both
            sizes), an unreadable or corrupt file (named), fewer than ``min_frames`` frames,
            or bad ``max_frames`` / ``min_frames``; with ``strict``, a truncated video file.

    Warns:
        TruncatedVideoWarning: a video file decodes to fewer frames than its container
            declares (the message names both counts); the decoded frames are returned.
    """
    _check_count(max_frames, "max_frames")
    _check_count(min_frames, "min_frames", allow_none=False)
    if max_frames is not None and max_frames < min_frames:
        raise ValueError(
            f"max_frames={max_frames} is smaller than min_frames={min_frames}: no video can pass"
        )
    _check_source_type(source)
    if isinstance(source, Tensor):
        _validate_tensor(source)
        video = _tensor_to_float(source[:max_frames])
    elif isinstance(source, np.ndarray):
        _validate_array(source)
        video = _array_to_float(source[:max_frames])
    else:
        path = _resolve_path(source)
        if path.is_dir():
            files = _list_frames(path)[:max_frames]
            first = _read_image(files[0])
            size = (int(first.shape[0]), int(first.shape[1]))
            video = torch.empty(len(files), 3, *size, dtype=torch.float32)
            video[0] = _image_to_chw(first)
            del first
            for index, file in enumerate(files[1:], start=1):
                image = _read_image(file)
                _check_same_size(file, image, files[0], size)
                video[index] = _image_to_chw(image)
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            video = _image_to_chw(_read_image(path))[None]
        else:
            decoded = list(_decode_video(path, max_frames, strict))
            if not decoded:
                raise _too_few(0, min_frames)
            video = torch.empty(len(decoded), 3, *decoded[0].shape[:2], dtype=torch.float32)
            decoded.reverse()
            for index in range(video.shape[0]):
                video[index] = _image_to_chw(decoded.pop())  # frees each decoded frame
    if video.shape[0] < min_frames:
        raise _too_few(int(video.shape[0]), min_frames)
    return video


def iter_video(
    source: VideoSource,
    *,
    chunk_size: int | None = None,
    max_frames: int | None = None,
    strict: bool = False,
) -> Iterator[Tensor]:
    """Stream a video without holding it in memory.

    Files are decoded one frame at a time (PyAV), folders read one file at a time; tensors
    and arrays are converted chunk by chunk. The frames are exactly those of
    :func:`load_video`. The source is checked (existence, type, shape, folder contents) when
    ``iter_video`` is called, not at the first ``next``.

    Args:
        source: anything :func:`load_video` accepts.
        chunk_size: ``None`` yields single ``(3, H, W)`` frames; an int yields
            ``(n, 3, H, W)`` chunks with ``n == chunk_size`` except possibly the last.
        max_frames: stop after this many frames.
        strict: as in :func:`load_video` (a truncated video file raises at the end of the
            iteration instead of warning).

    Yields:
        float32 ``(3, H, W)`` frames or ``(n, 3, H, W)`` chunks, RGB in ``[0, 1]``.

    Raises:
        FileNotFoundError / ValueError: as :func:`load_video`; problems found while decoding
        (corrupt data, a frame of a different size) are raised by the iteration.
    """
    _check_count(chunk_size, "chunk_size")
    _check_count(max_frames, "max_frames")
    _check_source_type(source)
    frames: Iterator[Tensor]
    if isinstance(source, Tensor):
        _validate_tensor(source)
        if chunk_size is not None:
            return _tensor_chunks(source[:max_frames], chunk_size, _tensor_to_float)
        return (_tensor_to_float(f[None])[0] for f in source[:max_frames])
    if isinstance(source, np.ndarray):
        _validate_array(source)
        if chunk_size is not None:
            return _array_chunks(source[:max_frames], chunk_size)
        return (_array_to_float(f[None])[0] for f in source[:max_frames])
    path = _resolve_path(source)
    if path.is_dir():
        frames = _iter_folder(_list_frames(path)[:max_frames])
    elif path.suffix.lower() in IMAGE_EXTENSIONS:
        frames = _iter_folder([path])
    else:
        _open_container(path).close()  # fail now on a missing stream / unreadable file
        frames = (_image_to_chw(a) for a in _decode_video(path, max_frames, strict))
    return frames if chunk_size is None else _chunked(frames, chunk_size)


def _tensor_chunks(frames: Tensor, size: int, convert: Any) -> Iterator[Tensor]:
    for start in range(0, frames.shape[0], size):
        yield convert(frames[start : start + size])


def _array_chunks(frames: np.ndarray, size: int) -> Iterator[Tensor]:
    for start in range(0, frames.shape[0], size):
        yield _array_to_float(frames[start : start + size])


def _chunked(frames: Iterator[Tensor], size: int) -> Iterator[Tensor]:
    buffer: list[Tensor] = []
    for frame in frames:
        buffer.append(frame)
        if len(buffer) == size:
            yield torch.stack(buffer)
            buffer = []
    if buffer:
        yield torch.stack(buffer)


def video_info(source: VideoSource) -> VideoInfo:
    """Frame count, size and frame rate of a source, without decoding the whole video.

    Args:
        source: anything :func:`load_video` accepts. A folder decodes only its first image; a
            video file is demuxed (not decoded) when the container does not store the count.

    Returns:
        :class:`VideoInfo`.

    Raises:
        FileNotFoundError / ValueError: as :func:`load_video`.
    """
    _check_source_type(source)
    if isinstance(source, Tensor):
        _validate_tensor(source)
        t, _, h, w = source.shape
        return VideoInfo(int(t), int(h), int(w), None, "tensor")
    if isinstance(source, np.ndarray):
        _validate_array(source)
        t, h, w, _ = source.shape
        return VideoInfo(int(t), int(h), int(w), None, "array")
    path = _resolve_path(source)
    if path.is_dir():
        files = _list_frames(path)
        h, w = _read_image(files[0]).shape[:2]
        return VideoInfo(len(files), int(h), int(w), None, "folder")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        h, w = _read_image(path).shape[:2]
        return VideoInfo(1, int(h), int(w), None, "image")
    container = _open_container(path)
    with container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        h, w = int(stream.codec_context.height), int(stream.codec_context.width)
        count = int(stream.frames or 0)
        if count == 0:
            count = sum(1 for p in container.demux(stream) if p.size > 0)
    return VideoInfo(count, h, w, fps, "file")


# --------------------------------------------------------------------------- writing


def _pick_codec(codec: str | None) -> str:
    import av

    if codec is None:
        return "libx264" if "libx264" in av.codecs_available else "mpeg4"
    try:
        av.Codec(codec, "w")
    except Exception as err:
        raise ValueError(f"video codec '{codec}' is not available for encoding in PyAV") from err
    return codec


def _quantize(frames: Tensor, bit_depth: int) -> np.ndarray:
    """``(n, 3, H, W)`` float in [0, 1] -> ``(n, H, W, 3)`` uint8/uint16, rounded."""
    peak = 255.0 if bit_depth == 8 else 65535.0
    dtype = torch.uint8 if bit_depth == 8 else torch.int32
    out = (frames.permute(0, 2, 3, 1) * peak).round_().to(dtype).cpu().numpy()
    return out if bit_depth == 8 else out.astype(np.uint16)


def save_video(
    frames: Tensor | np.ndarray,
    path: str | os.PathLike[str],
    fps: float = 25.0,
    *,
    crf: int = 18,
    codec: str | None = None,
    pix_fmt: str | None = None,
    bit_depth: int = 8,
) -> Path:
    """Write a video to a file (PyAV) or to a folder of PNG frames.

    A path ending in ``.mp4 .mkv .avi .mov .m4v`` is encoded with PyAV: ``libx264`` (falls back
    to ``mpeg4`` when the PyAV build lacks it) in ``yuv420p``, tagged BT.601 limited range so
    that :func:`load_video` and players decode the same colours. ``yuv420p`` needs an even
    width and height: for odd sizes ``libx264`` uses ``yuv444p`` instead (exact size kept; some
    players do not play 4:4:4), ``mpeg4`` keeps ``yuv420p`` (it handles odd sizes). Any other
    path is a folder (created) of zero-padded PNGs ``00000.png, 00001.png, ...`` which
    :func:`load_video` reads back exactly up to the 8-bit (or 16-bit) rounding. Existing
    ``<digits>.png`` files in that folder are replaced or removed; a folder that holds other
    image files is refused, because loading it back would mix them in.

    Args:
        frames: ``(T, 3, H, W)`` tensor (float in ``[0, 1]`` or uint8) or ``(T, H, W, 3)``
            array, validated like :func:`load_video`.
        path: output file or folder.
        fps: frames per second (video files only), > 0.
        crf: ``libx264`` constant rate factor in ``[0, 51]`` (lower is better, 18 is visually
            lossless); for ``mpeg4`` it sets ``qscale = clip(round(crf / 6), 1, 31)``.
        codec: PyAV encoder name, ``None`` for the default above.
        pix_fmt: encoder pixel format, ``None`` for the default above.
        bit_depth: 8 or 16 bits per sample for PNG folders (video files: 8 only).

    Returns:
        the path written.

    Raises:
        ValueError: invalid frames (as :func:`load_video`), no frames (``T = 0``), ``fps``,
            ``crf``, ``bit_depth``, unavailable codec, an image-file path (``x.png``), or a
            folder holding other image files.
    """
    if not isinstance(frames, (Tensor, np.ndarray)):
        raise ValueError(
            "save_video needs frames as a (T, 3, H, W) tensor or a (T, H, W, 3) array, got "
            f"{type(frames).__name__}"
        )
    if isinstance(frames, Tensor):
        _validate_tensor(frames)
    else:
        _validate_array(frames)
    return _write_chunks(
        _frame_chunks(frames),
        path,
        fps,
        crf=crf,
        codec=codec,
        pix_fmt=pix_fmt,
        bit_depth=bit_depth,
        total=int(frames.shape[0]),
    )


def _write_chunks(
    chunks: Iterable[Tensor],
    path: str | os.PathLike[str],
    fps: float = 25.0,
    *,
    crf: int = 18,
    codec: str | None = None,
    pix_fmt: str | None = None,
    bit_depth: int = 8,
    total: int | None = None,
) -> Path:
    """The writer behind :func:`save_video`, fed incrementally.

    ``chunks`` yields float32 ``(n, 3, H, W)`` tensors in ``[0, 1]`` (already validated); they
    are encoded as they arrive, so a long video is never held in memory (used by
    :func:`ttblur.inference.deblur_file`). The options are checked before the first chunk is
    pulled; ``total`` (optional) only sets the digit count of PNG names. An error raised by
    ``chunks`` itself propagates unchanged (a partial video file is deleted first).
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    if fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an int in [0, 51], got {crf!r}")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    out = Path(path).expanduser()
    suffix = out.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        if bit_depth != 8:
            raise ValueError("bit_depth=16 is only supported for PNG folders, not video files")
        _write_video_file(chunks, out, fps, crf, codec, pix_fmt)
    elif suffix in IMAGE_EXTENSIONS:
        raise ValueError(
            f"'{out}' is an image file name; save_video writes a video file "
            f"({', '.join(VIDEO_EXTENSIONS)}) or a folder of PNGs"
        )
    else:
        _write_png_folder(chunks, out, bit_depth, total)
    return out


def _frame_chunks(frames: Tensor | np.ndarray, size: int = 16) -> Iterator[Tensor]:
    if isinstance(frames, Tensor):
        return _tensor_chunks(frames, size, _tensor_to_float)
    return _array_chunks(frames, size)


def _no_frames(path: Path) -> ValueError:
    return ValueError(f"no frames to write to '{path}' (the video is empty)")


def _write_png_folder(
    chunks: Iterable[Tensor], folder: Path, bit_depth: int, total: int | None
) -> None:
    """Encode the frames into a hidden staging folder inside ``folder``, then move them in.

    Nothing in ``folder`` changes until every frame is encoded: an error or an interrupt
    leaves the frames of an earlier run there complete (see :class:`ttblur.atomic.StagedOutputs`).
    """
    import cv2

    if folder.exists() and not folder.is_dir():
        raise ValueError(f"'{folder}' exists and is not a folder")
    if folder.is_dir():
        foreign = [
            p.name
            for p in folder.iterdir()
            if p.suffix.lower() in IMAGE_EXTENSIONS
            and not _PNG_NAME.match(p.name)
            and not p.name.startswith(".")
        ]
        if foreign:
            raise ValueError(
                f"folder '{folder}' already holds image files not written by save_video "
                f"(e.g. '{sorted(foreign)[0]}'); loading it back would mix them in: use an "
                "empty folder"
            )
    digits = max(5, len(str(total - 1))) if total else 5
    with StagedOutputs() as staged:
        earlier = (
            [p.name for p in folder.iterdir() if _PNG_NAME.match(p.name)] if folder.is_dir() else []
        )
        stage = staged.folder(folder, replaces=earlier)  # stale frames of a longer video go
        count = 0
        for chunk in chunks:
            for image in _quantize(chunk, bit_depth):
                ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
                if not ok:
                    raise ValueError(f"OpenCV could not encode frame {count} as PNG")
                encoded.tofile(stage / f"{count:0{digits}d}.png")
                count += 1
        if count == 0:
            raise _no_frames(folder)


def _write_video_file(
    chunks: Iterable[Tensor],
    path: Path,
    fps: float,
    crf: int,
    codec: str | None,
    pix_fmt: str | None,
) -> None:
    import av

    name = _pick_codec(codec)
    pending = iter(chunks)
    first = next(pending, None)  # the frame size is needed before the stream is opened
    if first is None:
        raise _no_frames(path)
    height, width = int(first.shape[-2]), int(first.shape[-1])
    failed_upstream: list[BaseException] = []

    def pulled() -> Iterator[Tensor]:
        yield first
        while True:
            try:
                chunk = next(pending)
            except StopIteration:
                return
            except BaseException as err:  # the producer's own error: not an encoding error
                failed_upstream.append(err)
                raise
            yield chunk

    if pix_fmt is None:
        even = height % 2 == 0 and width % 2 == 0
        pix_fmt = "yuv420p" if even or name == "mpeg4" else "yuv444p"
    options: dict[str, str] = {}
    if name in ("libx264", "libx265"):
        options["crf"] = str(crf)
    elif name == "mpeg4":
        options["flags"] = "+qscale"
        options["global_quality"] = str(118 * min(31, max(1, round(crf / 6))))  # FF_QP2LAMBDA
    try:
        with atomic_path(path) as tmp, av.open(str(tmp), mode="w") as container:
            stream = container.add_stream(name, rate=Fraction(fps).limit_denominator(100000))
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            context = stream.codec_context
            yuv = pix_fmt.startswith("yuv")
            if yuv:  # tag BT.601 limited range: what the conversion below produces
                context.colorspace = 6  # AVCOL_SPC_SMPTE170M
                context.color_primaries = 6  # AVCOL_PRI_SMPTE170M
                context.color_trc = 6  # AVCOL_TRC_SMPTE170M
                context.color_range = 1  # AVCOL_RANGE_MPEG
            stream.options = options
            for chunk in pulled():
                for image in _quantize(chunk, 8):
                    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                    if yuv:
                        frame = frame.reformat(
                            format=pix_fmt, dst_colorspace="itu601", dst_color_range="MPEG"
                        )
                    container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    except BaseException as err:  # atomic_path removed the partial file; `path` is untouched
        if failed_upstream or not isinstance(err, (av.FFmpegError, OSError, ValueError)):
            raise
        raise ValueError(
            f"encoding '{path}' with codec '{name}' / pix_fmt '{pix_fmt}' failed: {err}"
        ) from err
