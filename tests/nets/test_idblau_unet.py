import pytest
import torch
from pydantic import ValidationError

from ttblur.nets.idblau_unet import IDBlauConfig, IDBlauUNet, timestep_embedding


def test_official_configuration_sizes():
    cfg = IDBlauConfig.official()
    assert cfg == IDBlauConfig.preset("official")
    assert (cfg.in_channels, cfg.base_channels, cfg.channel_mults) == (9, 64, (1, 2, 3))
    assert (cfg.num_res_blocks, cfg.time_dim) == (2, 256)
    assert (cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end) == (2000, 1e-6, 1e-2)
    assert cfg.mag_norm == 147.0
    assert cfg.spatial_multiple == 4
    assert cfg.norm_groups == 0
    net = IDBlauUNet(cfg)
    # the official norm-free UNet: 9,498,627 parameters (counted by hand from the layer list
    # of the official models/diffusion_model.py); optional GroupNorm adds 11,392 affine weights
    assert sum(p.numel() for p in net.parameters()) == 9_498_627
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    with_norm = IDBlauUNet(cfg.model_copy(update={"norm_groups": 32}))
    assert sum(p.numel() for p in with_norm.parameters()) == 9_498_627 + 11_392
    # 17 residual blocks (6 down, 2 middle, 9 up) x 2 + the output norm
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in with_norm.modules()) == 35


def test_small_network_forward_shape_and_time_dependence():
    torch.manual_seed(0)
    net = IDBlauUNet(IDBlauConfig.preset("small")).eval()
    x = torch.randn(2, 9, 24, 20)
    with torch.no_grad():
        a = net(x, torch.tensor([0, 0]))
        b = net(x, torch.tensor([1500, 1500]))
        c = net(x, torch.tensor(0))
    assert a.shape == (2, 3, 24, 20)
    assert not torch.allclose(a, b)
    assert torch.equal(a, c)


def test_every_input_channel_influences_the_output():
    torch.manual_seed(1)
    net = IDBlauUNet(IDBlauConfig.small())
    x = torch.randn(1, 9, 16, 16, requires_grad=True)
    net(x, torch.tensor([100])).sum().backward()
    per_channel = x.grad.abs().sum(dim=(0, 2, 3))
    assert (per_channel > 0).all()


def test_timestep_embedding_values():
    emb = timestep_embedding(torch.tensor([0, 3]), 8)
    assert emb.shape == (2, 8)
    assert torch.equal(emb[0], torch.tensor([0.0, 0, 0, 0, 1, 1, 1, 1]))
    assert emb[1, 0].item() == pytest.approx(torch.sin(torch.tensor(3.0)).item(), abs=1e-6)


def test_round_trip_through_save_pretrained_is_exact(tmp_path):
    torch.manual_seed(2)
    net = IDBlauUNet(IDBlauConfig.small()).eval()
    net.save_pretrained(tmp_path)
    loaded = IDBlauUNet.from_pretrained(tmp_path)
    assert loaded.config == net.config
    x = torch.randn(1, 9, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x, torch.tensor([7])), loaded(x, torch.tensor([7])))


def test_input_checks():
    net = IDBlauUNet(IDBlauConfig.small())
    with pytest.raises(ValueError, match=r"\(N, 9, H, W\)"):
        net(torch.zeros(1, 6, 16, 16), torch.tensor([0]))
    with pytest.raises(ValueError, match="multiples of 2"):
        net(torch.zeros(1, 9, 15, 16), torch.tensor([0]))
    with pytest.raises(ValueError, match="timesteps"):
        net(torch.zeros(2, 9, 16, 16), torch.tensor([0, 1, 2]))


def test_config_validation():
    with pytest.raises(ValidationError, match="norm_groups"):
        IDBlauConfig(base_channels=24, norm_groups=32)
    with pytest.raises(ValidationError, match="channel_mults"):
        IDBlauConfig(channel_mults=())
    with pytest.raises(ValidationError):
        IDBlauConfig(unknown_key=1)
    with pytest.raises(ValueError, match="preset"):
        IDBlauConfig.preset("huge")  # type: ignore[arg-type]
