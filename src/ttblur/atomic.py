"""Alias of :mod:`ttblur.io.atomic` (atomic file outputs), kept so that existing imports work.

New code imports from :mod:`ttblur.io.atomic`; every name of it is served here.
"""

from ttblur.io.aliases import alias_module

__all__, __getattr__ = alias_module("ttblur.io.atomic")
