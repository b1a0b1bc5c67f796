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
import importlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from ttblur.nets.bme import BlurMagnitudeEstimator, BMEConfig
from ttblur.protocols import FlowEstimator

__all__ = [
    "BMEEvalResult",
    "BMEEvalRow",
    "HighFrameRateDataset",
    "SyntheticMagnitudePool",
    "TrainBMEConfig",
    "TrainBMEResult",
    "evaluate_bme",
    "main",
    "spearman",
    "train_bme",
]

#: Evaluation seeds start here; training seeds are drawn below it.
EVAL_SEED_OFFSET = 10_000
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _synth() -> Any:
    return importlib.import_module("ttblur.synth")


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
        epochs: training epochs; ``steps_per_epoch``: steps in one epoch.
        lr: initial learning rate; ``lr_min``: final one (cosine over all steps).
        seed: seed of everything (pool, sampling, initialisation).
        threads: ``torch.set_num_threads`` during training (``None``: leave as is).
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


# --------------------------------------------------------------------------------------------
# data: synthetic pool


def _to_uint8(x: Tensor) -> Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


class SyntheticMagnitudePool:
    """Synthetic blurry frames with ground-truth magnitude, for every preset.

    Video ``i`` of preset ``p`` is a pure function of ``(seed, p, i)`` (photo and synthesis
    seed below :data:`EVAL_SEED_OFFSET`), so a resumed run rebuilds the same pool.

    Args:
        config: training config (presets, photos, sizes, seed).
        render: ``render(photo, preset, seed) -> (blurry (T,3,H,W) in [0, 1], magnitude
            (T,1,H,W) px)``; default :func:`ttblur.synth.make_video`.
    """

    def __init__(
        self,
        config: TrainBMEConfig,
        *,
        render: Callable[[str, str, int], tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        self.config = config
        self.presets = list(config.presets) if config.presets else list(_synth().PRESETS)
        self.photos = list(config.photos) if config.photos else list(_synth().TRAIN_PHOTOS)
        if not self.presets or not self.photos:
            raise ValueError("the synthetic pool needs at least one preset and one photo")
        self._render = render or self._render_synth
        self.blurry: list[Tensor] = []  # uint8 (T, 3, H, W)
        self.magnitude: list[Tensor] = []  # float16 (T, 1, H, W) px
        self.sources: list[tuple[str, str, int]] = []

    def _render_synth(self, photo: str, preset: str, seed: int) -> tuple[Tensor, Tensor]:
        cfg = self.config
        synth = _synth()
        image: str | Tensor = photo
        if cfg.augment_photos:
            image = _photo_variant(synth.load_photo(photo), np.random.default_rng([seed, 7]))
        video = synth.make_video(
            image, preset=preset, num_frames=cfg.video_frames, size=tuple(cfg.video_size), seed=seed
        )
        return video.blurry, video.magnitude

    def source(self, preset_index: int, video_index: int) -> tuple[str, str, int]:
        """``(photo, preset, seed)`` of video ``video_index`` of preset ``preset_index``."""
        rng = np.random.default_rng([self.config.seed, preset_index, video_index])
        offset = int(rng.integers(len(self.photos)))
        photo = self.photos[(video_index + offset) % len(self.photos)]
        return photo, self.presets[preset_index], int(rng.integers(0, EVAL_SEED_OFFSET))

    def build(self, progress: bool = True) -> None:
        """Render every video of the pool."""
        self.blurry, self.magnitude, self.sources = [], [], []
        jobs = [
            (p, i) for i in range(self.config.videos_per_preset) for p in range(len(self.presets))
        ]
        for p, i in tqdm(jobs, desc="render pool", disable=not progress):
            photo, preset, seed = self.source(p, i)
            blurry, magnitude = self._render(photo, preset, seed)
            if blurry.ndim != 4 or magnitude.shape != (blurry.shape[0], 1, *blurry.shape[2:]):
                raise ValueError(
                    f"render returned blurry {tuple(blurry.shape)} and magnitude "
                    f"{tuple(magnitude.shape)}; expected (T,3,H,W) and (T,1,H,W)"
                )
            self.blurry.append(_to_uint8(blurry))
            self.magnitude.append(magnitude.clamp_min(0).to(torch.float16))
            self.sources.append((photo, preset, seed))

    def __len__(self) -> int:
        return len(self.blurry)

    def sample(self, gen: torch.Generator, crop: int, scale: float) -> tuple[Tensor, Tensor]:
        """One crop: ``(3, crop, crop)`` in [0, 1] and magnitude ``(1, crop, crop)`` px."""
        v = int(torch.randint(len(self.blurry), (1,), generator=gen))
        blurry, magnitude = self.blurry[v], self.magnitude[v]
        frames, _, height, width = blurry.shape
        t = int(torch.randint(frames, (1,), generator=gen))
        side = min(round(crop / scale), height, width)
        top = int(torch.randint(height - side + 1, (1,), generator=gen))
        left = int(torch.randint(width - side + 1, (1,), generator=gen))
        image = blurry[t, :, top : top + side, left : left + side].float() / 255.0
        target = magnitude[t, :, top : top + side, left : left + side].float()
        return _rescale(image, target, crop)


def _photo_variant(photo: Tensor, rng: np.random.Generator) -> Tensor:
    """Random crop / channel order / grey / tone curve of a ``(3, H, W)`` photo in [0, 1]."""
    _, height, width = photo.shape
    crop_h = max(8, round(height * rng.uniform(0.4, 1.0)))
    crop_w = max(8, round(width * rng.uniform(0.4, 1.0)))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    out = photo[:, top : top + crop_h, left : left + crop_w]
    out = out[torch.from_numpy(rng.permutation(3))]
    if rng.uniform() < 0.25:
        out = out.mean(dim=0, keepdim=True).expand(3, -1, -1)
    return out.clamp(0, 1).pow(float(rng.uniform(0.7, 1.4))).contiguous()


def _rescale(image: Tensor, target: Tensor, crop: int) -> tuple[Tensor, Tensor]:
    """Resize a square ``(3, s, s)`` crop and its ``(1, s, s)`` magnitude (px) to ``crop``."""
    side = image.shape[-1]
    if side == crop:
        return image, target
    factor = crop / side
    image = F.interpolate(image[None], size=(crop, crop), mode="bilinear", antialias=True)[0]
    target = F.interpolate(target[None], size=(crop, crop), mode="bilinear", antialias=True)[0]
    return image.clamp(0, 1), target.clamp_min(0) * factor


# --------------------------------------------------------------------------------------------
# data: high-frame-rate footage


def _natural_key(name: str) -> list[Any]:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


class HighFrameRateDataset:
    """Blurry frames and ground-truth magnitude from high-frame-rate sharp footage.

    ``root`` is searched recursively for sequence folders (a ``GOPRO_Large_all`` tree: one
    folder of consecutive 240 fps frames per sequence); a folder counts when it holds at least
    ``frames_per_blur[1]`` images (sorted naturally by name).

    A sample averages ``N`` consecutive sharp frames ``S_0 .. S_{N-1}`` in linear light,
    ``B = (mean_k S_k^gamma)^(1/gamma)``, and takes as ground truth the magnitude of the flow
    accumulated over them,

        ``G = |sum_k f(S_k, S_{k+1})|``    (``magnitude="displacement"``, the paper's G) or
        ``G = sum_k |f(S_k, S_{k+1})|``    (``magnitude="path"``),

    in pixels (the BME divides by ``mag_norm``, the paper's ``tau``). The per-pair flows are
    summed at the same pixel rather than chained along the moving point's trajectory, a
    first-order approximation that is exact for uniform motion and good when each 240 fps step
    moves a few pixels. Flows are computed on the crop plus a ``margin`` of context.

    Args:
        root: folder of sequence folders.
        flow: a :class:`~ttblur.protocols.FlowEstimator`; default
            ``ttblur.stages.flow.OpenCVFlow(flow_preset)`` (imported lazily).
        frames_per_blur: ``(min, max)`` ``N`` drawn uniformly per sample.
        gamma: display gamma of the frames.
        magnitude: ``"displacement"`` or ``"path"`` (above).
        margin: context in px around the crop for the flow.
        flow_preset: DIS preset of the default flow estimator.

    Raises:
        FileNotFoundError: ``root`` missing or holding no long enough sequence.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        flow: FlowEstimator | None = None,
        frames_per_blur: tuple[int, int] = (7, 13),
        gamma: float = 2.2,
        magnitude: Literal["displacement", "path"] = "displacement",
        margin: int = 16,
        flow_preset: Literal["ultrafast", "fast", "medium"] = "medium",
    ) -> None:
        first, last = frames_per_blur
        if not 2 <= first <= last:
            raise ValueError(f"frames_per_blur must satisfy 2 <= min <= max, got {frames_per_blur}")
        if magnitude not in ("displacement", "path"):
            raise ValueError(f"magnitude must be 'displacement' or 'path', got {magnitude!r}")
        if gamma <= 0 or margin < 0:
            raise ValueError(f"gamma must be > 0 and margin >= 0, got {gamma}, {margin}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"no high-frame-rate footage folder at '{self.root}'")
        self.frames_per_blur = (first, last)
        self.gamma = gamma
        self.magnitude = magnitude
        self.margin = margin
        self._flow = flow
        self._flow_preset = flow_preset
        self.sequences: list[list[Path]] = []
        for folder, _, files in sorted(os.walk(self.root)):
            images = sorted(
                (f for f in files if f.lower().endswith(_IMAGE_SUFFIXES)), key=_natural_key
            )
            if len(images) >= last:
                self.sequences.append([Path(folder) / f for f in images])
        if not self.sequences:
            raise FileNotFoundError(
                f"no folder under '{self.root}' holds {last} or more frames ({_IMAGE_SUFFIXES})"
            )

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def flow(self) -> FlowEstimator:
        """The flow estimator (OpenCV DIS by default, created on first use)."""
        if self._flow is None:
            from ttblur.stages.flow import OpenCVFlow

            self._flow = OpenCVFlow(self._flow_preset)
        return self._flow

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read image {path}")
        return image

    def frame_size(self, sequence: int) -> tuple[int, int]:
        """``(H, W)`` of the frames of ``sequence``."""
        height, width = self._read(self.sequences[sequence][0]).shape[:2]
        return int(height), int(width)

    def make(
        self, sequence: int, start: int, count: int, top: int, left: int, size: int
    ) -> tuple[Tensor, Tensor]:
        """One deterministic sample.

        Args:
            sequence: sequence index; ``start``: first frame; ``count``: ``N`` frames.
            top, left, size: the square crop in the frames, px.

        Returns:
            blurry ``(3, size, size)`` RGB in [0, 1] and ground truth ``(1, size, size)`` px.
        """
        paths = self.sequences[sequence][start : start + count]
        if len(paths) != count or count < 2:
            raise ValueError(f"sequence {sequence} has no {count} frames from index {start}")
        first = self._read(paths[0])
        height, width = first.shape[:2]
        if top < 0 or left < 0 or top + size > height or left + size > width:
            raise ValueError(f"crop ({top}, {left}, {size}) outside frames of {height}x{width}")
        y0, x0 = max(top - self.margin, 0), max(left - self.margin, 0)
        y1, x1 = min(top + size + self.margin, height), min(left + size + self.margin, width)
        stack = []
        for index, path in enumerate(paths):
            image = first if index == 0 else self._read(path)
            if image.shape[:2] != (height, width):
                raise ValueError(f"{path} is {image.shape[:2]}, expected {(height, width)}")
            stack.append(image[y0:y1, x0:x1, ::-1])  # BGR -> RGB
        frames = torch.from_numpy(np.stack(stack).copy()).permute(0, 3, 1, 2).float() / 255.0
        blurry = frames.pow(self.gamma).mean(dim=0).pow(1.0 / self.gamma)
        flows = self.flow(frames[:-1].contiguous(), frames[1:].contiguous()).float().cpu()
        if self.magnitude == "displacement":
            target = flows.sum(dim=0).norm(dim=0, keepdim=True)
        else:
            target = flows.norm(dim=1, keepdim=True).sum(dim=0)
        inner = (slice(top - y0, top - y0 + size), slice(left - x0, left - x0 + size))
        return blurry[:, inner[0], inner[1]].clamp(0, 1), target[:, inner[0], inner[1]]

    def sample(self, gen: torch.Generator, crop: int, scale: float) -> tuple[Tensor, Tensor]:
        """A random sample: ``(3, crop, crop)`` in [0, 1] and ``(1, crop, crop)`` px."""
        sequence = int(torch.randint(len(self.sequences), (1,), generator=gen))
        first, last = self.frames_per_blur
        count = int(torch.randint(first, last + 1, (1,), generator=gen))
        start = int(torch.randint(len(self.sequences[sequence]) - count + 1, (1,), generator=gen))
        height, width = self.frame_size(sequence)
        side = min(round(crop / scale), height, width)
        top = int(torch.randint(height - side + 1, (1,), generator=gen))
        left = int(torch.randint(width - side + 1, (1,), generator=gen))
        image, target = self.make(sequence, start, count, top, left, side)
        return _rescale(image, target, crop)


# --------------------------------------------------------------------------------------------
# batches, schedule, checkpoints


def _augment(image: Tensor, target: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    flips = torch.randint(2, (3,), generator=gen).tolist()
    if flips[0]:
        image, target = image.flip(-1), target.flip(-1)
    if flips[1]:
        image, target = image.flip(-2), target.flip(-2)
    if flips[2]:
        image, target = image.transpose(-1, -2), target.transpose(-1, -2)
    return image, target


def _make_batch(
    step: int,
    config: TrainBMEConfig,
    pool: SyntheticMagnitudePool | None,
    footage: HighFrameRateDataset | None,
) -> tuple[Tensor, Tensor]:
    """Batch of ``step``: frames ``(B, 3, c, c)`` in [0, 1], magnitude ``(B, 1, c, c)`` px."""
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    low, high = config.scale_range
    images, targets = [], []
    for _ in range(config.batch_size):
        use_footage = footage is not None and (
            pool is None
            or len(pool) == 0
            or float(torch.rand((), generator=gen)) < config.gopro_fraction
        )
        scale = low + (high - low) * float(torch.rand((), generator=gen))
        source: SyntheticMagnitudePool | HighFrameRateDataset | None = (
            footage if use_footage else pool
        )
        assert source is not None
        image, target = source.sample(gen, config.crop, scale)
        image, target = _augment(image, target, gen)
        images.append(image)
        targets.append(target)
    return torch.stack(images), torch.stack(targets)


def _lr_at(step: int, config: TrainBMEConfig) -> float:
    progress = min(step / max(config.total_steps, 1), 1.0)
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * progress))


def _save_checkpoint(
    folder: Path,
    model: BlurMagnitudeEstimator,
    optimizer: torch.optim.Adam,
    state: dict[str, Any],
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder / "model")
    tensors: dict[str, Tensor] = {}
    for index, param in enumerate(model.parameters()):
        moments = optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in moments:
                tensors[f"{index}.{key}"] = moments[key].detach().cpu().contiguous()
        if "step" in moments:
            tensors[f"{index}.step"] = torch.as_tensor(moments["step"]).reshape(1).float().cpu()
    save_file(tensors, str(folder / "optimizer.safetensors"))
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state) + "\n", encoding="utf-8")
    tmp.replace(folder / "state.json")


def _load_checkpoint(
    folder: Path, model: BlurMagnitudeEstimator, optimizer: torch.optim.Adam
) -> dict[str, Any]:
    saved = BlurMagnitudeEstimator.from_pretrained(folder / "model")
    model.load_state_dict(saved.state_dict())
    tensors = load_file(str(folder / "optimizer.safetensors"))
    device = next(model.parameters()).device
    for index, param in enumerate(model.parameters()):
        if f"{index}.exp_avg" in tensors:
            optimizer.state[param] = {
                "step": torch.tensor(float(tensors[f"{index}.step"][0])),
                "exp_avg": tensors[f"{index}.exp_avg"].to(device),
                "exp_avg_sq": tensors[f"{index}.exp_avg_sq"].to(device),
            }
    state: dict[str, Any] = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    return state


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
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _train(config, Path(out_dir), resume, progress, pool, footage, stop_after)
    finally:
        torch.set_num_threads(previous_threads)


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
    has_checkpoint = (checkpoint / "state.json").is_file()
    if has_checkpoint and not resume:
        raise ValueError(f"{checkpoint} exists: pass resume=True (--resume) or another out_dir")
    if has_checkpoint:
        saved = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))["config"]
        if TrainBMEConfig.model_validate(saved) != config:
            raise ValueError(f"{checkpoint} was written with a different config")
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
    if has_checkpoint:
        state = _load_checkpoint(checkpoint, model, optimizer)
        step, epoch_losses = int(state["step"]), [float(v) for v in state["epoch_losses"]]
        running = [float(v) for v in state["running"]]
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
    with (out / "log.jsonl").open("a", encoding="utf-8") as log:
        try:
            while step < last_step:
                frames, magnitude = _make_batch(step, config, pool, footage)
                target = (magnitude / mag_norm).clamp(0.0, 1.0).to(device)
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(step, config)
                pred = model(frames.to(device), clamp=False)
                loss = F.l1_loss(pred, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                running.append(loss.item())
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(l1_px=f"{np.mean(running[-10:]) * mag_norm:.2f}")
                end_of_epoch = step % config.steps_per_epoch == 0 or step == config.total_steps
                if end_of_epoch:
                    epoch_losses.append(float(np.mean(running)) if running else float("nan"))
                    running = []
                    entry = {
                        "epoch": len(epoch_losses),
                        "step": step,
                        "loss": epoch_losses[-1],
                        "l1_px": epoch_losses[-1] * mag_norm,
                        "lr": _lr_at(step - 1, config),
                        "seconds": round(time.perf_counter() - started, 1),
                    }
                    log.write(json.dumps(entry) + "\n")
                    log.flush()
                if end_of_epoch or step == last_step:
                    state = {
                        "epoch": step // config.steps_per_epoch,
                        "step": step,
                        "epoch_losses": epoch_losses,
                        "running": running,
                        "config": config.model_dump(mode="json"),
                    }
                    _save_checkpoint(checkpoint, model, optimizer, state)
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
# evaluation


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = 0.5 * (start + end) + 1.0
        start = end + 1
    return ranks


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation of two equally long sequences (average ranks for ties).

    Returns ``nan`` when either sequence is constant or shorter than 2.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 30, 25])
        0.8
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"spearman needs two 1-D sequences of equal length, got {x.shape}, {y.shape}"
        )
    if len(x) < 2:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denominator = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


class BMEEvalRow(BaseModel):
    """Accuracy of the estimator on held-out synthetic videos of one preset (or ``"all"``).

    Attributes:
        spearman: rank correlation of per-frame mean predicted vs ground-truth magnitude.
        mae_px: mean absolute per-pixel error, px.
        frame_mae_px: mean absolute error of the per-frame means, px.
        mean_gt_px, mean_pred_px: mean ground-truth / predicted magnitude, px.
    """

    preset: str
    videos: int
    frames: int
    spearman: float
    mae_px: float
    frame_mae_px: float
    mean_gt_px: float
    mean_pred_px: float


class BMEEvalResult(BaseModel):
    """Per-preset rows and the pooled ``overall`` row of :func:`evaluate_bme`."""

    rows: list[BMEEvalRow]
    overall: BMEEvalRow

    def table(self) -> str:
        """Markdown table of the rows and the pooled row."""
        lines = [
            "| preset | videos | frames | Spearman (frame means) | MAE px | frame-mean MAE px "
            "| mean GT px | mean pred px |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in [*self.rows, self.overall]:
            lines.append(
                f"| {r.preset} | {r.videos} | {r.frames} | {r.spearman:.3f} | {r.mae_px:.2f} | "
                f"{r.frame_mae_px:.2f} | {r.mean_gt_px:.2f} | {r.mean_pred_px:.2f} |"
            )
        return "\n".join(lines)


def _row(
    name: str, videos: int, pred: list[float], gt: list[float], mae: list[float]
) -> BMEEvalRow:
    p, g = np.asarray(pred), np.asarray(gt)
    return BMEEvalRow(
        preset=name,
        videos=videos,
        frames=len(p),
        spearman=spearman(p, g),
        mae_px=float(np.mean(mae)),
        frame_mae_px=float(np.mean(np.abs(p - g))),
        mean_gt_px=float(g.mean()),
        mean_pred_px=float(p.mean()),
    )


def evaluate_bme(
    model: BlurMagnitudeEstimator | Callable[[Tensor], Tensor],
    presets: Sequence[str] | None = None,
    *,
    photos: Sequence[str] | None = None,
    videos_per_photo: int = 1,
    num_frames: int = 12,
    size: tuple[int, int] = (192, 256),
    seed: int = EVAL_SEED_OFFSET,
    batch_size: int = 4,
    verbose: bool = True,
) -> BMEEvalResult:
    """Accuracy of a magnitude estimator on held-out synthetic videos; prints a table.

    Args:
        model: a :class:`BlurMagnitudeEstimator` (its ``predict``) or any callable
            ``frames (N, 3, H, W) -> (N, 1, H, W)`` px.
        presets: ``ttblur.synth`` presets; ``None``: all.
        photos: photos; ``None``: ``ttblur.synth.HELDOUT_PHOTOS``.
        videos_per_photo: videos per photo and preset (consecutive seeds).
        num_frames: frames per video; ``size``: ``(H, W)``.
        seed: first synthesis seed (training seeds are below :data:`EVAL_SEED_OFFSET`).
        batch_size: frames per forward pass.
        verbose: print the markdown table.

    Returns:
        :class:`BMEEvalResult`: per-preset rows and the pooled row (Spearman over all frames
        of all presets).
    """
    synth = _synth()
    preset_list = list(presets) if presets is not None else list(synth.PRESETS)
    photo_list = list(photos) if photos is not None else list(synth.HELDOUT_PHOTOS)
    if not preset_list or not photo_list:
        raise ValueError("evaluate_bme needs at least one preset and one photo")
    rows = []
    all_pred: list[float] = []
    all_gt: list[float] = []
    all_mae: list[float] = []
    videos_total = 0
    for p_index, preset in enumerate(preset_list):
        pred_means: list[float] = []
        gt_means: list[float] = []
        maes: list[float] = []
        videos = 0
        for f_index, photo in enumerate(photo_list):
            for k in range(videos_per_photo):
                video = synth.make_video(
                    photo,
                    preset=preset,
                    num_frames=num_frames,
                    size=tuple(size),
                    seed=seed + 1000 * p_index + 10 * f_index + k,
                )
                with torch.no_grad():
                    if isinstance(model, BlurMagnitudeEstimator):
                        pred = model.predict(video.blurry, batch_size=batch_size)
                    else:
                        pred = torch.cat(
                            [
                                model(video.blurry[i : i + batch_size])
                                for i in range(0, num_frames, batch_size)
                            ]
                        )
                pred = pred.float().cpu()
                gt = video.magnitude.float()
                pred_means.extend(pred.mean(dim=(1, 2, 3)).tolist())
                gt_means.extend(gt.mean(dim=(1, 2, 3)).tolist())
                maes.extend((pred - gt).abs().mean(dim=(1, 2, 3)).tolist())
                videos += 1
        rows.append(_row(preset, videos, pred_means, gt_means, maes))
        all_pred += pred_means
        all_gt += gt_means
        all_mae += maes
        videos_total += videos
    result = BMEEvalResult(rows=rows, overall=_row("all", videos_total, all_pred, all_gt, all_mae))
    if verbose:
        print(result.table())
    return result


# --------------------------------------------------------------------------------------------
# command line


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ttblur.training.bme",
        description="Train / evaluate ttblur's Blur Magnitude Estimator.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = TrainBMEConfig()
    train = sub.add_parser("train", help="train on synthetic videos (+ optional GoPro footage)")
    train.add_argument("--out", default="runs/bme", help="run folder")
    train.add_argument("--variant", choices=["lite", "paper"], default="lite")
    train.add_argument("--encoder-weights", default=None, help="torchvision resnet50 (paper)")
    train.add_argument("--init-weights", default=None, help="BME weights folder to start from")
    train.add_argument("--epochs", type=int, default=d.epochs)
    train.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    train.add_argument("--batch-size", type=int, default=d.batch_size)
    train.add_argument("--crop", type=int, default=d.crop)
    train.add_argument("--scale-range", type=float, nargs=2, default=list(d.scale_range))
    train.add_argument("--lr", type=float, default=d.lr)
    train.add_argument("--lr-min", type=float, default=d.lr_min)
    train.add_argument("--presets", nargs="*", default=None, help="default: all presets")
    train.add_argument("--photos", nargs="*", default=None, help="default: TRAIN_PHOTOS")
    train.add_argument("--videos-per-preset", type=int, default=d.videos_per_preset)
    train.add_argument("--video-frames", type=int, default=d.video_frames)
    train.add_argument("--video-size", type=int, nargs=2, default=list(d.video_size))
    train.add_argument(
        "--no-augment-photos", action="store_true", help="render the photos unchanged"
    )
    train.add_argument("--gopro-root", default=None, help="folder of 240 fps sequences")
    train.add_argument("--gopro-fraction", type=float, default=d.gopro_fraction)
    train.add_argument("--gopro-frames", type=int, nargs=2, default=list(d.gopro_frames))
    train.add_argument(
        "--gopro-magnitude", choices=["displacement", "path"], default="displacement"
    )
    train.add_argument("--num-threads", type=int, default=None, help="torch threads")
    train.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    train.add_argument("--seed", type=int, default=d.seed)
    train.add_argument("--resume", action="store_true", help="continue out/checkpoint")
    train.add_argument("--stop-after", type=int, default=None, help="steps in this call")
    train.add_argument("--export", default=None, help="also save the final weights here")
    train.add_argument("--no-progress", action="store_true")
    evaluate = sub.add_parser("evaluate", help="Spearman / MAE on held-out synthetic videos")
    evaluate.add_argument("--weights", default=None, help="weights folder (default: shipped)")
    evaluate.add_argument("--presets", nargs="*", default=None, help="default: all presets")
    evaluate.add_argument("--videos-per-photo", type=int, default=1)
    evaluate.add_argument("--frames", type=int, default=12)
    evaluate.add_argument("--size", type=int, nargs=2, default=[192, 256])
    evaluate.add_argument("--seed", type=int, default=EVAL_SEED_OFFSET)
    evaluate.add_argument("--num-threads", type=int, default=None)
    evaluate.add_argument("--json", default=None, help="also write the result to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    args = _build_parser().parse_args(argv)
    if args.command == "train":
        config = TrainBMEConfig(
            model=BMEConfig(variant=args.variant),
            presets=args.presets or None,
            photos=args.photos or None,
            videos_per_preset=args.videos_per_preset,
            video_frames=args.video_frames,
            video_size=tuple(args.video_size),
            augment_photos=not args.no_augment_photos,
            gopro_root=args.gopro_root,
            gopro_fraction=args.gopro_fraction,
            gopro_frames=tuple(args.gopro_frames),
            gopro_magnitude=args.gopro_magnitude,
            crop=args.crop,
            scale_range=tuple(args.scale_range),
            batch_size=args.batch_size,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            lr=args.lr,
            lr_min=args.lr_min,
            seed=args.seed,
            threads=args.num_threads,
            device=args.device,
            encoder_weights=args.encoder_weights,
            init_weights=args.init_weights,
        )
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
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
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
