"""Sliding-window inference: :func:`deblur` runs any deblurring network over a whole video.

The network is called on overlapping temporal windows of ``spec.clip_length`` frames. The video
is reflect-padded in time by ``spec.past_frames`` frames at the start and ``spec.future_frames``
at the end, so the output has as many frames as the input; consecutive windows overlap by
``past_frames + future_frames`` frames, so every output frame is produced by exactly one
forward pass. Frames are padded spatially to ``spec.multiple`` and cropped back, values and
colours are mapped with the spec. Only one window at a time lives on the run device.

Example:
    >>> import torch
    >>> from ttblur.inference import deblur
    >>> from ttblur.testing import standin_model
    >>> video = torch.rand(7, 3, 30, 42)
    >>> out = deblur(standin_model("estrnn"), video, spec="estrnn", progress=False)
    >>> out.shape
    torch.Size([7, 3, 30, 42])
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ttblur.specs import (
    ModelSpec,
    eval_mode,
    infer_spec,
    model_device,
    model_dtype,
    pad_to_multiple,
)

__all__ = ["deblur", "reflect_index", "resolve_device", "window_plan"]


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; anything else -> ``torch.device(device)``."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def window_plan(num_frames: int, spec: ModelSpec, window: int | None = None) -> list[range]:
    """Windows over the time-padded sequence for a video of ``num_frames`` frames.

    The padded sequence has ``num_frames + past + future`` frames; padded frame ``i`` is video
    frame ``reflect_index(i - past, num_frames)``. Window ``w`` (a range of padded indices)
    produces output frames ``w.start .. w.stop - past - future - 1``; the windows partition the
    output frames ``0 .. num_frames - 1``. The last window is shortened when fewer frames
    remain.

    Args:
        num_frames: ``T >= 1``.
        spec: the network's spec.
        window: frames per forward pass; ``None`` uses ``spec.clip_length``.

    Raises:
        ValueError: ``num_frames < 1`` or ``window < past + future + 1``.
    """
    if num_frames < 1:
        raise ValueError(f"a video needs at least 1 frame, got {num_frames}")
    length = spec.clip_length if window is None else int(window)
    if length < spec.min_frames:
        raise ValueError(
            f"window={length} is too short for spec={spec.name!r}: it needs at least "
            f"{spec.min_frames} frames (past {spec.past_frames} + future {spec.future_frames} + 1)"
        )
    step = length - spec.context
    total = num_frames + spec.context
    plan = []
    for start in range(0, num_frames, step):
        plan.append(range(start, min(start + length, total)))
    return plan


def _to_video(video: Any) -> Tensor:
    """Turn the accepted inputs into a CPU float32 ``(T, 3, H, W)`` tensor, validated."""
    if isinstance(video, Tensor):
        frames = video
    elif isinstance(video, (str, Path, np.ndarray)):
        from ttblur.video import load_video  # lazy: optional decoding dependencies

        frames = load_video(video)
    elif isinstance(video, Iterable):
        items = [f if isinstance(f, Tensor) else torch.as_tensor(np.asarray(f)) for f in video]
        if not items:
            raise ValueError("the video has no frames (got an empty iterable)")
        shapes = {tuple(f.shape) for f in items}
        if len(shapes) != 1:
            raise ValueError(f"all frames must have the same shape, got {sorted(shapes)}")
        if items[0].ndim != 3 or items[0].shape[0] != 3:
            raise ValueError(
                f"frames from an iterable must be (3, H, W) tensors in [0, 1], got shape "
                f"{tuple(items[0].shape)}"
            )
        frames = torch.stack([f.detach().cpu() for f in items])
    else:
        raise ValueError(
            f"video must be a (T, 3, H, W) tensor, an ndarray, a path, or an iterable of "
            f"(3, H, W) frames; got {type(video).__name__}"
        )
    return _validate_video(frames)


def _validate_video(frames: Tensor) -> Tensor:
    if frames.ndim != 4:
        raise ValueError(
            f"video must be (T, 3, H, W), got {frames.ndim} dims {tuple(frames.shape)}"
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
    if not frames.is_floating_point():
        raise ValueError(
            f"video must be float in [0, 1], got dtype {frames.dtype} (divide uint8 by 255, or "
            "use ttblur.load_video)"
        )
    frames = frames.detach().to(device="cpu", dtype=torch.float32)
    if not torch.isfinite(frames).all():
        raise ValueError("video contains NaN or inf values")
    low, high = float(frames.min()), float(frames.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(
            f"video values must lie in [0, 1], got [{low:.4g}, {high:.4g}] "
            "(divide 8-bit frames by 255)"
        )
    return frames.clamp(0.0, 1.0)


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
        video: ``(T, 3, H, W)`` float tensor RGB in ``[0, 1]``, an iterable of ``(3, H, W)``
            frames, or anything :func:`ttblur.load_video` reads (ndarray ``(T, H, W, 3)``,
            folder of images, video file). ``T >= 1``: a video shorter than the window is
            handled by reflection in time.
        spec: the network's calling convention (name or :class:`~ttblur.specs.ModelSpec`);
            ``None`` uses ``model.spec`` when present, else ``"image"``. Verified with one tiny
            forward pass (:func:`~ttblur.specs.check_model`).
        device: run device; ``None`` picks CUDA when available, else CPU. If the model lives
            elsewhere it is moved there for the call and moved back afterwards.
        window: frames per forward pass (default ``spec.clip_length``); must be at least
            ``past_frames + future_frames + 1``. Smaller windows use less memory.
        progress: show a tqdm bar over the windows.

    Returns:
        ``(T, 3, H, W)`` float32 RGB in ``[0, 1]`` on the CPU.

    Raises:
        ValueError: invalid video (rank, channels, dtype, range, NaN/inf, no frames), invalid
            window, or a model that does not fit the spec (the message names ``spec=``).

    Notes:
        The model runs in eval mode under ``torch.no_grad``; afterwards every submodule gets
        its own previous train/eval flag back, the model returns to its original device, and
        ``spec.device_attribute`` (e.g. ESTRNN's ``model.device``) gets its old value back.
        Only the current window (plus the model) is on the run device.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    frames = _to_video(video)
    num_frames, _, height, width = frames.shape
    run_device = resolve_device(device)
    home = model_device(model)
    moved = home != run_device
    if moved:
        model.to(run_device)
    try:
        resolved = infer_spec(model, spec, device=run_device)
        plan = window_plan(num_frames, resolved, window)
        dtype = model_dtype(model)
        output = torch.empty(num_frames, 3, height, width, dtype=torch.float32)
        past = resolved.past_frames
        with eval_mode(model), resolved.on_device(model, run_device):
            for span in tqdm(plan, desc="deblur", unit="window", disable=not progress):
                indices = [reflect_index(i - past, num_frames) for i in span]
                clip = pad_to_multiple(frames[indices], resolved.multiple, mode=resolved.pad_mode)
                clip = clip.unsqueeze(0).to(device=run_device, dtype=dtype)
                restored = resolved.call(model, clip, pad=False)[0]
                restored = restored[..., :height, :width].float().clamp_(0.0, 1.0)
                output[span.start : span.start + restored.shape[0]] = restored.cpu()
    finally:
        if moved:
            model.to(home)
    return output
