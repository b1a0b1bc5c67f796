"""Domain-shift benchmark: the paper's Table 2 on synthetic target domains.

A shipped reference model (``ttblur.reference_model(--model)``, ``"base"`` or ``"tiny"``,
trained on the synthetic ``gopro`` source preset only) is evaluated on held-out synthetic
videos of each target preset (``ttblur.synth.make_video`` of a ``HELDOUT_PHOTOS`` photo with a
seed >= 10000, never used in any training). For every video it reports PSNR / SSIM
(``ttblur.metrics``, all frames, RGB) against the ground-truth sharp frames of

* the blurry input,
* (a) the unadapted model,
* (b)-(g) the model after ``ttblur.adapt`` with each configuration of the paper's Table 2
  (pseudo-sharp patches: random or RSDM; blur condition: random, optical flow or DBCGM), all
  with the physical re-blur synthesizer and the default pseudo clips (motion-consistent,
  ``synthesis.clip = "synthesized"``; DBCGM's magnitude is the fitted exposure ratio x the
  video's motion). ``--config '{"dbcgm": {"magnitude": "bme"}, "synthesis": {"clip":
  "original"}}'`` runs the paper's pseudo pairs instead,
* (g) with ID-Blau as the synthesizer, when ``--idblau-weights`` names weights (ttblur ships
  none, so by default the row is omitted with a note).

``adapt`` never sees the ground truth; it is only used here, to score the outputs.

Usage::

    PYTHONPATH=src python benchmarks/domain_shift.py --quick            # < 5 min on 2 CPU cores
    PYTHONPATH=src python benchmarks/domain_shift.py --out results.md   # full run, < 1 hour

The table and the exact command of the published run are in ``docs/results.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

import ttblur
from ttblur import metrics, synth
from ttblur.config import AdaptConfig

#: Target presets evaluated by default (the source preset ``gopro`` is what the model knows).
TARGET_PRESETS = ("bsd-1ms8ms", "bsd-2ms16ms", "bsd-3ms24ms", "lowlight")

#: First synthesis seed of the evaluation videos; training only ever uses seeds below 10000.
SEED_BASE = 10_000


@dataclass(frozen=True)
class Method:
    """One row of the table: a label and, for adapted rows, the stage choices."""

    key: str
    label: str
    rsdm: Literal["relative_sharpness", "random"] | None = None
    dbcgm: Literal["dbcgm", "flow_only", "random"] | None = None
    synthesis: Literal["physical", "idblau"] = "physical"


#: Rows in table order. ``rsdm`` / ``dbcgm`` are ``RSDMConfig.name`` / ``DBCGMConfig.name``.
METHODS: tuple[Method, ...] = (
    Method("blurry", "blurry input"),
    Method("a", "(a) unadapted"),
    Method("b", "(b) random patch + random blur", "random", "random"),
    Method("c", "(c) random patch + optical flow", "random", "flow_only"),
    Method("d", "(d) random patch + DBCGM", "random", "dbcgm"),
    Method("e", "(e) RSDM + random blur", "relative_sharpness", "random"),
    Method("f", "(f) RSDM + optical flow", "relative_sharpness", "flow_only"),
    Method("g", "(g) RSDM + DBCGM", "relative_sharpness", "dbcgm"),
    Method("g-idblau", "(g) RSDM + DBCGM, ID-Blau", "relative_sharpness", "dbcgm", "idblau"),
)
METHOD_KEYS = tuple(m.key for m in METHODS)
_BY_KEY = {m.key: m for m in METHODS}


@dataclass
class Settings:
    """What to run. Defaults are the full benchmark."""

    presets: tuple[str, ...] = TARGET_PRESETS
    videos_per_preset: int = 6
    frames: int = 24
    size: tuple[int, int] = (256, 320)
    patch_size: int = 128
    epochs: int | None = None
    methods: tuple[str, ...] = tuple(k for k in METHOD_KEYS if k != "g-idblau")
    idblau_weights: str | None = None
    seed: int = 0
    threads: int = 1
    base_config: AdaptConfig = field(default_factory=AdaptConfig)
    #: ``ttblur.reference_model`` argument: ``"base"``, ``"tiny"``, a folder or a repo id
    #: (``None``: its default).
    model: str | None = None


@dataclass
class Score:
    psnr: float
    ssim: float


@dataclass
class Results:
    """Per (preset, method): one :class:`Score` per video; adapt seconds per method."""

    settings: Settings
    scores: dict[tuple[str, str], list[Score]] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    videos: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def mean(self, preset: str, key: str) -> Score:
        values = self.scores[(preset, key)]
        return Score(
            sum(s.psnr for s in values) / len(values), sum(s.ssim for s in values) / len(values)
        )

    def average(self, key: str) -> Score:
        """Mean over presets of the per-preset means (each preset weighs the same)."""
        means = [self.mean(p, key) for p in self.settings.presets]
        return Score(
            sum(s.psnr for s in means) / len(means), sum(s.ssim for s in means) / len(means)
        )

    @property
    def methods(self) -> list[str]:
        """Method keys present in the results, in table order."""
        return [k for k in METHOD_KEYS if any(m == k for _, m in self.scores)]


def evaluation_videos(preset_index: int, count: int) -> list[tuple[str, int]]:
    """``(photo, seed)`` of the held-out videos of one preset.

    Video ``k`` of preset ``i`` uses ``HELDOUT_PHOTOS[k % 3]`` and seed
    ``10000 + 100 i + k``: every video has its own camera trajectory and no seed is shared
    with training (seeds < 10000) or with another preset.
    """
    photos = synth.HELDOUT_PHOTOS
    return [(photos[k % len(photos)], SEED_BASE + 100 * preset_index + k) for k in range(count)]


def method_config(method: Method, settings: Settings) -> AdaptConfig:
    """The ``AdaptConfig`` of an adapted row: defaults plus the row's stage choices."""
    if method.rsdm is None or method.dbcgm is None:
        raise ValueError(f"{method.key!r} is not an adapted row")
    cfg = settings.base_config.model_copy(deep=True)
    cfg.seed = settings.seed
    cfg.rsdm.name = method.rsdm
    cfg.rsdm.patch_size = settings.patch_size
    cfg.dbcgm.name = method.dbcgm
    cfg.synthesis.name = method.synthesis
    if method.synthesis == "idblau":
        cfg.synthesis.weights = settings.idblau_weights
    if settings.epochs is not None:
        cfg.finetune.epochs = settings.epochs
    return cfg


def _score(restored: torch.Tensor, sharp: torch.Tensor) -> Score:
    return Score(float(metrics.psnr(restored, sharp)), float(metrics.ssim(restored, sharp)))


def _active_methods(settings: Settings, notes: list[str]) -> list[Method]:
    """The rows to run; the ID-Blau row exactly when its weights exist (else a note)."""
    unknown = [k for k in settings.methods if k not in _BY_KEY]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(METHOD_KEYS)}")
    keys = [k for k in settings.methods if k != "g-idblau"]
    weights = settings.idblau_weights
    if weights is None:
        notes.append(
            "(g) with ID-Blau omitted: ttblur ships no ID-Blau weights (train them with "
            "`python -m ttblur.training.idblau`, then pass --idblau-weights PATH)."
        )
    elif not Path(weights).exists():
        notes.append(f"(g) with ID-Blau omitted: no ID-Blau weights at {weights!r}.")
    else:
        keys.append("g-idblau")
    return [m for m in METHODS if m.key in keys]


def run(settings: Settings, log: Callable[[str], None] = print) -> Results:
    """Run the benchmark; ``log`` receives one line per video."""
    torch.set_num_threads(settings.threads)
    results = Results(settings)
    methods = _active_methods(settings, results.notes)
    for note in results.notes:
        log(f"note: {note}")
    model = ttblur.reference_model(settings.model)
    for preset in settings.presets:
        if preset not in synth.PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(synth.PRESETS)}")
        videos = evaluation_videos(list(synth.PRESETS).index(preset), settings.videos_per_preset)
        results.videos[preset] = videos
        for photo, seed in videos:
            video = synth.make_video(
                synth.load_photo(photo),
                preset=preset,
                num_frames=settings.frames,
                size=settings.size,
                seed=seed,
            )
            parts = []
            for method in methods:
                start = time.perf_counter()
                if method.key == "blurry":
                    restored = video.blurry
                elif method.key == "a":
                    restored = ttblur.deblur(model, video.blurry, progress=False)
                else:
                    result = ttblur.adapt(
                        model, video.blurry, config=method_config(method, settings), progress=False
                    )
                    restored = result.deblur(video.blurry, progress=False)
                    results.seconds.setdefault(method.key, []).append(time.perf_counter() - start)
                score = _score(restored, video.sharp)
                results.scores.setdefault((preset, method.key), []).append(score)
                parts.append(f"{method.key} {score.psnr:.2f}")
            log(f"{preset} {photo} seed {seed}: " + ", ".join(parts))
    return results


def format_table(results: Results) -> str:
    """The Markdown table: rows per preset and method, then the average over presets."""
    methods = results.methods
    lines = [
        "| preset | method | PSNR dB | SSIM | PSNR vs (a) |",
        "|---|---|---|---|---|",
    ]
    groups: list[tuple[str, str | None]] = [(p, p) for p in results.settings.presets]
    groups.append(("**average**", None))
    for name, preset in groups:

        def mean(key: str, preset: str | None = preset) -> Score:
            return results.average(key) if preset is None else results.mean(preset, key)

        base = mean("a").psnr if "a" in methods else math.nan
        for key in methods:
            score = mean(key)
            delta = "-" if math.isnan(base) else f"{score.psnr - base:+.2f}"
            lines.append(
                f"| {name} | {_BY_KEY[key].label} | {score.psnr:.2f} | {score.ssim:.4f} | {delta} |"
            )
    return "\n".join(lines)


def format_report(results: Results, command: str) -> str:
    """Settings, the table and the notes, as Markdown."""
    s = results.settings
    videos = sum(len(v) for v in results.videos.values())
    seconds = {k: sum(v) / len(v) for k, v in results.seconds.items() if v}
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    header = [
        f"Command: `{command}`",
        "",
        f"{videos} videos ({s.videos_per_preset} per preset), {s.frames} frames of "
        f"{s.size[0]}x{s.size[1]}, patch {s.patch_size} px, "
        f"epochs {s.epochs if s.epochs is not None else 'default'}, seed {s.seed}, "
        f"{s.threads} torch thread(s), reference model "
        f"{s.model or 'default'}. Mean adapt + deblur seconds per video: {timing}.",
        "",
    ]
    overrides = s.base_config.model_dump(mode="json", exclude_defaults=True)
    overrides.pop("seed", None)
    base = f"`{json.dumps(overrides, sort_keys=True)}`" if overrides else "the defaults"
    header[2] += f" Base AdaptConfig of the adapted rows: {base}."
    notes = [f"Note: {n}" for n in results.notes]
    return "\n".join([*header, format_table(results), "", *notes]).rstrip() + "\n"


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (< 5 min, 2 CPU cores)")
    parser.add_argument("--presets", nargs="+", default=None, help="target presets")
    parser.add_argument("--videos", type=int, default=None, help="videos per preset")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--patch-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None, help="override finetune.epochs")
    parser.add_argument(
        "--methods", nargs="+", default=None, choices=METHOD_KEYS, help="rows to run"
    )
    parser.add_argument("--idblau-weights", default=None, help="ID-Blau weights folder")
    parser.add_argument(
        "--config",
        default=None,
        help="AdaptConfig JSON file (or inline JSON) used as the base of every adapted row; "
        "each row then sets its own rsdm.name / dbcgm.name / synthesis.name",
    )
    parser.add_argument("--seed", type=int, default=0, help="AdaptConfig.seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--model",
        default=None,
        help="reference network: 'base', 'tiny', a weights folder or a Hub repo id "
        "(default: ttblur.reference_model()'s default)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    settings = Settings(model=args.model)
    if args.quick:
        settings.videos_per_preset, settings.frames = 1, 16
        settings.size, settings.patch_size = (192, 256), 96
    if args.presets is not None:
        settings.presets = tuple(args.presets)
    if args.videos is not None:
        settings.videos_per_preset = args.videos
    if args.frames is not None:
        settings.frames = args.frames
    if args.size is not None:
        settings.size = (args.size[0], args.size[1])
    if args.patch_size is not None:
        settings.patch_size = args.patch_size
    if args.methods is not None:
        settings.methods = tuple(args.methods)
    settings.epochs = args.epochs
    settings.idblau_weights = args.idblau_weights
    settings.seed, settings.threads = args.seed, args.threads
    if args.config is not None:
        text = args.config.strip()
        settings.base_config = (
            AdaptConfig.from_json(text) if text.startswith("{") else AdaptConfig.load(text)
        )
    return settings, args


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    settings, args = parse_args(argv)
    words = list(sys.argv[1:] if argv is None else argv)
    command = "PYTHONPATH=src python benchmarks/domain_shift.py " + shlex.join(words)
    start = time.perf_counter()
    results = run(settings)
    report = format_report(results, command.rstrip())
    print()
    print(report, end="")
    print(f"\nTotal {time.perf_counter() - start:.0f} s.")
    if args.out is not None:
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
