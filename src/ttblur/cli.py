"""The ``ttblur`` command line (also ``python -m ttblur``); see ``docs/cli.md``.

Subcommands:

``ttblur adapt VIDEO --out OUT``
    Adapt a deblurring network (``--model module:factory``, default: the shipped reference
    model) to one blurry video and write the adapted weights (``adapted.safetensors``), the
    deblurred video (``deblurred.mp4``) and the adaptation report (``report.json``); with
    ``--report-dir`` also the visual report (:mod:`ttblur.report`).
``ttblur deblur VIDEO --out FILE.mp4|FOLDER``
    Deblur a video with a network, streaming (memory bounded by the window).
``ttblur eval DATASET_DIR``
    PSNR / SSIM per sequence of a GoPro- or BSD-layout dataset, without and with adaptation
    (adaptation sees only the blurry frames; the sharp frames serve only the metrics).
``ttblur adapt-many DIR --out OUT``
    Adapt to every video of a folder, each on its own (:mod:`ttblur.batch`): one Ray task
    per video with ``--workers N`` (``pip install ttblur[ray]``), resumable (a rerun skips
    the videos already done), a failing video recorded without stopping the others.
``ttblur demo``
    Generate a blurry clip of a held-out photo in a shifted target domain, adapt the shipped
    reference model to it and print PSNR / SSIM before and after.

Usage errors exit with status 2 (argparse's convention); bad inputs found while running exit
with status 1 and a one-line message (``TTBLUR_DEBUG=1`` shows the traceback instead);
an interrupt exits with 130, ``SIGTERM`` with 143. Every path is checked before any work
(:func:`check_paths`) and every output is written atomically (:mod:`ttblur.io.atomic`), so a
failed or interrupted run never leaves a partial file under an output's name nor changes an
earlier output.

This module parses arguments and prints; the work is done by library functions:
:func:`ttblur.io.models.load_model` (``--model`` / ``--weights``), :mod:`ttblur.io.weights`,
:func:`ttblur.io.paths.check_planned_paths`, :func:`ttblur.io.datasets.find_sequences`,
:func:`ttblur.evaluation.evaluate`, :func:`ttblur.adapt` and :mod:`ttblur.inference`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttblur.io.atomic import Terminated, terminate_as_interrupt
from ttblur.io.datasets import DatasetSequence, find_sequences, select_sequences
from ttblur.io.models import DEFAULT_MODEL, import_factory, load_model
from ttblur.io.paths import OutputPathError, PlannedOutput, check_planned_paths

if TYPE_CHECKING:
    from ttblur.batch import BatchResult, BatchSettings, VideoJob, VideoRecord
    from ttblur.config import AdaptConfig
    from ttblur.io.weights import load_weights, save_weights

__all__ = [
    "ADAPT_OUTPUTS",
    "DEFAULT_MODEL",
    "CLIError",
    "DatasetSequence",
    "Terminated",
    "build_parser",
    "check_paths",
    "find_sequences",
    "load_model",
    "load_weights",
    "main",
    "save_weights",
]

#: Served from :mod:`ttblur.io.weights` on first use (it imports torch and huggingface_hub).
_LAZY = {"load_weights", "save_weights"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from ttblur.io import weights

        return getattr(weights, name)
    raise AttributeError(f"module 'ttblur.cli' has no attribute {name!r}")


class CLIError(Exception):
    """A bad input found while running: printed as one line, exit status 1."""


# ============================================================================ parser

_MAIN_EPILOG = """\
examples:
  ttblur adapt clip.mp4 --out adapted/ --report-dir adapted/report
  ttblur adapt clip.mp4 --model mynets.py:build_estrnn --weights estrnn.safetensors \\
      --spec estrnn --out adapted/
  ttblur deblur clip.mp4 --weights adapted/adapted.safetensors --out clip-sharp.mp4
  ttblur eval GOPRO_Large/test --max-frames 20 --json results.json
  ttblur demo --out ttblur-demo

Run 'ttblur COMMAND --help' for the options of a command. Documentation: docs/cli.md.
"""


_MODEL_HELP = """\
the network:
  --model module:factory  imports `factory` from `module` (an importable module such as
                          mypkg.nets, or a path/to/file.py) and calls it with no argument;
                          it must return a torch.nn.Module. `--model tiny` and
                          `--model base` load the shipped reference networks.
  --weights               a .safetensors file, a folder holding model.safetensors, or a
                          Hugging Face Hub repo id (through the local Hub cache); keys and
                          shapes must match the model exactly. Pickle files are never read.
  --revision              Hub branch, tag or commit hash to pin a repo-id --weights to.
  --spec                  how the network is called (layout, value range, border frames);
                          default: model.spec if the model has one, else 'image'.
"""


_ADAPT_EPILOG = (
    _MODEL_HELP
    + """
outputs (in --out):
  adapted.safetensors  the adapted weights (load them with --weights)
  deblurred.mp4        the video deblurred by the adapted model
  report.json          what adapt did: patches, condition statistics, losses, timings

examples:
  ttblur adapt clip.mp4 --out adapted/
  ttblur adapt frames/ --model mynets.py:build --spec estrnn --weights estrnn.safetensors \\
      --out adapted/ --report-dir adapted/report --epochs 5 --device cuda
  ttblur adapt clip.mp4 --config my-config.json --out adapted/
"""
)


_DEBLUR_EPILOG = (
    _MODEL_HELP
    + """
examples:
  ttblur deblur clip.mp4 --out sharp.mp4
  ttblur deblur clip.mp4 --weights adapted/adapted.safetensors --out sharp.mp4
  ttblur deblur frames/ --model mynets.py:build --spec estrnn --out sharp-frames/
"""
)


_EVAL_EPILOG = (
    _MODEL_HELP
    + """
dataset layouts (also accepted one level down, under test/):
  GoPro:  DATASET_DIR/<sequence>/blur/*.png   and DATASET_DIR/<sequence>/sharp/*.png
  BSD:    DATASET_DIR/<sequence>/Blur/RGB/*.png and DATASET_DIR/<sequence>/Sharp/RGB/*.png
  A single sequence folder (holding blur/ and sharp/) works too.

For every sequence: PSNR / SSIM (RGB, data range 1) of the blurry input, the unadapted model
and the model adapted to that sequence, averaged over frames. Adaptation sees only the
blurry frames; the sharp frames serve only the metrics. The 'mean' row averages over all
frames of all sequences.

Each sequence is one task of ttblur.batch: with --workers N (and Ray installed) N run at
once; with --out the per-sequence outputs and manifests are kept there and a rerun skips the
sequences already done.

examples:
  ttblur eval GOPRO_Large/test --max-frames 20
  ttblur eval BSD_2ms16ms/test --sequences 000,001 --json bsd.json --epochs 5
  ttblur eval GOPRO_Large/test --workers 4 --out gopro-runs/
"""
)


_MANY_EPILOG = (
    _MODEL_HELP
    + """
inputs: the video files (.mp4 .mkv .avi .mov .m4v) and folders of frames directly in DIR.

outputs (in --out, one folder per video, named after it):
  <video>/adapted.safetensors, <video>/deblurred.mp4, <video>/report.json
  <video>/manifest.json   status, seconds, error (written last)
  summary.md, summary.json  every video, rewritten as videos finish

A rerun with the same --out skips the videos already done (same input size and time, same
network and configuration, all outputs present) and redoes the failed, unfinished and changed
ones. A failing video is recorded with its error and does not stop the others; the exit
status is 1 if any video failed.

examples:
  ttblur adapt-many clips/ --out adapted/
  ttblur adapt-many clips/ --out adapted/ --workers 4 --cpus-per-video 2
  ttblur adapt-many clips/ --out adapted/ --ray-address auto --gpus-per-video 0.25 --device cuda
"""
)


def _at_least(convert: Callable[[str], Any], low: float, *, strict: bool = False) -> Any:
    """An argparse ``type``: ``convert(text)``, which must be ``>= low`` (``> low`` if strict)."""
    kind = "a whole number" if convert is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if value < low or (strict and value == low):
            bound = f"{'>' if strict else '>='} {low:g}"
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {value}")
        return value

    return parse


_positive_int = _at_least(int, 1)

_non_negative_int = _at_least(int, 0)

_positive_float = _at_least(float, 0.0, strict=True)


def _subparser(
    commands: Any, name: str, help_text: str, description: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ttblur`` command (one subparser per subcommand)."""
    parser = argparse.ArgumentParser(
        prog="ttblur",
        description="Test-time adaptation of video deblurring models by test-time blurring.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    adapt = _subparser(
        commands,
        "adapt",
        "adapt a network to one blurry video; write adapted weights, video and report",
        "Adapt a deblurring network to one blurry video by test-time blurring (no ground "
        "truth is used) and write the adapted weights, the deblurred video and the report.",
        _ADAPT_EPILOG,
    )
    adapt.add_argument("video", metavar="VIDEO", help="blurry video file or folder of frames")
    _add_model_options(adapt)
    _add_adapt_options(adapt)
    adapt.add_argument(
        "--out", type=Path, required=True, metavar="OUT", help="output folder (created)"
    )
    adapt.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the visual report (PNGs + index.html) to DIR",
    )
    _add_run_options(adapt)

    deblur = _subparser(
        commands,
        "deblur",
        "deblur a video with a network (streaming, bounded memory)",
        "Deblur a video file or frame folder with a network, a window of frames at a time.",
        _DEBLUR_EPILOG,
    )
    deblur.add_argument("video", metavar="VIDEO", help="blurry video file or folder of frames")
    _add_model_options(deblur)
    deblur.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE.mp4|FOLDER",
        help="a video file (.mp4 .mkv .avi .mov .m4v) or a folder of PNGs",
    )
    deblur.add_argument(
        "--window",
        type=_positive_int,
        default=None,
        help="frames per forward pass (default: the spec's clip length); smaller uses less memory",
    )
    deblur.add_argument(
        "--fps",
        type=_positive_float,
        default=None,
        help="frame rate of the output video (default: the input's, 25 for a frame folder)",
    )
    deblur.add_argument(
        "--bit-depth",
        type=int,
        choices=(8, 16),
        default=None,
        help="bits per sample of a PNG-folder --out (default: the input's: 16 for 16-bit "
        "images and for video streams of more than 8 bits, else 8); video files hold 8",
    )
    _add_run_options(deblur)

    evaluate = _subparser(
        commands,
        "eval",
        "PSNR/SSIM per sequence of a GoPro/BSD-layout dataset, with and without adaptation",
        "Evaluate a network on a dataset with ground truth: PSNR / SSIM per sequence of the "
        "blurry input, the unadapted network and the network adapted to each sequence.",
        _EVAL_EPILOG,
    )
    evaluate.add_argument("dataset", metavar="DATASET_DIR", type=Path, help="dataset folder")
    _add_model_options(evaluate)
    _add_adapt_options(evaluate)
    evaluate.add_argument(
        "--max-frames",
        type=_positive_int,
        default=None,
        metavar="N",
        help="use only the first N frames of each sequence",
    )
    evaluate.add_argument(
        "--sequences",
        default=None,
        metavar="NAMES",
        help="comma-separated sequence names to evaluate (default: all)",
    )
    evaluate.add_argument(
        "--crop-border",
        type=_non_negative_int,
        default=0,
        metavar="PX",
        help="pixels removed from each side before the metrics (default: 0)",
    )
    evaluate.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON"
    )
    evaluate.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="OUT",
        help="keep per-sequence outputs and manifests here; a rerun skips finished sequences "
        "(default: a temporary folder, removed at the end)",
    )
    _add_batch_options(evaluate)
    _add_run_options(evaluate)

    many = _subparser(
        commands,
        "adapt-many",
        "adapt to every video of a folder, each on its own (Ray workers, resumable)",
        "Adapt a deblurring network to every video of a folder, each on its own, and write "
        "each video's adapted weights, deblurred video and report, with a manifest per video "
        "and a summary table.",
        _MANY_EPILOG,
    )
    many.add_argument("folder", metavar="DIR", type=Path, help="folder of videos")
    _add_model_options(many)
    _add_adapt_options(many)
    many.add_argument(
        "--out", type=Path, required=True, metavar="OUT", help="output folder (created)"
    )
    _add_batch_options(many)
    _add_run_options(many)

    demo = _subparser(
        commands,
        "demo",
        "adapt the shipped reference model to a generated target-domain clip",
        "Render a blurry clip of a held-out photo in a shifted target domain, adapt the "
        "shipped reference model to it (no ground truth is used), print PSNR/SSIM before "
        "and after against the synthetic ground truth, and write a side-by-side PNG, the "
        "deblurred video and the report.",
    )
    _add_demo_arguments(demo)
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    from ttblur.specs import list_specs

    group = parser.add_argument_group("network")
    group.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="MODULE:FACTORY",
        help="network factory, called with no argument, or a shipped reference network: "
        f"tiny, base (default: {DEFAULT_MODEL})",
    )
    group.add_argument(
        "--weights",
        default=None,
        metavar="PATH|REPO",
        help=".safetensors file, folder with model.safetensors, or Hub repo id",
    )
    group.add_argument(
        "--revision",
        default=None,
        metavar="REV",
        help="Hub branch, tag or commit hash of a repo-id --weights (default: main)",
    )
    group.add_argument(
        "--spec",
        default=None,
        choices=list_specs(),
        help="calling convention of the network (default: model.spec, else 'image')",
    )


def _add_adapt_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("adaptation")
    group.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="CFG.json",
        help="AdaptConfig JSON file (the options below override it)",
    )
    group.add_argument(
        "--seed", type=_non_negative_int, default=None, help="seed of the run (default 0)"
    )
    group.add_argument(
        "--epochs", type=_positive_int, default=None, help="fine-tuning epochs (default 10)"
    )
    group.add_argument(
        "--patch-size",
        type=_positive_int,
        default=None,
        metavar="PX",
        help="side of the pseudo-sharp patches (default 256)",
    )


def _add_batch_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("workers (ttblur.batch)")
    group.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="videos adapted at once on this machine, one Ray task each (needs ttblur[ray]; "
        "default: 1, in this process); on a cluster (--ray-address) its free resources decide",
    )
    group.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="join a running Ray cluster (auto: the one RAY_ADDRESS names or `ray start` "
        "started here; or host:6379; ray://host:10001 needs ray[client]); paths must be the "
        "same on every node (docs/many-videos.md); default: a local runtime of this command's "
        "own",
    )
    group.add_argument(
        "--cpus-per-video",
        type=_positive_float,
        default=1.0,
        metavar="C",
        help="CPUs each video's task declares and uses as torch threads (default: 1)",
    )
    group.add_argument(
        "--gpus-per-video",
        type=_at_least(float, 0.0),
        default=0.0,
        metavar="G",
        help="GPUs each video's task declares; fractions share a GPU (default: 0)",
    )
    group.add_argument(
        "--retries",
        type=_non_negative_int,
        default=3,
        metavar="R",
        help="Ray retries of a video whose worker died (default: 3)",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: CUDA if available)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_demo_arguments(demo: argparse.ArgumentParser) -> None:
    from ttblur.nets.reference import DEFAULT_REFERENCE, REFERENCE_MODELS
    from ttblur.synth import HELDOUT_PHOTOS, PRESETS

    demo.add_argument("--out", type=Path, default=Path("ttblur-demo"), help="output folder")
    demo.add_argument(
        "--model",
        default=DEFAULT_REFERENCE,
        choices=sorted(REFERENCE_MODELS),
        help=f"shipped reference network to adapt (default: {DEFAULT_REFERENCE})",
    )
    demo.add_argument(
        "--preset",
        default="bsd-2ms16ms",
        choices=sorted(PRESETS),
        help="target blur domain of the generated clip (default: bsd-2ms16ms)",
    )
    demo.add_argument(
        "--photo",
        default="astronaut",
        choices=sorted(HELDOUT_PHOTOS),
        help="held-out photo the clip is rendered from (never used in training)",
    )
    demo.add_argument("--frames", type=_positive_int, default=30, help="clip length (default: 30)")
    demo.add_argument(
        "--size",
        type=_positive_int,
        nargs=2,
        default=(384, 512),
        metavar=("H", "W"),
        help="frame size",
    )
    demo.add_argument(
        "--seed", type=_non_negative_int, default=10007, help="seed of the clip and the run"
    )
    demo.add_argument(
        "--epochs", type=_positive_int, default=None, help="fine-tuning epochs (default 10)"
    )
    demo.add_argument(
        "--patch-size",
        type=_positive_int,
        default=None,
        help="pseudo-sharp patch side (default 256)",
    )
    demo.set_defaults(config=None)  # the demo runs the default AdaptConfig
    _add_run_options(demo)


# ============================================================================ run settings


def _check_device(text: str | None) -> None:
    """Fail early, with one line, on a device this machine does not have."""
    if text is None:
        return
    import torch

    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise CLIError(f"--device: {err}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CLIError(f"--device {text}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise CLIError(f"--device {text}: this machine has {count} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CLIError(f"--device {text}: MPS is not available on this machine")


def _adapt_config(args: argparse.Namespace) -> AdaptConfig:
    from ttblur.config import AdaptConfig

    if args.config is not None and getattr(args, "model", None) is not None:
        # Stages the --model module registers at import can be named in the config file.
        import_factory(args.model)
    flags = {"seed": args.seed, "finetune.epochs": args.epochs, "rsdm.patch_size": args.patch_size}
    if args.config is None:
        data: Any = {}
    else:  # the flags replace the file's values before it is validated (--epochs 2 over 0)
        text = Path(args.config).expanduser().read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return AdaptConfig.from_json(text)  # pydantic's message for a broken file
    for dotted, value in flags.items():
        *sections, key = dotted.split(".")
        target = data
        for name in sections:  # None where the file holds no object (validation says so)
            target = target.setdefault(name, {}) if isinstance(target, dict) else None
        if value is not None and isinstance(target, dict):
            target[key] = value
    return AdaptConfig.model_validate(data)


# ============================================================================ paths

ADAPT_OUTPUTS = ("adapted.safetensors", "deblurred.mp4", "report.json")

_DEMO_OUTPUTS = ("side_by_side.png", "deblurred.mp4", "blurry.mp4", "report.json")


def _report_names() -> list[str]:
    from ttblur.report import REPORT_FILES

    return [*REPORT_FILES.values(), "index.html"]


def _planned_paths(args: argparse.Namespace) -> tuple[list[tuple[str, Path]], list[PlannedOutput]]:
    """What a command reads (``(what, path)``) and every path it writes."""
    from ttblur.io.video_write import output_is_file

    inputs: list[tuple[str, Path]] = []
    outputs: list[PlannedOutput] = []
    if args.command in ("adapt", "deblur"):
        inputs.append(("video", Path(args.video).expanduser()))
    elif args.command == "eval":
        inputs.append(("dataset folder", Path(args.dataset).expanduser()))
    elif args.command == "adapt-many":
        inputs.append(("video folder", Path(args.folder).expanduser()))
    if getattr(args, "config", None) is not None:
        inputs.append(("--config file", Path(args.config).expanduser()))
    out = Path(args.out).expanduser() if getattr(args, "out", None) is not None else None
    if args.command == "adapt" and out is not None:
        outputs.append(PlannedOutput("--out", out, True))
        outputs += [PlannedOutput("--out", out / name, False) for name in ADAPT_OUTPUTS]
        if args.report_dir is not None:
            report = Path(args.report_dir).expanduser()
            outputs.append(PlannedOutput("--report-dir", report, True))
            outputs += [PlannedOutput("--report-dir", report / n, False) for n in _report_names()]
    elif args.command == "deblur" and out is not None:
        try:
            folder = not output_is_file(out)
        except ValueError as err:
            raise OutputPathError(f"--out: {err}") from err
        if args.bit_depth == 16 and not folder:
            raise OutputPathError(
                f"--bit-depth 16: --out {out} is a video file, which holds 8 bits per sample; "
                "give a folder for 16-bit PNGs"
            )
        outputs.append(PlannedOutput("--out", out, folder, frames=folder))
    elif args.command == "eval":
        if args.json is not None:
            outputs.append(PlannedOutput("--json", Path(args.json).expanduser(), False))
        if out is not None:
            outputs.append(PlannedOutput("--out", out, True))
    elif args.command == "adapt-many" and out is not None:
        outputs.append(PlannedOutput("--out", out, True))
    elif args.command == "demo" and out is not None:
        outputs.append(PlannedOutput("--out", out, True))
        outputs += [PlannedOutput("--out", out / name, False) for name in _DEMO_OUTPUTS]
    return inputs, outputs


def _check_json_beside_batch(json_path: Path, out: Path, names: Sequence[str]) -> None:
    """``eval --json`` may lie in ``--out`` only directly, under a name the batch does not
    write (``summary.json`` / ``summary.md``, a sequence's folder ``names``): it would replace
    the batch's own files (a sequence's weights, which a rerun then skips as done)."""
    from ttblur.batch import SUMMARY_JSON, SUMMARY_MD

    real, base = json_path.resolve(), out.resolve()
    if not real.is_relative_to(base) or real == base:
        return
    if real.parent != base or real.name in (SUMMARY_JSON, SUMMARY_MD, *names):
        raise OutputPathError(
            f"--json {json_path}: the batch writes that path in --out {out} (its summary or a "
            "sequence's files); give --json a path outside --out or another name in it"
        )


def check_paths(args: argparse.Namespace) -> None:
    """Validate every input and output path of a parsed command before any work is done.

    Inputs must exist. Outputs: a folder output must not be an existing file and a file
    output not an existing folder; no output may be an input (compared as files, so a hard
    link or symbolic link to the input counts) or lie inside an input folder (``--out`` or
    ``--report-dir`` inside the frame folder being read); the nearest existing folder of each
    output must be writable (checked by creating a temporary file there). Nothing is created.
    (The rules: :func:`ttblur.io.paths.check_planned_paths`.)

    Raises:
        FileNotFoundError: a missing input.
        ttblur.io.paths.OutputPathError: (a ``ValueError``) any output problem, naming the
            option and the path.
    """
    inputs, outputs = _planned_paths(args)
    check_planned_paths(inputs, outputs)


# ============================================================================ commands


def _run_adapt(args: argparse.Namespace) -> int:
    from ttblur.api import adapt
    from ttblur.inference import deblur_file
    from ttblur.io.atomic import StagedOutputs
    from ttblur.io.video import video_info
    from ttblur.io.weights import save_weights

    check_paths(args)
    progress = not args.no_progress
    source = Path(args.video).expanduser()
    _check_device(args.device)
    config = _adapt_config(args)
    model = load_model(args.model, args.weights, revision=args.revision)
    start = time.perf_counter()
    info = video_info(source)
    print(f"adapting to {info.num_frames} frames of {info.width}x{info.height} px")
    # A path: adapt streams the frames through a temporary file instead of holding them.
    result = adapt(
        model, source, config=config, spec=args.spec, device=args.device, progress=progress
    )
    report = result.report
    kept = "unadapted weights kept" if report.reverted else f"epoch {report.best_epoch} kept"
    print(
        f"{len(report.patches)} pseudo-sharp patches of {report.candidates} candidates; "
        f"{_count(len(report.train_loss), 'epoch')}, {kept}"
    )
    for message in report.messages:
        print(f"note: {message}")

    # Every output is written under a temporary name and all are renamed into place together
    # at the end: an interrupted or failed run leaves the previous run's outputs as they were.
    out = Path(args.out).expanduser()
    written = [out / name for name in ADAPT_OUTPUTS]
    with StagedOutputs() as staged:
        save_weights(result.model, staged.file(out / "adapted.safetensors"))
        deblur_file(
            result.model,
            source,
            staged.file(out / "deblurred.mp4"),
            spec=result.spec,
            device=result.device,
            progress=progress,
        )
        staged.file(out / "report.json").write_text(
            report.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
        if args.report_dir is not None:
            from ttblur.report import write_report

            report_dir = Path(args.report_dir).expanduser()
            stage = staged.folder(report_dir, replaces=_report_names())
            write_report(result, source, stage, model=model)  # loads the video in memory
            written.append(report_dir / "index.html")
    for path in written:
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _run_deblur(args: argparse.Namespace) -> int:
    from ttblur.inference import deblur_file

    check_paths(args)
    source = Path(args.video).expanduser()
    _check_device(args.device)
    model = load_model(args.model, args.weights, revision=args.revision)
    start = time.perf_counter()
    written = deblur_file(
        model,
        source,
        Path(args.out).expanduser(),
        spec=args.spec,
        device=args.device,
        window=args.window,
        fps=args.fps,
        progress=not args.no_progress,
        **({} if args.bit_depth is None else {"bit_depth": args.bit_depth}),
    )
    print(f"wrote {written} in {time.perf_counter() - start:.1f} s")
    return 0


def _batch_settings(args: argparse.Namespace, **extra: Any) -> BatchSettings:
    from ttblur.batch import BatchSettings

    return BatchSettings(
        model=args.model,
        weights=args.weights,
        revision=args.revision,
        spec=args.spec,
        device=args.device,
        config=_adapt_config(args),
        progress=not getattr(args, "no_progress", False),
        **extra,
    )


def _run_batch(
    args: argparse.Namespace, jobs: Sequence[VideoJob], out: Path, settings: BatchSettings
) -> BatchResult:
    """Run ``jobs`` with the worker options, printing a line as each video finishes."""
    from ttblur.batch import adapt_many, ray_available

    if args.ray_address is not None and not ray_available():
        raise CLIError("--ray-address needs Ray: pip install 'ttblur[ray]'")
    if args.workers > 1 and not ray_available():
        print(
            f"ttblur {args.command}: note: Ray is not installed (pip install 'ttblur[ray]'); "
            "running the videos one after another in this process",
            file=sys.stderr,
        )
    # A bad --model / --weights is refused before any video is touched (as `adapt` does), not
    # recorded as every video's failure.
    load_model(settings.model, settings.weights, revision=settings.revision)
    done = 0

    def progress(record: VideoRecord) -> None:
        nonlocal done
        done += 1
        what = f"failed: {record.error}" if record.status == "failed" else "done"
        print(f"[{done}] {record.name}: {what} ({record.seconds:.1f} s)", flush=True)

    result = adapt_many(
        jobs,
        out,
        settings,
        workers=args.workers,
        ray_address=args.ray_address,
        cpus_per_video=args.cpus_per_video,
        gpus_per_video=args.gpus_per_video,
        max_retries=args.retries,
        on_record=progress,
    )
    if result.skipped:
        print(f"skipped {_count(len(result.skipped), 'video')} already done in {out}")
    return result


def _check_batch_device(args: argparse.Namespace) -> None:
    """:func:`_check_device` where the videos run on this machine; a cluster's workers
    (``--ray-address``) have devices of their own (a head without a GPU may run GPU videos)."""
    if args.ray_address is None:
        _check_device(args.device)


def _run_adapt_many(args: argparse.Namespace) -> int:
    from ttblur.batch import SUMMARY_MD, find_videos, summary_table

    check_paths(args)
    _check_batch_device(args)
    jobs = find_videos(args.folder)
    out = Path(args.out).expanduser()
    result = _run_batch(args, jobs, out, _batch_settings(args))
    print(summary_table(result.records))
    print(
        f"\n{_count(len(result.records), 'video')}: {len(result.ran)} run, "
        f"{len(result.skipped)} skipped, {len(result.failed)} failed ({result.backend}, "
        f"{result.seconds:.1f} s); summary in {out / SUMMARY_MD}"
    )
    return 1 if result.failed else 0


def _eval_rows(result: BatchResult, jobs: Sequence[DatasetSequence]) -> list[dict[str, Any]]:
    layouts = {seq.name: seq.layout for seq in jobs}
    rows = []
    for record in result.records:
        if record.status != "done":
            continue
        assert record.scores is not None  # done records of jobs with ground truth
        rows.append(
            {
                "name": record.name,
                "layout": layouts[record.name],
                "frames": record.frames,
                "height": record.height,
                "width": record.width,
                **record.scores,
                "patches": record.patches,
                "best_epoch": record.best_epoch,
                "reverted": record.reverted,
                "seconds": record.seconds,
            }
        )
    return rows


def _run_eval(args: argparse.Namespace) -> int:
    import tempfile

    from ttblur.batch import dataset_jobs
    from ttblur.evaluation import frame_mean, markdown_table
    from ttblur.io.atomic import atomic_write_json

    check_paths(args)
    _check_batch_device(args)
    if args.ray_address is not None and args.out is None:
        # the temporary folder would be this machine's: workers of other nodes would create it
        # on theirs and leave every sequence's outputs there
        raise CLIError(
            "--ray-address needs --out, a folder on a file system every node of the cluster "
            "mounts at the same path (docs/many-videos.md)"
        )
    sequences = select_sequences(find_sequences(args.dataset), args.sequences)
    if args.out is not None and args.json is not None:
        names = [seq.name for seq in sequences]
        _check_json_beside_batch(Path(args.json).expanduser(), Path(args.out).expanduser(), names)
    if args.crop_border:  # a border that leaves nothing to score is refused before any work
        from ttblur.io.video import video_info
        from ttblur.metrics import crop_removes_all

        for seq in sequences:
            try:
                info = video_info(seq.blur)
            except Exception:  # an unreadable sequence fails in its own task, not here
                continue
            if crop_removes_all(args.crop_border, info.height, info.width):
                raise CLIError(
                    f"--crop-border {args.crop_border} removes the whole "
                    f"{info.height}x{info.width} frames of sequence {seq.name!r}"
                )
    settings = _batch_settings(args, max_frames=args.max_frames, crop_border=args.crop_border)
    with contextlib.ExitStack() as stack:
        if args.out is not None:
            out = Path(args.out).expanduser()
        else:
            out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ttblur-eval-")))
        result = _run_batch(args, dataset_jobs(sequences), out, settings)
    failed = "; ".join(f"{r.name}: {r.error}" for r in result.failed)
    rows = _eval_rows(result, sequences)
    if not rows:
        raise CLIError(f"{_count(len(result.failed), 'sequence')} failed: {failed}")
    # The sequences that finished are shown and written even when others failed (their mean
    # is labelled as such), then the command exits 1 naming the failures.
    mean = frame_mean(rows)
    print(markdown_table([*rows, mean]))
    print(
        f"\n{_count(len(rows), 'sequence')}, {_count(mean['frames'], 'frame')}; "
        "PSNR in dB and SSIM on RGB in [0, 1]"
        + (f", {args.crop_border} px border cropped" if args.crop_border else "")
        + f"; {result.seconds:.1f} s"
        + (
            f"; the mean covers only these: {_count(len(result.failed), 'sequence')} failed"
            if result.failed
            else ""
        )
    )
    if args.json is not None:
        payload = {
            "dataset": str(args.dataset),
            "model": args.model,
            "weights": args.weights,
            "spec": args.spec,
            "max_frames": args.max_frames,
            "crop_border": args.crop_border,
            "config": settings.config.model_dump(mode="json"),
            "sequences": rows,
            "mean": {k: v for k, v in mean.items() if k != "name"},
            "failed": [{"name": r.name, "error": r.error} for r in result.failed],
        }
        atomic_write_json(args.json, payload)
        print(f"wrote {args.json}")
    if result.failed:
        raise CLIError(f"{_count(len(result.failed), 'sequence')} failed: {failed}")
    return 0


def _kept_after_interrupt(args: argparse.Namespace) -> str:
    """What an interrupted command leaves behind, for its last line."""
    out = getattr(args, "out", None)
    if args.command in ("adapt-many", "eval") and out is not None:
        return (
            f"the videos finished so far are complete in {out} (summary.md marks the others "
            "pending); run the same command again to finish the rest"
        )
    return "no partial output was written"


def _run_demo(args: argparse.Namespace) -> int:
    import torch

    from ttblur.api import adapt
    from ttblur.inference import deblur
    from ttblur.io.atomic import StagedOutputs
    from ttblur.io.video import save_video
    from ttblur.metrics import psnr, ssim
    from ttblur.nets.reference import reference_model
    from ttblur.synth import load_photo, make_video
    from ttblur.viz import save_png

    check_paths(args)
    progress = not args.no_progress
    _check_device(args.device)
    config = _adapt_config(args)
    out = Path(args.out).expanduser()

    start = time.perf_counter()
    print(f"rendering a {args.frames}-frame {args.size[0]}x{args.size[1]} '{args.preset}' clip")
    clip = make_video(
        load_photo(args.photo),
        preset=args.preset,
        num_frames=args.frames,
        size=tuple(args.size),
        seed=args.seed,
    )
    model = reference_model(args.model)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"network: {args.model} ({type(model).__name__}, {millions:.2f} M parameters)")
    unadapted = deblur(model, clip.blurry, device=args.device, progress=progress)
    result = adapt(model, clip.blurry, config=config, device=args.device, progress=progress)
    adapted = result.deblur(clip.blurry, progress=progress)

    rows = [("blurry input", clip.blurry), ("unadapted model", unadapted), ("adapted", adapted)]
    print(f"\n{'':<16} {'PSNR dB':>8} {'SSIM':>7}   (against the synthetic ground truth)")
    for name, frames in rows:
        quality = float(psnr(frames, clip.sharp)), float(ssim(frames, clip.sharp))
        print(f"{name:<16} {quality[0]:>8.2f} {quality[1]:>7.4f}")
    report = result.report
    print(
        f"\n{len(report.patches)} pseudo-sharp patches of {report.candidates} candidates, "
        f"best epoch {report.best_epoch}/{config.finetune.epochs}"
        + (" (unadapted weights kept)" if report.reverted else "")
    )
    for message in report.messages:
        print(f"note: {message}")

    middle = clip.blurry.shape[0] // 2
    panels = [clip.blurry[middle], unadapted[middle], adapted[middle], clip.sharp[middle]]
    side_by_side = torch.cat([p.clamp(0, 1) for p in panels], dim=-1)
    written = [out / name for name in _DEMO_OUTPUTS]
    with StagedOutputs() as staged:  # all four appear together, or none is replaced
        save_png(side_by_side.permute(1, 2, 0), staged.file(out / "side_by_side.png"))
        save_video(adapted, staged.file(out / "deblurred.mp4"), fps=30)
        save_video(clip.blurry, staged.file(out / "blurry.mp4"), fps=30)
        staged.file(out / "report.json").write_text(
            report.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
    print("side_by_side.png: blurry | unadapted | adapted | ground truth (middle frame)")
    for path in written:
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


# ============================================================================ entry point


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _one_line(err: BaseException) -> str:
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return text or type(err).__name__


@contextlib.contextmanager
def _warnings_as_lines(command: str) -> Iterator[None]:
    """Print each warning as one line ``ttblur COMMAND: warning: ...`` on stderr."""

    def show(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        text = message if isinstance(message, str) else _one_line(message)
        print(f"ttblur {command}: warning: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ttblur`` command; returns the process exit status.

    0 on success, 2 for usage errors, 1 for a bad input or a failure found while running
    (one line on stderr; ``TTBLUR_DEBUG=1`` raises instead), 130 for ``SIGINT`` (Ctrl-C) and
    ``128 + signum`` for ``SIGTERM`` (143) / ``SIGHUP``. An interrupted or failed command
    leaves every earlier output under its name unchanged (outputs are written under
    temporary names and renamed into place at the end).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from ttblur import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {
        "adapt": _run_adapt,
        "deblur": _run_deblur,
        "eval": _run_eval,
        "adapt-many": _run_adapt_many,
        "demo": _run_demo,
    }
    try:
        with terminate_as_interrupt(), _warnings_as_lines(args.command):
            return handlers[args.command](args)
    except KeyboardInterrupt as err:
        signum = err.signum if isinstance(err, Terminated) else None
        what = "interrupted" if signum is None else f"terminated (signal {signum})"
        print(f"ttblur {args.command}: {what}; {_kept_after_interrupt(args)}", file=sys.stderr)
        return 130 if signum is None else 128 + signum
    except (
        CLIError,
        ValueError,
        OSError,
        TypeError,
        ImportError,
        RuntimeError,
        ArithmeticError,  # FloatingPointError: a diverging fine-tuning run
        MemoryError,  # the up-front pair-memory check (checks.check_pair_memory)
    ) as err:
        if os.environ.get("TTBLUR_DEBUG"):
            raise
        print(f"ttblur {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
