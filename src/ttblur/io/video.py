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
chunks) without holding the clip in memory, :func:`video_info` reads frame count, size and
frame rate. :func:`save_video` (a video file with PyAV / ``libx264``, or a folder of PNGs) and
:func:`write_frames` (the same writer, fed a chunk at a time) live in
:mod:`ttblur.io.video_write` and are importable from here.

Example:
    >>> import torch
    >>> from ttblur.io.video import load_video
    >>> load_video(torch.zeros(4, 64, 96, 3, dtype=torch.uint8).numpy()).shape
    torch.Size([4, 3, 64, 96])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ttblur.io.frame_store import CHUNK_FRAMES, FrameStore
from ttblur.io.frames import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoSource,
    check_float_range,
    check_frames,
    float_chunks,
    frames_to_float,
)
from ttblur.io.paths import natural_key
from ttblur.io.video_write import save_video, write_frames

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "TruncatedVideoWarning",
    "VideoInfo",
    "VideoSource",
    "frame_files",
    "iter_video",
    "load_video",
    "save_video",
    "store_video",
    "unkept_metadata",
    "video_info",
    "write_frames",
]


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
        bit_depth: 8 when every sample has 8 bits (``uint8`` data, 8-bit images and
            streams), else 16 (``uint16`` or float data, 16-bit or float images, a stream of
            more than 8 bits, which is read as 16-bit RGB): the depth that keeps the source's
            precision in a PNG folder.
    """

    num_frames: int
    height: int
    width: int
    fps: float | None
    kind: str
    bit_depth: int = 8


# --------------------------------------------------------------------------- checks


def _check_count(value: int | None, name: str, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _too_few(count: int, min_frames: int) -> ValueError:
    return ValueError(f"video has {count} frames, fewer than the {min_frames} required")


# --------------------------------------------------------------------------- image files


def frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in natural order (hidden files ignored); the frames
    :func:`load_video` reads, in its order. ValueError when there is none, or when two files
    share a name but for the extension (``0001.png`` and ``0001.jpg``)."""
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    if not files:
        raise ValueError(
            f"folder '{folder}' has no image files ({', '.join(IMAGE_EXTENSIONS)}); nothing to load"
        )
    files.sort(key=lambda p: natural_key(p.name))
    by_stem: dict[str, Path] = {}
    for p in files:
        twin = by_stem.setdefault(p.stem, p)
        if twin is not p:  # 0001.png beside 0001.jpg: one frame twice, or two videos mixed
            raise ValueError(
                f"folder '{folder}' holds '{twin.name}' and '{p.name}': two images with one "
                "frame name; keep one format per frame folder"
            )
    return files


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
        check_float_range(image, f"image file '{path}'")
    return image


def _image_to_chw(image: np.ndarray) -> Tensor:
    return frames_to_float(image[None])[0]


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


def _deep(layout: Any) -> bool:
    """A PyAV pixel format of more than 8 bits per sample (decoded as 16-bit RGB)."""
    return max((c.bits for c in layout.components), default=8) > 8


def _frame_to_array(frame: Any) -> np.ndarray:
    return frame.to_ndarray(format="rgb48le" if _deep(frame.format) else "rgb24")


class TruncatedVideoWarning(UserWarning):
    """A video file decoded to fewer frames than its container declares (cut-off download,
    interrupted copy). The frames that could be decoded are returned; ``strict=True`` in
    :func:`load_video` / :func:`iter_video` turns this into a ``ValueError``."""


@dataclass(frozen=True)
class _DeclaredLength:
    """What a container says about a video stream's length, to tell a cut file from a whole one.

    ``frames`` is the stream's frame count when the header stores one (MP4, AVI: exact);
    otherwise ``seconds`` is the stream's declared duration (Matroska, WebM), compared with the
    time the last decoded frame ends, which holds for variable frame rates too (a count
    estimated as duration x rate does not). Both zero when neither is known.
    """

    frames: int = 0
    seconds: float = 0.0
    rate: float = 0.0

    def shortfall(self, decoded: int, last_end: float | None) -> str | None:
        """The reason the stream looks cut, or ``None`` when it is whole or cannot be judged.

        ``last_end`` is the time (seconds from the stream's start) the last decoded frame ends.
        """
        if self.frames > 0:
            if decoded < self.frames:
                return f"its container declares {self.frames} frames but only {decoded} could"
            return None
        if self.seconds <= 0 or self.rate <= 0:
            return None
        if last_end is None:  # no timestamps: fall back on duration x rate, one frame of slack
            expected = round(self.seconds * self.rate)
            if decoded < expected - 1:
                return f"its container declares about {expected} frames but only {decoded} could"
            return None
        if last_end + 1.5 / self.rate < self.seconds:  # more than a frame interval missing
            return (
                f"its container declares {self.seconds:.2f} s (about "
                f"{round(self.seconds * self.rate)} frames) but only {decoded} frames "
                f"({last_end:.2f} s) could"
            )
        return None


def _declared_length(container: Any, stream: Any) -> _DeclaredLength:
    if int(stream.frames or 0) > 0:
        return _DeclaredLength(frames=int(stream.frames))
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    else:
        return _DeclaredLength()
    return _DeclaredLength(seconds=seconds, rate=float(rate) if rate else 0.0)


def _frame_end(frame: Any, stream: Any, rate: float) -> float | None:
    """When ``frame`` ends, in seconds from the stream's start; ``None`` without timestamps."""
    if frame.pts is None or frame.time_base is None:
        return None
    start = stream.start_time * stream.time_base if stream.start_time is not None else 0
    duration = float(frame.duration * frame.time_base) if frame.duration else 0.0
    if duration <= 0 and rate > 0:
        duration = 1.0 / rate
    return float(frame.pts * frame.time_base - start) + duration


def _truncated(path: Path, reason: str, strict: bool) -> None:
    message = f"video file '{path}' is truncated or damaged: {reason} be decoded"
    if strict:
        raise ValueError(message)

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
        declared = _declared_length(container, stream)
        last_end: float | None = None
        count = 0
        size: tuple[int, int] | None = None
        frames = container.decode(stream)
        while max_frames is None or count < max_frames:
            try:
                frame = next(frames)
                array = _frame_to_array(frame)
            except StopIteration:
                reason = declared.shortfall(count, last_end)
                if reason is not None:
                    _truncated(path, reason, strict)
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
            last_end = _frame_end(frame, stream, declared.rate)
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
    if isinstance(source, (Tensor, np.ndarray)):
        check_frames(source)
        video = frames_to_float(source[:max_frames])
    else:
        path = _resolve_path(source)
        if path.is_dir():
            files = frame_files(path)[:max_frames]
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
    if isinstance(source, (Tensor, np.ndarray)):
        check_frames(source)
        if chunk_size is not None:
            return float_chunks(source[:max_frames], chunk_size)
        return (frames_to_float(f[None])[0] for f in source[:max_frames])
    path = _resolve_path(source)
    if path.is_dir():
        frames = _iter_folder(frame_files(path)[:max_frames])
    elif path.suffix.lower() in IMAGE_EXTENSIONS:
        frames = _iter_folder([path])
    else:
        _open_container(path).close()  # fail now on a missing stream / unreadable file
        frames = (_image_to_chw(a) for a in _decode_video(path, max_frames, strict))
    return frames if chunk_size is None else _chunked(frames, chunk_size)


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
        check_frames(source)
        t, _, h, w = source.shape
        depth = 8 if source.dtype == torch.uint8 else 16
        return VideoInfo(int(t), int(h), int(w), None, "tensor", depth)
    if isinstance(source, np.ndarray):
        check_frames(source)
        t, h, w, _ = source.shape
        return VideoInfo(int(t), int(h), int(w), None, "array", _depth_of(source))
    path = _resolve_path(source)
    if path.is_dir():
        files = frame_files(path)
        image = _read_image(files[0])
        h, w = image.shape[:2]
        return VideoInfo(len(files), int(h), int(w), None, "folder", _depth_of(image))
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        image = _read_image(path)
        h, w = image.shape[:2]
        return VideoInfo(1, int(h), int(w), None, "image", _depth_of(image))
    container = _open_container(path)
    with container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        h, w = int(stream.codec_context.height), int(stream.codec_context.width)
        layout = stream.codec_context.format
        depth = 16 if layout is not None and _deep(layout) else 8
        count = int(stream.frames or 0)
        if count == 0:
            count = sum(1 for p in container.demux(stream) if p.size > 0)
    return VideoInfo(count, h, w, fps, "file", depth)


def _depth_of(frames: np.ndarray) -> int:
    return 8 if frames.dtype == np.uint8 else 16


def unkept_metadata(source: VideoSource) -> list[str]:
    """What ttblur's frames and outputs do not carry of a video file: a display rotation
    (a phone's portrait video; frames are processed and written as stored, without the tag)
    and audio tracks (never copied). Empty for other sources. Decodes one frame.
    """
    if not isinstance(source, (str, os.PathLike)):
        return []
    path = Path(source).expanduser()
    if not path.is_file() or path.suffix.lower() not in VIDEO_EXTENSIONS:
        return []
    import av

    found = []
    try:
        with av.open(str(path)) as container:
            if container.streams.audio:
                found.append(f"{len(container.streams.audio)} audio track(s)")
            first = next(container.decode(container.streams.video[0]), None)
            rotation = int(getattr(first, "rotation", 0) or 0)
            if rotation:
                found.append(f"its {rotation} degree display rotation")
    except (av.FFmpegError, OSError, ValueError, IndexError):
        return []  # reported where the frames are read
    return found


def store_video(
    source: str | os.PathLike[str],
    *,
    directory: str | os.PathLike[str] | None = None,
    max_frames: int | None = None,
    progress: bool = False,
) -> FrameStore:
    """Decode a video file or frame folder into a :class:`FrameStore`, one chunk at a time.

    The frames are exactly those :func:`load_video` returns; memory holds one chunk of
    :data:`~ttblur.io.frame_store.CHUNK_FRAMES` frames at a time.

    Args:
        source: a video file or a frame folder.
        directory: where the temporary file lives (``None``: the system's temp dir).
        max_frames: stop after this many frames.
        progress: show a progress bar of the frames read.

    Raises:
        FileNotFoundError / ValueError: as :func:`~ttblur.io.video.iter_video`.
    """
    from tqdm.auto import tqdm

    chunks = iter_video(source, chunk_size=CHUNK_FRAMES, max_frames=max_frames)
    with tqdm(desc="reading frames", unit="frame", disable=not progress, leave=False) as bar:
        return FrameStore.from_chunks(chunks, directory=directory, on_frames=bar.update)
