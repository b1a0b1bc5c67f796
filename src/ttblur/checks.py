"""The checks an adaptation run makes on its inputs before any work.

:class:`~ttblur.pipeline.AdaptPipeline` calls them first, on the caller's model untouched, so
a bad input fails before any weights are loaded or any patch is cut: the config is resolved
(:func:`resolve_config`), the video is checked against the config and the model's spec
(:func:`check_video`) and the loss is tried once (:func:`check_loss`). ``ttblur.pipeline``
re-exports :func:`resolve_config` and :func:`check_loss`.

Example:
    >>> import torch
    >>> from ttblur.checks import check_loss, resolve_config
    >>> resolve_config({"seed": 3}).seed
    3
    >>> check_loss(torch.nn.functional.l1_loss, torch.device("cpu"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ttblur.config import AdaptConfig
from ttblur.finetune import LossFn, clip_radius
from ttblur.io.frame_store import Frames
from ttblur.specs import ModelSpec
from ttblur.stages.flow import MIN_FLOW_SIZE

__all__ = ["check_loss", "check_video", "resolve_config"]


def resolve_config(config: AdaptConfig | dict[str, Any] | str | Path | None) -> AdaptConfig:
    """An :class:`AdaptConfig` from a config, a dict, a JSON file path or ``None`` (defaults);
    a given config is copied, so the run never changes the caller's."""
    if config is None:
        return AdaptConfig()
    if isinstance(config, AdaptConfig):
        return config.model_copy(deep=True)
    if isinstance(config, dict):
        return AdaptConfig.model_validate(config)
    if isinstance(config, (str, Path)):
        return AdaptConfig.load(config)
    raise TypeError(f"config must be an AdaptConfig, a dict or a JSON path, got {type(config)}")


def check_loss(loss_fn: LossFn, device: torch.device) -> None:
    """Call ``loss_fn`` once on random ``(2, 3, 8, 8)`` tensors and check its result.

    Raises:
        ValueError: it fails, returns no finite scalar tensor, or ignores ``pred``.
    """
    # A local generator: checking the loss must not consume the caller's global RNG.
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, 8, 8, generator=gen).to(device).requires_grad_(True)
    target = torch.rand(2, 3, 8, 8, generator=gen).to(device)
    try:
        value = loss_fn(pred, target)
    except Exception as err:
        raise ValueError(
            f"loss_fn(pred, target) failed on (2, 3, 8, 8) tensors: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(value, Tensor) or value.numel() != 1 or value.ndim != 0:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"loss_fn must return a scalar tensor, got {shape}")
    if not value.requires_grad:
        raise ValueError("loss_fn's result does not depend on pred (no gradient would flow)")
    if not torch.isfinite(value.detach()).all():
        raise ValueError(
            f"loss_fn(pred, target) returned {float(value.detach())} on (2, 3, 8, 8) tensors in "
            "[0, 1]: it must be finite (fine-tuning on it could only diverge)"
        )


def _largest_patch(height: int, width: int) -> int:
    """A patch side that fits frames of ``height x width``: the shorter side rounded down to
    a multiple of 16 (the side itself below 16 px)."""
    side = min(height, width)
    return side - side % 16 if side >= 16 else side


def check_video(
    video: Frames, config: AdaptConfig, spec: ModelSpec, *, needs_flow: bool, patch_size: bool
) -> None:
    """Refuse a video the run cannot use, before any work.

    Args:
        video: ``(T, 3, H, W)`` frames.
        config: the run's config (``rsdm.border_frames``, ``rsdm.patch_size``).
        spec: the model's spec (its clip radius sets the fewest frames).
        needs_flow: the run estimates optical flow on the frames.
        patch_size: check the frames against ``config.rsdm.patch_size`` (a built-in detector
            will cut such patches).

    Raises:
        ValueError: too few frames, frames too small for the flow or for the patches.
    """
    num_frames, _, height, width = video.shape
    needed = max(2 * config.rsdm.border_frames + 1, 2 * clip_radius(spec) + 1, 5)
    if num_frames < needed:
        raise ValueError(
            f"video has {num_frames} frames; adapt needs at least {needed} (a patch at frame t "
            f"uses frames t-2..t+2 and the first and last {config.rsdm.border_frames} frames "
            "are never chosen)"
        )
    if needs_flow and min(height, width) < MIN_FLOW_SIZE:
        raise ValueError(
            f"frames are {height}x{width}; adapt estimates optical flow on them, which needs "
            f"frames of at least {MIN_FLOW_SIZE}x{MIN_FLOW_SIZE} px: use larger frames"
        )
    patch = config.rsdm.patch_size
    if patch_size and (height < patch or width < patch):
        raise ValueError(
            f"frames are {height}x{width}, smaller than the {patch}x{patch} pseudo-sharp patch; "
            "lower config.rsdm.patch_size (e.g. AdaptConfig(rsdm={'patch_size': "
            f"{_largest_patch(height, width)}}})) or use larger frames"
        )
