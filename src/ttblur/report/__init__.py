"""Visual report of one adaptation run: a few PNG pictures and an ``index.html`` around them.

:func:`write_report` turns the :class:`~ttblur.outputs.AdaptOutput` that :func:`ttblur.adapt`
(or an :class:`~ttblur.pipeline.AdaptPipeline`) returned, and the video it was adapted to, into
pictures a person can check at a glance (see ``docs/report.md``):

==================  ==========================================================================
file                what it shows
==================  ==========================================================================
``patches.png``     contact sheet of a few frames with the chosen pseudo-sharp patches boxed
``magnitude.png``   the detector's per-frame blur magnitude maps (px) of the same frames, with
                    a colour bar and the RSDM threshold
``conditions.png``  for a few patches: the pseudo-sharp patch, its blur condition map and the
                    re-blurred patch the model was fine-tuned on, plus the colour legend
``before_after.png``  the blurriest region of each sheet frame: blurry input, unadapted model,
                    adapted model (only when the unadapted ``model`` is passed)
``loss.png``        fine-tuning loss per epoch (train, held-out pseudo pairs) and the unadapted
                    model's held-out loss
``index.html``      the pictures with short captions and the report's numbers
==================  ==========================================================================

Every figure is drawn from what the run produced (``output.selection``, ``output.conditions``,
``output.pairs``, ``output.report``): no stage is run again. Only the before / after crops run
networks, the two models being compared.

Modules: :mod:`ttblur.report.figures` (the pictures), :mod:`ttblur.report.page` (the HTML).

Example:
    >>> from ttblur import adapt, reference_model
    >>> from ttblur.report import write_report
    >>> model = reference_model()                                    # doctest: +SKIP
    >>> output = adapt(model, "clip.mp4")                            # doctest: +SKIP
    >>> write_report(output, "clip.mp4", "report/", model=model)     # doctest: +SKIP
    PosixPath('report/index.html')
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from ttblur.atomic import atomic_write_text
from ttblur.outputs import AdaptOutput, AdaptReport, AdaptResult
from ttblur.report.figures import (
    before_after_sheet,
    blurry_detail_box,
    conditions_sheet,
    loss_chart,
    magnitude_sheet,
    patches_sheet,
    restore_crop,
    sheet_frames,
    spread,
)
from ttblur.report.page import REPORT_FILES, Figure, Page, render_html
from ttblur.types import check_map_shape
from ttblur.video import VideoSource, load_video
from ttblur.viz import save_png

__all__ = ["REPORT_FILES", "write_report"]

_DEPRECATED = ("condition_generator", "synthesizer", "device")


def write_report(
    result: AdaptOutput,
    video: VideoSource,
    out_dir: str | Path,
    *,
    model: nn.Module | None = None,
    num_frames: int = 4,
    num_patches: int = 6,
    magnitude: Tensor | None = None,
    title: str = "ttblur adaptation report",
    **deprecated: Any,
) -> Path:
    """Write the visual report of an adaptation run (PNGs + ``index.html``) to ``out_dir``.

    Args:
        result: what :func:`ttblur.adapt` (or an :class:`~ttblur.pipeline.AdaptPipeline`)
            returned: an :class:`~ttblur.outputs.AdaptOutput`.
        video: the same video that was adapted to (anything :func:`ttblur.load_video` reads).
        out_dir: output folder (created; files of the same names are overwritten).
        model: the *unadapted* network; with it, ``before_after.png`` compares its output with
            the adapted model's on the blurriest region of each sheet frame.
        num_frames: frames in the contact sheets (those holding the most patches).
        num_patches: patches shown with their condition maps (spread over the selection).
        magnitude: ``(T, 1, H, W)`` blur magnitude maps in px to show instead of the
            detector's (``result.selection.magnitude``).
        title: page title.
        deprecated: ``condition_generator``, ``synthesizer`` and ``device`` are accepted
            with a :class:`DeprecationWarning` and ignored: nothing is recomputed any more.

    Returns:
        the path of ``index.html``. It references only the PNGs written; parts that could not
        be drawn (no patch chosen, no fine-tuning, no ``model``) are listed under *Notes*.

    Raises:
        TypeError: ``result`` is a bare :class:`~ttblur.outputs.AdaptResult` (it holds no
            stage outputs), or an unknown keyword.
        ValueError: ``video`` does not match the report (frame count or size), bad counts.
    """
    for key in deprecated:
        if key not in _DEPRECATED:
            raise TypeError(f"write_report() got an unexpected keyword argument {key!r}")
        warnings.warn(
            f"write_report({key}=...) is deprecated and ignored: the report draws what the run "
            "produced (AdaptOutput) and recomputes nothing",
            DeprecationWarning,
            stacklevel=2,
        )
    if not isinstance(result, AdaptOutput):
        kind = "an AdaptResult" if isinstance(result, AdaptResult) else type(result).__name__
        raise TypeError(
            f"write_report needs the AdaptOutput that ttblur.adapt returns, got {kind}: it "
            "draws the selection, conditions and pseudo pairs the run produced"
        )
    for name, value in (("num_frames", num_frames), ("num_patches", num_patches)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    num_frames, num_patches = int(num_frames), int(num_patches)
    if num_frames < 1 or num_patches < 1:
        raise ValueError(
            f"num_frames and num_patches must be >= 1, got {num_frames} and {num_patches}"
        )
    frames = load_video(video).cpu()
    report = result.report
    count, _, height, width = frames.shape
    if count != report.num_frames or (height, width) != tuple(report.frame_size):
        raise ValueError(
            f"the video ({count} frames of {height}x{width}) is not the one adapted to "
            f"({report.num_frames} frames of {report.frame_size[0]}x{report.frame_size[1]})"
        )
    maps_all = result.selection.magnitude if magnitude is None else magnitude
    check_map_shape(maps_all, (count, 1, height, width))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    patches = list(report.patches)
    shown = sheet_frames(patches, count, num_frames)
    page = Page()

    def emit(key: str, image: NDArray[np.uint8], title_text: str, caption: str) -> None:
        save_png(image, out / REPORT_FILES[key])
        page.figures.append(Figure(key, title_text, caption))

    emit(
        "patches",
        patches_sheet(frames, patches, shown),
        "Pseudo-sharp patches",
        f"The {len(patches)} patches RSDM kept as pseudo-sharp images (green boxes), on the "
        f"frames holding the most of them. Only these patches are re-blurred and used for "
        "fine-tuning; their neighbouring frames stay untouched.",
    )
    maps = maps_all[shown].detach().float().cpu()
    emit(
        "magnitude",
        magnitude_sheet(frames, maps, patches, shown, report.threshold_px),
        "Blur magnitude",
        "Per-pixel blur length (px) predicted by the blur magnitude estimator: dark is sharp, "
        "bright is blurry. RSDM keeps the patches that are sharp relative to the rest of the "
        "video (boxes); the bar marks its adaptive threshold.",
    )

    if result.conditions is not None and result.pairs is not None and patches:
        chosen = spread(list(range(len(patches))), num_patches)
        emit(
            "conditions",
            _conditions_figure(result, chosen),
            "Blur conditions and re-blurred patches",
            _conditions_caption(report.config.synthesis.clip == "synthesized"),
        )
    else:
        page.notes.append("no pseudo-sharp patch was chosen: no condition maps to show")

    if model is not None:
        crops = []
        side = min(report.config.rsdm.patch_size, height, width)
        for t, m in zip(shown, maps):
            box = blurry_detail_box(frames[t], m, side)
            top, left, bottom, right = box
            blurry = frames[t, :, top:bottom, left:right]
            before = restore_crop(model, result, frames, t, box, margin=16)
            after = restore_crop(result.model, result, frames, t, box, margin=16)
            mean_px = float(m[:, top:bottom, left:right].mean())
            crops.append((t, mean_px, blurry, before, after))
        emit(
            "before_after",
            before_after_sheet(crops),
            "Before / after",
            "On each frame above, the region where blur hides the most detail (largest "
            "predicted blur times local contrast; its mean predicted blur in px in the label): "
            "the blurry input, the unadapted model's output and the adapted model's output.",
        )
    else:
        page.notes.append(
            "before/after crops need the unadapted model: write_report(..., model=model)"
        )

    if report.train_loss:
        emit(
            "loss",
            loss_chart(report),
            "Fine-tuning loss",
            "Loss per epoch on the training pseudo pairs and on the held-out pseudo pairs; the "
            "dashed line is the unadapted model's held-out loss. " + _kept_epoch_rule(report),
        )
    else:
        page.notes.append("no fine-tuning ran: no loss curve")

    index = out / "index.html"
    atomic_write_text(index, render_html(report, page, title))
    return index


def _kept_epoch_rule(report: AdaptReport) -> str:
    """How the kept epoch was chosen on this run, for the loss chart's caption."""
    if report.guard_scores:
        return (
            f"The kept epoch was chosen by the guard's {report.guard_score} score on the "
            "video's own frames (see the guard row above), not by these curves; the unadapted "
            "weights are kept if no epoch beats the unadapted model's score by the margin. No "
            "ground truth is involved."
        )
    return (
        "The kept epoch is the one with the lowest held-out loss, and the unadapted weights "
        "are kept if none beats the dashed line. No ground truth is involved."
    )


def _conditions_figure(result: AdaptOutput, chosen: list[int]) -> NDArray[np.uint8]:
    """The conditions sheet of the patches ``chosen`` (indices into the selection)."""
    assert result.conditions is not None and result.sharp is not None
    assert result.reblurred is not None
    index = torch.tensor(chosen)
    patches = [result.report.patches[i] for i in chosen]
    return conditions_sheet(
        list(result.sharp[index]),
        list(result.conditions[index]),
        list(result.reblurred[index]),
        patches,
    )


def _conditions_caption(synthesized_clips: bool) -> str:
    caption = (
        "Left: pseudo-sharp patch (frame t, top-left y, x). Middle: its blur condition from "
        "the condition generator: hue is the blur direction (wheel on the right, image x to "
        "the right, y down), brightness the blur length relative to the longest shown (mean "
        "px and axial direction in the label)."
    )
    if synthesized_clips:
        return caption + (
            " Right: the centre frame of its fine-tuning clip, blurred with the patch's mean "
            "condition (the other frames are the same blur shifted by the video's motion per "
            "frame), noise included, while the pseudo-sharp patch is the target."
        )
    return caption + (
        " Right: the patch re-blurred with that condition, noise included, which replaces "
        "frame t in the fine-tuning clip while the pseudo-sharp patch is the target."
    )
