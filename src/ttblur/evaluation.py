"""PSNR / SSIM of a network on a dataset with ground truth, without and with adaptation.

For every sequence (:class:`ttblur.io.datasets.DatasetSequence`): the blurry input, the
unadapted network and the network adapted to that sequence with :func:`ttblur.adapt` are
scored against the sharp frames (RGB, data range 1), frame by frame. Adaptation sees only the
blurry frames; the sharp frames serve only the metrics. ``ttblur eval`` prints
:func:`markdown_table` of :func:`evaluate`'s rows.

Example:
    >>> sequences = find_sequences("GOPRO_Large/test")  # doctest: +SKIP
    >>> result = evaluate(sequences, model, AdaptConfig())  # doctest: +SKIP
    >>> print(markdown_table([*result.rows, result.mean]))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttblur.io.paths import natural_key

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from ttblur.config import AdaptConfig
    from ttblur.io.datasets import DatasetSequence

__all__ = [
    "KINDS",
    "EvalOptions",
    "EvaluationResult",
    "FrameScores",
    "check_pairing",
    "evaluate",
    "evaluate_sequence",
    "frame_mean",
    "load_pair",
    "markdown_table",
    "score_frames",
]

#: What each sequence is scored for: the input, the unadapted and the adapted network.
KINDS = ("blurry", "unadapted", "adapted")


@dataclass(frozen=True)
class EvalOptions:
    """How sequences are run and scored.

    Attributes:
        spec: the network's calling convention (``None``: ``model.spec``, else ``"image"``).
        device: where the network runs (``None``: CUDA if available).
        max_frames: use only the first frames of each sequence.
        crop_border: pixels removed from each side before the metrics.
        progress: show progress bars.
    """

    spec: str | None = None
    device: str | torch.device | None = None
    max_frames: int | None = None
    crop_border: int = 0
    progress: bool = True


@dataclass
class FrameScores:
    """Per-frame PSNR (dB) and SSIM."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)

    def mean(self) -> dict[str, float]:
        """``{"psnr": ..., "ssim": ...}`` averaged over the frames."""
        return {
            "psnr": sum(self.psnr) / len(self.psnr),
            "ssim": sum(self.ssim) / len(self.ssim),
        }

    def extend(self, other: FrameScores) -> None:
        """Append ``other``'s frames."""
        self.psnr += other.psnr
        self.ssim += other.ssim


def score_frames(restored: Iterable[Tensor], sharp: Tensor, crop_border: int = 0) -> FrameScores:
    """PSNR / SSIM of each restored frame against the matching sharp frame.

    Args:
        restored: ``(3, H, W)`` frames in ``[0, 1]`` (a ``(T, 3, H, W)`` tensor or an
            iterator, e.g. :func:`ttblur.inference.iter_deblur`).
        sharp: ``(T, 3, H, W)`` ground truth.
        crop_border: pixels removed from each side before the metrics.

    Returns:
        the scores, one per frame pair.

    Raises:
        ValueError: ``restored`` yields more or fewer frames than ``sharp`` holds (the extra
            frames were dropped from the mean without a word).
    """
    from ttblur.metrics import psnr, ssim

    scores = FrameScores()
    for frame, target in zip_longest(restored, sharp):
        if frame is None or target is None:
            more = frame is not None
            raise ValueError(
                f"restored has {'more' if more else 'fewer'} frames than the {len(sharp)} sharp "
                f"frames{'' if more else f' (only {len(scores.psnr)})'}: frames must pair one "
                "to one"
            )
        scores.psnr.append(float(psnr(frame, target, crop_border=crop_border)))
        scores.ssim.append(float(ssim(frame, target, crop_border=crop_border)))
    return scores


def check_pairing(blur: Path, sharp: Path) -> None:
    """Refuse blurry and sharp frames that do not pair up one to one, whatever is read of
    them: two frame folders must hold the same frame names (file stems; folders whose names
    share none, a layout naming them differently, must hold as many frames), two video files
    the same frame count. Without this, a frame missing on one side shifted every later pair
    and was scored silently (16.6 dB instead of 24.6).

    Raises:
        ValueError: naming the first frame that does not pair up, or both counts.
    """
    from ttblur.io.video import frame_files, video_info

    if blur.is_dir() and sharp.is_dir():
        left = [p.stem for p in frame_files(blur)]
        right = [p.stem for p in frame_files(sharp)]
        if set(left) & set(right) and left != right:
            missing = sorted(set(left) ^ set(right), key=natural_key)
            raise ValueError(
                f"the blurry frames in {blur} and the sharp frames in {sharp} do not pair up: "
                f"frame '{missing[0]}' is only in "
                f"{blur if missing[0] in left else sharp}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )
        counts = len(left), len(right)
    else:
        counts = video_info(blur).num_frames, video_info(sharp).num_frames
    if counts[0] != counts[1] and min(counts) > 0:
        raise ValueError(
            f"{blur} holds {counts[0]} frames but {sharp} holds {counts[1]}: blurry and sharp "
            "frames must pair up one to one"
        )


def load_pair(
    blur: str | os.PathLike[str], sharp: str | os.PathLike[str], *, max_frames: int | None = None
) -> tuple[Tensor, Tensor]:
    """The blurry frames and their ground truth, checked to match.

    Args:
        blur, sharp: video files or frame folders (:func:`ttblur.io.video.load_video`).
        max_frames: read only the first frames of each.

    Returns:
        ``(blurry, sharp)``, both ``(T, 3, H, W)`` float RGB in ``[0, 1]``.

    Raises:
        ValueError: unreadable input, the two differ in shape, or their frames do not pair up
            (:func:`check_pairing`).
    """
    from ttblur.io.video import load_video

    check_pairing(Path(blur), Path(sharp))
    blurry = load_video(blur, max_frames=max_frames)
    truth = load_video(sharp, max_frames=max_frames)
    if blurry.shape != truth.shape:
        raise ValueError(
            f"blurry frames {tuple(blurry.shape)} and sharp frames {tuple(truth.shape)} "
            "differ (T, 3, H, W)"
        )
    return blurry, truth


def evaluate_sequence(
    seq: DatasetSequence,
    model: nn.Module,
    config: AdaptConfig,
    options: EvalOptions | None = None,
) -> dict[str, Any]:
    """Score one sequence without and with adaptation (``model`` itself is not changed).

    Args:
        seq: the sequence.
        model: the network.
        config: the adaptation's configuration.
        options: how it is run and scored (default: :class:`EvalOptions()`).

    Returns:
        ``name``, ``layout``, ``frames``, ``height``, ``width``, a :class:`FrameScores` for
        each of :data:`KINDS`, and ``patches``, ``best_epoch``, ``reverted``, ``seconds``.

    Raises:
        ValueError: the blurry and sharp frames differ in shape, or adaptation refuses the
            sequence (the message starts with the sequence name).
    """
    from ttblur.api import adapt
    from ttblur.inference import iter_deblur

    opts = options if options is not None else EvalOptions()
    spec, device, progress = opts.spec, opts.device, opts.progress
    try:
        blurry, sharp = load_pair(seq.blur, seq.sharp, max_frames=opts.max_frames)
    except ValueError as err:
        raise ValueError(f"sequence {seq.name}: {err}") from err
    start = time.perf_counter()
    unadapted = iter_deblur(model, blurry, spec=spec, device=device, progress=progress)
    row: dict[str, Any] = {
        "name": seq.name,
        "layout": seq.layout,
        "frames": int(blurry.shape[0]),
        "height": int(blurry.shape[2]),
        "width": int(blurry.shape[3]),
        "blurry": score_frames(blurry, sharp, opts.crop_border),
        "unadapted": score_frames(unadapted, sharp, opts.crop_border),
    }
    try:
        result = adapt(model, blurry, config=config, spec=spec, device=device, progress=progress)
    except ValueError as err:
        raise ValueError(f"sequence {seq.name}: {err}") from err
    adapted = iter_deblur(
        result.model, blurry, spec=result.spec, device=result.device, progress=progress
    )
    row["adapted"] = score_frames(adapted, sharp, opts.crop_border)
    report = result.report
    row.update(
        patches=len(report.patches),
        best_epoch=report.best_epoch,
        reverted=report.reverted,
        seconds=round(time.perf_counter() - start, 2),
    )
    return row


@dataclass
class EvaluationResult:
    """What :func:`evaluate` measured.

    Attributes:
        rows: one per sequence, as :func:`evaluate_sequence` returns it but with each of
            :data:`KINDS` averaged over the frames (``{"psnr": ..., "ssim": ...}``).
        mean: ``name`` (``"**mean**"``), ``frames`` and each of :data:`KINDS` averaged over
            all frames of all sequences.
        seconds: wall time of the whole evaluation.
    """

    rows: list[dict[str, Any]]
    mean: dict[str, Any]
    seconds: float

    @property
    def frames(self) -> int:
        """Frames scored, over all sequences."""
        return int(self.mean["frames"])


def evaluate(
    sequences: Sequence[DatasetSequence],
    model: nn.Module,
    config: AdaptConfig,
    options: EvalOptions | None = None,
) -> EvaluationResult:
    """Score every sequence with :func:`evaluate_sequence` (same arguments).

    Returns:
        the per-sequence rows and the mean over all frames.

    Raises:
        ValueError: as :func:`evaluate_sequence`.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    opts = options if options is not None else EvalOptions()
    for seq in tqdm(sequences, desc="sequences", unit="seq", disable=not opts.progress):
        row = evaluate_sequence(seq, model, config, opts)
        for kind in KINDS:
            row[kind] = row[kind].mean()
        rows.append(row)
    return EvaluationResult(rows, frame_mean(rows), time.perf_counter() - start)


def frame_mean(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``**mean**`` row: each of :data:`KINDS` averaged over all frames of all rows
    (each row's means weighted by its ``frames``).

    Raises:
        ValueError: no rows, or no frames.
    """
    frames = sum(int(r["frames"]) for r in rows)
    if frames == 0:
        raise ValueError("no frames to average")
    mean: dict[str, Any] = {"name": "**mean**", "frames": frames}
    for kind in KINDS:
        mean[kind] = {
            metric: sum(r[kind][metric] * int(r["frames"]) for r in rows) / frames
            for metric in ("psnr", "ssim")
        }
    return mean


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of rows with averaged :data:`KINDS` (as in
    :attr:`EvaluationResult.rows`): PSNR / SSIM of each and the adaptation's PSNR gain."""
    lines = [
        "| sequence | frames | blurry PSNR / SSIM | unadapted PSNR / SSIM "
        "| adapted PSNR / SSIM | gain (dB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = [f"{row[k]['psnr']:.2f} / {row[k]['ssim']:.4f}" for k in KINDS]
        gain = row["adapted"]["psnr"] - row["unadapted"]["psnr"]
        lines.append(f"| {row['name']} | {row['frames']} | {' | '.join(cells)} | {gain:+.2f} |")
    return "\n".join(lines)
