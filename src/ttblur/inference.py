"""Sliding-window inference: :func:`deblur`, :func:`iter_deblur` and :func:`deblur_file` run
any deblurring network over a video.

The network is called on overlapping temporal windows of ``spec.clip_length`` frames. The video
is reflect-padded in time by ``spec.past_frames`` frames at the start and ``spec.future_frames``
at the end, so the output has as many frames as the input; consecutive windows overlap by
``past_frames + future_frames`` frames, so every output frame is produced by exactly one
forward pass. Frames are padded spatially to ``spec.multiple`` and cropped back, values and
colours are mapped with the spec. Only one window at a time lives on the run device.

:func:`deblur` returns the whole restored video; :func:`iter_deblur` reads the input lazily
and yields restored frames one by one, holding only about one window of frames (it works on
videos whose length is unknown until the input ends); :func:`deblur_file` streams a video
file or frame folder into a video file or PNG folder. All three share one windowing routine,
so their frames are bit-identical.

Example:
    >>> import torch
    >>> from ttblur.inference import deblur, iter_deblur
    >>> from ttblur.testing import standin_model
    >>> video = torch.rand(7, 3, 30, 42)
    >>> model = standin_model("estrnn")
    >>> out = deblur(model, video, spec="estrnn", progress=False)
    >>> out.shape
    torch.Size([7, 3, 30, 42])
    >>> streamed = torch.stack(list(iter_deblur(model, video, spec="estrnn", progress=False)))
    >>> torch.equal(streamed, out)
    True
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ttblur.io.paths import PlannedOutput, check_planned_paths
from ttblur.io.video_write import output_is_file
from ttblur.specs import (
    ModelSpec,
    check_materialised,
    declared_spec,
    eval_mode,
    infer_spec,
    model_device,
    model_dtype,
    pad_to_multiple,
)

__all__ = [
    "deblur",
    "deblur_file",
    "iter_deblur",
    "reflect_index",
    "resolve_device",
    "to_video",
    "window_plan",
]

_SAVE_OPTIONS = ("crf", "codec", "pix_fmt", "bit_depth")


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; anything else -> ``torch.device(device)``.

    Raises:
        ValueError: a CUDA device when torch sees none (a CPU-only build, no driver), or a
            CUDA index beyond the GPUs it sees; checked here, before any work.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"device={str(resolved)!r}, but torch sees no CUDA GPU (torch "
                f"{torch.__version__}, built with CUDA {torch.version.cuda}); use device='cpu' "
                "or None (CUDA when available)"
            )
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device={str(resolved)!r}, but torch sees {count} CUDA GPU(s)")
    return resolved


def reflect_index(index: int, length: int) -> int:
    """Map a frame index outside ``[0, length)`` back inside by mirror reflection about the
    first and last frames (``-1 -> 1``, ``length -> length - 2``), repeated as needed.

    A one-frame sequence maps every index to 0.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if length == 1:
        return 0
    period = 2 * (length - 1)
    index %= period
    return index if index < length else period - index


# --------------------------------------------------------------------------- windowing


def _window_length(spec: ModelSpec, window: int | None) -> int:
    """Frames per forward pass, checked against the spec's border frames."""
    length = spec.clip_length if window is None else int(window)
    if length < spec.min_frames:
        raise ValueError(
            f"window={length} is too short for spec={spec.name!r}: it needs at least "
            f"{spec.min_frames} frames (past {spec.past_frames} + future {spec.future_frames} + 1)"
        )
    return length


class _KnownLength:
    """Stand-in for :class:`_FrameBuffer` when only the frame count matters."""

    def __init__(self, num_frames: int) -> None:
        self.num_frames = num_frames

    def read_through(self, index: int) -> int | None:
        return self.num_frames


class _FrameBuffer:
    """Frames of a video read in order from an iterator and kept only while a window may
    still need them.

    ``length`` is the frame count when it is known in advance; otherwise it becomes known
    when the iterator ends.
    """

    def __init__(self, frames: Iterator[Tensor], length: int | None = None) -> None:
        self._frames = frames
        self._kept: dict[int, Tensor] = {}
        self._first = 0  # lowest index still kept
        self._read = 0  # frames read so far
        self.length = length

    def read_through(self, index: int) -> int | None:
        """Read until frame ``index`` is in memory or the video ends.

        Returns:
            the frame count if it is known, else ``None`` (then the video has more than
            ``index`` frames).

        Raises:
            ValueError: the video has no frames.
        """
        while self._read <= index and (self.length is None or self._read < self.length):
            frame = next(self._frames, None)
            if frame is None:
                if self._read == 0:
                    raise ValueError("the video has no frames")
                self.length = self._read
                break
            self._kept[self._read] = frame
            self._read += 1
        return self.length

    def take(self, indices: list[int]) -> Tensor:
        """``(len(indices), 3, H, W)``: the frames at ``indices`` (all read and kept)."""
        return torch.stack([self._kept[i] for i in indices])

    def release_before(self, index: int) -> None:
        """Forget the frames before ``index``."""
        while self._first < min(index, self._read):
            self._kept.pop(self._first, None)
            self._first += 1


def _spans(
    spec: ModelSpec, length: int, frames: _FrameBuffer | _KnownLength
) -> Iterator[tuple[range, list[int], int]]:
    """The sliding windows, computed while the video is read.

    Yields ``(span, indices, keep_from)``: ``span`` is the window's range of time-padded
    indices (padded frame ``i`` is video frame ``reflect_index(i - past, T)``), ``indices``
    the video frames it holds, and ``keep_from`` the lowest video index a later window can
    need. A window is yielded as soon as the frames it holds are read; the frame count ``T``
    is needed only near the end, where the reflection (or the end of the video) starts.
    """
    past, context = spec.past_frames, spec.context
    step = length - context
    start = 0
    while True:
        # Highest video index this window holds if the video goes on past it (also enough
        # for the reflection about frame 0 at the start).
        total = frames.read_through(max(start + length - 1 - past, past - start))
        if total is not None and start >= total:
            return
        if total is None:  # the video has more frames than any index used here
            span = range(start, start + length)
            indices = [abs(i - past) for i in span]
        else:
            span = range(start, min(start + length, total + context))
            indices = [reflect_index(i - past, total) for i in span]
        start += step
        # Later windows read frames >= start - past, and reflect about the last frame back
        # to at least T - 1 - future >= start - future.
        yield span, indices, start - context


def window_plan(num_frames: int, spec: ModelSpec, window: int | None = None) -> list[range]:
    """Windows over the time-padded sequence for a video of ``num_frames`` frames.

    The padded sequence has ``num_frames + past + future`` frames; padded frame ``i`` is video
    frame ``reflect_index(i - past, num_frames)``. Window ``w`` (a range of padded indices)
    produces output frames ``w.start .. w.stop - past - future - 1``; the windows partition the
    output frames ``0 .. num_frames - 1``. The last window is shortened when fewer frames
    remain. :func:`deblur` and :func:`iter_deblur` run exactly these windows.

    Args:
        num_frames: ``T >= 1``.
        spec: the network's spec.
        window: frames per forward pass; ``None`` uses ``spec.clip_length``.

    Raises:
        ValueError: ``num_frames < 1`` or ``window < past + future + 1``.
    """
    if num_frames < 1:
        raise ValueError(f"a video needs at least 1 frame, got {num_frames}")
    length = _window_length(spec, window)
    return [span for span, _, _ in _spans(spec, length, _KnownLength(num_frames))]


def _restored_windows(
    model: nn.Module,
    frames: Iterator[Tensor],
    num_frames: int | None,
    spec: str | ModelSpec | None,
    device: torch.device | str | None,
    window: int | None,
    progress: bool,
    total_hint: int | None = None,
) -> Generator[Tensor, None, None]:
    """Run ``model`` window by window over validated CPU float32 ``(3, H, W)`` frames and
    yield each window's restored ``(n, 3, H, W)`` frames (CPU float32, clamped), in order.

    The model is moved to the run device at the first ``next`` and back when the generator
    ends or is closed. Eval mode, ``spec.device_attribute`` and disabled gradients hold only
    around each forward pass, never across a ``yield``: two iterators interleaved on one
    model (or the caller's own use of it between two windows) each see the model as the
    caller left it, and each window moves it back to the run device if something moved it.
    """
    run_device = resolve_device(device)
    home = model_device(model)
    moved = home != run_device
    if moved:
        model.to(run_device)
    try:
        resolved = infer_spec(model, spec, device=run_device)
        length = _window_length(resolved, window)
        dtype = model_dtype(model)
        buffer = _FrameBuffer(frames, num_frames)
        total = num_frames if num_frames is not None else total_hint
        bar = tqdm(total=total, desc="deblur", unit="frame", disable=not progress)
        with bar:
            for _, indices, keep_from in _spans(resolved, length, buffer):
                clip = buffer.take(indices)
                buffer.release_before(keep_from)
                height, width = clip.shape[-2:]
                clip = pad_to_multiple(clip, resolved.multiple, mode=resolved.pad_mode)
                clip = clip.unsqueeze(0).to(device=run_device, dtype=dtype)
                if moved and model_device(model) != run_device:
                    model.to(run_device)  # moved home by another iterator that finished
                with (
                    torch.no_grad(),
                    eval_mode(model),
                    resolved.on_device(model, run_device),
                ):
                    restored = resolved.call(model, clip, pad=False)[0]
                del clip
                restored = restored[..., :height, :width].float().clamp_(0.0, 1.0).cpu()
                bar.update(restored.shape[0])
                yield restored
                del restored  # not kept alive through the next forward pass
    finally:
        if moved:
            model.to(home)


# --------------------------------------------------------------------------- inputs


def _check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_materialised(model)


def _iter_frames(items: Iterable[Any]) -> Iterator[Tensor]:
    """``(3, H, W)`` frames or ``(n, 3, H, W)`` chunks (tensors or arrays) -> validated CPU
    float32 ``(3, H, W)`` frames in ``[0, 1]``, checked one chunk at a time."""
    shape: tuple[int, ...] | None = None
    index = 0
    for item in items:
        tensor = item if isinstance(item, Tensor) else torch.as_tensor(np.asarray(item))
        if tensor.ndim == 4 and tensor.shape[1] == 3:
            if tensor.shape[0] == 0:
                continue
            chunk = tensor
        elif tensor.ndim == 3 and tensor.shape[0] == 3:
            chunk = tensor.unsqueeze(0)
        else:
            raise ValueError(
                "frames from an iterable must be (3, H, W) tensors in [0, 1] (or (n, 3, H, W) "
                f"chunks), got shape {tuple(tensor.shape)} at frame {index}"
            )
        if shape is None:
            shape = tuple(chunk.shape[1:])
        elif tuple(chunk.shape[1:]) != shape:
            raise ValueError(
                f"all frames must have the same shape: frame {index} is "
                f"{tuple(chunk.shape[1:])}, frame 0 is {shape}"
            )
        for frame in _validate_video(chunk):
            yield frame
            index += 1


def to_video(video: Any) -> Tensor:
    """Turn the accepted inputs into a CPU float32 ``(T, 3, H, W)`` tensor, validated.

    The one video conversion of the Python API: :func:`deblur`, :func:`ttblur.adapt` and
    ``AdaptResult.deblur`` all accept exactly these inputs: a ``(T, 3, H, W)`` tensor (float
    in ``[0, 1]`` or ``uint8``), a ``(T, H, W, 3)`` array, a path, or an iterable of frames.
    """
    if isinstance(video, Tensor):
        return _validate_video(video)
    if isinstance(video, (str, os.PathLike, np.ndarray)):
        from ttblur.video import load_video  # lazy: optional decoding dependencies

        return _validate_video(load_video(video))
    if isinstance(video, Iterable):
        frames = list(_iter_frames(video))
        if not frames:
            raise ValueError("the video has no frames (got an empty iterable)")
        return torch.stack(frames)
    raise _unsupported(video)


def _stream(video: Any) -> tuple[Iterator[Tensor], int | None]:
    """Validated ``(3, H, W)`` frames of any input :func:`iter_deblur` accepts, read lazily,
    and the frame count when it is known without reading."""
    if isinstance(video, Tensor):
        _check_layout(video)
        return _iter_frames(video), int(video.shape[0])
    if isinstance(video, (str, os.PathLike, np.ndarray)):
        from ttblur.video import iter_video  # lazy: optional decoding dependencies

        count = int(video.shape[0]) if isinstance(video, np.ndarray) else None
        # iter_video already yields checked float32 (3, H, W) frames in [0, 1] of one size.
        return iter_video(video), count
    if isinstance(video, Iterable):
        return _iter_frames(video), None
    raise _unsupported(video)


def _unsupported(video: Any) -> ValueError:
    return ValueError(
        f"video must be a (T, 3, H, W) tensor, an ndarray, a path, or an iterable of "
        f"(3, H, W) frames; got {type(video).__name__}"
    )


def _check_layout(frames: Tensor) -> None:
    """Rank, channels, size and dtype of a ``(T, 3, H, W)`` tensor (no pass over values)."""
    if frames.ndim != 4:
        hint = "; add a time axis with video.unsqueeze(0)" if frames.ndim == 3 else ""
        raise ValueError(
            f"video must be (T, 3, H, W), got {frames.ndim} dims {tuple(frames.shape)}{hint}"
        )
    if frames.shape[1] != 3:
        raise ValueError(
            f"video must have 3 (RGB) channels in dim 1, got shape {tuple(frames.shape)}"
            + ("; it looks like (T, H, W, 3): permute(0, 3, 1, 2)" if frames.shape[-1] == 3 else "")
        )
    if frames.shape[0] < 1:
        raise ValueError("the video has no frames (T = 0)")
    if frames.shape[2] < 1 or frames.shape[3] < 1:
        raise ValueError(f"frames must be at least 1x1, got {tuple(frames.shape[2:])}")
    if frames.dtype != torch.uint8 and not frames.is_floating_point():
        raise ValueError(
            f"video must be float in [0, 1] or uint8, got dtype {frames.dtype} (divide other "
            "integer frames by their maximum, or use ttblur.load_video)"
        )


def _validate_video(frames: Tensor) -> Tensor:
    """A ``(T, 3, H, W)`` tensor -> new CPU float32 video in ``[0, 1]``.

    The conversion is :func:`ttblur.load_video`'s, which :func:`ttblur.adapt` uses too, so
    both accept the same tensors: float in ``[0, 1]`` (within ``1e-3``, clamped) or ``uint8``
    (divided by 255); NaN / inf and values out of range are refused.
    """
    from ttblur.video import load_video  # lazy: optional decoding dependencies

    _check_layout(frames)
    return load_video(frames.detach()).to("cpu")


# --------------------------------------------------------------------------- public API


@torch.no_grad()
def deblur(
    model: nn.Module,
    video: Any,
    *,
    spec: str | ModelSpec | None = None,
    device: torch.device | str | None = None,
    window: int | None = None,
    progress: bool = True,
) -> Tensor:
    """Deblur a whole video with ``model`` using sliding windows.

    Args:
        model: the deblurring network (``nn.Module``).
        video: ``(T, 3, H, W)`` tensor RGB (float in ``[0, 1]`` or ``uint8``, as
            :func:`ttblur.adapt` accepts), an iterable of ``(3, H, W)`` frames (or
            ``(n, 3, H, W)`` chunks), or anything :func:`ttblur.load_video` reads (ndarray
            ``(T, H, W, 3)``, folder of images, video file). ``T >= 1``: a video shorter than
            the window is handled by reflection in time.
        spec: the network's calling convention (name or :class:`~ttblur.specs.ModelSpec`);
            ``None`` uses ``model.spec`` when present, else ``"image"``. Verified with one tiny
            forward pass (:func:`~ttblur.specs.check_model`).
        device: run device; ``None`` picks CUDA when available, else CPU. If the model lives
            elsewhere it is moved there for the call and moved back afterwards.
        window: frames per forward pass (default ``spec.clip_length``); must be at least
            ``past_frames + future_frames + 1``. Smaller windows use less memory.
        progress: show a tqdm bar over the frames.

    Returns:
        ``(T, 3, H, W)`` float32 RGB in ``[0, 1]`` on the CPU.

    Raises:
        ValueError: invalid video (rank, channels, dtype, range, NaN/inf, no frames), invalid
            window, or a model that does not fit the spec (the message names ``spec=``).

    Notes:
        The model runs in eval mode under ``torch.no_grad``; afterwards every submodule gets
        its own previous train/eval flag back, the model returns to its original device, and
        ``spec.device_attribute`` (e.g. ESTRNN's ``model.device``) gets its old value back.
        Only the current window (plus the model) is on the run device. The whole input and
        output live in CPU memory: use :func:`iter_deblur` or :func:`deblur_file` for long
        videos.
    """
    _check_model(model)
    _window_length(declared_spec(model, spec), window)  # before a video file is decoded
    resolve_device(device)
    frames = to_video(video)
    output = torch.empty_like(frames)
    done = 0
    for restored in _restored_windows(
        model, iter(frames), int(frames.shape[0]), spec, device, window, progress
    ):
        output[done : done + restored.shape[0]] = restored
        done += restored.shape[0]
    return output


def iter_deblur(
    model: nn.Module,
    frames: Any,
    *,
    spec: str | ModelSpec | None = None,
    device: torch.device | str | None = None,
    window: int | None = None,
    progress: bool = True,
) -> Iterator[Tensor]:
    """Deblur a video frame by frame, reading it lazily: memory is bounded by the window,
    not by the length of the video.

    The frames are bit-identical to :func:`deblur`'s on the same input: the same windows
    (:func:`window_plan`) run the same forward passes. Only the frames the current window
    holds, plus the few a later window may still need (``past + future`` frames of overlap
    and, at the end, the last ``future`` frames for the reflection), are kept. The video's
    length may be unknown until the input ends: the first windows are run as soon as their
    frames are read.

    Args:
        model: the deblurring network (``nn.Module``).
        frames: anything :func:`deblur` accepts. Paths and ``(T, H, W, 3)`` arrays are read
            with :func:`ttblur.video.iter_video` (one frame at a time); an iterable or
            iterator may yield ``(3, H, W)`` frames or ``(n, 3, H, W)`` chunks (such as
            ``iter_video(path, chunk_size=n)``), float in ``[0, 1]`` or ``uint8``, on any
            device.
        spec: as :func:`deblur`.
        device: as :func:`deblur`.
        window: as :func:`deblur`; the memory held is about ``window + future_frames`` input
            frames plus one window of output.
        progress: show a tqdm bar over the frames (its total is shown when known).

    Returns:
        an iterator of restored ``(3, H, W)`` float32 RGB frames in ``[0, 1]`` on the CPU, in
        order, one per input frame (each window's frames arrive together).

    Raises:
        ValueError: at the call: a non-module ``model``, an unknown ``spec``, a window shorter
            than the spec's border frames, a tensor of the wrong rank/channels/dtype, a missing
            or unreadable path (as :func:`ttblur.video.iter_video`). While iterating: a frame
            that is invalid (dtype, range, NaN/inf, shape differing from the first), an empty
            input, or a model that does not fit the spec (checked by one tiny forward pass
            before the first window).

    Notes:
        The model is moved to ``device``, put in eval mode and given ``spec.device_attribute``
        at the first ``next``; everything is restored when the iterator is exhausted or
        closed (``iterator.close()``, or ``contextlib.closing``; dropping the last reference
        also closes it). Gradients are disabled only inside the forward passes.
    """
    _check_model(model)
    _window_length(declared_spec(model, spec), window)
    stream, count = _stream(frames)
    total = count
    if total is None and progress and isinstance(frames, (str, os.PathLike)):
        from ttblur.video import video_info

        total = video_info(frames).num_frames  # for the progress bar only
    chunks = _restored_windows(model, stream, count, spec, device, window, progress, total)
    return _unbatch(chunks)


def _unbatch(chunks: Generator[Tensor, None, None]) -> Iterator[Tensor]:
    with closing(chunks):
        for chunk in chunks:
            yield from chunk.unbind(0)


def deblur_file(
    model: nn.Module,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    spec: str | ModelSpec | None = None,
    device: torch.device | str | None = None,
    window: int | None = None,
    fps: float | None = None,
    progress: bool = True,
    **save_kwargs: Any,
) -> Path:
    """Deblur a video file or frame folder into a video file or PNG folder, streaming.

    Frames are decoded, restored (:func:`iter_deblur`) and encoded one window at a time, so
    memory is bounded by the window, not by the length of the video. The frames written are
    those :func:`deblur` would return, quantised exactly as :func:`ttblur.save_video` does.

    Args:
        model: the deblurring network (``nn.Module``).
        src: a video file or a folder of frames (anything :func:`ttblur.video.iter_video`
            reads from disk).
        dst: ``.mp4 .mkv .avi .mov .m4v``: a video file encoded with PyAV as
            :func:`ttblur.save_video` does (``libx264`` CRF 18, ``yuv420p``, BT.601 tags);
            any other path: a folder of PNGs (``00000.png, ...``). Must differ from ``src``.
        spec: as :func:`deblur`.
        device: as :func:`deblur`.
        window: as :func:`deblur`.
        fps: frame rate of a video ``dst``; ``None`` keeps the source's
            (:func:`ttblur.video.video_info`), or 25 for a frame folder.
        progress: show a tqdm bar over the frames.
        **save_kwargs: ``crf``, ``codec``, ``pix_fmt``, ``bit_depth`` as in
            :func:`ttblur.save_video`; a PNG-folder ``dst`` is written with the source's
            depth (``bit_depth`` of :func:`ttblur.video.video_info`: 16 for 16-bit images
            and for streams of more than 8 bits) unless ``bit_depth`` is given.

    Returns:
        ``dst`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: as :func:`iter_deblur` and :func:`ttblur.save_video` (options are
            checked before any frame is decoded); ``dst`` equal to ``src``.
        TypeError: an unknown keyword in ``save_kwargs``.

    Notes:
        The output is written atomically: a failed or interrupted run leaves an earlier file
        (or frame folder) at ``dst`` as it was and no partial file under the final name.
    """
    from ttblur.io.video import unkept_metadata, video_info, write_frames

    unknown = sorted(set(save_kwargs) - set(_SAVE_OPTIONS))
    if unknown:
        raise TypeError(
            f"deblur_file got unexpected keyword(s) {', '.join(unknown)}; the save options are "
            f"{', '.join(_SAVE_OPTIONS)}"
        )
    if not isinstance(src, (str, os.PathLike)) or not isinstance(dst, (str, os.PathLike)):
        raise ValueError(
            f"src and dst must be paths, got {type(src).__name__} and {type(dst).__name__} "
            "(use iter_deblur or deblur for tensors)"
        )
    _check_model(model)
    _window_length(declared_spec(model, spec), window)
    src_path, dst_path = Path(src).expanduser(), Path(dst).expanduser()
    if src_path.resolve() == dst_path.resolve() or (
        dst_path.exists() and src_path.exists() and os.path.samefile(src_path, dst_path)
    ):
        raise ValueError(f"dst must differ from src (both are '{src}', or links to one file)")
    # The CLI's rules: no frame of a PNG-folder dst may be src, dst not inside a src folder ...
    folder = not output_is_file(dst_path)
    check_planned_paths(
        [("src", src_path)], [PlannedOutput("dst", dst_path, folder, frames=folder)]
    )
    info = video_info(src)
    unkept = unkept_metadata(src_path)
    if folder:
        save_kwargs.setdefault("bit_depth", info.bit_depth)  # a PNG folder keeps the precision
    elif info.bit_depth > 8:
        unkept.append("its samples' bits beyond 8 (video files hold 8; a PNG folder keeps 16)")
    if unkept:
        warnings.warn(
            f"'{dst}' is written without {' and '.join(unkept)} of '{src}' (frames are read "
            "and written as stored; ttblur copies no audio or display tags)",
            UserWarning,
            stacklevel=2,
        )
    rate = fps if fps is not None else (info.fps or 25.0)
    stream, _ = _stream(src)
    chunks = _restored_windows(model, stream, None, spec, device, window, progress, info.num_frames)
    with closing(chunks):
        return write_frames(chunks, dst, rate, total=info.num_frames, **save_kwargs)
