"""Adapt a network to every video of a folder, each on its own, and resume after a stop.

What it shows:

1. ``ttblur.batch.find_videos(folder)``: the video files and frame folders of a folder (here a
   few clips rendered with ``ttblur.synth`` into a temporary folder, or your own with
   ``--videos``);
2. ``ttblur.batch.adapt_many(jobs, out, BatchSettings(...), workers=N)``: the paper's
   protocol over many videos: a copy of the network is adapted to each video alone, its
   outputs (adapted weights, deblurred video, report) and a manifest are written to
   ``out/<video>/``; with Ray installed (``pip install "ttblur[ray]"``) and ``--workers`` > 1
   the videos run as parallel Ray tasks;
3. a second call does no work for the videos already done (their manifests say so), which is
   how a stopped run is resumed;
4. ``summary_table(result.records)``: one row per video.

Run from the repository root (or anywhere, with ttblur installed)::

    python examples/adapt_many_videos.py --quick                 # 3 tiny clips, a smoke test
    python examples/adapt_many_videos.py --workers 2             # 4 clips, 2 Ray workers
    python examples/adapt_many_videos.py --videos clips/ --out adapted/

The command-line equivalent is ``ttblur adapt-many clips/ --out adapted/ --workers 2``.
Rendering the demo clips needs scikit-image (``pip install "ttblur[data]"``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import ttblur
from ttblur.batch import BatchSettings, VideoRecord, adapt_many, find_videos, summary_table


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 tiny clips, 1 epoch")
    parser.add_argument("--videos", type=Path, default=None, help="a folder of your own videos")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: temp)")
    parser.add_argument("--workers", type=int, default=1, help="videos at once (Ray if > 1)")
    return parser.parse_args()


def render_clips(folder: Path, count: int, frames: int, size: tuple[int, int]) -> None:
    """``count`` blurry mp4 clips of held-out photos in a BSD-like target domain."""
    for i, photo in enumerate(["astronaut", "coffee", "chelsea", "astronaut"][:count]):
        clip = ttblur.synth.make_video(
            photo, preset="bsd-2ms16ms", num_frames=frames, size=size, seed=10000 + i
        )
        ttblur.save_video(clip.blurry, folder / f"clip{i}.mp4")


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="ttblur-many-") as tmp:
        folder = args.videos
        if folder is None:
            folder = Path(tmp) / "clips"
            count, frames, size = (3, 7, (64, 96)) if args.quick else (4, 16, (192, 256))
            render_clips(folder, count, frames, size)
        out = args.out if args.out is not None else Path(tmp) / "adapted"

        config = ttblur.AdaptConfig()
        config.rsdm.patch_size = 32 if args.quick else 128
        if args.quick:
            config.finetune.epochs = 1
        settings = BatchSettings(config=config)  # the shipped reference network by default

        jobs = find_videos(folder)
        print(f"{len(jobs)} videos in {folder}: {', '.join(job.name for job in jobs)}")
        first = adapt_many(jobs, out, settings, workers=args.workers, on_record=_progress)
        print(summary_table(first.records))
        print(
            f"ran {len(first.ran)} videos with the {first.backend} backend in {first.seconds:.1f} s"
        )

        again = adapt_many(jobs, out, settings, workers=args.workers)
        print(f"second call: ran {len(again.ran)}, skipped {len(again.skipped)} already done")
        print(
            f"outputs of the first video: {sorted(p.name for p in (out / jobs[0].name).iterdir())}"
        )


def _progress(record: VideoRecord) -> None:
    print(f"  {record.name}: {record.status} in {record.seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
