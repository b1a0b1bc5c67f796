"""The checks an adaptation run makes on its inputs before any work.

:class:`~ttblur.pipeline.AdaptPipeline` calls them first, on the caller's model untouched, so
a bad input fails before any weights are loaded or any patch is cut: the config is resolved
(:func:`resolve_config`), the video is checked against the config and the model's spec
(:func:`check_video`) and the loss is tried once (:func:`check_loss`, defined beside
fine-tuning in :mod:`ttblur.finetune`). ``ttblur.pipeline`` re-exports
:func:`resolve_config` and :func:`check_loss`.

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

from ttblur.config import AdaptConfig
from ttblur.finetune import check_crop_size, check_loss, clip_radius
from ttblur.io.frame_store import Frames
from ttblur.specs import ModelSpec, check_materialised
from ttblur.stages.flow import MIN_FLOW_SIZE
from ttblur.stages.rsdm import candidate_grid

__all__ = [
    "available_memory",
    "check_loss",
    "check_materialised",
    "check_pair_memory",
    "check_video",
    "pair_memory",
    "resolve_config",
]

#: float32 tensors of ``(p, p)`` RGB patches held per pseudo pair, per frame of its clip
#: (``L = 2 * radius + 1``): the clip twice (synthesized, then the training inputs), plus the
#: target, the condition map and the sharp patch.
_PATCH_COPIES_PER_CLIP_FRAME = 2
_PATCH_COPIES_PER_PAIR = 3


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


def _largest_patch(height: int, width: int) -> int:
    """A patch side that fits frames of ``height x width``: the shorter side rounded down to
    a multiple of 16 (the side itself below 16 px)."""
    side = min(height, width)
    return side - side % 16 if side >= 16 else side


def check_video(
    video: Frames | tuple[int, ...],
    config: AdaptConfig,
    spec: ModelSpec,
    *,
    needs_flow: bool,
    patch_size: int | None,
    patch_setting: str = "rsdm.patch_size",
) -> None:
    """Refuse a video the run cannot use, before any work.

    Args:
        video: ``(T, 3, H, W)`` frames, or their shape (a file's, before it is decoded).
        config: the run's config (``rsdm.border_frames``, ``rsdm.patch_size``).
        spec: the model's spec (its clip radius sets the fewest frames).
        needs_flow: the run estimates optical flow on the frames.
        patch_size: the side of the patches the detector will cut (``config.rsdm.patch_size``
            for one built from the config, a given detector object's own ``patch_size``), to
            check the frames and ``config.finetune.crop_size`` against; None: unknown (a user
            detector's business).
        patch_setting: what sets ``patch_size``, named in the message.

    Raises:
        ValueError: too few frames, frames too small for the flow or for the patches, a
            fine-tuning crop larger than the patches.
    """
    num_frames, _, height, width = video if isinstance(video, tuple) else video.shape
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
    if patch_size is None:
        return
    patch = patch_size
    if height < patch or width < patch:
        largest = _largest_patch(height, width)
        where = (
            f"rsdm.patch_size to at most {largest} (command line: --patch-size {largest})"
            if patch_setting == "rsdm.patch_size"
            else f"{patch_setting} to at most {largest}"
        )
        raise ValueError(
            f"frames are {height}x{width}, smaller than the {patch}x{patch} pseudo-sharp patch; "
            f"set {where} or use larger frames"
        )
    check_crop_size(config.finetune.crop_size, patch)


def pair_memory(config: AdaptConfig, spec: ModelSpec, shape: tuple[int, ...]) -> tuple[int, int]:
    """The most pseudo-sharp patches the built-in detector keeps on a video of ``shape``
    (``rsdm.ratio`` of its candidates, at most ``rsdm.max_patches``) and the bytes their
    pseudo pairs, conditions and clips take at once (float32).

    Shape:
        - shape: ``(T, 3, H, W)``.
    """
    rsdm = config.rsdm
    num_frames, _, height, width = (int(v) for v in shape)
    grid = candidate_grid(
        num_frames,
        height,
        width,
        patch_size=rsdm.patch_size,
        border_frames=rsdm.border_frames,
    )
    count = grid.target_count(rsdm.ratio)
    if rsdm.max_patches is not None:
        count = min(count, rsdm.max_patches)
    frames = 2 * clip_radius(spec, config.dbcgm.neighbours) + 1
    copies = _PATCH_COPIES_PER_CLIP_FRAME * frames + _PATCH_COPIES_PER_PAIR
    return count, count * copies * 3 * rsdm.patch_size**2 * 4


def available_memory() -> int | None:
    """Bytes of memory the system can still give (Linux ``MemAvailable``), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_pair_memory(
    config: AdaptConfig, spec: ModelSpec, shape: tuple[int, ...], available: int | None
) -> None:
    """Refuse, before any work, a run whose pseudo pairs would not fit in ``available`` bytes
    (``None``: not checked): a long or large video with the paper's share of patches
    (``rsdm.ratio``) and no ``rsdm.max_patches``.

    Raises:
        MemoryError: with the patch count, the memory needed and a ``max_patches`` that fits.
    """
    if available is None:
        return
    count, need = pair_memory(config, spec, shape)
    if need <= available:
        return
    fits = max(1, int(count * available / need / 2))
    raise MemoryError(
        f"adapting to {shape[0]} frames of {shape[3]}x{shape[2]} keeps up to {count} pseudo-sharp "
        f"patches of {config.rsdm.patch_size} px (rsdm.ratio = {config.rsdm.ratio:g} of the "
        f"candidates), whose pseudo pairs alone need {need / 2**30:.1f} GiB; "
        f"{available / 2**30:.1f} GiB are available. Set rsdm.max_patches (the sharpest are "
        f"kept): AdaptConfig(rsdm={{'max_patches': {fits}}}) in Python, "
        f'--config with {{"rsdm": {{"max_patches": {fits}}}}} on the command line; or adapt to '
        "a shorter clip"
    )
