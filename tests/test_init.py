"""The top-level ``ttblur`` namespace re-exports the public API lazily."""

import subprocess
import sys

import pytest

import ttblur


@pytest.mark.parametrize("name", ttblur.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(ttblur, name) is not None


def test_design_brief_names_are_public() -> None:
    for name in [
        "adapt",
        "deblur",
        "load_video",
        "save_video",
        "iter_video",
        "AdaptConfig",
        "AdaptResult",
        "ModelSpec",
        "reference_model",
        "BlurMagnitudeEstimator",
        "RelativeSharpnessDetector",
        "RandomPatchSelector",
        "OpenCVFlow",
        "RAFTFlow",
        "DomainBlurConditionGenerator",
        "FlowOnlyCondition",
        "RandomCondition",
        "PhysicalReblur",
        "IDBlau",
        "synth",
        "metrics",
    ]:
        assert name in ttblur.__all__


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ttblur.nope  # noqa: B018


def test_import_is_lazy() -> None:
    code = "import sys, ttblur; print('ttblur.stages.flow' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_documented_dotted_access_works_in_a_fresh_interpreter() -> None:
    # The README's @ttblur.registry.DETECTORS.register and ttblur.batch.adapt_many, and the
    # ttblur.specs.register_spec an error message names, work without importing them first.
    code = (
        "import ttblur; "
        "print(ttblur.registry.DETECTORS.kind, ttblur.batch.adapt_many.__name__, "
        "ttblur.specs.register_spec.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["detector", "adapt_many", "register_spec"]
