"""The ``ttblur`` command line (also ``python -m ttblur``).

Subcommands:

``ttblur demo``
    Generate a blurry clip of a held-out photo in a shifted target domain, adapt the shipped
    reference model to it (no ground truth used), print PSNR / SSIM of the blurry input, the
    unadapted model and the adapted model against the synthetic ground truth, and write a
    side-by-side PNG, the deblurred video and the adaptation report.

Usage errors exit with status 2 (argparse's convention); bad inputs found while running exit
with status 1 and a one-line message.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ttblur`` command (one subparser per subcommand)."""
    parser = argparse.ArgumentParser(
        prog="ttblur",
        description="Test-time adaptation of video deblurring models by test-time blurring.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="adapt the shipped reference model to a generated target-domain clip",
        description=(
            "Render a blurry clip of a held-out photo in a shifted target domain, adapt the "
            "shipped reference model to it (no ground truth is used), print PSNR/SSIM before "
            "and after against the synthetic ground truth, and write a side-by-side PNG, the "
            "deblurred video and the report."
        ),
    )
    _add_demo_arguments(demo)
    return parser


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
    demo.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _run_demo(args: argparse.Namespace) -> int:
    import torch

    from ttblur.api import adapt
    from ttblur.config import AdaptConfig
    from ttblur.inference import deblur
    from ttblur.metrics import psnr, ssim
    from ttblur.nets.reference import reference_model
    from ttblur.synth import load_photo, make_video
    from ttblur.video import save_video
    from ttblur.viz import save_png

    progress = not args.no_progress
    config = AdaptConfig(seed=args.seed)
    if args.epochs is not None:
        config.finetune.epochs = args.epochs
    if args.patch_size is not None:
        config.rsdm.patch_size = args.patch_size
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

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
    written = [
        save_png(side_by_side.permute(1, 2, 0), out / "side_by_side.png"),
        save_video(adapted, out / "deblurred.mp4", fps=30),
        save_video(clip.blurry, out / "blurry.mp4", fps=30),
    ]
    report_path = out / "report.json"
    report_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    written.append(report_path)
    print("side_by_side.png: blurry | unadapted | adapted | ground truth (middle frame)")
    for path in written:
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ttblur`` command; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from ttblur import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {"demo": _run_demo}
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"ttblur {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
