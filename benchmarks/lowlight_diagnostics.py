"""Diagnostics behind ``docs/results.md``: why the paper's method did not gain on ``lowlight``.

"The method" here is the paper's pseudo pairs (``dbcgm.magnitude = "bme"``,
``synthesis.clip = "original"``), the defaults before these diagnostics; the ``synclip`` row
"m = video motion, L = fitted ratio (moving) x m" is what became the default.

Each experiment prints one Markdown table. Gains are PSNR (dB, ``ttblur.metrics.psnr``, all
frames) of an adapted reference model minus the unadapted one, on the *development* videos
(photos astronaut / coffee / chelsea with seeds 10007 / 10108 / 10209, 24 frames of 256x320,
patch 128 px); ``--heldout N`` runs the same experiment on the benchmark's first ``N``
held-out videos per preset, as a check of a finding (nothing is chosen on them). Ground truth
is used to score and,
where a row says "oracle" or "clean", deliberately inside the experiment to bound what a
perfect estimate would give; ``ttblur.adapt`` itself never sees it.

* ``perframe``: the full method's gain split by the frames' true blur (heavily blurred,
  still, first/last).
* ``targets``: the method's pseudo pairs with clean ground-truth targets and/or sources.
* ``wise``: the adapted weights interpolated back towards the source, ``w_src + a (w - w_src)``.
* ``synclip``: every clip frame synthesised from the pseudo-sharp patch, frame ``k`` shifted
  ``k * m`` px along the DBCGM direction and blurred ``L`` px (a clip that moves as much per
  frame as its blur implies), for several choices of ``L`` and ``m``.
* ``exposure``: estimates of the exposure / frame-interval ratio against the truth.

Usage::

    PYTHONPATH=src python benchmarks/lowlight_diagnostics.py all                 # ~25 min
    PYTHONPATH=src python benchmarks/lowlight_diagnostics.py synclip             # ~15 min
    PYTHONPATH=src python benchmarks/lowlight_diagnostics.py synclip --heldout 6 --synclip-rows 6 5
    PYTHONPATH=src python benchmarks/lowlight_diagnostics.py exposure --presets lowlight
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

import ttblur
from ttblur import metrics, synth
from ttblur.config import AdaptConfig
from ttblur.finetune import PseudoPairs, build_pseudo_pairs, copy_model, finetune
from ttblur.pipeline import NOISE_SEED_OFFSET, synthesize_batched
from ttblur.stages.dbcgm import DomainBlurConditionGenerator, build_condition_generator
from ttblur.stages.exposure import frame_motion, warp_back
from ttblur.stages.flow import build_flow
from ttblur.stages.reblur import match_noise, motion_blur, video_noise_std
from ttblur.stages.rsdm import RelativeSharpnessDetector
from ttblur.stages.synthesis import build_synthesizer
from ttblur.types import condition_maps

PRESETS = ("bsd-1ms8ms", "bsd-2ms16ms", "bsd-3ms24ms", "lowlight")
DEV_VIDEOS = (("astronaut", 10007), ("coffee", 10108), ("chelsea", 10209))
EXPERIMENTS = ("perframe", "targets", "wise", "synclip", "exposure")


@dataclass
class Settings:
    presets: tuple[str, ...] = PRESETS
    videos: int = 3
    heldout: int = 0
    synclip_rows: tuple[int, ...] | None = None
    frames: int = 24
    size: tuple[int, int] = (256, 320)
    patch_size: int = 128
    epochs: int | None = None

    def config(self) -> AdaptConfig:
        """The paper's pseudo pairs (BME magnitude, the video's own neighbour frames): "the
        method" of these tables, diagnosed here; the defaults changed because of them."""
        config = AdaptConfig()
        config.dbcgm.magnitude = "bme"
        config.synthesis.clip = "original"
        config.rsdm.patch_size = self.patch_size
        if self.epochs is not None:
            config.finetune.epochs = self.epochs
        return config


@dataclass
class DevVideo:
    """One development video with the unadapted model's output and the method's stages."""

    preset: str
    name: str
    clip: synth.SyntheticVideo
    unadapted: Tensor
    selection: ttblur.protocols.Selection
    condition: Tensor
    noise_std: float
    adapted: ttblur.AdaptResult | None = None

    def adapt(self, model: torch.nn.Module, config: AdaptConfig) -> ttblur.AdaptResult:
        """``ttblur.adapt`` on this video, run once and kept (several experiments need it)."""
        if self.adapted is None:
            self.adapted = ttblur.adapt(model, self.blurry, config=config, progress=False)
        return self.adapted

    @property
    def blurry(self) -> Tensor:
        return self.clip.blurry


def _psnr(pred: Tensor, video: DevVideo) -> float:
    return float(metrics.psnr(pred, video.clip.sharp))


def gain(model: torch.nn.Module, video: DevVideo) -> float:
    """PSNR of ``model`` on the video minus the unadapted model's, dB."""
    restored = ttblur.deblur(model, video.blurry, progress=False)
    return _psnr(restored, video) - _psnr(video.unadapted, video)


def video_list(settings: Settings, preset: str) -> list[tuple[str, int]]:
    """``(photo, seed)`` per video: the development videos, or with ``settings.heldout = N`` the
    first ``N`` held-out videos of ``benchmarks/domain_shift.py`` (``HELDOUT_PHOTOS[k % 3]``,
    seed ``10000 + 100 i + k``, ``i`` the preset's index in ``synth.PRESETS``), to check that a
    finding carries over; nothing is chosen on them."""
    if not settings.heldout:
        return list(DEV_VIDEOS[: settings.videos])
    index = list(synth.PRESETS).index(preset)
    photos = synth.HELDOUT_PHOTOS
    return [(photos[k % len(photos)], 10_000 + 100 * index + k) for k in range(settings.heldout)]


def load_videos(settings: Settings, model: torch.nn.Module) -> list[DevVideo]:
    config = settings.config()
    detector = RelativeSharpnessDetector.from_config(config.rsdm)
    generator = build_condition_generator(config.dbcgm)
    videos = []
    for preset in settings.presets:
        for photo, seed in video_list(settings, preset):
            clip = synth.make_video(
                photo, preset=preset, num_frames=settings.frames, size=settings.size, seed=seed
            )
            selection = detector.select(clip.blurry)
            condition = condition_maps(generator(clip.blurry, selection)).float()
            videos.append(
                DevVideo(
                    preset=preset,
                    name=f"{preset} {photo} {seed}",
                    clip=clip,
                    unadapted=ttblur.deblur(model, clip.blurry, progress=False),
                    selection=selection,
                    condition=condition,
                    noise_std=video_noise_std(clip.blurry),
                )
            )
    return videos


def train(model: torch.nn.Module, pairs: PseudoPairs, config: AdaptConfig) -> torch.nn.Module:
    """A fine-tuned copy of ``model`` (the recipe of ``adapt``, L1 loss)."""
    work = copy_model(model)
    finetune(
        work,
        pairs,
        F.l1_loss,
        config.finetune,
        spec=model.spec,
        device=torch.device("cpu"),
        seed=config.seed,
        progress=False,
    )
    return work


def reblur(sources: Tensor, condition: Tensor, config: AdaptConfig, noise_std: float) -> Tensor:
    """The method's synthesis: physical re-blur, then noise topped up to the video's level."""
    cpu = torch.device("cpu")
    synthesizer = build_synthesizer(config.synthesis, device=cpu, seed=config.seed)
    out = synthesize_batched(synthesizer, sources, condition, config.synthesis.batch_size, cpu)
    generator = torch.Generator().manual_seed(config.seed + NOISE_SEED_OFFSET)
    return match_noise(out, noise_std, generator=generator)


def _crops(frames: Tensor, video: DevVideo) -> Tensor:
    return torch.stack([p.crop(frames[p.frame]) for p in video.selection.patches])


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:+.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _by_preset(
    videos: list[DevVideo], labels: Sequence[str], score: Callable[[DevVideo], list[float]]
) -> str:
    """Rows = labels, columns = presets: mean of ``score(video)[i]`` over each preset's videos."""
    values: dict[str, list[list[float]]] = {}
    for video in videos:
        values.setdefault(video.preset, []).append(score(video))
        print(f"  {video.name}: " + ", ".join(f"{v:+.3f}" for v in values[video.preset][-1]))
    presets = list(values)
    rows = [
        [label, *[sum(v[i] for v in values[p]) / len(values[p]) for p in presets]]
        for i, label in enumerate(labels)
    ]
    return _table(["variant", *presets], rows)


# --------------------------------------------------------------------------------------------
# Experiments


def perframe(videos: list[DevVideo], model: torch.nn.Module, config: AdaptConfig) -> str:
    rows = []
    for video in videos:
        restored = video.adapt(model, config).deblur(video.blurry, progress=False)
        after = metrics.psnr(restored, video.clip.sharp, reduction="none")
        before = metrics.psnr(video.unadapted, video.clip.sharp, reduction="none")
        delta = after - before
        blur = video.clip.magnitude.mean(dim=(1, 2, 3))
        inner = torch.arange(len(blur))[1:-1]
        heavy = inner[blur[1:-1] >= 6.0]
        still = inner[blur[1:-1] < 3.0]

        def mean(index: Tensor, delta: Tensor = delta) -> object:
            return float(delta[index].mean()) if len(index) else "-"

        ends = torch.tensor([0, len(blur) - 1])
        condition = float(video.condition[:, 2].mean())
        rows.append(
            [
                video.name,
                f"{condition:.1f}",
                mean(heavy),
                mean(still),
                mean(ends),
                float(delta.mean()),
            ]
        )
        print(f"  {video.name}: {float(delta.mean()):+.3f}")
    header = [
        "video",
        "condition px",
        "blur >= 6 px",
        "blur < 3 px",
        "first/last",
        "whole video",
    ]
    return _table(header, rows)


def targets(videos: list[DevVideo], model: torch.nn.Module, config: AdaptConfig) -> str:
    labels = [
        "pseudo-sharp source and target (the method)",
        "clean target",
        "clean source and target",
        "clean source, pseudo-sharp target",
    ]

    def score(video: DevVideo) -> list[float]:
        pseudo = _crops(video.blurry, video)
        clean = _crops(video.clip.sharp, video)
        out = []
        for source, target in ((pseudo, pseudo), (pseudo, clean), (clean, clean), (clean, pseudo)):
            inputs = reblur(source, video.condition, config, video.noise_std)
            pairs = build_pseudo_pairs(video.blurry, video.selection.patches, inputs, model.spec)
            pairs.targets = target
            out.append(gain(train(model, pairs, config), video))
        return out

    return _by_preset(videos, labels, score)


def wise(videos: list[DevVideo], model: torch.nn.Module, config: AdaptConfig) -> str:
    alphas = (1.0, 0.75, 0.5, 0.25)
    source = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def score(video: DevVideo) -> list[float]:
        adapted = video.adapt(model, config).model
        target = adapted.state_dict()
        out = []
        for alpha in alphas:
            blend = copy_model(model)
            blend.load_state_dict(
                {k: v + alpha * (target[k] - v) if v.is_floating_point() else v
                 for k, v in source.items()}
            )  # fmt: skip
            out.append(gain(blend, video))
        return out

    return _by_preset(videos, [f"a = {a}" for a in alphas], score)


def motion_consistent_clip(
    frame: Tensor,
    patch: ttblur.protocols.PatchLocation,
    direction: Tensor,
    blur_px: float,
    step_px: float,
    radius: int = 2,
) -> Tensor:
    """``(2 radius + 1, 3, p, p)``: frame ``k`` = the patch shifted ``k * step_px`` px along
    ``direction`` (unit ``(2,)``) and blurred ``blur_px`` px along it (reflect-padded)."""
    margin = math.ceil(radius * step_px + blur_px) + 2
    padded = F.pad(frame[None], (margin,) * 4, mode="reflect")[0]
    size, span = patch.size, patch.size + 2 * margin
    box = padded[:, patch.top : patch.top + span, patch.left : patch.left + span]
    condition = torch.empty(1, 3, span, span)
    condition[:, 0], condition[:, 1] = float(direction[0]), float(direction[1])
    condition[:, 2] = blur_px
    blurred = motion_blur(box[None], condition)[0]
    frames = []
    for k in range(-radius, radius + 1):
        # The content moves +k * step_px along the direction (the flow convention).
        top = margin - round(k * step_px * float(direction[1]))
        left = margin - round(k * step_px * float(direction[0]))
        frames.append(blurred[:, top : top + size, left : left + size])
    return torch.stack(frames)


def exposure_ratio_bme(video: DevVideo, config: AdaptConfig) -> tuple[float, float]:
    """(mean BME magnitude) / (mean DIS flow per frame) over the higher-motion half of the
    frames, and that half's mean flow per frame (px). The BME maps are the detector's."""
    frames = video.blurry
    flow = build_flow(config.dbcgm)(frames[:-1], frames[1:])
    motion = frame_motion(torch.hypot(flow[:, 0], flow[:, 1]).mean(dim=(1, 2)))
    magnitude = video.selection.magnitude.mean(dim=(1, 2, 3))
    top = motion >= motion.median()
    return float(magnitude[top].sum() / motion[top].sum()), float(motion[top].mean())


def _warp_back(
    frames: Tensor, t: int, s: int, flow_fn: Callable[[Tensor, Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """The flow ``f`` ``(1, 2, H, W)`` from frame ``t`` to ``s`` and frame ``s`` warped back onto
    ``t`` (bilinear, border padding) ``(1, 3, H, W)``."""
    f = flow_fn(frames[t : t + 1], frames[s : s + 1])
    warped, _ = warp_back(frames[s], f[0])
    return f, warped[None]


def exposure_ratio_fit(video: DevVideo, config: AdaptConfig) -> float:
    """Analysis by synthesis at the pseudo-sharp patches: the ratio ``d`` for which the patch
    re-blurred by ``d |f|`` (noise topped up) best matches the neighbour frame warped back by
    the flow ``f`` (least squares summed over patches and both neighbours)."""
    frames = video.blurry
    flow_fn = build_flow(config.dbcgm)
    ratios = torch.linspace(0.0, 1.5, 16)
    error = torch.zeros(len(ratios))
    generator = torch.Generator().manual_seed(0)
    for t in sorted({p.frame for p in video.selection.patches}):
        patches = [p for p in video.selection.patches if p.frame == t]
        for s in (t - 1, t + 1):
            f, warped = _warp_back(frames, t, s, flow_fn)
            length = torch.hypot(f[:, :1], f[:, 1:])
            unit = f / length.clamp_min(1e-6)
            for p in patches:
                sharp, target = p.crop(frames[t : t + 1]), p.crop(warped)
                for i, ratio in enumerate(ratios):
                    z = ratio * p.crop(length)
                    pred = motion_blur(sharp, torch.cat([p.crop(unit), z], 1))
                    pred = match_noise(pred, video.noise_std, generator=generator)
                    error[i] += float(((pred - target)[..., 8:-8, 8:-8] ** 2).mean())
    return float(ratios[int(error.argmin())])


def exposure_ratio_fit_moving(
    video: DevVideo,
    config: AdaptConfig,
    offsets: Sequence[int] = (-2, -1, 1, 2),
    min_motion: float = 1.5,
) -> float | None:
    """Like :func:`exposure_ratio_fit`, but each neighbour ``s`` of a pseudo-sharp patch is
    modelled with its *own* per-frame motion ``m_s`` (mean DIS flow of the pairs around ``s``
    over the patch box, direction from the same flows), neighbours up to 2 frames away are
    used, and only those with ``m_s >= min_motion`` px count (a neighbour that does not move
    says nothing about the ratio). ``None`` when no neighbour moves enough."""
    frames = video.blurry
    count = len(frames)
    flow_fn = build_flow(config.dbcgm)
    pair_flow = flow_fn(frames[:-1], frames[1:])  # (T - 1, 2, H, W): s -> s + 1
    ratios = torch.linspace(0.0, 1.5, 16)
    error = torch.zeros(len(ratios))
    used = 0
    generator = torch.Generator().manual_seed(0)
    for t in sorted({p.frame for p in video.selection.patches}):
        patches = [p for p in video.selection.patches if p.frame == t]
        for s in (t + k for k in offsets):
            if not 0 <= s < count:
                continue
            around = [pair_flow[a] for a in (s - 1, s) if 0 <= a < count - 1]
            _, warped = _warp_back(frames, t, s, flow_fn)
            for p in patches:
                motion = torch.stack([p.crop(g).mean(dim=(1, 2)) for g in around]).mean(0)
                speed = float(torch.stack([torch.hypot(*p.crop(g)).mean() for g in around]).mean())
                if speed < min_motion:
                    continue
                unit = motion / motion.norm().clamp_min(1e-6)
                sharp, target = p.crop(frames[t : t + 1]), p.crop(warped)
                condition = torch.empty(1, 3, p.size, p.size)
                condition[:, 0], condition[:, 1] = float(unit[0]), float(unit[1])
                for i, ratio in enumerate(ratios):
                    condition[:, 2] = float(ratio) * speed
                    pred = motion_blur(sharp, condition)
                    pred = match_noise(pred, video.noise_std, generator=generator)
                    error[i] += float(((pred - target)[..., 8:-8, 8:-8] ** 2).mean())
                used += 1
    return float(ratios[int(error.argmin())]) if used else None


def synclip(
    videos: list[DevVideo],
    model: torch.nn.Module,
    config: AdaptConfig,
    rows: Sequence[int] | None = None,
) -> str:
    labels = [
        "L = m = 3 px",
        "L = m = 6 px",
        "L = m = true mean blur (oracle)",
        "m = patch motion F/n, L = DBCGM",
        "m = video motion, L = BME/flow ratio x m",
        "m = video motion, L = fitted ratio (moving) x m",
        "the method (original neighbours, DBCGM), for reference",
    ]
    rows = list(range(len(labels))) if rows is None else list(rows)
    generator = DomainBlurConditionGenerator.from_config(config.dbcgm)

    def score(video: DevVideo) -> list[float]:
        patches = video.selection.patches
        total, counts = generator.accumulated_flow(video.blurry, patches)
        patch_motion = (torch.hypot(total[:, 0], total[:, 1]) / counts.view(-1, 1, 1)).mean((1, 2))
        dbcgm_px = video.condition[:, 2].mean(dim=(1, 2))
        ratio, video_motion = exposure_ratio_bme(video, config)
        fitted = exposure_ratio_fit_moving(video, config)
        fitted = ratio if fitted is None else fitted
        oracle = float(video.clip.magnitude.mean())
        choices: list[Callable[[int], tuple[float, float]]] = [
            lambda i: (3.0, 3.0),
            lambda i: (6.0, 6.0),
            lambda i: (oracle, oracle),
            lambda i: (float(dbcgm_px[i]), float(patch_motion[i])),
            lambda i: (ratio * video_motion, video_motion),
            lambda i: (fitted * video_motion, video_motion),
        ]
        out = []
        for row in rows:
            if row == len(choices):  # the method itself
                inputs = reblur(
                    _crops(video.blurry, video), video.condition, config, video.noise_std
                )
                pairs = build_pseudo_pairs(video.blurry, patches, inputs, model.spec)
                out.append(gain(train(model, pairs, config), video))
                continue
            choose = choices[row]
            clips = []
            for i, p in enumerate(patches):
                direction = video.condition[i, :2].mean(dim=(1, 2))
                direction = direction / direction.norm().clamp_min(1e-6)
                blur_px, step_px = choose(i)
                clips.append(
                    motion_consistent_clip(video.blurry[p.frame], p, direction, blur_px, step_px)
                )
            inputs = torch.stack(clips)
            noisy = match_noise(
                inputs.flatten(0, 1),
                video.noise_std,
                generator=torch.Generator().manual_seed(config.seed + NOISE_SEED_OFFSET),
            )
            pairs = PseudoPairs(noisy.view_as(inputs), _crops(video.blurry, video), 2, patches)
            out.append(gain(train(model, pairs, config), video))
        return out

    return _by_preset(videos, [labels[row] for row in rows], score)


def exposure(videos: list[DevVideo], model: torch.nn.Module, config: AdaptConfig) -> str:
    rows = []
    for video in videos:
        params = synth.PRESETS[video.preset]
        true = params.exposure_ms / params.frame_interval_ms
        ratio, motion = exposure_ratio_bme(video, config)
        fitted = exposure_ratio_fit(video, config)
        moving = exposure_ratio_fit_moving(video, config)
        shown = "-" if moving is None else f"{moving:.2f}"
        rows.append(
            [video.name, f"{true:.2f}", f"{ratio:.2f}", f"{fitted:.2f}", shown, f"{motion:.1f}"]
        )
        print(f"  {video.name}: true {true:.2f}, BME/flow {ratio:.2f}, fit {fitted:.2f} / {shown}")
    header = [
        "video",
        "true ratio",
        "BME / flow",
        "fit at patches",
        "fit, moving neighbours",
        "flow px/frame (top half)",
    ]
    return _table(header, rows)


RUNNERS: dict[str, Callable[[list[DevVideo], torch.nn.Module, AdaptConfig], str]] = {
    "perframe": perframe,
    "targets": targets,
    "wise": wise,
    "synclip": synclip,
    "exposure": exposure,
}


def main(argv: Sequence[str] | None = None) -> str:
    """Run the chosen experiments, print their tables and return them."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("experiment", choices=[*EXPERIMENTS, "all"])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(synth.PRESETS))
    parser.add_argument("--videos", type=int, default=3, choices=[1, 2, 3])
    parser.add_argument(
        "--heldout",
        type=int,
        default=0,
        help="use the first N held-out benchmark videos per preset instead (a check, not tuning)",
    )
    parser.add_argument(
        "--synclip-rows", type=int, nargs="+", default=None, help="synclip rows to run (0-based)"
    )
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, nargs=2, default=[256, 320], metavar=("H", "W"))
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = Settings(
        presets=tuple(args.presets),
        videos=args.videos,
        frames=args.frames,
        size=(args.size[0], args.size[1]),
        patch_size=args.patch_size,
        epochs=args.epochs,
        heldout=args.heldout,
        synclip_rows=tuple(args.synclip_rows) if args.synclip_rows else None,
    )
    experiments = EXPERIMENTS if args.experiment == "all" else (args.experiment,)
    model = ttblur.reference_model()
    config = settings.config()
    videos = load_videos(settings, model)
    out = []
    for name in experiments:
        print(f"## {name}", flush=True)
        if name == "synclip":
            table = synclip(videos, model, config, settings.synclip_rows)
        else:
            table = RUNNERS[name](videos, model, config)
        print("\n" + table + "\n", flush=True)
        out += [f"## {name}", "", table, ""]
    return "\n".join(out)


if __name__ == "__main__":
    main(sys.argv[1:])
