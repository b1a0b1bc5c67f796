"""Everything ttblur reads from and writes to disk or the Hub.

* :mod:`ttblur.io.video`: video sources (tensors, arrays, frame folders, video files) read as
  ``(T, 3, H, W)`` float RGB in ``[0, 1]``, and written as video files or PNG folders.
* :mod:`ttblur.io.weights`: ``config.json`` + ``model.safetensors`` weights of every network
  (shipped defaults, local folders, the Hugging Face Hub cache), strict loading, never pickle.
* :mod:`ttblur.io.frame_store`: :class:`~ttblur.io.frame_store.FrameStore`, a video kept in
  a temporary file and indexed like a tensor (``adapt`` on a long video file).
* :mod:`ttblur.io.datasets`: sequences of GoPro- / BSD-layout datasets with ground truth.
* :mod:`ttblur.io.models`: a user's network built from ``module:factory`` (the CLI's
  ``--model``).
* :mod:`ttblur.io.atomic`: atomic outputs (a file appears complete under its name, or not).
* :mod:`ttblur.io.paths`: natural sort order of file names.

The names below are importable from ``ttblur.io`` directly; submodules load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # video
    "VideoInfo": "ttblur.io.video",
    "VideoSource": "ttblur.io.video",
    "TruncatedVideoWarning": "ttblur.io.video",
    "iter_video": "ttblur.io.video",
    "load_video": "ttblur.io.video",
    "save_video": "ttblur.io.video",
    "store_video": "ttblur.io.video",
    "video_info": "ttblur.io.video",
    "write_frames": "ttblur.io.video",
    # disk-backed frames
    "FrameStore": "ttblur.io.frame_store",
    # weights
    "InvalidWeightsError": "ttblur.io.weights",
    "PretrainedMixin": "ttblur.io.weights",
    "PushToHubMixin": "ttblur.io.weights",
    "WeightsNotFoundError": "ttblur.io.weights",
    "load_weights": "ttblur.io.weights",
    "save_weights": "ttblur.io.weights",
    # datasets
    "DatasetSequence": "ttblur.io.datasets",
    "find_sequences": "ttblur.io.datasets",
    "select_sequences": "ttblur.io.datasets",
    # models
    "load_model": "ttblur.io.models",
    # atomic outputs
    "StagedOutputs": "ttblur.io.atomic",
    "atomic_path": "ttblur.io.atomic",
    "atomic_write_text": "ttblur.io.atomic",
    # paths
    "natural_key": "ttblur.io.paths",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ttblur.io' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(
        [*__all__, "atomic", "datasets", "frame_store", "models", "paths", "video", "weights"]
    )
