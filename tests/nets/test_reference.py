import pytest
import torch

from ttblur.hub import shipped_weights_dir
from ttblur.nets.reference import (
    REFERENCE_MODELS,
    ReferenceConfig,
    ReferenceDeblurNet,
    ReferenceUNet,
    ReferenceUNetConfig,
    reference_model,
)
from ttblur.specs import check_model, get_spec


def test_forward_shapes_and_identity_at_init():
    torch.manual_seed(0)
    net = ReferenceDeblurNet(ReferenceConfig(features=(8, 8, 16), num_blocks=1))
    clip = torch.rand(2, 7, 3, 24, 40)
    out = net(clip)
    assert out.shape == (2, 3, 3, 24, 40)
    # the last convolution starts at zero: output frame k is input frame k + 2
    assert torch.allclose(out, clip[:, 2:5], atol=1e-6)


def test_centre_frame_alignment_after_training_like_change():
    torch.manual_seed(0)
    net = ReferenceDeblurNet(ReferenceConfig(features=(8, 8, 16), num_blocks=1))
    torch.nn.init.normal_(net.out.weight, std=0.05)
    clip = torch.rand(1, 6, 3, 16, 16)
    both = net(clip)
    assert both.shape == (1, 2, 3, 16, 16)
    # output frame 1 depends only on input frames 1..5 (window of 5 around frame 3)
    assert torch.allclose(both[:, 1], net(clip[:, 1:6])[:, 0], atol=1e-5)
    assert torch.allclose(both[:, 0], net(clip[:, 0:5])[:, 0], atol=1e-5)


def test_default_size_and_spec():
    net = ReferenceDeblurNet()
    params = sum(p.numel() for p in net.parameters())
    assert 100_000 <= params <= 400_000
    assert net.spec is get_spec("reference")
    assert check_model(net, net.spec) is net.spec
    other = ReferenceDeblurNet(ReferenceConfig(features=(4, 4, 4), past_frames=1, future_frames=0))
    assert (other.spec.past_frames, other.spec.future_frames) == (1, 0)
    assert other(torch.rand(1, 4, 3, 8, 8)).shape == (1, 3, 3, 8, 8)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 3, 3, 16, 16), "at least 5 frames"),
        ((1, 5, 3, 12, 16), "multiples of 8"),
        ((5, 3, 16, 16), "expected"),
    ],
)
def test_forward_rejects_bad_input(shape, message):
    with pytest.raises(ValueError, match=message):
        ReferenceDeblurNet(ReferenceConfig(features=(4, 4, 4)))(torch.rand(*shape))


def test_config_validation():
    with pytest.raises(ValueError):
        ReferenceConfig(features=(0, 4, 4))
    with pytest.raises(ValueError):
        ReferenceConfig(num_blocks=-1)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    net = ReferenceDeblurNet(ReferenceConfig(features=(8, 8, 16), num_blocks=2))
    torch.nn.init.normal_(net.out.weight, std=0.05)
    net.save_pretrained(tmp_path / "w")
    loaded = reference_model(tmp_path / "w")
    assert loaded.config == net.config and not loaded.training
    clip = torch.rand(1, 5, 3, 16, 16)
    assert torch.equal(loaded(clip), net.eval()(clip))


def test_shipped_weights_load_offline_and_deblur(no_network):
    folder = shipped_weights_dir("reference")
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 5_000_000
    model = reference_model()
    assert isinstance(model, ReferenceDeblurNet) and not model.training
    clip = torch.rand(1, 5, 3, 32, 32)
    with torch.no_grad():
        out = model(clip)
    assert out.shape == (1, 1, 3, 32, 32)
    assert torch.isfinite(out).all()
    # a trained network is not the identity it starts as
    assert (out - clip[:, 2]).abs().mean() > 1e-3


def _psnr(a, b):
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def test_shipped_weights_help_on_source_domain_and_not_on_a_target(no_network):
    # held-out photo and an evaluation seed the training never used
    synth = pytest.importorskip("ttblur.synth")
    from ttblur.inference import deblur

    model = reference_model()
    gains = {}
    for preset in ("gopro", "bsd-1ms8ms"):
        video = synth.make_video(
            "astronaut", preset=preset, num_frames=7, size=(96, 128), seed=10_007
        )
        restored = deblur(model, video.blurry, progress=False)
        gains[preset] = _psnr(restored, video.sharp) - _psnr(video.blurry, video.sharp)
    assert gains["gopro"] > 0.2  # it deblurs its own (source) domain
    assert gains["bsd-1ms8ms"] < gains["gopro"]  # and does worse under the domain shift


def test_shipped_base_is_half_precision_and_deblurs_better_than_tiny(no_network):
    synth = pytest.importorskip("ttblur.synth")
    from ttblur.inference import deblur

    file = shipped_weights_dir("reference-base") / "model.safetensors"
    assert file.stat().st_size < 8_000_000  # float16: about 5.5 MB (the wheel's limit is 16)
    base, tiny = reference_model("base"), reference_model("tiny")
    assert isinstance(base, ReferenceUNet) and not base.training
    assert all(p.dtype == torch.float32 for p in base.parameters())
    assert 2_500_000 < sum(p.numel() for p in base.parameters()) < 4_000_000
    gains: dict[tuple[str, str], float] = {}
    for preset in ("gopro", "bsd-1ms8ms"):  # held-out photo, a seed training never used
        video = synth.make_video(
            "astronaut", preset=preset, num_frames=7, size=(96, 128), seed=10_007
        )
        blurry = _psnr(video.blurry, video.sharp)
        for name, model in (("base", base), ("tiny", tiny)):
            restored = deblur(model, video.blurry, progress=False)
            gains[name, preset] = _psnr(restored, video.sharp) - blurry
    assert gains["base", "gopro"] > max(1.0, gains["tiny", "gopro"])
    # where tiny breaks the frames (a shifted domain), base still deblurs
    assert gains["tiny", "bsd-1ms8ms"] < -3.0 and gains["base", "bsd-1ms8ms"] > 0.5


def test_round_trip_through_offline_hub_cache_and_push(tmp_path, hub_cache, fake_hub):
    torch.manual_seed(2)
    net = ReferenceDeblurNet(ReferenceConfig(features=(4, 4, 8), num_blocks=1)).eval()
    torch.nn.init.normal_(net.out.weight, std=0.05)
    hub_cache.add("ttblur-test/reference-tiny", net.save_pretrained(tmp_path / "w"))
    clip = torch.rand(1, 5, 3, 8, 8)
    with torch.no_grad():
        expected = net(clip)
        loaded = reference_model("ttblur-test/reference-tiny")
        assert loaded.config == net.config and torch.equal(loaded(clip), expected)
        net.push_to_hub("ttblur-test/reference-pushed", private=False)
        (uploaded,) = fake_hub.uploads
        assert torch.equal(ReferenceDeblurNet.from_pretrained(uploaded)(clip), expected)
    assert fake_hub.calls[0][1]["private"] is False


def _small_unet(**changes):
    return ReferenceUNet(ReferenceUNetConfig(widths=(8, 8, 16), mid_blocks=1, **changes))


@pytest.mark.parametrize("block", ["residual", "gated"])
def test_unet_shapes_identity_at_init_and_window_alignment(block):
    torch.manual_seed(0)
    net = _small_unet(block=block)
    clip = torch.rand(2, 7, 3, 24, 40)
    assert torch.allclose(net(clip), clip[:, 2:5], atol=1e-6)  # zero-initialised last conv
    torch.nn.init.normal_(net.out.weight, std=0.05)
    for parameter in net.parameters():  # wake every zero-initialised residual branch
        if not parameter.any():
            torch.nn.init.normal_(parameter, std=0.05)
    both = net(clip[:1, :6])
    assert both.shape == (1, 2, 3, 24, 40)
    # output frame k depends only on input frames k .. k + 4
    assert torch.allclose(both[:, 1], net(clip[:1, 1:6])[:, 0], atol=1e-5)
    assert torch.allclose(both[:, 0], net(clip[:1, 0:5])[:, 0], atol=1e-5)
    assert net.spec is get_spec("reference")
    assert check_model(net, net.spec) is net.spec
    short = _small_unet(past_frames=1, future_frames=0)
    assert (short.spec.past_frames, short.spec.future_frames) == (1, 0)
    assert short(torch.rand(1, 4, 3, 8, 8)).shape == (1, 3, 3, 8, 8)


def test_gated_block_starts_as_identity_and_normalises_channels():
    torch.manual_seed(1)
    block = _small_unet(block="gated").mid_body[0]
    x = torch.randn(2, 16, 6, 5) * 3.0 + 2.0
    norm = block.norm1(x)
    assert torch.allclose(norm.mean(dim=1), torch.zeros(2, 6, 5), atol=1e-5)
    assert torch.allclose(norm.var(dim=1, unbiased=False), torch.ones(2, 6, 5), atol=1e-4)
    assert torch.equal(block(x), x)
    torch.nn.init.constant_(block.alpha, 0.5)
    moved = block(x)
    assert moved.shape == x.shape and not torch.allclose(moved, x)
    # the global channel attention lets one pixel reach every other one (a shift of all
    # channels alike would vanish in the norm)
    x2 = x.clone()
    x2[:, :, 0, 0] += torch.linspace(-1.0, 1.0, 16)
    assert ((block(x2) - moved).abs().amax(dim=(0, 1)) > 1e-7).all()


def test_unet_default_size_is_what_users_adapt():
    params = sum(p.numel() for p in ReferenceUNet().parameters())
    assert 2_000_000 <= params <= 4_000_000


@pytest.mark.parametrize(
    "shape, message",
    [((1, 3, 3, 16, 16), "at least 5 frames"), ((1, 5, 3, 12, 16), "multiples of 8")],
)
def test_unet_rejects_bad_input(shape, message):
    with pytest.raises(ValueError, match=message):
        _small_unet()(torch.rand(*shape))


def test_unet_config_validation():
    with pytest.raises(ValueError, match="widths"):
        ReferenceUNetConfig(widths=(0, 4, 4))
    with pytest.raises(ValueError, match="dec_blocks"):
        ReferenceUNetConfig(dec_blocks=(1, -1))


def test_reference_model_reads_the_class_from_the_folder(tmp_path):
    torch.manual_seed(3)
    unet = _small_unet().eval()
    torch.nn.init.normal_(unet.out.weight, std=0.05)
    unet.save_pretrained(tmp_path / "unet")
    loaded = reference_model(tmp_path / "unet")
    assert isinstance(loaded, ReferenceUNet) and loaded.config == unet.config
    clip = torch.rand(1, 5, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(clip), unet(clip))
    tiny = reference_model("tiny")
    assert isinstance(tiny, ReferenceDeblurNet)
    assert set(REFERENCE_MODELS) == {"tiny", "base"}


def test_reference_model_reads_config_json_once(tmp_path, monkeypatch):
    import ttblur.io.weights as weights_module
    import ttblur.nets.reference as reference_module

    _small_unet().save_pretrained(tmp_path / "unet")
    reads: list[str] = []
    real_read = weights_module.read_config_json

    def counting(folder, **kwargs):
        reads.append(str(folder))
        return real_read(folder, **kwargs)

    monkeypatch.setattr(reference_module, "read_config_json", counting)
    monkeypatch.setattr(weights_module, "read_config_json", counting)
    assert isinstance(reference_model(tmp_path / "unet"), ReferenceUNet)
    assert reads == [str(tmp_path / "unet")]


def test_reference_model_names_a_mismatched_class(tmp_path):
    import json

    _small_unet().save_pretrained(tmp_path / "unet")
    config_path = tmp_path / "unet" / "config.json"
    raw = json.loads(config_path.read_text())
    raw["_class_name"] = "SomethingElse"
    config_path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="holds weights of SomethingElse"):
        reference_model(tmp_path / "unet")


def test_an_unknown_reference_name_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder named "huge" here
    with pytest.raises(ValueError, match=r"unknown reference network 'huge'.*'tiny', 'base'"):
        reference_model("huge")
