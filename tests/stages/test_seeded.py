import pytest
import torch

from ttblur.stages.dbcgm import RandomCondition
from ttblur.stages.reblur import PhysicalReblur
from ttblur.stages.seeded import SeededStage


@pytest.mark.parametrize(
    "stage", [PhysicalReblur(noise_std=0.1, seed=5), RandomCondition(seed=5)], ids=repr
)
def test_reseed_restarts_the_draws_from_the_seed(stage: SeededStage) -> None:
    first = torch.rand(4, generator=stage.generator)
    assert not torch.equal(torch.rand(4, generator=stage.generator), first)  # it advances
    stage.reseed()
    assert torch.equal(torch.rand(4, generator=stage.generator), first)
    assert torch.equal(first, torch.rand(4, generator=torch.Generator().manual_seed(5)))
