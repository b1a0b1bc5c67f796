"""What the ``wrap_*.py`` examples fall back to when the official code is not at hand.

Without ``--repo`` a wrap example builds ttblur's stand-in for that family
(:func:`ttblur.testing.standin_model`: a tiny untrained network with exactly the official
calling convention) and, without ``--video``, renders a blurry clip with :mod:`ttblur.synth`.
The whole path (spec, padding, border frames, batch splitting, ``deblur``, ``adapt``) then runs
on any machine; the quality numbers mean nothing, the plumbing is what is shown.

``--quick`` shrinks the clip (8 frames of 64x96) and the adaptation (32 px patches, one
epoch). With a stand-in, a whole ``--quick --adapt`` run took about 13 s on a loaded 2-core
CPU (one thread, start-up included). With an official network (``--repo``) the same settings
take minutes on such a CPU, mostly fine-tuning: 2 to 7 minutes for ESTRNN, MMP-RNN and
DSTNet, and 671 s for Shift-Net (13 M parameters) on a 10-frame 64x96 clip. Use a GPU
(``--device cuda`` where the example has it, or ``device=`` in your own code) for real runs.

This file is imported by the wrap examples (Python puts the script's folder on ``sys.path``);
it is not an example of its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

import ttblur


def add_fallback_arguments(parser: argparse.ArgumentParser) -> None:
    """``--video``, ``--out``, ``--adapt`` and ``--quick``, shared by every wrap example."""
    parser.add_argument(
        "--video", default=None, help="blurry video file or frame folder (default: generated)"
    )
    parser.add_argument("--out", default=None, help="where to write the restored video")
    parser.add_argument("--adapt", action="store_true", help="test-time adaptation first")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            "tiny clip and adaptation (about 15 s with the stand-in; 2-12 minutes with a real "
            "network from --repo on a 2-core CPU)"
        ),
    )


def require(value: Path | None, flag: str) -> Path:
    """``value`` expanded, or exit naming ``flag`` (needed together with ``--repo``)."""
    if value is None:
        raise SystemExit(f"{flag} is required together with --repo")
    return value.expanduser()


def standin(family: str) -> torch.nn.Module:
    """ttblur's stand-in network for ``family`` (used when no ``--repo`` is given)."""
    print(
        f"no --repo given: using ttblur.testing.standin_model({family!r}), an untrained "
        "network with the official calling convention (the numbers below mean nothing)"
    )
    return ttblur.testing.standin_model(family)


def input_video(path: str | None, quick: bool) -> torch.Tensor:
    """The user's video, or a generated blurry clip when ``path`` is None."""
    if path is not None:
        return ttblur.load_video(path)
    frames, size = (8, (64, 96)) if quick else (16, (128, 160))
    clip = ttblur.synth.make_video(
        "astronaut", preset="bsd-2ms16ms", num_frames=frames, size=size, seed=10007
    )
    print(f"no --video given: generated a {frames}-frame {size[0]}x{size[1]} blurry clip")
    return clip.blurry


def adapt_config(quick: bool) -> dict[str, Any] | None:
    """Tiny adaptation settings for ``--quick``; ``None`` (the defaults) otherwise."""
    if not quick:
        return None
    return {"rsdm": {"patch_size": 32}, "finetune": {"epochs": 1, "batch_size": 4}}


def finish(restored: torch.Tensor, out: str | None) -> None:
    """Write the restored frames when ``--out`` was given and say what happened."""
    if out is None:
        print(f"restored {restored.shape[0]} frames (pass --out to write them)")
        return
    ttblur.save_video(restored, out)
    print(f"wrote {restored.shape[0]} frames to {out}")
