"""Suite-wide fixtures: no network anywhere, a throw-away Hub cache and a fake Hub API.

* ``no_network`` (autouse): internet sockets cannot connect or resolve names, and the Hugging
  Face Hub is in offline mode (``HF_HUB_OFFLINE=1``), in every test.
* ``hub_cache``: an empty Hub cache in a temporary ``HF_HOME``, with ``add(repo_id, folder)``
  laying files out the way ``huggingface_hub`` stores a downloaded snapshot.
* ``panning_video``: a factory of textured videos panning at known speeds with a known
  exposure ratio.
* ``fake_hub``: ``HfApi.create_repo`` / ``create_branch`` / ``upload_folder`` replaced by
  recorders; each upload's folder is copied so that tests can load it back.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub import HfApi, constants

from ttblur.stages.reblur import motion_blur


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse internet connections and name lookups; put the Hub client in offline mode."""
    real_connect = socket.socket.connect
    local_family = getattr(socket, "AF_UNIX", None)

    def connect(sock: socket.socket, address: Any) -> None:
        if local_family is not None and sock.family == local_family:
            return real_connect(sock, address)  # local IPC (multiprocessing) stays allowed
        raise OSError(f"network access is blocked in tests (connect to {address!r})")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network access is blocked in tests (name lookup)")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: set the variable and the constant.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@dataclass
class HubCache:
    """A Hugging Face Hub cache folder (``HF_HUB_CACHE``) that tests fill by hand."""

    root: Path

    def add(
        self,
        repo_id: str,
        folder: str | Path,
        *,
        commit: str | None = None,
        ref: str | None = "main",
    ) -> Path:
        """Store the files of ``folder`` as snapshot ``commit`` of model repo ``repo_id``.

        Layout, as ``huggingface_hub`` writes it: ``models--owner--name/snapshots/<commit>/``
        holding the files and ``models--owner--name/refs/<ref>`` holding the commit hash.

        Args:
            repo_id: ``owner/name``.
            folder: the files to store (flat folder).
            commit: 40 hex digits; default: derived from the repo id and ref.
            ref: branch or tag pointing at the commit (``None``: reachable by hash only).

        Returns:
            the snapshot folder.
        """
        commit = commit or hashlib.sha1(f"{repo_id}@{ref}".encode()).hexdigest()
        repo_dir = self.root / ("models--" + repo_id.replace("/", "--"))
        snapshot = repo_dir / "snapshots" / commit
        snapshot.mkdir(parents=True, exist_ok=True)
        for file in Path(folder).iterdir():
            shutil.copyfile(file, snapshot / file.name)
        if ref is not None:
            (repo_dir / "refs").mkdir(exist_ok=True)
            (repo_dir / "refs" / ref).write_text(commit)
        return snapshot


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubCache:
    """An empty Hub cache under a temporary ``HF_HOME``, used by ``snapshot_download``."""
    home = tmp_path / "hf-home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    # like HF_HUB_OFFLINE, the cache path is read at import: patch the constant as well
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return HubCache(cache)


@dataclass
class FakeHub:
    """What the patched ``HfApi`` methods were asked to do."""

    root: Path
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    uploads: list[Path] = field(default_factory=list)


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """Record ``HfApi.create_repo`` / ``create_branch`` / ``upload_folder`` calls (no network).

    Each call is stored as ``(method name, keyword arguments + "token")``; each uploaded
    folder is copied to ``fake.uploads[i]`` while it still exists.
    """
    fake = FakeHub(tmp_path / "fake-hub")

    def create_repo(api: HfApi, repo_id: str, **kwargs: Any) -> str:
        fake.calls.append(("create_repo", {"repo_id": repo_id, "token": api.token, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(api: HfApi, repo_id: str, **kwargs: Any) -> None:
        fake.calls.append(("create_branch", {"repo_id": repo_id, "token": api.token, **kwargs}))

    def upload_folder(api: HfApi, **kwargs: Any) -> str:
        fake.calls.append(("upload_folder", {"token": api.token, **kwargs}))
        copy = fake.root / str(len(fake.uploads))
        shutil.copytree(kwargs["folder_path"], copy)
        fake.uploads.append(copy)
        return f"https://huggingface.co/{kwargs['repo_id']}/commit/{len(fake.uploads):040d}"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return fake


def _panning_video(
    ratio: float,
    speed: int = 4,
    frames: int = 8,
    size: tuple[int, int] = (96, 128),
    sharp_frame: int = 3,
    noise: float = 0.004,
    seed: int = 0,
    motions: Sequence[int] | None = None,
) -> torch.Tensor:
    """A smooth random texture panning horizontally (content moves towards -x): ``(T, 3, H, W)``.

    Frame ``a`` moves ``motions[a]`` px (default ``speed`` for every frame) over its own frame
    interval, centred on it, so the image moves ``(motions[a] + motions[a + 1]) / 2`` px from
    frame ``a`` to ``a + 1`` (an integer: the frames are integer crops), and frame ``a`` is
    blurred ``ratio * motions[a]`` px. A frame of motion 0 is a still moment (the image paused:
    unblurred, and the pairs beside it move half as far). Frame ``sharp_frame`` is left
    unblurred whatever its motion: a frame that only *reads* sharp, which one exposure cannot
    produce while the image moves (as a sharpness detector may misread a steady pan).
    """
    motion = [speed] * frames if motions is None else list(motions)
    if len(motion) != frames:
        raise ValueError(f"motions needs {frames} entries, got {len(motion)}")
    if any((a + b) % 2 for a, b in itertools.pairwise(motion)):
        raise ValueError(f"neighbouring motions must sum to even numbers, got {motion}")
    offsets = [0, *itertools.accumulate((a + b) // 2 for a, b in itertools.pairwise(motion))]
    gen = torch.Generator().manual_seed(seed)
    height, width = size
    big = torch.rand(1, 3, height // 4 + 4, (width + offsets[-1]) // 4 + 8, generator=gen)
    texture = F.interpolate(big, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)

    def blurred(length: float) -> torch.Tensor:
        condition = torch.zeros(1, 3, *texture.shape[-2:])
        condition[:, 0] = 1.0
        condition[:, 2] = length  # px
        return motion_blur(texture, condition)[0]

    video = torch.stack(
        [
            (texture[0] if t == sharp_frame or motion[t] == 0 else blurred(ratio * motion[t]))[
                :, 8 : 8 + height, offsets[t] : offsets[t] + width
            ]
            for t in range(frames)
        ]
    )
    return (video + noise * torch.randn(video.shape, generator=gen)).clamp(0, 1)


@pytest.fixture
def panning_video() -> Callable[..., torch.Tensor]:
    """Factory of textured videos panning at a known speed with a known exposure ratio (see
    :func:`_panning_video`); the pan is horizontal, frame ``sharp_frame`` is unblurred."""
    return _panning_video
