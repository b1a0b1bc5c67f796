"""Registries: one per stage kind, built-ins register themselves, one source of defaults."""

from __future__ import annotations

import inspect
import subprocess
import sys
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
    with pytest.raises(ValueError, match="already registered as a thing"):
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


def test_set_fields_of_the_section_reach_a_registered_stage() -> None:
    # rsdm.patch_size / synthesis.gamma are typed fields: they used to be dropped for a
    # user's stage (built with its own defaults) while the report recorded them.
    @DETECTORS.register("fields_for_test")
    class Corner:
        def __init__(self, patch_size: int = 64, ratio: float = 1.0) -> None:
            self.patch_size, self.ratio = patch_size, ratio

    try:
        config = AdaptConfig(rsdm={"name": "fields_for_test", "patch_size": 32})
        section = config.rsdm
        built = DETECTORS.build(section.name, section, section.params)
        assert (built.patch_size, built.ratio) == (32, 1.0)  # set: passed; default: its own
        # a section that is not the stage's own (a flow reads dbcgm): nothing passed
        assert DETECTORS.build(section.name, section).patch_size == 64
        # Equal configs build the same stage: one read back from its JSON or from a dict
        # counted every field as set and passed the section's defaults (ratio 0.2).
        for again in (AdaptConfig.from_json(config.to_json()), config.model_dump()):
            section = (
                AdaptConfig.model_validate(again).rsdm if isinstance(again, dict) else again.rsdm
            )
            built = DETECTORS.build(section.name, section, section.params)
            assert (built.patch_size, built.ratio) == (32, 1.0)
    finally:
        DETECTORS.unregister("fields_for_test")


def test_a_subclass_of_a_builtin_is_built_from_the_section() -> None:
    from ttblur.stages.rsdm import RelativeSharpnessDetector

    class Mine(RelativeSharpnessDetector):
        pass

    DETECTORS.register("subclass_for_test", Mine)
    try:
        section = AdaptConfig(rsdm={"name": "subclass_for_test", "patch_size": 32}).rsdm
        built = DETECTORS.build(section.name, section, section.params)
        assert type(built) is Mine and built.patch_size == 32
        with pytest.raises(ValidationError, match="its from_config signature"):
            AdaptConfig(rsdm={"name": "subclass_for_test", "colour": 1})
    finally:
        DETECTORS.unregister("subclass_for_test")


def test_a_builtin_replaced_then_unregistered_comes_back() -> None:
    from ttblur.stages.rsdm import RandomPatchSelector

    class Mine:
        def __init__(self, size: int = 32) -> None:
            self.size = size

    with pytest.raises(ValueError, match="'random' is a built-in detector; pass overwrite"):
        DETECTORS.register("random", Mine)
    DETECTORS.register("random", Mine, overwrite=True)
    try:
        assert not DETECTORS.is_builtin("random")
        # the user's entry takes its own parameters now
        assert AdaptConfig(rsdm={"name": "random", "size": 16}).rsdm.params == {"size": 16}
    finally:
        assert DETECTORS.unregister("random") is Mine
    assert DETECTORS["random"] is RandomPatchSelector and DETECTORS.is_builtin("random")
    DETECTORS.unregister("random")  # even the built-in itself comes back on the next lookup
    assert DETECTORS["random"] is RandomPatchSelector


def test_a_builtin_name_is_taken_before_its_module_is_imported() -> None:
    # It used to be accepted, and then every run failed when the built-in module loaded.
    code = (
        "import sys\n"
        "from ttblur.registry import DETECTORS\n"
        "assert 'ttblur.stages.rsdm' not in sys.modules\n"
        "try:\n"
        "    DETECTORS.register('random', object)\n"
        "except ValueError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "'random' is a built-in detector" in out.stdout
