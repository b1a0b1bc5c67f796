"""ttblur.io.paths.absolute_if_local: local paths made absolute, everything else as given."""

from __future__ import annotations

from pathlib import Path

from ttblur.io.paths import absolute_if_local


def test_an_existing_relative_path_becomes_absolute_and_the_rest_stays(
    tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "w.safetensors").write_bytes(b"")
    (tmp_path / "owner" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert absolute_if_local("w.safetensors") == str(tmp_path / "w.safetensors")
    assert absolute_if_local("./w.safetensors") == str(tmp_path / "." / "w.safetensors")
    # a folder spelled like a repo id is the local folder (as resolve_pretrained reads it)
    assert absolute_if_local("owner/name") == str(tmp_path / "owner" / "name")
    assert absolute_if_local("owner/other") == "owner/other"  # a Hub repo id
    assert absolute_if_local("missing.safetensors") == "missing.safetensors"
    assert absolute_if_local(None) is None
    assert absolute_if_local(str(tmp_path)) == str(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert absolute_if_local("~/w.safetensors") == str(tmp_path / "w.safetensors")
