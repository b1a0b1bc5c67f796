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
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from tqdm.auto import tqdm

from ttblur.nets.reference import (
    ReferenceConfig,
    ReferenceDeblurNet,
    ReferenceUNet,
    ReferenceUNetConfig,
    reference_model,
)
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
from ttblur.training.data import EVAL_SEED_OFFSET, flip_transpose, synth, to_uint8

__all__ = [
    "BASE_OPTIONS",
    "TINY_OPTIONS",
    "TRAIN_OPTIONS",
    "EvalRow",
    "TrainReferenceConfig",
    "TrainResult",
    "VideoPool",
    "build_parser",
    "config_from_args",
    "evaluate_reference",
    "main",
    "motion_overrides",
    "train_reference",
]


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
        lr: initial learning rate.
        lr_min: final learning rate (cosine annealing over ``steps``).
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
            self.photos = list(synth().TRAIN_PHOTOS)
        if not self.photos:
            raise ValueError("no training photos")
        self._render = render or self._render_synth
        self.blurry: list[Tensor] = []
        self.sharp: list[Tensor] = []
        self.generation: list[int] = []

    def _render_synth(self, photo: str, seed: int, **overrides: float) -> tuple[Tensor, Tensor]:
        cfg = self.config
        video = synth().make_video(
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
        seed = int(rng.integers(0, EVAL_SEED_OFFSET))
        overrides = motion_overrides(rng) if self.config.motion_mix else {}
        return photo, seed, overrides

    def _make(self, slot: int, generation: int) -> tuple[Tensor, Tensor]:
        photo, seed, overrides = self._slot_source(slot, generation)
        blurry, sharp = self._render(photo, seed, **overrides)
        return to_uint8(blurry), to_uint8(sharp)

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
            clip, target = flip_transpose(clip, target, gen)
            clips.append(clip)
            targets.append(target)
        return torch.stack(clips).float() / 255.0, torch.stack(targets).float() / 255.0


def _loss(pred: Tensor, target: Tensor, config: TrainReferenceConfig) -> Tensor:
    if config.loss == "l1":
        return (pred - target).abs().mean()
    return torch.sqrt((pred - target) ** 2 + config.charbonnier_eps**2).mean()


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
    with torch_threads(config.threads):
        return _train(config, Path(out_dir), resume, progress, pool, log_every)


def _train(
    config: TrainReferenceConfig,
    out: Path,
    resume: bool,
    progress: bool,
    pool: VideoPool | None,
    log_every: int,
) -> TrainResult:
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint"
    resuming = resume_from(checkpoint, config, resume=resume, overwrite=True)
    (out / "train_config.json").write_text(config.model_dump_json(indent=2) + "\n", "utf-8")

    torch.manual_seed(config.seed)
    model = _network(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step = 0
    losses: list[float] = []
    if resuming:
        state, _ = load_checkpoint(checkpoint, model, optimizer)
        step, losses = int(state["step"]), [float(v) for v in state["losses"]]
    scheduler = cosine_schedule(
        optimizer, lr=config.lr, lr_min=config.lr_min, total_steps=config.steps, start_step=step
    )
    if pool is None:
        pool = VideoPool(config)
        pool.build(step, progress=progress)

    model.train()
    started = time.perf_counter()
    bar = tqdm(total=config.steps, initial=step, desc="train", disable=not progress)
    with JsonLinesLog(out / "log.jsonl") as log:
        try:
            while step < config.steps:
                pool.refresh(step)
                clips, targets = pool.sample(step)
                lr = scheduler.get_last_lr()[0]
                loss = _loss(model(clips)[:, 0], targets, config)
                optimizer_step(
                    loss, model, optimizer, grad_clip=config.grad_clip, scheduler=scheduler
                )
                step += 1
                losses.append(loss.item())
                bar.update(1)
                if step % log_every == 0 or step == config.steps:
                    recent = float(np.mean(losses[-log_every:]))
                    bar.set_postfix(loss=f"{recent:.4f}")
                    seconds = round(time.perf_counter() - started, 1)
                    log.write({"step": step, "loss": recent, "lr": lr, "seconds": seconds})
                if step % config.checkpoint_every == 0 or step == config.steps:
                    saved = config.model_dump(mode="json")
                    state = {"step": step, "losses": losses, "config": saved}
                    save_checkpoint(checkpoint, model, optimizer, state)
        finally:
            bar.close()
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
    seed: int = EVAL_SEED_OFFSET,
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

    synthesis = synth()
    photo_list = list(photos) if photos is not None else list(synthesis.HELDOUT_PHOTOS)
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
                video = synthesis.make_video(
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
#: ``train`` options of the :class:`TrainReferenceConfig` fields (``model`` is ``--arch`` + ...)
TRAIN_OPTIONS = ConfigOptions(TrainReferenceConfig, exclude=("model",))
#: options of the architectures: ``--arch tiny`` reads ``TINY_OPTIONS``, ``base`` ``BASE_OPTIONS``
TINY_OPTIONS = ConfigOptions(ReferenceConfig)
BASE_OPTIONS = ConfigOptions(ReferenceUNetConfig)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (see :func:`main`)."""
    parser = argparse.ArgumentParser(
        prog="python -m ttblur.training.reference",
        description="Train / evaluate ttblur's reference deblurring network on synthetic videos.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train on the synthetic source domain")
    add_run_arguments(train, out="runs/reference", resume=True)
    TRAIN_OPTIONS.add_to(train)
    train.add_argument(
        "--arch",
        choices=["tiny", "base"],
        default="tiny",
        help="tiny: ReferenceDeblurNet; base: ReferenceUNet (default: %(default)s)",
    )
    TINY_OPTIONS.add_to(train.add_argument_group("--arch tiny (and window options of both)"))
    BASE_OPTIONS.add_to(train.add_argument_group("--arch base"), skip=TINY_OPTIONS.fields)
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


def config_from_args(args: argparse.Namespace) -> TrainReferenceConfig:
    """The :class:`TrainReferenceConfig` of parsed ``train`` options."""
    model: ReferenceConfig | ReferenceUNetConfig
    if args.arch == "base":
        model = ReferenceUNetConfig(**BASE_OPTIONS.values(args))
    else:
        model = ReferenceConfig(**TINY_OPTIONS.values(args))
    return TrainReferenceConfig(model=model, **TRAIN_OPTIONS.values(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    args = build_parser().parse_args(argv)
    if args.command == "train":
        config = config_from_args(args)
        progress = not args.no_progress
        result = train_reference(config, args.out, resume=args.resume, progress=progress)
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
    presets = args.presets or list(synth().PRESETS)
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
