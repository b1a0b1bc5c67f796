"""Deblur (and optionally adapt) a video with the official ESTRNN network through ttblur.

Needs a checkout of https://github.com/zzh-tech/ESTRNN, its requirements (``thop``) and a
checkpoint (``model_best.pth.tar`` from the ESTRNN README). ttblur does not import ESTRNN
itself; this script builds it from the checkout and tells ttblur how to call it with the
built-in ``"estrnn"`` spec:

* input ``(B, T, 3, H, W)`` in [-0.5, 0.5] (ESTRNN's ``centralize`` + ``normalize``), H and W
  multiples of 4 (ttblur pads and crops), 2 past + 2 future border frames (ttblur reflects the
  video in time so every frame is restored);
* colour order BGR: ESTRNN's own data code reads frames with OpenCV and never converts them.
  Checkpoints trained on RGB frames (e.g. DADeblur's fine-tuned ESTRNN) need ``--rgb``;
* ``Model.__init__`` hard-codes ``self.device = torch.device('cuda')`` for its hidden state;
  ttblur sets ``model.device`` to the run device during each call (``spec.device_attribute``),
  so the same script runs on a CPU.

Usage::

    python examples/wrap_estrnn.py --repo ~/src/ESTRNN --weights model_best.pth.tar \\
        --video blurry.mp4 --out restored.mp4 [--adapt] [--rgb] [--device cuda]

Without ``--repo`` the script runs the same path with ttblur's untrained ESTRNN stand-in
(``ttblur.testing``) and, without ``--video``, a generated clip (see ``_standin.py``)::

    python examples/wrap_estrnn.py --quick --adapt
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

REPO_URL = "https://github.com/zzh-tech/ESTRNN"


def build_estrnn(repo: Path, weights: Path) -> torch.nn.Module:
    """Construct ``model.ESTRNN.Model`` from the checkout and load the checkpoint."""
    if not (repo / "model" / "ESTRNN.py").is_file():
        raise SystemExit(f"{repo} is not an ESTRNN checkout (git clone {REPO_URL})")
    sys.path.insert(0, str(repo))
    try:
        module = importlib.import_module("model.ESTRNN")
    except ImportError as err:
        raise SystemExit(
            f"cannot import ESTRNN from {repo}: {err}. Install its requirements "
            "(pip install thop) and check the checkout."
        ) from err
    # the options ESTRNN's para/parameter.py uses by default
    para = argparse.Namespace(
        n_features=16, n_blocks=15, past_frames=2, future_frames=2, activation="gelu"
    )
    model = module.Model(para)
    checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict", checkpoint.get("model_state", checkpoint))
    # the official trainer wraps Model in model.model.Model and DataParallel
    for prefix in ("module.model.", "module.", "model."):
        if all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    model.load_state_dict(state)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=None, help="ESTRNN checkout")
    parser.add_argument("--weights", type=Path, default=None, help="ESTRNN checkpoint")
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda if present)")
    parser.add_argument("--rgb", action="store_true", help="checkpoint was trained on RGB")
    add_fallback_arguments(parser)
    args = parser.parse_args()

    if args.repo is None:
        model = standin("estrnn")
    else:
        model = build_estrnn(args.repo.expanduser(), require(args.weights, "--weights"))
    spec = get_spec("estrnn")
    if args.rgb:
        spec = spec.replace(name="estrnn_rgb", channel_order="RGB")
    video = input_video(args.video, args.quick)
    if args.adapt:
        config = adapt_config(args.quick)
        result = ttblur.adapt(model, video, spec=spec, device=args.device, config=config)
        print(result.report.model_dump_json(indent=2))
        restored = result.deblur(video)
    else:
        restored = ttblur.deblur(model, video, spec=spec, device=args.device)
    finish(restored, args.out)


if __name__ == "__main__":
    main()
