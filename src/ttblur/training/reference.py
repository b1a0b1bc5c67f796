"""Train and evaluate the reference deblurring network on synthetic videos.

Training data come only from the synthetic source domain: :func:`ttblur.synth.make_video` with
the ``"gopro"`` preset on ``ttblur.synth.TRAIN_PHOTOS``. A pool of synthetic videos is rendered
once (and slots are re-rendered with fresh trajectories every ``refresh_every`` steps); each
step draws random 5-frame clips, random crops, flips and 90-degree rotations. The loss is
Charbonnier (or L1) between the restored centre frame and the sharp frame; Adam with a cosine
schedule. Checkpoints are safetensors (weights, optimizer moments) plus a JSON state; a run
resumes exactly (batch sampling is a pure function of the seed and the step).

Evaluation runs :func:`ttblur.deblur` over held-out videos (``HELDOUT_PHOTOS``, seeds unseen
in training) of the source preset and of each target preset, and reports PSNR/SSIM of the
blurry input and of the restored output against the sharp frames.

Command line::

    python -m ttblur.training.reference train --out runs/reference --steps 6000
    python -m ttblur.training.reference evaluate --weights src/ttblur/weights/reference
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from ttblur.nets.reference import (
    ReferenceConfig,
    ReferenceDeblurNet,
    ReferenceUNet,
    ReferenceUNetConfig,
    reference_model,
)

__all__ = [
    "EvalRow",
    "TrainReferenceConfig",
    "TrainResult",
    "VideoPool",
    "evaluate_reference",
    "main",
    "train_reference",
]

_EVAL_SEED_OFFSET = 10_000  # evaluation seeds start here; training never reaches them


class TrainReferenceConfig(BaseModel):
    """Hyper-parameters of :func:`train_reference` (saved as ``train_config.json``).

    Attributes:
        model: architecture of the network: a :class:`ReferenceConfig` trains the ``"tiny"``
            :class:`ReferenceDeblurNet`, a :class:`ReferenceUNetConfig` the ``"base"``
            :class:`ReferenceUNet`.
        preset: ``ttblur.synth`` preset of the training videos (the source domain).
        motion_mix: give every pool video its own camera motion drawn around the preset's
            (:func:`motion_overrides`: smooth and jerky hand-held strokes, nearly still
            videos, rotation, zoom, noise level); the preset's exposure and tone curve are kept.
        photos: photo names; ``None`` means ``ttblur.synth.TRAIN_PHOTOS``.
        num_videos: videos kept in the training pool.
        video_frames: frames per pool video (>= the clip's 5 frames).
        video_size: ``(H, W)`` of pool videos, px.
        crop: side of the random training crops, px (multiple of 8).
        batch_size: clips per step.
        steps: optimisation steps (the cosine schedule spans them).
        lr: initial learning rate; ``lr_min``: final one.
        loss: ``"charbonnier"`` or ``"l1"`` on the centre frame in [0, 1].
        charbonnier_eps: epsilon of the Charbonnier loss.
        grad_clip: max gradient norm (``None``: no clipping).
        refresh_every: re-render one pool slot with a new trajectory every this many steps
            (0: never).
        checkpoint_every: steps between checkpoints.
        seed: seed of everything (pool rendering, sampling, initialisation).
        threads: ``torch.set_num_threads`` value (``None``: leave as is); the only field a
            resumed run may change.
    """

    model_config = ConfigDict(extra="forbid")

    model: ReferenceConfig | ReferenceUNetConfig = Field(default_factory=ReferenceConfig)
    preset: str = "gopro"
    motion_mix: bool = False
    photos: list[str] | None = None
    num_videos: int = Field(default=48, gt=0)
    video_frames: int = Field(default=12, ge=5)
    video_size: tuple[int, int] = (160, 224)
    crop: int = Field(default=128, gt=0)
    batch_size: int = Field(default=8, gt=0)
    steps: int = Field(default=6000, gt=0)
    lr: float = Field(default=1e-3, gt=0.0)
    lr_min: float = Field(default=1e-6, ge=0.0)
    loss: Literal["charbonnier", "l1"] = "charbonnier"
    charbonnier_eps: float = Field(default=1e-3, gt=0.0)
    grad_clip: float | None = Field(default=1.0, gt=0.0)
    refresh_every: int = Field(default=0, ge=0)
    checkpoint_every: int = Field(default=500, gt=0)
    seed: int = 0
    threads: int | None = Field(default=1, gt=0)


class TrainResult(BaseModel):
    """Summary of a training run."""

    steps: int
    seconds: float
    final_loss: float
    losses: list[float]
    out_dir: str


def _synth() -> Any:
    return importlib.import_module("ttblur.synth")


def _network(config: TrainReferenceConfig) -> ReferenceDeblurNet | ReferenceUNet:
    if isinstance(config.model, ReferenceUNetConfig):
        return ReferenceUNet(config.model)
    return ReferenceDeblurNet(config.model)


def motion_overrides(rng: np.random.Generator) -> dict[str, float]:
    """Camera-motion overrides of a ``ttblur.synth`` preset for one training video.

    A mix of what hand-held footage shows: 15% of videos nearly still (5-40 px/s), the rest
    120-900 px/s (log-uniform, geometric mean near the ``gopro`` preset's 330); strokes from
    jerky (60 ms) to smooth (700 ms) with their speed falling to ~0 between them for 50-100%
    of the motion; roll up to 25 deg/s and zoom up to 0.3 /s (std of their velocities);
    sensor noise 0.005-0.02 at white.

    Args:
        rng: the generator the draws come from (deterministic per generator state).

    Returns:
        keyword overrides for :func:`ttblur.synth.make_video`.
    """
    still = rng.random() < 0.15
    low, high = (5.0, 40.0) if still else (120.0, 900.0)
    stroke_min = float(rng.uniform(60.0, 200.0))
    return {
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


def _window(config: TrainReferenceConfig) -> int:
    return config.model.past_frames + config.model.future_frames + 1


class VideoPool:
    """Synthetic (blurry, sharp) videos kept as uint8 ``(T, 3, H, W)`` tensors.

    Slot ``i`` at generation ``g`` is a pure function of ``(seed, i, g)``: its photo and its
    synthesis seed are drawn from a generator seeded with those, so a resumed run rebuilds
    exactly the pool it had.
    """

    def __init__(
        self,
        config: TrainReferenceConfig,
        *,
        render: Callable[..., tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        self.config = config
        if config.photos:
            self.photos = list(config.photos)
        else:
            self.photos = list(_synth().TRAIN_PHOTOS)
        if not self.photos:
            raise ValueError("no training photos")
        self._render = render or self._render_synth
        self.blurry: list[Tensor] = []
        self.sharp: list[Tensor] = []
        self.generation: list[int] = []

    def _render_synth(self, photo: str, seed: int, **overrides: float) -> tuple[Tensor, Tensor]:
        cfg = self.config
        video = _synth().make_video(
            photo,
            preset=cfg.preset,
            num_frames=cfg.video_frames,
            size=tuple(cfg.video_size),
            seed=seed,
            **overrides,
        )
        return video.blurry, video.sharp

    def _slot_source(self, slot: int, generation: int) -> tuple[str, int, dict[str, float]]:
        rng = np.random.default_rng([self.config.seed, slot, generation])
        photo = self.photos[(slot + generation * 7) % len(self.photos)]
        seed = int(rng.integers(0, _EVAL_SEED_OFFSET))
        overrides = motion_overrides(rng) if self.config.motion_mix else {}
        return photo, seed, overrides

    def _make(self, slot: int, generation: int) -> tuple[Tensor, Tensor]:
        photo, seed, overrides = self._slot_source(slot, generation)
        blurry, sharp = self._render(photo, seed, **overrides)
        to_u8 = lambda x: (x.clamp(0, 1) * 255).round().to(torch.uint8)  # noqa: E731
        return to_u8(blurry), to_u8(sharp)

    def build(self, step: int = 0, progress: bool = True) -> None:
        """Render every slot as it is at ``step`` (after the refreshes done before it)."""
        count = self.config.num_videos
        refreshes = step // self.config.refresh_every if self.config.refresh_every else 0
        self.blurry, self.sharp, self.generation = [], [], []
        for slot in tqdm(range(count), desc="render pool", disable=not progress):
            generation = refreshes // count + (1 if slot < refreshes % count else 0)
            blurry, sharp = self._make(slot, generation)
            self.blurry.append(blurry)
            self.sharp.append(sharp)
            self.generation.append(generation)

    def refresh(self, step: int) -> None:
        """Apply the refresh scheduled at ``step`` (if any)."""
        every = self.config.refresh_every
        if not every or step == 0 or step % every:
            return
        slot = (step // every - 1) % self.config.num_videos
        self.generation[slot] += 1
        self.blurry[slot], self.sharp[slot] = self._make(slot, self.generation[slot])

    def sample(self, step: int) -> tuple[Tensor, Tensor]:
        """A batch for ``step``: clips ``(B, 5, 3, c, c)`` and targets ``(B, 3, c, c)`` in [0, 1].

        Deterministic given the config seed, the step and the pool state.
        """
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        window = _window(cfg)
        past = cfg.model.past_frames
        clips, targets = [], []
        for _ in range(cfg.batch_size):
            v = int(torch.randint(len(self.blurry), (1,), generator=gen))
            blurry, sharp = self.blurry[v], self.sharp[v]
            frames, _, height, width = blurry.shape
            crop = min(cfg.crop, height, width)
            crop -= crop % ReferenceDeblurNet.multiple
            t = int(torch.randint(frames - window + 1, (1,), generator=gen))
            top = int(torch.randint(height - crop + 1, (1,), generator=gen))
            left = int(torch.randint(width - crop + 1, (1,), generator=gen))
            clip = blurry[t : t + window, :, top : top + crop, left : left + crop]
            target = sharp[t + past, :, top : top + crop, left : left + crop]
            flips = torch.randint(2, (3,), generator=gen).tolist()
            if flips[0]:
                clip, target = clip.flip(-1), target.flip(-1)
            if flips[1]:
                clip, target = clip.flip(-2), target.flip(-2)
            if flips[2]:
                clip, target = clip.transpose(-1, -2), target.transpose(-1, -2)
            clips.append(clip)
            targets.append(target)
        return torch.stack(clips).float() / 255.0, torch.stack(targets).float() / 255.0


def _loss(pred: Tensor, target: Tensor, config: TrainReferenceConfig) -> Tensor:
    if config.loss == "l1":
        return (pred - target).abs().mean()
    return torch.sqrt((pred - target) ** 2 + config.charbonnier_eps**2).mean()


def _lr_at(step: int, config: TrainReferenceConfig) -> float:
    progress = min(step / config.steps, 1.0)
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * progress))


def _save_checkpoint(
    folder: Path,
    model: ReferenceDeblurNet | ReferenceUNet,
    optimizer: torch.optim.Adam,
    step: int,
    losses: list[float],
    config: TrainReferenceConfig,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder / "model")
    moments: dict[str, Tensor] = {}
    params = list(model.parameters())
    for index, param in enumerate(params):
        state = optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                moments[f"{index}.{key}"] = state[key].detach().cpu().contiguous()
        if "step" in state:
            moments[f"{index}.step"] = torch.as_tensor(state["step"]).reshape(1).float()
    save_file(moments, str(folder / "optimizer.safetensors"))
    state_json = {"step": step, "losses": losses, "config": config.model_dump(mode="json")}
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state_json) + "\n", encoding="utf-8")
    tmp.replace(folder / "state.json")


def _load_checkpoint(
    folder: Path, model: ReferenceDeblurNet | ReferenceUNet, optimizer: torch.optim.Adam
) -> tuple[int, list[float]]:
    loaded = type(model).from_pretrained(folder / "model")
    model.load_state_dict(loaded.state_dict())
    moments = load_file(str(folder / "optimizer.safetensors"))
    for index, param in enumerate(model.parameters()):
        if f"{index}.exp_avg" in moments:
            optimizer.state[param] = {
                "step": torch.tensor(float(moments[f"{index}.step"][0])),
                "exp_avg": moments[f"{index}.exp_avg"].clone(),
                "exp_avg_sq": moments[f"{index}.exp_avg_sq"].clone(),
            }
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    return int(state["step"]), [float(v) for v in state["losses"]]


def train_reference(
    config: TrainReferenceConfig | None = None,
    out_dir: str | Path = "runs/reference",
    *,
    resume: bool = True,
    progress: bool = True,
    pool: VideoPool | None = None,
    log_every: int = 50,
) -> TrainResult:
    """Train :class:`ReferenceDeblurNet` on synthetic source-domain videos.

    Args:
        config: hyper-parameters (default :class:`TrainReferenceConfig()`).
        out_dir: run folder: ``checkpoint/`` (latest, resumable), ``final/`` (the trained
            weights, ``config.json`` + ``model.safetensors``), ``train_config.json``,
            ``log.jsonl``.
        resume: continue from ``out_dir/checkpoint`` when it exists (the config must match).
        progress: tqdm bars.
        pool: a pre-built :class:`VideoPool` (tests); default renders one with ``ttblur.synth``.
        log_every: steps between ``log.jsonl`` lines.

    Returns:
        :class:`TrainResult` with the per-step losses.
    """
    config = config or TrainReferenceConfig()
    if config.crop % ReferenceDeblurNet.multiple:
        raise ValueError(f"crop must be a multiple of {ReferenceDeblurNet.multiple}")
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _train(config, Path(out_dir), resume, progress, pool, log_every)
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    config: TrainReferenceConfig,
    out: Path,
    resume: bool,
    progress: bool,
    pool: VideoPool | None,
    log_every: int,
) -> TrainResult:
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "train_config.json"
    checkpoint = out / "checkpoint"
    if resume and (checkpoint / "state.json").is_file():
        saved = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))["config"]
        # ``threads`` is how the run uses this machine, not what it computes: a run may resume
        # with another thread count (float sums may then differ in the last bits).
        runtime = {"threads"}
        previous = TrainReferenceConfig.model_validate(saved).model_dump(exclude=runtime)
        if previous != config.model_dump(exclude=runtime):
            raise ValueError(f"{checkpoint} was written with a different config; use resume=False")
    config_path.write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")

    torch.manual_seed(config.seed)
    model = _network(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step = 0
    losses: list[float] = []
    if resume and (checkpoint / "state.json").is_file():
        step, losses = _load_checkpoint(checkpoint, model, optimizer)
    if pool is None:
        pool = VideoPool(config)
        pool.build(step, progress=progress)

    model.train()
    started = time.perf_counter()
    log = (out / "log.jsonl").open("a", encoding="utf-8")
    bar = tqdm(total=config.steps, initial=step, desc="train", disable=not progress)
    try:
        while step < config.steps:
            pool.refresh(step)
            clips, targets = pool.sample(step)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, config)
            pred = model(clips)[:, 0]
            loss = _loss(pred, targets, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            losses.append(loss.item())
            bar.update(1)
            if step % log_every == 0 or step == config.steps:
                recent = float(np.mean(losses[-log_every:]))
                bar.set_postfix(loss=f"{recent:.4f}")
                entry = {
                    "step": step,
                    "loss": recent,
                    "lr": _lr_at(step - 1, config),
                    "seconds": round(time.perf_counter() - started, 1),
                }
                log.write(json.dumps(entry) + "\n")
                log.flush()
            if step % config.checkpoint_every == 0 or step == config.steps:
                _save_checkpoint(checkpoint, model, optimizer, step, losses, config)
    finally:
        bar.close()
        log.close()
    model.eval()
    model.save_pretrained(out / "final")
    seconds = time.perf_counter() - started
    return TrainResult(
        steps=step,
        seconds=seconds,
        final_loss=float(np.mean(losses[-50:])) if losses else float("nan"),
        losses=losses,
        out_dir=str(out),
    )


# ---------------------------------------------------------------------- evaluation
#: A frame "moves" when its mean true blur path exceeds this (px) ...
MOVING_PX = 2.0
#: ... and is "nearly still" when it is at most this (px).
STILL_PX = 1.0


class EvalRow(BaseModel):
    """PSNR (dB) / SSIM of blurry input and restored output on one preset (means over the
    frames of all evaluation videos), overall and split by each frame's true blur.

    ``*_moving`` rows cover frames whose mean true blur path (``SyntheticVideo.magnitude``)
    exceeds :data:`MOVING_PX`; ``*_still`` rows frames at most :data:`STILL_PX` (``nan`` when
    there is no such frame).
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

    @property
    def psnr_gain(self) -> float:
        """``psnr_restored - psnr_blurry`` in dB."""
        return self.psnr_restored - self.psnr_blurry


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
    seed: int = _EVAL_SEED_OFFSET,
    motion_mix: bool = False,
    progress: bool = False,
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
        progress: tqdm bars of ``ttblur.deblur``.

    Returns:
        one :class:`EvalRow` per preset (all frames of each video, borders included).
    """
    from ttblur.inference import deblur
    from ttblur.metrics import psnr, ssim

    synth = _synth()
    photo_list = list(photos) if photos is not None else list(synth.HELDOUT_PHOTOS)
    spec = getattr(model, "spec", "reference")
    rows = []
    for preset in presets:
        scores: dict[str, list[float]] = {
            k: [] for k in ("pb", "pr", "sb", "sr", "pb_m", "pr_m", "pb_s", "pr_s")
        }
        videos = 0
        for p_index, photo in enumerate(photo_list):
            for k in range(videos_per_photo):
                video_seed = seed + 100 * p_index + k
                overrides = (
                    motion_overrides(np.random.default_rng([video_seed, 1])) if motion_mix else {}
                )
                video = synth.make_video(
                    photo,
                    preset=preset,
                    num_frames=num_frames,
                    size=tuple(size),
                    seed=video_seed,
                    **overrides,
                )
                restored = deblur(model, video.blurry, spec=spec, device="cpu", progress=progress)
                videos += 1
                for t in range(num_frames):
                    sharp = video.sharp[t]
                    blurry_psnr = float(psnr(video.blurry[t], sharp))
                    restored_psnr = float(psnr(restored[t], sharp))
                    scores["pb"].append(blurry_psnr)
                    scores["pr"].append(restored_psnr)
                    scores["sb"].append(float(ssim(video.blurry[t], sharp)))
                    scores["sr"].append(float(ssim(restored[t], sharp)))
                    blur = float(video.magnitude[t].mean())
                    group = "_m" if blur > MOVING_PX else "_s" if blur <= STILL_PX else None
                    if group is not None:
                        scores["pb" + group].append(blurry_psnr)
                        scores["pr" + group].append(restored_psnr)
        rows.append(
            EvalRow(
                preset=f"{preset}+mix" if motion_mix else preset,
                videos=videos,
                frames=len(scores["pb"]),
                psnr_blurry=_mean(scores["pb"]),
                psnr_restored=_mean(scores["pr"]),
                ssim_blurry=_mean(scores["sb"]),
                ssim_restored=_mean(scores["sr"]),
                frames_moving=len(scores["pb_m"]),
                psnr_blurry_moving=_mean(scores["pb_m"]),
                psnr_restored_moving=_mean(scores["pr_m"]),
                frames_still=len(scores["pb_s"]),
                psnr_blurry_still=_mean(scores["pb_s"]),
                psnr_restored_still=_mean(scores["pr_s"]),
            )
        )
    return rows


def _format_rows(rows: Sequence[EvalRow]) -> str:
    lines = [
        "| preset | videos | frames | PSNR blurry | PSNR restored | gain dB | SSIM blurry | "
        f"SSIM restored | moving (> {MOVING_PX:g} px) frames: gain dB | "
        f"nearly still (<= {STILL_PX:g} px) frames: gain dB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        moving = r.psnr_restored_moving - r.psnr_blurry_moving
        still = r.psnr_restored_still - r.psnr_blurry_still
        lines.append(
            f"| {r.preset} | {r.videos} | {r.frames} | {r.psnr_blurry:.2f} | "
            f"{r.psnr_restored:.2f} | {r.psnr_gain:+.2f} | {r.ssim_blurry:.4f} | "
            f"{r.ssim_restored:.4f} | {r.frames_moving}: {moving:+.2f} | "
            f"{r.frames_still}: {still:+.2f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------- command line
def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ttblur.training.reference",
        description="Train / evaluate ttblur's reference deblurring network on synthetic videos.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train on the synthetic source domain")
    defaults = TrainReferenceConfig()
    train.add_argument("--out", default="runs/reference", help="run folder")
    train.add_argument("--steps", type=int, default=defaults.steps)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--crop", type=int, default=defaults.crop)
    train.add_argument("--lr", type=float, default=defaults.lr)
    train.add_argument("--lr-min", type=float, default=defaults.lr_min)
    train.add_argument("--loss", choices=["charbonnier", "l1"], default=defaults.loss)
    train.add_argument("--num-videos", type=int, default=defaults.num_videos)
    train.add_argument("--video-frames", type=int, default=defaults.video_frames)
    train.add_argument("--video-size", type=int, nargs=2, default=list(defaults.video_size))
    train.add_argument("--refresh-every", type=int, default=defaults.refresh_every)
    train.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    tiny, base = ReferenceConfig(), ReferenceUNetConfig()
    train.add_argument(
        "--arch",
        choices=["tiny", "base"],
        default="tiny",
        help="tiny: ReferenceDeblurNet (--features, --num-blocks); base: ReferenceUNet "
        "(--widths, --mid-blocks)",
    )
    train.add_argument("--features", type=int, nargs=3, default=list(tiny.features))
    train.add_argument("--num-blocks", type=int, default=tiny.num_blocks)
    train.add_argument("--widths", type=int, nargs=3, default=list(base.widths))
    train.add_argument("--mid-blocks", type=int, default=base.mid_blocks)
    train.add_argument(
        "--motion-mix",
        action="store_true",
        help="draw every pool video's camera motion around the preset's (motion_overrides)",
    )
    train.add_argument("--preset", default=defaults.preset)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--threads", type=int, default=defaults.threads)
    train.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    train.add_argument("--export", default=None, help="also save the final weights here")
    train.add_argument("--no-progress", action="store_true")
    evaluate = sub.add_parser("evaluate", help="PSNR/SSIM on held-out synthetic videos")
    evaluate.add_argument(
        "--weights",
        default=None,
        help="'base' or 'tiny' (shipped), a weights folder or a Hub repo id "
        "(default: reference_model()'s default)",
    )
    evaluate.add_argument(
        "--motion-mix",
        action="store_true",
        help="also evaluate each preset with the training pools' motion mix (held-out seeds)",
    )
    evaluate.add_argument("--presets", nargs="*", default=None, help="default: all presets")
    evaluate.add_argument("--videos-per-photo", type=int, default=1)
    evaluate.add_argument("--frames", type=int, default=12)
    evaluate.add_argument("--size", type=int, nargs=2, default=[192, 256])
    evaluate.add_argument("--threads", type=int, default=1)
    evaluate.add_argument("--json", default=None, help="also write the rows to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    args = _build_parser().parse_args(argv)
    if args.command == "train":
        model_config: ReferenceConfig | ReferenceUNetConfig
        if args.arch == "base":
            model_config = ReferenceUNetConfig(
                widths=tuple(args.widths), mid_blocks=args.mid_blocks
            )
        else:
            model_config = ReferenceConfig(
                features=tuple(args.features), num_blocks=args.num_blocks
            )
        config = TrainReferenceConfig(
            model=model_config,
            preset=args.preset,
            motion_mix=args.motion_mix,
            num_videos=args.num_videos,
            video_frames=args.video_frames,
            video_size=tuple(args.video_size),
            crop=args.crop,
            batch_size=args.batch_size,
            steps=args.steps,
            lr=args.lr,
            lr_min=args.lr_min,
            loss=args.loss,
            refresh_every=args.refresh_every,
            checkpoint_every=args.checkpoint_every,
            seed=args.seed,
            threads=args.threads,
        )
        result = train_reference(
            config, args.out, resume=not args.no_resume, progress=not args.no_progress
        )
        print(
            f"trained {result.steps} steps in {result.seconds:.0f} s, "
            f"final loss {result.final_loss:.4f}; weights in {Path(args.out) / 'final'}"
        )
        if args.export:
            model = _network(config).from_pretrained(Path(args.out) / "final")
            model.save_pretrained(args.export)
            print(f"exported to {args.export}")
        return 0
    torch.set_num_threads(args.threads)
    model = reference_model(args.weights)
    presets = args.presets or list(_synth().PRESETS)
    rows = []
    for mix in (False, True) if args.motion_mix else (False,):
        rows += evaluate_reference(
            model,
            presets,
            videos_per_photo=args.videos_per_photo,
            num_frames=args.frames,
            size=tuple(args.size),
            motion_mix=mix,
        )
    print(_format_rows(rows))
    if args.json:
        Path(args.json).write_text(
            json.dumps([r.model_dump() for r in rows], indent=2) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
