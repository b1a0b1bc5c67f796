"""Old name of :mod:`ttblur.types` (the stage protocols and data types); still importable."""

from __future__ import annotations

from ttblur.types import (
    BlurConditions,
    BlurSynthesizer,
    ConditionGenerator,
    ExposureEstimate,
    FlowEstimator,
    PatchLocation,
    Selection,
    SharpnessDetector,
    validate_video,
)

__all__ = [
    "BlurConditions",
    "BlurSynthesizer",
    "ConditionGenerator",
    "ExposureEstimate",
    "FlowEstimator",
    "PatchLocation",
    "Selection",
    "SharpnessDetector",
    "validate_video",
]
