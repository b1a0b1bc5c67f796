"""The ``index.html`` page of the visual report: the report's numbers and the figures."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field

from ttblur.outputs import AdaptReport

__all__ = ["REPORT_FILES", "Figure", "Page", "render_html", "summary_rows"]

#: The pictures :func:`ttblur.report.write_report` may write, by section.
REPORT_FILES: dict[str, str] = {
    "patches": "patches.png",
    "magnitude": "magnitude.png",
    "conditions": "conditions.png",
    "before_after": "before_after.png",
    "loss": "loss.png",
}


@dataclass
class Figure:
    """One picture of the page: its key in :data:`REPORT_FILES`, title and caption."""

    key: str
    title: str
    caption: str


@dataclass
class Page:
    """The figures written and the notes on what could not be drawn."""

    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def summary_rows(report: AdaptReport) -> list[tuple[str, str]]:
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
            else report.baseline_val_loss  # the unadapted weights were kept
            if report.best_epoch == 0
            else None
        )
        rows.append(
            (
                "held-out loss",
                f"unadapted {_fmt(report.baseline_val_loss)}, kept {_fmt(best)}",
            )
        )
    if report.exposure_ratio is not None:
        spread = f" +- {report.exposure_ratio_std:.2f}" if report.exposure_ratio_std else ""
        rows.append(("exposure ratio (fitted)", f"{report.exposure_ratio:.2f}{spread}"))
    if report.guard_scores:
        rows.append(("guard", _guard_summary(report)))
    if report.seconds:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items())
        rows.append(("seconds", f"{sum(report.seconds.values()):.1f} total ({parts})"))
    return rows


def _guard_summary(report: AdaptReport) -> str:
    """The guard's decision in one line: its score per epoch and what it kept."""
    scores = ", ".join(f"{v:.2f}" for v in report.guard_scores)
    kept = "unadapted weights" if report.best_epoch == 0 else f"epoch {report.best_epoch}"
    need = (
        f", an epoch had to gain {report.guard_min_gain_db:.2f} dB"
        if report.guard_min_gain_db is not None
        else ""
    )
    pairs = "unadapted weights" if report.val_best_epoch == 0 else f"epoch {report.val_best_epoch}"
    return (
        f"{report.guard_score} score (dB): unadapted {_fmt(report.baseline_guard_score)}, "
        f"epochs {scores}{need}; kept {kept} (the held-out pseudo pairs alone: {pairs})"
    )


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


def render_html(report: AdaptReport, page: Page, title: str) -> str:
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
    for name, value in summary_rows(report):
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
