"""A tiny run of ``benchmarks/cost.py``: every table it prints is well formed."""

from __future__ import annotations

import re

import pytest

NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?%?$")


def _tables(text: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            assert line.endswith("|"), line
            current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


@pytest.mark.slow
def test_cost_benchmark_prints_well_formed_tables(capsys, load_benchmark):
    cost = load_benchmark("cost")
    argv = [
        "--clips", "7x32x48",
        "--patch-size", "16",
        "--epochs", "1",
        "--stream-frames", "5", "9",
        "--stream-size", "16x24",
        "--adapt-frames", "7", "9",
        "--adapt-size", "48x64",
    ]  # fmt: skip
    returned = cost.main(argv)
    printed = capsys.readouterr().out
    tables = _tables(returned)
    assert tables == _tables(printed)
    assert len(tables) == 4
    for table in tables:
        header, separator, *rows = table
        assert all(set(cell) <= set("-:") and cell for cell in separator)
        assert rows and all(len(row) == len(header) for row in [separator, *rows])
    stages, shares, memory, adapt_memory = tables
    assert [row[1] for row in adapt_memory[2:]] == ["0", "7", "7", "9"]
    assert all(NUMBER.match(row[3]) and float(row[3]) > 0 for row in adapt_memory[2:])
    assert "Streamed peak RSS, 9 vs 7 frames" in returned
    last = 2 + len(cost.STAGES)
    assert [row[0] for row in stages[2:last]] == list(cost.STAGES)
    assert all(NUMBER.match(row[1]) for row in stages[2 : last + 1])
    for share in (shares[2][4], shares[2][6]):  # outside model passes, guard share
        assert share.endswith("%") and 0.0 <= float(share[:-1]) <= 100.0
    assert shares[2][7] in ("reblur", "reference")  # which score the guard used
    assert [row[1] for row in memory[2:]] == ["0", "5", "5", "5", "9"]
    assert all(float(row[3]) > 0 for row in memory[2:])  # peak RSS in MB


def test_make_clip_renders_the_preset_or_a_scenario_family(load_benchmark):
    cost = load_benchmark("cost")
    preset = cost.make_clip(4, 32, 48)
    handheld = cost.make_clip(4, 32, 48, "handheld")
    for clip in (preset, handheld):
        assert clip.shape == (4, 3, 32, 48)
        assert 0.0 <= float(clip.min()) and float(clip.max()) <= 1.0
    assert not bool((preset == handheld).all())


def test_model_timer_counts_forward_and_backward_passes(load_benchmark):
    import torch
    from torch import nn

    cost = load_benchmark("cost")
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    timer = cost.ModelTimer(model)
    for _ in range(3):
        model(torch.randn(5, 4)).sum().backward()
    with torch.no_grad():
        model(torch.randn(5, 4))
    timer.finish()
    assert timer.forward_calls == 4 and timer.backward_steps == 3
    assert timer.forward_s > 0 and timer.backward_s > 0
