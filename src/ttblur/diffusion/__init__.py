"""Noise schedule, training-side forward process and DDIM sampler of the diffusion blur model.

ttblur's own implementation of the parts of DDPM / DDIM that ID-Blau needs (``diffusers`` is not
a dependency): :class:`LinearNoiseSchedule`, :class:`DDPMProcess` (noising and the epsilon
target, for training) and :class:`DDIMSampler` (sampling). ``DDPMScheduler``, the earlier name of
:class:`DDPMProcess`, still works for one release and warns (``DeprecationWarning``).
"""

from typing import Any

from ttblur.diffusion import schedule
from ttblur.diffusion.ddim import DDIMSampler
from ttblur.diffusion.schedule import DDPMProcess, LinearNoiseSchedule, gather_timesteps

__all__ = ["DDIMSampler", "DDPMProcess", "LinearNoiseSchedule", "gather_timesteps"]


def __getattr__(name: str) -> Any:
    """Deprecated names (see :data:`ttblur.diffusion.schedule.DEPRECATED_NAMES`)."""
    if name in schedule.DEPRECATED_NAMES:
        return schedule.deprecated(name, stacklevel=2)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
