"""Deblur (and optionally adapt) a video with the official MMP-RNN network through ttblur.

Needs a checkout of https://github.com/sollynoay/MMP-RNN, its requirements (``thop``,
``opencv-python``, ``Pillow``), the MMP-RNN checkpoint and the motion-magnitude prior
checkpoint (``model_best.pth.tar`` of the MMP-Net). ttblur does not import MMP-RNN itself;
this script builds it and calls it with the built-in ``"mmp_rnn"`` spec:

* ESTRNN's conventions: ``(B, T, 3, H, W)`` in [-0.5, 0.5], 2 past + 2 future border frames,
  H and W multiples of 4, ``self.device = torch.device('cuda')`` hard-coded (ttblur sets
  ``model.device`` to the run device); RGB frames (its GoPro lmdb is written with PIL);
* the prior is *internal*: ``RDBCell.__init__`` loads ``./model_best.pth.tar`` relative to
  the working directory, freezes it and puts it in eval mode. This script changes directory
  to the prior's folder while constructing the model. The spec's ``keep_frozen_in_eval``
  makes ttblur's fine-tuning keep that BatchNorm prior in eval mode.

Usage::

    python examples/wrap_mmp_rnn.py --repo ~/src/MMP-RNN --prior mmp/model_best.pth.tar \\
        --weights mmprnn_gopro.pth.tar --video blurry.mp4 --out restored.mp4 [--adapt]

Without ``--repo`` the script runs the same path with ttblur's untrained MMP-RNN stand-in
(``ttblur.testing``, frozen BatchNorm prior included) and, without ``--video``, a generated
clip (see ``_standin.py``)::

    python examples/wrap_mmp_rnn.py --quick --adapt
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import torch
from _standin import adapt_config, add_fallback_arguments, finish, input_video, require, standin

import ttblur

REPO_URL = "https://github.com/sollynoay/MMP-RNN"


def _code_root(repo: Path) -> Path:
    for candidate in (repo / "MMP-RNN" / "MMP-RNN", repo / "MMP-RNN", repo):
        if (candidate / "model" / "MMPRNN.py").is_file():
            return candidate
    raise SystemExit(f"{repo} is not an MMP-RNN checkout (git clone {REPO_URL})")


def build_mmp_rnn(repo: Path, weights: Path, prior: Path, do_skip: bool) -> torch.nn.Module:
    """Construct ``model.MMPRNN.Model`` (prior loaded from ``prior``) and load ``weights``."""
    root = _code_root(repo)
    if prior.name != "model_best.pth.tar" or not prior.is_file():
        raise SystemExit("--prior must be the MMP-Net checkpoint file named model_best.pth.tar")
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("model.MMPRNN")
    except ImportError as err:
        raise SystemExit(
            f"cannot import MMP-RNN from {root}: {err}. Install its requirements "
            "(pip install thop opencv-python pillow)."
        ) from err
    para = argparse.Namespace(
        n_features=16,
        n_blocks=15,
        n_blocks_a=7,
        n_blocks_b=8,
        past_frames=2,
        future_frames=2,
        activation="gelu",
        do_skip=do_skip,
        centralize=True,
        normalize=True,
    )
    here = Path.cwd()
    os.chdir(prior.parent)  # the constructor reads ./model_best.pth.tar
    try:
        model = module.Model(para)
    finally:
        os.chdir(here)
    checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict", checkpoint)
    for prefix in ("module.model.", "module.", "model."):
        if all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    model.load_state_dict(state)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=None, help="MMP-RNN checkout")
    parser.add_argument("--weights", type=Path, default=None, help="MMP-RNN checkpoint")
    parser.add_argument("--prior", type=Path, default=None, help="MMP-Net model_best.pth.tar")
    parser.add_argument("--do-skip", action="store_true", help="model trained with --do_skip")
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda if present)")
    add_fallback_arguments(parser)
    args = parser.parse_args()

    if args.repo is None:
        model = standin("mmp_rnn")
    else:
        model = build_mmp_rnn(
            args.repo.expanduser(),
            require(args.weights, "--weights"),
            require(args.prior, "--prior").resolve(),
            args.do_skip,
        )
    video = input_video(args.video, args.quick)
    if args.adapt:
        config = adapt_config(args.quick)
        result = ttblur.adapt(model, video, spec="mmp_rnn", device=args.device, config=config)
        print(result.report.model_dump_json(indent=2))
        restored = result.deblur(video)
    else:
        restored = ttblur.deblur(model, video, spec="mmp_rnn", device=args.device)
    finish(restored, args.out)


if __name__ == "__main__":
    main()
