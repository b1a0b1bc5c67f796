"""Disk-backed frames: a ``(T, C, H, W)`` float32 video that lives in a temporary file.

:class:`FrameStore` is what lets :func:`ttblur.adapt` run on a long video file in bounded
memory: the video is decoded once, frame by frame, into an unnamed temporary file, and the
stages read back only the frames they index (a patch's frame and its neighbours, a chunk of the
sharpness pass). The per-pixel blur maps of the detector are kept the same way.

Frames are stored losslessly: as ``uint8`` while every frame is exactly ``k / 255`` (8-bit
sources: every mp4 decoded by PyAV, 8-bit PNG folders), else as float32 (16-bit or float
sources; the frames written so far are converted once). Reading returns exactly the float32
values written, so a stage sees the same numbers as from the in-memory tensor.

The file is created with :func:`tempfile.TemporaryFile` (unnamed on Linux): its disk space is
freed when the store is closed or garbage-collected (without a ``ResourceWarning``), and nothing
is left behind by a crash.
Reads use ``os.preadv`` into fresh buffers, so the frames read stay out of the process's
resident memory once dropped (the operating system's page cache holds the file instead).

A store answers the parts of the :class:`torch.Tensor` interface the stages use on a video:
``shape``, ``ndim``, ``dtype``, ``device``, ``len()``, ``is_floating_point()``, ``numel()``,
``detach()`` / ``float()`` (itself), ``to(device)`` (a view that reads onto that device) and
indexing by an int, a slice (any step), a list / 1-D integer tensor of frame indices, or a
tuple whose first element is one of those (the rest indexes the frames read). Whole-video
reductions go through :func:`per_frame`, which works on tensors and stores alike.

Example:
    >>> store = FrameStore.from_chunks([torch.rand(4, 3, 8, 8)])
    >>> store.shape, store[1:3].shape
    (torch.Size([4, 3, 8, 8]), torch.Size([2, 3, 8, 8]))
"""

from __future__ import annotations

import builtins
import os
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CHUNK_FRAMES", "FrameStore", "Frames", "per_frame"]

#: Frames read per chunk by :func:`per_frame` and the sharpness pass.
CHUNK_FRAMES = 8

_DTYPES = {"uint8": np.uint8, "float32": np.float32}


def _decode(raw: np.ndarray) -> Tensor:
    """Stored records -> float32 frames (``uint8`` is ``k / 255``)."""
    tensor = torch.from_numpy(raw)
    if raw.dtype == np.uint8:
        return tensor.float() / 255.0
    return tensor


def _as_uint8(frames: Tensor) -> np.ndarray | None:
    """The frames as ``uint8`` if every value is exactly ``k / 255``, else None."""
    levels = torch.round(frames * 255.0)
    if levels.min() < 0 or levels.max() > 255:
        return None
    codes = levels.to(torch.uint8)
    if not torch.equal(codes.float() / 255.0, frames):
        return None
    return codes.numpy()


class _Backing:
    """The temporary file and the layout of its records (one record per frame)."""

    def __init__(self, frame_shape: tuple[int, ...], encoding: str, directory: Path | None):
        self.frame_shape = frame_shape
        self.directory = directory
        self.encoding = encoding
        self.dtype = _DTYPES[encoding]
        self.record = int(np.prod(frame_shape)) * np.dtype(self.dtype).itemsize
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=directory, prefix="ttblur-frames-")
        # Closed when the backing is collected, quietly: a store still held by a run's output
        # (the detector's maps) has no other owner to close it.
        self._closer = weakref.finalize(self, self.file.close)
        self.count = 0
        self.ranges: dict[int, tuple[float, float]] = {}  # value range per pooling factor

    def write(self, start: int, records: np.ndarray) -> None:
        data = np.ascontiguousarray(records, dtype=self.dtype)
        view = data.data.cast("B")
        offset = start * self.record
        while view:
            written = os.pwrite(self.file.fileno(), view, offset)
            view, offset = view[written:], offset + written
        self.count = max(self.count, start + int(records.shape[0]))
        self.ranges.clear()

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.frame_shape), dtype=self.dtype)
        view = out.data.cast("B")
        offset = start * self.record
        while view:
            got = os.preadv(self.file.fileno(), [view], offset)
            if got <= 0:
                raise OSError(f"frame store file ended at byte {offset}")
            view, offset = view[got:], offset + got
        return out

    def close(self) -> None:
        self._closer()


class FrameStore:
    """A read-only ``(T, C, H, W)`` float32 video kept in a temporary file.

    Build one with :meth:`from_chunks` (frames, any length), :func:`ttblur.io.video.store_video`
    (a path) or :meth:`create` + :meth:`write` (maps computed
    chunk by chunk). See the module docstring for the tensor interface it answers.

    Shape:
        - ``store[i]``: ``(C, H, W)``; ``store[a:b]``, ``store[[i, j]]``: ``(n, C, H, W)``.
    """

    def __init__(self, backing: _Backing, device: torch.device, pool: int = 1) -> None:
        self._backing = backing
        self._device = device
        self._pool = pool

    # ------------------------------------------------------------------ building
    @classmethod
    def create(
        cls, shape: tuple[int, int, int, int], *, directory: str | os.PathLike[str] | None = None
    ) -> FrameStore:
        """An empty float32 store of ``shape`` to fill with :meth:`write` (reads of frames not
        yet written are zeros)."""
        if len(shape) != 4 or min(shape) < 1:
            raise ValueError(f"shape must be (T, C, H, W) with positive sizes, got {shape}")
        backing = _Backing(tuple(int(s) for s in shape[1:]), "float32", _directory(directory))
        backing.file.truncate(int(shape[0]) * backing.record)
        backing.count = int(shape[0])
        return cls(backing, torch.device("cpu"))

    @classmethod
    def from_chunks(
        cls,
        chunks: Iterable[Tensor],
        *,
        directory: str | os.PathLike[str] | None = None,
        on_frames: Callable[[int], None] | None = None,
    ) -> FrameStore:
        """Write ``(n, C, H, W)`` float32 chunks (all frames of one shape) to a new store.

        Args:
            chunks: the frames, chunk by chunk, on any device.
            directory: where the temporary file lives (``None``: the system's temp dir).
            on_frames: called with the number of frames of each chunk once it is written.

        Raises:
            ValueError: no frames, a chunk that is not 4-D float, or frames of another shape.
        """
        backing: _Backing | None = None
        for chunk in chunks:
            if not isinstance(chunk, Tensor) or chunk.ndim != 4 or not chunk.is_floating_point():
                got = tuple(chunk.shape) if isinstance(chunk, Tensor) else type(chunk).__name__
                raise ValueError(f"chunks must be (n, C, H, W) float tensors, got {got}")
            frames = chunk.detach().to("cpu", torch.float32)
            if frames.shape[0] == 0:  # an empty chunk adds nothing (and has no values to scan)
                continue
            if backing is None:  # 8-bit until a chunk is not (_append converts then)
                backing = _Backing(tuple(frames.shape[1:]), "uint8", _directory(directory))
            elif tuple(frames.shape[1:]) != backing.frame_shape:
                raise ValueError(
                    f"frame {backing.count} is {tuple(frames.shape[1:])}, the first frames are "
                    f"{backing.frame_shape}: all frames must have one shape"
                )
            backing = _append(backing, frames)
            if on_frames is not None:
                on_frames(int(frames.shape[0]))
        if backing is None or backing.count == 0:
            raise ValueError("the video has no frames")
        return cls(backing, torch.device("cpu"))

    def write(self, start: int, frames: Tensor) -> None:
        """Write ``(n, C, H, W)`` float32 frames at ``start`` (stores made by :meth:`create`)."""
        if self._backing.encoding != "float32" or self._pool != 1:
            raise ValueError("only stores made by FrameStore.create can be written")
        if tuple(frames.shape[1:]) != self._backing.frame_shape or start < 0:
            raise ValueError(f"cannot write {tuple(frames.shape)} frames at {start} to {self}")
        if start + frames.shape[0] > len(self):
            raise ValueError(f"writing {frames.shape[0]} frames at {start} overruns {len(self)}")
        self._backing.write(start, frames.detach().to("cpu", torch.float32).numpy())

    # ------------------------------------------------------------------ tensor interface
    @property
    def shape(self) -> torch.Size:
        channels, height, width = self._backing.frame_shape
        return torch.Size(
            (self._backing.count, channels, height // self._pool, width // self._pool)
        )

    @property
    def ndim(self) -> int:
        return 4

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def encoding(self) -> str:
        """How frames are kept on disk: ``"uint8"`` or ``"float32"``."""
        return self._backing.encoding

    @property
    def directory(self) -> Path | None:
        """The folder of the temporary file (``None``: the system's temp dir)."""
        return self._backing.directory

    @property
    def nbytes_on_disk(self) -> int:
        """Size of the temporary file, bytes."""
        return self._backing.count * self._backing.record

    def __len__(self) -> int:
        return self._backing.count

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def is_floating_point(self) -> bool:
        return True

    def detach(self) -> FrameStore:
        return self

    def float(self) -> FrameStore:
        return self

    def cpu(self) -> FrameStore:
        return self.to("cpu")

    def to(self, *args: Any, **kwargs: Any) -> FrameStore:
        """A view reading onto another device (``dtype`` may only be float32)."""
        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"FrameStore.to() got unexpected arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            else:
                device = arg
        if dtype is not None and dtype != torch.float32:
            raise TypeError(f"a FrameStore reads float32 frames, cannot convert to {dtype}")
        target = torch.device(device) if device is not None else self._device
        return FrameStore(self._backing, target, self._pool)

    def pooled(self, factor: int) -> FrameStore:
        """A view whose frames are ``F.avg_pool2d(frame, factor)`` of these."""
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        return FrameStore(self._backing, self._device, self._pool * factor)

    def value_range(self) -> tuple[builtins.float, builtins.float]:
        """Minimum and maximum over all frames (NaN if any is NaN), read once and remembered
        until the next :meth:`write`."""
        if self._pool not in self._backing.ranges:
            ranges = per_frame(self, lambda chunk: torch.stack(torch.aminmax(chunk)).view(1, 2))
            self._backing.ranges[self._pool] = (
                float(ranges[:, 0].min()),
                float(ranges[:, 1].max()),
            )
        return self._backing.ranges[self._pool]

    def frames(self, start: int, stop: int) -> Tensor:
        """Frames ``start .. stop - 1`` as one ``(n, C, H, W)`` float32 tensor."""
        start, stop, _ = slice(start, stop).indices(len(self))
        if stop <= start:
            channels, height, width = self.shape[1:]
            return torch.empty(0, channels, height, width, device=self._device)
        out = _decode(self._backing.read(start, stop))
        if self._pool > 1:
            out = F.avg_pool2d(out, self._pool)
        return out.to(self._device)

    def __getitem__(self, index: Any) -> Tensor:
        """Frames as a tensor would give them: ``store[i]`` ``(C, H, W)``, ``store[a:b]``,
        ``store[[i, j]]``, ``store[i, c, y0:y1]``, ``store[..., a:b]``. Only the frames asked
        for are read. Boolean masks and ``None`` in the frame position are refused
        (``TypeError``)."""
        if isinstance(index, tuple):
            index = _expand_ellipsis(index, len(self.shape))
            if not index:
                return self.frames(0, len(self))
            head, rest = index[0], index[1:]
            picked = self[head]
            if _is_scalar(head):
                return picked[rest]
            key = (slice(None), *rest)
            return picked[key]
        if _is_scalar(index):
            position = int(index)
            if not -len(self) <= position < len(self):
                raise IndexError(f"frame {position} is out of range for {len(self)} frames")
            position %= len(self)
            return self.frames(position, position + 1)[0]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self.frames(start, stop)
            return self[list(range(start, stop, step))]
        positions = _positions(index)
        if not positions:
            return self.frames(0, 0)
        return torch.stack([self[i] for i in positions])

    def __iter__(self) -> Iterator[Tensor]:
        """The frames ``(C, H, W)`` in order, read :data:`CHUNK_FRAMES` at a time."""
        for start in range(0, len(self), CHUNK_FRAMES):
            yield from self.frames(start, start + CHUNK_FRAMES)

    def __repr__(self) -> str:
        return (
            f"FrameStore(shape={tuple(self.shape)}, encoding={self.encoding!r}, "
            f"device={str(self._device)!r})"
        )

    def close(self) -> None:
        """Free the temporary file now (it is freed anyway when the store is collected)."""
        self._backing.close()


#: A video the stages accept: an in-memory tensor or a disk-backed store.
Frames = Tensor | FrameStore


def _is_scalar(index: Any) -> bool:
    if isinstance(index, Tensor):
        return index.ndim == 0 and index.dtype != torch.bool
    return isinstance(index, (int, np.integer)) and not isinstance(index, bool)


def _expand_ellipsis(index: tuple[Any, ...], ndim: int) -> tuple[Any, ...]:
    """``(..., k)`` -> ``(:, :, :, k)`` for a ``ndim``-dimensional store."""
    if not any(part is Ellipsis for part in index):
        return index
    at = next(i for i, part in enumerate(index) if part is Ellipsis)
    consumed = sum(1 for part in index if part is not None and part is not Ellipsis)
    return (*index[:at], *([slice(None)] * (ndim - consumed)), *index[at + 1 :])


def _positions(index: Any) -> list[int]:
    """Frame positions of a sequence / tensor / array index; masks and the rest refused."""
    values = index.tolist() if isinstance(index, (Tensor, np.ndarray)) else index  # bools stay
    listed = values if isinstance(values, (list, tuple, range)) else [values]
    if any(isinstance(v, (bool, np.bool_)) for v in listed):
        raise TypeError("a FrameStore is not indexed by a boolean mask; select frame numbers")
    if isinstance(values, (list, tuple, range)) and all(
        isinstance(v, (int, np.integer)) for v in values
    ):
        return [int(v) for v in values]
    raise TypeError(
        f"a FrameStore's frames are indexed by an int, a slice, a sequence of ints or an "
        f"integer tensor, not {index!r:.60}"
    )


def _directory(directory: str | os.PathLike[str] | None) -> Path | None:
    if directory is None:
        return None
    path = Path(directory)
    if not path.is_dir():
        raise ValueError(f"directory for temporary frames '{path}' does not exist")
    return path


def _append(backing: _Backing, frames: Tensor) -> _Backing:
    """Write ``frames`` after the last record; switch an 8-bit store to float32 (converting
    what is written) when these frames are not exactly 8-bit."""
    if backing.encoding == "uint8":
        codes = _as_uint8(frames)
        if codes is not None:
            backing.write(backing.count, codes)
            return backing
        converted = _Backing(backing.frame_shape, "float32", backing.directory)
        for start in range(0, backing.count, CHUNK_FRAMES):
            stop = min(start + CHUNK_FRAMES, backing.count)
            converted.write(start, _decode(backing.read(start, stop)).numpy())
        backing.close()
        backing = converted
    backing.write(backing.count, frames.numpy())
    return backing


def per_frame(
    frames: Frames, fn: Callable[[Tensor], Tensor], *, chunk: int = CHUNK_FRAMES
) -> Tensor:
    """``fn`` applied to ``(n, C, H, W)`` chunks of ``frames``, results concatenated on dim 0.

    ``fn`` must treat frames independently (a per-frame statistic, a pooling): then the
    result does not depend on the chunking, and a store is read ``chunk`` frames at a time.
    A tensor is passed whole.
    """
    if isinstance(frames, Tensor):
        return fn(frames)
    parts = [fn(frames.frames(s, s + chunk)) for s in range(0, len(frames), chunk)]
    return torch.cat(parts)
