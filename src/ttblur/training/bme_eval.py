"""Accuracy of a blur magnitude estimator on held-out synthetic videos.

:func:`evaluate_bme` renders ``ttblur.synth.HELDOUT_PHOTOS`` videos with seeds from
:data:`~ttblur.training.data.EVAL_SEED_OFFSET` (training seeds are below it) and reports, per
preset and pooled, the Spearman rank correlation of the per-frame mean predicted vs
ground-truth magnitude and mean absolute errors in pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from pydantic import BaseModel
from torch import Tensor

from ttblur.metrics import spearman
from ttblur.nets.bme import BlurMagnitudeEstimator
from ttblur.training.data import EVAL_SEED_OFFSET, synth

__all__ = ["BMEEvalResult", "BMEEvalRow", "evaluate_bme", "spearman"]


class BMEEvalRow(BaseModel):
    """Accuracy of the estimator on held-out synthetic videos of one preset (or ``"all"``).

    Attributes:
        spearman: rank correlation of per-frame mean predicted vs ground-truth magnitude.
        mae_px: mean absolute per-pixel error, px.
        frame_mae_px: mean absolute error of the per-frame means, px.
        mean_gt_px, mean_pred_px: mean ground-truth / predicted magnitude, px.
    """

    preset: str
    videos: int
    frames: int
    spearman: float
    mae_px: float
    frame_mae_px: float
    mean_gt_px: float
    mean_pred_px: float


class BMEEvalResult(BaseModel):
    """Per-preset rows and the pooled ``overall`` row of :func:`evaluate_bme`."""

    rows: list[BMEEvalRow]
    overall: BMEEvalRow

    def table(self) -> str:
        """Markdown table of the rows and the pooled row."""
        lines = [
            "| preset | videos | frames | Spearman (frame means) | MAE px | frame-mean MAE px "
            "| mean GT px | mean pred px |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in [*self.rows, self.overall]:
            lines.append(
                f"| {r.preset} | {r.videos} | {r.frames} | {r.spearman:.3f} | {r.mae_px:.2f} | "
                f"{r.frame_mae_px:.2f} | {r.mean_gt_px:.2f} | {r.mean_pred_px:.2f} |"
            )
        return "\n".join(lines)


def _row(
    name: str, videos: int, pred: list[float], gt: list[float], mae: list[float]
) -> BMEEvalRow:
    p, g = np.asarray(pred), np.asarray(gt)
    return BMEEvalRow(
        preset=name,
        videos=videos,
        frames=len(p),
        spearman=spearman(p, g),
        mae_px=float(np.mean(mae)),
        frame_mae_px=float(np.mean(np.abs(p - g))),
        mean_gt_px=float(g.mean()),
        mean_pred_px=float(p.mean()),
    )


def evaluate_bme(
    model: BlurMagnitudeEstimator | Callable[[Tensor], Tensor],
    presets: Sequence[str] | None = None,
    *,
    photos: Sequence[str] | None = None,
    videos_per_photo: int = 1,
    num_frames: int = 12,
    size: tuple[int, int] = (192, 256),
    seed: int = EVAL_SEED_OFFSET,
    batch_size: int = 4,
    verbose: bool = True,
) -> BMEEvalResult:
    """Accuracy of a magnitude estimator on held-out synthetic videos; prints a table.

    Args:
        model: a :class:`BlurMagnitudeEstimator` (its ``predict``) or any callable
            ``frames (N, 3, H, W) -> (N, 1, H, W)`` px.
        presets: ``ttblur.synth`` presets; ``None``: all.
        photos: photos; ``None``: ``ttblur.synth.HELDOUT_PHOTOS``.
        videos_per_photo: videos per photo and preset (consecutive seeds).
        num_frames: frames per video; ``size``: ``(H, W)``.
        seed: first synthesis seed (training seeds are below :data:`EVAL_SEED_OFFSET`).
        batch_size: frames per forward pass.
        verbose: print the markdown table.

    Returns:
        :class:`BMEEvalResult`: per-preset rows and the pooled row (Spearman over all frames
        of all presets).
    """
    synthesis = synth()
    preset_list = list(presets) if presets is not None else list(synthesis.PRESETS)
    photo_list = list(photos) if photos is not None else list(synthesis.HELDOUT_PHOTOS)
    if not preset_list or not photo_list:
        raise ValueError("evaluate_bme needs at least one preset and one photo")
    rows = []
    all_pred: list[float] = []
    all_gt: list[float] = []
    all_mae: list[float] = []
    videos_total = 0
    for p_index, preset in enumerate(preset_list):
        pred_means: list[float] = []
        gt_means: list[float] = []
        maes: list[float] = []
        videos = 0
        for f_index, photo in enumerate(photo_list):
            for k in range(videos_per_photo):
                video = synthesis.make_video(
                    photo,
                    preset=preset,
                    num_frames=num_frames,
                    size=tuple(size),
                    seed=seed + 1000 * p_index + 10 * f_index + k,
                )
                with torch.no_grad():
                    if isinstance(model, BlurMagnitudeEstimator):
                        pred = model.predict(video.blurry, batch_size=batch_size)
                    else:
                        pred = torch.cat(
                            [
                                model(video.blurry[i : i + batch_size])
                                for i in range(0, num_frames, batch_size)
                            ]
                        )
                pred = pred.float().cpu()
                gt = video.magnitude.float()
                pred_means.extend(pred.mean(dim=(1, 2, 3)).tolist())
                gt_means.extend(gt.mean(dim=(1, 2, 3)).tolist())
                maes.extend((pred - gt).abs().mean(dim=(1, 2, 3)).tolist())
                videos += 1
        rows.append(_row(preset, videos, pred_means, gt_means, maes))
        all_pred += pred_means
        all_gt += gt_means
        all_mae += maes
        videos_total += videos
    result = BMEEvalResult(rows=rows, overall=_row("all", videos_total, all_pred, all_gt, all_mae))
    if verbose:
        print(result.table())
    return result
