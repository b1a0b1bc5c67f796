"""Visual report of one adaptation run: a few PNG pictures and an ``index.html`` around them.

:func:`write_report` turns an :class:`~ttblur.api.AdaptResult` and the video it was adapted to
into pictures a person can check at a glance (see ``docs/report.md``):

==================  ==========================================================================
file                what it shows
==================  ==========================================================================
``patches.png``     contact sheet of a few frames with the chosen pseudo-sharp patches boxed
``magnitude.png``   the blur magnitude estimator's per-frame maps (px) of the same frames, with
                    a colour bar and the RSDM threshold
``conditions.png``  for a few patches: the pseudo-sharp patch, its blur condition map and the
                    patch re-blurred with it, plus the colour legend of the condition
``before_after.png``  the blurriest region of each sheet frame: blurry input, unadapted model,
                    adapted model (only when the unadapted ``model`` is passed)
``loss.png``        fine-tuning loss per epoch (train, held-out pseudo pairs) and the unadapted
                    model's held-out loss
``index.html``      the pictures with short captions and the report's numbers
==================  ==========================================================================

:func:`~ttblur.adapt` keeps only what its :class:`~ttblur.api.AdaptReport` records (patch boxes,
statistics, losses), so the pictures that need more are recomputed here, cheaply and only for
the frames and patches shown: the magnitude maps with the blur magnitude estimator named by
``config.rsdm.weights``, the condition maps with the configured condition generator on a
5-frame clip around each patch, the re-blurred patches with the configured synthesizer. With
the default, deterministic stages these equal what ``adapt`` used; stages passed to ``adapt`` as
objects can be passed here too (``condition_generator=``, ``synthesizer=``, ``magnitude=``).

Example:
    >>> from ttblur import adapt, reference_model
    >>> from ttblur.report import write_report
    >>> model = reference_model()                                    # doctest: +SKIP
    >>> result = adapt(model, "clip.mp4")                            # doctest: +SKIP
    >>> write_report(result, "clip.mp4", "report/", model=model)     # doctest: +SKIP
    PosixPath('report/index.html')
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor, nn

from ttblur.atomic import atomic_write_text
from ttblur.protocols import BlurSynthesizer, ConditionGenerator, PatchLocation, Selection
from ttblur.stages.clips import patch_motion_conditions
from ttblur.video import VideoSource, load_video
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
    save_png,
    to_rgb8,
)

if TYPE_CHECKING:
    from ttblur.api import AdaptReport, AdaptResult
    from ttblur.config import AdaptConfig
    from ttblur.nets.bme import BlurMagnitudeEstimator

__all__ = ["REPORT_FILES", "write_report"]

#: The pictures :func:`write_report` may write, by section.
REPORT_FILES: dict[str, str] = {
    "patches": "patches.png",
    "magnitude": "magnitude.png",
    "conditions": "conditions.png",
    "before_after": "before_after.png",
    "loss": "loss.png",
}
_BOX = (0, 255, 0)
_BOX_ON_HEAT = (0, 255, 255)


@dataclass
class _Figure:
    key: str
    title: str
    caption: str


@dataclass
class _Page:
    figures: list[_Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ choosing


def _sheet_frames(patches: Sequence[PatchLocation], num_frames: int, count: int) -> list[int]:
    """The frames holding the most patches (ties: earliest), ascending; evenly spaced frames
    when no patch was chosen."""
    if patches:
        per_frame = Counter(p.frame for p in patches)
        ranked = sorted(per_frame, key=lambda f: (-per_frame[f], f))
        return sorted(ranked[:count])
    picks = np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(np.int64)
    return sorted({int(v) for v in picks})


def _spread(items: Sequence[PatchLocation], count: int) -> list[PatchLocation]:
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


# ------------------------------------------------------------------------------ recomputing


class _Magnitudes:
    """Blur magnitude maps ``(1, H, W)`` px of single frames, computed on demand and cached."""

    def __init__(
        self,
        frames: Tensor,
        config: AdaptConfig,
        device: torch.device,
        given: Tensor | None,
    ) -> None:
        self.frames = frames
        self.config = config
        self.device = device
        self.given = given
        self.cache: dict[int, Tensor] = {}
        self.bme: BlurMagnitudeEstimator | None = None
        if given is not None and tuple(given.shape) != (
            frames.shape[0],
            1,
            frames.shape[2],
            frames.shape[3],
        ):
            raise ValueError(
                f"magnitude must be (T, 1, H, W) = {(frames.shape[0], 1, *frames.shape[2:])}, "
                f"got {tuple(given.shape)}"
            )

    def get(self, indices: Sequence[int]) -> Tensor:
        """``(len(indices), 1, H, W)`` float32 px on the CPU."""
        missing = sorted({i for i in indices if i not in self.cache})
        if missing and self.given is not None:
            for i in missing:
                self.cache[i] = self.given[i].detach().float().cpu()
        elif missing:
            from ttblur.stages.rsdm import _load_bme, estimate_magnitude

            if self.bme is None:
                self.bme = _load_bme(self.config.rsdm, self.device)
            maps = estimate_magnitude(
                self.bme, self.frames[missing], batch_size=self.config.rsdm.batch_size
            )
            for i, m in zip(missing, maps):
                self.cache[i] = m
        return torch.stack([self.cache[i] for i in indices])


def _local_condition(
    generator: ConditionGenerator,
    frames: Tensor,
    magnitudes: _Magnitudes,
    patch: PatchLocation,
    neighbours: int,
) -> Tensor:
    """The condition ``(3, p, p)`` of one patch, computed on the clip ``t-k .. t+k`` only.

    Clipping the clip at the video's ends keeps exactly the neighbours the generator would use
    on the whole video, so the result is the same while only ``2k + 1`` maps are needed.
    """
    low = max(patch.frame - neighbours, 0)
    high = min(patch.frame + neighbours, frames.shape[0] - 1)
    indices = list(range(low, high + 1))
    local = PatchLocation(patch.frame - low, patch.top, patch.left, patch.size)
    selection = Selection([local], magnitudes.get(indices))
    return generator(frames[indices], selection)[0].detach().float().cpu()


def _restore_crop(
    model: nn.Module,
    result: AdaptResult,
    frames: Tensor,
    frame: int,
    box: tuple[int, int, int, int],
    margin: int,
) -> Tensor:
    """Run ``model`` on the clip around ``frame`` cropped to ``box`` plus ``margin`` px of
    context, and return frame ``frame`` cropped to ``box``: ``(3, h, w)``."""
    from ttblur.inference import deblur, reflect_index

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


def _blurry_detail_box(frame: Tensor, magnitude: Tensor, side: int) -> tuple[int, int, int, int]:
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


def _patches_sheet(
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


def _magnitude_sheet(
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


def _conditions_sheet(
    sharp: Sequence[Tensor],
    conditions: Sequence[Tensor],
    reblurred: Sequence[Tensor] | None,
    patches: Sequence[PatchLocation],
    mag_norm: float,
) -> NDArray[np.uint8]:
    from ttblur.api import _axial_mean

    tile_w = _tile_width(patches[0].size, 160, 256)
    z_max = max(float(c[2].max()) for c in conditions)
    rows = []
    for index, (p, s, c) in enumerate(zip(patches, sharp, conditions)):
        magnitude = float(c[2].mean()) * mag_norm
        shown = c.clone()
        if z_max > 0:  # brightness relative to the longest blur shown, not to mag_norm
            shown[2] = (c[2] / z_max).clamp(0.0, 1.0)
        row = [
            add_caption(fit_width(to_rgb8(s), tile_w), f"t={p.frame} y={p.top} x={p.left}"),
            add_caption(
                fit_width(condition_to_rgb(shown), tile_w),
                f"{magnitude:.1f}px {_axial_mean(c)[0]:.0f}deg",
            ),
        ]
        if reblurred is not None:
            row.append(add_caption(fit_width(to_rgb8(reblurred[index]), tile_w), "re-blurred"))
        rows.append(hstack(row))
    sheet = grid(rows, columns=1 if len(rows) <= 3 else 2, gap=10)
    legend = add_caption(direction_wheel(96), "direction", below=True)
    return hstack([sheet, legend])


def _before_after_sheet(
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


def _loss_chart(report: AdaptReport) -> NDArray[np.uint8]:
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


# ------------------------------------------------------------------------------ html


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _summary_rows(report: AdaptReport) -> list[tuple[str, str]]:
    height, width = report.frame_size
    threshold = (
        f" (threshold {report.threshold_px:.2f} px)" if report.threshold_px is not None else ""
    )
    rows = [
        ("video", f"{report.num_frames} frames of {width} x {height} px (width x height)"),
        ("model spec / device", f"{report.spec} / {report.device}"),
        (
            "pseudo-sharp patches",
            f"{len(report.patches)} of {report.candidates} candidates{threshold}",
        ),
    ]
    if report.condition is not None:
        c = report.condition
        rows.append(
            (
                "blur condition",
                f"mean {c.magnitude_mean_px:.1f} px (10-90%: {c.magnitude_p10_px:.1f}-"
                f"{c.magnitude_p90_px:.1f} px), direction {c.direction_deg:.0f} deg "
                f"(concentration {c.direction_concentration:.2f})",
            )
        )
    epochs = len(report.train_loss)
    if epochs:
        kept = "unadapted weights kept" if report.reverted else f"epoch {report.best_epoch} kept"
        rows.append(
            (
                "fine-tuning",
                f"{epochs} epochs, {kept}; {report.num_train_pairs} train / "
                f"{report.num_val_pairs} held-out pseudo pairs",
            )
        )
        best = (
            report.val_loss[report.best_epoch - 1]
            if report.val_loss and 0 < report.best_epoch <= len(report.val_loss)
            else None
        )
        rows.append(
            (
                "held-out loss",
                f"unadapted {_fmt(report.baseline_val_loss)}, kept {_fmt(best)}",
            )
        )
    if report.seconds:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items())
        rows.append(("seconds", f"{sum(report.seconds.values()):.1f} total ({parts})"))
    return rows


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
       padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 12px 4px 0; text-align: left;
         vertical-align: top; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ccc; }
figcaption { color: #444; max-width: 900px; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
""".strip()


def _html(report: AdaptReport, page: _Page, title: str) -> str:
    esc = html.escape
    out = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>\n{_STYLE}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        "<p>Test-time adaptation by blurring: relatively sharp patches of the video (RSDM) are "
        "re-blurred with the video's own blur (DBCGM + synthesis) and the model is fine-tuned "
        "on these pseudo pairs. No ground truth is used.</p>",
        "<table>",
    ]
    for name, value in _summary_rows(report):
        out.append(f"<tr><th>{esc(name)}</th><td>{esc(value)}</td></tr>")
    out.append("</table>")
    for figure in page.figures:
        name = REPORT_FILES[figure.key]
        out += [
            f'<section id="{figure.key}">',
            f"<h2>{esc(figure.title)}</h2>",
            "<figure>",
            f'<a href="{esc(name)}"><img src="{esc(name)}" alt="{esc(figure.title)}"></a>',
            f"<figcaption>{esc(figure.caption)}</figcaption>",
            "</figure>",
            "</section>",
        ]
    notes = [*report.messages, *page.notes]
    if notes:
        out.append("<h2>Notes</h2>")
        out.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    config = json.dumps(report.config.model_dump(mode="json"), indent=2)
    out += [
        "<details>",
        "<summary>Configuration</summary>",
        f"<pre>{esc(config)}</pre>",
        "</details>",
        "</body>",
        "</html>",
    ]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ entry point


def write_report(
    result: AdaptResult,
    video: VideoSource,
    out_dir: str | Path,
    *,
    model: nn.Module | None = None,
    num_frames: int = 4,
    num_patches: int = 6,
    magnitude: Tensor | None = None,
    condition_generator: ConditionGenerator | None = None,
    synthesizer: BlurSynthesizer | None = None,
    device: str | torch.device | None = None,
    title: str = "ttblur adaptation report",
) -> Path:
    """Write the visual report of an adaptation run (PNGs + ``index.html``) to ``out_dir``.

    Args:
        result: what :func:`ttblur.adapt` returned.
        video: the same video that was adapted to (anything :func:`ttblur.load_video` reads).
        out_dir: output folder (created; files of the same names are overwritten).
        model: the *unadapted* network; with it, ``before_after.png`` compares its output with
            the adapted model's on the blurriest region of each sheet frame.
        num_frames: frames in the contact sheets (those holding the most patches).
        num_patches: patches shown with their condition maps (spread over the selection).
        magnitude: ``(T, 1, H, W)`` blur magnitude maps in px to show instead of running the
            blur magnitude estimator named by ``config.rsdm.weights``.
        condition_generator: the generator passed to ``adapt``, if any (default: the one
            ``config.dbcgm`` names).
        synthesizer: the synthesizer passed to ``adapt``, if any (default: the one
            ``config.synthesis`` names).
        device: where the recomputation runs (default: ``result.device``).
        title: page title.

    Returns:
        the path of ``index.html``. It references only the PNGs written; parts that could not
        be drawn (no patch chosen, no fine-tuning, no ``model``, a synthesizer without
        weights) are listed under *Notes* instead.

    Raises:
        ValueError: ``video`` does not match the report (frame count or size), bad counts.
    """
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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = report.config
    run_device = torch.device(device) if device is not None else result.device
    patches = [PatchLocation(p.frame, p.top, p.left, p.size) for p in report.patches]
    shown = _sheet_frames(patches, count, num_frames)
    magnitudes = _Magnitudes(frames, config, run_device, magnitude)
    chosen = _spread(patches, num_patches)
    neighbours = config.dbcgm.neighbours
    needed = set(shown)
    for p in chosen:  # every map the pictures need, in one pass of the estimator
        needed.update(range(max(p.frame - neighbours, 0), min(p.frame + neighbours, count - 1) + 1))
    magnitudes.get(sorted(needed))
    page = _Page()

    def emit(key: str, image: NDArray[np.uint8], title_text: str, caption: str) -> None:
        save_png(image, out / REPORT_FILES[key])
        page.figures.append(_Figure(key, title_text, caption))

    emit(
        "patches",
        _patches_sheet(frames, patches, shown),
        "Pseudo-sharp patches",
        f"The {len(patches)} patches RSDM kept as pseudo-sharp images (green boxes), on the "
        f"frames holding the most of them. Only these patches are re-blurred and used for "
        "fine-tuning; their neighbouring frames stay untouched.",
    )
    maps = magnitudes.get(shown)
    emit(
        "magnitude",
        _magnitude_sheet(frames, maps, patches, shown, report.threshold_px),
        "Blur magnitude",
        "Per-pixel blur length (px) predicted by the blur magnitude estimator: dark is sharp, "
        "bright is blurry. RSDM keeps the patches that are sharp relative to the rest of the "
        "video (boxes); the bar marks its adaptive threshold.",
    )

    if chosen:
        image, caption = _conditions_figure(
            page.notes,
            frames,
            chosen,
            magnitudes,
            config,
            condition_generator,
            synthesizer,
            run_device,
            report,
        )
        emit("conditions", image, "Blur conditions and re-blurred patches", caption)
    else:
        page.notes.append("no pseudo-sharp patch was chosen: no condition maps to show")

    if model is not None:
        crops = []
        side = min(config.rsdm.patch_size, height, width)
        for t, m in zip(shown, maps):
            box = _blurry_detail_box(frames[t], m, side)
            top, left, bottom, right = box
            blurry = frames[t, :, top:bottom, left:right]
            before = _restore_crop(model, result, frames, t, box, margin=16)
            after = _restore_crop(result.model, result, frames, t, box, margin=16)
            mean_px = float(m[:, top:bottom, left:right].mean())
            crops.append((t, mean_px, blurry, before, after))
        emit(
            "before_after",
            _before_after_sheet(crops),
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
            _loss_chart(report),
            "Fine-tuning loss",
            "Loss per epoch on the training pseudo pairs and on the held-out pseudo pairs; the "
            "dashed line is the unadapted model's held-out loss. The kept epoch is the one with "
            "the lowest held-out loss, and the unadapted weights are kept if none beats the "
            "dashed line. No ground truth is involved.",
        )
    else:
        page.notes.append("no fine-tuning ran: no loss curve")

    index = out / "index.html"
    atomic_write_text(index, _html(report, page, title))
    return index


def _conditions_figure(
    notes: list[str],
    frames: Tensor,
    chosen: list[PatchLocation],
    magnitudes: _Magnitudes,
    config: AdaptConfig,
    generator: ConditionGenerator | None,
    synthesizer: BlurSynthesizer | None,
    device: torch.device,
    report: AdaptReport,
) -> tuple[NDArray[np.uint8], str]:
    """The conditions sheet and its caption; problems go to ``notes``."""
    from ttblur.api import _build_generator, _build_synthesizer, _synthesize

    blur_px = None
    if generator is None and config.dbcgm.name == "dbcgm" and config.dbcgm.magnitude == "exposure":
        # The exposure fit is a whole-video estimate: refitting it on a 2k + 1 frame clip would
        # not reproduce adapt's. Directions come from the same flows; the length from the report.
        config = config.model_copy(deep=True)
        config.dbcgm.magnitude = "bme"
        if report.exposure_ratio is not None and report.motion_px is not None:
            blur_px = report.exposure_ratio * report.motion_px
    gen = generator or _build_generator(config)
    neighbours = config.dbcgm.neighbours
    conditions = [_local_condition(gen, frames, magnitudes, p, neighbours) for p in chosen]
    if blur_px is not None:
        for c in conditions:
            c[2] = min(blur_px / config.mag_norm, 1.0)
    if config.synthesis.clip == "synthesized":
        # Motion-consistent clips blur with the patch's mean direction and length.
        conditions = [
            patch_motion_conditions(c[None])[0].view(3, 1, 1).expand_as(c).clone()
            for c in conditions
        ]
    sharp = [p.crop(frames[p.frame]) for p in chosen]
    reblurred: list[Tensor] | None = None
    try:
        synthesizer = synthesizer or _build_synthesizer(config, device)
        out = _synthesize(
            synthesizer,
            torch.stack(sharp),
            torch.stack(conditions),
            config.synthesis.batch_size,
            device,
        )
        reblurred = list(out)
    except (OSError, ValueError) as err:
        notes.append(f"the re-blurred patches could not be recomputed: {err}")
    caption = (
        "Left: pseudo-sharp patch (frame t, top-left y, x). Middle: its blur condition from "
        "DBCGM: hue is the blur direction (wheel on the right, image x to the right, y down), "
        "brightness the blur length relative to the longest shown (mean px and axial "
        "direction in the label)."
    )
    if reblurred is not None and config.synthesis.clip == "synthesized":
        caption += (
            " Right: the patch blurred with that condition, the centre frame of its "
            "fine-tuning clip (the other frames are the same blur shifted by the video's "
            "motion per frame) while the pseudo-sharp patch is the target."
        )
    elif reblurred is not None:
        caption += (
            " Right: the patch re-blurred with that condition, which replaces frame t in the "
            "fine-tuning clip while the pseudo-sharp patch is the target."
        )
    return _conditions_sheet(sharp, conditions, reblurred, chosen, config.mag_norm), caption
