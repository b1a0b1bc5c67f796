import pytest


def test_family_row_groups_frames_and_keeps_the_worst(load_benchmark):
    bench = load_benchmark("sharp_frames")
    row = bench.FamilyRow("m", "handheld")
    row.add("a/1", [30.0, 45.0, 29.0], [31.0, 25.0, 30.0], [8.0, 0.1, 9.0])
    row.add("b/2", [40.0, 41.0], [40.5, 41.2], [0.2, 0.3])
    assert row.videos == 2
    assert row.blurry["moving"] == [30.0, 29.0] and row.restored["moving"] == [31.0, 30.0]
    assert row.blurry["still"] == [45.0, 40.0, 41.0]
    assert row.blurry["isolated"] == [45.0] and row.restored["isolated"] == [25.0]
    assert row.worst_gain == pytest.approx(-20.0) and row.worst_frame == "a/1 t=1 (0.1 px)"
    assert row.cell("isolated") == "1: 45.00 -> 25.00 (-20.00)"
    assert row.cell("moving") == "2: 29.50 -> 30.50 (+1.00)"
    assert bench.FamilyRow("m", "pan").cell("still") == "-"


def test_run_reports_every_family_and_an_all_row(load_benchmark):
    pytest.importorskip("skimage")
    bench = load_benchmark("sharp_frames")
    kwargs = dict(role="development", videos=1, frames=5, size=(32, 40))
    rows = bench.run(["tiny"], ["handheld", "pan"], **kwargs)
    assert [r.family for r in rows] == ["handheld", "pan", "all"]
    total = rows[-1]
    assert total.videos == 2
    for group in bench.GROUPS:
        assert total.blurry[group] == rows[0].blurry[group] + rows[1].blurry[group]
    assert total.worst_gain == min(rows[0].worst_gain, rows[1].worst_gain)
    table = bench.format_table(rows)
    assert table.count("\n") == 4 and "| tiny | **all** | 2 |" in table
