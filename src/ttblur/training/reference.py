"""Train and evaluate the reference deblurring network on synthetic videos.

Training data come only from the synthetic source domain: :func:`ttblur.synth.make_video` with
the ``"gopro"`` preset on ``ttblur.synth.TRAIN_PHOTOS`` (whole photos, or with
``content="varied"`` dead-leaves images and crops built from them). A pool of synthetic videos
is rendered once (and slots are re-rendered with fresh trajectories every ``refresh_every``
steps); each step draws random 5-frame clips, random crops, flips and 90-degree rotations.
The loss is Charbonnier (or L1) between the restored centre frame and the sharp frame; Adam
with a cosine schedule. Checkpoints are safetensors (weights, optimizer moments) plus a JSON
state; a run resumes exactly (batch sampling is a pure function of the seed and the step).

Evaluation runs :func:`ttblur.deblur` over held-out videos (``HELDOUT_PHOTOS``, seeds unseen
in training) of the source preset and of each target preset, and reports PSNR/SSIM of the
blurry input and of the restored output against the sharp frames.

Command line::

    python -m ttblur.training.reference train --out runs/reference --steps 6000
    python -m ttblur.training.reference evaluate --weights src/ttblur/weights/reference
    python -m ttblur.training.reference export runs/base/final out/base --half
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor
from tqdm.auto import tqdm

from ttblur.io.weights import WEIGHTS_NAME
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
from ttblur.training.content import training_image
from ttblur.training.data import (
    EVAL_SEED_OFFSET,
    check_mix,
    flip_transpose,
    mix_overrides,
    motion_overrides,
    synth,
    to_uint8,
)
from ttblur.training.reference_eval import (
    MOVING_PX,
    STILL_PX,
    EvalRow,
    evaluate_reference,
    format_rows,
)

__all__ = [
    "BASE_OPTIONS",
    "CURVE_EVALUATION",
    "MOVING_PX",
    "STILL_PX",
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
        hand_pauses: with ``motion_mix``, the hand also pauses (``motion_overrides(...,
            pauses=True)``): still stretches and abrupt stops, so that sharp frames sit between
            blurred ones and the network learns to leave them alone.
        shutter_mix: with ``motion_mix``, half the videos get exposure ratios of 0.1-1.0 (a
            longer frame interval for the preset's exposure): neighbours displaced by up to
            ten times their blur, so that the network does not fuse them in blindly.
        init_weights: start from these weights (a folder or name :func:`reference_model`
            loads; same architecture) instead of a random initialisation: a run that goes on
            from another run's network with other data or settings.
        photos: photo names; ``None`` means ``ttblur.synth.TRAIN_PHOTOS``.
        content: what a pool video shows: ``"photos"``: one whole photo of ``photos``
            (chosen by slot and generation); ``"varied"``: per video, a dead-leaves image
            textured with crops of ``photos`` or a random crop / colour variant of one of them
            (:func:`ttblur.training.content.training_image`), so that the network does not
            learn the few training photos instead of deblurring.
        num_videos: videos kept in the training pool.
        video_frames: frames per pool video (>= the clip's 5 frames).
        video_size: ``(H, W)`` of pool videos, px.
        crop: side of the random training crops, px (multiple of 8).
        batch_size: clips per step.
        steps: optimisation steps (the cosine schedule spans them).
        lr: initial learning rate.
        lr_min: final learning rate (cosine annealing over ``steps``).
        warmup_steps: linear learning-rate warm-up over the first steps (0: none).
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
    hand_pauses: bool = False
    shutter_mix: bool = False
    init_weights: str | None = None
    photos: list[str] | None = None
    content: Literal["photos", "varied"] = "photos"
    num_videos: int = Field(default=48, gt=0)
    video_frames: int = Field(default=12, ge=5)
    video_size: tuple[int, int] = (160, 224)
    crop: int = Field(default=128, gt=0)
    batch_size: int = Field(default=8, gt=0)
    steps: int = Field(default=6000, gt=0)
    lr: float = Field(default=1e-3, gt=0.0)
    lr_min: float = Field(default=1e-6, ge=0.0)
    warmup_steps: int = Field(default=0, ge=0)
    loss: Literal["charbonnier", "l1"] = "charbonnier"
    charbonnier_eps: float = Field(default=1e-3, gt=0.0)
    grad_clip: float | None = Field(default=1.0, gt=0.0)
    refresh_every: int = Field(default=0, ge=0)
    checkpoint_every: int = Field(default=500, gt=0)
    seed: int = 0
    threads: int | None = Field(default=1, gt=0)

    @model_validator(mode="after")
    def _check(self) -> TrainReferenceConfig:
        check_mix(self.motion_mix, self.hand_pauses, self.shutter_mix)
        return self


class TrainResult(BaseModel):
    """Summary of a training run (``complete``: all ``config.steps`` ran and ``final/`` was
    written; else the time budget stopped it at a checkpoint, resumable)."""

    steps: int
    seconds: float
    final_loss: float
    losses: list[float]
    out_dir: str
    complete: bool = True


def _network(config: TrainReferenceConfig) -> ReferenceDeblurNet | ReferenceUNet:
    if isinstance(config.model, ReferenceUNetConfig):
        return ReferenceUNet(config.model)
    return ReferenceDeblurNet(config.model)


def _window(config: TrainReferenceConfig) -> int:
    return config.model.past_frames + config.model.future_frames + 1


class VideoPool:
    """Synthetic (blurry, sharp) videos kept as uint8 ``(T, 3, H, W)`` tensors.

    Slot ``i`` at generation ``g`` is a pure function of ``(seed, i, g)``: its photo and its
    synthesis seed are drawn from a generator seeded with those, and it is rendered with one
    torch thread, so a resumed run rebuilds exactly the pool it had.

    With ``workers > 0`` the pool is rendered by that many processes, and the slots of the next
    refreshes are rendered ahead of their step (the same slots, the same pixels: a GPU need not
    wait for the CPU). Call :meth:`close` to stop them.
    """

    def __init__(
        self,
        config: TrainReferenceConfig,
        *,
        render: Callable[..., tuple[Tensor, Tensor]] | None = None,
        workers: int = 0,
    ) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if workers and render is not None:
            raise ValueError("a custom render function runs in this process (workers=0)")
        self.config = config
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._ahead: dict[tuple[int, int], Future[tuple[np.ndarray, np.ndarray]]] = {}
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

    def _render_synth(
        self, photo: str | Tensor, seed: int, **overrides: float | str
    ) -> tuple[Tensor, Tensor]:
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

    def _slot_source(self, slot: int, generation: int) -> tuple[str, int, dict[str, float | str]]:
        rng = np.random.default_rng([self.config.seed, slot, generation])
        photo = self.photos[(slot + generation * 7) % len(self.photos)]
        seed = int(rng.integers(0, EVAL_SEED_OFFSET))
        cfg = self.config
        overrides = mix_overrides(
            rng,
            cfg.preset,
            motion_mix=cfg.motion_mix,
            hand_pauses=cfg.hand_pauses,
            shutter_mix=cfg.shutter_mix,
        )
        return photo, seed, overrides

    def _make(self, slot: int, generation: int) -> tuple[Tensor, Tensor]:
        photo, seed, overrides = self._slot_source(slot, generation)
        with torch_threads(1):
            image: str | Tensor = photo
            if self.config.content == "varied":
                rng = np.random.default_rng([self.config.seed, slot, generation, 2])
                image = training_image(_photo_tensors(tuple(self.photos)), rng)
            blurry, sharp = self._render(image, seed, **overrides)
        return to_uint8(blurry), to_uint8(sharp)

    def _generation(self, slot: int, step: int) -> int:
        """Generation of ``slot`` once the refreshes scheduled up to ``step`` are applied."""
        count = self.config.num_videos
        refreshes = step // self.config.refresh_every if self.config.refresh_every else 0
        return refreshes // count + (1 if slot < refreshes % count else 0)

    def _submit(self, slot: int, generation: int) -> Future[tuple[np.ndarray, np.ndarray]]:
        if self._executor is None:
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._executor.submit(_render_slot, self.config, slot, generation)

    def _take(self, slot: int, generation: int) -> tuple[Tensor, Tensor]:
        """The slot's videos: rendered ahead, else now (in a worker when there are some)."""
        if not self.workers:
            return self._make(slot, generation)
        future = self._ahead.pop((slot, generation), None) or self._submit(slot, generation)
        blurry, sharp = future.result()
        return torch.from_numpy(blurry), torch.from_numpy(sharp)

    def build(self, step: int = 0, progress: bool = True) -> None:
        """Render every slot as it is at ``step`` (after the refreshes done before it: the
        one scheduled at ``step`` itself is applied by the training loop's ``refresh(step)``,
        so a run resumed at a multiple of ``refresh_every`` renders what an uninterrupted
        run had)."""
        count = self.config.num_videos
        before = max(step - 1, 0)
        generations = [self._generation(slot, before) for slot in range(count)]
        if self.workers:
            for slot, generation in enumerate(generations):
                self._ahead[(slot, generation)] = self._submit(slot, generation)
        self.blurry, self.sharp, self.generation = [], [], []
        for slot in tqdm(range(count), desc="render pool", disable=not progress):
            blurry, sharp = self._take(slot, generations[slot])
            self.blurry.append(blurry)
            self.sharp.append(sharp)
            self.generation.append(generations[slot])

    def refresh(self, step: int) -> None:
        """Apply the refresh scheduled at ``step`` (if any); with workers, start rendering the
        slots of the next ``2 * workers`` refreshes."""
        every = self.config.refresh_every
        if not every or step == 0 or step % every:
            return
        slot = (step // every - 1) % self.config.num_videos
        self.generation[slot] += 1
        self.blurry[slot], self.sharp[slot] = self._take(slot, self.generation[slot])
        for ahead in range(1, 2 * self.workers + 1):
            later = step + ahead * every
            upcoming = (later // every - 1) % self.config.num_videos
            key = (upcoming, self._generation(upcoming, later))
            if key not in self._ahead:
                self._ahead[key] = self._submit(*key)

    def close(self) -> None:
        """Stop the rendering workers (renders ahead are dropped)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._ahead.clear()

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


@functools.lru_cache(maxsize=4)
def _photo_tensors(names: tuple[str, ...]) -> tuple[Tensor, ...]:
    """The training photos as tensors (``content="varied"``), converted once per process:
    the pool in this process and every worker's pools share them (converting 15 photos takes
    about 1.3 s, once per rendered video without this). Read only by the renderers."""
    return tuple(synth().load_photo(name) for name in names)


def _render_slot(
    config: TrainReferenceConfig, slot: int, generation: int
) -> tuple[np.ndarray, np.ndarray]:
    """A pool slot rendered in a worker process (numpy: pickled by value)."""
    blurry, sharp = VideoPool(config)._make(slot, generation)
    return blurry.numpy(), sharp.numpy()


def _loss(pred: Tensor, target: Tensor, config: TrainReferenceConfig) -> Tensor:
    if config.loss == "l1":
        return (pred - target).abs().mean()
    return torch.sqrt((pred - target) ** 2 + config.charbonnier_eps**2).mean()


#: The held-out evaluation of ``train(eval_every=...)``: keywords of
#: :func:`evaluate_reference` (3 held-out photos, one 8-frame 96 x 128 video each).
CURVE_EVALUATION: dict[str, Any] = {"videos_per_photo": 1, "num_frames": 8, "size": (96, 128)}


def _curve_point(
    model: ReferenceDeblurNet | ReferenceUNet, config: TrainReferenceConfig, device: torch.device
) -> dict[str, Any]:
    """One point of the held-out learning curve (an :class:`EvalRow` as a dict)."""
    (row,) = evaluate_reference(
        model,
        [config.preset],
        motion_mix=config.motion_mix,
        hand_pauses=config.hand_pauses,
        shutter_mix=config.shutter_mix,
        device=device,
        **CURVE_EVALUATION,
    )
    return row.model_dump()


def train_reference(
    config: TrainReferenceConfig | None = None,
    out_dir: str | Path = "runs/reference",
    *,
    resume: bool = True,
    progress: bool = True,
    pool: VideoPool | None = None,
    log_every: int = 50,
    device: str | torch.device | None = None,
    workers: int = 0,
    max_seconds: float | None = None,
    eval_every: int = 0,
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
        device: where the network trains (``None``: the CPU); the pool stays on the CPU.
            A checkpoint resumes on any device.
        workers: processes rendering the pool and the refreshes ahead of time (0: in this
            process). The batches are the same whatever the count.
        max_seconds: stop at the first step past this many seconds of training, with a
            checkpoint (``TrainResult.complete`` is False; rerun to continue): runs that must
            fit a time limit.
        eval_every: every this many steps (and at the last one), evaluate the network on
            held-out videos of the training preset (:data:`CURVE_EVALUATION`, with the motion
            mix when the run uses it) and write the row to ``log.jsonl`` as ``"eval"``: the
            learning curve on content training never sees (0: never). Changes no batch.

    Returns:
        :class:`TrainResult` with the per-step losses.
    """
    config = config or TrainReferenceConfig()
    if config.crop % ReferenceDeblurNet.multiple:
        raise ValueError(f"crop must be a multiple of {ReferenceDeblurNet.multiple}")
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    if eval_every < 0:
        raise ValueError(f"eval_every must be >= 0, got {eval_every}")
    run = _RunOptions(torch.device(device or "cpu"), workers, max_seconds, log_every, eval_every)
    with torch_threads(config.threads):
        return _train(config, Path(out_dir), resume, progress, pool, run)


@dataclass(frozen=True)
class _RunOptions:
    """How a run executes (not part of its config: a resumed run may change them)."""

    device: torch.device
    workers: int
    max_seconds: float | None
    log_every: int
    eval_every: int = 0


def _initialise(model: ReferenceDeblurNet | ReferenceUNet, config: TrainReferenceConfig) -> None:
    """Copy ``config.init_weights`` into ``model`` (same class and architecture, else
    ``ValueError``)."""
    source = reference_model(config.init_weights)
    if type(source) is not type(model) or source.config != model.config:
        raise ValueError(
            f"init_weights {config.init_weights!r} hold a {type(source).__name__} "
            f"({source.config!r}); this run trains a {type(model).__name__} ({model.config!r})"
        )
    model.load_state_dict(source.state_dict())


def _train(
    config: TrainReferenceConfig,
    out: Path,
    resume: bool,
    progress: bool,
    pool: VideoPool | None,
    run: _RunOptions,
) -> TrainResult:
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint"
    earlier = checkpoint.exists() or (out / "final").exists()
    resuming = resume_from(checkpoint, config, resume=resume, overwrite=True)
    restarting = earlier and not resuming
    if restarting:  # --no-resume: the earlier run's final weights would sit beside this run's
        shutil.rmtree(out / "final", ignore_errors=True)
    (out / "train_config.json").write_text(config.model_dump_json(indent=2) + "\n", "utf-8")

    torch.manual_seed(config.seed)
    model = _network(config)
    if config.init_weights is not None and not resuming:
        _initialise(model, config)
    model = model.to(run.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step = 0
    losses: list[float] = []
    if resuming:
        state, _ = load_checkpoint(checkpoint, model, optimizer)
        step, losses = int(state["step"]), [float(v) for v in state["losses"]]
    scheduler = cosine_schedule(
        optimizer,
        lr=config.lr,
        lr_min=config.lr_min,
        total_steps=config.steps,
        start_step=step,
        warmup_steps=config.warmup_steps,
    )
    own_pool = pool is None
    if pool is None:
        pool = VideoPool(config, workers=run.workers)
        pool.build(step, progress=progress)

    model.train()
    started = time.perf_counter()
    log_every = run.log_every
    bar = tqdm(total=config.steps, initial=step, desc="train", disable=not progress)
    with JsonLinesLog(out / "log.jsonl") as log:
        if resuming:
            log.mark_resumed(step)
        elif restarting:  # lines above came from the earlier run
            log.write({"step": 0, "restarted": True})
        try:
            while step < config.steps:
                pool.refresh(step)
                clips, targets = pool.sample(step)
                clips, targets = clips.to(run.device), targets.to(run.device)
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
                out_of_time = (
                    run.max_seconds is not None and time.perf_counter() - started >= run.max_seconds
                )
                if step % config.checkpoint_every == 0 or step == config.steps or out_of_time:
                    saved = config.model_dump(mode="json")
                    state = {"step": step, "losses": losses, "config": saved}
                    save_checkpoint(checkpoint, model, optimizer, state)
                if run.eval_every and (step % run.eval_every == 0 or step == config.steps):
                    log.write({"step": step, "eval": _curve_point(model, config, run.device)})
                    model.train()
                if out_of_time:
                    seconds = round(time.perf_counter() - started, 1)
                    log.write({"step": step, "stopped": "max_seconds", "seconds": seconds})
                    break
        finally:
            bar.close()
            if own_pool:
                pool.close()
    model.eval()
    complete = step >= config.steps
    if complete:
        model.save_pretrained(out / "final")
    seconds = time.perf_counter() - started
    return TrainResult(
        steps=step,
        seconds=seconds,
        final_loss=float(np.mean(losses[-50:])) if losses else float("nan"),
        losses=losses,
        out_dir=str(out),
        complete=complete,
    )


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
    train.add_argument("--device", default=None, help="where to train (default: cpu), e.g. cuda")
    train.add_argument(
        "--workers", type=int, default=0, help="processes rendering the pool (default: 0)"
    )
    train.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop with a checkpoint after this many seconds of training (rerun to continue)",
    )
    train.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="log a held-out evaluation every this many steps (default: 0, never)",
    )
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
    evaluate.add_argument(
        "--hand-pauses",
        action="store_true",
        help="evaluate each preset with the motion mix with hand pauses (held-out seeds)",
    )
    evaluate.add_argument(
        "--shutter-mix",
        action="store_true",
        help="evaluate each preset with the motion mix with exposure ratios 0.1-1.0; with "
        "--hand-pauses: one row with both",
    )
    evaluate.add_argument("--presets", nargs="*", default=None, help="default: all presets")
    evaluate.add_argument("--videos-per-photo", type=int, default=1)
    evaluate.add_argument("--frames", type=int, default=12)
    evaluate.add_argument("--size", type=int, nargs=2, default=[192, 256])
    evaluate.add_argument("--threads", type=int, default=1)
    evaluate.add_argument("--json", default=None, help="also write the rows to this JSON file")
    export = sub.add_parser(
        "export", help="write a trained network as a weights folder (e.g. to ship it)"
    )
    export.add_argument(
        "source", help="a weights folder (a run's final/), a shipped name or a Hub repo id"
    )
    export.add_argument("dest", type=Path, help="the folder to write (created)")
    export.add_argument(
        "--half", action="store_true", help="store float16 weights (half the file size)"
    )
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
        result = train_reference(
            config,
            args.out,
            resume=args.resume,
            progress=progress,
            device=args.device,
            workers=args.workers,
            max_seconds=args.max_seconds,
            eval_every=args.eval_every,
        )
        if not result.complete:
            print(
                f"stopped at step {result.steps} of {config.steps} after {result.seconds:.0f} s "
                f"(--max-seconds); checkpoint in {Path(args.out) / 'checkpoint'}: rerun the "
                "same command to continue"
            )
            return 0
        print(
            f"trained {result.steps} steps in {result.seconds:.0f} s, "
            f"final loss {result.final_loss:.4f}; weights in {Path(args.out) / 'final'}"
        )
        if args.export:
            model = _network(config).from_pretrained(Path(args.out) / "final")
            model.save_pretrained(args.export)
            print(f"exported to {args.export}")
        return 0
    if args.command == "export":
        source = reference_model(args.source)
        folder = source.save_pretrained(args.dest, dtype=torch.float16 if args.half else None)
        size = (folder / WEIGHTS_NAME).stat().st_size / 2**20
        print(f"wrote {type(source).__name__} to {folder} ({WEIGHTS_NAME}: {size:.2f} MiB)")
        return 0
    torch.set_num_threads(args.threads)
    model = reference_model(args.weights)
    presets = args.presets or list(synth().PRESETS)
    rows = []
    motions = [(False, False, False)]
    motions += [(True, False, False)] if args.motion_mix else []
    if args.hand_pauses or args.shutter_mix:
        motions.append((True, args.hand_pauses, args.shutter_mix))
    for mix, pauses, shutter in motions:
        rows += evaluate_reference(
            model,
            presets,
            videos_per_photo=args.videos_per_photo,
            num_frames=args.frames,
            size=tuple(args.size),
            motion_mix=mix,
            hand_pauses=pauses,
            shutter_mix=shutter,
        )
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(
            json.dumps([r.model_dump() for r in rows], indent=2) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
