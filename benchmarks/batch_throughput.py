"""Videos per hour of ``ttblur.batch.adapt_many`` for 1, 2 and 4 workers on this machine.

A small dataset is generated once (``ttblur.synth.make_video`` of held-out photos, preset
``bsd-2ms16ms``, seeds from 10000, saved as mp4), then adapted with the default
``AdaptConfig`` (``--epochs`` / ``--patch-size`` may shrink it) and the shipped reference
network, once per worker count, each into a fresh output folder: one worker runs in-process
(the ``local`` backend), more run one Ray task per video on a local Ray runtime with
``--cpus-per-video`` CPUs each. Printed per worker count: wall seconds (Ray start-up
included), videos per hour, the mean seconds of one video's task, the share of those seconds
spent in ``adapt``'s own stages (``report.seconds``) and the speed-up over one worker.

What limits the speed-up is the machine: with ``workers x cpus-per-video`` above its cores
the tasks share CPUs (this runner reports ``os.cpu_count()``).

Usage::

    PYTHONPATH=src python benchmarks/batch_throughput.py                # 8 videos, 1 2 4 workers
    PYTHONPATH=src python benchmarks/batch_throughput.py --quick        # 4 small videos, 1 2
    PYTHONPATH=src python benchmarks/batch_throughput.py --device cuda --gpus-per-video 0.25
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from ttblur.batch import BatchSettings, adapt_many, find_videos, ray_available
from ttblur.config import AdaptConfig
from ttblur.io.video import save_video
from ttblur.synth import HELDOUT_PHOTOS, make_video

PRESET = "bsd-2ms16ms"


def make_dataset(folder: Path, videos: int, frames: int, size: tuple[int, int]) -> None:
    """``videos`` mp4 clips of held-out photos in ``folder``."""
    photos = sorted(HELDOUT_PHOTOS)
    for i in range(videos):
        clip = make_video(
            photos[i % len(photos)], PRESET, num_frames=frames, size=size, seed=10000 + i
        )
        save_video(clip.blurry, folder / f"clip{i:03d}.mp4")


def run(args: argparse.Namespace) -> str:
    config = AdaptConfig()
    if args.epochs is not None:
        config.finetune.epochs = args.epochs
    if args.patch_size is not None:
        config.rsdm.patch_size = args.patch_size
    settings = BatchSettings(config=config, device=args.device)
    lines = [
        f"machine: {platform.processor() or platform.machine()}, os.cpu_count() = "
        f"{os.cpu_count()}, torch {torch.__version__}, ray "
        f"{'installed' if ray_available() else 'missing'}",
        f"dataset: {args.videos} videos of {args.frames} frames at {args.size[0]}x{args.size[1]} "
        f"({PRESET}), epochs {config.finetune.epochs}, patch {config.rsdm.patch_size}, "
        f"{args.cpus_per_video:g} CPU(s) and {args.gpus_per_video:g} GPU(s) per video",
        "",
        "| workers | backend | wall (s) | videos / hour | task (s, mean) | of it in adapt's stages "
        "| speed-up |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory(prefix="ttblur-batch-bench-") as tmp:
        root = Path(tmp)
        make_dataset(root / "clips", args.videos, args.frames, tuple(args.size))
        jobs = find_videos(root / "clips")
        base = None
        for workers in args.workers:
            out = root / f"out-{workers}"
            start = time.perf_counter()
            result = adapt_many(
                jobs,
                out,
                settings,
                workers=workers,
                backend="local" if workers == 1 else "ray",
                cpus_per_video=args.cpus_per_video,
                gpus_per_video=args.gpus_per_video,
            )
            wall = time.perf_counter() - start
            failed = [r.name for r in result.records if r.status != "done"]
            if failed:
                raise RuntimeError(f"videos failed: {failed}")
            task = sum(r.seconds for r in result.records) / len(result.records)
            staged = 0.0
            for record in result.records:
                report = json.loads((out / record.name / "report.json").read_text())
                staged += sum(report["seconds"].values())
            share = staged / sum(r.seconds for r in result.records)
            base = base or wall
            lines.append(
                f"| {workers} | {result.backend} | {wall:.1f} | {3600 * len(jobs) / wall:.1f} | "
                f"{task:.1f} | {100 * share:.0f}% | {base / wall:.2f}x |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="4 videos of 8 frames, 1 and 2 workers"
    )
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--patch-size", type=int, default=None)
    parser.add_argument("--cpus-per-video", type=float, default=1.0)
    parser.add_argument("--gpus-per-video", type=float, default=0.0)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.frames, args.size, args.workers = 4, 8, (96, 128), [1, 2]
        args.patch_size = args.patch_size or 64
    torch.set_num_threads(1)
    print(run(args))


if __name__ == "__main__":
    main()
