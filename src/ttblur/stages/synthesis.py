"""Build the configured blur synthesizer by name (``SynthesisConfig.name``).

Example:
    >>> from ttblur.config import SynthesisConfig
    >>> from ttblur.stages.synthesis import build_synthesizer
    >>> build_synthesizer(SynthesisConfig(name="physical"))
    PhysicalReblur(taps=None, gamma=2.2, noise_std=0.0, batch_size=8, seed=0)
"""

from __future__ import annotations

import torch

from ttblur.config import SynthesisConfig
from ttblur.registry import SYNTHESIZERS as _SYNTHESIZERS
from ttblur.types import BlurSynthesizer, warn_mag_norm_ignored

__all__ = ["SYNTHESIZERS", "build_synthesizer"]

#: Names accepted by :func:`build_synthesizer` (``SynthesisConfig.name``).
SYNTHESIZERS = ("physical", "idblau")


def build_synthesizer(
    section: SynthesisConfig,
    mag_norm: float | None = None,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> BlurSynthesizer:
    """The synthesizer named by ``section.name``.

    Args:
        section: the ``synthesis`` section of :class:`~ttblur.config.AdaptConfig`.
        mag_norm: deprecated and ignored (DeprecationWarning): conditions carry the blur
            length in pixels; ID-Blau converts to its own scale.
        seed: seed of the synthesizer's noise generator.
        device: where ID-Blau's network runs (``PhysicalReblur`` follows its inputs).

    Returns:
        ``"physical"``: :class:`~ttblur.stages.reblur.PhysicalReblur`; ``"idblau"``:
        :class:`~ttblur.stages.idblau.IDBlau`; a name registered in
        :data:`ttblur.registry.SYNTHESIZERS`: what its factory builds.

    Raises:
        FileNotFoundError: ``"idblau"`` without weights (never a silent fallback).
        ValueError: unknown name.
    """
    warn_mag_norm_ignored("build_synthesizer", mag_norm)
    synthesizer: BlurSynthesizer = _SYNTHESIZERS.build(
        section.name, section, section.params, seed=seed, device=device
    )
    return synthesizer
