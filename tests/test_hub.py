import socket

import pytest
import torch
from pydantic import BaseModel
from torch import nn

from ttblur.hub import PretrainedMixin, resolve_pretrained


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


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access is blocked in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _populate_hub_cache(cache, repo_id, source_folder, revision="0" * 40):
    """Lay out a Hugging Face Hub cache entry the way huggingface_hub writes one."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in source_folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(revision)


def test_local_folder_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    net = TinyNet(TinyConfig(width=5))
    net.save_pretrained(tmp_path / "w")
    loaded = TinyNet.from_pretrained(tmp_path / "w")
    assert loaded.config.width == 5
    assert not loaded.training
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_hub_cache_resolves_offline(tmp_path, monkeypatch):
    net = TinyNet(TinyConfig(width=6))
    net.save_pretrained(tmp_path / "w")
    cache = tmp_path / "hub"
    _populate_hub_cache(cache, "someone/tiny-net", tmp_path / "w")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
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
