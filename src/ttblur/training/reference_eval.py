"""Evaluate a reference deblurring network on held-out synthetic videos.

:func:`evaluate_reference` runs :func:`ttblur.deblur` over videos of photos and seeds never
used in training (``HELDOUT_PHOTOS``, seeds from ``EVAL_SEED_OFFSET``), for the source preset
and each target preset, and reports PSNR/SSIM of the blurry input and of the restored output
against the sharp frames, overall and split into moving and nearly still frames, and on the
nearly still frames that sit beside a moving one (the sharp moments of hand-held footage, which
a network that fuses its neighbours' blur into them destroys).
``python -m ttblur.training.reference evaluate`` is its command line.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from ttblur.training.data import EVAL_SEED_OFFSET, check_mix, mix_overrides, synth

__all__ = [
    "MOVING_PX",
    "STILL_PX",
    "EvalRow",
    "blur_groups",
    "evaluate_reference",
    "format_rows",
]

#: A frame "moves" when its mean true blur path exceeds this (px) ...
MOVING_PX = 2.0
#: ... and is "nearly still" when it is at most this (px).
STILL_PX = 1.0


class EvalRow(BaseModel):
    """PSNR (dB) / SSIM of blurry input and restored output on one preset (means over the
    frames of all evaluation videos), overall and split by each frame's true blur.

    ``*_moving`` rows cover frames whose mean true blur path (``SyntheticVideo.magnitude``)
    exceeds :data:`MOVING_PX`; ``*_still`` rows frames at most :data:`STILL_PX`; ``*_isolated``
    the still frames with a moving frame right before or after them (``nan`` when there is no
    such frame).
    """

    preset: str
    videos: int
    frames: int
    psnr_blurry: float
    psnr_restored: float
    ssim_blurry: float
    ssim_restored: float
    frames_moving: int = 0
    psnr_blurry_moving: float = float("nan")
    psnr_restored_moving: float = float("nan")
    frames_still: int = 0
    psnr_blurry_still: float = float("nan")
    psnr_restored_still: float = float("nan")
    frames_isolated: int = 0
    psnr_blurry_isolated: float = float("nan")
    psnr_restored_isolated: float = float("nan")

    @property
    def psnr_gain(self) -> float:
        """``psnr_restored - psnr_blurry`` in dB."""
        return self.psnr_restored - self.psnr_blurry


def blur_groups(blur: Sequence[float]) -> list[list[str]]:
    """The groups each frame of a video counts in, from its mean true blur path (px).

    ``"moving"``: blur above :data:`MOVING_PX`; ``"still"``: at most :data:`STILL_PX`;
    ``"isolated"``: still, with a moving frame right before or after it (also ``"still"``).

    Example:
        >>> blur_groups([0.2, 6.0, 0.5, 0.4])
        [['still', 'isolated'], ['moving'], ['still', 'isolated'], ['still']]
    """
    groups = []
    for t, b in enumerate(blur):
        mine = ["moving"] if b > MOVING_PX else []
        if b <= STILL_PX:
            mine.append("still")
            if max(blur[max(t - 1, 0) : t + 2]) > MOVING_PX:
                mine.append("isolated")
        groups.append(mine)
    return groups


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def evaluate_reference(
    model: nn.Module,
    presets: Sequence[str],
    *,
    photos: Sequence[str] | None = None,
    videos_per_photo: int = 1,
    num_frames: int = 12,
    size: tuple[int, int] = (192, 256),
    seed: int = EVAL_SEED_OFFSET,
    motion_mix: bool = False,
    hand_pauses: bool = False,
    shutter_mix: bool = False,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> list[EvalRow]:
    """PSNR/SSIM of blurry vs restored frames on held-out synthetic videos.

    Args:
        model: the network (its ``spec`` attribute, or ``"reference"``, is used).
        presets: ``ttblur.synth`` preset names.
        photos: photo names; ``None``: ``ttblur.synth.HELDOUT_PHOTOS``.
        videos_per_photo: videos rendered per photo and preset (different seeds).
        num_frames: frames per video.
        size: ``(H, W)`` of the videos.
        seed: first synthesis seed (training seeds are below 10000).
        motion_mix: give each video the camera motion :func:`motion_overrides` draws from its
            seed (the training pools' mix, at seeds training never uses); the row's preset is
            then named ``"<preset>+mix"``.
        hand_pauses: with ``motion_mix``, the mix with hand pauses (``motion_overrides(...,
            pauses=True)``); the row's name gains ``"+pauses"``.
        shutter_mix: with ``motion_mix``, exposure ratios 0.1-1.0 for half the videos
            (:func:`ttblur.training.data.mix_overrides`); the row's name gains ``"+shutter"``.
        progress: tqdm bars of ``ttblur.deblur``.
        device: where ``ttblur.deblur`` runs the model (moved there for the call and back).

    Returns:
        one :class:`EvalRow` per preset (all frames of each video, borders included).
    """
    from ttblur.inference import deblur
    from ttblur.metrics import psnr, ssim

    check_mix(motion_mix, hand_pauses, shutter_mix)
    synthesis = synth()
    photo_list = list(photos) if photos is not None else list(synthesis.HELDOUT_PHOTOS)
    spec = getattr(model, "spec", "reference")
    rows = []
    for preset in presets:
        scores: dict[str, list[float]] = defaultdict(list)
        videos = 0
        for p_index, photo in enumerate(photo_list):
            for k in range(videos_per_photo):
                video_seed = seed + 100 * p_index + k
                rng = np.random.default_rng([video_seed, 1])
                overrides = mix_overrides(
                    rng,
                    preset,
                    motion_mix=motion_mix,
                    hand_pauses=hand_pauses,
                    shutter_mix=shutter_mix,
                )
                video = synthesis.make_video(
                    photo,
                    preset=preset,
                    num_frames=num_frames,
                    size=tuple(size),
                    seed=video_seed,
                    **overrides,
                )
                restored = deblur(model, video.blurry, spec=spec, device=device, progress=progress)
                videos += 1
                groups = blur_groups(video.magnitude.mean(dim=(1, 2, 3)).tolist())
                for t in range(num_frames):
                    sharp = video.sharp[t]
                    blurry_psnr = float(psnr(video.blurry[t], sharp))
                    restored_psnr = float(psnr(restored[t], sharp))
                    scores["pb"].append(blurry_psnr)
                    scores["pr"].append(restored_psnr)
                    scores["sb"].append(float(ssim(video.blurry[t], sharp)))
                    scores["sr"].append(float(ssim(restored[t], sharp)))
                    for group in groups[t]:
                        scores["pb_" + group].append(blurry_psnr)
                        scores["pr_" + group].append(restored_psnr)
        rows.append(
            EvalRow(
                preset=preset
                + ("+mix" if motion_mix else "")
                + ("+pauses" if hand_pauses else "")
                + ("+shutter" if shutter_mix else ""),
                videos=videos,
                frames=len(scores["pb"]),
                psnr_blurry=_mean(scores["pb"]),
                psnr_restored=_mean(scores["pr"]),
                ssim_blurry=_mean(scores["sb"]),
                ssim_restored=_mean(scores["sr"]),
                frames_moving=len(scores["pb_moving"]),
                psnr_blurry_moving=_mean(scores["pb_moving"]),
                psnr_restored_moving=_mean(scores["pr_moving"]),
                frames_still=len(scores["pb_still"]),
                psnr_blurry_still=_mean(scores["pb_still"]),
                psnr_restored_still=_mean(scores["pr_still"]),
                frames_isolated=len(scores["pb_isolated"]),
                psnr_blurry_isolated=_mean(scores["pb_isolated"]),
                psnr_restored_isolated=_mean(scores["pr_isolated"]),
            )
        )
    return rows


def format_rows(rows: Sequence[EvalRow]) -> str:
    """The rows as a Markdown table (what ``evaluate`` prints and docs quote)."""
    lines = [
        "| preset | videos | frames | PSNR blurry | PSNR restored | gain dB | SSIM blurry | "
        f"SSIM restored | moving (> {MOVING_PX:g} px) frames: gain dB | "
        f"nearly still (<= {STILL_PX:g} px) frames: gain dB | "
        "still beside moving frames: gain dB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        groups = " | ".join(
            f"{count}: {after - before:+.2f}" if count else "0: -"
            for count, before, after in (
                (r.frames_moving, r.psnr_blurry_moving, r.psnr_restored_moving),
                (r.frames_still, r.psnr_blurry_still, r.psnr_restored_still),
                (r.frames_isolated, r.psnr_blurry_isolated, r.psnr_restored_isolated),
            )
        )
        lines.append(
            f"| {r.preset} | {r.videos} | {r.frames} | {r.psnr_blurry:.2f} | "
            f"{r.psnr_restored:.2f} | {r.psnr_gain:+.2f} | {r.ssim_blurry:.4f} | "
            f"{r.ssim_restored:.4f} | {groups} |"
        )
    return "\n".join(lines)
