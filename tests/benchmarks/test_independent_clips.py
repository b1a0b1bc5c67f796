"""``benchmarks/independent_clips.py`` runs end to end on a tiny configuration."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType

import cv2
import numpy as np
import pytest

TINY = ["--videos", "1", "--frames", "8", "--size", "64", "96", "--patch-size", "32"]


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("independent_clips")


@pytest.mark.slow
def test_tiny_run_scores_every_clip(bench, tmp_path, capsys) -> None:
    out, rows_json = tmp_path / "ind.md", tmp_path / "rows.json"
    argv = [*TINY, "--kinds", "handheld_pauses", "pan_h264", "--epochs", "1"]
    assert bench.main([*argv, "--out", str(out), "--json", str(rows_json)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text() in printed and "Independent renderer, evaluation role" in printed
    rows = json.loads(rows_json.read_text())
    assert [r["family"] for r in rows] == ["handheld_pauses", "pan_h264"]
    for row in rows:
        assert row["seed"] >= 20_000 and row["photo"] in ("astronaut", "coffee", "chelsea")
        assert row["delta"] == pytest.approx(row["adapted"] - row["unadapted"])
        assert 10 < row["blurry"] < 60 and 10 < row["unadapted"] < 60
        assert row["guard_gain"] == row["guard_gain"]  # scored (not NaN)
        if row["reverted"]:
            assert row["adapted"] == row["unadapted"]
    assert rows[0]["exposure_true"] == pytest.approx(0.9) and rows[0]["sharp_frames"] >= 2
    assert rows[1]["exposure_true"] == 1.0 and rows[1]["sharp_frames"] == 0


def test_photos_rotate_through_the_role_and_extra_images(bench, tmp_path) -> None:
    image = tmp_path / "mine.png"
    assert cv2.imwrite(str(image), np.full((50, 60, 3), 128, np.uint8))
    settings, _ = bench.parse_args([*TINY, "--videos", "2", "--images", str(image)])
    specs = bench.clip_specs(settings, [image])
    assert len(specs) == 2 * len(bench.KINDS)
    names = {s.photo_name for s in specs}
    assert names <= {"astronaut", "coffee", "chelsea", "mine"} and "mine" in names
    assert len({s.seed for s in specs}) == len(specs) and min(s.seed for s in specs) == 20_000
    mine = next(s for s in specs if s.photo_name == "mine")
    assert tuple(mine.photo.shape) == (3, 50, 60) and float(mine.photo.max()) == pytest.approx(
        128 / 255
    )
    settings.role = "development"
    dev = bench.clip_specs(settings)
    assert not {s.photo_name for s in dev} & {"astronaut", "coffee", "chelsea"}
    assert max(s.seed for s in dev) < 20_000


def test_a_missing_image_is_refused_before_any_work(bench, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--images", str(tmp_path / "nope.jpg")])
    assert "no such file" in capsys.readouterr().err


def test_picture_has_a_row_per_clip(bench, tmp_path) -> None:
    settings, _ = bench.parse_args([*TINY, "--kinds", "pan_h264", "moving_object"])
    path = tmp_path / "clips.png"
    bench.picture(bench.clip_specs(settings), path, tile=(48, 32))
    pixels = cv2.imread(str(path))
    assert pixels.shape == (2 * (32 + 20), 3 * (48 + 4), 3)
    assert pixels[20:50, :48].std() > 5  # a photo, not a blank tile


def test_a_clip_is_the_same_whichever_kinds_run(bench) -> None:
    every, _ = bench.parse_args(TINY)
    one, _ = bench.parse_args([*TINY, "--kinds", "handheld_short"])
    (alone,) = bench.clip_specs(one)
    among = next(s for s in bench.clip_specs(every) if s.kind == "handheld_short")
    assert (alone.seed, alone.photo_name) == (among.seed, among.photo_name)
