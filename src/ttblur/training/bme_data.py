"""Training data of the Blur Magnitude Estimator (:mod:`ttblur.training.bme`).

Two sources of blurry frames with a ground-truth blur magnitude (px), mixed within each batch
by :func:`make_batch`:

- :class:`SyntheticMagnitudePool`: :func:`ttblur.synth.make_video` videos of the training
  photos for every preset, stored as 8-bit frames and float16 magnitudes;
- :class:`HighFrameRateDataset`: high-frame-rate sharp footage (``GOPRO_Large_all``-style):
  a blurry frame is the linear-light average of ``N`` consecutive frames, its ground truth the
  magnitude of the optical flow accumulated over them.

Every crop is drawn from a ``torch.Generator`` seeded with the config seed and the step, so a
batch is a pure function of ``(seed, step)`` and the data (a resumed run sees the same batches).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ttblur.protocols import FlowEstimator
from ttblur.training.content import photo_variant
from ttblur.training.data import (
    EVAL_SEED_OFFSET,
    IMAGE_SUFFIXES,
    flip_transpose,
    frame_sequences,
    linear_light_average,
    synth,
    to_uint8,
)

if TYPE_CHECKING:  # annotations only: bme.py imports this module
    from ttblur.training.bme import TrainBMEConfig

__all__ = [
    "HighFrameRateDataset",
    "SyntheticMagnitudePool",
    "make_batch",
    "rescale_crop",
]


# --------------------------------------------------------------------------------------------
# synthetic pool


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
        self.presets = list(config.presets) if config.presets else list(synth().PRESETS)
        self.photos = list(config.photos) if config.photos else list(synth().TRAIN_PHOTOS)
        if not self.presets or not self.photos:
            raise ValueError("the synthetic pool needs at least one preset and one photo")
        self._render = render or self._render_synth
        self.blurry: list[Tensor] = []  # uint8 (T, 3, H, W)
        self.magnitude: list[Tensor] = []  # float16 (T, 1, H, W) px
        self.sources: list[tuple[str, str, int]] = []

    def _render_synth(self, photo: str, preset: str, seed: int) -> tuple[Tensor, Tensor]:
        cfg = self.config
        synthesis = synth()
        image: str | Tensor = photo
        if cfg.augment_photos:
            image = photo_variant(synthesis.load_photo(photo), np.random.default_rng([seed, 7]))
        video = synthesis.make_video(
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
            self.blurry.append(to_uint8(blurry))
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
        return rescale_crop(image, target, crop)


def rescale_crop(image: Tensor, target: Tensor, crop: int) -> tuple[Tensor, Tensor]:
    """Resize a square ``(3, s, s)`` crop and its ``(1, s, s)`` magnitude (px) to ``crop``."""
    side = image.shape[-1]
    if side == crop:
        return image, target
    factor = crop / side
    image = F.interpolate(image[None], size=(crop, crop), mode="bilinear", antialias=True)[0]
    target = F.interpolate(target[None], size=(crop, crop), mode="bilinear", antialias=True)[0]
    return image.clamp(0, 1), target.clamp_min(0) * factor


# --------------------------------------------------------------------------------------------
# high-frame-rate footage


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
        self.sequences = frame_sequences(self.root, min_frames=last)
        if not self.sequences:
            raise FileNotFoundError(
                f"no folder under '{self.root}' holds {last} or more frames ({IMAGE_SUFFIXES})"
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
        blurry = linear_light_average(frames, self.gamma)
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
        return rescale_crop(image, target, crop)


def make_batch(
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
        image, target = flip_transpose(image, target, gen)
        images.append(image)
        targets.append(target)
    return torch.stack(images), torch.stack(targets)
