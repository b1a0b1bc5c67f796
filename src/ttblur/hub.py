"""Alias of :mod:`ttblur.io.weights` (loading, saving and publishing weights), kept so that
existing imports work.

New code imports from :mod:`ttblur.io.weights`; see ``docs/weights.md``.
"""

from ttblur.io.weights import (
    CLASS_KEY,
    CONFIG_NAME,
    WEIGHTS_NAME,
    InvalidWeightsError,
    PretrainedMixin,
    PushToHubMixin,
    WeightsNotFoundError,
    check_state_dict,
    load_safetensors,
    looks_like_local_path,
    read_config,
    resolve_pretrained,
    shipped_weights_dir,
    state_dict_mismatch,
    write_pretrained,
)

__all__ = [
    "CLASS_KEY",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "InvalidWeightsError",
    "PretrainedMixin",
    "PushToHubMixin",
    "WeightsNotFoundError",
    "check_state_dict",
    "load_safetensors",
    "looks_like_local_path",
    "read_config",
    "resolve_pretrained",
    "shipped_weights_dir",
    "state_dict_mismatch",
    "write_pretrained",
]
