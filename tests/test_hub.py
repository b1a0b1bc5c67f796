import json
import socket
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from pydantic import BaseModel
from torch import nn

from ttblur.hub import (
    InvalidWeightsError,
    PretrainedMixin,
    PushToHubMixin,
    WeightsNotFoundError,
    resolve_pretrained,
)


class TinyConfig(BaseModel):
    width: int = 4


class TinyNet(PretrainedMixin, nn.Module):
    config_class = TinyConfig
    default_weights = None

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.conv = nn.Conv2d(3, config.width, 3)


class OtherNet(TinyNet):
    pass


def test_local_folder_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    net = TinyNet(TinyConfig(width=5))
    net.save_pretrained(tmp_path / "w")
    loaded = TinyNet.from_pretrained(tmp_path / "w")
    assert loaded.config.width == 5
    assert not loaded.training
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_hub_cache_resolves_offline(tmp_path, hub_cache):
    net = TinyNet(TinyConfig(width=6))
    net.save_pretrained(tmp_path / "w")
    hub_cache.add("someone/tiny-net", tmp_path / "w")
    loaded = TinyNet.from_pretrained("someone/tiny-net")
    assert loaded.config.width == 6
    assert torch.equal(loaded.conv.weight, net.conv.weight)


def test_unreachable_hub_without_cache_names_repo_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match=r"someone/missing.*hf download"):
        TinyNet.from_pretrained("someone/missing")


def test_missing_local_folder_and_missing_default(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights folder"):
        TinyNet.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no default"):
        resolve_pretrained(None, default=None)


def test_mismatched_weights_are_refused(tmp_path):
    TinyNet(TinyConfig(width=4)).save_pretrained(tmp_path / "w")
    config = tmp_path / "w" / "config.json"
    config.write_text(config.read_text().replace('"width": 4', '"width": 8'))
    with pytest.raises(ValueError, match="shape mismatch"):
        TinyNet.from_pretrained(tmp_path / "w")


def test_corrupted_weights_and_wrong_class_are_refused(tmp_path):
    TinyNet(TinyConfig()).save_pretrained(tmp_path / "w")
    with pytest.raises(ValueError, match="holds weights of TinyNet"):
        OtherNet.from_pretrained(tmp_path / "w")
    (tmp_path / "w" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="cannot read"):
        TinyNet.from_pretrained(tmp_path / "w")


# ---- network guard, Hub cache, revisions ------------------------------------------------------


def test_the_suite_cannot_reach_the_network():
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    with pytest.raises(OSError, match="blocked"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", 9))
    with pytest.raises(OSError, match="blocked"):
        socket.getaddrinfo("huggingface.co", 443)
    assert constants.HF_HUB_OFFLINE


def test_error_classes_are_the_documented_builtin_kinds():
    assert issubclass(WeightsNotFoundError, FileNotFoundError)
    assert issubclass(WeightsNotFoundError, OSError)
    assert issubclass(InvalidWeightsError, ValueError)


def test_hub_cache_revision_picks_the_snapshot(tmp_path, hub_cache):
    old, new = TinyNet(TinyConfig(width=2)), TinyNet(TinyConfig(width=3))
    old_commit = "a" * 40
    hub_cache.add("someone/tiny", old.save_pretrained(tmp_path / "old"), commit=old_commit)
    hub_cache.add("someone/tiny", new.save_pretrained(tmp_path / "new"), commit="b" * 40)
    hub_cache.add("someone/tiny", old.save_pretrained(tmp_path / "tag"), commit="c" * 40, ref="v1")
    assert TinyNet.from_pretrained("someone/tiny").config.width == 3  # refs/main
    assert TinyNet.from_pretrained("someone/tiny", revision=old_commit).config.width == 2
    assert TinyNet.from_pretrained("someone/tiny", revision="v1").config.width == 2
    with pytest.raises(WeightsNotFoundError, match=r"someone/tiny.*revision 'v2'"):
        TinyNet.from_pretrained("someone/tiny", revision="v2")


def test_cache_lookup_when_snapshot_download_does_not_fall_back(tmp_path, hub_cache, monkeypatch):
    """Some huggingface_hub releases (1.33) raise offline for a commit hash that no cached ref
    points to instead of using the cache; the loader then finds the snapshot itself."""
    import huggingface_hub

    def offline(*args, **kwargs):
        raise huggingface_hub.errors.OfflineModeIsEnabled("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    hub_cache.add(
        "someone/tiny",
        TinyNet(TinyConfig(width=2)).save_pretrained(tmp_path / "a"),
        commit="a" * 40,
    )
    hub_cache.add(
        "someone/tiny",
        TinyNet(TinyConfig(width=3)).save_pretrained(tmp_path / "b"),
        commit="b" * 40,
    )
    assert TinyNet.from_pretrained("someone/tiny", revision="a" * 40).config.width == 2
    assert TinyNet.from_pretrained("someone/tiny").config.width == 3  # refs/main
    with pytest.raises(WeightsNotFoundError, match="holds no complete snapshot"):
        TinyNet.from_pretrained("someone/tiny", revision="c" * 40)


def test_unreachable_hub_uses_the_cache_even_when_not_in_offline_mode(
    tmp_path, hub_cache, monkeypatch
):
    # the network guard makes every connection fail: huggingface_hub falls back to its cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    net = TinyNet(TinyConfig(width=7))
    hub_cache.add("someone/tiny", net.save_pretrained(tmp_path / "w"))
    assert TinyNet.from_pretrained("someone/tiny").config.width == 7
    with pytest.raises(WeightsNotFoundError) as info:
        TinyNet.from_pretrained("someone/other")
    message = str(info.value)
    assert "'someone/other'" in message and "could not be reached" in message
    assert "HF_HUB_OFFLINE" in message and "HF_HUB_OFFLINE=1 is set" not in message
    with pytest.raises(WeightsNotFoundError, match=r"not contacted \(local_files_only=True\)"):
        TinyNet.from_pretrained("someone/other", local_files_only=True)


def test_unreachable_hub_error_says_how_to_pre_download(hub_cache):
    with pytest.raises(WeightsNotFoundError) as info:
        TinyNet.from_pretrained("someone/missing", revision="v3")
    message = str(info.value)
    assert "Hub repo 'someone/missing' (revision 'v3')" in message
    assert "HF_HUB_OFFLINE=1 is set" in message
    assert "huggingface-cli download someone/missing --revision v3" in message
    assert "hf download someone/missing --revision v3 --local-dir DIR" in message
    assert "snapshot_download('someone/missing', revision='v3')" in message
    assert str(hub_cache.root) in message


def test_invalid_repo_id_is_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsNotFoundError, match="neither an existing folder nor a valid"):
        TinyNet.from_pretrained("bad id/with spaces")


def test_incomplete_cached_snapshot_names_the_missing_file(tmp_path, hub_cache):
    TinyNet(TinyConfig()).save_pretrained(tmp_path / "w")
    (tmp_path / "w" / "model.safetensors").unlink()
    snapshot = hub_cache.add("someone/half", tmp_path / "w")
    with pytest.raises(WeightsNotFoundError, match=r"model\.safetensors is missing") as info:
        TinyNet.from_pretrained("someone/half")
    assert str(snapshot) in str(info.value)


# ---- broken files --------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path) -> Path:
    return TinyNet(TinyConfig(width=4)).save_pretrained(tmp_path / "w")


def test_missing_files_are_named(saved):
    (saved / "config.json").unlink()
    with pytest.raises(WeightsNotFoundError, match=r"w[/\\]config\.json is missing"):
        TinyNet.from_pretrained(saved)
    TinyNet(TinyConfig()).save_pretrained(saved)
    (saved / "model.safetensors").unlink()
    with pytest.raises(WeightsNotFoundError, match=r"w[/\\]model\.safetensors is missing"):
        TinyNet.from_pretrained(saved)


def test_truncated_safetensors_is_refused_with_the_file_named(saved):
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 40])
    with pytest.raises(InvalidWeightsError, match="truncated or corrupted") as info:
        TinyNet.from_pretrained(saved)
    assert str(weights) in str(info.value)
    weights.write_bytes(data[:5])  # not even a header
    with pytest.raises(InvalidWeightsError, match="not a valid safetensors file"):
        TinyNet.from_pretrained(saved)


def test_a_pickle_is_never_loaded(saved):
    weights = saved / "model.safetensors"
    torch.save(TinyNet(TinyConfig()).state_dict(), weights)  # a pickle under the right name
    with pytest.raises(InvalidWeightsError, match="not a valid safetensors file"):
        TinyNet.from_pretrained(saved)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"_class_name": "TinyNet", "width": "wide"}', "is not a valid TinyNet config"),
    ],
)
def test_broken_config_is_refused_with_the_file_named(saved, text, message):
    (saved / "config.json").write_text(text)
    with pytest.raises(InvalidWeightsError, match=message) as info:
        TinyNet.from_pretrained(saved)
    assert str(saved / "config.json") in str(info.value)


def test_key_mismatches_are_listed(saved):
    from safetensors.torch import load_file, save_file

    weights = saved / "model.safetensors"
    state = load_file(str(weights))
    save_file({"conv.weight": state["conv.weight"], "extra": torch.zeros(1)}, str(weights))
    with pytest.raises(InvalidWeightsError) as info:
        TinyNet.from_pretrained(saved)
    message = str(info.value)
    assert "missing keys ['conv.bias']" in message
    assert "unexpected keys ['extra']" in message
    assert str(weights) in message


def test_wrong_class_names_the_right_loader(saved):
    raw = json.loads((saved / "config.json").read_text())
    raw["_class_name"] = "BlurMagnitudeEstimator"
    (saved / "config.json").write_text(json.dumps(raw))
    with pytest.raises(InvalidWeightsError, match=r"BlurMagnitudeEstimator\.from_pretrained"):
        TinyNet.from_pretrained(saved)


def test_map_location_puts_the_module_there(saved):
    loaded = TinyNet.from_pretrained(saved, map_location="meta")
    assert loaded.conv.weight.device.type == "meta"


# ---- push_to_hub ---------------------------------------------------------------------------


def test_push_to_hub_uploads_what_save_pretrained_writes(fake_hub):
    torch.manual_seed(3)
    net = TinyNet(TinyConfig(width=3))
    url = net.push_to_hub("me/tiny", token="hf_secret", private=True)
    assert url.startswith("https://huggingface.co/me/tiny/commit/")
    names = [name for name, _ in fake_hub.calls]
    assert names == ["create_repo", "upload_folder"]
    create, upload = (kwargs for _, kwargs in fake_hub.calls)
    assert create == {
        "repo_id": "me/tiny",
        "token": "hf_secret",
        "private": True,
        "exist_ok": True,
        "repo_type": "model",
    }
    assert upload["repo_id"] == "me/tiny" and upload["token"] == "hf_secret"
    assert upload["commit_message"] == "Upload TinyNet weights"
    assert upload["revision"] is None and upload["repo_type"] == "model"
    assert not Path(upload["folder_path"]).exists()  # the temporary folder is gone
    (uploaded,) = fake_hub.uploads
    assert sorted(p.name for p in uploaded.iterdir()) == ["config.json", "model.safetensors"]
    loaded = TinyNet.from_pretrained(uploaded)
    assert torch.equal(loaded.conv.weight, net.conv.weight)


def test_push_to_hub_to_a_branch_creates_it(fake_hub):
    TinyNet(TinyConfig()).push_to_hub("me/tiny", commit_message="retrained", revision="v2")
    names = [name for name, _ in fake_hub.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    branch, upload = fake_hub.calls[1][1], fake_hub.calls[2][1]
    assert branch["branch"] == "v2" and branch["exist_ok"] is True
    assert upload["revision"] == "v2" and upload["commit_message"] == "retrained"


def test_push_to_hub_needs_save_pretrained():
    with pytest.raises(TypeError, match="defines no save_pretrained"):
        PushToHubMixin().push_to_hub("me/nothing")
