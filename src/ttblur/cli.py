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
``ttblur demo``
    Generate a blurry clip of a held-out photo in a shifted target domain, adapt the shipped
    reference model to it and print PSNR / SSIM before and after.

Usage errors exit with status 2 (argparse's convention); bad inputs found while running exit
with status 1 and a one-line message (``TTBLUR_DEBUG=1`` shows the traceback instead);
an interrupt exits with 130, ``SIGTERM`` with 143. Every path is checked before any work
(:func:`check_paths`) and every output is written atomically (:mod:`ttblur.atomic`), so a
failed or interrupted run never leaves a partial file under an output's name nor changes an
earlier output.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ttblur.config import AdaptConfig

__all__ = [
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

#: ``--model`` when none is given: the shipped reference network.
DEFAULT_MODEL = "ttblur.nets.reference:reference_model"


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
                          it must return a torch.nn.Module.
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

examples:
  ttblur eval GOPRO_Large/test --max-frames 20
  ttblur eval BSD_2ms16ms/test --sequences 000,001 --json bsd.json --epochs 5
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
    _add_run_options(evaluate)

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
        help=f"network factory, called with no argument (default: {DEFAULT_MODEL})",
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
    group.add_argument("--seed", type=int, default=None, help="seed of the run (default 0)")
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


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: CUDA if available)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_demo_arguments(demo: argparse.ArgumentParser) -> None:
    from ttblur.synth import HELDOUT_PHOTOS, PRESETS

    demo.add_argument("--out", type=Path, default=Path("ttblur-demo"), help="output folder")
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
    demo.add_argument("--frames", type=int, default=30, help="clip length (default: 30)")
    demo.add_argument(
        "--size", type=int, nargs=2, default=(384, 512), metavar=("H", "W"), help="frame size"
    )
    demo.add_argument("--seed", type=int, default=10007, help="seed of the clip and the run")
    demo.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default 10)")
    demo.add_argument(
        "--patch-size", type=int, default=None, help="pseudo-sharp patch side (default 256)"
    )
    demo.set_defaults(config=None)  # the demo runs the default AdaptConfig
    _add_run_options(demo)


# ============================================================================ model loading


@contextlib.contextmanager
def _last_on_sys_path(folder: Path) -> Iterator[None]:
    """``folder`` appended to ``sys.path`` for the duration (never first: a file there named
    like an installed module, such as ``safetensors.py`` or ``torch.py``, cannot shadow it)."""
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.append(entry)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


def _looks_like_file(text: str) -> bool:
    return text.endswith(".py") or "/" in text or os.sep in text


def _import_file(module_text: str) -> Any:
    """Import a ``.py`` file given by path (its folder must already be on ``sys.path``)."""
    path = Path(module_text).expanduser()
    if not path.is_file():
        raise CLIError(f"--model: no such Python file: {module_text}")
    name = "_ttblur_user_" + re.sub(r"\W", "_", str(path.resolve()))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"--model: cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(name, None)
        raise CLIError(f"--model: importing {path} failed: {type(err).__name__}: {err}") from err
    return module


def _target_missing(err: ModuleNotFoundError, module_text: str) -> bool:
    """Whether ``err`` says ``module_text`` itself (or a package above it) does not exist,
    rather than that something it imports is missing."""
    parts = module_text.split(".")
    return err.name in {".".join(parts[: i + 1]) for i in range(len(parts))}


def _import_module(module_text: str) -> Any:
    """Import a dotted module name with ``sys.path`` as it is (see :func:`load_model`)."""
    try:
        return importlib.import_module(module_text)
    except ModuleNotFoundError as err:
        if _target_missing(err, module_text):
            raise CLIError(
                f"--model: cannot import module {module_text!r} ({err}); run from the folder "
                "that holds it, or pass path/to/file.py:factory"
            ) from err
        raise CLIError(
            f"--model: importing {module_text!r} failed: ModuleNotFoundError: {err}"
        ) from err
    except Exception as err:
        raise CLIError(
            f"--model: importing {module_text!r} failed: {type(err).__name__}: {err}"
        ) from err


def _build(module_text: str, attribute: str, target: str) -> Any:
    """Import the module of ``target`` and call its factory (``sys.path`` as set by the caller)."""
    module = (
        _import_file(module_text) if _looks_like_file(module_text) else _import_module(module_text)
    )
    factory: Any = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            raise CLIError(f"--model: {module_text} has no attribute {attribute!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise CLIError(f"--model: {target} is a {type(factory).__name__}, not callable")
    try:
        return factory()
    except Exception as err:
        raise CLIError(
            f"--model: calling {attribute}() failed: {type(err).__name__}: {err}"
        ) from err


def load_model(
    target: str = DEFAULT_MODEL, weights: str | None = None, *, revision: str | None = None
) -> nn.Module:
    """Build the network named by ``target`` and optionally load weights into it.

    Import rules (no file in the current folder can shadow an installed module): a dotted
    ``module`` is imported as it is, and only if it is not found anywhere is the current
    folder searched, appended (last) to ``sys.path``; a ``path/to/file.py`` is imported from
    that file, with its folder appended to ``sys.path`` (sibling imports of modules that are
    not installed work). The default target changes nothing on ``sys.path``.

    Args:
        target: ``"module:factory"`` or ``"path/to/file.py:factory"``; ``factory`` may be
            dotted (``"nets:Builder.create"``). It is called with no argument.
        weights: see :func:`load_weights`; ``None`` keeps what the factory built.
        revision: Hub branch, tag or commit of a repo-id ``weights`` (see :func:`load_weights`).

    Returns:
        the ``torch.nn.Module``.

    Raises:
        CLIError: bad ``target``, import failure, missing attribute, a factory that fails or
            does not return an ``nn.Module``; ``revision`` without a repo-id ``weights``.
        FileNotFoundError / ValueError: as :func:`load_weights`.
    """
    from torch import nn

    module_text, sep, attribute = target.rpartition(":")
    if not sep or not module_text or not attribute:
        raise CLIError(
            f"--model must be 'module:factory' or 'path/to/file.py:factory', got {target!r}"
        )
    if revision is not None and weights is None:
        raise CLIError("--revision needs --weights OWNER/NAME (a Hugging Face Hub repo id)")
    if _looks_like_file(module_text):
        with _last_on_sys_path(Path(module_text).expanduser().resolve().parent):
            model = _build(module_text, attribute, target)
    else:
        try:
            model = _build(module_text, attribute, target)
        except CLIError as err:
            if not isinstance(err.__cause__, ModuleNotFoundError) or not _target_missing(
                err.__cause__, module_text
            ):
                raise
            with _last_on_sys_path(Path.cwd()):
                model = _build(module_text, attribute, target)
    if not isinstance(model, nn.Module):
        raise CLIError(
            f"--model: {attribute}() returned a {type(model).__name__}, not a torch.nn.Module"
        )
    if weights is not None:
        load_weights(model, weights, revision=revision)
    return model


def _weights_file(weights: str, revision: str | None = None) -> Path:
    from ttblur.hub import WEIGHTS_NAME, looks_like_local_path, resolve_pretrained

    path = Path(weights).expanduser()
    local = path.exists() or looks_like_local_path(
        weights, (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
    )
    if revision is not None and local:
        raise CLIError(
            f"--revision {revision} applies to a Hugging Face Hub repo id, not to the local "
            f"path {weights}"
        )
    if path.is_file():
        return path
    if path.is_dir():
        for name in (WEIGHTS_NAME, "adapted.safetensors"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"--weights: {path} holds neither {WEIGHTS_NAME} nor adapted.safetensors"
        )
    if local:
        raise FileNotFoundError(f"--weights: no such file or folder: {weights}")
    folder = resolve_pretrained(weights, default=None, revision=revision, filenames=(WEIGHTS_NAME,))
    return folder / WEIGHTS_NAME


def load_weights(
    model: nn.Module, weights: str | os.PathLike[str], *, revision: str | None = None
) -> Path:
    """Load a safetensors state dict into ``model`` with strict key and shape matching.

    Args:
        model: the network.
        weights: a ``.safetensors`` file; a folder holding ``model.safetensors`` (or the
            ``adapted.safetensors`` written by ``ttblur adapt``); or a Hugging Face Hub repo
            id whose ``model.safetensors`` is fetched through the local Hub cache
            (``HF_HUB_OFFLINE=1`` works with a populated cache). Pickle-based checkpoints
            (``.pt``, ``.pth``, ...) are refused.
        revision: Hub branch, tag or commit hash of a repo-id ``weights`` (default: ``main``);
            refused for a local path.

    Returns:
        the file read.

    Raises:
        FileNotFoundError: no such file or folder, or a repo id (at ``revision``) that cannot
            be resolved.
        ValueError: not a safetensors file, or keys / shapes that do not match the model.
        CLIError: ``revision`` with a local path.
    """
    from ttblur.hub import load_safetensors, state_dict_mismatch

    file = _weights_file(os.fspath(weights), revision)
    if file.suffix != ".safetensors":
        raise ValueError(
            f"--weights: {file} is not a .safetensors file; pickle checkpoints are never loaded "
            "(convert one with torch.load + safetensors.torch.save_file in a trusted session)"
        )
    state = load_safetensors(file)
    problem = state_dict_mismatch(model.state_dict(), state)
    if problem:
        raise ValueError(
            f"--weights: {file} does not match the network built by --model: {problem}"
        )
    model.load_state_dict(state, strict=True)
    return file


def save_weights(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model.state_dict()`` as safetensors (every tensor copied to the CPU, so tied
    weights are stored once per key and :func:`load_weights` matches keys exactly).

    The file is written atomically (:func:`ttblur.atomic.atomic_path`): an earlier file at
    ``path`` stays whole until the new one replaces it."""
    from safetensors.torch import save_file

    from ttblur.atomic import atomic_path

    out = Path(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    return out


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

    config = AdaptConfig.load(args.config) if args.config is not None else AdaptConfig()
    if args.seed is not None:
        config.seed = args.seed
    if args.epochs is not None:
        config.finetune.epochs = args.epochs
    if args.patch_size is not None:
        config.rsdm.patch_size = args.patch_size
    return config


# ============================================================================ paths

#: The files ``ttblur adapt`` writes into ``--out``.
ADAPT_OUTPUTS = ("adapted.safetensors", "deblurred.mp4", "report.json")
_DEMO_OUTPUTS = ("side_by_side.png", "deblurred.mp4", "blurry.mp4", "report.json")
_FRAME_NAME = re.compile(r"^[0-9]+\.png$")


@dataclass(frozen=True)
class _Output:
    """One path a command writes: the option that names it, the path, folder or file."""

    option: str
    path: Path
    folder: bool


def _report_names() -> list[str]:
    from ttblur.report import REPORT_FILES

    return [*REPORT_FILES.values(), "index.html"]


def _planned_paths(args: argparse.Namespace) -> tuple[list[tuple[str, Path]], list[_Output]]:
    """What a command reads (``(what, path)``) and every path it writes."""
    from ttblur.video import VIDEO_EXTENSIONS

    inputs: list[tuple[str, Path]] = []
    outputs: list[_Output] = []
    if args.command in ("adapt", "deblur"):
        inputs.append(("video", Path(args.video).expanduser()))
    elif args.command == "eval":
        inputs.append(("dataset folder", Path(args.dataset).expanduser()))
    if getattr(args, "config", None) is not None:
        inputs.append(("--config file", Path(args.config).expanduser()))
    out = Path(args.out).expanduser() if getattr(args, "out", None) is not None else None
    if args.command == "adapt" and out is not None:
        outputs.append(_Output("--out", out, True))
        outputs += [_Output("--out", out / name, False) for name in ADAPT_OUTPUTS]
        if args.report_dir is not None:
            report = Path(args.report_dir).expanduser()
            outputs.append(_Output("--report-dir", report, True))
            outputs += [_Output("--report-dir", report / n, False) for n in _report_names()]
    elif args.command == "deblur" and out is not None:
        outputs.append(_Output("--out", out, out.suffix.lower() not in VIDEO_EXTENSIONS))
    elif args.command == "eval" and args.json is not None:
        outputs.append(_Output("--json", Path(args.json).expanduser(), False))
    elif args.command == "demo" and out is not None:
        outputs.append(_Output("--out", out, True))
        outputs += [_Output("--out", out / name, False) for name in _DEMO_OUTPUTS]
    return inputs, outputs


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file: hard links and symbolic links included."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    real, base = path.resolve(), folder.resolve()
    return real == base or real.is_relative_to(base)


def _check_writable(shown: str, folder: Path) -> None:
    """The nearest existing folder at or above ``folder`` must accept new files."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise CLIError(f"{shown}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CLIError(f"{shown}: the folder {existing} is not writable")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise CLIError(f"{shown}: cannot write in the folder {existing} ({err})") from err


def _check_output(output: _Output, inputs: list[tuple[str, Path]], command: str) -> None:
    path, shown = output.path, f"{output.option} {output.path}"
    if output.folder and path.exists() and not path.is_dir():
        raise CLIError(f"{shown} exists and is not a folder (a folder is written there)")
    if not output.folder and path.is_dir():
        raise CLIError(f"{shown} is a folder, but a file is written there")
    for what, source in inputs:
        if not output.folder and source.is_file() and path.exists() and _same_file(path, source):
            raise CLIError(
                f"{shown} is the input {what} {source} (the same file); writing it would "
                "destroy the input"
            )
        if source.is_dir() and _inside(path, source):
            raise CLIError(
                f"{shown} is inside the input {what} {source}; ttblur never writes into its "
                "input folder (pick a folder outside it)"
            )
        if (
            command == "deblur"
            and output.folder
            and source.is_file()
            and _FRAME_NAME.match(source.name)
            and source.parent.resolve() == path.resolve()
        ):
            raise CLIError(f"{shown}: the input {source} would be replaced by an output frame")
    _check_writable(shown, path if output.folder else path.parent)


def check_paths(args: argparse.Namespace) -> None:
    """Validate every input and output path of a parsed command before any work is done.

    Inputs must exist. Outputs: a folder output must not be an existing file and a file
    output not an existing folder; no output may be an input (compared as files, so a hard
    link or symbolic link to the input counts) or lie inside an input folder (``--out`` or
    ``--report-dir`` inside the frame folder being read); the nearest existing folder of each
    output must be writable (checked by creating a temporary file there). Nothing is created.

    Raises:
        FileNotFoundError: a missing input.
        CLIError: any output problem, naming the option and the path.
    """
    inputs, outputs = _planned_paths(args)
    for what, path in inputs:
        if not path.exists():
            raise FileNotFoundError(f"{what} not found: {path}")
    for output in outputs:
        _check_output(output, inputs, args.command)


# ============================================================================ adapt


def _run_adapt(args: argparse.Namespace) -> int:
    from ttblur.api import adapt
    from ttblur.atomic import StagedOutputs
    from ttblur.inference import deblur_file
    from ttblur.video import load_video

    check_paths(args)
    progress = not args.no_progress
    source = Path(args.video).expanduser()
    _check_device(args.device)
    config = _adapt_config(args)
    model = load_model(args.model, args.weights, revision=args.revision)
    start = time.perf_counter()
    frames = load_video(source)
    print(f"adapting to {frames.shape[0]} frames of {frames.shape[3]}x{frames.shape[2]} px")
    result = adapt(
        model, frames, config=config, spec=args.spec, device=args.device, progress=progress
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
            write_report(result, frames, stage, model=model)
            written.append(report_dir / "index.html")
    for path in written:
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


# ============================================================================ deblur


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
    )
    print(f"wrote {written} in {time.perf_counter() - start:.1f} s")
    return 0


# ============================================================================ eval


@dataclass(frozen=True)
class DatasetSequence:
    """One sequence of a dataset with ground truth: its name, ``"gopro"`` or ``"bsd"``, and
    the folders of blurry and sharp frames."""

    name: str
    layout: str
    blur: Path
    sharp: Path


_LAYOUTS = (("gopro", ("blur",), ("sharp",)), ("bsd", ("Blur", "RGB"), ("Sharp", "RGB")))


def _sequence_at(folder: Path, name: str) -> DatasetSequence | None:
    for layout, blur_parts, sharp_parts in _LAYOUTS:
        blur, sharp = folder.joinpath(*blur_parts), folder.joinpath(*sharp_parts)
        if blur.is_dir() and sharp.is_dir():
            return DatasetSequence(name, layout, blur, sharp)
    return None


def find_sequences(root: str | os.PathLike[str]) -> list[DatasetSequence]:
    """The sequences of a GoPro- or BSD-layout dataset folder, in natural name order.

    ``root/<seq>/blur`` + ``root/<seq>/sharp`` (GoPro) or ``root/<seq>/Blur/RGB`` +
    ``root/<seq>/Sharp/RGB`` (BSD); when ``root`` holds none, ``root/test`` is searched; a
    single sequence folder (``root/blur`` + ``root/sharp``) is one sequence.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: no sequence found.
    """
    from ttblur.video import _natural_key as natural_key  # the frame-folder order

    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    single = _sequence_at(base, base.name)
    if single is not None:
        return [single]
    for folder in (base, base / "test"):
        if not folder.is_dir():
            continue
        found = [
            seq
            for child in sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
            if child.is_dir() and not child.name.startswith(".")
            for seq in [_sequence_at(child, child.name)]
            if seq is not None
        ]
        if found:
            return found
    raise ValueError(
        f"no sequence found in {root}: expected <seq>/blur + <seq>/sharp (GoPro) or "
        "<seq>/Blur/RGB + <seq>/Sharp/RGB (BSD), directly or under test/"
    )


def _select(sequences: list[DatasetSequence], names: str | None) -> list[DatasetSequence]:
    if names is None:
        return sequences
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {s.name: s for s in sequences}
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        listed = ", ".join(list(known)[:20]) + (" ..." if len(known) > 20 else "")
        raise CLIError(f"--sequences: unknown {', '.join(unknown) or '(empty)'}; known: {listed}")
    return [known[n] for n in dict.fromkeys(wanted)]


@dataclass
class _Scores:
    psnr: list[float]
    ssim: list[float]

    def mean(self) -> dict[str, float]:
        return {
            "psnr": sum(self.psnr) / len(self.psnr),
            "ssim": sum(self.ssim) / len(self.ssim),
        }


def _score(restored: Any, sharp: Tensor, crop_border: int) -> _Scores:
    """Per-frame PSNR / SSIM of an iterable of ``(3, H, W)`` frames against ``sharp``."""
    from ttblur.metrics import psnr, ssim

    scores = _Scores([], [])
    for frame, target in zip(restored, sharp):
        scores.psnr.append(float(psnr(frame, target, crop_border=crop_border)))
        scores.ssim.append(float(ssim(frame, target, crop_border=crop_border)))
    return scores


def _evaluate_sequence(
    seq: DatasetSequence,
    model: nn.Module,
    args: argparse.Namespace,
    config: AdaptConfig,
) -> dict[str, Any]:
    from ttblur.api import adapt
    from ttblur.inference import iter_deblur
    from ttblur.video import load_video

    progress = not args.no_progress
    blurry = load_video(seq.blur, max_frames=args.max_frames)
    sharp = load_video(seq.sharp, max_frames=args.max_frames)
    if blurry.shape != sharp.shape:
        raise CLIError(
            f"sequence {seq.name}: blurry frames {tuple(blurry.shape)} and sharp frames "
            f"{tuple(sharp.shape)} differ (T, 3, H, W)"
        )
    border = args.crop_border
    start = time.perf_counter()
    unadapted = iter_deblur(model, blurry, spec=args.spec, device=args.device, progress=progress)
    row: dict[str, Any] = {
        "name": seq.name,
        "layout": seq.layout,
        "frames": int(blurry.shape[0]),
        "height": int(blurry.shape[2]),
        "width": int(blurry.shape[3]),
        "blurry": _score(blurry, sharp, border),
        "unadapted": _score(unadapted, sharp, border),
    }
    try:
        result = adapt(
            model, blurry, config=config, spec=args.spec, device=args.device, progress=progress
        )
    except ValueError as err:
        raise CLIError(f"sequence {seq.name}: {err}") from err
    adapted = iter_deblur(
        result.model, blurry, spec=result.spec, device=result.device, progress=progress
    )
    row["adapted"] = _score(adapted, sharp, border)
    report = result.report
    row.update(
        patches=len(report.patches),
        best_epoch=report.best_epoch,
        reverted=report.reverted,
        seconds=round(time.perf_counter() - start, 2),
    )
    return row


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    kinds = ("blurry", "unadapted", "adapted")
    lines = [
        "| sequence | frames | blurry PSNR / SSIM | unadapted PSNR / SSIM "
        "| adapted PSNR / SSIM | gain (dB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = [f"{row[k]['psnr']:.2f} / {row[k]['ssim']:.4f}" for k in kinds]
        gain = row["adapted"]["psnr"] - row["unadapted"]["psnr"]
        lines.append(f"| {row['name']} | {row['frames']} | {' | '.join(cells)} | {gain:+.2f} |")
    return "\n".join(lines)


def _run_eval(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    check_paths(args)
    _check_device(args.device)
    sequences = _select(find_sequences(args.dataset), args.sequences)
    config = _adapt_config(args)
    model = load_model(args.model, args.weights, revision=args.revision)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    all_scores: dict[str, _Scores] = {
        k: _Scores([], []) for k in ("blurry", "unadapted", "adapted")
    }
    for seq in tqdm(sequences, desc="sequences", unit="seq", disable=args.no_progress):
        row = _evaluate_sequence(seq, model, args, config)
        for kind, total in all_scores.items():
            scores: _Scores = row[kind]
            total.psnr += scores.psnr
            total.ssim += scores.ssim
            row[kind] = scores.mean()
        rows.append(row)
    frames = sum(r["frames"] for r in rows)
    mean: dict[str, Any] = {"name": "**mean**", "frames": frames}
    mean.update({kind: total.mean() for kind, total in all_scores.items()})
    print(_markdown_table([*rows, mean]))
    print(
        f"\n{_count(len(rows), 'sequence')}, {_count(frames, 'frame')}; "
        "PSNR in dB and SSIM on RGB in [0, 1]"
        + (f", {args.crop_border} px border cropped" if args.crop_border else "")
        + f"; {time.perf_counter() - start:.1f} s"
    )
    if args.json is not None:
        payload = {
            "dataset": str(args.dataset),
            "model": args.model,
            "weights": args.weights,
            "spec": args.spec,
            "max_frames": args.max_frames,
            "crop_border": args.crop_border,
            "config": config.model_dump(mode="json"),
            "sequences": rows,
            "mean": {k: v for k, v in mean.items() if k != "name"},
        }
        from ttblur.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


# ============================================================================ demo


def _run_demo(args: argparse.Namespace) -> int:
    import torch

    from ttblur.api import adapt
    from ttblur.atomic import StagedOutputs
    from ttblur.inference import deblur
    from ttblur.metrics import psnr, ssim
    from ttblur.nets.reference import reference_model
    from ttblur.synth import load_photo, make_video
    from ttblur.video import save_video
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
    model = reference_model()
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


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the CLI receives ``SIGTERM`` (or ``SIGHUP``).

    A ``KeyboardInterrupt`` subclass, so every cleanup that runs for Ctrl-C (``finally``
    blocks, removal of temporary output files) runs for a termination too; ``main`` returns
    ``128 + signum`` (143 for ``SIGTERM``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn ``SIGTERM`` / ``SIGHUP`` into :class:`Terminated` for the duration (main thread
    only; the previous handlers are restored afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    previous: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            previous[number] = signal.signal(number, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


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
    handlers = {"adapt": _run_adapt, "deblur": _run_deblur, "eval": _run_eval, "demo": _run_demo}
    try:
        with _terminate_as_interrupt(), _warnings_as_lines(args.command):
            return handlers[args.command](args)
    except Terminated as err:
        print(
            f"ttblur {args.command}: terminated (signal {err.signum}); no partial output "
            "was written",
            file=sys.stderr,
        )
        return 128 + err.signum
    except KeyboardInterrupt:
        print(
            f"ttblur {args.command}: interrupted; no partial output was written",
            file=sys.stderr,
        )
        return 130
    except (
        CLIError,
        ValueError,
        OSError,
        TypeError,
        ImportError,
        RuntimeError,
        ArithmeticError,  # FloatingPointError: a diverging fine-tuning run
    ) as err:
        if os.environ.get("TTBLUR_DEBUG"):
            raise
        print(f"ttblur {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
