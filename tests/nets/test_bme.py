import json

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from ttblur.hub import shipped_weights_dir
from ttblur.nets.bme import BlurMagnitudeEstimator, BMEConfig, ResNet50Encoder


def _tiny_config(**overrides) -> BMEConfig:
    values = dict(
        variant="lite",
        encoder_widths=(4, 6, 8, 8, 8),
        encoder_blocks=(0, 1, 0, 0, 1),
        fusion_width=4,
        fused_widths=(4, 4, 4, 8, 8),
        decoder_widths=(4, 4, 4, 8, 8),
        decoder_blocks=1,
        head_width=4,
    )
    values.update(overrides)
    return BMEConfig(**values)


@pytest.fixture
def tiny() -> BlurMagnitudeEstimator:
    torch.manual_seed(0)
    net = BlurMagnitudeEstimator(_tiny_config())
    # move the output away from the clamp so that the range checks see real values
    torch.nn.init.constant_(net.head.bias, 0.3)
    return net.eval()


def test_config_fills_variant_defaults():
    lite = BMEConfig()
    assert lite.variant == "lite" and lite.mag_norm == 205.0
    assert lite.encoder_widths == (16, 24, 32, 48, 64)
    paper = BMEConfig(variant="paper")
    assert paper.encoder_widths == (64, 256, 512, 1024, 2048)
    assert paper.decoder_blocks == 5 and paper.fusion_width == 64
    assert paper.input_mean == pytest.approx((0.485, 0.456, 0.406))
    # round trip through JSON keeps every (filled) value
    assert BMEConfig.model_validate_json(paper.model_dump_json()) == paper


def test_config_rejects_bad_values():
    with pytest.raises(ValidationError, match="ResNet-50 widths"):
        BMEConfig(variant="paper", encoder_widths=(16, 24, 32, 48, 64))
    with pytest.raises(ValidationError):
        BMEConfig(variant="tiny")
    with pytest.raises(ValidationError):
        BMEConfig(mag_norm=0)
    with pytest.raises(ValidationError):
        BMEConfig(unknown=1)


@pytest.mark.parametrize("size", [(37, 50), (5, 7), (64, 33), (1, 1)])
def test_forward_any_size_shape_and_range(tiny, size):
    frames = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = tiny(frames)
        raw = tiny(frames, clamp=False)
    assert out.shape == (2, 1, *size)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(out, raw.clamp(0, 1))


def test_predict_is_pixels_batched_and_restores_mode(tiny):
    frames = torch.rand(5, 3, 40, 72)
    tiny.train()
    px = tiny.predict(frames, batch_size=2)
    assert tiny.training  # mode restored
    assert px.shape == (5, 1, 40, 72) and px.dtype == torch.float32
    assert not px.requires_grad
    tiny.eval()
    expected = tiny(frames) * 205.0
    assert torch.allclose(px, expected, atol=1e-4)
    assert torch.allclose(tiny.predict(frames, batch_size=5), px, atol=1e-4)
    assert float(px.max()) <= 205.0 and float(px.min()) >= 0.0
    # the bias moved the output inside (0, 1): real magnitudes, not the clamp
    assert 0.0 < float(px.mean()) < 205.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_forward_takes_frames_of_any_float_dtype(tiny, dtype):
    """Accepted by the input check, then a raw dtype mismatch inside the first conv."""
    frames = torch.rand(1, 3, 37, 50)
    with torch.no_grad():
        out = tiny(frames.to(dtype))
        expected = tiny(frames)
    assert out.dtype == torch.float32
    assert torch.allclose(out, expected, atol=2e-3)


def test_predict_runs_a_float64_network_on_float32_frames(tiny):
    # A network built under torch.set_default_dtype(torch.float64) holds float64 weights;
    # predict feeds it its own dtype and still returns float32 pixels.
    frames = torch.rand(3, 3, 40, 72)
    expected = tiny.predict(frames)
    px = tiny.double().predict(frames)
    assert px.dtype == torch.float32
    assert torch.allclose(px, expected, atol=1e-3)


def test_padding_does_not_leak_into_cropped_output(tiny):
    # the prediction for the top-left region depends on the content, not on stale padding:
    # a 64x64 input (no padding) and the same content cropped to 60x60 agree in the interior
    frames = torch.rand(1, 3, 64, 64)
    full = tiny(frames, clamp=False)
    cropped = tiny(frames[..., :60, :60], clamp=False)
    assert cropped.shape == (1, 1, 60, 60)
    assert torch.allclose(full[..., 8:40, 8:40], cropped[..., 8:40, 8:40], atol=0.25)
    assert not torch.allclose(full[..., :60, :60], cropped, atol=1e-6)  # padding matters a bit


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        (torch.rand(3, 8, 8), r"\(N, 3, H, W\)"),
        (torch.rand(1, 4, 8, 8), r"\(N, 3, H, W\)"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "floating point"),
        (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
        (torch.full((1, 3, 8, 8), 2.0), r"\[0, 1\]"),
        (torch.full((1, 3, 8, 8), -0.5), r"\[0, 1\]"),
    ],
)
def test_input_checks(tiny, frames, match):
    with pytest.raises(ValueError, match=match):
        tiny(frames)
    with pytest.raises(ValueError, match=match):
        tiny.predict(frames)


def test_predict_rejects_bad_batch_size(tiny):
    with pytest.raises(ValueError, match="batch_size"):
        tiny.predict(torch.rand(1, 3, 8, 8), batch_size=0)


def test_predict_empty_batch(tiny):
    assert tiny.predict(torch.rand(0, 3, 9, 11)).shape == (0, 1, 9, 11)


def test_save_load_round_trip(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "w")
    raw = json.loads((tmp_path / "w" / "config.json").read_text())
    assert raw["_class_name"] == "BlurMagnitudeEstimator"
    assert raw["encoder_widths"] == [4, 6, 8, 8, 8]
    loaded = BlurMagnitudeEstimator.from_pretrained(tmp_path / "w")
    assert not loaded.training
    assert loaded.config == tiny.config
    frames = torch.rand(2, 3, 33, 47)
    assert torch.equal(loaded.predict(frames), tiny.predict(frames))


def test_strict_loading_errors(tiny, tmp_path):
    folder = tiny.save_pretrained(tmp_path / "w")
    state = load_file(str(folder / "model.safetensors"))
    # a missing key
    key = next(k for k in state if k.startswith("head."))
    partial = {k: v for k, v in state.items() if k != key}
    save_file(partial, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="missing"):
        BlurMagnitudeEstimator.from_pretrained(folder)
    # an unexpected key
    save_file({**state, "extra.weight": torch.zeros(1)}, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="unexpected"):
        BlurMagnitudeEstimator.from_pretrained(folder)
    # a config whose widths do not match the weights
    save_file(state, str(folder / "model.safetensors"))
    raw = json.loads((folder / "config.json").read_text())
    raw["head_width"] = 6
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="shape mismatch"):
        BlurMagnitudeEstimator.from_pretrained(folder)
    # weights of another class
    raw["_class_name"] = "ReferenceDeblurNet"
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="ReferenceDeblurNet"):
        BlurMagnitudeEstimator.from_pretrained(folder)


def test_paper_variant_shape_and_torchvision_names(tmp_path):
    torch.manual_seed(0)
    net = BlurMagnitudeEstimator(BMEConfig(variant="paper")).eval()
    assert 20e6 < sum(p.numel() for p in net.parameters()) < 40e6
    out = net(torch.rand(1, 3, 45, 70))
    assert out.shape == (1, 1, 45, 70)
    # a torchvision-style resnet50 state dict (with the classifier) loads into the encoder
    state = {
        k: torch.randn_like(v) if v.is_floating_point() else v
        for k, v in net.encoder.state_dict().items()
    }
    state["fc.weight"] = torch.zeros(1000, 2048)
    state["fc.bias"] = torch.zeros(1000)
    torch.save(state, tmp_path / "resnet50.pth")
    save_file(state, str(tmp_path / "resnet50.safetensors"))
    net.encoder.load_torchvision(tmp_path / "resnet50.pth")
    assert torch.equal(net.encoder.layer3[2].conv2.weight, state["layer3.2.conv2.weight"])
    assert torch.equal(net.encoder.bn1.running_var, state["bn1.running_var"])
    loaded = BlurMagnitudeEstimator(
        BMEConfig(variant="paper"), encoder_weights=tmp_path / "resnet50.safetensors"
    )
    assert torch.equal(
        loaded.encoder.layer4[0].downsample[0].weight, state["layer4.0.downsample.0.weight"]
    )
    del state["layer4.2.bn3.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"layer4\.2\.bn3\.weight"):
        net.encoder.load_torchvision(tmp_path / "broken.pth")
    with pytest.raises(FileNotFoundError):
        net.encoder.load_torchvision(tmp_path / "none.pth")
    assert isinstance(net.encoder, ResNet50Encoder)


def test_lite_rejects_encoder_weights(tmp_path):
    with pytest.raises(ValueError, match="variant='paper'"):
        BlurMagnitudeEstimator(BMEConfig(), encoder_weights=tmp_path / "x.pth")


def test_shipped_default_loads_offline_and_is_small(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = shipped_weights_dir("bme-lite")
    assert (folder / "model.safetensors").stat().st_size < 5 * 2**20
    bme = BlurMagnitudeEstimator.from_pretrained()
    assert bme.config.variant == "lite" and bme.mag_norm == 205.0
    assert not bme.training
    out = bme.predict(torch.rand(1, 3, 50, 61))
    assert out.shape == (1, 1, 50, 61)


def test_round_trip_through_folder_offline_hub_cache_and_push(tiny, tmp_path, hub_cache, fake_hub):
    folder = tiny.save_pretrained(tmp_path / "w")
    hub_cache.add("ttblur-test/bme-tiny", folder)
    frames = torch.rand(1, 3, 20, 24)
    expected = tiny.predict(frames)
    for source in (folder, str(folder), "ttblur-test/bme-tiny"):
        loaded = BlurMagnitudeEstimator.from_pretrained(source)
        assert loaded.config == tiny.config and not loaded.training
        assert torch.equal(loaded.predict(frames), expected)
    tiny.push_to_hub("ttblur-test/bme-pushed")
    (uploaded,) = fake_hub.uploads
    assert sorted(p.name for p in uploaded.iterdir()) == ["config.json", "model.safetensors"]
    assert torch.equal(BlurMagnitudeEstimator.from_pretrained(uploaded).predict(frames), expected)
