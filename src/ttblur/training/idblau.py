"""Train the ID-Blau noise predictor (``python -m ttblur.training.idblau --help``).

Recipe of the official code: random 128x128 crops with flips / rot90 (the condition vectors
are transformed along), the blurry image ``B`` noised as ``x_t = sqrt(ab_t) B + sqrt(1-ab_t) eps``
with ``t`` uniform in ``[0, 2000)`` (linear beta 1e-6..1e-2), the network fed
``[x_t, sharp, condition]`` (images shifted to ``[-0.5, 0.5]``), Charbonnier loss between the
predicted and the true noise, Adam 1e-4, gradient norm clipped to 1.

Training pairs ``(blurry, sharp, condition)``, each ``(3, H, W)``, come from
:mod:`ttblur.training.idblau_data` (:class:`SyntheticPairs`, :class:`FramesFolderPairs`,
:class:`TensorPairs`).

Checkpoints (one folder, resumable, no pickle): ``config.json`` + ``model.safetensors`` (loadable
with :meth:`ttblur.stages.idblau.IDBlau.from_pretrained`), ``training_state.safetensors``
(optimizer moments and the data generator's state) and ``training_state.json`` (step, loss
curve, optimizer hyper-parameters, run settings).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import load_file
from torch import Tensor

from ttblur.diffusion.schedule import DDPMProcess, LinearNoiseSchedule
from ttblur.io.weights import CONFIG_NAME, WEIGHTS_NAME
from ttblur.nets.idblau_unet import IDBlauConfig, IDBlauUNet
from ttblur.training.common import (
    CheckpointLayout,
    ConfigOptions,
    add_run_arguments,
    cosine_schedule,
    optimizer_step,
    read_state,
    restore_optimizer,
    save_checkpoint,
    torch_threads,
)
from ttblur.training.idblau_data import (
    FramesFolderPairs,
    PairDataset,
    SyntheticPairs,
    TensorPairs,
    augment_pair,
    condition_from_flow,
)

__all__ = [
    "CHECKPOINT_LAYOUT",
    "STATE_JSON",
    "STATE_TENSORS",
    "TRAIN_OPTIONS",
    "FramesFolderPairs",
    "PairDataset",
    "SyntheticPairs",
    "TensorPairs",
    "TrainIDBlauConfig",
    "TrainingResult",
    "augment_pair",
    "build_parser",
    "charbonnier_loss",
    "condition_from_flow",
    "main",
    "train_idblau",
]

STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"
#: An ID-Blau checkpoint is also a weights folder: ``config.json`` + ``model.safetensors``
#: beside the optimizer / generator state.
CHECKPOINT_LAYOUT = CheckpointLayout(
    model_dir="", tensors=STATE_TENSORS, state=STATE_JSON, prefix="optimizer."
)


def charbonnier_loss(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    """Mean of ``sqrt((pred - target)^2 + eps^2)`` (a smooth L1)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


class TrainIDBlauConfig(BaseModel):
    """Optimisation settings of :func:`train_idblau` (its keyword arguments, validated).

    Attributes:
        steps: total optimisation steps.
        batch_size: pairs per step (official: 32).
        crop_size: random square crop (official: 128); ``None`` uses whole pairs.
        lr: Adam learning rate (official: 1e-4, betas 0.9 / 0.999).
        lr_min: cosine decay to this at ``steps`` (``None``: constant, the official default).
        grad_clip: maximum gradient norm (official: 1); ``None`` (on the command line: <= 0)
            disables clipping.
        seed: seed of the initialisation and of every random choice (drawn on the CPU).
        device: where the network trains (cpu, cuda, cuda:1, mps, ...).
        save_every: steps between checkpoints (a final one is always written).
    """

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=1000, ge=0)
    batch_size: int = Field(default=8, ge=1)
    crop_size: int | None = 128
    lr: float = Field(default=1e-4, gt=0.0)
    lr_min: float | None = None
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "cpu"
    save_every: int = Field(default=500, ge=1)

    @model_validator(mode="after")
    def _check(self) -> TrainIDBlauConfig:
        if self.lr_min is not None and not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"need 0 <= lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")
        return self


@dataclass
class TrainingResult:
    """Outcome of :func:`train_idblau`.

    Attributes:
        out_dir: the checkpoint folder (loadable with ``IDBlau.from_pretrained(out_dir)``).
        step: optimisation steps done in total (including resumed ones).
        losses: loss of every step since the start of training (resumed runs included).
        network: the trained network (eval mode).
        seconds: wall time of this call.
        settings: the optimisation settings and the number of pairs.
    """

    out_dir: Path
    step: int
    losses: list[float]
    network: IDBlauUNet
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)


def _resolve_config(config: IDBlauConfig | str | Path) -> IDBlauConfig:
    if isinstance(config, IDBlauConfig):
        return config
    if str(config) in ("official", "small"):
        return IDBlauConfig.preset(str(config))  # type: ignore[arg-type]
    path = Path(config)
    if path.is_dir():
        path = path / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"config must be 'official', 'small' or a config.json path, got {config}")
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.pop("_class_name", None)
    return IDBlauConfig.model_validate(raw)


def train_idblau(
    out_dir: str | Path,
    pairs: PairDataset,
    *,
    config: IDBlauConfig | str | Path | None = None,
    steps: int = 1000,
    batch_size: int = 8,
    crop_size: int | None = 128,
    lr: float = 1e-4,
    lr_min: float | None = None,
    grad_clip: float | None = 1.0,
    seed: int = 0,
    device: str = "cpu",
    save_every: int = 500,
    resume: bool = True,
    progress: bool = True,
) -> TrainingResult:
    """Train (or continue training) an ID-Blau noise predictor.

    Args:
        out_dir: checkpoint folder; with ``resume`` and a checkpoint there, training continues
            from it (same network config and same settings but ``steps``, ``device`` and
            ``save_every`` required) until ``steps`` steps in total. Without ``resume``, a
            folder that already holds a run is refused: it holds published weights, never
            overwritten by accident (delete it or pick another ``out_dir`` to start over).
        pairs: training pairs (see :class:`PairDataset`), ``(3, H, W)`` each.
        config: network configuration, preset name (``"official"``, ``"small"``) or
            ``config.json`` path; ``None``: the checkpoint's config when resuming, else
            ``"official"``. Resuming with a different config is an error.
        steps: total optimisation steps.
        batch_size: pairs per step (official: 32).
        crop_size: random square crop (official: 128); ``None`` uses whole pairs (all pairs
            must then have the same size). Must be a multiple of the net's spatial multiple.
        lr: Adam learning rate (official: 1e-4, betas 0.9 / 0.999).
        lr_min: if set, the learning rate follows a cosine from ``lr`` at step 0 to ``lr_min``
            at step ``steps`` (the official script's optional cosine schedule); ``None`` keeps
            it constant (the official default).
        grad_clip: maximum gradient norm (official: 1); ``None`` disables clipping.
        seed: seeds the network initialisation and every random choice (pairs, crops,
            timesteps, noise), all drawn on the CPU so that runs are reproducible.
        device: where the network trains (``"cpu"``, ``"cuda"``, ...).
        save_every: steps between checkpoints (a final one is always written).
        resume: continue from ``out_dir`` if it holds a checkpoint.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`TrainingResult` with the loss of every step.
    """
    run = TrainIDBlauConfig(
        steps=steps,
        batch_size=batch_size,
        crop_size=crop_size,
        lr=lr,
        lr_min=lr_min,
        grad_clip=grad_clip,
        seed=seed,
        device=device,
        save_every=save_every,
    )
    if len(pairs) == 0:
        raise ValueError("pairs is empty")
    return _train(Path(out_dir), pairs, config, run, resume, progress)


def _train(
    out: Path,
    pairs: PairDataset,
    config: IDBlauConfig | str | Path | None,
    run: TrainIDBlauConfig,
    resume: bool,
    progress: bool,
) -> TrainingResult:
    start_time = time.perf_counter()
    holds_run = CHECKPOINT_LAYOUT.exists(out) or (out / WEIGHTS_NAME).is_file()
    if holds_run and not resume:
        raise ValueError(
            f"{out} already holds an ID-Blau run (its weights and checkpoint); resume it "
            "(resume=True, the default), or delete it / pick another out_dir to start over"
        )
    resuming = resume and CHECKPOINT_LAYOUT.exists(out) and (out / WEIGHTS_NAME).is_file()
    wanted = _resolve_config(config) if config is not None else None
    if resuming:
        network = IDBlauUNet.from_pretrained(out, map_location=run.device)
        if wanted is not None and wanted != network.config:
            raise ValueError(
                f"{out} holds a checkpoint of another network config ({network.config!r}); "
                f"pass that config (or None) to resume, or resume=False to start over"
            )
    else:
        torch.manual_seed(run.seed)
        network = IDBlauUNet(wanted if wanted is not None else IDBlauConfig.official())
        network.to(run.device)
    cfg = network.config
    crop_size = run.crop_size
    if crop_size is not None and crop_size % cfg.spatial_multiple:
        raise ValueError(f"crop_size must be a multiple of {cfg.spatial_multiple}, got {crop_size}")
    process = DDPMProcess(
        LinearNoiseSchedule(cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=run.lr, betas=(0.9, 0.999))
    generator = torch.Generator().manual_seed(run.seed)
    settings = {**run.model_dump(exclude={"device", "save_every"}), "pairs": len(pairs)}
    step, losses = 0, []
    if resuming:
        state = read_state(out, CHECKPOINT_LAYOUT)
        saved = state.get("settings", {})
        # `steps` may grow: a resumed run continues "until steps steps in total".
        changed = sorted(k for k in settings if k != "steps" and saved.get(k) != settings[k])
        if changed:
            raise ValueError(
                f"{out} holds a run with other settings ({', '.join(changed)} differ: "
                f"{ {k: saved.get(k) for k in changed} } there, "
                f"{ {k: settings[k] for k in changed} } now); resume it with its settings, or "
                "delete it / pick another out_dir to start over"
            )
        tensors = load_file(str(out / CHECKPOINT_LAYOUT.tensors))
        extra = restore_optimizer(
            optimizer, tensors, state["optimizer"], prefix=CHECKPOINT_LAYOUT.prefix
        )
        generator.set_state(extra["generator_state"])
        step, losses = int(state["step"]), [float(v) for v in state["losses"]]
    scheduler = None
    if run.lr_min is not None:
        scheduler = cosine_schedule(
            optimizer, lr=run.lr, lr_min=run.lr_min, total_steps=run.steps, start_step=step
        )

    def checkpoint() -> None:
        state = {"step": step, "losses": losses, "settings": settings}
        extra = {"generator_state": generator.get_state()}
        save_checkpoint(out, network, optimizer, state, layout=CHECKPOINT_LAYOUT, tensors=extra)

    bar = None
    if progress and step < run.steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=run.steps, initial=step, desc="ID-Blau", dynamic_ncols=True)
    network.train()
    device = run.device
    while step < run.steps:
        indices = torch.randint(0, len(pairs), (run.batch_size,), generator=generator).tolist()
        crops = [augment_pair(*pairs[i], crop_size, generator) for i in indices]
        blurry = torch.stack([c[0] for c in crops]).to(device) - 0.5
        sharp = torch.stack([c[1] for c in crops]).to(device) - 0.5
        condition = torch.stack([c[2] for c in crops]).to(device)
        timesteps = process.sample_timesteps(run.batch_size, generator=generator)
        noise = torch.randn(blurry.shape, generator=generator).to(device)
        timesteps = timesteps.to(device)
        noisy = process.add_noise(blurry, noise, timesteps)
        pred = network(torch.cat((noisy, sharp, condition), dim=1), timesteps)
        loss = charbonnier_loss(pred, process.training_target(blurry, noise, timesteps))
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {step}")
        optimizer_step(loss, network, optimizer, grad_clip=run.grad_clip, scheduler=scheduler)
        step += 1
        losses.append(value)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
        if step % run.save_every == 0 and step < run.steps:
            checkpoint()
    if bar is not None:
        bar.close()
    network.eval()
    checkpoint()
    return TrainingResult(
        out_dir=out,
        step=step,
        losses=losses,
        network=network,
        seconds=time.perf_counter() - start_time,
        settings=settings,
    )


#: options of the :class:`TrainIDBlauConfig` fields
TRAIN_OPTIONS = ConfigOptions(TrainIDBlauConfig)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (see :func:`main`)."""
    parser = argparse.ArgumentParser(
        prog="python -m ttblur.training.idblau",
        description=(
            "Train the ID-Blau conditional diffusion blur model (official recipe: Charbonnier "
            "noise loss, 128x128 crops, Adam 1e-4) on ttblur.synth pairs or on a folder of "
            "high-frame-rate sharp frames. Resumable: rerun with the same --out to continue."
        ),
    )
    add_run_arguments(parser, out=None, resume=True, export=False)
    parser.add_argument(
        "--data",
        default="synth",
        help="'synth' (ttblur.synth TRAIN_PHOTOS) or a GoPro_Large_all-style frames folder",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="'official', 'small' or a config.json path (default: the checkpoint's when "
        "resuming, else 'official')",
    )
    parser.add_argument(
        "--mag-norm",
        type=float,
        default=None,
        help="px mapped to z = 1 (default: the config's, 147 for the official recipe)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    TRAIN_OPTIONS.add_to(parser.add_argument_group("optimisation"))
    synth_group = parser.add_argument_group("synthetic data (--data synth)")
    synth_group.add_argument("--presets", nargs="+", default=["gopro"])
    synth_group.add_argument("--photos", nargs="+", default=None, help="default: TRAIN_PHOTOS")
    synth_group.add_argument("--frames-per-video", type=int, default=8)
    synth_group.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    folder_group = parser.add_argument_group("frames folder (--data PATH)")
    folder_group.add_argument("--frames-per-blur", type=int, default=7)
    folder_group.add_argument("--stride", type=int, default=None)
    folder_group.add_argument("--gamma", type=float, default=2.2)
    folder_group.add_argument(
        "--flow-preset", choices=["ultrafast", "fast", "medium"], default="medium"
    )
    folder_group.add_argument("--cache-dir", default=None, help="cache computed pairs here")
    folder_group.add_argument("--max-windows", type=int, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    config: IDBlauConfig | None = None
    if args.config is not None:
        config = _resolve_config(args.config)
    elif args.resume and CHECKPOINT_LAYOUT.exists(out):
        config = _resolve_config(out)
    if args.mag_norm is not None:
        config = (config or IDBlauConfig.official()).model_copy(update={"mag_norm": args.mag_norm})
    mag_norm = config.mag_norm if config is not None else IDBlauConfig.official().mag_norm
    pairs: PairDataset
    if args.data == "synth":
        pairs = SyntheticPairs(
            args.photos,
            args.presets,
            frames_per_video=args.frames_per_video,
            size=(args.size[0], args.size[1]),
            mag_norm=mag_norm,
            seed=args.seed,
        )
    else:
        from ttblur.stages.flow import OpenCVFlow

        pairs = FramesFolderPairs(
            args.data,
            flow=OpenCVFlow(args.flow_preset),
            frames_per_blur=args.frames_per_blur,
            stride=args.stride,
            gamma=args.gamma,
            mag_norm=mag_norm,
            cache_dir=args.cache_dir,
            max_windows=args.max_windows,
        )
    run = TRAIN_OPTIONS.values(args)
    if run["grad_clip"] is not None and run["grad_clip"] <= 0:
        run["grad_clip"] = None
    result = train_idblau(
        out, pairs, config=config, resume=args.resume, progress=not args.no_progress, **run
    )
    tail = result.losses[-50:]
    mean_tail = sum(tail) / len(tail) if tail else float("nan")
    print(
        f"trained {result.step} steps on {len(pairs)} pairs in {result.seconds:.1f} s; "
        f"mean loss of the last {len(tail)} steps {mean_tail:.4f}; weights in {result.out_dir}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
