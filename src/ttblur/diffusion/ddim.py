"""DDIM sampling (Song et al. 2021) on top of a :class:`LinearNoiseSchedule`.

The timestep sequence follows the official ID-Blau sampler: with ``T`` training steps and
``S`` sampling steps, the visited timesteps are ``t_i = i * (T // S) + 1`` for
``i = S-1, ..., 0`` and each step goes to ``t_{i-1}`` (``0`` after the last one), so the final
sample is expressed at ``alpha_bar_0 = 1 - beta_0`` (almost noise-free).

One step from ``t`` to ``s`` with predicted noise ``eps``::

    x0    = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)
    sigma = eta * sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
    x_s   = sqrt(ab_s) x0 + sqrt(1 - ab_s - sigma^2) eps + sigma z

``eta = 0`` is deterministic given the initial noise.

Example:
    >>> import torch
    >>> from ttblur.diffusion import DDIMSampler
    >>> sampler = DDIMSampler(num_steps=4)
    >>> out = sampler.sample(lambda x, t: torch.zeros_like(x), (1, 3, 8, 8),
    ...                      generator=torch.Generator().manual_seed(0))
    >>> out.shape
    torch.Size([1, 3, 8, 8])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from ttblur.diffusion.schedule import LinearNoiseSchedule

__all__ = ["DDIMSampler"]

#: ``model(x_t (N, C, H, W), t (N,) int64) -> predicted noise (N, C, H, W)``.
NoisePredictor = Callable[[Tensor, Tensor], Tensor]


class DDIMSampler:
    """Deterministic (``eta = 0``) or stochastic DDIM sampler.

    Args:
        schedule: noise schedule the network was trained with (default: ID-Blau's).
        num_steps: number of denoising steps ``S`` (1 <= S <= T); ID-Blau uses 20.
        eta: 0 for deterministic DDIM, 1 for DDPM-like variance.
        clip_sample: if set, clamp each ``x0`` estimate to ``[-clip_sample, clip_sample]``
            (the official sampler does not clip: ``None``).
    """

    def __init__(
        self,
        schedule: LinearNoiseSchedule | None = None,
        *,
        num_steps: int = 20,
        eta: float = 0.0,
        clip_sample: float | None = None,
    ) -> None:
        self.schedule = schedule if schedule is not None else LinearNoiseSchedule()
        total = self.schedule.num_train_timesteps
        if not 1 <= num_steps <= total - 1:
            raise ValueError(f"num_steps must be in [1, {total - 1}], got {num_steps}")
        if not (math.isfinite(eta) and eta >= 0):
            raise ValueError(f"eta must be >= 0, got {eta}")
        if clip_sample is not None and not clip_sample > 0:
            raise ValueError(f"clip_sample must be > 0 or None, got {clip_sample}")
        self.num_steps = int(num_steps)
        self.eta = float(eta)
        self.clip_sample = clip_sample

    def __repr__(self) -> str:
        return (
            f"DDIMSampler({self.schedule!r}, num_steps={self.num_steps}, eta={self.eta}, "
            f"clip_sample={self.clip_sample})"
        )

    @property
    def timesteps(self) -> list[tuple[int, int]]:
        """``(t, t_prev)`` pairs in sampling order (from noisy to clean)."""
        stride = self.schedule.num_train_timesteps // self.num_steps
        seq = [i * stride + 1 for i in range(self.num_steps)]
        prev = [0, *seq[:-1]]
        return list(zip(reversed(seq), reversed(prev)))

    def step(
        self,
        model_output: Tensor,
        timestep: int,
        prev_timestep: int,
        sample: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One DDIM update ``x_t -> x_{t_prev}``.

        Args:
            model_output: predicted noise, shape of ``sample``.
            timestep: current ``t``; ``prev_timestep``: target ``s < t`` (both in ``[0, T)``).
            sample: ``x_t`` ``(N, C, H, W)``.
            generator: CPU generator for the ``eta > 0`` noise.
        """
        total = self.schedule.num_train_timesteps
        if not 0 <= prev_timestep < timestep < total:
            raise ValueError(
                f"need 0 <= prev_timestep < timestep < {total}, got {prev_timestep}, {timestep}"
            )
        ab_t = float(self.schedule.alphas_cumprod[timestep])
        ab_s = float(self.schedule.alphas_cumprod[prev_timestep])
        x0 = (sample - math.sqrt(1.0 - ab_t) * model_output) / math.sqrt(ab_t)
        if self.clip_sample is not None:
            x0 = x0.clamp(-self.clip_sample, self.clip_sample)
            model_output = (sample - math.sqrt(ab_t) * x0) / math.sqrt(1.0 - ab_t)
        sigma = self.eta * math.sqrt((1.0 - ab_s) / (1.0 - ab_t) * (1.0 - ab_t / ab_s))
        direction = math.sqrt(max(1.0 - ab_s - sigma**2, 0.0)) * model_output
        out = math.sqrt(ab_s) * x0 + direction
        if sigma > 0:
            noise = torch.randn(sample.shape, generator=generator, dtype=torch.float32)
            out = out + sigma * noise.to(device=sample.device, dtype=sample.dtype)
        return out

    def sample(
        self,
        model: NoisePredictor,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        initial_noise: Tensor | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Run the full reverse process from Gaussian noise.

        Args:
            model: noise predictor ``model(x_t, t) -> eps`` with ``t`` an ``(N,)`` int64 tensor.
            shape: ``(N, C, H, W)`` of the sample.
            generator: CPU generator for the initial noise and the ``eta`` noise (results are
                identical on every device for a given seed).
            device: where ``model`` runs.
            dtype: sample dtype.
            initial_noise: use this ``x_T`` instead of drawing one.
            progress: show a tqdm progress bar.

        Returns:
            The final sample ``(N, C, H, W)`` on ``device``.
        """
        if initial_noise is not None:
            if tuple(initial_noise.shape) != tuple(shape):
                raise ValueError(
                    f"initial_noise {tuple(initial_noise.shape)} must have shape {tuple(shape)}"
                )
            x = initial_noise.to(device=device, dtype=dtype)
        else:
            x = torch.randn(shape, generator=generator, dtype=torch.float32).to(device, dtype)
        steps: Iterable[tuple[int, int]] = self.timesteps
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="DDIM", total=self.num_steps)
        for t, s in steps:
            t_batch = torch.full((shape[0],), t, device=device, dtype=torch.long)
            eps = model(x, t_batch)
            x = self.step(eps, t, s, x, generator=generator)
        return x
