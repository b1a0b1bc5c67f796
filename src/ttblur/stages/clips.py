"""Motion-consistent pseudo clips: every frame of a fine-tuning clip synthesised from the
pseudo-sharp patch.

The paper's fine-tuning clip puts the re-blurred pseudo-sharp patch ``S_t`` between the video's
own neighbour frames ``B_{t-2}, B_{t-1}, B_{t+1}, B_{t+2}``. Pseudo-sharp patches come from the
video's still moments, so those neighbours carry little blur and little motion, while the
frames the model must restore move and blur much more; on a long-exposure domain the model
then learns from clips unlike the ones it meets (``docs/results.md``, "Why `lowlight` did not
gain"). A motion-consistent clip instead moves as a blurry video moves: frame ``k``
(``k = -r..r``) is the pseudo-sharp patch's neighbourhood blurred with the patch's condition
(its mean direction and mean length, uniform over the patch) and shifted ``k * step_px`` px
along that direction, where ``step_px`` is the video's motion per frame
(:func:`ttblur.stages.exposure.video_motion`). The blur is applied once, to a box around the
patch large enough for the shifts (the frame is mirrored where the box leaves it), by the
configured :class:`~ttblur.protocols.BlurSynthesizer`, so ID-Blau works here too.

Example:
    >>> import torch
    >>> from ttblur.types import PatchLocation
    >>> from ttblur.stages.clips import synthesize_motion_clips
    >>> from ttblur.stages.reblur import motion_blur
    >>> video = torch.rand(6, 3, 40, 40)
    >>> cond = torch.tensor([1.0, 0.0, 5.0]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    >>> clips = synthesize_motion_clips(
    ...     video, [PatchLocation(2, 10, 12, 16)], cond, motion_blur, step_px=3.0, radius=2
    ... )
    >>> clips.shape
    torch.Size([1, 5, 3, 16, 16])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ttblur.io.frame_store import Frames
from ttblur.types import PatchLocation, warn_mag_norm_ignored

__all__ = ["clip_margin", "mirrored_box", "patch_motion_conditions", "synthesize_motion_clips"]

#: ``blur(boxes (n, 3, S, S), condition (n, 3, S, S)) -> (n, 3, S, S)`` in [0, 1].
BlurFn = Callable[[Tensor, Tensor], Tensor]
#: Box margins are rounded up to a multiple of this (ID-Blau's U-Net needs multiples of 8).
_MARGIN_MULTIPLE = 8


def patch_motion_conditions(condition: Tensor) -> Tensor:
    """One condition per patch: its mean direction and mean magnitude.

    Args:
        condition: ``(N, 3, p, p)`` condition maps (x, y direction, z blur length in px).

    Returns:
        ``(N, 3)``: the unit mean direction (``(1, 0)`` where the directions cancel out) and
        the mean ``z``.
    """
    if condition.ndim != 4 or condition.shape[1] != 3:
        raise ValueError(f"condition must be (N, 3, p, p), got {tuple(condition.shape)}")
    mean = condition.float().mean(dim=(2, 3))
    direction = mean[:, :2]
    norm = torch.linalg.vector_norm(direction, dim=1, keepdim=True)
    fallback = torch.tensor([1.0, 0.0], device=condition.device).expand_as(direction)
    unit = torch.where(norm > 1e-6, direction / norm.clamp_min(1e-6), fallback)
    return torch.cat([unit, mean[:, 2:3]], dim=1)


def clip_margin(radius: int, step_px: float, blur_px: float, component: float = 1.0) -> int:
    """Pixels beyond a patch edge that its clip reads along one axis: the largest shift
    ``radius * step_px`` plus half the blur ``blur_px / 2``, both projected on the axis
    (``component`` = ``|u_x|`` or ``|u_y|`` of the direction), plus 2 px for bilinear
    sampling, rounded up to a multiple of 8."""
    values = (step_px, blur_px, component)
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"step_px, blur_px and component must be finite and >= 0, got {values}")
    need = math.ceil((radius * step_px + blur_px / 2) * component) + 2
    return -(-need // _MARGIN_MULTIPLE) * _MARGIN_MULTIPLE


def _mirror(index: Tensor, length: int) -> Tensor:
    """Indices outside ``[0, length)`` mirrored back inside (repeatedly, any distance)."""
    if length == 1:
        return torch.zeros_like(index)
    period = 2 * (length - 1)
    index = index.remainder(period)
    return torch.where(index < length, index, period - index)


def mirrored_box(frame: Tensor, patch: PatchLocation, margin: int | tuple[int, int]) -> Tensor:
    """The patch of ``frame`` ``(3, H, W)`` grown by ``margin`` px (or ``(rows, columns)``) on
    each side, the frame mirrored about its edges where the box leaves it:
    ``(3, p + 2 rows, p + 2 columns)``."""
    rows, cols = (margin, margin) if isinstance(margin, int) else margin
    ys = _mirror(torch.arange(patch.top - rows, patch.bottom + rows), frame.shape[-2])
    xs = _mirror(torch.arange(patch.left - cols, patch.right + cols), frame.shape[-1])
    return frame[:, ys.to(frame.device)][:, :, xs.to(frame.device)]


def synthesize_motion_clips(
    video: Frames,
    patches: Sequence[PatchLocation],
    condition: Tensor,
    blur: BlurFn,
    *,
    step_px: float,
    radius: int,
    mag_norm: float | None = None,
    batch_size: int = 8,
) -> Tensor:
    """Motion-consistent clips for the pseudo-sharp patches (see the module doc).

    Args:
        video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``.
        patches: the ``N`` pseudo-sharp patch locations, all of size ``p``.
        condition: ``(N, 3, p, p)`` their blur conditions; each clip uses the patch's mean
            direction and mean magnitude (:func:`patch_motion_conditions`).
        blur: the synthesizer, ``blur(boxes, conditions)`` on ``(n, 3, S, S)`` tensors.
        step_px: motion per frame in px (the video's, :func:`~ttblur.stages.exposure.video_motion`).
        radius: frames on each side of the centre (0: the centre frame only).
        mag_norm: deprecated and ignored (DeprecationWarning); z is the blur length in px.
        batch_size: patches blurred per ``blur`` call.

    Returns:
        ``(N, 2 radius + 1, 3, p, p)`` float32 in [0, 1]; frame ``radius + k`` shows the
        blurred neighbourhood moved ``+k * step_px`` px along the patch's direction (the flow
        convention: content at ``x`` in the centre frame is at ``x + k * step_px * u`` in
        frame ``k``). No noise is added.
    """
    warn_mag_norm_ignored("synthesize_motion_clips", mag_norm)
    if len(patches) != condition.shape[0]:
        raise ValueError(f"{len(patches)} patches but {condition.shape[0]} conditions")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if not patches:
        return torch.zeros(0, 2 * radius + 1, 3, 0, 0)
    size = patches[0].size
    per_patch = patch_motion_conditions(condition).cpu()
    steps = 0.0 if radius == 0 else float(step_px)
    # Each box is only as large as its clip reads along each axis; boxes of one shape are
    # blurred together.
    groups: dict[tuple[int, int], list[int]] = {}
    for i in range(len(patches)):
        ux, uy, z = (float(v) for v in per_patch[i])
        blur_px = z
        shape = (
            clip_margin(radius, steps, blur_px, abs(uy)),
            clip_margin(radius, steps, blur_px, abs(ux)),
        )
        groups.setdefault(shape, []).append(i)
    clips = torch.empty(len(patches), 2 * radius + 1, 3, size, size)
    for (rows, cols), members in groups.items():
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            boxes = torch.stack(
                [mirrored_box(video[patches[i].frame], patches[i], (rows, cols)) for i in chunk]
            ).float()
            box_condition = per_patch[chunk].view(-1, 3, 1, 1).expand(-1, 3, *boxes.shape[-2:])
            blurred = blur(boxes, box_condition.contiguous().to(boxes.device)).float().cpu()
            for j, i in enumerate(chunk):
                ux, uy = float(per_patch[i, 0]), float(per_patch[i, 1])
                for slot, k in enumerate(range(-radius, radius + 1)):
                    top = rows - round(k * steps * uy)
                    left = cols - round(k * steps * ux)
                    clips[i, slot] = blurred[j, :, top : top + size, left : left + size]
    return clips.clamp_(0.0, 1.0)
