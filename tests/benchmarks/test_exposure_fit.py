def test_prints_each_video_and_a_tally_per_family(load_benchmark, capsys):
    bench = load_benchmark("exposure_fit")
    argv = ["--role", "development", "--families", "pan", "--videos", "1", "--first-video", "4"]
    assert bench.main([*argv, "--frames", "6", "--size", "96", "128", "--patch-size", "64"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| pan |")]
    # The later batch's first pan (index 4; seed = index for the development role), exposure
    # 1.0, is refused: a steady pan holds no sharper frame.
    assert len(rows) == 1 and "| 4 | 1.00 | refused |" in rows[0]
    assert "pan: 0 within 0.15, 1 refused, 0 wrong" in out
