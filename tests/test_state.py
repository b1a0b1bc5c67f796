"""ModuleSnapshot (ttblur._state): a restore gives back the recorded module tree exactly."""

from __future__ import annotations

import torch
from torch import nn

from ttblur._state import ModuleSnapshot


class _Caching(nn.Module):
    """Registers a buffer, a parameter and a submodule on its first forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if "calls" not in self._buffers:
            self.register_buffer("calls", torch.zeros(()))
            self.register_buffer("scratch", torch.zeros(1), persistent=False)
            self.scale = nn.Parameter(torch.ones(()))
            self.extra = nn.Identity()
        self.calls += 1
        return self.extra(self.conv(x)) * self.scale


def test_restore_removes_what_a_run_registered() -> None:
    """Slots added after the capture used to stay: the state_dict keys changed, and a strict
    load into a fresh instance failed."""
    model = _Caching()
    keys = set(model.state_dict())
    snapshot = ModuleSnapshot.capture(model)
    model(torch.rand(1, 3, 4, 4))
    assert set(model.state_dict()) > keys
    snapshot.restore()
    assert set(model.state_dict()) == keys
    assert dict(model.named_children()).keys() == {"conv"}
    assert not model._non_persistent_buffers_set
    assert snapshot.matches(model)
    _Caching().load_state_dict(model.state_dict())  # strict
    model(torch.rand(1, 3, 4, 4))  # registers them again, as on a first call
    assert float(model.calls) == 1.0
