"""Noise schedules and samplers for the diffusion blur model (DDPM training, DDIM sampling)."""

from ttblur.diffusion.ddim import DDIMSampler
from ttblur.diffusion.schedule import DDPMScheduler, LinearNoiseSchedule, gather_timesteps

__all__ = ["DDIMSampler", "DDPMScheduler", "LinearNoiseSchedule", "gather_timesteps"]
