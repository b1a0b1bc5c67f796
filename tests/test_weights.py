"""ttblur.io.weights on every kind of network: ttblur's own (PretrainedMixin), RAFT (a
wrapper) and a user's nn.Module (load_weights / save_weights).

For each: a round trip through a local folder and through the offline Hub cache, a pinned
revision, and the strict key / shape errors."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from ttblur.io.weights import (
    InvalidWeightsError,
    PretrainedMixin,
    WeightsNotFoundError,
    load_weights,
    read_state_dict,
    save_weights,
    shipped_weights_dir,
)
from ttblur.nets.bme import BlurMagnitudeEstimator, BMEConfig
from ttblur.nets.idblau_unet import IDBlauConfig, IDBlauUNet
from ttblur.nets.reference import (
    ReferenceConfig,
    ReferenceDeblurNet,
    ReferenceUNet,
    ReferenceUNetConfig,
    reference_model,
)
from ttblur.stages.flow import RAFTFlow


def _bme(width: int = 4) -> BlurMagnitudeEstimator:
    return BlurMagnitudeEstimator(
        BMEConfig(
            variant="lite",
            encoder_widths=(width, 6, 8, 8, 8),
            encoder_blocks=(0, 1, 0, 0, 1),
            fusion_width=4,
            fused_widths=(4, 4, 4, 8, 8),
            decoder_widths=(4, 4, 4, 8, 8),
            decoder_blocks=1,
            head_width=4,
        )
    )


def _idblau(width: int = 8) -> IDBlauUNet:
    config = IDBlauConfig.small()
    return IDBlauUNet(config.model_copy(update={"base_channels": width}))


def _reference(width: int = 4) -> ReferenceDeblurNet:
    return ReferenceDeblurNet(ReferenceConfig(features=(width, 8, 8), num_blocks=1))


def _reference_unet(width: int = 4) -> ReferenceUNet:
    return ReferenceUNet(ReferenceUNetConfig(widths=(width, 8, 8)))


#: Every network ttblur defines, as ``build(width)``: two widths give two architectures.
NETWORKS: dict[str, Callable[[int], PretrainedMixin]] = {
    "BlurMagnitudeEstimator": _bme,
    "IDBlauUNet": _idblau,
    "ReferenceDeblurNet": _reference,
    "ReferenceUNet": _reference_unet,
}


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(params=sorted(NETWORKS))
def build(request: pytest.FixtureRequest) -> Callable[[int], PretrainedMixin]:
    torch.manual_seed(0)
    return NETWORKS[request.param]


def test_every_network_is_a_hub_mixin_with_ttblur_rules(build) -> None:
    net = build(4)
    assert isinstance(net, PyTorchModelHubMixin) and isinstance(net, PretrainedMixin)


def test_round_trip_through_a_folder_and_the_offline_hub_cache(build, tmp_path, hub_cache):
    net = build(4)
    cls = type(net)
    folder = net.save_pretrained(tmp_path / "w")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["_class_name"] == cls.__name__
    hub_cache.add("ttblur-test/net", folder)
    for source in (folder, str(folder), "ttblur-test/net"):
        loaded = cls.from_pretrained(source)
        assert not loaded.training
        assert loaded.config == net.config
        assert _same_weights(loaded, net)


def test_half_precision_folder_is_smaller_and_loads_into_float32(build, tmp_path):
    net = build(4)
    full = net.save_pretrained(tmp_path / "full")
    half = net.save_pretrained(tmp_path / "half", dtype=torch.float16)
    stored = read_state_dict(half / "model.safetensors")
    floats = [k for k, v in net.state_dict().items() if v.is_floating_point()]
    assert floats and all(stored[k].dtype == torch.float16 for k in floats)
    size = (half / "model.safetensors").stat().st_size
    assert size < 0.6 * (full / "model.safetensors").stat().st_size
    loaded = type(net).from_pretrained(half)
    for key, value in net.state_dict().items():
        got = loaded.state_dict()[key]
        assert got.dtype == value.dtype, key
        assert torch.equal(got, value.half().to(value.dtype) if key in floats else value), key
    with pytest.raises(ValueError, match="floating-point dtype"):
        net.save_pretrained(tmp_path / "int", dtype=torch.int8)


def test_a_half_precision_save_that_would_overflow_is_refused(build, tmp_path):
    net = build(4)
    name, param = next(iter(net.named_parameters()))
    with torch.no_grad():
        param.view(-1)[0] = 1e5  # beyond float16's 65504: it would be stored as inf
    with pytest.raises(
        ValueError, match=rf"'{name}' holds values up to 1e\+05 that torch\.float16"
    ):
        net.save_pretrained(tmp_path / "half", dtype=torch.float16)
    assert not (tmp_path / "half" / "model.safetensors").exists()
    loaded = type(net).from_pretrained(net.save_pretrained(tmp_path / "bf", dtype=torch.bfloat16))
    assert float(loaded.state_dict()[name].view(-1)[0]) == pytest.approx(1e5, rel=0.01)


def test_weights_holding_nan_or_inf_are_refused(build, tmp_path):
    net = build(4)
    folder = net.save_pretrained(tmp_path / "w")
    state = read_state_dict(folder / "model.safetensors")
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 2)
    state[name].view(-1)[:2] = torch.tensor([float("nan"), float("inf")])
    save_weights_file = folder / "model.safetensors"
    from safetensors.torch import save_file

    save_file(state, str(save_weights_file))
    with pytest.raises(InvalidWeightsError, match=rf"NaN / inf values in \['{name} \(2 of"):
        type(net).from_pretrained(folder)
    user = _UserNet()
    file = save_weights(user, tmp_path / "u.safetensors")
    bad = read_state_dict(file)
    bad["conv.bias"][0] = float("nan")
    save_file(bad, str(file))
    with pytest.raises(ValueError, match=r"NaN / inf values in \['conv\.bias \(1 of 3\)'\]"):
        load_weights(_UserNet(), file)


def test_a_buffer_the_module_fills_with_inf_may_hold_inf(tmp_path):
    class Masked(_UserNet):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mask", torch.tensor([0.0, float("-inf")]))

    file = save_weights(Masked(), tmp_path / "m.safetensors")
    load_weights(Masked(), file)  # no error: the module's own mask holds -inf too


def test_revision_picks_the_snapshot(build, tmp_path, hub_cache):
    old, new = build(4), build(6)
    cls = type(old)
    commit = "a" * 40
    hub_cache.add("ttblur-test/net", old.save_pretrained(tmp_path / "old"), commit=commit)
    hub_cache.add("ttblur-test/net", new.save_pretrained(tmp_path / "new"), ref="v2")
    hub_cache.add("ttblur-test/net", new.save_pretrained(tmp_path / "main"))
    assert _same_weights(cls.from_pretrained("ttblur-test/net", revision=commit), old)
    assert _same_weights(cls.from_pretrained("ttblur-test/net", revision="v2"), new)
    assert _same_weights(cls.from_pretrained("ttblur-test/net"), new)
    with pytest.raises(WeightsNotFoundError, match=r"ttblur-test/net.*revision 'v3'"):
        cls.from_pretrained("ttblur-test/net", revision="v3")


def test_another_architecture_is_refused_with_the_keys_named(build, tmp_path):
    net, wider = build(4), build(6)
    cls = type(net)
    folder = net.save_pretrained(tmp_path / "w")
    wider.save_pretrained(tmp_path / "wide")
    (tmp_path / "wide" / "config.json").replace(folder / "config.json")  # config of another size
    with pytest.raises(InvalidWeightsError, match="shape mismatch") as info:
        cls.from_pretrained(folder)
    assert str(folder / "model.safetensors") in str(info.value)
    assert f"do not match {cls.__name__}" in str(info.value)


def test_weights_of_another_class_name_the_right_loader(build, tmp_path):
    folder = build(4).save_pretrained(tmp_path / "w")
    other = next(c for c in (ReferenceDeblurNet, IDBlauUNet) if not isinstance(build(4), c))
    with pytest.raises(InvalidWeightsError, match=rf"{type(build(4)).__name__}\.from_pretrained"):
        other.from_pretrained(folder)


def test_a_pickle_under_the_weights_name_is_refused(build, tmp_path):
    net = build(4)
    folder = net.save_pretrained(tmp_path / "w")
    torch.save(net.state_dict(), folder / "model.safetensors")
    with pytest.raises(InvalidWeightsError, match="not a valid safetensors file"):
        type(net).from_pretrained(folder)


def test_shipped_defaults_load_unchanged() -> None:
    for cls, name in ((BlurMagnitudeEstimator, "bme-lite"), (ReferenceDeblurNet, "reference")):
        folder = shipped_weights_dir(name)
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
        net = cls.from_pretrained()
        assert _same_weights(net, cls.from_pretrained(folder))
    assert isinstance(reference_model("tiny"), ReferenceDeblurNet)
    assert isinstance(reference_model("base"), ReferenceUNet)
    assert _same_weights(ReferenceUNet.from_pretrained(), reference_model("base"))


def test_reference_model_reads_the_class_from_the_config(tmp_path, hub_cache) -> None:
    net = _reference_unet(4)
    hub_cache.add("ttblur-test/unet", net.save_pretrained(tmp_path / "w"))
    for source in (tmp_path / "w", "ttblur-test/unet"):
        loaded = reference_model(source)
        assert isinstance(loaded, ReferenceUNet) and _same_weights(loaded, net)


def test_push_to_hub_uploads_the_two_files_to_a_branch(build, fake_hub):
    net = build(4)
    net.push_to_hub("me/net", branch="v2", commit_message="retrained")
    names = [name for name, _ in fake_hub.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    upload = fake_hub.calls[-1][1]
    assert upload["revision"] == "v2" and upload["commit_message"] == "retrained"
    (uploaded,) = fake_hub.uploads
    assert sorted(p.name for p in uploaded.iterdir()) == ["config.json", "model.safetensors"]
    assert _same_weights(type(net).from_pretrained(uploaded), net)


# ---- RAFT: a wrapper of torchvision's network, same rules ---------------------------------


class _RAFTStandIn(nn.Module):
    """Two sizes of one layer, under torchvision's names raft_small / raft_large."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.layer = nn.Conv2d(6, width, 1)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, num_flow_updates: int = 12):
        flow = self.layer(torch.cat([image1, image2], dim=1))[:, :2]
        return [flow]


@pytest.fixture
def raft_standin(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("torchvision.models.optical_flow")
    module.raft_small = lambda weights=None, progress=True: _RAFTStandIn(2)  # type: ignore[attr-defined]
    module.raft_large = lambda weights=None, progress=True: _RAFTStandIn(4)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision.models.optical_flow", module)


def test_raft_round_trip_revision_and_strict_check(raft_standin, tmp_path, hub_cache) -> None:
    torch.manual_seed(0)
    small, large = _RAFTStandIn(2), _RAFTStandIn(4)
    torch.save(small.state_dict(), tmp_path / "small.pth")  # torchvision's format
    save_weights(large, tmp_path / "large.safetensors")
    flow_small = RAFTFlow(tmp_path / "small.pth")
    flow_large = RAFTFlow(tmp_path / "large.safetensors")
    assert (flow_small.size, flow_large.size) == ("small", "large")  # found by the keys
    commit = "b" * 40
    hub_cache.add("ttblur-test/raft", flow_small.save_pretrained(tmp_path / "s"), commit=commit)
    hub_cache.add("ttblur-test/raft", flow_large.save_pretrained(tmp_path / "l"))
    assert RAFTFlow.from_pretrained("ttblur-test/raft").size == "large"
    pinned = RAFTFlow.from_pretrained("ttblur-test/raft", revision=commit)
    assert pinned.size == "small" and _same_weights(pinned.model, small)
    with pytest.raises(InvalidWeightsError, match="does not hold torchvision RAFT weights"):
        RAFTFlow(tmp_path / "small.pth", size="large")


def test_read_state_dict_reads_torch_files_only_when_asked(tmp_path) -> None:
    net = _RAFTStandIn(2)
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "r.pth"
    )
    with pytest.raises(InvalidWeightsError, match="not a valid safetensors file"):
        read_state_dict(tmp_path / "r.pth")
    state = read_state_dict(tmp_path / "r.pth", torch_files=True)
    assert state.keys() == net.state_dict().keys()  # unwrapped, "module." prefix removed


# ---- a user's own network (the CLI's --weights) -------------------------------------------


class _UserNet(nn.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)


def test_user_network_round_trip_folder_hub_cache_and_revision(tmp_path, hub_cache) -> None:
    torch.manual_seed(0)
    old, new = _UserNet(), _UserNet()
    file = save_weights(old, tmp_path / "w" / "model.safetensors")
    save_weights(new, tmp_path / "n" / "model.safetensors")
    commit = "c" * 40
    hub_cache.add("ttblur-test/user", tmp_path / "w", commit=commit)
    hub_cache.add("ttblur-test/user", tmp_path / "n")
    for source, expected in (
        (file, old),
        (tmp_path / "w", old),
        ("ttblur-test/user", new),
    ):
        built = _UserNet()
        assert Path(load_weights(built, source)).name == "model.safetensors"
        assert _same_weights(built, expected)
    pinned = _UserNet()
    load_weights(pinned, "ttblur-test/user", revision=commit)
    assert _same_weights(pinned, old)
    with pytest.raises(ValueError, match="applies to a Hugging Face Hub repo id"):
        load_weights(_UserNet(), file, revision=commit)


def test_user_network_strict_and_pickle_errors(tmp_path) -> None:
    file = save_weights(_UserNet(3), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"does not match the network built by --model.*shape"):
        load_weights(_UserNet(4), file)
    torch.save(_UserNet().state_dict(), tmp_path / "w.pth")
    with pytest.raises(ValueError, match="pickle checkpoints are never loaded"):
        load_weights(_UserNet(), tmp_path / "w.pth")
    with pytest.raises(FileNotFoundError, match=r"holds neither model\.safetensors nor"):
        load_weights(_UserNet(), tmp_path)


def test_a_revision_with_a_local_folder_or_the_default_is_refused(tmp_path):
    """It used to be ignored: the folder's weights loaded as if the revision held them."""
    from ttblur.nets.reference import ReferenceDeblurNet

    folder = tmp_path / "net"
    ReferenceDeblurNet.from_pretrained().save_pretrained(folder)
    with pytest.raises(
        ValueError,
        match=r"revision v2 applies to a Hugging Face Hub repo id, "
        r"not to the local folder .*net",
    ):
        ReferenceDeblurNet.from_pretrained(folder, revision="v2")
    with pytest.raises(ValueError, match="not to the shipped default weights"):
        ReferenceDeblurNet.from_pretrained(revision="v2")
    assert isinstance(ReferenceDeblurNet.from_pretrained(folder), ReferenceDeblurNet)
