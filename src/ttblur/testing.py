"""Tiny stand-in networks that follow each official family's calling convention exactly.

They let tests, examples and users exercise :func:`ttblur.deblur` and :func:`ttblur.adapt`
against every built-in :class:`~ttblur.specs.ModelSpec` without the official code or weights.
Each stand-in is a residual network whose last layers start at zero, so at construction it
returns its centre input frames unchanged (identity); its convolutions are trainable, so
fine-tuning changes the output. Each one enforces its family's conventions and fails loudly
when called the wrong way:

============  ===============================  ===========================================
name          convention                       enforced
============  ===============================  ===========================================
``estrnn``    ``(B,T,3,H,W)`` in [-0.5, 0.5]   H, W multiples of 4; returns ``T-4`` frames;
                                               hidden state built on ``self.device``
                                               (``cuda`` at construction, like the original)
``mmp_rnn``   as ``estrnn``                    plus a frozen BatchNorm prior in eval mode
                                               (:meth:`MMPRNNLike.prior_is_pristine`)
``dstnet``    ``(B,T,3,H,W)`` in [0, 1]        H, W multiples of 16; all ``T`` frames out
``shiftnet``  ``(1,T,3,H,W)`` in [0, 1]        batch 1 only; returns ``(T-4,3,H,W)``
                                               without the batch dimension; H, W multiple
                                               of 8
``image``     ``(N,3,H,W)`` in [0, 1]          rank 4 input
``reference`` ``(B,T,3,H,W)`` in [0, 1]        ttblur's own :class:`ReferenceDeblurNet`
                                               (randomly initialised, small)
============  ===============================  ===========================================

Inputs outside the family's value range (beyond a 1e-3 tolerance) raise ``ValueError``, so a
wrong ``input_range`` in a spec is caught by :func:`ttblur.specs.check_model`.

Example:
    >>> import torch
    >>> from ttblur.testing import standin_model
    >>> net = standin_model("shiftnet")
    >>> net(torch.rand(1, 6, 3, 16, 16)).shape
    torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "STANDINS",
    "DSTNetLike",
    "ESTRNNLike",
    "ImageModelLike",
    "MMPRNNLike",
    "ShiftNetLike",
    "standin_model",
]

_TOLERANCE = 1e-3


def _check_range(x: Tensor, low: float, high: float, who: str) -> None:
    lo, hi = float(x.min()), float(x.max())
    if lo < low - _TOLERANCE or hi > high + _TOLERANCE:
        raise ValueError(f"{who} expects inputs in [{low}, {high}], got [{lo:.3f}, {hi:.3f}]")


def _check_multiple(x: Tensor, multiple: int, who: str) -> None:
    height, width = x.shape[-2:]
    if height % multiple or width % multiple:
        raise RuntimeError(
            f"{who}: H and W must be multiples of {multiple} (got {height}x{width}); "
            "internal feature maps would not line up"
        )


class _ResidualHead(nn.Module):
    """``(N, c_in, H, W) -> (N, 3, H, W)``: conv3x3, GELU, conv3x3 (zero-initialised)."""

    def __init__(self, in_channels: int, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, 3, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        if self.conv2.bias is not None:
            nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.gelu(self.conv1(x)))


class ESTRNNLike(nn.Module):
    """ESTRNN's convention: ``(B, T, 3, H, W)`` in ``[-0.5, 0.5]`` -> ``(B, T-p-f, 3, H, W)``.

    Like the original it keeps a recurrent hidden state at ``H/4 x W/4`` created on
    ``self.device``, which is ``torch.device('cuda')`` after construction: on a machine
    without CUDA the module only runs once ``self.device`` is set to the run device (what
    :func:`ttblur.deblur` does through ``spec.device_attribute``).

    Args:
        features: width of the hidden state and heads.
        past_frames: frames consumed before each output frame (2 in the original).
        future_frames: frames consumed after each output frame (2 in the original).
    """

    value_range = (-0.5, 0.5)
    ds_ratio = 4

    def __init__(self, features: int = 8, past_frames: int = 2, future_frames: int = 2) -> None:
        super().__init__()
        self.features = features
        self.past_frames = past_frames
        self.future_frames = future_frames
        self.device = torch.device("cuda")
        self.encode = nn.Conv2d(3, features, self.ds_ratio, stride=self.ds_ratio)
        self.cell = nn.Conv2d(2 * features, features, 3, padding=1)
        window = past_frames + future_frames + 1
        self.head = _ResidualHead(3 * window, features)
        self.hidden_head = nn.Conv2d(features, 3 * self.ds_ratio**2, 3, padding=1)
        nn.init.zeros_(self.hidden_head.weight)
        if self.hidden_head.bias is not None:
            nn.init.zeros_(self.hidden_head.bias)

    def _modulate(self, frame: Tensor, feat: Tensor) -> Tensor:
        return feat

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, T, 3, H, W)`` in [-0.5, 0.5] -> ``(B, T - past - future, 3, H, W)``."""
        name = type(self).__name__
        if x.ndim != 5:
            raise RuntimeError(f"{name} expects (B, T, 3, H, W), got {tuple(x.shape)}")
        _check_multiple(x, self.ds_ratio, name)
        _check_range(x, *self.value_range, name)
        batch, frames, _, height, width = x.shape
        if frames < self.past_frames + self.future_frames + 1:
            raise RuntimeError(f"{name} needs at least 5 frames, got {frames}")
        state = torch.zeros(
            batch, self.features, height // self.ds_ratio, width // self.ds_ratio
        ).to(self.device)
        hidden = []
        for t in range(frames):
            feat = self._modulate(x[:, t], self.encode(x[:, t]))
            state = torch.tanh(self.cell(torch.cat([feat, state], dim=1)))
            hidden.append(state)
        outputs = []
        for t in range(self.past_frames, frames - self.future_frames):
            window = x[:, t - self.past_frames : t + self.future_frames + 1]
            residual = self.head(window.flatten(1, 2))
            residual = residual + F.pixel_shuffle(self.hidden_head(hidden[t]), self.ds_ratio)
            outputs.append(x[:, t] + residual)
        return torch.stack(outputs, dim=1)


class _Prior(nn.Module):
    """A small motion-magnitude prior ``(N, 3, H, W) -> (N, 1, H/4, W/4)`` in (0, 1)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, features, 4, stride=4)
        self.norm = nn.BatchNorm2d(features)
        self.conv2 = nn.Conv2d(features, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.conv2(F.relu(self.norm(self.conv1(x)))))


class MMPRNNLike(ESTRNNLike):
    """MMP-RNN's convention: ESTRNN's plus an internal frozen prior.

    The prior (``self.prior``) has ``requires_grad=False`` parameters and is put in eval mode
    at construction, like the original's ``UNet`` prior. It contains a BatchNorm layer, so a
    forward pass in train mode changes its running statistics:
    :meth:`prior_is_pristine` tells whether that happened. Its BatchNorm running statistics
    start away from the defaults so that train-mode batch statistics visibly change outputs.
    """

    def __init__(self, features: int = 8, past_frames: int = 2, future_frames: int = 2) -> None:
        super().__init__(features, past_frames, future_frames)
        self.prior = _Prior(features)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            mean, var = self._prior_stats()
            mean.copy_(0.1 * torch.randn(features, generator=generator))
            var.fill_(0.5)
        self.prior.eval()
        for param in self.prior.parameters():
            param.requires_grad = False
        self.scale = nn.Conv2d(1, features, 1)
        self.register_buffer(
            "_prior_snapshot",
            torch.cat(self._prior_stats()).clone(),
            persistent=False,
        )

    def _modulate(self, frame: Tensor, feat: Tensor) -> Tensor:
        return feat * (1 + self.scale(self.prior(frame)))

    def prior_is_pristine(self) -> bool:
        """``True`` while the prior's BatchNorm running statistics are untouched (the prior
        has never run in train mode)."""
        stats = torch.cat(self._prior_stats())
        snapshot = self._prior_snapshot
        assert isinstance(snapshot, Tensor)
        return bool(torch.equal(stats, snapshot.to(stats.device)))

    def _prior_stats(self) -> tuple[Tensor, Tensor]:
        mean, var = self.prior.norm.running_mean, self.prior.norm.running_var
        assert mean is not None and var is not None
        return mean, var


class DSTNetLike(nn.Module):
    """DSTNet's convention: ``(B, T, 3, H, W)`` in [0, 1] -> same shape, residual.

    H and W must be multiples of 16 (the original's wavelet levels and dynamic-kernel
    pooling). Each output frame is ``x_t`` plus a residual of ``x_{t-1}, x_t, x_{t+1}``
    (replicated at the clip ends), a stand-in for the original's bidirectional propagation.
    """

    value_range = (0.0, 1.0)
    multiple = 16

    def __init__(self, features: int = 8) -> None:
        super().__init__()
        self.head = _ResidualHead(9, features)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, T, 3, H, W)`` in [0, 1] -> ``(B, T, 3, H, W)``."""
        if x.ndim != 5:
            raise RuntimeError(f"DSTNetLike expects (B, T, 3, H, W), got {tuple(x.shape)}")
        _check_multiple(x, self.multiple, "DSTNetLike")
        _check_range(x, *self.value_range, "DSTNetLike")
        frames = x.shape[1]
        outputs = []
        for t in range(frames):
            near = x[:, [max(t - 1, 0), t, min(t + 1, frames - 1)]]
            outputs.append(x[:, t] + self.head(near.flatten(1, 2)))
        return torch.stack(outputs, dim=1)


class ShiftNetLike(nn.Module):
    """Shift-Net's convention: ``(1, T, 3, H, W)`` in [0, 1] -> ``(T-p-f, 3, H, W)``.

    Only batch size 1 is accepted (the original silently uses ``x[0]``; this stand-in raises),
    the output has no batch dimension, H and W must be multiples of 8.

    Args:
        features: width of the residual head.
        past_frames: 2 in the official inference script.
        future_frames: 2 in the official inference script.
    """

    value_range = (0.0, 1.0)
    multiple = 8

    def __init__(self, features: int = 8, past_frames: int = 2, future_frames: int = 2) -> None:
        super().__init__()
        self.past_frames = past_frames
        self.future_frames = future_frames
        self.head = _ResidualHead(3 * (past_frames + future_frames + 1), features)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(1, T, 3, H, W)`` in [0, 1] -> ``(T - past - future, 3, H, W)``."""
        if x.ndim != 5 or x.shape[0] != 1:
            raise RuntimeError(
                f"ShiftNetLike accepts only (1, T, 3, H, W) (batch size 1), got {tuple(x.shape)}"
            )
        _check_multiple(x, self.multiple, "ShiftNetLike")
        _check_range(x, *self.value_range, "ShiftNetLike")
        frames = x[0]
        count = frames.shape[0] - self.past_frames - self.future_frames
        if count < 1:
            raise RuntimeError(f"ShiftNetLike needs at least 5 frames, got {frames.shape[0]}")
        windows = torch.stack(
            [frames[t : t + self.past_frames + self.future_frames + 1] for t in range(count)]
        )
        centre = frames[self.past_frames : self.past_frames + count]
        return centre + self.head(windows.flatten(1, 2))


class ImageModelLike(nn.Module):
    """A frame-wise image deblurring model: ``(N, 3, H, W)`` in [0, 1] -> same shape."""

    value_range = (0.0, 1.0)

    def __init__(self, features: int = 8) -> None:
        super().__init__()
        self.head = _ResidualHead(3, features)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(N, 3, H, W)`` in [0, 1] -> ``(N, 3, H, W)``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise RuntimeError(f"ImageModelLike expects (N, 3, H, W), got {tuple(x.shape)}")
        _check_range(x, *self.value_range, "ImageModelLike")
        return x + self.head(x)


STANDINS: dict[str, type[nn.Module]] = {
    "estrnn": ESTRNNLike,
    "mmp_rnn": MMPRNNLike,
    "dstnet": DSTNetLike,
    "shiftnet": ShiftNetLike,
    "image": ImageModelLike,
}


def standin_model(name: str, *, seed: int = 0) -> nn.Module:
    """Build the stand-in for a built-in spec name (see the module table).

    Args:
        name: ``"estrnn"``, ``"mmp_rnn"``, ``"dstnet"``, ``"shiftnet"``, ``"image"`` or
            ``"reference"`` (a small randomly initialised :class:`ReferenceDeblurNet`).
        seed: seed of the parameter initialisation.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    key = name.strip().lower().replace("-", "_")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if key == "reference":
            from ttblur.nets.reference import ReferenceConfig, ReferenceDeblurNet

            return ReferenceDeblurNet(ReferenceConfig(features=(8, 8, 16), num_blocks=1))
        if key not in STANDINS:
            known = ", ".join([*STANDINS, "reference"])
            raise ValueError(f"unknown stand-in {name!r}; known: {known}")
        return STANDINS[key]()
    finally:
        torch.random.set_rng_state(generator_state)
