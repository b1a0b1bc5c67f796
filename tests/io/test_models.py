"""ttblur.io.models.absolute_target: a factory file named from any working directory."""

from __future__ import annotations

from pathlib import Path

import torch

from ttblur.io.models import absolute_target, load_model


def test_a_relative_factory_file_becomes_absolute_and_builds_the_same_network(
    tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "build.py").write_text(
        "import torch\n\n\ndef make():\n    return torch.nn.Conv2d(3, 3, 1)\n"
    )
    monkeypatch.chdir(tmp_path)
    target = absolute_target("nets/build.py:make")
    assert target == f"{tmp_path / 'nets' / 'build.py'}:make"
    monkeypatch.chdir(tmp_path / "nets")  # another working directory
    assert isinstance(load_model(target), torch.nn.Conv2d)
    # dotted modules, shipped names, missing files and malformed targets are left as given
    for given in ("mypkg.nets:build", "tiny", "missing/file.py:make", "nets/build.py", ":make"):
        assert absolute_target(given) == given
