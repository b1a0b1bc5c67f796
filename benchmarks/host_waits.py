"""How often ``ttblur.adapt`` makes the host wait for the run device, stage by stage and call
site by call site, against the number of patches.

A GPU runs its queue on its own until the host needs something from it. These tensor calls
make the host wait for the device's queue to drain (each is a host round trip):

- reading a value: ``.item()``, ``.tolist()``, ``.numpy()``, ``bool()`` / ``float()`` /
  ``int()`` / ``index()`` of a tensor;
- a copy between host and device without ``non_blocking``: ``.cpu()``, ``.cuda()``,
  ``.to(device)``, ``.copy_()`` across devices, ``torch.tensor`` / ``torch.as_tensor`` made
  on the device (PyTorch synchronises the stream after a blocking copy either way);
- an output whose size depends on the values: ``nonzero``, ``argwhere``, ``unique``,
  ``masked_select``, one-argument ``where``, indexing with a boolean tensor.

Each such call is counted through a :class:`torch.overrides.TorchFunctionMode` and charged
to the innermost frame of the ``ttblur`` package on the stack (file, line, function) and to
the stage ``adapt`` was in (from its stage callback: stages run in the order setup + rsdm,
dbcgm, synthesis, pairs, guard + fine-tuning; the guard's scoring runs inside fine-tuning).

**On a CUDA run** only the calls that touch a CUDA tensor are counted: the host waits at each
(a wait hidden inside another operator, e.g. ``repeat_interleave`` without its output size,
is not seen). **On a CPU run** nothing waits; every such call is counted whatever the tensor (a
``.to(device)`` with an explicit target counts, ``.copy_()`` never does): an upper bound that
names the call sites, including the ones on tensors that a GPU run keeps on the host by design.

The same clip is adapted twice, with ``rsdm.max_patches`` at each value of ``--max-patches``
(one fine-tuning epoch by default), so the last column, waits per added patch, tells how a
stage scales: about ``1 / batch`` for a wait per batch, 1 or more for a wait per patch.

Usage::

    python benchmarks/host_waits.py                     # 24x256x320 clip, patch 64, 8 vs 32
    python benchmarks/host_waits.py --device cuda --clip 20x720x1280 --patch-size 256
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from cost import PRESET, SEED, make_clip, parse_dims
from torch import Tensor
from torch.overrides import TorchFunctionMode

import ttblur
from ttblur.inference import resolve_device

#: Calls that read a tensor's value on the host.
VALUE_READS: dict[Callable[..., Any], str] = {
    Tensor.item: "item",
    Tensor.tolist: "tolist",
    Tensor.numpy: "numpy",
    Tensor.__bool__: "bool",
    Tensor.__float__: "float",
    Tensor.__int__: "int",
    Tensor.__index__: "index",
}
#: Calls whose output size depends on the values (the host waits to learn it).
DATA_SIZED: dict[Callable[..., Any], str] = {
    torch.nonzero: "nonzero",
    Tensor.nonzero: "nonzero",
    torch.argwhere: "argwhere",
    Tensor.argwhere: "argwhere",
    torch.unique: "unique",
    Tensor.unique: "unique",
    torch.masked_select: "masked_select",
    Tensor.masked_select: "masked_select",
}
#: Stage running after each stage callback: ``adapt``'s stages in their order.
NEXT_STAGE = {
    None: "setup + rsdm",
    "rsdm": "dbcgm",
    "dbcgm": "synthesis",
    "synthesis": "pairs",
    "pairs": "guard + finetune",
    "finetune": "wrap-up",
}
STAGES = tuple(NEXT_STAGE.values())
#: The ``ttblur`` package's folder: frames of files under it are call sites.
PACKAGE = os.path.dirname(ttblur.__file__) + os.sep


def _device_of(value: Any) -> torch.device | None:
    if isinstance(value, Tensor):
        return value.device
    if isinstance(value, torch.device):
        return value
    if isinstance(value, str):
        try:
            return torch.device(value)
        except RuntimeError:  # a dtype or memory-format name is not a device
            return None
    return None


class WaitCounter(TorchFunctionMode):
    """Count the tensor calls that make the host wait for ``device`` (see the module doc).

    Args:
        device: the run device; ``cpu`` counts every such call (an upper bound).

    Attributes:
        sites: ``(stage, site, kind) -> calls``; ``site`` is ``"path.py:line (function)"``
            of the innermost ``ttblur`` frame, ``"(outside ttblur)"`` when there is none.
        stage: the stage charged now (set by :meth:`stage_done`).
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.sites: Counter[tuple[str, str, str]] = Counter()
        self.stage = NEXT_STAGE[None]

    def stage_done(self, stage: str, produced: Mapping[str, Any]) -> None:
        """``adapt``'s stage callback: later calls are charged to the next stage."""
        self.stage = NEXT_STAGE.get(stage, stage)

    def _watched(self, value: Any) -> bool:
        device = _device_of(value)
        if device is None:
            return False
        return self.device.type == "cpu" or device.type == self.device.type

    def _copies(self, source: Tensor, targets: Sequence[Any]) -> bool:
        for target in targets:
            device = _device_of(target)
            if device is None:
                continue
            if self.device.type == "cpu":
                return True
            if device.type != source.device.type and self.device.type in (
                device.type,
                source.device.type,
            ):
                return True
        return False

    def kind(
        self, func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> str | None:
        """The wait ``func(*args, **kwargs)`` makes the host do, ``None`` when it makes none."""
        first = args[0] if args else None
        name = VALUE_READS.get(func) or DATA_SIZED.get(func)
        if name is not None:
            return name if self._watched(first) else None
        if func is Tensor.cpu:
            return "cpu" if self._watched(first) else None
        if func is Tensor.cuda and isinstance(first, Tensor):
            return "cuda" if self._copies(first, [torch.device("cuda")]) else None
        # non_blocking=True copies are queued like kernels: the host does not wait for them.
        blocking = not kwargs.get("non_blocking", False) and not any(a is True for a in args[1:])
        if func is Tensor.to and isinstance(first, Tensor) and blocking:
            return "to" if self._copies(first, [*args[1:], kwargs.get("device")]) else None
        if func is Tensor.copy_ and isinstance(first, Tensor) and len(args) > 1 and blocking:
            source = args[1]
            crosses = isinstance(source, Tensor) and source.device.type != first.device.type
            return "copy_" if crosses and self.device.type != "cpu" else None
        if func in (torch.tensor, torch.as_tensor):
            device = _device_of(kwargs.get("device"))
            if device is not None and (self.device.type == "cpu" or device.type != "cpu"):
                return "tensor(device=)"
            return None
        if func is torch.where and len(args) == 1 and not kwargs:
            return "where" if self._watched(first) else None
        if func is Tensor.__getitem__ and len(args) > 1:
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            masks = [i for i in index if isinstance(i, Tensor) and i.dtype == torch.bool]
            return "bool index" if any(self._watched(m) for m in masks) else None
        return None

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = self.kind(func, args, kwargs)
        if name is not None:
            self.sites[(self.stage, _site(), name)] += 1
        return func(*args, **kwargs)


def _site() -> str:
    for frame in reversed(traceback.extract_stack()[:-2]):
        if frame.filename.startswith(PACKAGE):
            path = Path(frame.filename).relative_to(PACKAGE).as_posix()
            return f"{path}:{frame.lineno} ({frame.name})"
    return "(outside ttblur)"


@dataclass
class Run:
    """One counted adaptation."""

    max_patches: int
    patches: int
    train_pairs: int
    steps: int
    seconds: float
    sites: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def by_stage(self) -> Counter[str]:
        """Waits per stage."""
        totals: Counter[str] = Counter()
        for (stage, _, _), calls in self.sites.items():
            totals[stage] += calls
        return totals

    def by_site(self) -> Counter[tuple[str, str]]:
        """Waits per ``(site, kind)``, all stages together."""
        totals: Counter[tuple[str, str]] = Counter()
        for (_, site, kind), calls in self.sites.items():
            totals[(site, kind)] += calls
        return totals


def count(clip: Tensor, config: dict[str, Any], max_patches: int, device: torch.device) -> Run:
    """Adapt the shipped reference network to ``clip`` under a :class:`WaitCounter`."""
    cfg = {**config, "rsdm": {**config.get("rsdm", {}), "max_patches": max_patches}}
    pipeline = ttblur.AdaptPipeline.from_config(cfg, device=device)
    model = ttblur.reference_model()
    counter = WaitCounter(pipeline.device)
    started = time.perf_counter()
    with counter:
        out = pipeline(model, clip, progress=False, callback=counter.stage_done)
    seconds = time.perf_counter() - started
    report = out.report
    batch = pipeline.config.finetune.batch_size
    steps = math.ceil(report.num_train_pairs / batch) * len(report.train_loss)
    return Run(
        max_patches, len(report.patches), report.num_train_pairs, steps, seconds, counter.sites
    )


def _per_patch(first: Run, second: Run, a: int, b: int) -> str:
    if second.patches == first.patches:
        return "-"
    return f"{(b - a) / (second.patches - first.patches):.2f}"


def format_stages(first: Run, second: Run) -> str:
    """Markdown: waits per stage for both runs and per added patch."""
    a, b = first.by_stage(), second.by_stage()
    lines = [
        f"| stage | waits, {first.patches} patches | waits, {second.patches} patches | "
        "per added patch |",
        "|---|---:|---:|---:|",
    ]
    for stage in STAGES:
        if a[stage] or b[stage]:
            per = _per_patch(first, second, a[stage], b[stage])
            lines.append(f"| {stage} | {a[stage]} | {b[stage]} | {per} |")
    total_a, total_b = sum(a.values()), sum(b.values())
    lines.append(
        f"| **all** | {total_a} | {total_b} | {_per_patch(first, second, total_a, total_b)} |"
    )
    return "\n".join(lines)


def format_sites(first: Run, second: Run, top: int) -> str:
    """Markdown: the ``top`` call sites with the most waits per added patch (then the most)."""
    a, b = first.by_site(), second.by_site()
    keys = sorted(set(a) | set(b), key=lambda k: (-(b[k] - a[k]), -b[k], k))[:top]
    lines = [
        f"| call site | kind | waits, {first.patches} patches | waits, {second.patches} patches "
        "| per added patch |",
        "|---|---|---:|---:|---:|",
    ]
    for site, kind in keys:
        per = _per_patch(first, second, a[(site, kind)], b[(site, kind)])
        lines.append(f"| `{site}` | {kind} | {a[(site, kind)]} | {b[(site, kind)]} | {per} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clip", type=lambda t: parse_dims(t, 3), default=(24, 256, 320), help="TxHxW"
    )
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--max-patches", type=int, nargs=2, default=(8, 32), metavar=("N1", "N2"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--flow", default=None, help="dbcgm.flow (default: the default config's)")
    parser.add_argument("--device", default=None, help="run device (default: CUDA if any)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=20, help="call sites listed")
    args = parser.parse_args(argv)
    if not 1 <= args.max_patches[0] < args.max_patches[1]:
        parser.error("--max-patches needs 1 <= N1 < N2")
    return args


def main(argv: Sequence[str] | None = None) -> str:
    """Run, print and return the report."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config: dict[str, Any] = {
        "rsdm": {"patch_size": args.patch_size},
        "finetune": {"epochs": args.epochs},
    }
    if args.flow is not None:
        config["dbcgm"] = {"flow": args.flow}
    device = resolve_device(args.device)
    clip = make_clip(*args.clip)
    first, second = (count(clip, config, n, device) for n in args.max_patches)
    words = list(sys.argv[1:] if argv is None else argv)
    mode = (
        "waits on the device (exact)"
        if device.type != "cpu"
        else "every such call (CPU run: an upper bound, see the module doc)"
    )
    t, h, w = args.clip
    report = "\n".join(
        [
            f"`python benchmarks/host_waits.py {shlex.join(words)}`".replace(" `", "`"),
            f"device {device}, torch {torch.__version__}; counted: {mode}",
            f"clip {t}x{h}x{w} ({PRESET}, seed {SEED}), patch {args.patch_size}, "
            f"epochs {args.epochs}; patches {first.patches} / {second.patches}, train pairs "
            f"{first.train_pairs} / {second.train_pairs}, fine-tuning steps {first.steps} / "
            f"{second.steps}, adapt {first.seconds:.1f} s / {second.seconds:.1f} s",
            "",
            format_stages(first, second),
            "",
            format_sites(first, second, args.top),
        ]
    )
    print(report)
    return report


if __name__ == "__main__":
    main()
