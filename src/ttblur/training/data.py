"""Data helpers shared by the trainers: frame folders, augmentation, 8-bit storage, the
training videos' motion mix.

Shape: images are ``(C, H, W)`` / clips ``(T, C, H, W)`` tensors; every transform here acts on
the last two dimensions, so the same call serves images, clips and their targets alike.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "EVAL_SEED_OFFSET",
    "IMAGE_SUFFIXES",
    "check_mix",
    "flip_transpose",
    "frame_sequences",
    "linear_light_average",
    "mix_overrides",
    "motion_overrides",
    "natural_key",
    "synth",
    "to_uint8",
]

#: Evaluation seeds start here; training seeds are drawn below it.
EVAL_SEED_OFFSET = 10_000
#: File endings read as frames of a high-frame-rate sequence (compared in lower case).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def synth() -> ModuleType:
    """:mod:`ttblur.synth`, imported on first use (it loads the sample photos)."""
    return importlib.import_module("ttblur.synth")


def natural_key(name: str) -> tuple[list[Any], str]:
    """Sort key that orders ``frame2`` before ``frame10`` (case-insensitive, then exact name).

    Example:
        >>> sorted(["f10.png", "F2.png", "f1.png"], key=natural_key)
        ['f1.png', 'F2.png', 'f10.png']
    """
    parts = [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]
    return parts, name


def frame_sequences(root: Path, min_frames: int = 1) -> list[list[Path]]:
    """Every folder under ``root`` (itself included) holding ``min_frames`` or more images.

    Folders come in the order of their paths as strings (``root`` first); the images of a
    folder (:data:`IMAGE_SUFFIXES`) in :func:`natural_key` order. Hidden files (names starting
    with ``.``, such as the staging files of :mod:`ttblur.io.atomic`) are not frames.
    """
    sequences = []
    for folder, _, files in sorted(os.walk(root)):
        frames = (f for f in files if f.lower().endswith(IMAGE_SUFFIXES) and f[0] != ".")
        images = sorted(frames, key=natural_key)
        if len(images) >= min_frames:
            sequences.append([Path(folder) / f for f in images])
    return sequences


def linear_light_average(frames: Tensor, gamma: float) -> Tensor:
    """Blurry frame from consecutive sharp ones: ``mean_k(S_k ** gamma) ** (1 / gamma)``.

    Shape: ``(N, C, H, W)`` in [0, 1] -> ``(C, H, W)``.
    """
    return frames.clamp(0, 1).pow(gamma).mean(dim=0).pow(1.0 / gamma)


def to_uint8(x: Tensor) -> Tensor:
    """``[0, 1]`` floats to ``uint8`` (clamped, rounded), e.g. to hold a video pool compactly."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def flip_transpose(
    first: Tensor, second: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Random horizontal flip, vertical flip and transposition, the same for both tensors.

    Three fair coins are drawn from ``generator`` (in that order) whatever the outcome, so the
    number of draws never depends on the data.

    Shape: any ``(..., H, W)``; a transposition swaps ``H`` and ``W``.
    """
    flips = torch.randint(2, (3,), generator=generator).tolist()
    if flips[0]:
        first, second = first.flip(-1), second.flip(-1)
    if flips[1]:
        first, second = first.flip(-2), second.flip(-2)
    if flips[2]:
        first, second = first.transpose(-1, -2), second.transpose(-1, -2)
    return first, second


def motion_overrides(
    rng: np.random.Generator, *, pauses: bool = False, exposure_ms: float | None = None
) -> dict[str, float | str]:
    """Camera-motion overrides of a ``ttblur.synth`` preset for one training video.

    A mix of what hand-held footage shows: 15% of videos nearly still (5-40 px/s), the rest
    120-900 px/s (log-uniform, geometric mean near the ``gopro`` preset's 330); strokes from
    jerky (60 ms) to smooth (700 ms) with their speed falling to ~0 between them for 50-100%
    of the motion; roll up to 25 deg/s and zoom up to 0.3 /s (std of their velocities);
    sensor noise 0.005-0.02 at white. With ``pauses``, the hand also pauses (the camera
    stops) after 30-90% of the strokes for 20 ms to 80-250 ms, half the videos at the stroke's
    end and half anywhere in it (abrupt stops: sharp frames between blurred ones). With
    ``exposure_ms`` (the preset's exposure), half the videos get a longer frame interval, so
    that the exposure ratio is log-uniform in 0.1-1.0 (a faster shutter relative to the frame
    rate: the same blur per frame, neighbours displaced by up to 10 times it).

    Args:
        rng: the generator the draws come from (deterministic per generator state).
        pauses: draw hand pauses too.
        exposure_ms: draw the frame interval too (``None``: keep the preset's).

    The optional draws come after all the others (pauses, then the interval), so what is drawn
    without them is the same.

    Returns:
        keyword overrides for :func:`ttblur.synth.make_video`.
    """
    still = rng.random() < 0.15
    low, high = (5.0, 40.0) if still else (120.0, 900.0)
    stroke_min = float(rng.uniform(60.0, 200.0))
    overrides: dict[str, float | str] = {
        "speed_px_s": float(np.exp(rng.uniform(np.log(low), np.log(high)))),
        "speed_variation": float(rng.uniform(0.5, 1.0)),
        "stroke_min_ms": stroke_min,
        "stroke_max_ms": stroke_min + float(rng.uniform(100.0, 500.0)),
        "stroke_speed_jitter": float(rng.uniform(0.2, 0.8)),
        "direction_spread_deg": float(rng.uniform(15.0, 45.0)),
        "rotation_std": float(rng.uniform(0.0, 25.0)),
        "zoom_std": float(rng.uniform(0.0, 0.3)),
        "noise_std": float(rng.uniform(0.005, 0.02)),
    }
    if pauses:
        overrides["pause_prob"] = float(rng.uniform(0.3, 0.9))
        overrides["pause_min_ms"] = 20.0
        overrides["pause_max_ms"] = float(rng.uniform(80.0, 250.0))
        overrides["pause_where"] = "anywhere" if rng.random() < 0.5 else "stroke_end"
    if exposure_ms is not None:
        ratio = float(np.exp(rng.uniform(np.log(0.1), 0.0)))
        if rng.random() < 0.5:
            overrides["frame_interval_ms"] = exposure_ms / ratio
    return overrides


def mix_overrides(
    rng: np.random.Generator,
    preset: str,
    *,
    motion_mix: bool,
    hand_pauses: bool = False,
    shutter_mix: bool = False,
) -> dict[str, float | str]:
    """The overrides of one video of a training or evaluation mix (``{}``: none).

    Args:
        rng: the generator of the video's draws.
        preset: the ``ttblur.synth`` preset the video renders (its exposure for the shutter).
        motion_mix: :func:`motion_overrides` draws the camera motion.
        hand_pauses: ... with hand pauses (needs ``motion_mix``).
        shutter_mix: ... and exposure ratios 0.1-1.0 (needs ``motion_mix``).

    Raises:
        ValueError: ``hand_pauses`` or ``shutter_mix`` without ``motion_mix``.
    """
    check_mix(motion_mix, hand_pauses, shutter_mix)
    if not motion_mix:
        return {}
    exposure = synth().PRESETS[preset].exposure_ms if shutter_mix else None
    return motion_overrides(rng, pauses=hand_pauses, exposure_ms=exposure)


def check_mix(motion_mix: bool, hand_pauses: bool, shutter_mix: bool) -> None:
    """Raise ``ValueError`` when a part of the motion mix is asked for without the mix."""
    for name, on in (("hand_pauses", hand_pauses), ("shutter_mix", shutter_mix)):
        if on and not motion_mix:
            raise ValueError(f"{name} needs motion_mix (it is part of the mix)")
