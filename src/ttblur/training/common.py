"""What every trainer needs besides its data, loss and evaluation.

- **Checkpoints** (:func:`save_checkpoint`, :func:`load_checkpoint`): the weights
  (``save_pretrained``: ``config.json`` + ``model.safetensors``), the optimizer moments as
  safetensors and a JSON state (step, losses, config, ...), published together
  (:class:`ttblur.io.atomic.StagedOutputs`: every file appears complete or not at all, interrupts
  are deferred during the renames, the JSON state is renamed last). A resumed run continues
  exactly: batch sampling is a pure function of the seed and the step in every trainer.
- **Resume** (:func:`resume_from`): whether ``out/checkpoint`` is continued, and the check that
  it was written with the same config (fields that only say how a run uses the machine, such
  as ``threads``, may change).
- **Learning rate** (:func:`cosine_lr`, :func:`cosine_schedule`): cosine annealing from ``lr``
  at step 0 to ``lr_min`` at the last step, as a ``torch.optim.lr_scheduler.LambdaLR``.
- **Threads** (:func:`torch_threads`) and **logs** (:class:`JsonLinesLog`).
- **Command line** (:class:`ConfigOptions`): one option per field of a pydantic config, named,
  typed, defaulted and documented from the field.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import re
import types
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Union, get_args, get_origin

import torch
from pydantic import BaseModel
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from ttblur.io.atomic import StagedOutputs

__all__ = [
    "ArgumentAdder",
    "CheckpointLayout",
    "ConfigOptions",
    "JsonLinesLog",
    "Pretrained",
    "add_run_arguments",
    "check_same_config",
    "cosine_lr",
    "cosine_schedule",
    "load_checkpoint",
    "optimizer_step",
    "read_state",
    "restore_optimizer",
    "resume_from",
    "save_checkpoint",
    "torch_threads",
]


# ---------------------------------------------------------------------- learning rate
def cosine_lr(
    step: int, total_steps: int, lr: float, lr_min: float, warmup_steps: int = 0
) -> float:
    """``lr_min + 0.5 (lr - lr_min) (1 + cos(pi * step / total_steps))``; flat after the end.

    With ``warmup_steps``, step ``s < warmup_steps`` gets that times ``(s + 1) / warmup_steps``
    (a linear warm-up; Adam's first steps are the least reliable)."""
    progress = min(step / max(total_steps, 1), 1.0)
    value = lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * progress))
    if step < warmup_steps:
        value *= (step + 1) / warmup_steps
    return value


def cosine_schedule(
    optimizer: torch.optim.Optimizer,
    *,
    lr: float,
    lr_min: float,
    total_steps: int,
    start_step: int = 0,
    warmup_steps: int = 0,
) -> LambdaLR:
    """Cosine annealing of every parameter group from ``lr`` to ``lr_min`` over ``total_steps``.

    Call ``scheduler.step()`` after each ``optimizer.step()``; before step ``s`` (counted from
    0) the groups' learning rate is :func:`cosine_lr` ``(s, total_steps, lr, lr_min)`` to float
    precision (``lr * (cosine_lr(s) / lr)``, one rounding).

    Args:
        optimizer: its groups' ``lr`` (and ``initial_lr``) are set.
        lr: learning rate at step 0; ``lr_min``: at ``total_steps``.
        total_steps: length of the schedule.
        start_step: the next step of a resumed run (0 for a new one).
        warmup_steps: linear warm-up length (:func:`cosine_lr`).
    """
    for group in optimizer.param_groups:
        group["initial_lr"] = lr
    return LambdaLR(
        optimizer,
        lambda step: cosine_lr(step, total_steps, lr, lr_min, warmup_steps) / lr,
        last_epoch=start_step - 1,
    )


def optimizer_step(
    loss: Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    grad_clip: float | None = None,
    scheduler: LambdaLR | None = None,
) -> None:
    """Back-propagate ``loss``, clip the gradient norm to ``grad_clip``, step, advance the lr."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


# ---------------------------------------------------------------------- run environment
@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the block (``None``: unchanged), then restore."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class JsonLinesLog:
    """Append-only ``log.jsonl``: one JSON object a line, flushed after each.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.jsonl"
        >>> with JsonLinesLog(path) as log:
        ...     log.write({"step": 1, "loss": 0.5})
        >>> path.read_text()
        '{"step": 1, "loss": 0.5}\\n'
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def write(self, entry: Mapping[str, Any]) -> None:
        """Append ``entry`` as one line."""
        self._file.write(json.dumps(dict(entry)) + "\n")
        self._file.flush()

    def mark_resumed(self, step: int) -> None:
        """Append ``{"step": step, "resumed": true}``: the run continues from its checkpoint at
        ``step``. Lines above the marker with a larger step came from the interrupted run (they
        were logged after its last checkpoint and are done again below), and ``"seconds"``
        counts from the marker."""
        self.write({"step": step, "resumed": True})

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> JsonLinesLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


# ---------------------------------------------------------------------- checkpoints
class Pretrained(Protocol):
    """A network with ``save_pretrained(folder)`` / ``from_pretrained(folder)``."""

    def save_pretrained(self, path: str | Path) -> Path: ...

    def state_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class CheckpointLayout:
    """File names of a checkpoint folder.

    Attributes:
        model_dir: sub-folder of the weights (``""``: the checkpoint folder itself).
        tensors: safetensors file of the optimizer moments (and any extra tensors).
        state: JSON file of the run state; it is written last and marks a checkpoint.
        prefix: key prefix of the optimizer tensors (``"<prefix><param index>.<name>"``).
    """

    model_dir: str = "model"
    tensors: str = "optimizer.safetensors"
    state: str = "state.json"
    prefix: str = ""

    def exists(self, folder: Path) -> bool:
        """Whether ``folder`` holds a checkpoint (its JSON state)."""
        return (folder / self.state).is_file()


def _optimizer_tensors(
    optimizer: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors ``<prefix><index>.<name>`` and the JSON part (groups, non-tensor state)."""
    state = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, Tensor):
                value = value.detach().cpu()
                if name == "step":  # stored as (1,) float32, the format of earlier checkpoints
                    value = value.reshape(1).float()
                tensors[f"{prefix}{index}.{name}"] = value.contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = float(value)
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    tensors: Mapping[str, Tensor],
    meta: Mapping[str, Any] | None = None,
    *,
    prefix: str = "",
) -> dict[str, Tensor]:
    """Load the per-parameter state saved by :func:`save_checkpoint` into ``optimizer``.

    Args:
        optimizer: built over the same parameters, in the same order, as the saved one.
        tensors: the checkpoint's tensors; keys ``<prefix><index>.<name>``.
        meta: the state's ``"optimizer"`` entry (parameter groups, non-tensor state); absent
            in checkpoints of earlier versions, whose groups are then the optimizer's own.
        prefix: key prefix of the optimizer tensors.

    Returns:
        the tensors that are not optimizer state (e.g. a generator state).
    """
    meta = meta or {}
    state: dict[int, dict[str, Any]] = {}
    others: dict[str, Tensor] = {}
    for key, value in tensors.items():
        index, _, name = key[len(prefix) :].partition(".")
        if not key.startswith(prefix) or not index.isdigit() or not name:
            others[key] = value
            continue
        state.setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
    for index, entries in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    groups = meta.get("param_groups") or optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return others


def save_checkpoint(
    folder: Path,
    model: Pretrained,
    optimizer: torch.optim.Optimizer,
    state: Mapping[str, Any],
    *,
    layout: CheckpointLayout | None = None,
    tensors: Mapping[str, Tensor] | None = None,
) -> None:
    """Write a resumable checkpoint: weights, optimizer state, JSON ``state``, all or nothing.

    Args:
        folder: the checkpoint folder (created).
        model: saved with ``save_pretrained`` into ``folder / layout.model_dir``.
        optimizer: its per-parameter tensors go to ``layout.tensors``, its groups to the
            ``"optimizer"`` entry of the JSON state.
        state: JSON-serialisable run state (step, losses, config, ...).
        layout: file names (default :class:`CheckpointLayout()`).
        tensors: extra tensors stored beside the optimizer's (returned by
            :func:`load_checkpoint`).
    """
    layout = layout or CheckpointLayout()
    folder.mkdir(parents=True, exist_ok=True)
    moments, meta = _optimizer_tensors(optimizer, layout.prefix)
    moments.update(tensors or {})
    payload = {**state, "optimizer": meta}
    with StagedOutputs() as staged:
        model.save_pretrained(staged.folder(folder / layout.model_dir))
        stage = staged.folder(folder)  # published after the weights ...
        save_file(moments, str(stage / layout.tensors), metadata={"format": "pt"})
        stage = staged.folder(folder)  # ... and the state last
        (stage / layout.state).write_text(json.dumps(payload) + "\n", encoding="utf-8")


def read_state(folder: Path, layout: CheckpointLayout | None = None) -> dict[str, Any]:
    """The JSON state of the checkpoint in ``folder``."""
    layout = layout or CheckpointLayout()
    state: dict[str, Any] = json.loads((folder / layout.state).read_text(encoding="utf-8"))
    return state


def load_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    layout: CheckpointLayout | None = None,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Restore ``model`` and ``optimizer`` from a :func:`save_checkpoint` folder.

    Returns:
        the JSON state and the extra tensors.
    """
    layout = layout or CheckpointLayout()
    saved = type(model).from_pretrained(folder / layout.model_dir)  # type: ignore[attr-defined]
    model.load_state_dict(saved.state_dict())
    state = read_state(folder, layout)
    tensors = load_file(str(folder / layout.tensors))
    others = restore_optimizer(optimizer, tensors, state.get("optimizer"), prefix=layout.prefix)
    return state, others


def check_same_config(
    saved: Mapping[str, Any],
    config: BaseModel,
    *,
    where: Path,
    runtime: Collection[str] = (),
) -> None:
    """Raise ``ValueError`` unless ``saved`` (a config as JSON) equals ``config``.

    Fields named in ``runtime`` are not compared: they say how a run uses the machine, not what
    it computes (a run may resume with another thread count; float sums may then differ in
    the last bits).
    """
    exclude = set(runtime)
    previous = type(config).model_validate(dict(saved)).model_dump(mode="json", exclude=exclude)
    current = config.model_dump(mode="json", exclude=exclude)
    if previous != current:
        changed = sorted(k for k in current if previous.get(k) != current[k])
        raise ValueError(
            f"{where} was written with a different config (fields {changed}); "
            "use resume=False (--no-resume) or another out_dir"
        )


def resume_from(
    checkpoint: Path,
    config: BaseModel,
    *,
    resume: bool,
    overwrite: bool,
    runtime: Collection[str] = ("threads",),
    layout: CheckpointLayout | None = None,
) -> bool:
    """Whether a run continues ``checkpoint``; checks its config when it does.

    Args:
        checkpoint: the run's checkpoint folder.
        config: the run's config; a continued checkpoint must hold the same (but ``runtime``).
        resume: continue an existing checkpoint.
        overwrite: without ``resume``, start over (``True``) or refuse (``False``) when a
            checkpoint exists, so that a finished run is never overwritten by accident.
        runtime: config fields a resumed run may change (see :func:`check_same_config`).
        layout: file names of the checkpoint.

    Raises:
        ValueError: a checkpoint exists and neither ``resume`` nor ``overwrite`` is set, or it
            holds another config.
    """
    layout = layout or CheckpointLayout()
    if not layout.exists(checkpoint):
        return False
    if not resume:
        if overwrite:
            return False
        raise ValueError(f"{checkpoint} exists: pass resume=True (--resume) or another out_dir")
    saved = read_state(checkpoint, layout)["config"]
    check_same_config(saved, config, where=checkpoint, runtime=runtime)
    return True


# ---------------------------------------------------------------------- command line
def add_run_arguments(
    parser: ArgumentAdder, *, out: str | None, resume: bool, export: bool = True
) -> None:
    """The options of a training run that are not config fields.

    ``--out`` (the run folder; required when ``out`` is ``None``), ``--resume`` /
    ``--no-resume`` (default ``resume``), ``--no-progress`` and, with ``export``, ``--export``
    (a folder the final weights are also saved to).
    """
    if out is None:
        parser.add_argument("--out", required=True, help="run folder (created / resumed)")
    else:
        parser.add_argument("--out", default=out, help="run folder (default: %(default)s)")
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=resume,
        help="continue the checkpoint in --out (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    if export:
        parser.add_argument("--export", default=None, help="also save the final weights here")


def _field_docs(model: type[BaseModel]) -> dict[str, str]:
    """``name: text`` entries of the ``Attributes:`` section of ``model``'s docstring."""
    doc = inspect.getdoc(model) or ""
    section = re.search(r"^Attributes:\n((?:[ \t]+.*\n?|\n)+)", doc, flags=re.M)
    docs: dict[str, str] = {}
    if section is None:
        return docs
    name = None
    for line in section[1].splitlines():
        entry = re.match(r"^ {4}(\w+): (.*)$", line)
        if entry:
            name = entry[1]
            docs[name] = entry[2]
        elif name is not None and line.strip():
            docs[name] += " " + line.strip()
    plain = {k: re.sub(r":\w+:`~?([^`]+)`", r"\1", v) for k, v in docs.items()}  # roles
    return {k: re.sub(r"``(.*?)``", r"\1", v) for k, v in plain.items()}


class ArgumentAdder(Protocol):
    """An ``argparse`` parser or argument group."""

    def add_argument(self, *flags: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class _Option:
    """One command-line option of a config field."""

    field: str
    flags: tuple[str, ...]
    kwargs: dict[str, Any]
    none_if_empty: bool


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(annotation, False)``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(annotation)):
            return args[0], True
    return annotation, False


def _argparse_kwargs(name: str, annotation: Any, default: Any) -> tuple[dict[str, Any], bool]:
    """argparse keywords for a field type; raises ``TypeError`` for nested models."""
    kind, optional = _unwrap_optional(annotation)
    origin = get_origin(kind)
    if origin is Literal:
        choices = list(get_args(kind))
        return {"choices": choices, "type": type(choices[0])}, False
    if origin is tuple:
        items = get_args(kind)
        if len(items) == 2 and items[1] is Ellipsis:
            return {"type": items[0], "nargs": "+"}, False
        if items and all(item is items[0] for item in items):
            return {"type": items[0], "nargs": len(items)}, False
    if origin is list:
        (item,) = get_args(kind)
        return {"type": item, "nargs": "*" if optional else "+"}, optional
    if kind in (int, float, str):
        return {"type": kind}, False
    raise TypeError(f"no command-line option for field {name!r} of type {annotation!r}")


class ConfigOptions:
    """Command-line options derived from the fields of a pydantic config.

    Field ``foo_bar`` becomes ``--foo-bar`` with the field's type (``Literal`` fields give
    choices, fixed-length tuples ``nargs=N``, lists ``nargs="+"``, optional lists ``nargs="*"``
    where no value means ``None``), its default and, as help, its ``description`` or its entry
    in the ``Attributes:`` section of the class docstring. A ``bool`` field defaulting to
    ``False`` is a ``--foo-bar`` switch, one defaulting to ``True`` a ``--no-foo-bar`` switch.

    Args:
        config: the pydantic model class.
        include: fields to map (default: all but ``exclude``).
        exclude: fields left to the caller (e.g. nested configs).
        flags: extra option strings of a field, e.g. ``{"threads": ["--num-threads"]}`` to
            keep an older name working.

    Example:
        >>> from pydantic import BaseModel
        >>> class Cfg(BaseModel):
        ...     '''Attributes:
        ...         batch_size: clips per step.
        ...     '''
        ...     batch_size: int = 8
        ...     fast: bool = False
        >>> options = ConfigOptions(Cfg)
        >>> parser = argparse.ArgumentParser()
        >>> options.add_to(parser)
        >>> Cfg(**options.values(parser.parse_args(["--batch-size", "4", "--fast"])))
        Cfg(batch_size=4, fast=True)
    """

    def __init__(
        self,
        config: type[BaseModel],
        *,
        include: Sequence[str] | None = None,
        exclude: Collection[str] = (),
        flags: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.config = config
        fields = config.model_fields
        names = list(include) if include is not None else list(fields)
        unknown = sorted(set(names) - set(fields))
        if unknown:
            raise ValueError(f"{config.__name__} has no fields {unknown}")
        docs = _field_docs(config)
        self.options: list[_Option] = []
        for name in names:
            if name in exclude:
                continue
            info = fields[name]
            default = info.get_default(call_default_factory=True)
            help_text = (info.description or docs.get(name, "")).replace("%", "%%")
            option = name.replace("_", "-")
            extra = tuple((flags or {}).get(name, ()))
            if info.annotation is bool:
                switch = f"--no-{option}" if default else f"--{option}"
                action = "store_false" if default else "store_true"
                kwargs: dict[str, Any] = {"action": action, "dest": name, "help": help_text}
                self.options.append(_Option(name, (switch, *extra), kwargs, False))
                continue
            kwargs, none_if_empty = _argparse_kwargs(name, info.annotation, default)
            if isinstance(default, tuple):
                default = list(default)
            kwargs.update(dest=name, default=default, help=f"{help_text} (default: %(default)s)")
            self.options.append(_Option(name, (f"--{option}", *extra), kwargs, none_if_empty))

    @property
    def fields(self) -> list[str]:
        """The fields that have an option."""
        return [option.field for option in self.options]

    def add_to(self, parser: ArgumentAdder, *, skip: Collection[str] = ()) -> None:
        """Add the options to ``parser`` (or an argument group).

        Args:
            parser: where the options go.
            skip: fields whose option another :class:`ConfigOptions` already added (same
                name, same default); :meth:`values` still reads them.
        """
        for option in self.options:
            if option.field not in skip:
                parser.add_argument(*option.flags, **option.kwargs)

    def values(self, args: argparse.Namespace) -> dict[str, Any]:
        """The fields' values parsed into ``args`` (keyword arguments of the config)."""
        values: dict[str, Any] = {}
        for option in self.options:
            value = getattr(args, option.field)
            if option.none_if_empty and value is not None and not value:
                value = None
            values[option.field] = value
        return values
