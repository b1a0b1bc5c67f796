"""Training pairs of the ID-Blau noise predictor (:mod:`ttblur.training.idblau`).

A pair is ``(blurry, sharp, condition)``, each ``(3, H, W)`` float32; images RGB in
``[0, 1]``, the condition ``(x, y, z)``: unit blur direction and ``z = min(length / mag_norm, 1)``.

* :class:`SyntheticPairs`: :mod:`ttblur.synth` videos of ``TRAIN_PHOTOS`` under domain presets,
  condition = the ground truth ``video.condition(mag_norm)``;
* :class:`FramesFolderPairs`: a GoPro_Large_all-style folder of high-frame-rate sharp frames:
  blurry = linear-light average of ``N`` consecutive frames, sharp = the middle frame, condition
  from the optical flow accumulated over the averaged frames;
* :class:`TensorPairs`: tensors already in memory.

:func:`augment_pair` draws the random crop, flips and rotation of a training sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ttblur.training.data import frame_sequences, linear_light_average, synth

__all__ = [
    "FramesFolderPairs",
    "PairDataset",
    "SyntheticPairs",
    "TensorPairs",
    "augment_pair",
    "condition_from_flow",
    "read_rgb",
]


class PairDataset(Protocol):
    """Indexable training pairs: ``dataset[i] -> (blurry, sharp, condition)``, each
    ``(3, H, W)`` float32; images RGB in ``[0, 1]``, condition ``(x, y, z)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]: ...


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
        synthesis = synth()
        photo_list = list(synthesis.TRAIN_PHOTOS if photos is None else photos)
        if not photo_list or not presets:
            raise ValueError("need at least one photo and one preset")
        held_out = sorted(set(photo_list) & set(synthesis.HELDOUT_PHOTOS))
        if held_out:
            raise ValueError(
                f"photos {held_out} are held-out evaluation photos; train on TRAIN_PHOTOS"
            )
        blurry, sharp, condition = [], [], []
        k = 0
        for photo in photo_list:
            for preset in presets:
                video = synthesis.make_video(
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


def read_rgb(path: Path) -> Tensor:
    """An 8- or 16-bit image file as ``(3, H, W)`` float32 RGB in [0, 1] (grey is repeated)."""
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
        self.windows: list[list[Path]] = []
        for frames in frame_sequences(root, min_frames=frames_per_blur):
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
        frames = torch.stack([read_rgb(p) for p in self.windows[index]])
        blurry = linear_light_average(frames, self.gamma)
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
