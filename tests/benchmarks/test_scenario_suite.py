"""``benchmarks/scenario_suite.py`` runs end to end on a tiny configuration (so it cannot rot)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from types import ModuleType

import pytest

TINY = ["--videos", "1", "--frames", "8", "--size", "64", "96", "--patch-size", "32"]


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("scenario_suite")


@pytest.mark.slow
def test_tiny_run_scores_every_video_and_config(bench, tmp_path, capsys) -> None:
    out, rows_json = tmp_path / "suite.md", tmp_path / "rows.json"
    argv = [*TINY, "--families", "pan", "handheld", "--epochs", "1", "--models", "tiny"]
    assert bench.main([*argv, "--out", str(out), "--json", str(rows_json)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text() in printed
    rows = json.loads(rows_json.read_text())
    assert [(r["family"], r["config"]) for r in rows] == [
        ("pan", "default"),
        ("pan", "paper"),
        ("handheld", "default"),
        ("handheld", "paper"),
    ]
    for row in rows:
        assert row["seed"] >= 10_000 and row["photo"] in ("astronaut", "coffee", "chelsea")
        assert row["delta"] == pytest.approx(row["adapted"] - row["unadapted"])
        assert row["worst_frame"] <= row["delta"] + 1e-6 or row["worst_frame"] < 0
        assert 10 < row["blurry"] < 60 and 10 < row["unadapted"] < 60
        # The guard scored every run; a rolled-back run is the unadapted row exactly.
        assert row["guard_gain"] == row["guard_gain"]  # not NaN
        if row["reverted"]:
            assert row["adapted"] == row["unadapted"]
        else:
            assert row["delta"] == pytest.approx(row["candidate_delta"])
        # The exposure diagnostic is bounded to (0, 1] or refused.
        assert row["exposure_fit"] is None or 0.1 - 1e-9 <= row["exposure_fit"] <= 1.0
    pan = [r for r in rows if r["family"] == "pan"]
    assert all(r["exposure_true"] == pytest.approx(1.0) for r in pan)
    assert "| tiny | default | **all** | 2 |" in printed
    assert "Spearman" in printed and "Exposure fit" in printed
    (perfect,) = [line for line in printed.splitlines() if line.startswith("Perfect keep")]
    assert "tiny/default +" in perfect and "tiny/paper +" in perfect  # never below 0


def test_unknown_config_is_refused(bench) -> None:
    with pytest.raises(ValueError, match="unknown config"):
        bench.adapt_config("nope", bench.Settings())
    cfg = bench.adapt_config("paper", bench.Settings(patch_size=48, epochs=2))
    assert (cfg.dbcgm.magnitude, cfg.synthesis.clip) == ("bme", "original")
    assert (cfg.rsdm.patch_size, cfg.finetune.epochs) == (48, 2)


def test_perfect_keep_counts_only_the_gains_of_the_guards_epochs(bench) -> None:
    row = bench.VideoRow(
        model="tiny", family="pan", photo="coffee", seed=10_000, config="default",
        exposure_true=1.0, exposure_fit=None, exposure_std=None, blurry=25.0, unadapted=26.0,
        adapted=26.0, worst_frame=0.0, sharp_frames=0, sharp_delta=math.nan, reverted=True,
        seconds=1.0,
    )  # fmt: skip
    rows = [
        dataclasses.replace(row, candidate_delta=1.5),  # rolled back although it gains
        dataclasses.replace(row, candidate_delta=-2.0),  # rightly rolled back
        dataclasses.replace(row, candidate_delta=0.5),
        row,  # no guard's epoch (NaN): not counted
    ]
    assert bench.perfect_keep(rows) == pytest.approx((1.5 + 0.0 + 0.5) / 3)
    assert math.isnan(bench.perfect_keep([row]))
