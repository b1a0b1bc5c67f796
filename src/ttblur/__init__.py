"""ttblur: test-time adaptation of video deblurring models by test-time blurring.

The public API is re-exported here; see ``docs/architecture.md`` for where each piece lives.
"""

from ttblur.config import AdaptConfig
from ttblur.protocols import (
    BlurSynthesizer,
    ConditionGenerator,
    FlowEstimator,
    PatchLocation,
    Selection,
    SharpnessDetector,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "AdaptConfig",
    "BlurSynthesizer",
    "ConditionGenerator",
    "FlowEstimator",
    "PatchLocation",
    "Selection",
    "SharpnessDetector",
    "__version__",
]
