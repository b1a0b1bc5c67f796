"""``benchmarks/guard_sweep.py`` replays guard weights exactly on recorded traces."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from types import ModuleType

import pytest
import torch


@pytest.fixture(scope="module")
def sweep(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("guard_sweep")


def _traces(sweep: ModuleType) -> list:
    # Video a: epoch 1 re-blurs better but leaves 2 px more blur (truth: -1 dB);
    # video b: epoch 2 re-blurs better and sharper (truth: +2 dB).
    a = sweep.Trace("h264", 30.0, [28.0, 29.0], [1.0, 3.0], [30.0, 29.0])
    b = sweep.Trace("tone", 30.0, [25.0, 26.0, 31.0], [2.0, 1.5, 0.5], [25.0, 26.0, 27.0])
    return [a, b]


def test_replay_keeps_the_best_scoring_epoch_or_rolls_back(sweep) -> None:
    traces = _traces(sweep)
    # Re-blur PSNR alone keeps both epochs: video a loses 1 dB.
    plain = sweep.replay(traces, 0.0, 0.0)
    assert plain["worst"] == -1.0 and plain["losing"] == 1 and plain["rolled_back"] == 0
    assert plain["mean"] == pytest.approx((-1.0 + 2.0) / 2)
    # With 1 dB per px of blur left, video a rolls back (29 - 3 < 28 - 1) and b keeps epoch 2.
    blur = sweep.replay(traces, 1.0, 0.0)
    assert blur["rolled_back"] == 1 and blur["worst"] == 0.0 and blur["mean"] == 1.0
    # The floor: video b's unadapted model re-blurs 5 dB below a copy of the input.
    scores = traces[1].scores(0.0, 1.0, "copy")
    assert scores == [20.0, 22.0, 31.0]
    assert traces[1].scores(0.0, 1.0, "unadapted") == [25.0, 26.0, 31.0]


def test_saved_traces_replay_without_adapting(sweep, tmp_path, capsys) -> None:
    saved = tmp_path / "traces.json"
    saved.write_text(json.dumps([t.__dict__ for t in _traces(sweep)]))
    assert sweep.main(["--traces", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "| copy | 1 | 0 | 0 | +1.00 | +0.00 | 0 | 1 |" in out
    assert "replayed from saved traces" in out and "Pooled" not in out


def test_min_gain_rolls_back_small_score_gains(sweep) -> None:
    traces = _traces(sweep)
    # Re-blur PSNR alone: video a's score gains 1 dB (true -1 dB), video b's 6 dB (true +2).
    assert sweep.replay(traces, 0.0, 0.0, min_gain_db=0.5)["worst"] == -1.0
    strict = sweep.replay(traces, 0.0, 0.0, min_gain_db=1.0)  # a gain of exactly 1 is not enough
    assert strict["worst"] == 0.0 and strict["rolled_back"] == 1 and strict["mean"] == 1.0
    assert sweep.replay(traces, 0.0, 0.0, min_gain_db=6.0)["rolled_back"] == 2


def test_several_trace_files_are_pooled_fewest_losing_first(sweep, tmp_path, capsys) -> None:
    a, b = _traces(sweep)
    first, second = tmp_path / "net1.json", tmp_path / "net2.json"
    first.write_text(json.dumps([a.__dict__]))
    second.write_text(json.dumps([b.__dict__]))
    argv = ["--traces", str(first), str(second), "--blur-weights", "0", "--shortfall-weights", "0"]
    assert sweep.main([*argv, "--min-gains", "0", "2"]) == 0
    out = capsys.readouterr().out
    pooled = out.split("Pooled over 2 sets of traces:")[1].strip().splitlines()
    assert "net1: mean / worst / < -0.1" in pooled[0] and "net2" in pooled[0]
    # min_gain 2 rolls video a back (score +1, true -1) and keeps b (score +6, true +2).
    assert pooled[2] == "| copy | 0 | 0 | 2 | +0.00 / +0.00 / 0 | +2.00 / +2.00 / 0 | 0 |"
    assert pooled[3] == "| copy | 0 | 0 | 0 | -1.00 / -1.00 / 1 | +2.00 / +2.00 / 0 | 1 |"
    with pytest.raises(SystemExit):
        sweep.main([*argv, "--min-gains", "-1"])


def test_config_is_the_base_then_patch_size_and_lr_override(sweep, tmp_path) -> None:
    args = argparse.Namespace(config='{"dbcgm": {"lengths": "video"}}', patch_size=64, lr=None)
    cfg = sweep.adapt_config(args)
    assert cfg.dbcgm.lengths == "video" and cfg.rsdm.patch_size == 64
    assert cfg.finetune.lr == sweep.AdaptConfig().finetune.lr  # the shipped default
    saved = tmp_path / "adapt.json"
    saved.write_text('{"finetune": {"lr": 3e-5}}')
    args = argparse.Namespace(config=str(saved), patch_size=128, lr=None)
    assert sweep.adapt_config(args).finetune.lr == 3e-5
    args.lr = 2e-4
    assert sweep.adapt_config(args).finetune.lr == 2e-4


class _Scaled(torch.nn.Module):
    """``frame -> scale * frame`` (an image model with one parameter)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.scale * frames


def test_record_windows_measures_each_window_against_the_observed_and_the_truth(sweep) -> None:
    from ttblur.specs import get_spec
    from ttblur.stages.guard import GuardProbe, GuardWindows, ReblurGuard

    gen = torch.Generator().manual_seed(0)
    video = 0.2 + 0.6 * torch.rand(3, 3, 40, 40, generator=gen)
    sharp = (video + 0.1).clamp(0, 1)  # the truth is 0.1 brighter: 20 dB from the video
    boxes = [(0, 0), (8, 12)]
    clips = torch.stack(
        [video[t : t + 1, :, r : r + 24, c : c + 24] for t, (r, c) in zip((0, 2), boxes)]
    )
    condition = torch.zeros(2, 3, 24, 24)
    condition[:, 0] = 1.0  # x direction, zero length: re-blurring changes nothing
    windows = GuardWindows(clips, 0, condition, 4, [0, 2], boxes)
    guard = ReblurGuard(flow=None, bme=lambda frames: torch.full_like(frames[:, :1], 0.5))
    probe = GuardProbe(windows, get_spec("image"), guard)
    trace = sweep.Trace("pan", 0.0)
    probe(_Scaled(0.5), torch.device("cpu"))  # the score the windows are recorded from
    sweep.record_windows(trace, probe, sweep.regions(sharp, windows))
    assert len(trace.window_psnr) == 1 and len(trace.window_psnr[0]) == 2
    assert trace.window_residual == [[0.5, 0.5]]
    for i, (t, (r, c)) in enumerate(zip((0, 2), boxes)):
        inner = (t, slice(None), slice(r + 4, r + 20), slice(c + 4, c + 20))
        half = 0.5 * video[inner]
        mse_obs = float((half - video[inner]).square().mean())
        mse_true = float((half - sharp[inner]).square().mean())
        assert trace.window_change[0][i] == pytest.approx(-10 * math.log10(mse_obs), rel=1e-4)
        assert trace.window_psnr[0][i] == pytest.approx(-10 * math.log10(mse_true), rel=1e-4)
        assert trace.window_fidelity[0][i] == pytest.approx(trace.window_change[0][i], rel=1e-3)


def test_sharp_neighbour_scores_replace_the_re_blur_score_where_recorded(
    sweep, tmp_path, capsys
) -> None:
    a, b = _traces(sweep)
    a.reference = [20.0, 19.5]  # against its sharp frames video a's epoch 1 is worse: rolled back
    c = sweep.Trace("pan", 30.0, [30.0, 30.5], [1.0, 1.0], [30.0, 30.2])  # re-blur +0.5, true +0.2
    plain = sweep.replay([a, b, c], 0.0, 0.0)  # references unused: a keeps its losing epoch
    assert plain["worst"] == -1.0
    first = sweep.replay([a, b, c], 0.0, 0.0, reference_min_gain_db=0.3)
    assert first["worst"] == 0.0 and first["rolled_back"] == 1
    assert first["mean"] == pytest.approx((0.0 + 2.0 + 0.2) / 3)
    # Gains in units of each threshold (a: -0.5 / 0.3; b, c: re-blur with threshold 0, raw +6 and
    # +0.5) rank the true changes (-1, +2, +0.2) exactly.
    assert first["spearman"] == pytest.approx(1.0)
    # Without trust in the re-blur score (guard.trust_reblur = False, the default) the videos
    # without sharp neighbours keep nothing; the ranking is unchanged.
    untrusted = sweep.replay([a, b, c], 0.0, 0.0, reference_min_gain_db=0.3, trust_reblur=False)
    assert untrusted["mean"] == 0.0 and untrusted["rolled_back"] == 3
    assert untrusted["spearman"] == pytest.approx(1.0)
    saved = tmp_path / "traces.json"
    saved.write_text(json.dumps([a.__dict__, b.__dict__]))
    assert sweep.main(["--traces", str(saved), "--reference-min-gains", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "Sharp neighbours first (1 of 2 videos have them" in out
    assert "| 0.3 | False | " in out and "| 0.3 | True | " in out


def test_the_sharp_frames_part_is_replayed_from_its_recorded_parts(sweep, tmp_path, capsys) -> None:
    a, b = _traces(sweep)
    # Video a: its blurred frames' score +0.5 (under the 2 dB needed), its sharp frames restored
    # 30 -> 38 dB (true +1: kept only with the sharp frames). Video b: sharp frames better but
    # blurred frames 1 dB worse (true +2 at epoch 2, yet never kept).
    a.reference_psnr = [20.0, 20.5]
    a.window_still = [[30.0, 30.0], [38.0, 38.0]]
    a.psnr = [30.0, 31.0]
    a.reference = list(a.reference_psnr)  # as run: blurred frames only
    b.reference_psnr = [20.0, 19.5, 19.0]
    b.window_still = [[30.0], [35.0], [60.0]]
    b.reference = list(b.reference_psnr)
    assert sweep.still_reference(a, None, 40.0, 2.0) == [20.0, 20.5]
    assert sweep.still_reference(a, 3.0, 40.0, 2.0) == pytest.approx([20.0, 20.0 + 8.0 * 2 / 3])
    assert sweep.still_reference(a, 3.0, 34.0, 2.0) == pytest.approx([20.0, 20.0 + 4.0 * 2 / 3])
    assert sweep.still_reference(b, 3.0, 40.0, 2.0) == [20.0, 19.5, 19.0]  # the fall counts
    kw = {"reference_min_gain_db": 2.0, "trust_reblur": False}
    off = sweep.replay([a, b], 0.0, 0.0, **kw, still=(None, 40.0))
    assert off["mean"] == 0.0 and off["rolled_back"] == 2
    on = sweep.replay([a, b], 0.0, 0.0, **kw, still=(3.0, 40.0))
    assert on["mean"] == pytest.approx(0.5) and on["rolled_back"] == 1 and on["worst"] == 0.0
    # A 5 dB cap leaves video a's sharp frames only 4 dB: still kept at 3, not at 5.
    assert sweep.replay([a, b], 0.0, 0.0, **kw, still=(5.0, 34.0))["rolled_back"] == 2
    saved = tmp_path / "traces.json"
    saved.write_text(json.dumps([a.__dict__, b.__dict__]))
    args = ["--traces", str(saved), "--still-min-gains", "3", "--still-caps", "40"]
    assert sweep.main(args) == 0
    out = capsys.readouterr().out
    assert "| (blurred frames only) | - | +0.00 / +0.00 / 0 /" in out
    assert "| 3 | 40 | +0.50 / +0.00 / 0 /" in out
    with pytest.raises(SystemExit):
        sweep.main(["--traces", str(saved), "--still-caps", "0"])


def test_sharp_frames_that_may_only_veto_are_replayed_as_the_probe_scores_them(sweep) -> None:
    a, _ = _traces(sweep)
    # Two sharp frames: the first earns credit, the second may only veto (guard.still_box_veto).
    a.reference_psnr = [20.0, 20.5, 20.5]
    a.reference_blurred_gain = [0.0, 0.5, 0.5]
    a.window_still = [[30.0, 38.0], [36.0, 40.0], [36.0, 30.0]]
    a.still_veto = [False, True]
    a.psnr = [30.0, 31.0, 30.2]
    # Epoch 1: the credited frame +6 dB (kept at 3 dB: 6 * 2 / 3 = 4), the other rose (no
    # credit). Epoch 2: the same credit, but the mean of both frames fell 1 dB (34 -> 33).
    assert sweep.still_reference(a, 3.0, 40.0, 2.0) == pytest.approx([20.0, 24.0, 24.0])
    vetoed = sweep.still_reference(a, 3.0, 40.0, 2.0, veto_cap_db=48.13)
    assert vetoed == pytest.approx([20.0, 24.0, 19.0])
    # Recorded before the flags were: every frame earns credit (means 34 -> 38 -> 33 dB).
    a.still_veto = []
    assert sweep.still_reference(a, 3.0, 40.0, 2.0) == pytest.approx([20.0, 20 + 8 / 3, 19.0])
    # A fall above the credit's cap: only the veto's cap sees it.
    a.window_still = [[46.0, 46.0], [47.0, 47.0], [42.0, 42.0]]
    assert sweep.still_reference(a, 3.0, 40.0, 2.0) == pytest.approx([20.0, 20.5, 20.5])
    vetoed = sweep.still_reference(a, 3.0, 40.0, 2.0, veto_cap_db=48.13)
    assert vetoed == pytest.approx([20.0, 20.5, 16.0])
    settings = sweep.shipped_settings()
    assert settings["veto_cap_db"] == pytest.approx(48.13)
    assert sweep.decide(a, **settings)[2] is False  # epoch 1 gains 0.5 dB: not kept either
    a.reference = [20.0, 20.5, 24.0]  # as run, the scores are not rebuilt
    assert sweep.decide(a, **{**settings, "still": None})[2] is True


def test_record_reference_keeps_both_parts_of_the_sharp_neighbour_score(sweep) -> None:
    from ttblur.specs import get_spec
    from ttblur.stages.guard import ReblurGuard, ReferenceProbe
    from ttblur.stages.sharp_neighbours import ReferenceWindows

    gen = torch.Generator().manual_seed(0)
    clips = 0.2 + 0.6 * torch.rand(2, 1, 3, 24, 24, generator=gen)  # two blurred windows
    still = 0.2 + 0.6 * torch.rand(1, 1, 3, 24, 24, generator=gen)  # one sharp frame
    weight = torch.zeros(2, 1, 24, 24)
    weight[..., 4:20, 4:20] = 1.0
    windows = ReferenceWindows(
        clips=clips,
        centre=0,
        reference=clips[:, 0].clone(),  # references equal to the input: a copy is perfect
        weight=weight,
        frames=[1, 2],
        sources=[0, 0],
        boxes=[(0, 0), (0, 0)],
        still_clips=still,
        still_frames=[0],
        still_boxes=[(0, 0)],
        still_weight=weight[:1].clone(),
    )
    guard = ReblurGuard(flow=None, bme=lambda frames: torch.zeros_like(frames[:, :1]))
    probe = ReferenceProbe(windows, get_spec("image"), guard)
    trace = sweep.Trace("handheld", 0.0)
    for scale in (1.0, 0.9):
        trace.reference.append(probe(_Scaled(scale), torch.device("cpu")))
        sweep.record_reference(trace, probe)
    assert trace.reference_psnr[0] == 100.0 and trace.window_still[0] == [100.0]
    # The blurred frames' gain as the probe scored it (the median window's, as shipped).
    assert trace.reference_blurred_gain[0] == 0.0
    assert trace.reference_blurred_gain[1] == probe.last["reference_median_gain"] < 0.0
    inner = still[0, 0, :, 4:20, 4:20]
    expected = -10 * math.log10(float((0.1 * inner).square().mean()))
    assert trace.window_still[1] == [pytest.approx(expected, rel=1e-4)]  # uncapped
    assert probe.last["still_psnr"] == pytest.approx(min(expected, guard.still_cap_db))
    # Replayed with the shipped threshold and cap, the scores are the ones the probe returned.
    replayed = sweep.still_reference(
        trace,
        guard.still_min_gain_db,
        guard.still_cap_db,
        guard.reference_min_gain_db,
        guard.still_veto_cap_db,
    )
    assert replayed == pytest.approx(trace.reference)


def test_family_rows_put_the_blurry_input_beside_the_shipped_guard(sweep, capsys) -> None:
    # No sharp neighbours and trust_reblur off as shipped: the guard keeps nothing, whatever
    # the re-blur score says; the truth's epoch is still reported.
    a, b = _traces(sweep)
    a.blurry, b.blurry = 31.0, 24.0
    rows = {r["family"]: r for r in sweep.family_rows([a, b])}
    assert rows["h264"]["oracle"] == -1.0 and rows["tone"]["oracle"] == 2.0
    assert rows["all"]["oracle"] == pytest.approx(0.5)
    assert rows["all"]["kept"] == 0.0 and rows["all"]["worst"] == 0.0
    assert rows["all"]["unadapted"] == pytest.approx(27.5)
    assert rows["all"]["kept_vs_blurry"] == pytest.approx(27.5 - 27.5)
    assert rows["tone"]["kept_vs_blurry"] == pytest.approx(25.0 - 24.0)
    sweep.print_families([a, b])
    assert "| tone | 1 | 24.00 | 25.00 | +2.00 | +0.00 | +0.00 | +1.00 |" in capsys.readouterr().out


def test_family_rows_keep_what_the_sharp_neighbour_score_keeps(sweep) -> None:
    # A video with sharp neighbours whose score gains 3 dB at epoch 2 (threshold 2): kept.
    t = sweep.Trace("handheld", 30.0, [25.0, 25.0, 25.0], [1.0, 1.0, 1.0], [24.0, 24.5, 26.0])
    t.reference = [20.0, 21.0, 23.0]
    t.reference_psnr = [20.0, 21.0, 23.0]
    row = sweep.family_rows([t])[-1]
    assert row["kept"] == 2.0 and row["oracle"] == 2.0
    assert math.isnan(row["blurry"]) and math.isnan(row["kept_vs_blurry"])


def test_independent_source_yields_its_development_clips(load_benchmark) -> None:
    sweep = load_benchmark("guard_sweep")
    args = argparse.Namespace(
        source="independent", families=["pan_h264", "lowlight"], videos=1, first_video=0,
        frames=4, size=[48, 64],
    )  # fmt: skip
    videos = list(sweep.development_videos(args))
    assert [(family, seed) for family, seed, _ in videos] == [("pan_h264", 0), ("lowlight", 500)]
    for _, _, (blurry, sharp, magnitude) in videos:
        assert blurry.shape == sharp.shape == (4, 3, 48, 64) and magnitude.shape == (4, 1, 48, 64)
    assert float(videos[0][2][2].amin()) > 1.0  # a pan blurs every pixel


def test_families_must_belong_to_the_source(load_benchmark, capsys) -> None:
    sweep = load_benchmark("guard_sweep")
    with pytest.raises(SystemExit):
        sweep.main(["--source", "independent", "--families", "pan"])
    assert "choose from pan_h264" in capsys.readouterr().err
