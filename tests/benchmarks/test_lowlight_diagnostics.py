"""``benchmarks/lowlight_diagnostics.py`` runs end to end on a tiny configuration."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType

import pytest
import torch

TINY = ["--presets", "bsd-1ms8ms", "lowlight", "--videos", "1", "--frames", "7"]
TINY += ["--size", "48", "64", "--patch-size", "16", "--epochs", "1"]


@pytest.fixture(scope="module")
def diag(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("lowlight_diagnostics")


def _tables(text: str) -> dict[str, list[list[str]]]:
    tables: dict[str, list[list[str]]] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith("## "):
            name = line[3:]
            tables[name] = []
        elif line.startswith("|"):
            tables[name].append([c.strip() for c in line.strip().strip("|").split("|")])
    return tables


@pytest.mark.slow
def test_every_experiment_prints_a_complete_table(diag, capsys) -> None:
    returned = diag.main(["all", *TINY])
    tables = _tables(returned)
    assert list(tables) == list(diag.EXPERIMENTS)
    assert "| variant | bsd-1ms8ms | lowlight |" in capsys.readouterr().out
    for name, (header, separator, *rows) in tables.items():
        assert all(set(cell) <= set("-") for cell in separator), name
        assert rows and all(len(row) == len(header) for row in rows), name
        numbers = [c for row in rows for c in row[1:] if c != "-"]
        assert all(math.isfinite(float(c)) for c in numbers), name
    assert len(tables["synclip"]) == 2 + 7 and len(tables["wise"]) == 2 + 4
    # The exposure table knows the presets' true exposure / frame interval ratios.
    truth = {row[0].split()[0]: float(row[1]) for row in tables["exposure"][2:]}
    assert truth == {"bsd-1ms8ms": pytest.approx(0.12, abs=0.005), "lowlight": 0.9}


def test_motion_consistent_clip_moves_and_blurs_as_asked(diag) -> None:
    from ttblur.protocols import PatchLocation

    frame = torch.zeros(3, 40, 40)
    frame[:, :, 20] = 1.0  # one bright column
    patch = PatchLocation(0, 10, 10, 20)
    clip = diag.motion_consistent_clip(
        frame, patch, torch.tensor([1.0, 0.0]), blur_px=0.0, step_px=3.0
    )
    assert clip.shape == (5, 3, 20, 20)
    columns = [int(clip[k, 0, 10].argmax()) for k in range(5)]
    assert columns == [4, 7, 10, 13, 16]  # the column (x = 20, patch x = 10) moves 3 px/frame
    blurred = diag.motion_consistent_clip(
        frame, patch, torch.tensor([1.0, 0.0]), blur_px=6.0, step_px=0.0
    )
    row = blurred[2, 0, 10]
    assert float(row.max()) < 0.5 and int((row > 0.05).sum()) >= 5  # spread over ~6 px
    assert torch.allclose(blurred[0], blurred[4])  # no motion: every frame the same
