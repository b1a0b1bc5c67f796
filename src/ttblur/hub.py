"""Alias of :mod:`ttblur.io.weights` (loading, saving and publishing weights), kept so that
existing imports work.

New code imports from :mod:`ttblur.io.weights`; every name of it is served here. See
``docs/weights.md``.
"""

from ttblur.io.aliases import alias_module

__all__, __getattr__ = alias_module("ttblur.io.weights")
