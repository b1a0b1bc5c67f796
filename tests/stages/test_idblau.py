import pytest
import torch

from ttblur.config import SynthesisConfig
from ttblur.nets.idblau_unet import IDBlauConfig, IDBlauUNet
from ttblur.protocols import BlurSynthesizer
from ttblur.stages.idblau import MISSING_WEIGHTS_HELP, IDBlau


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run faster on one thread, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_net():
    torch.manual_seed(0)
    return IDBlauUNet(IDBlauConfig.small())


def inputs(n=2, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    sharp = torch.rand(n, 3, h, w, generator=g)
    cond = torch.zeros(n, 3, h, w)
    cond[:, 0] = 1.0
    cond[:, 2] = 14.7  # px (z = 0.1 in the network's 147 px scale)
    return sharp, cond


def test_twenty_ddim_steps_run_and_return_images(small_net):
    calls = []
    small_net.register_forward_hook(lambda m, a, o: calls.append(a[1].tolist()))
    model = IDBlau(small_net)
    assert isinstance(model, BlurSynthesizer)
    sharp, cond = inputs()
    out = model(sharp, cond)
    assert out.shape == sharp.shape and out.dtype == sharp.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert len(calls) == 20
    assert calls[0] == [1901, 1901] and calls[-1] == [1, 1]
    assert not out.requires_grad


def test_same_seed_same_output_and_seeds_differ(small_net):
    sharp, cond = inputs()
    a = IDBlau(small_net, num_steps=4, seed=3)(sharp, cond)
    b = IDBlau(small_net, num_steps=4, seed=3)(sharp, cond)
    c = IDBlau(small_net, num_steps=4, seed=4)(sharp, cond)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    g = torch.Generator().manual_seed(9)
    d = IDBlau(small_net, num_steps=4)(sharp, cond, generator=g)
    e = IDBlau(small_net, num_steps=4)(sharp, cond, generator=torch.Generator().manual_seed(9))
    assert torch.equal(d, e)


def test_output_depends_on_the_sharp_image_and_condition(small_net):
    sharp, cond = inputs()
    model = IDBlau(small_net, num_steps=3)
    ref = model(sharp, cond, generator=torch.Generator().manual_seed(0))
    other_cond = cond.clone()
    other_cond[:, 2] = 0.9
    moved = model(sharp, other_cond, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(ref, moved)


def test_batching_does_not_change_results(small_net):
    sharp, cond = inputs(n=3)
    full = IDBlau(small_net, num_steps=3, batch_size=3)(sharp, cond)
    # one generator per call: batch_size 3 in one chunk draws the same noise as the full batch
    again = IDBlau(small_net, num_steps=3, batch_size=8)(sharp, cond)
    assert torch.equal(full, again)
    chunked = IDBlau(small_net, num_steps=3, batch_size=1)(sharp, cond)
    assert chunked.shape == full.shape


def test_sizes_that_are_not_multiples_are_padded_and_cropped(small_net):
    sharp, cond = inputs(n=1, h=15, w=17)
    out = IDBlau(small_net, num_steps=2)(sharp, cond)
    assert out.shape == (1, 3, 15, 17)


def test_round_trip_save_and_load_is_exact(small_net, tmp_path):
    model = IDBlau(small_net, num_steps=3, seed=1)
    folder = model.save_pretrained(tmp_path / "idblau")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = IDBlau.from_pretrained(folder, num_steps=3, seed=1)
    for key, value in small_net.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value)
    sharp, cond = inputs()
    assert torch.equal(model(sharp, cond), loaded(sharp, cond))


def test_missing_weights_give_a_clear_error():
    with pytest.raises(FileNotFoundError) as info:
        IDBlau.from_config(SynthesisConfig(name="idblau"))
    message = str(info.value)
    assert "python -m ttblur.training.idblau" in message
    assert "Hub repo id" in message
    assert "ships none" in message
    with pytest.raises(FileNotFoundError, match=r"python -m ttblur\.training\.idblau"):
        IDBlau.from_pretrained("./no/such/folder")
    assert "save_pretrained" in MISSING_WEIGHTS_HELP


def test_from_config_reads_the_section(small_net, tmp_path):
    small_net.save_pretrained(tmp_path)
    section = SynthesisConfig(
        name="idblau", weights=str(tmp_path), num_steps=5, eta=0.3, batch_size=2
    )
    model = IDBlau.from_config(section, seed=7)
    assert (model.sampler.num_steps, model.sampler.eta, model.batch_size) == (5, 0.3, 2)
    assert (model.mag_norm, model.seed) == (147.0, 7)  # the network's own scale
    with pytest.warns(DeprecationWarning, match="mag_norm"):
        legacy = IDBlau.from_config(section, mag_norm=205.0, seed=7)
    assert legacy.mag_norm == 147.0


def test_pixel_condition_is_converted_to_the_network_scale(small_net):
    model = IDBlau(small_net)  # net trained with 147 px
    assert model.mag_norm == 147.0
    cond = torch.tensor([0.6, 0.8, 73.5]).view(1, 3, 1, 1).repeat(1, 1, 2, 2)
    cond[0, 2, 0, 0] = 220.5
    net_cond = model.network_condition(cond)
    assert torch.equal(net_cond[:, :2], cond[:, :2])
    assert net_cond[0, 2, 0, 1].item() == pytest.approx(0.5)
    assert net_cond[0, 2, 0, 0].item() == 1.0  # 220.5 px saturates at the net's 147 px
    wider = IDBlau(small_net, mag_norm=294.0)  # its own scale, overriding the network's
    assert wider.network_condition(cond)[0, 2, 0, 0].item() == pytest.approx(0.75)


def test_invalid_inputs_raise(small_net):
    model = IDBlau(small_net, num_steps=2)
    sharp, cond = inputs()
    with pytest.raises(ValueError, match="condition must be"):
        model(sharp, cond[:, :2])
    bad = cond.clone()
    bad[0, 2, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(sharp, bad)
    with pytest.raises(ValueError, match="IDBlauUNet"):
        IDBlau(torch.nn.Conv2d(9, 3, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="9 input"):
        IDBlau(IDBlauUNet(IDBlauConfig.small().model_copy(update={"in_channels": 6})))


def test_round_trip_through_offline_hub_cache_and_push(small_net, tmp_path, hub_cache, fake_hub):
    model = IDBlau(small_net, num_steps=2, seed=1)
    hub_cache.add("ttblur-test/idblau-small", model.save_pretrained(tmp_path / "w"))
    sharp, cond = inputs(n=1, h=8, w=8)
    expected = model(sharp, cond, generator=torch.Generator().manual_seed(0))
    loaded = IDBlau.from_pretrained("ttblur-test/idblau-small", num_steps=2)
    assert loaded.network.config == small_net.config
    assert torch.equal(loaded(sharp, cond, generator=torch.Generator().manual_seed(0)), expected)
    # the synthesizer publishes its network's files: IDBlauUNet and IDBlau both read them
    model.push_to_hub("ttblur-test/idblau-pushed")
    (uploaded,) = fake_hub.uploads
    assert '"_class_name": "IDBlauUNet"' in (uploaded / "config.json").read_text()
    assert IDBlauUNet.from_pretrained(uploaded).config == small_net.config
    again = IDBlau.from_pretrained(uploaded, num_steps=2)
    assert torch.equal(again(sharp, cond, generator=torch.Generator().manual_seed(0)), expected)
    assert fake_hub.calls[-1][1]["commit_message"] == "Upload IDBlau weights"


def test_unreachable_hub_error_keeps_the_training_help(hub_cache):
    from ttblur.hub import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError) as info:
        IDBlau.from_pretrained("ttblur-test/not-cached")
    message = str(info.value)
    assert "'ttblur-test/not-cached'" in message and "HF_HUB_OFFLINE" in message
    assert "python -m ttblur.training.idblau" in message
