"""Train (or fine-tune) the Blur Magnitude Estimator on your own high-frame-rate footage.

The Blur Magnitude Estimator (BME) predicts, per pixel, how far the scene moved during the
exposure, in pixels; RSDM keeps the patches where that is smallest as pseudo-sharp images.
ttblur ships a small estimator trained on synthetic videos only (``docs/rsdm.md``). This
script trains one on real sharp footage the way the paper does, with
:mod:`ttblur.training.bme`, and shows how to plug the result into ``ttblur.adapt``.

Footage layout (``GOPRO_Large_all``-style: consecutive sharp frames at a high frame rate,
240 fps for GoPro; one folder per sequence, found recursively, frames sorted naturally)::

    ROOT/
      GOPR0372_07_00/000001.png 000002.png ...
      GOPR0372_07_01/000001.png ...

A training sample (:class:`ttblur.training.bme.HighFrameRateDataset`) averages ``N``
consecutive frames in linear light into one blurry frame; its target is the magnitude of the
optical flow accumulated over those frames (OpenCV DIS), in pixels.

Run::

    python examples/train_bme_on_gopro.py --root /data/GOPRO_Large_all/train --out runs/bme
    python examples/train_bme_on_gopro.py --root ... --init-shipped   # fine-tune the shipped one
    python examples/train_bme_on_gopro.py --root ... --mix-synthetic  # + ttblur.synth videos
    python examples/train_bme_on_gopro.py --root FOLDER --quick       # 3 tiny steps (smoke test)

Without ``--quick`` the paper's recipe is used (``TrainBMEConfig`` defaults: 320 px crops,
batch 16, 50 epochs, Adam 1e-3 cosine to 1e-4): a GPU job. Long runs are better started with
the module's command line, which can also resume: ``python -m ttblur.training.bme train
--gopro-root ROOT --out runs/bme`` (then ``--resume``). The trained weights land in
``OUT/final`` and are used with ``AdaptConfig(rsdm={"weights": "OUT/final"})``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import ttblur
from ttblur.hub import shipped_weights_dir
from ttblur.nets.bme import BMEConfig
from ttblur.training.bme import HighFrameRateDataset, TrainBMEConfig, train_bme


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="folder of frame sequences")
    parser.add_argument("--out", type=Path, default=Path("runs/bme-footage"), help="run folder")
    parser.add_argument("--quick", action="store_true", help="3 tiny steps (a smoke test)")
    parser.add_argument("--variant", choices=["lite", "paper"], default="lite")
    parser.add_argument("--encoder-weights", default=None, help="ResNet-50 weights (paper)")
    parser.add_argument("--init-shipped", action="store_true", help="start from shipped BME")
    parser.add_argument("--mix-synthetic", action="store_true", help="half synthetic crops")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu / cuda (default: cuda if present)")
    parser.add_argument("--resume", action="store_true", help="continue OUT/checkpoint")
    return parser.parse_args()


def main() -> None:
    args = parse_args()

    # 1. the footage: look at one sample (blurry crop + ground-truth magnitude in px)
    frames_per_blur = (3, 5) if args.quick else (7, 13)
    flow_preset = "ultrafast" if args.quick else "medium"
    footage = HighFrameRateDataset(
        args.root, frames_per_blur=frames_per_blur, flow_preset=flow_preset
    )
    height, width = footage.frame_size(0)
    side = min(height, width, 64)
    blurry, magnitude = footage.make(0, 0, frames_per_blur[1], 0, 0, side)
    print(
        f"{len(footage)} sequences; sample: blurry {tuple(blurry.shape)} from "
        f"{frames_per_blur[1]} frames, ground-truth magnitude {float(magnitude.mean()):.2f} px "
        f"mean, {float(magnitude.max()):.2f} px max"
    )

    # 2. the training configuration (TrainBMEConfig defaults are the paper's recipe)
    overrides: dict[str, object] = {
        "model": BMEConfig(variant=args.variant),
        "encoder_weights": args.encoder_weights,
        "init_weights": str(shipped_weights_dir("bme-lite")) if args.init_shipped else None,
        "gopro_root": str(args.root),
        "gopro_frames": frames_per_blur,
        "gopro_flow_preset": flow_preset,
        "gopro_fraction": 0.5 if args.mix_synthetic else 1.0,
        "videos_per_preset": TrainBMEConfig().videos_per_preset if args.mix_synthetic else 0,
        "device": args.device,
    }
    if args.quick:
        overrides |= {
            "crop": 32,
            "batch_size": 2,
            "epochs": 1,
            "steps_per_epoch": 3,
            "video_size": (64, 80),
            "video_frames": 3,
            "threads": 1,
        }
        if args.mix_synthetic:
            overrides |= {"videos_per_preset": 1, "presets": ["gopro"], "photos": ["rocket"]}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    config = TrainBMEConfig.model_validate(overrides)

    # 3. train: checkpoints in OUT/checkpoint, weights of the last step in OUT/final
    result = train_bme(
        config, args.out, resume=args.resume, progress=not args.quick, footage=footage
    )
    print(f"trained {result.steps} steps in {result.seconds:.1f} s; L1 {result.final_loss:.4f}")

    # 4. load the trained estimator and check it on the sample above
    bme = ttblur.BlurMagnitudeEstimator.from_pretrained(args.out / "final")
    with torch.no_grad():
        predicted = bme.predict(blurry[None])[0]
    error = float((predicted - magnitude).abs().mean())
    print(f"sample: predicted {float(predicted.mean()):.2f} px mean, MAE {error:.2f} px")

    # 5. use it for adaptation: RSDM loads the folder (a Hub repo id works as well)
    rsdm = {"weights": str(args.out / "final")}
    ttblur.AdaptConfig(rsdm=rsdm)  # validates
    print(f"use it with ttblur.adapt(..., config=ttblur.AdaptConfig(rsdm={rsdm!r}))")


if __name__ == "__main__":
    main()
