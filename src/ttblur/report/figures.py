"""The pictures of the visual report, drawn from an :class:`~ttblur.outputs.AdaptOutput`.

Each function turns what the pipeline produced into one RGB ``uint8`` image; nothing here runs
a pipeline stage. :mod:`ttblur.viz` holds the drawing primitives they are made of.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor, nn

from ttblur.inference import deblur, reflect_index
from ttblur.outputs import AdaptReport, AdaptResult, axial_mean
from ttblur.types import PatchLocation
from ttblur.viz import (
    add_caption,
    colorbar,
    condition_to_rgb,
    direction_wheel,
    draw_boxes,
    fit_width,
    grid,
    hstack,
    line_chart,
    magnitude_to_heatmap,
    to_rgb8,
)

__all__ = [
    "before_after_sheet",
    "blurry_detail_box",
    "conditions_sheet",
    "loss_chart",
    "magnitude_sheet",
    "patches_sheet",
    "restore_crop",
    "sheet_frames",
    "spread",
]

_T = TypeVar("_T")
_BOX = (0, 255, 0)
_BOX_ON_HEAT = (0, 255, 255)


# ------------------------------------------------------------------------------ choosing


def sheet_frames(patches: Sequence[PatchLocation], num_frames: int, count: int) -> list[int]:
    """The frames holding the most patches (ties: earliest), ascending; evenly spaced frames
    when no patch was chosen."""
    if patches:
        per_frame = Counter(p.frame for p in patches)
        ranked = sorted(per_frame, key=lambda f: (-per_frame[f], f))
        return sorted(ranked[:count])
    picks = np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(np.int64)
    return sorted({int(v) for v in picks})


def spread(items: Sequence[_T], count: int) -> list[_T]:
    """``count`` items evenly spread over ``items`` (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return (
        [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]
        if count > 1
        else [items[0]]
    )


def _tile_width(width: int, low: int, high: int) -> int:
    return int(min(max(width, low), high))


def restore_crop(
    model: nn.Module,
    result: AdaptResult,
    frames: Tensor,
    frame: int,
    box: tuple[int, int, int, int],
    margin: int,
) -> Tensor:
    """Run ``model`` on the clip around ``frame`` cropped to ``box`` plus ``margin`` px of
    context, and return frame ``frame`` cropped to ``box``: ``(3, h, w)``."""
    spec = result.spec
    top, left, bottom, right = box
    height, width = frames.shape[-2:]
    r0, c0 = max(0, top - margin), max(0, left - margin)
    r1, c1 = min(height, bottom + margin), min(width, right + margin)
    offsets = range(-spec.past_frames, spec.future_frames + 1)
    indices = [reflect_index(frame + o, frames.shape[0]) for o in offsets]
    clip = frames[indices, :, r0:r1, c0:c1]
    restored = deblur(model, clip, spec=spec, device=result.device, progress=False)
    return restored[spec.past_frames, :, top - r0 : bottom - r0, left - c0 : right - c0]


def blurry_detail_box(frame: Tensor, magnitude: Tensor, side: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of the ``side``-px window where blur hides the most
    detail: the largest mean of predicted magnitude times local gradient (flat regions, where
    no model can change anything visible, score low)."""
    grey = frame.mean(dim=0, keepdim=True)
    gy = F.pad(grey[:, 1:] - grey[:, :-1], (0, 0, 0, 1)).abs()
    gx = F.pad(grey[:, :, 1:] - grey[:, :, :-1], (0, 1)).abs()
    score = magnitude * (gx + gy)
    stride = max(1, side // 4)
    pooled = F.avg_pool2d(score[None], side, stride=stride)[0, 0]
    row, col = divmod(int(torch.argmax(pooled)), pooled.shape[1])
    return row * stride, col * stride, row * stride + side, col * stride + side


# ------------------------------------------------------------------------------ pictures


def _boxed_sheet(
    images: Sequence[NDArray[np.uint8]],
    shown: Sequence[int],
    patches: Sequence[PatchLocation],
    width: int,
    color: tuple[int, int, int],
    captions: Sequence[str],
) -> NDArray[np.uint8]:
    """Full-width ``images`` of the frames ``shown`` (``width`` px wide), shrunk to tiles with
    the patches of each frame boxed and captioned, in a grid."""
    tile_w = _tile_width(width, 240, 480)
    scale = tile_w / width
    tiles = []
    for t, image, caption in zip(shown, images, captions):
        boxes = [_scaled(p, scale) for p in patches if p.frame == t]
        tile = draw_boxes(fit_width(image, tile_w), boxes, color=color)
        tiles.append(add_caption(tile, caption))
    return grid(tiles, columns=2 if len(tiles) in (2, 4) else 3)


def patches_sheet(
    frames: Tensor, patches: Sequence[PatchLocation], shown: Sequence[int]
) -> NDArray[np.uint8]:
    counts = [sum(p.frame == t for p in patches) for t in shown]
    captions = [f"frame {t}: {n} patch{'es' if n != 1 else ''}" for t, n in zip(shown, counts)]
    images = [to_rgb8(frames[t]) for t in shown]
    return _boxed_sheet(images, shown, patches, frames.shape[-1], _BOX, captions)


def _scaled(p: PatchLocation, scale: float) -> tuple[int, int, int, int]:
    return (
        round(p.top * scale),
        round(p.left * scale),
        round(p.bottom * scale),
        round(p.right * scale),
    )


def magnitude_sheet(
    frames: Tensor,
    maps: Tensor,
    patches: Sequence[PatchLocation],
    shown: Sequence[int],
    threshold: float | None,
) -> NDArray[np.uint8]:
    peak = float(maps.max())
    vmax = peak if peak > 0 else 1.0
    images = [magnitude_to_heatmap(m, vmax=vmax) for m in maps]
    captions = [f"frame {t}: mean {float(m.mean()):.1f} px" for t, m in zip(shown, maps)]
    sheet = _boxed_sheet(images, shown, patches, frames.shape[-1], _BOX_ON_HEAT, captions)
    marker = None
    if threshold is not None and math.isfinite(threshold) and 0 <= threshold <= vmax:
        marker = (threshold, f"RSDM threshold {threshold:.1f} px")
    bar = colorbar(vmax, width=min(sheet.shape[1], 420), marker=marker)
    return np.concatenate([sheet, _pad_width(bar, sheet.shape[1])], axis=0)


def _pad_width(image: NDArray[np.uint8], width: int) -> NDArray[np.uint8]:
    if image.shape[1] >= width:
        return image
    pad = np.full((image.shape[0], width - image.shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([image, pad], axis=1)


def conditions_sheet(
    sharp: Sequence[Tensor],
    conditions: Sequence[Tensor],
    reblurred: Sequence[Tensor] | None,
    patches: Sequence[PatchLocation],
) -> NDArray[np.uint8]:
    tile_w = _tile_width(patches[0].size, 160, 256)
    z_max = max(float(c[2].max()) for c in conditions)
    rows = []
    for index, (p, s, c) in enumerate(zip(patches, sharp, conditions)):
        magnitude = float(c[2].mean())
        shown = c.clone()
        if z_max > 0:  # brightness relative to the longest blur shown
            shown[2] = (c[2] / z_max).clamp(0.0, 1.0)
        row = [
            add_caption(fit_width(to_rgb8(s), tile_w), f"t={p.frame} y={p.top} x={p.left}"),
            add_caption(
                fit_width(condition_to_rgb(shown), tile_w),
                f"{magnitude:.1f}px {axial_mean(c)[0]:.0f}deg",
            ),
        ]
        if reblurred is not None:
            row.append(add_caption(fit_width(to_rgb8(reblurred[index]), tile_w), "re-blurred"))
        rows.append(hstack(row))
    sheet = grid(rows, columns=1 if len(rows) <= 3 else 2, gap=10)
    legend = add_caption(direction_wheel(96), "direction", below=True)
    return hstack([sheet, legend])


def before_after_sheet(
    crops: Sequence[tuple[int, float, Tensor, Tensor, Tensor]],
) -> NDArray[np.uint8]:
    side = crops[0][2].shape[-1]
    tile_w = _tile_width(side, 160, 320)
    rows = []
    for frame, mean_px, blurry, before, after in crops:
        rows.append(
            hstack(
                [
                    add_caption(fit_width(to_rgb8(blurry), tile_w), f"t={frame} {mean_px:.1f}px"),
                    add_caption(fit_width(to_rgb8(before), tile_w), "unadapted"),
                    add_caption(fit_width(to_rgb8(after), tile_w), "adapted"),
                ]
            )
        )
    return grid(rows, columns=1)


def loss_chart(report: AdaptReport) -> NDArray[np.uint8]:
    series: dict[str, list[float]] = {"train": list(report.train_loss)}
    if report.val_loss:
        series["held-out pseudo pairs"] = list(report.val_loss)
    hlines = {}
    if report.baseline_val_loss is not None:
        hlines["unadapted (held-out)"] = float(report.baseline_val_loss)
    highlight = None
    if report.val_loss and 0 < report.best_epoch <= len(report.val_loss):
        best = report.best_epoch
        highlight = (float(best), float(report.val_loss[best - 1]), f"kept: epoch {best}")
    title = "Fine-tuning loss" + (" (unadapted weights kept)" if report.reverted else "")
    return line_chart(
        series, hlines=hlines, highlight=highlight, title=title, xlabel="epoch", ylabel="loss"
    )
