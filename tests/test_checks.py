"""Checks made before any work: the pseudo pairs' memory against what the machine has."""

from __future__ import annotations

import pytest
import torch

from ttblur.checks import available_memory, check_pair_memory, pair_memory
from ttblur.config import AdaptConfig
from ttblur.specs import get_spec


def test_pair_memory_counts_the_patches_the_detector_keeps() -> None:
    config = AdaptConfig()  # patch 256, stride 128, ratio 0.2, 2 border frames
    spec = get_spec("reference")  # 5-frame clips
    # 720p: 5 rows x 9 columns of candidates per frame, 16 candidate frames of 20.
    count, need = pair_memory(config, spec, (20, 3, 720, 1280))
    assert count == round(0.2 * 16 * 5 * 9) == 144
    assert need == count * (2 * 5 + 3) * 3 * 256 * 256 * 4
    capped, smaller = pair_memory(AdaptConfig(rsdm={"max_patches": 32}), spec, (1000, 3, 720, 1280))
    assert capped == 32 and smaller == 32 * 13 * 3 * 256 * 256 * 4


def test_a_run_that_cannot_fit_is_refused_with_a_cap_that_fits() -> None:
    config, spec = AdaptConfig(), get_spec("reference")
    shape = (1000, 3, 720, 1280)
    count, need = pair_memory(config, spec, shape)
    check_pair_memory(config, spec, shape, None)  # unknown memory: not checked
    check_pair_memory(config, spec, shape, need)  # exactly enough
    with pytest.raises(MemoryError, match=r"rsdm.max_patches") as raised:
        check_pair_memory(config, spec, shape, need // 4)
    assert f"up to {count} pseudo-sharp patches" in str(raised.value)
    suggested = int(str(raised.value).split("'max_patches': ")[1].split("}")[0])
    capped = AdaptConfig(rsdm={"max_patches": suggested})
    check_pair_memory(capped, spec, shape, need // 4)  # the advice works


def test_adapt_refuses_before_the_sharpness_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import ttblur
    import ttblur.pipeline as pipeline

    monkeypatch.setattr(pipeline, "available_memory", lambda: 1024)
    called = []
    monkeypatch.setattr("ttblur.stages.rsdm.estimate_magnitude", lambda *a, **k: called.append(1))
    video = torch.rand(7, 3, 64, 64)
    with pytest.raises(MemoryError, match="GiB"):
        ttblur.adapt(ttblur.reference_model("tiny"), video, config={"rsdm": {"patch_size": 32}})
    assert not called


def test_available_memory_reads_the_system() -> None:
    value = available_memory()
    assert value is None or value > 0


def test_a_model_on_the_meta_device_is_refused_by_name() -> None:
    from torch import nn

    from ttblur.checks import check_materialised

    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(3, 3, 3))
    with pytest.raises(ValueError, match=r"'0.weight' is on the 'meta' device"):
        check_materialised(model)
    check_materialised(nn.Sequential(nn.Conv2d(3, 3, 3)))  # a real one passes
