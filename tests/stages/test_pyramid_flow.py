"""PyramidFlow: the batched torch flow reads known translations back and follows the protocol."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ttblur.config import AdaptConfig
from ttblur.registry import FLOWS
from ttblur.stages.pyramid_flow import PyramidFlow


def _texture(seed: int = 0) -> torch.Tensor:
    coarse = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)


def _pair(dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 120x150 views of one texture; the content moves ``(dx, dy)`` px from the first to
    the second."""
    image = _texture()
    first = image[..., 20:140, 20:170]
    second = image[..., 20 - dy : 140 - dy, 20 - dx : 170 - dx]
    return first, second


@pytest.mark.parametrize(("dx", "dy"), [(3, 0), (0, -5), (7, 4)])
def test_known_translations_are_read_back(dx: int, dy: int) -> None:
    first, second = _pair(dx, dy)
    flow = PyramidFlow()(first, second)
    assert flow.shape == (1, 2, 120, 150) and flow.dtype == torch.float32
    centre = flow[0, :, 30:90, 30:120]
    error = torch.hypot(centre[0] - dx, centre[1] - dy)
    assert float((error < 0.5).float().mean()) >= 0.9
    median = centre.flatten(1).median(dim=1).values
    assert median[0].item() == pytest.approx(dx, abs=0.1)
    assert median[1].item() == pytest.approx(dy, abs=0.1)


def test_a_batch_is_the_pairs_one_by_one_and_identical_frames_do_not_move() -> None:
    (a1, b1), (a2, b2) = _pair(3, 0), _pair(0, -5)
    flow = PyramidFlow()
    batched = flow(torch.cat([a1, a2]), torch.cat([b1, b2]))
    assert torch.allclose(batched[:1], flow(a1, b1), atol=1e-4)
    assert torch.allclose(batched[1:], flow(a2, b2), atol=1e-4)
    assert flow(a1, a1).abs().max() < 1e-3
    blank = torch.full((1, 3, 32, 32), 0.5)  # no texture: damping keeps it still
    assert flow(blank, blank).abs().max() == 0.0


def test_bad_inputs_and_options_are_refused() -> None:
    with pytest.raises(ValueError):
        PyramidFlow()(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 40))
    with pytest.raises(ValueError, match="window"):
        PyramidFlow(window=4)
    with pytest.raises(ValueError, match="damping"):
        PyramidFlow(damping=0)


def test_registered_and_built_from_the_config_on_the_run_device() -> None:
    config = AdaptConfig(dbcgm={"flow": "pyramid"})
    built = FLOWS.build(config.dbcgm.flow, config.dbcgm, device="cpu")
    assert isinstance(built, PyramidFlow) and built.device == torch.device("cpu")


def test_the_pipeline_builds_it_on_its_run_device() -> None:
    from ttblur.pipeline import AdaptPipeline

    pipe = AdaptPipeline.from_config({"dbcgm": {"flow": "pyramid"}}, device="cpu")
    assert isinstance(pipe.flow, PyramidFlow) and pipe.flow.device == torch.device("cpu")


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU visible to torch (torch.cuda.is_available() is False here)",
)
def test_cuda_flow_matches_the_cpu_and_comes_back_on_the_inputs_device() -> None:
    first, second = _pair(7, 4)
    on_cpu = PyramidFlow()(first, second)
    on_gpu = PyramidFlow(device="cuda")(first, second)
    assert on_gpu.device.type == "cpu"
    assert torch.allclose(on_gpu, on_cpu, atol=1e-2)
