"""Train the ID-Blau noise predictor (``python -m ttblur.training.idblau --help``).

Recipe of the official code: random 128x128 crops with flips / rot90 (the condition vectors
are transformed along), the blurry image ``B`` noised as ``x_t = sqrt(ab_t) B + sqrt(1-ab_t) eps``
with ``t`` uniform in ``[0, 2000)`` (linear beta 1e-6..1e-2), the network fed
``[x_t, sharp, condition]`` (images shifted to ``[-0.5, 0.5]``), Charbonnier loss between the
predicted and the true noise, Adam 1e-4, gradient norm clipped to 1.

Training pairs ``(blurry, sharp, condition)``, each ``(3, H, W)``:

* :class:`SyntheticPairs`: :mod:`ttblur.synth` videos of ``TRAIN_PHOTOS`` under domain presets,
  condition = the ground truth ``video.condition(mag_norm)``;
* :class:`FramesFolderPairs`: a GoPro_Large_all-style folder of high-frame-rate sharp frames:
  blurry = linear-light average of ``N`` consecutive frames, sharp = the middle frame, condition
  from the optical flow accumulated over the averaged frames;
* :class:`TensorPairs`: tensors already in memory.

Checkpoints (one folder, resumable, no pickle): ``config.json`` + ``model.safetensors`` (loadable
with :meth:`ttblur.stages.idblau.IDBlau.from_pretrained`), ``training_state.safetensors``
(optimizer moments and the data generator's state) and ``training_state.json`` (step, loss
curve, optimizer hyper-parameters, run settings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ttblur.diffusion.schedule import DDPMScheduler, LinearNoiseSchedule
from ttblur.hub import CONFIG_NAME, WEIGHTS_NAME
from ttblur.nets.idblau_unet import IDBlauConfig, IDBlauUNet

__all__ = [
    "STATE_JSON",
    "STATE_TENSORS",
    "FramesFolderPairs",
    "PairDataset",
    "SyntheticPairs",
    "TensorPairs",
    "TrainingResult",
    "augment_pair",
    "charbonnier_loss",
    "condition_from_flow",
    "main",
    "train_idblau",
]

STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class PairDataset(Protocol):
    """Indexable training pairs: ``dataset[i] -> (blurry, sharp, condition)``, each
    ``(3, H, W)`` float32; images RGB in ``[0, 1]``, condition ``(x, y, z)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]: ...


def charbonnier_loss(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    """Mean of ``sqrt((pred - target)^2 + eps^2)`` (a smooth L1)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def condition_from_flow(flow: Tensor, mag_norm: float, *, min_flow: float = 1e-3) -> Tensor:
    """Blur condition from a start-to-end exposure displacement.

    Args:
        flow: ``(N, 2, H, W)`` displacement in pixels (x, y).
        mag_norm: pixels that map to ``z = 1``.
        min_flow: below this length (px) the direction falls back to ``(1, 0)``.

    Returns:
        ``(N, 3, H, W)``: unit direction ``flow / |flow|`` and ``z = min(|flow| / mag_norm, 1)``.
    """
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (N, 2, H, W), got shape {tuple(flow.shape)}")
    if not mag_norm > 0:
        raise ValueError(f"mag_norm must be > 0, got {mag_norm}")
    length = torch.linalg.vector_norm(flow, dim=1, keepdim=True)
    unit = flow / length.clamp_min(min_flow)
    fallback = torch.zeros_like(unit)
    fallback[:, 0] = 1.0
    unit = torch.where(length >= min_flow, unit, fallback)
    return torch.cat((unit, (length / mag_norm).clamp(max=1.0)), dim=1)


def augment_pair(
    blurry: Tensor,
    sharp: Tensor,
    condition: Tensor,
    crop_size: int | None,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """Random crop, horizontal / vertical flips and rot90 of a pair, condition included.

    A horizontal flip negates the condition's x, a vertical flip its y; a rotation by 90
    degrees (``torch.rot90`` on the last two dims, counter-clockwise on screen) maps a
    direction ``(x, y)`` (y pointing down) to ``(y, -x)``.

    Args:
        blurry, sharp, condition: ``(3, H, W)`` each.
        crop_size: side of the square crop; ``None`` keeps the full image.
        generator: CPU generator deciding the crop and the transforms.
    """
    h, w = sharp.shape[-2:]
    if crop_size is not None:
        if crop_size > h or crop_size > w:
            raise ValueError(f"crop_size {crop_size} exceeds the pair size {h}x{w}")
        top = int(torch.randint(0, h - crop_size + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - crop_size + 1, (1,), generator=generator))
        box = (slice(None), slice(top, top + crop_size), slice(left, left + crop_size))
        blurry, sharp, condition = blurry[box], sharp[box], condition[box]
    flip_h, flip_v, rot = (int(v) for v in torch.randint(0, 4, (3,), generator=generator))
    if flip_h % 2:
        blurry, sharp, condition = (t.flip(-1) for t in (blurry, sharp, condition))
        condition = torch.stack((-condition[0], condition[1], condition[2]))
    if flip_v % 2:
        blurry, sharp, condition = (t.flip(-2) for t in (blurry, sharp, condition))
        condition = torch.stack((condition[0], -condition[1], condition[2]))
    for _ in range(rot):
        blurry, sharp, condition = (torch.rot90(t, 1, (-2, -1)) for t in (blurry, sharp, condition))
        condition = torch.stack((condition[1], -condition[0], condition[2]))
    return blurry.contiguous(), sharp.contiguous(), condition.contiguous()


class TensorPairs:
    """Pairs held in memory.

    Args:
        blurry: ``(N, 3, H, W)`` RGB in ``[0, 1]``.
        sharp: ``(N, 3, H, W)`` RGB in ``[0, 1]``.
        condition: ``(N, 3, H, W)`` condition maps.
    """

    def __init__(self, blurry: Tensor, sharp: Tensor, condition: Tensor) -> None:
        for name, t in (("blurry", blurry), ("sharp", sharp), ("condition", condition)):
            if t.ndim != 4 or t.shape[1] != 3:
                raise ValueError(f"{name} must be (N, 3, H, W), got shape {tuple(t.shape)}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or inf")
        if not blurry.shape == sharp.shape == condition.shape:
            raise ValueError(
                f"shapes differ: blurry {tuple(blurry.shape)}, sharp {tuple(sharp.shape)}, "
                f"condition {tuple(condition.shape)}"
            )
        if blurry.shape[0] == 0:
            raise ValueError("need at least one pair")
        self.blurry = blurry.float()
        self.sharp = sharp.float()
        self.condition = condition.float()

    def __len__(self) -> int:
        return self.blurry.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.blurry[index], self.sharp[index], self.condition[index]


class SyntheticPairs(TensorPairs):
    """Pairs from :mod:`ttblur.synth` with the ground-truth condition.

    Every frame of ``make_video(photo, preset, num_frames=frames_per_video, size=size,
    seed=...)`` gives one pair ``(blurry_t, sharp_t, video.condition(mag_norm)_t)``.

    Args:
        photos: photo names; default ``ttblur.synth.TRAIN_PHOTOS`` (never the held-out ones).
        presets: domain presets (default: the GoPro-like source domain).
        frames_per_video: frames rendered per (photo, preset).
        size: ``(H, W)`` of the rendered frames.
        mag_norm: pixels that map to ``z = 1``.
        seed: base seed; video ``k`` uses ``seed + k``.
        overrides: extra ``SynthParams`` overrides passed to ``make_video``.
    """

    def __init__(
        self,
        photos: Sequence[str] | None = None,
        presets: Sequence[str] = ("gopro",),
        *,
        frames_per_video: int = 8,
        size: tuple[int, int] = (256, 256),
        mag_norm: float = 147.0,
        seed: int = 0,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        from ttblur import synth

        photo_list = list(synth.TRAIN_PHOTOS if photos is None else photos)
        if not photo_list or not presets:
            raise ValueError("need at least one photo and one preset")
        held_out = sorted(set(photo_list) & set(synth.HELDOUT_PHOTOS))
        if held_out:
            raise ValueError(
                f"photos {held_out} are held-out evaluation photos; train on TRAIN_PHOTOS"
            )
        blurry, sharp, condition = [], [], []
        k = 0
        for photo in photo_list:
            for preset in presets:
                video = synth.make_video(
                    photo,
                    preset=preset,
                    num_frames=frames_per_video,
                    size=size,
                    seed=seed + k,
                    **(overrides or {}),
                )
                blurry.append(video.blurry)
                sharp.append(video.sharp)
                condition.append(video.condition(mag_norm))
                k += 1
        super().__init__(torch.cat(blurry), torch.cat(sharp), torch.cat(condition))


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _read_rgb(path: Path) -> Tensor:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    return torch.from_numpy(image.astype(np.float32) / scale).permute(2, 0, 1).contiguous()


class FramesFolderPairs:
    """Pairs made from high-frame-rate sharp frames (a GoPro_Large_all-style folder).

    ``root`` holds one sub-folder of frames per video (or the frames themselves). Each
    window of ``frames_per_blur`` consecutive frames gives one pair: blurry = the average of
    the frames in linear light (``frame ** gamma``, mean, ``** (1 / gamma)``), sharp = the
    middle frame, condition from the displacement over the window measured at the middle
    frame's pixels, as in the official ID-Blau data preparation: the sum of the flows between
    consecutive frames, averaged with the negated sum of the backward flows. Pairs are
    computed when first read and, with ``cache_dir``, stored as safetensors for later runs.

    Args:
        root: folder of video folders of frames (sorted naturally).
        frames_per_blur: frames averaged per blurry image (GoPro: 7 to 13), >= 2.
        stride: frames between the starts of consecutive windows (default: non-overlapping).
        flow: a :class:`~ttblur.protocols.FlowEstimator`; default
            :class:`~ttblur.stages.flow.OpenCVFlow` (DIS, medium preset).
        gamma: display gamma of the frames.
        mag_norm: pixels that map to ``z = 1``.
        cache_dir: folder to cache computed pairs in.
        max_windows: use at most this many windows (the first ones).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        frames_per_blur: int = 7,
        stride: int | None = None,
        flow: Callable[[Tensor, Tensor], Tensor] | None = None,
        gamma: float = 2.2,
        mag_norm: float = 147.0,
        cache_dir: str | Path | None = None,
        max_windows: int | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"no frames folder at {root}")
        if frames_per_blur < 2:
            raise ValueError(f"frames_per_blur must be >= 2, got {frames_per_blur}")
        stride = frames_per_blur if stride is None else stride
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        folders = [root, *sorted((p for p in root.rglob("*") if p.is_dir()), key=str)]
        self.windows: list[list[Path]] = []
        for folder in folders:
            frames = sorted(
                (p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES),
                key=_natural_key,
            )
            for start in range(0, len(frames) - frames_per_blur + 1, stride):
                self.windows.append(frames[start : start + frames_per_blur])
        if max_windows is not None:
            self.windows = self.windows[:max_windows]
        if not self.windows:
            raise ValueError(
                f"no window of {frames_per_blur} consecutive frames found under {root}"
            )
        if flow is None:
            from ttblur.stages.flow import OpenCVFlow

            flow = OpenCVFlow()
        self.flow = flow
        self.gamma = float(gamma)
        self.mag_norm = float(mag_norm)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        cached = self.cache_dir / f"pair_{index:06d}.safetensors" if self.cache_dir else None
        if cached is not None and cached.is_file():
            data = load_file(str(cached))
            return data["blurry"], data["sharp"], data["condition"]
        frames = torch.stack([_read_rgb(p) for p in self.windows[index]])
        blurry = frames.clamp(0, 1).pow(self.gamma).mean(0).pow(1.0 / self.gamma)
        sharp = frames[len(frames) // 2]
        forward = self.flow(frames[:-1], frames[1:]).sum(0)
        backward = self.flow(frames[1:], frames[:-1]).sum(0)
        displacement = 0.5 * (forward - backward)
        condition = condition_from_flow(displacement[None], self.mag_norm)[0]
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            save_file(
                {"blurry": blurry, "sharp": sharp.contiguous(), "condition": condition},
                str(cached),
            )
        return blurry, sharp, condition


@dataclass
class TrainingResult:
    """Outcome of :func:`train_idblau`.

    Attributes:
        out_dir: the checkpoint folder (loadable with ``IDBlau.from_pretrained(out_dir)``).
        step: optimisation steps done in total (including resumed ones).
        losses: loss of every step since the start of training (resumed runs included).
        network: the trained network (eval mode).
        seconds: wall time of this call.
    """

    out_dir: Path
    step: int
    losses: list[float]
    network: IDBlauUNet
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    state = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = float(value)
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict, device: str
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value.to(device) if name != "step" else value
    for index, entries in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _save_checkpoint(
    out_dir: Path,
    network: IDBlauUNet,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    step: int,
    losses: list[float],
    settings: dict[str, Any],
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    network.save_pretrained(out_dir)
    tensors, meta = _optimizer_tensors(optimizer)
    tensors["generator_state"] = generator.get_state()
    tmp = out_dir / (STATE_TENSORS + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out_dir / STATE_TENSORS)
    _write_json(
        out_dir / STATE_JSON,
        {"step": step, "losses": losses, "optimizer": meta, "settings": settings},
    )


def _cosine_lr(step: int, total: int, lr: float, lr_min: float) -> float:
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * step / max(total, 1)))


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
            from it (same network config required) until ``steps`` steps in total.
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
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if batch_size < 1 or save_every < 1:
        raise ValueError(f"batch_size and save_every must be >= 1, got {batch_size}, {save_every}")
    if len(pairs) == 0:
        raise ValueError("pairs is empty")
    if lr <= 0 or (lr_min is not None and not 0 <= lr_min <= lr):
        raise ValueError(f"need lr > 0 and 0 <= lr_min <= lr, got lr={lr}, lr_min={lr_min}")
    start_time = time.perf_counter()
    out = Path(out_dir)
    resuming = resume and (out / STATE_JSON).is_file() and (out / WEIGHTS_NAME).is_file()
    wanted = _resolve_config(config) if config is not None else None
    if resuming:
        network = IDBlauUNet.from_pretrained(out, map_location=device)
        if wanted is not None and wanted != network.config:
            raise ValueError(
                f"{out} holds a checkpoint of another network config ({network.config!r}); "
                f"pass that config (or None) to resume, or resume=False to start over"
            )
    else:
        torch.manual_seed(seed)
        network = IDBlauUNet(wanted if wanted is not None else IDBlauConfig.official()).to(device)
    cfg = network.config
    if crop_size is not None and crop_size % cfg.spatial_multiple:
        raise ValueError(f"crop_size must be a multiple of {cfg.spatial_multiple}, got {crop_size}")
    scheduler = DDPMScheduler(
        LinearNoiseSchedule(cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=lr, betas=(0.9, 0.999))
    generator = torch.Generator().manual_seed(seed)
    settings = {
        "batch_size": batch_size,
        "crop_size": crop_size,
        "lr": lr,
        "lr_min": lr_min,
        "steps": steps,
        "grad_clip": grad_clip,
        "seed": seed,
        "pairs": len(pairs),
    }
    step, losses = 0, []
    if resuming:
        meta = json.loads((out / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(out / STATE_TENSORS))
        _restore_optimizer(optimizer, tensors, meta["optimizer"], device)
        generator.set_state(tensors["generator_state"])
        step, losses = int(meta["step"]), [float(v) for v in meta["losses"]]

    bar = None
    if progress and step < steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=step, desc="ID-Blau", dynamic_ncols=True)
    network.train()
    while step < steps:
        indices = torch.randint(0, len(pairs), (batch_size,), generator=generator).tolist()
        crops = [augment_pair(*pairs[i], crop_size, generator) for i in indices]
        blurry = torch.stack([c[0] for c in crops]).to(device) - 0.5
        sharp = torch.stack([c[1] for c in crops]).to(device) - 0.5
        condition = torch.stack([c[2] for c in crops]).to(device)
        timesteps = scheduler.sample_timesteps(batch_size, generator=generator)
        noise = torch.randn(blurry.shape, generator=generator).to(device)
        timesteps = timesteps.to(device)
        noisy = scheduler.add_noise(blurry, noise, timesteps)
        pred = network(torch.cat((noisy, sharp, condition), dim=1), timesteps)
        loss = charbonnier_loss(pred, scheduler.training_target(blurry, noise, timesteps))
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {step}")
        if lr_min is not None:
            for group in optimizer.param_groups:
                group["lr"] = _cosine_lr(step, steps, lr, lr_min)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(network.parameters(), grad_clip)
        optimizer.step()
        step += 1
        losses.append(value)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
        if step % save_every == 0 and step < steps:
            _save_checkpoint(out, network, optimizer, generator, step, losses, settings)
    if bar is not None:
        bar.close()
    network.eval()
    _save_checkpoint(out, network, optimizer, generator, step, losses, settings)
    return TrainingResult(
        out_dir=out,
        step=step,
        losses=losses,
        network=network,
        seconds=time.perf_counter() - start_time,
        settings=settings,
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ttblur.training.idblau",
        description=(
            "Train the ID-Blau conditional diffusion blur model (official recipe: Charbonnier "
            "noise loss, 128x128 crops, Adam 1e-4) on ttblur.synth pairs or on a folder of "
            "high-frame-rate sharp frames. Resumable: rerun with the same --out to continue."
        ),
    )
    parser.add_argument("--out", required=True, help="checkpoint folder (created / resumed)")
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
    parser.add_argument("--steps", type=int, default=1000, help="total optimisation steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument(
        "--lr-min",
        type=float,
        default=None,
        help="cosine decay to this at --steps (default: constant)",
    )
    parser.add_argument("--grad-clip", type=float, default=1.0, help="<= 0 disables")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps, ...")
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument(
        "--mag-norm",
        type=float,
        default=None,
        help="px mapped to z = 1 (default: the config's, 147 for the official recipe)",
    )
    parser.add_argument(
        "--no-resume", action="store_true", help="start over even if --out has a checkpoint"
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
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
    args = _build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    config: IDBlauConfig | None = None
    if args.config is not None:
        config = _resolve_config(args.config)
    elif not args.no_resume and (out / STATE_JSON).is_file():
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
    result = train_idblau(
        out,
        pairs,
        config=config,
        steps=args.steps,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        lr=args.lr,
        lr_min=args.lr_min,
        grad_clip=args.grad_clip if args.grad_clip > 0 else None,
        seed=args.seed,
        device=args.device,
        save_every=args.save_every,
        resume=not args.no_resume,
        progress=not args.no_progress,
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
