import json

import pytest


def _row(bench, family, target, model, blur=1.0):
    return bench.VideoRow("m", family, f"{family}/0", 4, blur, 5.0, target, model)


def test_table_averages_each_family_and_counts_the_videos_the_output_wins(load_benchmark):
    bench = load_benchmark("pseudo_targets")
    rows = [
        _row(bench, "pan", 30.0, 32.0, blur=5.0),
        _row(bench, "pan", 31.0, 30.0, blur=3.0),
        _row(bench, "handheld", 40.0, 35.0, blur=0.1),
    ]
    assert rows[0].model_gain == pytest.approx(2.0)
    lines = bench.format_table(rows).splitlines()
    assert len(lines) == 5
    assert lines[2] == "| m | pan | 2 | 4.00 | 5.00 | 30.50 | 31.00 | +0.50 | 1 of 2 |"
    assert lines[3] == "| m | handheld | 1 | 0.10 | 5.00 | 40.00 | 35.00 | -5.00 | 0 of 1 |"
    assert lines[4] == "| m | **all** | 3 | 2.70 | 5.00 | 33.67 | 32.33 | -1.33 | 1 of 3 |"


def test_run_scores_the_selected_patches_against_the_truth(load_benchmark):
    bench = load_benchmark("pseudo_targets")
    kwargs = dict(role="development", videos=1, frames=6, size=(64, 80), patch_size=32)
    rows = bench.run(["tiny"], ["handheld", "pan"], **kwargs)
    assert [r.family for r in rows] == ["handheld", "pan"]
    handheld, pan = rows
    # The hand-held video's patches come from a still moment; the pan has none.
    assert handheld.patch_blur < 0.5 < pan.patch_blur
    assert pan.patch_blur == pytest.approx(pan.video_blur, rel=0.05)
    assert handheld.target_psnr > pan.target_psnr + 5
    assert all(r.patches > 0 and 10 < r.model_psnr < 60 for r in rows)


def test_main_prints_the_table_and_the_command_and_writes_the_rows(
    load_benchmark, tmp_path, capsys
):
    bench = load_benchmark("pseudo_targets")
    out = tmp_path / "rows.json"
    argv = ["--families", "pan", "--videos", "1", "--frames", "6", "--size", "64", "80"]
    argv += ["--patch-size", "32", "--json", str(out)]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| tiny | pan | 1 |" in printed
    assert "command: python benchmarks/pseudo_targets.py --families pan" in printed
    rows = json.loads(out.read_text("utf-8"))
    assert [r["family"] for r in rows] == ["pan"] and rows[0]["patches"] > 0
