"""Deblur (and optionally adapt) a video with the official DSTNet network through ttblur.

Needs a checkout of https://github.com/xuboming8/DSTNet with its requirements (BasicSR-style
package, ``einops``, ``mmcv``, ``cupy``) and a checkpoint (e.g. ``GOPRO.pth``). DSTNet's
dynamic-kernel layer (``basicsr/archs/kpn_pixel.py``) is a CuPy CUDA kernel that raises
``NotImplementedError`` on CPU tensors, so DSTNet runs on CUDA only. ttblur calls it with the
built-in ``"dstnet"`` spec:

* ``(B, T, 3, H, W)`` RGB in [0, 1] in, the same shape out (residual, no border frames);
* H and W multiples of 16: two Haar downsamplings, then the dynamic-kernel branch at 1/2
  resolution pools by 4 and 2 and upsamples by 8 back to the feature size (ttblur pads and
  crops);
* the official test splits videos into 30-frame clips without overlap; ttblur uses 30-frame
  windows (``spec.clip_length``).

Usage::

    python examples/wrap_dstnet.py --repo ~/src/DSTNet --weights experiments/GOPRO.pth \\
        --video blurry.mp4 --out restored.mp4 [--adapt]

Without ``--repo`` the script runs the same path with ttblur's untrained DSTNet stand-in
(``ttblur.testing``; it runs on a CPU) and, without ``--video``, a generated clip (see
``_standin.py``)::

    python examples/wrap_dstnet.py --quick --adapt
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch
from _standin import adapt_config, add_fallback_arguments, finish, input_video, require, standin

import ttblur

REPO_URL = "https://github.com/xuboming8/DSTNet"


def build_dstnet(repo: Path, weights: Path) -> torch.nn.Module:
    """Construct ``basicsr.archs.deblur_arch.Deblur(64, 15)`` and load the checkpoint."""
    if not (repo / "basicsr" / "archs" / "deblur_arch.py").is_file():
        raise SystemExit(f"{repo} is not a DSTNet checkout (git clone {REPO_URL})")
    sys.path.insert(0, str(repo))
    try:
        module = importlib.import_module("basicsr.archs.deblur_arch")
    except ImportError as err:
        raise SystemExit(
            f"cannot import DSTNet from {repo}: {err}. Install its requirements "
            "(pip install -r requirements.txt, plus mmcv and cupy for your CUDA)."
        ) from err
    model = module.Deblur(num_feat=64, num_block=15)
    checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
    state = checkpoint.get("params", checkpoint.get("params_ema", checkpoint))
    model.load_state_dict(state, strict=True)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=None, help="DSTNet checkout")
    parser.add_argument("--weights", type=Path, default=None, help="DSTNet checkpoint (.pth)")
    parser.add_argument("--window", type=int, default=None, help="frames per forward pass")
    add_fallback_arguments(parser)
    args = parser.parse_args()

    if args.repo is None:
        model, device = standin("dstnet"), None
    else:
        if not torch.cuda.is_available():
            raise SystemExit("DSTNet's CuPy kernels need a CUDA GPU")
        model = build_dstnet(args.repo.expanduser(), require(args.weights, "--weights"))
        device = "cuda"
    video = input_video(args.video, args.quick)
    if args.adapt:
        config = adapt_config(args.quick)
        result = ttblur.adapt(model, video, spec="dstnet", device=device, config=config)
        print(result.report.model_dump_json(indent=2))
        restored = result.deblur(video)
    else:
        restored = ttblur.deblur(model, video, spec="dstnet", device=device, window=args.window)
    finish(restored, args.out)


if __name__ == "__main__":
    main()
