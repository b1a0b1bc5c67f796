"""Off-generator benchmark: does adaptation hold on clips ttblur's own generator did not make?

Every default of ttblur was chosen on development videos of ``ttblur.scenarios``; the
scenario suite's evaluation role changes the photos and seeds but not the generator. This
benchmark renders its clips with :mod:`independent_render` (a rotating pinhole camera over a
photo, continuous-time motion integrated in linear light, Poisson-Gaussian noise, other tone
curves, libx264 decoded by ``ttblur.load_video``; it shares no code with ``ttblur.synth``),
and scores each (network, clip, configuration) exactly as ``scenario_suite.py`` does: the
blurry input, the unadapted and the adapted network against the sharp frames, the worst
frame, the frames whose true blur is under 1 px, rollbacks, the guard's score change beside
the true change of the epoch it keeps, and the exposure fit.

Kinds (:data:`independent_render.KINDS`): ``pan_h264`` (steady pan at full exposure through
H.264), ``handheld_pauses`` (issue 17's hand-held clip: 6-16 px / frame at ~100 deg, every
third frame nearly still, exposure 0.9, gamma 2.4, noise), ``handheld_jerks`` (tremor, jerks
and pauses, exposure 0.1-1.0, a filmic tone curve, H.264), ``rotate_zoom``, ``moving_object``
(a cut-out moving over a still background), ``lowlight`` and ``handheld_short`` (exposure
0.1-0.35: the camera moves much farther between frames than during them).

The ``evaluation`` role (default) uses only the held-out photos (``ttblur.synth.
HELDOUT_PHOTOS``) and any ``--images`` given (files no part of ttblur has seen), seeds >=
20000: report on it, never tune on it; ``--role development`` uses the training photos.

Usage::

    PYTHONPATH=src python benchmarks/independent_clips.py --quick              # minutes
    PYTHONPATH=src python benchmarks/independent_clips.py --models tiny base --threads 2
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from independent_render import KINDS, ClipSpec, render_clip
from scenario_suite import (
    CONFIGS,
    SHARP_PX,
    Results,
    Settings,
    VideoCase,
    describe,
    emit,
    score_video,
)
from suite_cli import frame_blur_px

import ttblur
from ttblur.stages.flow import OpenCVFlow
from ttblur.synth import HELDOUT_PHOTOS, TRAIN_PHOTOS, coerce_image, load_photo

#: First seed of each role (the scenario suite's evaluation seeds start at 10000).
FIRST_SEED = {"evaluation": 20_000, "development": 0}


def load_image(path: Path) -> torch.Tensor:
    """An image file as ``(3, H, W)`` float32 sRGB in ``[0, 1]``."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read an image from {path}")
    return coerce_image(np.ascontiguousarray(bgr[:, :, ::-1]), what=str(path))


def photo_pool(role: str, images: Sequence[Path]) -> list[tuple[str, torch.Tensor]]:
    """The role's photos by name: held-out photos and ``images`` (evaluation), or the
    training photos (development)."""
    if role == "development":
        return [(name, load_photo(name)) for name in TRAIN_PHOTOS]
    pool = [(name, load_photo(name)) for name in HELDOUT_PHOTOS]
    return pool + [(path.stem, load_image(path)) for path in images]


def clip_specs(settings: Settings, images: Sequence[Path] = ()) -> list[ClipSpec]:
    """Every clip of a run: ``settings.videos_per_family`` per kind (``settings.families``),
    from video ``settings.first_video``; photos rotate through the role's pool."""
    pool = photo_pool(settings.role, images)
    specs = []
    for kind in settings.families:
        k = KINDS.index(kind)  # a clip's seed and photo do not depend on which kinds run
        for i in range(settings.first_video, settings.first_video + settings.videos_per_family):
            name, photo = pool[(i + k) % len(pool)]
            _, sprite = pool[(i + k + 1) % len(pool)]
            specs.append(
                ClipSpec(
                    kind=kind,
                    photo_name=name,
                    photo=photo,
                    seed=FIRST_SEED[settings.role] + 100 * k + i,
                    frames=settings.frames,
                    size=settings.size,
                    sprite=sprite,
                )
            )
    return specs


def run(
    settings: Settings, images: Sequence[Path] = (), log: Callable[[str], None] = print
) -> Results:
    """Render every clip and score every network on it; ``log`` gets a line per pair."""
    torch.set_num_threads(settings.threads)
    results = Results(settings)
    specs = clip_specs(settings, images)
    clips = [render_clip(spec) for spec in specs]
    flow = OpenCVFlow()
    for model_name in settings.models:
        model = ttblur.reference_model(model_name)
        for spec, clip in zip(specs, clips, strict=True):
            case = VideoCase(
                model=model_name,
                family=spec.kind,
                photo=spec.photo_name,
                seed=spec.seed,
                exposure_true=clip.exposure,
                blurry=clip.blurry,
                sharp=clip.sharp,
                sharp_mask=torch.tensor(frame_blur_px(clip.magnitude)) < SHARP_PX,
            )
            rows = score_video(model, case, settings, flow)
            results.rows.extend(rows)
            log(describe(rows))
    return results


def picture(specs: Sequence[ClipSpec], path: Path, tile: tuple[int, int] = (192, 144)) -> None:
    """Write one row per clip to ``path`` (an image file: PNG, JPEG, ...): its blurriest frame
    sharp and blurry, and its least blurred frame as recorded, each labelled with the frame's
    true blur."""

    def tile_of(frame: torch.Tensor, text: str) -> np.ndarray:
        rgb = (frame.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        image = np.full((tile[1] + 16, tile[0], 3), 255, np.uint8)
        image[16:] = cv2.resize(rgb[:, :, ::-1], tile, interpolation=cv2.INTER_AREA)
        cv2.putText(image, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
        return image

    sheet = np.full((len(specs) * (tile[1] + 20), 3 * (tile[0] + 4), 3), 255, np.uint8)
    for r, spec in enumerate(specs):
        clip = render_clip(spec)
        worst = max(range(len(clip.blur_px)), key=clip.blur_px.__getitem__)
        best = min(range(len(clip.blur_px)), key=clip.blur_px.__getitem__)
        tiles = [
            tile_of(clip.sharp[worst], f"{spec.kind}: sharp, frame {worst}"),
            tile_of(
                clip.blurry[worst], f"blurry, {clip.blur_px[worst]:.1f} px, e {clip.exposure:.2f}"
            ),
            tile_of(clip.blurry[best], f"frame {best}, {clip.blur_px[best]:.1f} px"),
        ]
        for c, image in enumerate(tiles):
            top, left = r * (tile[1] + 20), c * (tile[0] + 4)
            sheet[top : top + tile[1] + 16, left : left + tile[0]] = image
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet, [cv2.IMWRITE_JPEG_QUALITY, 88]):
        raise OSError(f"could not write {path}")


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 clip per kind, small frames")
    parser.add_argument("--role", choices=["evaluation", "development"], default="evaluation")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--videos", type=int, default=3, help="clips per kind")
    parser.add_argument("--first-video", type=int, default=0, help="index of each kind's first")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--models", nargs="+", default=["tiny"], help="reference_model names")
    parser.add_argument("--configs", nargs="+", default=["default"], choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=None, help="override finetune.epochs")
    parser.add_argument("--seed", type=int, default=0, help="AdaptConfig.seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--images", nargs="*", type=Path, default=[], help="more photos (evaluation role)"
    )
    parser.add_argument(
        "--picture",
        type=Path,
        default=None,
        help="only write a picture of each kind's first clip here (no adaptation)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    settings = Settings(
        role=args.role,
        families=tuple(args.kinds),
        videos_per_family=args.videos,
        first_video=args.first_video,
        frames=args.frames,
        size=tuple(args.size),
        patch_size=args.patch_size,
        models=tuple(args.models),
        configs=tuple(args.configs),
        epochs=args.epochs,
        seed=args.seed,
        threads=args.threads,
    )
    if args.quick:
        settings.videos_per_family, settings.frames = 1, 12
        settings.size, settings.patch_size = (128, 160), 64
    for path in args.images:
        if not path.is_file():
            parser.error(f"--images: no such file: {path}")
    return settings, args


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    settings, args = parse_args(argv)
    words = list(sys.argv[1:] if argv is None else argv)
    command = "PYTHONPATH=src python benchmarks/independent_clips.py " + shlex.join(words)
    if args.picture is not None:
        picture(clip_specs(settings, args.images)[:: settings.videos_per_family], args.picture)
        print(f"wrote {args.picture}")
        return 0
    start = time.perf_counter()
    results = run(settings, args.images)
    seconds = time.perf_counter() - start
    emit(results, command, seconds, args.out, args.json, source="independent renderer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
