"""Alias of :mod:`ttblur.io.video` (video I/O), kept so that existing imports work.

New code imports from :mod:`ttblur.io.video` (or :mod:`ttblur.io`); every name of it is served
here, and ``_write_chunks``, the old private name of :func:`ttblur.io.video.write_frames`
(still used by ``ttblur.inference`` and ``benchmarks/cost.py``). See ``docs/video-io.md``.
"""

from ttblur.io.aliases import alias_module

__all__, __getattr__ = alias_module("ttblur.io.video", {"_write_chunks": "write_frames"})
