"""Exact snapshots of a module's tensors and flags, restored bit for bit.

:class:`ModuleSnapshot` records, for every submodule of a network, its parameters and buffers
(the values on the CPU, the original tensor objects, their dtype and device), each
parameter's ``requires_grad`` and ``.grad``, and each submodule's train/eval flag.
:meth:`ModuleSnapshot.restore` puts all of that back: the original tensor objects return to
their submodules (a ``module.to(device)`` or a forward pass that reassigned a buffer replaces
them), and their values, dtype and device become exactly the recorded ones.

It covers what ``state_dict`` misses: non-persistent buffers, buffers replaced by a new tensor,
``requires_grad`` flags, gradients and modes; parameters, buffers and submodules registered
after the capture are removed. It is what :func:`ttblur.adapt` rolls an
``in_place`` adaptation back with, and what the spec probe (:func:`ttblur.specs.check_model`)
restores buffers with.

Example:
    >>> import torch
    >>> net = torch.nn.BatchNorm1d(2)
    >>> snap = ModuleSnapshot.capture(net)
    >>> _ = net(torch.randn(4, 2))   # training mode: running statistics change
    >>> snap.restore()
    >>> snap.matches(net)
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["ModuleSnapshot", "bits_equal"]


@dataclass
class _Entry:
    """One parameter or buffer slot ``module._parameters[name]`` / ``module._buffers[name]``."""

    module: nn.Module
    name: str
    is_parameter: bool
    tensor: Tensor | None  # the original object in the slot (None: the slot held None)
    value: Tensor | None  # detached copy of its data (CPU, or the same device)
    device: torch.device | None
    requires_grad: bool = False
    grad: Tensor | None = None


def _copy(tensor: Tensor, to_cpu: bool) -> Tensor:
    data = tensor.detach()
    return data.to("cpu", copy=True) if to_cpu else data.clone()


@dataclass
class ModuleSnapshot:
    """Parameters, buffers, gradients, ``requires_grad`` and modes of a module tree.

    Build one with :meth:`capture`; :meth:`restore` may be called any number of times.
    """

    entries: list[_Entry] = field(default_factory=list)
    modes: list[tuple[nn.Module, bool]] = field(default_factory=list)
    #: Per module, the slot names of each recorded table (``_parameters``, ``_buffers``,
    #: ``_modules``) and its non-persistent buffer names: what a run added is removed.
    names: list[tuple[nn.Module, dict[str, frozenset[str]], frozenset[str]]] = field(
        default_factory=list
    )

    @classmethod
    def capture(
        cls,
        model: nn.Module,
        *,
        parameters: bool = True,
        buffers: bool = True,
        to_cpu: bool = True,
    ) -> ModuleSnapshot:
        """Record ``model``'s state.

        Args:
            model: the module tree to record (shared submodules are recorded once).
            parameters: record parameters (values, ``requires_grad`` and ``.grad``).
            buffers: record buffers, persistent or not.
            to_cpu: keep the copies on the CPU (no extra accelerator memory); otherwise they
                stay on each tensor's device.
        """
        snapshot = cls()
        for module in model.modules():
            snapshot.modes.append((module, module.training))
            kinds = ["_modules"] + ["_parameters"] * parameters + ["_buffers"] * buffers
            snapshot.names.append(
                (
                    module,
                    {kind: frozenset(getattr(module, kind)) for kind in kinds},
                    frozenset(module._non_persistent_buffers_set),
                )
            )
            slots: list[tuple[dict[str, Tensor | None], bool]] = []
            if parameters:
                slots.append((module._parameters, True))  # type: ignore[arg-type]
            if buffers:
                slots.append((module._buffers, False))
            for table, is_parameter in slots:
                for name, tensor in table.items():
                    if tensor is None:
                        snapshot.entries.append(
                            _Entry(module, name, is_parameter, None, None, None)
                        )
                        continue
                    grad = tensor.grad if is_parameter else None
                    snapshot.entries.append(
                        _Entry(
                            module,
                            name,
                            is_parameter,
                            tensor,
                            _copy(tensor, to_cpu),
                            tensor.device,
                            requires_grad=tensor.requires_grad,
                            grad=_copy(grad, to_cpu) if grad is not None else None,
                        )
                    )
        return snapshot

    def restore(self) -> None:
        """Put every recorded tensor object back in its slot with its recorded value, dtype and
        device, and every ``requires_grad``, gradient and train/eval flag as recorded; remove
        the parameters, buffers and submodules added since (a forward pass that registers a
        cache buffer), so the ``state_dict`` keys are the recorded ones."""
        for module, tables, non_persistent in self.names:
            for kind, recorded in tables.items():
                slots = getattr(module, kind)
                for name in [n for n in slots if n not in recorded]:
                    del slots[name]
            if "_buffers" in tables:
                module._non_persistent_buffers_set.intersection_update(non_persistent)
                module._non_persistent_buffers_set.update(non_persistent)
        with torch.no_grad():
            for entry in self.entries:
                table = entry.module._parameters if entry.is_parameter else entry.module._buffers
                table[entry.name] = entry.tensor  # type: ignore[assignment]
                if entry.tensor is None or entry.value is None or entry.device is None:
                    continue
                _assign(entry.tensor, entry.value, entry.device)
                if entry.is_parameter:
                    entry.tensor.requires_grad_(entry.requires_grad)
                    entry.tensor.grad = (
                        entry.grad.to(entry.device, copy=True) if entry.grad is not None else None
                    )
        for module, flag in self.modes:
            module.training = flag

    def matches(self, model: nn.Module) -> bool:
        """Whether ``model``'s recorded slots hold the recorded objects with bit-identical
        values, dtypes, devices, ``requires_grad`` flags and modes."""
        for module, flag in self.modes:
            if module.training != flag:
                return False
        for entry in self.entries:
            table = entry.module._parameters if entry.is_parameter else entry.module._buffers
            current = table.get(entry.name)
            if current is not entry.tensor:
                return False
            if current is None or entry.value is None:
                continue
            if current.device != entry.device or current.dtype != entry.value.dtype:
                return False
            if not bits_equal(current, entry.value):
                return False
            if entry.is_parameter and current.requires_grad != entry.requires_grad:
                return False
        return True


def _assign(tensor: Tensor, value: Tensor, device: torch.device) -> None:
    """Make ``tensor`` hold ``value`` on ``device`` bit for bit, in its own storage when the
    shape, dtype and device still fit (views of it stay valid), else by swapping its data."""
    if tensor.shape == value.shape and tensor.dtype == value.dtype and tensor.device == device:
        tensor.copy_(value)  # same dtype: an exact copy of the bits
        return
    tensor.data = value.to(device, copy=True)


def bits_equal(a: Tensor, b: Tensor) -> bool:
    """Same shape, dtype and bits (NaN payloads and signed zeros included), on any devices."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    flat_a = a.detach().cpu().contiguous().reshape(-1)
    flat_b = b.detach().cpu().contiguous().reshape(-1)
    if flat_a.dtype.is_complex:
        flat_a, flat_b = torch.view_as_real(flat_a), torch.view_as_real(flat_b)
    return torch.equal(flat_a.view(torch.uint8), flat_b.view(torch.uint8))
