"""``benchmarks/supervised_ceiling.py``: its tiles, its true pairs, and a run end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType

import pytest
import torch

from ttblur.specs import get_spec

TINY = ["--videos", "1", "--frames", "8", "--size", "64", "96", "--patch-size", "32"]


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("supervised_ceiling")


def test_tiles_cover_every_pixel_of_every_frame(bench) -> None:
    grid = bench.tiles(3, 64, 96, 40)
    assert len(grid) == 3 * 2 * 3  # ceil(64 / 40) x ceil(96 / 40) per frame
    covered = torch.zeros(3, 64, 96, dtype=torch.bool)
    for p in grid:
        assert p.bottom <= 64 and p.right <= 96 and p.size == 40
        covered[p.frame, p.top : p.bottom, p.left : p.right] = True
    assert bool(covered.all())
    assert [(p.top, p.left) for p in grid if p.frame == 0] == [
        (0, 0), (0, 28), (0, 56), (24, 0), (24, 28), (24, 56),
    ]  # fmt: skip
    assert len(bench.tiles(2, 32, 32, 32)) == 2
    with pytest.raises(ValueError, match="does not fit"):
        bench.tiles(1, 30, 64, 32)


def test_true_pairs_take_the_blurry_clip_and_the_sharp_patch(bench) -> None:
    gen = torch.Generator().manual_seed(0)
    blurry, sharp = torch.rand(6, 3, 20, 24, generator=gen), torch.rand(6, 3, 20, 24, generator=gen)
    patches = bench.tiles(6, 20, 24, 16)[::4]  # one per frame
    pairs = bench.true_pairs(blurry, sharp, patches, get_spec("reference"))
    assert tuple(pairs.inputs.shape) == (6, 5, 3, 16, 16) and pairs.centre == 2
    for i, p in enumerate(patches):
        assert torch.equal(pairs.targets[i], p.crop(sharp[p.frame]))
        for slot, offset in enumerate(range(-2, 3)):
            if 0 <= p.frame + offset < 6:  # (mirrored beyond the ends, as build_pseudo_pairs)
                assert torch.equal(pairs.inputs[i, slot], p.crop(blurry[p.frame + offset]))


def test_lesson_is_the_psnr_of_the_centre_input_against_the_target(bench) -> None:
    sharp = torch.full((4, 3, 16, 16), 0.5)
    blurry = sharp.clone()
    blurry[2] += 0.1  # only frame 2 differs: MSE 0.01 over the pair centred on it
    patches = [p for p in bench.tiles(4, 16, 16, 16) if p.frame in (1, 2)]
    pairs = bench.true_pairs(blurry, sharp, patches, get_spec("reference"))
    # pooled over both pairs: MSE 0.005 -> 10 log10(1 / 0.005)
    assert bench.lesson_psnr(pairs) == pytest.approx(23.0103, abs=1e-3)


@pytest.mark.slow
def test_tiny_run_scores_every_pair_set(bench, tmp_path, capsys) -> None:
    rows_json = tmp_path / "rows.json"
    argv = [*TINY, "--families", "handheld_short", "--epochs", "2", "--json", str(rows_json)]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| tiny | handheld_short | 1 |" in printed and "true@all (last epoch)" in printed
    assert "true@all input vs target dB" in printed
    (row,) = json.loads(rows_json.read_text())
    assert row["tiles"] == 8 * 2 * 3 and 10 < row["blurry"] < 60
    assert set(row["epochs"]) <= set(bench.PAIR_SETS) and "true@all" in row["epochs"]
    for psnrs in row["epochs"].values():
        assert len(psnrs) == 3  # the unadapted model, then each epoch
        assert psnrs[0] == pytest.approx(row["unadapted"], abs=1e-4)
    assert set(row["lesson"]) == set(row["epochs"])
    assert 10 < row["lesson"]["true@all"] < 60
    if row["rolled_back"]:
        assert row["shipped"] == row["unadapted"]
    # Supervised fine-tuning on the whole video's truth moves its PSNR.
    assert max(abs(v - row["unadapted"]) for v in row["epochs"]["true@all"][1:]) > 0.01
