"""ttblur: test-time adaptation of video deblurring models by test-time blurring.

The public API is re-exported here (imported lazily on first use, so ``import ttblur`` stays
cheap); see ``docs/architecture.md`` for where each piece lives.

Example:
    >>> import ttblur
    >>> model = ttblur.reference_model()          # doctest: +SKIP
    >>> result = ttblur.adapt(model, "clip.mp4")  # doctest: +SKIP
    >>> sharp = result.deblur("clip.mp4")         # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # pipeline
    "adapt": "ttblur.api",
    "AdaptResult": "ttblur.api",
    "AdaptReport": "ttblur.api",
    "AdaptOutput": "ttblur.outputs",
    "AdaptPipeline": "ttblur.pipeline",
    "deblur": "ttblur.inference",
    "iter_deblur": "ttblur.inference",
    "deblur_file": "ttblur.inference",
    "AdaptConfig": "ttblur.config",
    # models and their calling conventions
    "ModelSpec": "ttblur.specs",
    "get_spec": "ttblur.specs",
    "register_spec": "ttblur.specs",
    "list_specs": "ttblur.specs",
    "reference_model": "ttblur.nets.reference",
    "ReferenceDeblurNet": "ttblur.nets.reference",
    "BlurMagnitudeEstimator": "ttblur.nets.bme",
    # video I/O
    "load_video": "ttblur.video",
    "save_video": "ttblur.video",
    "iter_video": "ttblur.video",
    # stage protocols and data
    "BlurSynthesizer": "ttblur.types",
    "ConditionGenerator": "ttblur.types",
    "FlowEstimator": "ttblur.types",
    "PatchLocation": "ttblur.types",
    "Selection": "ttblur.types",
    "SharpnessDetector": "ttblur.types",
    # stage implementations
    "RelativeSharpnessDetector": "ttblur.stages.rsdm",
    "RandomPatchSelector": "ttblur.stages.rsdm",
    "OpenCVFlow": "ttblur.stages.flow",
    "RAFTFlow": "ttblur.stages.flow",
    "DomainBlurConditionGenerator": "ttblur.stages.dbcgm",
    "FlowOnlyCondition": "ttblur.stages.dbcgm",
    "RandomCondition": "ttblur.stages.dbcgm",
    "PhysicalReblur": "ttblur.stages.reblur",
    "IDBlau": "ttblur.stages.idblau",
    # weight loading errors
    "WeightsNotFoundError": "ttblur.hub",
    "InvalidWeightsError": "ttblur.hub",
}

# submodules reachable as attributes (``ttblur.synth.make_video``)
_SUBMODULES = ("batch", "metrics", "registry", "report", "specs", "synth", "testing", "viz")

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"ttblur.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'ttblur' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - static re-exports for type checkers and IDEs
    from ttblur import batch, metrics, registry, report, specs, synth, testing, viz
    from ttblur.api import AdaptReport, AdaptResult, adapt
    from ttblur.config import AdaptConfig
    from ttblur.hub import InvalidWeightsError, WeightsNotFoundError
    from ttblur.inference import deblur, deblur_file, iter_deblur
    from ttblur.nets.bme import BlurMagnitudeEstimator
    from ttblur.nets.reference import ReferenceDeblurNet, reference_model
    from ttblur.outputs import AdaptOutput
    from ttblur.pipeline import AdaptPipeline
    from ttblur.specs import ModelSpec, get_spec, list_specs, register_spec
    from ttblur.stages.dbcgm import (
        DomainBlurConditionGenerator,
        FlowOnlyCondition,
        RandomCondition,
    )
    from ttblur.stages.flow import OpenCVFlow, RAFTFlow
    from ttblur.stages.idblau import IDBlau
    from ttblur.stages.reblur import PhysicalReblur
    from ttblur.stages.rsdm import RandomPatchSelector, RelativeSharpnessDetector
    from ttblur.types import (
        BlurSynthesizer,
        ConditionGenerator,
        FlowEstimator,
        PatchLocation,
        Selection,
        SharpnessDetector,
    )
    from ttblur.video import iter_video, load_video, save_video
