import math

import numpy as np
import pytest
import torch

from ttblur.diffusion import DDPMProcess, LinearNoiseSchedule, gather_timesteps


def test_linear_schedule_matches_idblau_numbers():
    sched = LinearNoiseSchedule()
    assert len(sched) == 2000
    assert sched.betas[0].item() == pytest.approx(1e-6)
    assert sched.betas[-1].item() == pytest.approx(1e-2)
    betas = np.linspace(1e-6, 1e-2, 2000)
    expected = np.cumprod(1 - betas)
    assert np.allclose(sched.alphas_cumprod.numpy(), expected, rtol=1e-12)
    assert torch.all(sched.alphas_cumprod[1:] < sched.alphas_cumprod[:-1])
    # sum of betas ~ T * mean beta = 10.0; alpha_bar_T ~ exp(-10.0)
    assert sched.alphas_cumprod[-1].item() == pytest.approx(math.exp(-10.0), rel=0.05)
    ab = sched.alphas_cumprod[[0, 1999]]
    snr = ab / (1 - ab)  # signal-to-noise ratio at the ends
    assert snr[0] > 1e5 and snr[1] < 1e-3


def test_schedule_rejects_bad_parameters():
    with pytest.raises(ValueError, match="num_train_timesteps"):
        LinearNoiseSchedule(1)
    with pytest.raises(ValueError, match="beta_start"):
        LinearNoiseSchedule(10, beta_start=0.1, beta_end=0.01)


def test_add_noise_formula_and_inverse():
    process = DDPMProcess()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 3, 8, 8, generator=g) - 0.5
    noise = torch.randn(3, 3, 8, 8, generator=g)
    t = torch.tensor([0, 700, 1999])
    xt = process.add_noise(x0, noise, t)
    ab = process.schedule.alphas_cumprod[t].view(3, 1, 1, 1)  # float64
    expected = ab.sqrt() * x0.double() + (1 - ab).sqrt() * noise.double()
    assert torch.allclose(xt.double(), expected, atol=1e-6)
    assert torch.allclose(xt[0], x0[0], atol=5e-3)  # t = 0: noise std 1e-3
    assert torch.allclose(process.predict_original(xt, noise, t), x0, atol=1e-3)
    assert torch.equal(process.training_target(x0, noise, t), noise)


def test_add_noise_preserves_unit_variance():
    process = DDPMProcess()
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, 3, 64, 64, generator=g)
    noise = torch.randn(4, 3, 64, 64, generator=g)
    xt = process.add_noise(x0, noise, torch.tensor([10, 500, 1000, 1900]))
    for sample in xt:
        assert sample.var().item() == pytest.approx(1.0, abs=0.05)


def test_sample_timesteps_are_seeded_and_in_range():
    process = DDPMProcess()
    a = process.sample_timesteps(1000, generator=torch.Generator().manual_seed(3))
    b = process.sample_timesteps(1000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert a.dtype == torch.int64
    assert 0 <= a.min() and a.max() < 2000
    assert a.float().mean().item() == pytest.approx(1000, rel=0.1)


def test_deprecated_scheduler_name_warns_and_is_the_process():
    import ttblur.diffusion
    import ttblur.diffusion.schedule

    for module in (ttblur.diffusion, ttblur.diffusion.schedule):
        with pytest.warns(DeprecationWarning, match="DDPMProcess"):
            cls = module.DDPMScheduler
        assert cls is DDPMProcess
    with pytest.raises(AttributeError):
        ttblur.diffusion.NoSuchName  # noqa: B018


def test_process_validates_timesteps():
    process = DDPMProcess()
    x = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"\(N,\)"):
        process.add_noise(x, x, torch.tensor([1]))
    with pytest.raises(ValueError, match=r"\[0, 2000\)"):
        process.add_noise(x, x, torch.tensor([1, 2000]))
    with pytest.raises(ValueError, match="integers"):
        process.add_noise(x, x, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="must match"):
        process.add_noise(x, x[:, :2], torch.tensor([1, 2]))


def test_gather_timesteps_shapes_for_broadcasting():
    table = torch.arange(10.0)
    out = gather_timesteps(table, torch.tensor([2, 7]), 4)
    assert out.shape == (2, 1, 1, 1)
    assert out.flatten().tolist() == [2.0, 7.0]
