"""``benchmarks/domain_shift.py`` runs end to end on a tiny configuration (so it cannot rot)."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType

import pytest

TINY = ["--videos", "1", "--frames", "7", "--size", "48", "64", "--patch-size", "32"]


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("domain_shift")


def _rows(table: str) -> dict[tuple[str, str], list[float]]:
    """``(preset, method label) -> [PSNR, SSIM, PSNR vs (a) (NaN for "-")]`` from the table."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("preset", "---"):
            continue
        rows[(cells[0], cells[1])] = [math.nan if c == "-" else float(c) for c in cells[2:]]
    return rows


def test_tiny_run_prints_and_writes_a_complete_table(bench, tmp_path, capsys) -> None:
    out = tmp_path / "table.md"
    presets = ["bsd-1ms8ms", "lowlight"]
    code = bench.main([*TINY, "--presets", *presets, "--epochs", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    written = out.read_text(encoding="utf-8")
    assert written in printed
    assert "Command: `PYTHONPATH=src python benchmarks/domain_shift.py --videos 1" in written
    assert "ID-Blau omitted" in written

    rows = _rows(written)
    labels = [m.label for m in bench.METHODS if m.key != "g-idblau"]
    expected = {(p, label) for p in [*presets, "**average**"] for label in labels}
    assert set(rows) == expected
    for values in rows.values():
        assert all(math.isfinite(v) for v in values)
        assert 0.0 < values[0] < 100.0 and -1.0 <= values[1] <= 1.0
    for preset in presets:
        assert rows[(preset, "(a) unadapted")][2] == 0.0
    # The average row is the mean of the preset rows.
    for label in labels:
        mean = sum(rows[(p, label)][0] for p in presets) / len(presets)
        assert rows[("**average**", label)][0] == pytest.approx(mean, abs=0.011)


def test_missing_idblau_weights_omit_the_row_with_a_note(bench, tmp_path) -> None:
    settings, _ = bench.parse_args(
        [*TINY, "--methods", "blurry", "--idblau-weights", str(tmp_path / "none")]
    )
    results = bench.run(settings, log=lambda line: None)
    assert results.methods == ["blurry"]
    assert any("ID-Blau omitted" in note for note in results.notes)
    table = bench.format_table(results)
    rows = _rows(table)
    assert len(rows) == len(bench.TARGET_PRESETS) + 1
    assert all(math.isnan(values[2]) for values in rows.values())  # "-": no (a) row to compare


def test_evaluation_videos_are_held_out_and_distinct(bench) -> None:
    from ttblur.synth import HELDOUT_PHOTOS, PRESETS

    seen = set()
    for index in range(len(PRESETS)):
        videos = bench.evaluation_videos(index, 6)
        assert all(photo in HELDOUT_PHOTOS and seed >= 10_000 for photo, seed in videos)
        seen.update(seed for _, seed in videos)
    assert len(seen) == 6 * len(PRESETS)


def test_quick_and_full_settings(bench) -> None:
    quick, _ = bench.parse_args(["--quick"])
    full, _ = bench.parse_args([])
    assert quick.presets == full.presets == bench.TARGET_PRESETS
    assert quick.videos_per_preset * quick.frames < full.videos_per_preset * full.frames
    assert "g-idblau" not in full.methods and {"a", "b", "g"} <= set(full.methods)
    config = bench.method_config(bench.METHODS[3], full)  # (c) random patch + optical flow
    assert (config.rsdm.name, config.dbcgm.name, config.synthesis.name) == (
        "random",
        "flow_only",
        "physical",
    )
    assert config.rsdm.patch_size == full.patch_size
