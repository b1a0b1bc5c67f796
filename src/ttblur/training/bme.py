"""Train and evaluate the Blur Magnitude Estimator (BME,
:class:`~ttblur.nets.bme.BlurMagnitudeEstimator`).

Loss and schedule follow the paper: L1 between the network output (un-clamped) and
``magnitude / mag_norm`` (clamped to [0, 1]), Adam at ``1e-3`` cosine-annealed to ``1e-4`` per
step, 320x320 crops, batch 16, 50 epochs by default (every value is overridable).

Data sources, mixed within each batch:

(a) **Synthetic videos** (:func:`ttblur.synth.make_video`) of the training photos
    (``ttblur.synth.TRAIN_PHOTOS``) for every preset: a pool of ``videos_per_preset`` videos per
    preset is rendered once (blurry frames stored as 8-bit like real footage, ground-truth
    magnitude in px), each from a random crop / colour / tone variant of its photo
    (``augment_photos``); training crops are drawn uniformly over videos, frames and positions,
    with random horizontal / vertical flips and transposition (a blur magnitude is invariant to
    them) and an optional random rescale (the magnitude scales with the image).
(b) **High-frame-rate sharp footage** (a ``GOPRO_Large_all``-style folder: one sub-folder of
    240 fps frames per sequence), see :class:`HighFrameRateDataset`: a blurry frame is the
    linear-light average of ``N`` consecutive frames and its ground truth is the magnitude of
    the optical flow accumulated over those frames.

Checkpoints are safetensors (model, Adam moments) plus a JSON state (epoch, step, losses,
config); ``--resume`` continues a run exactly (batch sampling is a pure function of the seed and
the step). Evaluation (:func:`evaluate_bme`) renders held-out videos (``HELDOUT_PHOTOS``, seeds
never used in training) and reports the Spearman rank correlation of the per-frame mean
predicted vs ground-truth magnitude and the mean absolute error in pixels.

Command line::

    python -m ttblur.training.bme train --out runs/bme --epochs 50
    python -m ttblur.training.bme evaluate --weights runs/bme/final
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from ttblur.nets.bme import BlurMagnitudeEstimator, BMEConfig
from ttblur.training.bme_data import HighFrameRateDataset, SyntheticMagnitudePool, make_batch
from ttblur.training.bme_eval import BMEEvalResult, BMEEvalRow, evaluate_bme, spearman
from ttblur.training.common import (
    ConfigOptions,
    JsonLinesLog,
    add_run_arguments,
    cosine_schedule,
    load_checkpoint,
    optimizer_step,
    resume_from,
    save_checkpoint,
    torch_threads,
)
from ttblur.training.data import EVAL_SEED_OFFSET

__all__ = [
    "EVAL_SEED_OFFSET",
    "MODEL_OPTIONS",
    "TRAIN_OPTIONS",
    "BMEEvalResult",
    "BMEEvalRow",
    "HighFrameRateDataset",
    "SyntheticMagnitudePool",
    "TrainBMEConfig",
    "TrainBMEResult",
    "build_parser",
    "config_from_args",
    "evaluate_bme",
    "main",
    "spearman",
    "train_bme",
]


class TrainBMEConfig(BaseModel):
    """Hyper-parameters of :func:`train_bme` (saved as ``train_config.json``).

    Attributes:
        model: architecture of the estimator (default: the ``"lite"`` variant).
        encoder_weights: torchvision ``resnet50`` state dict initialising the ``"paper"``
            encoder (ImageNet weights, a local file; never downloaded).
        init_weights: a ``BlurMagnitudeEstimator`` weights folder (or Hub repo id) to start
            from, e.g. to fine-tune the shipped estimator on new footage; its architecture
            must equal ``model``.
        presets: ``ttblur.synth`` presets of the synthetic pool; ``None``: all presets.
        photos: photos of the synthetic pool; ``None``: ``ttblur.synth.TRAIN_PHOTOS``.
        videos_per_preset: synthetic videos rendered per preset (0: no synthetic data).
        video_frames: frames per synthetic video.
        video_size: ``(H, W)`` of the synthetic videos, px (each side ``>= crop``).
        augment_photos: render each pool video from a random variant of its photo: a crop
            covering 40-100 % of each side (the synthesizer then upsamples it, so the content is
            soft although not motion-blurred), a random channel order, grey in 25 % of the
            videos and a random tone curve ``x ** g``, ``g`` in [0.7, 1.4]. This keeps the
            estimator from reading smooth content as motion blur.
        gopro_root: folder of high-frame-rate sequences (see :class:`HighFrameRateDataset`).
        gopro_fraction: share of each batch drawn from ``gopro_root`` when it is given.
        gopro_frames: ``(min, max)`` number of sharp frames averaged into one blurry frame.
        gopro_gamma: display gamma for the linear-light average.
        gopro_magnitude: ``"displacement"`` (|sum of flows|, the paper's G) or ``"path"``
            (sum of |flow|).
        gopro_flow_preset: DIS preset of the default :class:`~ttblur.stages.flow.OpenCVFlow`.
        crop: side of the square training crops, px.
        scale_range: ``(low, high)`` random rescale factor of a crop (1, 1: none); the region
            read is ``crop / s`` and its magnitude is multiplied by ``s``.
        batch_size: crops per step.
        epochs: training epochs.
        steps_per_epoch: steps in one epoch.
        lr: initial learning rate.
        lr_min: final learning rate (cosine annealing over all steps).
        seed: seed of everything (pool, sampling, initialisation).
        threads: ``torch.set_num_threads`` during training (``None``: leave as is); a resumed
            run may change it.
        device: ``"cpu"``, ``"cuda"``, ... (``None``: CUDA when available).
    """

    model_config = ConfigDict(extra="forbid")

    model: BMEConfig = Field(default_factory=BMEConfig)
    encoder_weights: str | None = None
    init_weights: str | None = None
    presets: list[str] | None = None
    photos: list[str] | None = None
    videos_per_preset: int = Field(default=8, ge=0)
    video_frames: int = Field(default=8, gt=0)
    video_size: tuple[int, int] = (360, 480)
    augment_photos: bool = True
    gopro_root: str | None = None
    gopro_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    gopro_frames: tuple[int, int] = (7, 13)
    gopro_gamma: float = Field(default=2.2, gt=0.0)
    gopro_magnitude: Literal["displacement", "path"] = "displacement"
    gopro_flow_preset: Literal["ultrafast", "fast", "medium"] = "medium"
    crop: int = Field(default=320, gt=0)
    scale_range: tuple[float, float] = (1.0, 1.0)
    batch_size: int = Field(default=16, gt=0)
    epochs: int = Field(default=50, gt=0)
    steps_per_epoch: int = Field(default=200, gt=0)
    lr: float = Field(default=1e-3, gt=0.0)
    lr_min: float = Field(default=1e-4, ge=0.0)
    seed: int = 0
    threads: int | None = Field(default=None, gt=0)
    device: str | None = None

    @model_validator(mode="after")
    def _check(self) -> TrainBMEConfig:
        low, high = self.scale_range
        if not 0.0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if self.videos_per_preset and min(self.video_size) * low < self.crop:
            raise ValueError(
                f"video_size {self.video_size} is too small for {self.crop} px crops at scale "
                f"{low} (needs sides >= crop / scale); lower crop or raise video_size"
            )
        first, last = self.gopro_frames
        if not 2 <= first <= last:
            raise ValueError(f"gopro_frames must satisfy 2 <= min <= max, got {self.gopro_frames}")
        if self.videos_per_preset == 0 and self.gopro_root is None:
            raise ValueError("no training data: videos_per_preset is 0 and gopro_root is None")
        return self

    @property
    def total_steps(self) -> int:
        """``epochs * steps_per_epoch``."""
        return self.epochs * self.steps_per_epoch


class TrainBMEResult(BaseModel):
    """Summary of a training run."""

    steps: int
    epochs: int
    seconds: float
    final_loss: float
    epoch_losses: list[float]
    out_dir: str


def train_bme(
    config: TrainBMEConfig | None = None,
    out_dir: str | Path = "runs/bme",
    *,
    resume: bool = False,
    progress: bool = True,
    pool: SyntheticMagnitudePool | None = None,
    footage: HighFrameRateDataset | None = None,
    stop_after: int | None = None,
) -> TrainBMEResult:
    """Train a :class:`BlurMagnitudeEstimator` (see the module docstring for the recipe).

    Args:
        config: hyper-parameters (default :class:`TrainBMEConfig()`: the paper's recipe).
        out_dir: run folder: ``checkpoint/`` (latest, resumable: ``model/``,
            ``optimizer.safetensors``, ``state.json``), ``final/`` (``config.json`` +
            ``model.safetensors``, written after the last step), ``train_config.json``,
            ``log.jsonl`` (one line per epoch).
        resume: continue from ``out_dir/checkpoint`` (the config must be the same). Without
            it an existing checkpoint is an error, so a finished run is never overwritten.
        progress: tqdm bars.
        pool: a pre-built :class:`SyntheticMagnitudePool` (tests); default renders one when
            ``config.videos_per_preset > 0``.
        footage: a :class:`HighFrameRateDataset`; default built from ``config.gopro_root``.
        stop_after: run at most this many steps in this call, then checkpoint and return (the
            run continues with ``resume=True``; the result is identical to one long call).

    Returns:
        :class:`TrainBMEResult` with the mean loss of every epoch.

    Raises:
        ValueError: an existing checkpoint without ``resume``, or one with another config.
    """
    config = config or TrainBMEConfig()
    with torch_threads(config.threads):
        return _train(config, Path(out_dir), resume, progress, pool, footage, stop_after)


def _train(
    config: TrainBMEConfig,
    out: Path,
    resume: bool,
    progress: bool,
    pool: SyntheticMagnitudePool | None,
    footage: HighFrameRateDataset | None,
    stop_after: int | None,
) -> TrainBMEResult:
    if stop_after is not None and stop_after <= 0:
        raise ValueError(f"stop_after must be > 0, got {stop_after}")
    checkpoint = out / "checkpoint"
    resuming = resume_from(checkpoint, config, resume=resume, overwrite=False)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(config.model_dump_json(indent=2) + "\n", "utf-8")
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    torch.manual_seed(config.seed)
    model = BlurMagnitudeEstimator(config.model, encoder_weights=config.encoder_weights)
    if config.init_weights is not None:
        start = BlurMagnitudeEstimator.from_pretrained(config.init_weights)
        if start.config != config.model:
            raise ValueError(
                f"init_weights {config.init_weights} hold a different architecture: "
                f"{start.config} vs {config.model}"
            )
        model.load_state_dict(start.state_dict())
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, epoch_losses, running = 0, [], []
    if resuming:
        state, _ = load_checkpoint(checkpoint, model, optimizer)
        step, epoch_losses = int(state["step"]), [float(v) for v in state["epoch_losses"]]
        running = [float(v) for v in state["running"]]
    scheduler = cosine_schedule(
        optimizer,
        lr=config.lr,
        lr_min=config.lr_min,
        total_steps=config.total_steps,
        start_step=step,
    )
    last_step = (
        config.total_steps if stop_after is None else min(config.total_steps, step + stop_after)
    )
    if pool is None and config.videos_per_preset > 0:
        pool = SyntheticMagnitudePool(config)
        pool.build(progress=progress)
    if footage is None and config.gopro_root is not None:
        footage = HighFrameRateDataset(
            config.gopro_root,
            frames_per_blur=config.gopro_frames,
            gamma=config.gopro_gamma,
            magnitude=config.gopro_magnitude,
            flow_preset=config.gopro_flow_preset,
        )

    mag_norm = model.mag_norm
    started = time.perf_counter()
    model.train()
    bar = tqdm(total=config.total_steps, initial=step, desc="train bme", disable=not progress)
    with JsonLinesLog(out / "log.jsonl") as log:
        if resuming:
            log.mark_resumed(step)
        try:
            while step < last_step:
                frames, magnitude = make_batch(step, config, pool, footage)
                target = (magnitude / mag_norm).clamp(0.0, 1.0).to(device)
                lr = scheduler.get_last_lr()[0]
                loss = F.l1_loss(model(frames.to(device), clamp=False), target)
                optimizer_step(loss, model, optimizer, scheduler=scheduler)
                step += 1
                running.append(loss.item())
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(l1_px=f"{np.mean(running[-10:]) * mag_norm:.2f}")
                end_of_epoch = step % config.steps_per_epoch == 0 or step == config.total_steps
                if end_of_epoch:
                    epoch_losses.append(float(np.mean(running)) if running else float("nan"))
                    running = []
                    log.write(
                        {
                            "epoch": len(epoch_losses),
                            "step": step,
                            "loss": epoch_losses[-1],
                            "l1_px": epoch_losses[-1] * mag_norm,
                            "lr": lr,
                            "seconds": round(time.perf_counter() - started, 1),
                        }
                    )
                if end_of_epoch or step == last_step:
                    state = {
                        "epoch": step // config.steps_per_epoch,
                        "step": step,
                        "epoch_losses": epoch_losses,
                        "running": running,
                        "config": config.model_dump(mode="json"),
                    }
                    save_checkpoint(checkpoint, model, optimizer, state)
        finally:
            bar.close()
    model.eval()
    if step == config.total_steps:
        model.save_pretrained(out / "final")
    return TrainBMEResult(
        steps=step,
        epochs=step // config.steps_per_epoch,
        seconds=time.perf_counter() - started,
        final_loss=epoch_losses[-1] if epoch_losses else float("nan"),
        epoch_losses=epoch_losses,
        out_dir=str(out),
    )


# --------------------------------------------------------------------------------------------
# command line


#: ``train`` options of the :class:`TrainBMEConfig` fields (``--num-threads`` is ``--threads``)
TRAIN_OPTIONS = ConfigOptions(
    TrainBMEConfig, exclude=("model",), flags={"threads": ["--num-threads"]}
)
#: ``train`` options of the architecture (the variant; its other fields follow it)
MODEL_OPTIONS = ConfigOptions(BMEConfig, include=("variant",))


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (see :func:`main`)."""
    parser = argparse.ArgumentParser(
        prog="python -m ttblur.training.bme",
        description="Train / evaluate ttblur's Blur Magnitude Estimator.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train on synthetic videos (+ optional GoPro footage)")
    add_run_arguments(train, out="runs/bme", resume=False)
    train.add_argument("--stop-after", type=int, default=None, help="steps in this call")
    MODEL_OPTIONS.add_to(train)
    TRAIN_OPTIONS.add_to(train)
    evaluate = sub.add_parser("evaluate", help="Spearman / MAE on held-out synthetic videos")
    evaluate.add_argument("--weights", default=None, help="weights folder (default: shipped)")
    evaluate.add_argument("--presets", nargs="*", default=None, help="default: all presets")
    evaluate.add_argument("--videos-per-photo", type=int, default=1)
    evaluate.add_argument("--frames", type=int, default=12)
    evaluate.add_argument("--size", type=int, nargs=2, default=[192, 256])
    evaluate.add_argument("--seed", type=int, default=EVAL_SEED_OFFSET)
    evaluate.add_argument("--num-threads", "--threads", dest="threads", type=int, default=None)
    evaluate.add_argument("--json", default=None, help="also write the result to this file")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainBMEConfig:
    """The :class:`TrainBMEConfig` of parsed ``train`` options."""
    model = BMEConfig(**MODEL_OPTIONS.values(args))
    return TrainBMEConfig(model=model, **TRAIN_OPTIONS.values(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    args = build_parser().parse_args(argv)
    if args.command == "train":
        config = config_from_args(args)
        result = train_bme(
            config,
            args.out,
            resume=args.resume,
            progress=not args.no_progress,
            stop_after=args.stop_after,
        )
        if result.steps < config.total_steps:
            print(f"stopped at step {result.steps}/{config.total_steps}; continue with --resume")
            return 0
        print(
            f"trained {result.steps} steps ({result.epochs} epochs) in {result.seconds:.0f} s, "
            f"final L1 {result.final_loss:.5f} ({result.final_loss * config.model.mag_norm:.2f} "
            f"px); weights in {Path(args.out) / 'final'}"
        )
        if args.export:
            BlurMagnitudeEstimator.from_pretrained(Path(args.out) / "final").save_pretrained(
                args.export
            )
            print(f"exported to {args.export}")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    model = BlurMagnitudeEstimator.from_pretrained(args.weights)
    evaluation = evaluate_bme(
        model,
        args.presets or None,
        videos_per_photo=args.videos_per_photo,
        num_frames=args.frames,
        size=tuple(args.size),
        seed=args.seed,
    )
    if args.json:
        Path(args.json).write_text(evaluation.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
