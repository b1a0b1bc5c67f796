"""Registries: one per stage kind, built-ins register themselves, one source of defaults."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from pydantic import ValidationError

from ttblur.config import AdaptConfig, DBCGMConfig, RSDMConfig, SynthesisConfig
from ttblur.registry import (
    CONDITION_GENERATORS,
    DETECTORS,
    FLOWS,
    SYNTHESIZERS,
    Registry,
    accepted_kwargs,
)
from ttblur.specs import SPECS


def test_register_look_up_and_remove() -> None:
    things: Registry[Any] = Registry("thing", attribute="my.THINGS")

    @things.register("My-Thing")
    def make(size: int = 1) -> int:
        return size

    assert "my_thing" in things and things["MY_THING"] is make
    assert things.names() == ["my_thing"] and len(things) == 1 and list(things) == ["my_thing"]
    assert things.build("my-thing", params={"size": 4}) == 4
    with pytest.raises(ValueError, match="already registered"):
        things.register("my_thing", make)
    things.register("my_thing", make, overwrite=True)
    with pytest.raises(
        ValueError, match=r"unknown thing 'nope'; known names: my_thing.*my\.THINGS"
    ):
        things.get_entry("nope")
    with pytest.raises(ValueError, match="takes no parameter 'colour'"):
        things.check_params("my_thing", {"colour": 1})
    assert things.unregister("my_thing") is make and "my_thing" not in things
    assert things.pop("my_thing", None) is None


def test_accepted_kwargs_passes_only_what_a_factory_takes() -> None:
    def narrow(a: int, *, seed: int = 0) -> None: ...

    def wide(**kwargs: Any) -> None: ...

    context = {"seed": 1, "device": "cpu"}
    assert accepted_kwargs(narrow, context) == {"seed": 1}
    assert accepted_kwargs(wide, context) == context


def test_builtins_register_themselves_on_first_lookup() -> None:
    from ttblur.stages.dbcgm import (
        DomainBlurConditionGenerator,
        FlowOnlyCondition,
        RandomCondition,
    )
    from ttblur.stages.flow import OpenCVFlow, RAFTFlow
    from ttblur.stages.idblau import IDBlau
    from ttblur.stages.reblur import PhysicalReblur
    from ttblur.stages.rsdm import RandomPatchSelector, RelativeSharpnessDetector

    assert DETECTORS["relative_sharpness"] is RelativeSharpnessDetector
    assert DETECTORS["random"] is RandomPatchSelector
    assert CONDITION_GENERATORS["dbcgm"] is DomainBlurConditionGenerator
    assert CONDITION_GENERATORS["flow_only"] is FlowOnlyCondition
    assert CONDITION_GENERATORS["random"] is RandomCondition
    assert SYNTHESIZERS["physical"] is PhysicalReblur and SYNTHESIZERS["idblau"] is IDBlau
    assert FLOWS["opencv"] is OpenCVFlow and FLOWS["raft"] is RAFTFlow
    assert isinstance(SPECS, Registry) and "estrnn" in SPECS


_SECTIONS = [
    (DETECTORS, "relative_sharpness", RSDMConfig, {}),
    (DETECTORS, "random", RSDMConfig, {}),
    (CONDITION_GENERATORS, "dbcgm", DBCGMConfig, {}),
    (CONDITION_GENERATORS, "flow_only", DBCGMConfig, {}),
    (CONDITION_GENERATORS, "random", DBCGMConfig, {"magnitude_range": "random_magnitude"}),
    (SYNTHESIZERS, "physical", SynthesisConfig, {}),
    (SYNTHESIZERS, "idblau", SynthesisConfig, {}),
    (FLOWS, "opencv", DBCGMConfig, {"preset": "flow_preset"}),
]


@pytest.mark.parametrize(("registry", "name", "section", "renamed"), _SECTIONS)
def test_constructor_defaults_are_the_config_defaults(registry, name, section, renamed) -> None:
    defaults = section()
    parameters = inspect.signature(registry[name]).parameters
    shared = 0
    for parameter in parameters.values():
        field = renamed.get(parameter.name, parameter.name)
        if field in section.model_fields and field not in ("name", "flow"):  # flow: an object
            assert parameter.default == getattr(defaults, field), (name, parameter.name)
            shared += 1
    assert shared >= 1


def test_dbcgm_class_defaults_are_the_ones_adapt_uses() -> None:
    from ttblur.stages.dbcgm import DomainBlurConditionGenerator

    gen = DomainBlurConditionGenerator()
    cfg = AdaptConfig().dbcgm
    assert (gen.magnitude, gen.magnitude_offset, gen.motion_cap) == ("bme", 3.0, True)
    assert (gen.neighbours, gen.context, gen.min_flow) == (
        cfg.neighbours,
        cfg.context,
        cfg.min_flow,
    )


def test_sections_name_registered_stages_and_take_their_params() -> None:
    with pytest.raises(ValidationError, match="unknown detector 'nope'"):
        AdaptConfig(rsdm={"name": "nope"})
    with pytest.raises(ValidationError, match=r"unknown key\(s\) \['bogus'\]"):
        AdaptConfig(rsdm={"bogus": 1})
    with pytest.raises(ValidationError, match="unknown flow estimator"):
        AdaptConfig(dbcgm={"flow": "nope"})

    @SYNTHESIZERS.register("identity_for_test")
    class Identity:
        def __init__(self, gain: float = 1.0) -> None:
            self.gain = gain

    try:
        cfg = AdaptConfig.from_json('{"synthesis": {"name": "identity_for_test", "gain": 2.0}}')
        assert cfg.synthesis.params == {"gain": 2.0}
        assert AdaptConfig.from_json(cfg.to_json()) == cfg
        with pytest.raises(ValidationError, match="takes no parameter 'colour'"):
            AdaptConfig(synthesis={"name": "identity_for_test", "colour": 1})
    finally:
        SYNTHESIZERS.unregister("identity_for_test")
