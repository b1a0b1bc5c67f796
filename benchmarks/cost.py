"""What test-time adaptation and streaming inference cost on this machine.

Prints three Markdown tables, all measured by this run:

1. seconds per stage of ``ttblur.adapt`` (``report.seconds``) for synthetic clips
   (``ttblur.synth.make_video`` of the astronaut photo, preset ``bsd-2ms16ms``, seed 10007;
   with ``--scenario FAMILY``, video 0 of that development scenario family instead, e.g.
   ``handheld``, whose still moments give the guard sharp neighbours to score against),
   with the default ``AdaptConfig`` and each model of ``--models`` (:data:`MODELS`): the
   shipped ``ttblur.reference_model()`` (0.35 M parameters) and ``wide``, the same
   architecture widened to 2.57 M parameters (randomly initialised, a stand-in for a user's
   network of ESTRNN's size, 2.47 M; the overhead share depends on the model's cost);
2. the share of adapt's wall time spent outside the model's own forward and backward passes.
   The model is instrumented with hooks: a forward pre-hook and a forward hook time each
   forward call; during a training step a tensor hook on the model's output marks the moment
   the gradient reaches the model (its backward starts) and a post-accumulate-grad hook on
   every trainable parameter marks when its gradient is ready; one step's backward is the
   span from the first mark to the last parameter mark. ``adapt(..., in_place=True)``
   adapts the instrumented module itself (no copy);
3. peak resident memory (``VmHWM``, the high-water mark of a fresh subprocess per row; see
   :func:`peak_rss_mb`) of ``ttblur.inference.deblur_file`` streaming long generated mp4s
   through the reference model, against the fixed cost of a process that only imports ttblur
   and loads the model, and against the in-memory ``deblur`` + ``save_video`` of the shortest
   clip. The mp4s are encoded incrementally (the astronaut photo resized to the frame size and
   panned 4 px per frame), never held in memory;
4. peak resident memory of ``ttblur.adapt`` on the same kind of generated mp4, given as a path
   (streamed through a temporary :class:`~ttblur.io.frame_store.FrameStore`) for each length of
   ``--adapt-frames``, and given as an in-memory tensor (``load_video``) for the shortest, each
   in a fresh subprocess, with :data:`ADAPT_MEMORY_CONFIG` (a cap of 32 patches: without one
   the number of patches, and the pseudo pairs, grow with the video's length).

Usage::

    python benchmarks/cost.py          # 50x256x256 + 20x720x1280 adapt; 100 vs 1000 frames 720p
    python benchmarks/cost.py --quick  # 50x256x256 adapt; 20 vs 200 frames at 360x640
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STAGES = ("setup", "rsdm", "dbcgm", "synthesis", "pairs", "guard", "finetune")
#: Models timed by ``adapt``: ``ReferenceConfig`` fields, ``None`` for the shipped weights.
MODELS: dict[str, dict[str, Any] | None] = {
    "reference": None,
    "wide": {"features": (32, 64, 128), "num_blocks": 8},
}
PRESET = "bsd-2ms16ms"
SEED = 10007
FULL = {"clips": ["50x256x256", "20x720x1280"], "stream_frames": [100, 1000]}
QUICK = {"clips": ["50x256x256"], "stream_frames": [20, 200], "stream_size": "360x640"}
#: ``adapt`` in the memory table: the default config, at most 32 patches, 2 epochs.
ADAPT_MEMORY_CONFIG = {"rsdm": {"max_patches": 32}, "finetune": {"epochs": 2}}
ADAPT_LABELS = {
    "adapt-file": "`adapt(model, path)` (streamed)",
    "adapt-tensor": "`adapt(model, load_video(path))` (in memory)",
}


def parse_dims(text: str, count: int) -> tuple[int, ...]:
    """``"TxHxW"`` (``count`` positive ints joined by ``x``) -> a tuple; an argparse error
    otherwise."""
    parts = tuple(int(p) for p in text.lower().split("x"))
    if len(parts) != count or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected {count} positive ints joined by 'x': {text!r}")
    return parts


class ModelTimer:
    """Seconds a module spends in its own forward and backward passes (see the module doc).

    Hooks are plain closures (not bound methods) so that a deep copy of the module would
    share the same counters.
    """

    def __init__(self, model: nn.Module) -> None:
        self.forward_s = 0.0
        self.backward_s = 0.0
        self.forward_calls = 0
        self.backward_steps = 0
        state: dict[str, float | None] = {"t0": None, "start": None, "last": None}

        def close_backward() -> None:
            start, last = state["start"], state["last"]
            if start is not None and last is not None and last >= start:
                self.backward_s += last - start
                self.backward_steps += 1
            state["start"] = state["last"] = None

        def output_grad(grad: Tensor) -> None:
            if state["start"] is None:
                state["start"] = _now()

        def pre_forward(module: nn.Module, args: Any) -> None:
            state["t0"] = _now()

        def post_forward(module: nn.Module, args: Any, output: Any) -> None:
            t0 = state["t0"]
            if t0 is not None:
                self.forward_s += _now() - t0
                self.forward_calls += 1
            if isinstance(output, Tensor) and output.requires_grad:
                close_backward()  # the previous training step's backward is over
                output.register_hook(output_grad)

        def param_ready(param: Tensor) -> None:
            state["last"] = _now()

        model.register_forward_pre_hook(pre_forward)
        model.register_forward_hook(post_forward)
        for param in model.parameters():
            if param.requires_grad:
                param.register_post_accumulate_grad_hook(param_ready)
        self.finish = close_backward


def _now() -> float:
    """``time.perf_counter()`` after the queued CUDA work is done (CUDA kernels run
    asynchronously, so a plain clock would charge a pass's time to whoever waits next)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def build_model(name: str) -> nn.Module:
    """A model of :data:`MODELS`: the shipped reference network or a seeded random one."""
    import ttblur
    from ttblur.nets.reference import ReferenceConfig, ReferenceDeblurNet

    fields = MODELS[name]
    if fields is None:
        return ttblur.reference_model()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ReferenceDeblurNet(ReferenceConfig(**fields))


def make_clip(frames: int, height: int, width: int, scenario: str | None = None) -> Tensor:
    """The blurry clip timed by ``adapt``: the :data:`PRESET` video of the astronaut photo, or
    video 0 of a development scenario family (``scenario``). Shape: ``(frames, 3, H, W)``."""
    from ttblur._photos import load_photo
    from ttblur.scenarios import draw_scenario, make_scenario
    from ttblur.synth import make_video

    if scenario is not None:
        spec = draw_scenario(scenario, "development", 0, num_frames=frames, size=(height, width))
        return make_scenario(spec).blurry
    clip = make_video(
        load_photo("astronaut"), preset=PRESET, num_frames=frames, size=(height, width), seed=SEED
    )
    return clip.blurry


def time_adapt(
    frames: int,
    height: int,
    width: int,
    config: Any,
    device: str | None,
    model_name: str,
    scenario: str | None = None,
) -> dict[str, Any]:
    """One ``ttblur.adapt`` run on a synthetic clip, timed per stage and per model pass."""
    import ttblur

    start = time.perf_counter()
    video = make_clip(frames, height, width, scenario)
    make_s = time.perf_counter() - start
    model = build_model(model_name)
    params = sum(p.numel() for p in model.parameters())
    timer = ModelTimer(model)
    start = time.perf_counter()
    result = ttblur.adapt(model, video, config=config, device=device, in_place=True, progress=False)
    wall = time.perf_counter() - start
    timer.finish()
    report = result.report
    model_s = timer.forward_s + timer.backward_s
    clip_name = f"{frames}x{height}x{width}" + (f" {scenario}" if scenario else "")
    return {
        "label": f"{clip_name}, {model_name} ({params / 1e6:.2f} M)",
        "make_video_s": make_s,
        "seconds": dict(report.seconds),
        "wall_s": wall,
        "patches": len(report.patches),
        "train_pairs": report.num_train_pairs,
        "val_pairs": report.num_val_pairs,
        "epochs": len(report.train_loss),
        "forward_s": timer.forward_s,
        "backward_s": timer.backward_s,
        "forward_calls": timer.forward_calls,
        "backward_steps": timer.backward_steps,
        "outside_share": 1.0 - model_s / wall,
        # The guard's scores run inside fine-tuning (their forward passes are timed by the
        # hooks) but are reported under "guard": both make up the fine-tuning loop.
        "finetune_outside_share": 1.0
        - model_s
        / max(report.seconds.get("finetune", 0.0) + report.seconds.get("guard", 0.0), 1e-9),
        "guard_share": report.seconds.get("guard", 0.0) / wall,
        "guard_score": report.guard_score or "-",
    }


def generated_frames(frames: int, height: int, width: int, chunk: int = 8) -> Iterator[Tensor]:
    """``(n, 3, H, W)`` chunks of a panning view of the astronaut photo, made on the fly."""
    from ttblur._photos import load_photo

    photo = load_photo("astronaut")[None]
    base = F.interpolate(photo, size=(height, width), mode="bilinear", align_corners=False)
    base = base.clamp(0.0, 1.0)[0]
    for first in range(0, frames, chunk):
        shifts = range(first, min(first + chunk, frames))
        yield torch.stack([torch.roll(base, shifts=4 * k, dims=-1) for k in shifts])


def write_source(path: Path, frames: int, height: int, width: int) -> None:
    """Encode a generated mp4 chunk by chunk."""
    from ttblur.io.video import write_frames  # the incremental writer behind save_video

    write_frames(generated_frames(frames, height, width), path, 25.0, total=frames)


def run_child(
    mode: str,
    src: Path,
    dst: Path,
    threads: int | None,
    window: int | None = None,
    patch_size: int | None = None,
) -> dict[str, Any]:
    """Run one memory measurement in a fresh interpreter and return its JSON line."""
    script = str(Path(__file__).resolve())
    command = [sys.executable, script, "_child", mode, str(src), str(dst)]
    command += [str(threads or 0), str(window or 0), str(patch_size or 0)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def child_main(argv: list[str]) -> None:
    """``_child MODE SRC DST THREADS WINDOW PATCH`` (0: default): ``idle``, ``stream``,
    ``memory``, ``adapt-file`` or ``adapt-tensor``; prints one JSON line."""
    mode, src, dst = argv[:3]
    threads, window, patch = int(argv[3]), int(argv[4]) or None, int(argv[5])
    if threads:
        torch.set_num_threads(threads)
    import ttblur
    from ttblur.inference import deblur, deblur_file

    model = ttblur.reference_model()
    start = time.perf_counter()
    if mode in ("adapt-file", "adapt-tensor"):
        video = src if mode == "adapt-file" else ttblur.load_video(src)
        config = json.loads(json.dumps(ADAPT_MEMORY_CONFIG))
        if patch:
            config["rsdm"]["patch_size"] = patch
        result = ttblur.adapt(model, video, config=config, progress=False)
        assert result.report.num_frames > 0
    elif mode == "stream":
        deblur_file(model, src, dst, device="cpu", window=window, progress=False)
    elif mode == "memory":
        restored = deblur(model, src, device="cpu", window=window, progress=False)
        ttblur.save_video(restored, dst, fps=25.0)
    elif mode != "idle":
        raise SystemExit(f"unknown child mode {mode!r}")
    seconds = time.perf_counter() - start
    print(json.dumps({"mode": mode, "rss_mb": peak_rss_mb(), "seconds": seconds}))


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own
    address space. ``getrusage(RUSAGE_SELF).ru_maxrss`` is not used there because Linux
    carries it over ``fork`` + ``exec``: a child would report at least its parent's RSS at
    the fork. Elsewhere ``ru_maxrss`` is the fallback (kB on Linux/BSD, bytes on macOS).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def adapt_tables(runs: list[dict[str, Any]]) -> str:
    head = "| stage | " + " | ".join(f"{r['label']} (s)" for r in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    for stage in STAGES:
        lines.append(
            f"| {stage} | " + " | ".join(_fmt(r["seconds"].get(stage, 0.0)) for r in runs) + " |"
        )
    lines.append("| **adapt wall** | " + " | ".join(_fmt(r["wall_s"]) for r in runs) + " |")
    lines.append(
        "| (make_video, not part of adapt) | "
        + " | ".join(_fmt(r["make_video_s"]) for r in runs)
        + " |"
    )
    lines.append(
        "| patches / train pairs / val pairs / epochs | "
        + " | ".join(
            f"{r['patches']} / {r['train_pairs']} / {r['val_pairs']} / {r['epochs']}" for r in runs
        )
        + " |"
    )
    lines += [
        "",
        "| clip, model | model forward (s, calls) | model backward (s, steps) | adapt wall (s) "
        "| outside model passes | of finetune + guard outside model passes | guard share "
        "| guard score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['label']} | {_fmt(r['forward_s'], 2)} ({r['forward_calls']}) | "
            f"{_fmt(r['backward_s'], 2)} ({r['backward_steps']}) | {_fmt(r['wall_s'])} | "
            f"{100 * r['outside_share']:.1f}% | {100 * r['finetune_outside_share']:.1f}% | "
            f"{100 * r['guard_share']:.1f}% | {r['guard_score']} |"
        )
    return "\n".join(lines)


def memory_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| run | frames | frame size | peak RSS (MB) | wall (s) | frames/s "
        "| whole clip as float32 (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = r["frames"] / r["seconds"] if r["frames"] and r["seconds"] > 0 else 0.0
        clip_mb = r["frames"] * 3 * r["height"] * r["width"] * 4 / 2**20
        lines.append(
            f"| {r['label']} | {r['frames']} | {r['height']}x{r['width']} | "
            f"{_fmt(r['rss_mb'], 0)} | {_fmt(r['seconds'])} | {_fmt(rate, 2)} | "
            f"{_fmt(clip_mb, 1)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark, print the tables and return them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_child":
        child_main(argv[1:])
        return ""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller clips (see module doc)")
    parser.add_argument("--clips", nargs="+", help="adapt clips as TxHxW")
    parser.add_argument(
        "--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="adapted models"
    )
    parser.add_argument("--stream-frames", nargs="+", type=int, help="lengths of streamed mp4s")
    parser.add_argument("--stream-size", help="HxW of the streamed mp4s (default 720x1280)")
    parser.add_argument("--epochs", type=int, help="override finetune.epochs (default config)")
    parser.add_argument("--patch-size", type=int, help="override rsdm.patch_size (default 256)")
    parser.add_argument("--device", default=None, help="adapt device (default: CUDA if any)")
    parser.add_argument("--flow", default=None, help="override dbcgm.flow (e.g. pyramid)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--config", default=None, help="inline JSON of AdaptConfig fields (default: defaults)"
    )
    parser.add_argument(
        "--scenario",
        default=None,
        help="adapt to video 0 of this development scenario family (e.g. handheld) "
        f"instead of the {PRESET} clip",
    )
    parser.add_argument(
        "--small-window",
        type=int,
        default=6,
        help="also stream the shortest clip with this window (0: skip)",
    )
    parser.add_argument(
        "--adapt-frames", nargs="+", type=int, help="lengths of the mp4s adapted to (table 4)"
    )
    parser.add_argument("--adapt-size", help="HxW of the mp4s of table 4 (default: stream size)")
    parser.add_argument("--skip-adapt", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-adapt-memory", action="store_true")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    clips = [parse_dims(c, 3) for c in (args.clips or preset["clips"])]
    stream_frames = sorted(args.stream_frames or preset["stream_frames"])
    adapt_frames = sorted(args.adapt_frames or preset["stream_frames"])
    stream_size = parse_dims(args.stream_size or str(preset.get("stream_size", "720x1280")), 2)
    if args.threads:
        torch.set_num_threads(args.threads)

    from ttblur.config import AdaptConfig

    config = AdaptConfig.from_json(args.config) if args.config else AdaptConfig()
    if args.epochs:
        config.finetune.epochs = args.epochs
    if args.patch_size:
        config.rsdm.patch_size = args.patch_size
    if args.flow:
        config.dbcgm.flow = args.flow
    command = "python benchmarks/cost.py " + " ".join(argv)
    out = [
        f"`{command.strip()}`: {platform.machine()} ({platform.processor() or 'cpu'}), "
        f"{os.cpu_count()} logical CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, python {platform.python_version()}",
        "",
    ]
    print(out[0] + "\n", flush=True)
    if not args.skip_adapt:
        runs = []
        for model_name in args.models:
            for frames, height, width in clips:
                runs.append(
                    time_adapt(
                        frames, height, width, config, args.device, model_name, args.scenario
                    )
                )
                print(f"adapt {runs[-1]['label']}: {runs[-1]['wall_s']:.1f} s", flush=True)
        tables = adapt_tables(runs)
        print("\n" + tables + "\n", flush=True)
        out += [tables, ""]
    if not args.skip_memory:
        height, width = stream_size
        rows = []
        with tempfile.TemporaryDirectory(prefix="ttblur-cost-") as tmp:
            folder = Path(tmp)
            base = run_child("idle", folder, folder, args.threads)
            rows.append({**base, "label": "import ttblur + load model", "frames": 0})
            for frames in stream_frames:
                src = folder / f"src{frames}.mp4"
                write_source(src, frames, height, width)
                if frames == stream_frames[0]:
                    result = run_child("memory", src, folder / "mem.mp4", args.threads)
                    label = "`deblur` + `save_video` (in memory)"
                    rows.append({**result, "label": label, "frames": frames})
                result = run_child("stream", src, folder / f"out{frames}.mp4", args.threads)
                label = "`deblur_file` (streaming, default window)"
                rows.append({**result, "label": label, "frames": frames})
                if frames == stream_frames[0] and args.small_window:
                    small = run_child(
                        "stream", src, folder / "small.mp4", args.threads, args.small_window
                    )
                    label = f"`deblur_file` (streaming, window={args.small_window})"
                    rows.append({**small, "label": label, "frames": frames})
                print(f"streamed {frames} frames: {result['rss_mb']:.0f} MB", flush=True)
                src.unlink()
        for row in rows:
            row["height"], row["width"] = height, width
        table = memory_table(rows)
        print("\n" + table + "\n", flush=True)
        out += [table, ""]
    if not args.skip_adapt_memory:
        adapt_size = parse_dims(args.adapt_size, 2) if args.adapt_size else stream_size
        table = adapt_memory_table(adapt_frames, adapt_size, args.threads, args.patch_size)
        print("\n" + table + "\n", flush=True)
        out += [table, ""]
    return "\n".join(out)


def adapt_memory_table(
    lengths: list[int], size: tuple[int, ...], threads: int | None, patch_size: int | None
) -> str:
    """Table 4: peak RSS of ``adapt`` on generated mp4s of ``lengths`` frames of ``size``."""
    height, width = size
    rows = []
    with tempfile.TemporaryDirectory(prefix="ttblur-cost-") as tmp:
        folder = Path(tmp)
        rows.append({**run_child("idle", folder, folder, threads), "label": "import + model"})
        rows[-1]["frames"] = 0
        for frames in lengths:
            src = folder / f"adapt{frames}.mp4"
            write_source(src, frames, height, width)
            modes = ["adapt-file"] + (["adapt-tensor"] if frames == lengths[0] else [])
            for mode in modes:
                result = run_child(mode, src, folder, threads, patch_size=patch_size)
                label = ADAPT_LABELS[mode]
                rows.append({**result, "label": label, "frames": frames})
                print(f"{mode} {frames} frames: {result['rss_mb']:.0f} MB", flush=True)
            src.unlink()
    for row in rows:
        row["height"], row["width"] = height, width
    streamed = [r for r in rows if r["label"] == ADAPT_LABELS["adapt-file"]]
    ratio = streamed[-1]["rss_mb"] / streamed[0]["rss_mb"]
    note = (
        f"Streamed peak RSS, {streamed[-1]['frames']} vs {streamed[0]['frames']} frames: "
        f"{ratio:.2f}x."
    )
    return memory_table(rows) + "\n\n" + note


if __name__ == "__main__":
    main()
