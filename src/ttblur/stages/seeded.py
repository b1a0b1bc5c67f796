"""Stages that draw from their own random generator, and how a run restarts it.

A stage built with a ``seed`` (the physical reblur's noise, the random conditions, ID-Blau's
sampling noise) keeps a CPU :class:`torch.Generator` that advances from call to call, so a
sequence of calls is reproducible. :func:`ttblur.adapt` (the pipeline) calls :meth:`reseed`
on every component that has it at the start of each run, so a pipeline or a stage object
used for several runs gives each run the result a fresh one would. A stage you register can
follow the same protocol: a ``reseed()`` method without arguments.
"""

from __future__ import annotations

import torch


class SeededStage:
    """Mixin: ``self.generator``, a CPU generator restarted from ``self.seed`` by :meth:`reseed`.

    Example:
        >>> from ttblur.stages.reblur import PhysicalReblur
        >>> stage = PhysicalReblur(noise_std=0.1, seed=3)
        >>> first = torch.rand(1, generator=stage.generator)
        >>> stage.reseed()
        >>> bool(torch.rand(1, generator=stage.generator) == first)
        True
    """

    seed: int
    generator: torch.Generator

    def reseed(self) -> None:
        """Restart the random draws from ``seed``."""
        self.generator = torch.Generator().manual_seed(self.seed)
