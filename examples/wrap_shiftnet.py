"""Deblur (and optionally adapt) a video with the official Shift-Net network through ttblur.

Needs a checkout of https://github.com/dasongli1/Shift-Net with its requirements and a
checkpoint (``pretrained_models/net_gopro_deblur.pth``). ttblur calls it with the built-in
``"shiftnet"`` spec:

* the network is built as in the official ``inference/test_deblur.py``:
  ``GShiftNet(future_frames=2, past_frames=2)`` (the constructor defaults are 1 and 1; a model
  built with them needs ``--border 1``, i.e. ``spec.replace(past_frames=1, future_frames=1)``);
* ``forward`` uses only ``x[0]``: batch size 1 (``spec.max_batch = 1``: ttblur splits batches);
  it returns ``(T - 4, 3, H, W)`` without a batch dimension (``spec.output_has_batch = False``);
* RGB in [0, 1], residual; H and W multiples of 8 (stride-2 stages whose upsampled outputs are
  added to skip connections; the official script crops to multiples of 4, enough for GoPro's
  720 x 1280 but not for every size: ttblur pads to 8 and crops back);
* the official test runs 48 output frames (+ 4 border frames) per forward pass in half
  precision on CUDA: ``--half`` does the same (ttblur feeds inputs in the model's dtype).

Usage::

    python examples/wrap_shiftnet.py --repo ~/src/Shift-Net \\
        --weights pretrained_models/net_gopro_deblur.pth --video blurry.mp4 --out out.mp4

Without ``--repo`` the script runs the same path with ttblur's untrained Shift-Net stand-in
(``ttblur.testing``: batch 1 only, output without batch dimension) and, without ``--video``,
a generated clip (see ``_standin.py``)::

    python examples/wrap_shiftnet.py --quick --adapt
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch
from _standin import adapt_config, add_fallback_arguments, finish, input_video, require, standin

import ttblur
from ttblur.specs import get_spec

REPO_URL = "https://github.com/dasongli1/Shift-Net"


def build_shiftnet(repo: Path, weights: Path, border: int) -> torch.nn.Module:
    """Construct ``GShiftNet(future_frames=border, past_frames=border)`` and load weights."""
    if not (repo / "basicsr" / "models" / "archs" / "gshift_deblur1.py").is_file():
        raise SystemExit(f"{repo} is not a Shift-Net checkout (git clone {REPO_URL})")
    sys.path.insert(0, str(repo))
    try:
        module = importlib.import_module("basicsr.models.archs.gshift_deblur1")
    except ImportError as err:
        raise SystemExit(
            f"cannot import Shift-Net from {repo}: {err}. Install its requirements "
            "(pip install -r requirements.txt)."
        ) from err
    model = module.GShiftNet(future_frames=border, past_frames=border)
    checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
    model.load_state_dict(checkpoint.get("params", checkpoint))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=None, help="Shift-Net checkout")
    parser.add_argument("--weights", type=Path, default=None, help="Shift-Net checkpoint")
    parser.add_argument("--border", type=int, default=2, help="past = future frames (2)")
    parser.add_argument("--window", type=int, default=None, help="frames per forward pass")
    parser.add_argument("--half", action="store_true", help="half precision (CUDA only)")
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda if present)")
    add_fallback_arguments(parser)
    args = parser.parse_args()

    if args.repo is None:
        if args.border != 2:
            raise SystemExit("the stand-in uses 2 border frames: --border needs --repo")
        model = standin("shiftnet")
    else:
        weights = require(args.weights, "--weights")
        model = build_shiftnet(args.repo.expanduser(), weights, args.border)
    spec = get_spec("shiftnet")
    if args.border != 2:
        spec = spec.replace(
            name=f"shiftnet_{args.border}", past_frames=args.border, future_frames=args.border
        )
    video = input_video(args.video, args.quick)
    if args.adapt:
        config = adapt_config(args.quick)
        result = ttblur.adapt(model, video, spec=spec, device=args.device, config=config)
        print(result.report.model_dump_json(indent=2))
        restored = result.deblur(video)
    else:
        if args.half:
            model = model.half()
        restored = ttblur.deblur(model, video, spec=spec, device=args.device, window=args.window)
    finish(restored, args.out)


if __name__ == "__main__":
    main()
