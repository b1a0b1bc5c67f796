import pytest
import torch

from ttblur.diffusion import DDIMSampler, LinearNoiseSchedule


def test_timesteps_follow_the_official_spacing():
    sampler = DDIMSampler(num_steps=20)
    steps = sampler.timesteps
    assert len(steps) == 20
    assert steps[0] == (1901, 1801)
    assert steps[-2] == (101, 1)
    assert steps[-1] == (1, 0)
    small = DDIMSampler(LinearNoiseSchedule(10), num_steps=3).timesteps
    assert small == [(7, 4), (4, 1), (1, 0)]


def oracle_for(x0, schedule):
    """Noise predictor that knows the clean sample: eps = (x - sqrt(ab) x0) / sqrt(1 - ab)."""

    def predict(x, t):
        ab = schedule.alphas_cumprod[t].float().view(-1, 1, 1, 1)
        return (x - ab.sqrt() * x0) / (1 - ab).sqrt()

    return predict


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sampling_with_an_oracle_recovers_the_clean_sample(eta):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 8, 8, generator=g) - 0.5
    sampler = DDIMSampler(num_steps=20, eta=eta)
    out = sampler.sample(oracle_for(x0, sampler.schedule), (2, 3, 8, 8), generator=g)
    # the last step lands on alpha_bar_0 = 1 - 1e-6: within ~1e-3 * |noise| of x0
    assert (out - x0).abs().max().item() < 5e-3


def test_deterministic_given_seed_and_eta_noise_depends_on_it():
    def model(x, t):
        return 0.3 * x

    shape = (1, 3, 6, 6)
    for eta in (0.0, 0.7):
        sampler = DDIMSampler(num_steps=5, eta=eta)
        a = sampler.sample(model, shape, generator=torch.Generator().manual_seed(1))
        b = sampler.sample(model, shape, generator=torch.Generator().manual_seed(1))
        c = sampler.sample(model, shape, generator=torch.Generator().manual_seed(2))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_eta_zero_step_is_the_ddim_update():
    sampler = DDIMSampler(num_steps=4)
    ab = sampler.schedule.alphas_cumprod
    x = torch.randn(1, 3, 4, 4)
    eps = torch.randn(1, 3, 4, 4)
    t, s = 1500, 1000
    x0 = (x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
    expected = ab[s].sqrt() * x0 + (1 - ab[s]).sqrt() * eps
    assert torch.allclose(sampler.step(eps, t, s, x), expected.float(), atol=1e-4)


def test_clip_sample_bounds_the_clean_estimate():
    sampler = DDIMSampler(num_steps=2, clip_sample=0.5)
    ab = sampler.schedule.alphas_cumprod
    x = torch.full((1, 3, 2, 2), 5.0)
    eps = torch.zeros_like(x)
    out = sampler.step(eps, 1001, 1, x)
    # x0 = 5 / sqrt(ab) is clipped to 0.5; eps is re-derived from the clipped x0
    eps_clipped = (x - ab[1001].sqrt() * 0.5) / (1 - ab[1001]).sqrt()
    expected = ab[1].sqrt() * 0.5 + (1 - ab[1]).sqrt() * eps_clipped
    assert torch.allclose(out, expected.float(), atol=1e-4)


def test_initial_noise_and_progress_bar():
    sampler = DDIMSampler(num_steps=3)
    init = torch.randn(1, 3, 4, 4)
    a = sampler.sample(lambda x, t: torch.zeros_like(x), (1, 3, 4, 4), initial_noise=init)
    b = sampler.sample(
        lambda x, t: torch.zeros_like(x), (1, 3, 4, 4), initial_noise=init, progress=True
    )
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="initial_noise"):
        sampler.sample(lambda x, t: x, (1, 3, 5, 5), initial_noise=init)


def test_model_receives_int64_timesteps_of_batch_size():
    seen = []

    def model(x, t):
        seen.append((t.dtype, tuple(t.shape), int(t[0])))
        return torch.zeros_like(x)

    DDIMSampler(num_steps=4).sample(model, (3, 3, 4, 4), generator=torch.Generator())
    assert seen == [(torch.int64, (3,), t) for t in (1501, 1001, 501, 1)]


def test_invalid_parameters():
    with pytest.raises(ValueError, match="num_steps"):
        DDIMSampler(num_steps=0)
    with pytest.raises(ValueError, match="num_steps"):
        DDIMSampler(num_steps=2000)
    with pytest.raises(ValueError, match="eta"):
        DDIMSampler(eta=-1.0)
    with pytest.raises(ValueError, match="prev_timestep"):
        DDIMSampler().step(torch.zeros(1), 5, 5, torch.zeros(1))
