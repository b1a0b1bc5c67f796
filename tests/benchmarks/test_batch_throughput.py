"""A tiny run of ``benchmarks/batch_throughput.py``: its table is well formed."""

from __future__ import annotations


def test_one_worker_row_counts_every_video(capsys, load_benchmark) -> None:
    bench = load_benchmark("batch_throughput")
    args = ["--videos", "2", "--frames", "5", "--size", "48", "64", "--workers", "1"]
    bench.main([*args, "--epochs", "1", "--patch-size", "32"])
    lines = capsys.readouterr().out.splitlines()
    assert any("dataset: 2 videos of 5 frames at 48x64" in line for line in lines)
    rows = [line for line in lines if line.startswith("| 1 | local |")]
    assert rows, lines
    cells = [c.strip() for c in rows[-1].strip("|").split("|")]
    wall, per_hour = float(cells[2]), float(cells[3])
    assert wall > 0 and abs(per_hour - 3600 * 2 / wall) < 0.1 * per_hour
    assert cells[-1] == "1.00x" and cells[-2].endswith("%")
