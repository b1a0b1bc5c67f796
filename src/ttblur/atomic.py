"""Alias of :mod:`ttblur.io.atomic` (atomic file outputs), kept so that existing imports work.

New code imports from :mod:`ttblur.io.atomic` (or :mod:`ttblur.io`).
"""

from ttblur.io.atomic import (
    TEMP_MARKER,
    StagedOutputs,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    deferred_signals,
    temp_name,
)

__all__ = [
    "TEMP_MARKER",
    "StagedOutputs",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "deferred_signals",
    "temp_name",
]
