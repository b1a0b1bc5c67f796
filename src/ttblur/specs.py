"""How a deblurring network is called: :class:`ModelSpec` and the built-in specs.

Video deblurring networks disagree on almost every calling convention: tensor layout, value
range, colour order, how many border frames they consume, the spatial multiple they need,
whether they accept a batch, whether their output keeps the batch dimension. A
:class:`ModelSpec` writes one network's conventions down explicitly; :func:`ttblur.deblur` and
:func:`ttblur.adapt` use it to feed any network with ttblur's own data contract, a video
``(T, 3, H, W)`` float32 RGB in ``[0, 1]``.

The conventions of the built-in specs were read from the official repositories; see
``docs/model-specs.md`` for the file each value comes from.

Example:
    >>> from ttblur.specs import get_spec
    >>> spec = get_spec("estrnn")
    >>> spec.output_frames(20)   # 2 past + 2 future frames are consumed
    16
    >>> spec.input_range
    (-0.5, 0.5)
"""

from __future__ import annotations

import itertools
import math
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn
from torch.nn.parameter import is_lazy

from ttblur._state import ModuleSnapshot
from ttblur.registry import Registry

__all__ = [
    "SPECS",
    "ModelSpec",
    "check_materialised",
    "check_model",
    "declared_spec",
    "describe_error",
    "eval_mode",
    "get_spec",
    "infer_spec",
    "kept_modes",
    "list_specs",
    "model_device",
    "model_dtype",
    "pad_to_multiple",
    "register_spec",
]


class ModelSpec(BaseModel):
    """Calling convention of one deblurring network (immutable, JSON-serialisable).

    ttblur always hands clips around as ``(B, T, 3, H, W)`` float32 RGB in ``[0, 1]``. The
    spec says how to turn such a clip into the network's input and the network's output back
    into ``(B, T_out, 3, H, W)`` RGB in ``[0, 1]``.

    Attributes:
        name: registry name (lower case), e.g. ``"estrnn"``.
        layout: ``"BTCHW"``: the network takes a clip ``(B, T, 3, H, W)`` (video networks);
            ``"BCHW"``: the network takes single frames ``(N, 3, H, W)`` (image networks,
            frame-wise; ``past_frames`` and ``future_frames`` must then be 0).
        input_range: ``(low, high)``: a value ``v`` in ``[0, 1]`` is given to the network as
            ``low + v * (high - low)``; outputs are mapped back with the inverse map. ESTRNN and
            MMP-RNN use ``(-0.5, 0.5)`` (their ``centralize`` + ``normalize`` options).
        channel_order: ``"RGB"`` or ``"BGR"``: colour order the network was trained with
            (ESTRNN's own data code reads frames with OpenCV and never converts to RGB).
        past_frames: frames consumed before the first output frame: output frame ``k`` of a
            clip corresponds to input frame ``past_frames + k``.
        future_frames: frames consumed after the last output frame. A clip of ``T`` frames
            gives ``T - past_frames - future_frames`` output frames.
        clip_length: frames per forward pass used by :func:`ttblur.deblur` (sliding windows
            overlap by ``past_frames + future_frames``). For ``"BCHW"`` it is the number of
            frames batched into one forward pass.
        multiple: the network needs ``H`` and ``W`` to be multiples of this; inputs are padded
            up to it and outputs cropped back.
        pad_mode: how frames are padded spatially: ``"reflect"`` or ``"replicate"``
            (``"reflect"`` falls back to ``"replicate"`` for frames too small to reflect).
        max_batch: largest batch the network accepts (Shift-Net: 1); larger batches are split
            into several forward passes. ``None``: no limit. For ``"BCHW"`` it counts frames.
        output_has_batch: ``False`` when the network drops the batch dimension of its output
            (Shift-Net returns ``(T_out, 3, H, W)`` for an input ``(1, T, 3, H, W)``).
        output_index: when the network returns a tuple or list, the position of the restored
            clip in it; ``None`` means the network returns a tensor (a tuple is an error).
        keep_frozen_in_eval: during fine-tuning, submodules whose parameters are all frozen
            (``requires_grad=False``) stay in eval mode (MMP-RNN's motion-magnitude prior,
            which contains BatchNorm layers).
        device_attribute: name of an attribute holding a ``torch.device`` that the network
            uses to place internal tensors (ESTRNN and MMP-RNN hard-code
            ``self.device = torch.device('cuda')`` for their hidden state). :func:`ttblur.deblur`
            and :func:`ttblur.adapt` set it to the run device for the duration of the call.
        description: one line for humans (where the conventions come from).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    layout: Literal["BTCHW", "BCHW"] = "BTCHW"
    input_range: tuple[float, float] = (0.0, 1.0)
    channel_order: Literal["RGB", "BGR"] = "RGB"
    past_frames: int = Field(default=0, ge=0)
    future_frames: int = Field(default=0, ge=0)
    clip_length: int = Field(default=1, gt=0)
    multiple: int = Field(default=1, gt=0)
    pad_mode: Literal["reflect", "replicate"] = "reflect"
    max_batch: int | None = Field(default=None, gt=0)
    output_has_batch: bool = True
    output_index: int | None = Field(default=None, ge=0)
    keep_frozen_in_eval: bool = False
    device_attribute: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        low, high = self.input_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"input_range must be finite with low < high, got {self.input_range}")
        if self.layout == "BCHW" and (self.past_frames or self.future_frames):
            raise ValueError("a BCHW (frame-wise) spec cannot consume border frames")
        if self.clip_length < self.context + 1:
            raise ValueError(
                f"clip_length ({self.clip_length}) must be >= past_frames + future_frames + 1 "
                f"({self.context + 1})"
            )
        if self.device_attribute is not None and not self.device_attribute.isidentifier():
            raise ValueError(
                f"device_attribute must be an identifier, got {self.device_attribute!r}"
            )
        return self

    # ------------------------------------------------------------------ frame bookkeeping
    @property
    def context(self) -> int:
        """Frames consumed at the borders of a clip: ``past_frames + future_frames``."""
        return self.past_frames + self.future_frames

    @property
    def min_frames(self) -> int:
        """Fewest frames a forward pass accepts: ``past_frames + future_frames + 1``."""
        return self.context + 1

    def output_frames(self, num_frames: int) -> int:
        """Number of output frames for a clip of ``num_frames`` input frames.

        Raises:
            ValueError: ``num_frames`` is smaller than :attr:`min_frames`.
        """
        if num_frames < self.min_frames:
            raise ValueError(
                f"spec={self.name!r} needs at least {self.min_frames} frames per clip "
                f"(past {self.past_frames} + future {self.future_frames} + 1), got {num_frames}"
            )
        return num_frames - self.context

    def replace(self, **changes: Any) -> ModelSpec:
        """A validated copy with some fields changed, e.g. ``spec.replace(clip_length=8)``."""
        return type(self).model_validate({**self.model_dump(), **changes})

    # ------------------------------------------------------------------ value conversions
    def to_model_range(self, x: Tensor) -> Tensor:
        """Map values from ``[0, 1]`` to :attr:`input_range` and reorder colours if BGR.

        Args:
            x: ``(..., 3, H, W)`` RGB in ``[0, 1]``.

        Returns:
            ``(..., 3, H, W)`` in the network's range and colour order.
        """
        low, high = self.input_range
        if self.channel_order == "BGR":
            x = x.flip(-3)
        if (low, high) == (0.0, 1.0):
            return x
        return x * (high - low) + low

    def from_model_range(self, y: Tensor) -> Tensor:
        """Inverse of :meth:`to_model_range` (no clamping, so gradients flow).

        Args:
            y: ``(..., 3, H, W)`` in the network's range and colour order.

        Returns:
            ``(..., 3, H, W)`` RGB, nominally in ``[0, 1]``.
        """
        low, high = self.input_range
        if (low, high) != (0.0, 1.0):
            y = (y - low) / (high - low)
        if self.channel_order == "BGR":
            y = y.flip(-3)
        return y

    def to_model_input(self, clip: Tensor) -> Tensor:
        """Turn a clip ``(B, T, 3, H, W)`` RGB in ``[0, 1]`` into the network's input.

        Returns:
            ``(B, T, 3, H, W)`` for ``"BTCHW"``, ``(B * T, 3, H, W)`` for ``"BCHW"``, in
            :attr:`input_range` and :attr:`channel_order`; never a view of ``clip``, so a
            network that edits its input in place (``x.mul_(...)``) cannot change frames
            ttblur keeps (the guard scores the same windows every epoch).
        """
        _check_clip(clip, self)
        x = self.to_model_range(clip)
        if self.layout == "BCHW":
            x = x.reshape(-1, *x.shape[2:])
        if x.untyped_storage().data_ptr() == clip.untyped_storage().data_ptr():
            x = x.clone()
        return x

    def from_model_output(self, out: Any, batch: int, num_frames: int) -> Tensor:
        """Turn a network output back into ``(B, T_out, 3, H, W)`` RGB (unclamped).

        Args:
            out: what the network returned for a clip of ``batch`` x ``num_frames`` frames.
            batch: ``B`` of the input clip.
            num_frames: ``T`` of the input clip.

        Raises:
            ValueError: the output does not have the shape the spec promises; the message names
                ``spec=`` and both shapes.
        """
        if isinstance(out, (tuple, list)):
            if self.output_index is None or self.output_index >= len(out):
                raise ValueError(
                    f"the model returned a {type(out).__name__} of {len(out)} items; "
                    f"spec={self.name!r} has output_index={self.output_index}: pass a spec with "
                    "output_index set to the position of the restored clip"
                )
            out = out[self.output_index]
        if not isinstance(out, Tensor):
            raise ValueError(
                f"the model returned {type(out).__name__}, not a tensor (spec={self.name!r})"
            )
        t_out = self.output_frames(num_frames)
        if self.layout == "BCHW":
            if out.ndim != 4 or out.shape[0] != batch * num_frames or out.shape[1] != 3:
                raise ValueError(
                    f"model output shape {tuple(out.shape)} does not fit spec={self.name!r}: "
                    f"expected ({batch * num_frames}, 3, H, W) for a frame batch"
                )
            out = out.reshape(batch, num_frames, *out.shape[1:])
        else:
            if not self.output_has_batch:
                if out.ndim != 4:
                    raise ValueError(
                        f"model output shape {tuple(out.shape)} does not fit spec={self.name!r}: "
                        f"expected ({t_out}, 3, H, W) without a batch dimension"
                    )
                out = out.unsqueeze(0)
            if out.ndim != 5 or out.shape[:3] != (batch, t_out, 3):
                raise ValueError(
                    f"model output shape {tuple(out.shape)} does not fit spec={self.name!r}: "
                    f"expected ({batch}, {t_out}, 3, H, W) for an input of {num_frames} frames "
                    f"(past_frames={self.past_frames}, future_frames={self.future_frames})"
                )
        return self.from_model_range(out)

    # ------------------------------------------------------------------ calling
    def call(self, model: nn.Module, clip: Tensor, *, pad: bool = True) -> Tensor:
        """Run ``model`` on a clip with this spec's conventions.

        Splits the batch into chunks of :attr:`max_batch`, pads ``H, W`` to :attr:`multiple`
        (and crops back) when ``pad`` is true, maps values and colours both ways. Gradients
        flow (no ``no_grad`` here: fine-tuning uses this too); the module's train/eval mode is
        not touched.

        Args:
            model: the network, already on ``clip``'s device.
            clip: ``(B, T, 3, H, W)`` float RGB in ``[0, 1]``, ``T >= past + future + 1``.
            pad: pad to :attr:`multiple`; with ``pad=False``, ``H`` and ``W`` must already be
                multiples.

        Returns:
            ``(B, T - past_frames - future_frames, 3, H, W)`` RGB, nominally in ``[0, 1]``
            (not clamped).

        Raises:
            ValueError: wrong clip shape, or the model's output does not fit the spec.
        """
        _check_clip(clip, self)
        batch, num_frames, _, height, width = clip.shape
        if pad:
            clip = pad_to_multiple(clip, self.multiple, mode=self.pad_mode)
        elif height % self.multiple or width % self.multiple:
            raise ValueError(
                f"spec={self.name!r} needs H and W to be multiples of {self.multiple}, "
                f"got {height}x{width}; use pad=True"
            )
        # Work out how many clips go into one forward pass.
        if self.max_batch is None:
            chunk = batch
        elif self.layout == "BCHW":
            chunk = max(1, self.max_batch // num_frames)
        else:
            chunk = self.max_batch
        outputs = []
        for start in range(0, batch, chunk):
            part = clip[start : start + chunk]
            if self.layout == "BCHW" and self.max_batch is not None:
                frames = self.to_model_input(part)
                pieces = [
                    model(frames[i : i + self.max_batch])
                    for i in range(0, frames.shape[0], self.max_batch)
                ]
                raw: Any = torch.cat([_pick(p, self) for p in pieces], dim=0)
            else:
                raw = model(self.to_model_input(part))
            outputs.append(self.from_model_output(raw, part.shape[0], num_frames))
        out = torch.cat(outputs, dim=0) if len(outputs) > 1 else outputs[0]
        if out.shape[-2:] != clip.shape[-2:]:
            raise ValueError(
                f"model output frames are {tuple(out.shape[-2:])}, input frames "
                f"{tuple(clip.shape[-2:])}: spec={self.name!r} expects a same-size output"
            )
        return out[..., :height, :width]

    @contextmanager
    def on_device(self, model: nn.Module, device: torch.device | str) -> Iterator[None]:
        """Context in which :attr:`device_attribute` of ``model`` (and of its submodules that
        have it) holds ``device``; the old values are restored on exit. No-op when the spec has
        no device attribute or the model does not have it."""
        if self.device_attribute is None:
            yield
            return
        name = self.device_attribute
        target = torch.device(device)
        saved: list[tuple[nn.Module, Any]] = []
        for module in model.modules():
            value = module.__dict__.get(name, None)
            if isinstance(value, (torch.device, str)):
                saved.append((module, value))
                setattr(module, name, target)
        try:
            yield
        finally:
            for module, value in saved:
                setattr(module, name, value)


def _pick(out: Any, spec: ModelSpec) -> Tensor:
    if isinstance(out, (tuple, list)) and spec.output_index is not None:
        out = out[spec.output_index]
    if not isinstance(out, Tensor):
        raise ValueError(
            f"the model returned {type(out).__name__}, not a tensor (spec={spec.name!r})"
        )
    return out


def _check_clip(clip: Tensor, spec: ModelSpec) -> None:
    if not isinstance(clip, Tensor):
        raise ValueError(f"a clip must be a torch.Tensor, got {type(clip).__name__}")
    if clip.ndim != 5 or clip.shape[2] != 3:
        raise ValueError(f"a clip must be (B, T, 3, H, W), got shape {tuple(clip.shape)}")
    if not clip.is_floating_point():
        raise ValueError(f"a clip must be a float tensor in [0, 1], got dtype {clip.dtype}")
    if clip.shape[1] < spec.min_frames:
        raise ValueError(
            f"spec={spec.name!r} needs at least {spec.min_frames} frames per clip, "
            f"got {clip.shape[1]}"
        )


def pad_to_multiple(frames: Tensor, multiple: int, *, mode: str = "reflect") -> Tensor:
    """Pad the bottom and right of ``(..., H, W)`` frames up to multiples of ``multiple``.

    Args:
        frames: ``(..., C, H, W)`` with at least 3 dimensions.
        multiple: positive integer.
        mode: ``"reflect"`` (falls back to ``"replicate"`` when a side is too short to reflect)
            or ``"replicate"``.

    Returns:
        ``(..., C, H', W')`` with ``H' = ceil(H / multiple) * multiple`` (same for ``W``); the
        top-left ``H x W`` block is ``frames``.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    if mode not in ("reflect", "replicate"):
        raise ValueError(f"mode must be 'reflect' or 'replicate', got {mode!r}")
    height, width = frames.shape[-2:]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return frames
    if mode == "reflect" and (pad_h >= height or pad_w >= width):
        mode = "replicate"
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    padded = F.pad(flat, (0, pad_w, 0, pad_h), mode=mode)
    return padded.reshape(*lead, *padded.shape[-3:])


# ---------------------------------------------------------------------- registry
#: Registered calling conventions, by name (a :class:`~ttblur.registry.Registry`: read like a
#: dict, case-insensitive, ``-`` and ``_`` alike).
SPECS: Registry[ModelSpec] = Registry("spec", attribute="ttblur.specs")


def register_spec(spec: ModelSpec, *, overwrite: bool = False) -> ModelSpec:
    """Add ``spec`` to :data:`SPECS` under ``spec.name`` (normalised to lower case, ``-`` to
    ``_``) and return it.

    Raises:
        ValueError: the name is taken and ``overwrite`` is false.
    """
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"register_spec expects a ModelSpec, got {type(spec).__name__}")
    registered: ModelSpec = SPECS.register(spec.name, spec, overwrite=overwrite)
    return registered


def list_specs() -> list[str]:
    """Sorted names of the registered specs."""
    return sorted(SPECS)


def get_spec(name_or_spec: str | ModelSpec) -> ModelSpec:
    """Look a spec up by name (case-insensitive, ``-`` and ``_`` alike); a ``ModelSpec`` is
    returned unchanged.

    Raises:
        ValueError: unknown name; the message lists the known names.
    """
    if isinstance(name_or_spec, ModelSpec):
        return name_or_spec
    if not isinstance(name_or_spec, str):
        raise ValueError(
            f"spec must be a name or a ModelSpec, got {type(name_or_spec).__name__}; "
            f"known names: {', '.join(list_specs())}"
        )
    if name_or_spec not in SPECS:
        raise ValueError(
            f"unknown spec={name_or_spec!r}; known names: {', '.join(list_specs())} "
            "(or pass a ModelSpec, or register one with ttblur.specs.register_spec)"
        )
    return SPECS[name_or_spec]


# ---------------------------------------------------------------------- model checks
def model_device(model: nn.Module) -> torch.device:
    """Device of the module's first parameter or buffer (CPU for a module with neither)."""
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """Floating dtype of the module's first floating parameter (float32 if none)."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


@contextmanager
def kept_modes(model: nn.Module) -> Iterator[None]:
    """Give every submodule its own train / eval flag back after the block, whatever the
    block set (rather than ``model.train(was_training)``: frozen submodules that the network
    deliberately holds in eval mode, such as MMP-RNN's prior, stay in eval)."""
    flags = [(module, module.training) for module in model.modules()]
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode and restore each one's own flag afterwards
    (:func:`kept_modes`)."""
    with kept_modes(model):
        model.eval()
        yield


def check_materialised(model: nn.Module) -> None:
    """Refuse a model with parameters or buffers that hold no values yet: on the ``meta``
    device (shapes without values: nothing to adapt or copy), or uninitialised lazy ones
    (``nn.LazyConv2d`` before its first forward pass: the probe would initialise them from
    the random stream, and the run would deblur with random weights).

    Raises:
        ValueError: naming the first such tensor.
    """
    for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        if is_lazy(tensor):
            raise ValueError(
                f"the model's {name!r} is not initialised yet (a lazy module such as "
                "nn.LazyConv2d): run one forward pass on a clip, then load its weights, "
                "before adapting or deblurring with it"
            )
        if tensor.is_meta:
            raise ValueError(
                f"the model's {name!r} is on the 'meta' device (a shape without values): "
                "materialise the model first, e.g. model.to_empty(device='cpu') then "
                "model.load_state_dict(...)"
            )


def probe_size(multiple: int) -> int:
    """The side of :func:`check_model`'s probe: the smallest odd multiple of ``multiple``
    that is >= 32 (33 for 1, 36 for 4, 40 for 8, 48 for 16, 32 for 32): divisible by the
    declared multiple and by no larger power of two times it."""
    factor = max(1, math.ceil(32 / multiple))
    return multiple * (factor if factor % 2 else factor + 1)


def check_model(
    model: nn.Module,
    spec: str | ModelSpec,
    device: torch.device | str | None = None,
) -> ModelSpec:
    """Verify with one tiny forward pass that ``model`` follows ``spec``.

    The probe is a deterministic random clip ``(1, past + future + 1, 3, s, s)`` in ``[0, 1]``
    with ``s = probe_size(spec.multiple)``, an odd multiple of ``spec.multiple`` (so that a
    model needing sides divisible by more fails here, not in the middle of a run), run under
    ``torch.no_grad`` in eval mode (each submodule's mode is restored afterwards), on
    ``device`` (default: the model's current device). The model must already be on
    ``device``. The model is left as it was: each submodule's mode is restored, and every
    buffer (persistent or not) gets its original tensor object and value back, so a forward
    pass that updates buffers leaves no trace; ``requires_grad`` flags are not touched.

    Returns:
        the resolved spec.

    Raises:
        ValueError: the forward pass fails or its output does not have shape
            ``(1, 1, 3, s, s)`` after the spec's conversions; the message names ``spec=``, the
            probe shape, the device and the cause (the exception's type and message, or where
            it was raised when it has no message) or the output shape.
    """
    spec = get_spec(spec)
    run_device = model_device(model) if device is None else torch.device(device)
    size = probe_size(spec.multiple)
    num_frames = spec.min_frames
    generator = torch.Generator().manual_seed(0)
    probe = torch.rand(1, num_frames, 3, size, size, generator=generator)
    probe = probe.to(device=run_device, dtype=model_dtype(model))
    expected = (1, spec.output_frames(num_frames), 3, size, size)
    # A forward pass may update buffers (running statistics, counters, caches): they are
    # recorded first and put back afterwards, so the probe leaves no trace on the model.
    guard = ModuleSnapshot.capture(model, parameters=False, to_cpu=False)
    try:
        with torch.no_grad(), eval_mode(model), spec.on_device(model, run_device):
            raw = model(spec.to_model_input(probe))
            out = spec.from_model_output(raw, 1, num_frames)
    except Exception as err:
        known = ", ".join(list_specs())
        raise ValueError(
            f"the model does not fit spec={spec.name!r}: a probe clip of shape "
            f"{tuple(probe.shape)} (model input {_describe_input(spec, probe)}) on device "
            f"'{run_device}' failed: {describe_error(err)}. Pass the right spec= (built-in: "
            f"{known}) or a ModelSpec describing the model; if the model only runs on another "
            "device, pass device= accordingly; if it needs frame sides divisible by more than "
            f"the spec's multiple={spec.multiple} (the probe's {size} px is an odd multiple of "
            "it), give the spec that multiple."
        ) from err
    finally:
        guard.restore()
    if tuple(out.shape) != expected:
        raise ValueError(
            f"the model does not fit spec={spec.name!r}: for a probe clip of shape "
            f"{tuple(probe.shape)} it returned {tuple(out.shape)} after conversion, expected "
            f"{expected}. Pass the right spec= or a ModelSpec describing the model."
        )
    if not torch.isfinite(out).all():
        raise ValueError(f"the model returned NaN/inf on a probe clip (spec={spec.name!r})")
    return spec


def describe_error(err: BaseException, _depth: int = 0) -> str:
    """``"TypeName: message"`` for an exception, never an empty cause.

    An exception without a message (``AssertionError()``, some CUDA / CuPy errors) is described
    by where it was raised (file, line, function) and by the exception it was raised from.
    """
    name = type(err).__name__
    text = str(err).strip()
    if text:
        return f"{name}: {text}"
    frames = traceback.extract_tb(err.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" raised at {Path(last.filename).name}:{last.lineno} in {last.name}()"
        if last.line:
            where += f" ({last.line.strip()})"
    cause = err.__cause__ or err.__context__
    after = ""
    if cause is not None and cause is not err and _depth < 3:
        after = f", from {describe_error(cause, _depth + 1)}"
    return f"{name} with no message{where}{after}"


def _describe_input(spec: ModelSpec, probe: Tensor) -> str:
    shape = tuple(probe.shape) if spec.layout == "BTCHW" else (probe.shape[1], *probe.shape[2:])
    low, high = spec.input_range
    return f"{shape} {spec.layout} in [{low:g}, {high:g}] {spec.channel_order}"


def infer_spec(
    model: nn.Module,
    spec: str | ModelSpec | None = None,
    device: torch.device | str | None = None,
) -> ModelSpec:
    """Resolve the spec to call ``model`` with, verified by :func:`check_model`.

    ``spec=None`` uses ``model.spec`` when the model has one (a ``ModelSpec`` or a registered
    name), else ``"image"`` (a frame-wise image model).

    Raises:
        ValueError: unknown name, or the model does not fit the spec (message names ``spec=``).
    """
    return check_model(model, declared_spec(model, spec), device)


def declared_spec(model: nn.Module, spec: str | ModelSpec | None = None) -> ModelSpec:
    """The spec :func:`infer_spec` would verify, resolved without running ``model``: ``spec``,
    else ``model.spec`` when it is a ``ModelSpec`` or a registered name, else ``"image"``.

    Raises:
        ValueError: unknown spec name.
    """
    if spec is None:
        own = getattr(model, "spec", None)
        spec = own if isinstance(own, (str, ModelSpec)) else "image"
    return get_spec(spec)


# ---------------------------------------------------------------------- built-in specs
_BUILTIN = (
    ModelSpec(
        name="estrnn",
        layout="BTCHW",
        input_range=(-0.5, 0.5),
        channel_order="BGR",
        past_frames=2,
        future_frames=2,
        clip_length=20,
        multiple=4,
        device_attribute="device",
        description="ESTRNN (zzh-tech/ESTRNN model/ESTRNN.py Model): cv2 frames (BGR) "
        "centralised+normalised to [-0.5, 0.5], 2+2 border frames, hidden state at H/4",
    ),
    ModelSpec(
        name="mmp_rnn",
        layout="BTCHW",
        input_range=(-0.5, 0.5),
        channel_order="RGB",
        past_frames=2,
        future_frames=2,
        clip_length=20,
        multiple=4,
        keep_frozen_in_eval=True,
        device_attribute="device",
        description="MMP-RNN (sollynoay/MMP-RNN model/MMPRNN.py Model): ESTRNN conventions, "
        "PIL-made lmdb (RGB), frozen BatchNorm motion-magnitude prior kept in eval",
    ),
    ModelSpec(
        name="dstnet",
        layout="BTCHW",
        input_range=(0.0, 1.0),
        channel_order="RGB",
        past_frames=0,
        future_frames=0,
        clip_length=30,
        multiple=16,
        description="DSTNet (xuboming8/DSTNet basicsr/archs/deblur_arch.py Deblur): BasicSR "
        "RGB [0, 1], all frames out, residual; 30-frame test clips",
    ),
    ModelSpec(
        name="shiftnet",
        layout="BTCHW",
        input_range=(0.0, 1.0),
        channel_order="RGB",
        past_frames=2,
        future_frames=2,
        clip_length=52,
        multiple=8,
        max_batch=1,
        output_has_batch=False,
        description="Shift-Net (dasongli1/Shift-Net gshift_deblur1.py GShiftNet built with "
        "past_frames=2, future_frames=2 as in inference/test_deblur.py): batch 1, output "
        "(T-4, 3, H, W) without batch dim; 48 outputs per forward in the official test",
    ),
    ModelSpec(
        name="image",
        layout="BCHW",
        input_range=(0.0, 1.0),
        channel_order="RGB",
        clip_length=8,
        multiple=1,
        description="frame-wise image deblurring model: (N, 3, H, W) RGB [0, 1] in and out",
    ),
    ModelSpec(
        name="reference",
        layout="BTCHW",
        input_range=(0.0, 1.0),
        channel_order="RGB",
        past_frames=2,
        future_frames=2,
        clip_length=12,
        multiple=8,
        description=(
            "ttblur's reference networks (ttblur.nets.reference: ReferenceDeblurNet, ReferenceUNet)"
        ),
    ),
)

for _spec in _BUILTIN:
    register_spec(_spec)
del _spec
