"""Noise schedules and the DDPM forward process used in training (epsilon prediction).

ttblur's own implementation (no dependency on ``diffusers``): :class:`DDPMProcess` was named
``DDPMScheduler`` before, like the ``diffusers`` class it does not follow (its methods and
return types differ); that name remains as a deprecated alias for one release.

The forward (noising) process of a DDPM is
``x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps`` with ``eps ~ N(0, I)`` and
``alpha_bar_t = prod_{s <= t} (1 - beta_s)``; timesteps are integers ``0 <= t < T``.
ID-Blau uses a linear ``beta`` from ``1e-6`` to ``1e-2`` over ``T = 2000`` steps.

Example:
    >>> import torch
    >>> from ttblur.diffusion.schedule import DDPMProcess
    >>> process = DDPMProcess()
    >>> x0 = torch.zeros(2, 3, 8, 8)
    >>> noise = torch.randn(2, 3, 8, 8)
    >>> t = torch.tensor([0, 1999])
    >>> process.add_noise(x0, noise, t).shape
    torch.Size([2, 3, 8, 8])
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

__all__ = ["DDPMProcess", "LinearNoiseSchedule", "gather_timesteps"]

#: names of earlier releases -> current names (a DeprecationWarning on access)
DEPRECATED_NAMES = {"DDPMScheduler": "DDPMProcess"}


def gather_timesteps(table: Tensor, timesteps: Tensor, ndim: int) -> Tensor:
    """Pick ``table[t]`` for each sample and shape it ``(N, 1, ..., 1)`` for broadcasting.

    Args:
        table: ``(T,)`` per-timestep values.
        timesteps: ``(N,)`` integer timesteps in ``[0, T)``.
        ndim: rank of the tensors the result broadcasts against.
    """
    values = table.to(timesteps.device)[timesteps.long()]
    return values.reshape(-1, *([1] * (ndim - 1)))


class LinearNoiseSchedule:
    """Linear ``beta`` schedule and its derived tables (kept in float64 on the CPU).

    Args:
        num_train_timesteps: ``T``, the number of diffusion steps.
        beta_start: ``beta_0``.
        beta_end: ``beta_{T-1}``.

    Attributes:
        betas: ``(T,)`` float64.
        alphas: ``(T,)`` float64, ``1 - betas``.
        alphas_cumprod: ``(T,)`` float64, ``alpha_bar_t``.
    """

    def __init__(
        self, num_train_timesteps: int = 2000, beta_start: float = 1e-6, beta_end: float = 1e-2
    ) -> None:
        if num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be >= 2, got {num_train_timesteps}")
        if not (0.0 < beta_start <= beta_end < 1.0):
            raise ValueError(
                f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, "
                f"beta_end={beta_end}"
            )
        self.num_train_timesteps = int(num_train_timesteps)
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    def __repr__(self) -> str:
        return (
            f"LinearNoiseSchedule(num_train_timesteps={self.num_train_timesteps}, "
            f"beta_start={self.beta_start}, beta_end={self.beta_end})"
        )

    def __len__(self) -> int:
        return self.num_train_timesteps


class DDPMProcess:
    """The DDPM forward process used in training: timesteps, noising and the epsilon target.

    Sampling is :class:`~ttblur.diffusion.ddim.DDIMSampler`'s job.

    Args:
        schedule: the noise schedule; default: ID-Blau's linear 1e-6..1e-2 over 2000 steps.
    """

    def __init__(self, schedule: LinearNoiseSchedule | None = None) -> None:
        self.schedule = schedule if schedule is not None else LinearNoiseSchedule()

    def __repr__(self) -> str:
        return f"DDPMProcess({self.schedule!r})"

    @property
    def num_train_timesteps(self) -> int:
        """``T``."""
        return self.schedule.num_train_timesteps

    def _check_timesteps(self, timesteps: Tensor, batch: int) -> None:
        if timesteps.ndim != 1 or timesteps.shape[0] != batch:
            raise ValueError(
                f"timesteps must be (N,) with N = {batch}, got shape {tuple(timesteps.shape)}"
            )
        if timesteps.is_floating_point():
            raise ValueError(f"timesteps must be integers, got {timesteps.dtype}")
        if batch and (int(timesteps.min()) < 0 or int(timesteps.max()) >= self.num_train_timesteps):
            raise ValueError(
                f"timesteps must be in [0, {self.num_train_timesteps}), got "
                f"[{int(timesteps.min())}, {int(timesteps.max())}]"
            )

    def sample_timesteps(
        self, batch: int, *, generator: torch.Generator | None = None, device: str | None = None
    ) -> Tensor:
        """Uniform random training timesteps ``(batch,)`` int64 in ``[0, T)``.

        Drawn on the CPU with ``generator`` (reproducible on every device), then moved.
        """
        t = torch.randint(0, self.num_train_timesteps, (batch,), generator=generator)
        return t.to(device) if device is not None else t

    def add_noise(self, original: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``.

        Args:
            original: ``x_0``, ``(N, ...)``.
            noise: ``eps``, same shape as ``original``.
            timesteps: ``(N,)`` integer timesteps in ``[0, T)``.

        Returns:
            ``x_t`` with the shape and dtype of ``original``.
        """
        if noise.shape != original.shape:
            raise ValueError(
                f"noise {tuple(noise.shape)} must match original {tuple(original.shape)}"
            )
        self._check_timesteps(timesteps, original.shape[0])
        ab = self.schedule.alphas_cumprod
        scale = gather_timesteps(ab.sqrt(), timesteps, original.ndim).to(original.dtype)
        sigma = gather_timesteps((1.0 - ab).sqrt(), timesteps, original.ndim).to(original.dtype)
        return scale * original + sigma * noise

    def training_target(self, original: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """What the network learns to predict: the noise ``eps`` (epsilon parameterisation)."""
        if noise.shape != original.shape:
            raise ValueError(
                f"noise {tuple(noise.shape)} must match original {tuple(original.shape)}"
            )
        self._check_timesteps(timesteps, original.shape[0])
        return noise

    def predict_original(self, sample: Tensor, model_output: Tensor, timesteps: Tensor) -> Tensor:
        """Estimate ``x_0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)`` from the predicted noise."""
        self._check_timesteps(timesteps, sample.shape[0])
        ab = self.schedule.alphas_cumprod
        scale = gather_timesteps(ab.sqrt(), timesteps, sample.ndim).to(sample.dtype)
        sigma = gather_timesteps((1.0 - ab).sqrt(), timesteps, sample.ndim).to(sample.dtype)
        return (sample - sigma * model_output) / scale


def deprecated(name: str, *, stacklevel: int = 2) -> Any:
    """The object a deprecated name of :data:`DEPRECATED_NAMES` stands for, with a warning.

    Args:
        name: the deprecated name.
        stacklevel: the frame the ``DeprecationWarning`` is attributed to (as in
            :func:`warnings.warn`, counted from this function).
    """
    new = DEPRECATED_NAMES[name]
    warnings.warn(
        f"ttblur.diffusion.{name} is deprecated and will be removed in the next release; "
        f"use ttblur.diffusion.{new} (ttblur's own implementation, not diffusers' class)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
    return globals()[new]


def __getattr__(name: str) -> Any:
    """Serve the names of :data:`DEPRECATED_NAMES` (with a ``DeprecationWarning``)."""
    if name in DEPRECATED_NAMES:
        return deprecated(name, stacklevel=2)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
