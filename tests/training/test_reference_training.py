import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ttblur.nets.reference import (
    ReferenceConfig,
    ReferenceDeblurNet,
    ReferenceUNet,
    ReferenceUNetConfig,
    reference_model,
)
from ttblur.training.data import mix_overrides
from ttblur.training.reference import (
    MOVING_PX,
    STILL_PX,
    TrainReferenceConfig,
    VideoPool,
    evaluate_reference,
    main,
    motion_overrides,
    train_reference,
)
from ttblur.training.reference_eval import EvalRow, blur_groups, format_rows

HEIGHT, WIDTH, FRAMES = 40, 48, 8


def _render(photo, seed):
    """Smooth blobs sliding right 2 px per frame; blurry = mean of 5 shifted copies (4 px box)."""
    generator = torch.Generator().manual_seed(seed + 1000 * len(photo))
    coarse = torch.rand(1, 3, HEIGHT // 4, (WIDTH + 64) // 4, generator=generator)
    texture = F.interpolate(coarse, scale_factor=4, mode="bilinear", align_corners=False)[0]
    sharp, blurry = [], []
    for t in range(FRAMES):
        x0 = 16 + 2 * t
        sharp.append(texture[:, :, x0 : x0 + WIDTH])
        copies = [texture[:, :, x0 + s : x0 + s + WIDTH] for s in range(-2, 3)]
        blurry.append(torch.stack(copies).mean(0))
    return torch.stack(blurry), torch.stack(sharp)


def _config(**changes):
    base = dict(
        model=ReferenceConfig(features=(8, 8, 16), num_blocks=1),
        photos=["a", "bb"],
        num_videos=2,
        video_frames=FRAMES,
        video_size=(HEIGHT, WIDTH),
        crop=32,
        batch_size=4,
        steps=200,
        lr=3e-3,
        checkpoint_every=20,
        threads=1,
    )
    base.update(changes)
    return TrainReferenceConfig(**base)


def _pool(config):
    pool = VideoPool(config, render=_render)
    pool.build(progress=False)
    return pool


def _held_out_loss(model, pool):
    clips, targets = pool.sample(10**6)  # a step index training never reaches
    with torch.no_grad():
        return float((model(clips)[:, 0] - targets).abs().mean())


@pytest.mark.slow
def test_tiny_training_run_lowers_the_loss(tmp_path):
    config = _config()
    pool = _pool(config)
    before = _held_out_loss(ReferenceDeblurNet(config.model), pool)  # identity at init
    result = train_reference(config, tmp_path / "run", pool=pool, progress=False, log_every=100)
    assert result.steps == 200 and len(result.losses) == 200
    trained = ReferenceDeblurNet.from_pretrained(tmp_path / "run" / "final")
    after = _held_out_loss(trained, pool)
    assert after < 0.9 * before
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [100, 200]


class _Interrupt(Exception):
    pass


class _InterruptingPool(VideoPool):
    def sample(self, step):
        if step == 25:
            raise _Interrupt
        return super().sample(step)


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    config = _config(steps=40, refresh_every=15)
    train_reference(config, tmp_path / "a", pool=_pool(config), progress=False)
    interrupted = _InterruptingPool(config, render=_render)
    interrupted.build(progress=False)
    with pytest.raises(_Interrupt):
        train_reference(config, tmp_path / "b", pool=interrupted, progress=False)
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 20
    resumed_pool = VideoPool(config, render=_render)
    resumed_pool.build(step=20, progress=False)  # the pool as it was at step 20
    train_reference(config, tmp_path / "b", pool=resumed_pool, progress=False)
    a = ReferenceDeblurNet.from_pretrained(tmp_path / "a" / "final").state_dict()
    b = ReferenceDeblurNet.from_pretrained(tmp_path / "b" / "final").state_dict()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_resume_refuses_a_different_config(tmp_path):
    config = _config(steps=20)
    train_reference(config, tmp_path / "run", pool=_pool(config), progress=False)
    with pytest.raises(ValueError, match="different config"):
        train_reference(_config(steps=30), tmp_path / "run", pool=_pool(config), progress=False)


def test_starting_over_removes_the_earlier_final_weights_and_marks_the_log(tmp_path):
    config = _config(steps=4)
    train_reference(config, tmp_path / "run", pool=_pool(config), progress=False)
    assert (tmp_path / "run" / "final").is_dir()
    other = _config(steps=30, lr=0.1)
    stopped = _InterruptingPool(other, render=_render)
    stopped.build(progress=False)
    with pytest.raises(_Interrupt):  # interrupted before writing its own final weights
        train_reference(other, tmp_path / "run", resume=False, pool=stopped, progress=False)
    assert not (tmp_path / "run" / "final").exists()  # no stale weights beside the new run
    lines = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {"step": 0, "restarted": True} in lines


def test_pool_sampling_is_deterministic_and_shaped():
    config = _config()
    pool = _pool(config)
    clips, targets = pool.sample(3)
    assert clips.shape == (4, 5, 3, 32, 32) and targets.shape == (4, 3, 32, 32)
    again, _ = _pool(config).sample(3)
    assert torch.equal(clips, again)
    assert not torch.equal(clips, pool.sample(4)[0])
    assert 0.0 <= float(clips.min()) and float(clips.max()) <= 1.0


def test_pool_refresh_matches_rebuild():
    config = _config(refresh_every=5, num_videos=2)
    pool = _pool(config)
    for step in range(0, 16):
        pool.refresh(step)
    assert pool.generation == [2, 1]
    rebuilt = VideoPool(config, render=_render)
    rebuilt.build(step=16, progress=False)
    assert rebuilt.generation == [2, 1]
    assert all(torch.equal(a, b) for a, b in zip(pool.blurry, rebuilt.blurry))


@pytest.mark.parametrize("resume_at", [10, 15, 16])
def test_a_pool_rebuilt_at_any_step_continues_as_the_uninterrupted_one(resume_at):
    """The loop applies ``refresh(step)`` before sampling step ``step``; a pool rebuilt for a
    resume at a multiple of ``refresh_every`` used to count that refresh too (one slot a
    render ahead from then on)."""
    config = _config(refresh_every=5, num_videos=2)
    pool = _pool(config)
    rebuilt = VideoPool(config, render=_render)
    rebuilt.build(step=resume_at, progress=False)
    for step in range(0, 21):
        pool.refresh(step)
        if step >= resume_at:
            rebuilt.refresh(step)
            assert rebuilt.generation == pool.generation, step
            assert all(torch.equal(a, b) for a, b in zip(pool.blurry, rebuilt.blurry))


def test_crop_must_fit_the_network_multiple(tmp_path):
    with pytest.raises(ValueError, match="multiple of 8"):
        train_reference(_config(crop=20), tmp_path, pool=None, progress=False)


def test_training_restores_the_thread_count(tmp_path):
    threads = torch.get_num_threads()
    config = _config(steps=2, threads=threads + 1)
    train_reference(config, tmp_path, pool=_pool(config), progress=False)
    assert torch.get_num_threads() == threads


def test_synthetic_training_pool_and_evaluation(tmp_path):
    synth = pytest.importorskip("ttblur.synth")
    config = TrainReferenceConfig(
        model=ReferenceConfig(features=(4, 4, 8), num_blocks=0),
        photos=list(synth.TRAIN_PHOTOS)[:1],
        num_videos=1,
        video_frames=6,
        video_size=(32, 40),
        crop=16,
        batch_size=2,
        threads=None,
    )
    pool = VideoPool(config)
    pool.build(progress=False)
    clips, targets = pool.sample(0)
    assert clips.shape == (2, 5, 3, 16, 16) and targets.shape == (2, 3, 16, 16)
    net = ReferenceDeblurNet(config.model)
    rows = evaluate_reference(
        net, ["gopro"], photos=list(synth.HELDOUT_PHOTOS)[:1], num_frames=5, size=(32, 40)
    )
    # an untrained network is the identity: restored == blurry
    assert rows[0].frames == 5
    assert rows[0].psnr_restored == pytest.approx(rows[0].psnr_blurry, abs=1e-3)


def test_cli_rejects_missing_command():
    with pytest.raises(SystemExit):
        main([])


def test_base_architecture_trains_and_resumes_with_another_thread_count(tmp_path):
    config = _config(model=ReferenceUNetConfig(widths=(8, 8, 16), mid_blocks=1), steps=6)
    pool = _pool(config)
    train_reference(
        config.model_copy(update={"steps": 6}), tmp_path / "full", pool=pool, progress=False
    )
    full = ReferenceUNet.from_pretrained(tmp_path / "full" / "final")
    # the first 3 steps, then the rest with another thread count: same weights
    first = config.model_copy(update={"checkpoint_every": 3})
    with pytest.raises(KeyboardInterrupt):
        _interrupt_after(first, tmp_path / "split", pool, stop_at=3)
    train_reference(
        first.model_copy(update={"threads": 2}),
        tmp_path / "split",
        pool=_pool(config),
        progress=False,
    )
    split = ReferenceUNet.from_pretrained(tmp_path / "split" / "final")
    for (name, a), (_, b) in zip(full.state_dict().items(), split.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-5), name
    # any other change is still refused
    with pytest.raises(ValueError, match="different config"):
        train_reference(
            first.model_copy(update={"lr": 1e-2}), tmp_path / "split", pool=pool, progress=False
        )


def _interrupt_after(config, out, pool, stop_at):
    calls = {"n": 0}
    sample = pool.sample

    def counting(step):
        calls["n"] += 1
        if calls["n"] > stop_at:
            raise KeyboardInterrupt
        return sample(step)

    pool.sample = counting
    try:
        train_reference(config, out, pool=pool, progress=False)
    finally:
        pool.sample = sample


def test_motion_overrides_mix_still_and_fast_videos_deterministically():
    draws = [motion_overrides(np.random.default_rng([0, i])) for i in range(400)]
    speeds = np.array([d["speed_px_s"] for d in draws])
    assert 0.08 < (speeds < 40).mean() < 0.25  # nearly still videos
    assert speeds.max() > 600 and speeds.min() >= 5
    assert all(d["stroke_max_ms"] > d["stroke_min_ms"] for d in draws)
    assert motion_overrides(np.random.default_rng([0, 7])) == draws[7]
    synth = pytest.importorskip("ttblur.synth")
    synth.make_video("rocket", preset="gopro", num_frames=3, size=(24, 32), seed=1, **draws[0])


def test_motion_overrides_with_pauses_add_them_after_the_other_draws():
    for i in range(50):
        plain = motion_overrides(np.random.default_rng([0, i]))
        paused = motion_overrides(np.random.default_rng([0, i]), pauses=True)
        assert {k: paused[k] for k in plain} == plain
        assert 0.3 <= paused["pause_prob"] <= 0.9
        assert paused["pause_min_ms"] < paused["pause_max_ms"] <= 250.0
    wheres = {
        motion_overrides(np.random.default_rng([1, i]), pauses=True)["pause_where"]
        for i in range(50)
    }
    assert wheres == {"anywhere", "stroke_end"}


def test_shutter_mix_draws_exposure_ratios_from_a_tenth_to_one():
    exposure = 25.0
    draws = [
        motion_overrides(np.random.default_rng([0, i]), pauses=True, exposure_ms=exposure)
        for i in range(400)
    ]
    ratios = np.array(
        [exposure / d["frame_interval_ms"] for d in draws if "frame_interval_ms" in d]
    )
    assert 0.4 < len(ratios) / len(draws) < 0.6  # half the videos keep the preset's interval
    assert 0.1 <= ratios.min() < 0.15 and 0.8 < ratios.max() <= 1.0
    assert 0.25 < np.median(ratios) < 0.4  # log-uniform: median near sqrt(0.1)
    # the draws without the shutter are unchanged
    plain = motion_overrides(np.random.default_rng([0, 3]), pauses=True)
    assert {k: draws[3][k] for k in plain} == plain


def test_mix_overrides_use_the_preset_exposure_and_check_the_parts():
    synth = pytest.importorskip("ttblur.synth")
    rng = np.random.default_rng
    assert mix_overrides(rng(0), "gopro", motion_mix=False) == {}
    with_interval = [
        mix_overrides(rng([0, i]), "lowlight", motion_mix=True, shutter_mix=True) for i in range(20)
    ]
    intervals = [d["frame_interval_ms"] for d in with_interval if "frame_interval_ms" in d]
    assert intervals and all(v >= synth.PRESETS["lowlight"].exposure_ms for v in intervals)
    for part in ("hand_pauses", "shutter_mix"):
        with pytest.raises(ValueError, match=f"{part} needs motion_mix"):
            mix_overrides(rng(0), "gopro", motion_mix=False, **{part: True})


def test_hand_pauses_reach_the_pool_and_need_the_motion_mix():
    seen = []

    def render(photo, seed, **overrides):
        seen.append(overrides)
        return _render(photo, seed)

    VideoPool(_config(motion_mix=True, hand_pauses=True), render=render).build(progress=False)
    assert all("pause_prob" in o for o in seen)
    with pytest.raises(ValueError, match="hand_pauses needs motion_mix"):
        _config(hand_pauses=True)


def test_init_weights_start_the_run_from_another_network(tmp_path):
    first = _config(steps=3, checkpoint_every=3)
    train_reference(first, tmp_path / "a", pool=_pool(first), progress=False)
    weights = tmp_path / "a" / "final"
    trained = ReferenceDeblurNet.from_pretrained(weights)
    config = _config(steps=1, lr=1e-12, lr_min=0.0, init_weights=str(weights))
    train_reference(config, tmp_path / "b", pool=_pool(config), progress=False)
    # One step at a negligible learning rate: the run started from ``first``'s weights.
    warm = ReferenceDeblurNet.from_pretrained(tmp_path / "b" / "final")
    for (name, a), b in zip(trained.state_dict().items(), warm.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    cold = _config(steps=1, lr=1e-12, lr_min=0.0)
    train_reference(cold, tmp_path / "c", pool=_pool(cold), progress=False)
    fresh = ReferenceDeblurNet.from_pretrained(tmp_path / "c" / "final")
    assert not torch.allclose(fresh.state_dict()["out.weight"], trained.state_dict()["out.weight"])
    other = _config(
        model=ReferenceConfig(features=(8, 8, 8), num_blocks=1), init_weights=str(weights)
    )
    with pytest.raises(ValueError, match=r"init_weights .* hold a ReferenceDeblurNet"):
        train_reference(other, tmp_path / "d", pool=_pool(other), progress=False)


def test_motion_mix_pool_renders_each_slot_with_its_own_motion():
    seen = []

    def render(photo, seed, **overrides):
        seen.append(overrides)
        return _render(photo, seed)

    config = _config(motion_mix=True, num_videos=3)
    VideoPool(config, render=render).build(progress=False)
    assert len(seen) == 3 and len({d["speed_px_s"] for d in seen}) == 3
    again = []
    VideoPool(config, render=lambda p, s, **o: again.append(o) or _render(p, s)).build(
        progress=False
    )
    assert again == seen


def test_varied_content_pool_renders_a_seeded_image_per_slot():
    pytest.importorskip("skimage")
    seen = []

    def render(image, seed, **overrides):
        seen.append(image)
        return _render("x" * image.shape[-1], seed)

    config = _config(content="varied", photos=["camera", "coins"], num_videos=4)
    VideoPool(config, render=render).build(progress=False)
    assert len(seen) == 4 and all(isinstance(image, torch.Tensor) for image in seen)
    assert len({tuple(image.shape) for image in seen}) == 4  # crops / leaves of random sizes
    again = []
    VideoPool(config, render=lambda i, s, **o: again.append(i) or _render("x", s)).build(
        progress=False
    )
    assert all(torch.equal(a, b) for a, b in zip(seen, again))
    assert _config().content == "photos"


def test_evaluation_splits_moving_and_still_frames():
    synth = pytest.importorskip("ttblur.synth")
    net = ReferenceUNet(ReferenceUNetConfig(widths=(4, 4, 8), mid_blocks=0))
    (row,) = evaluate_reference(
        net, ["gopro"], photos=["astronaut"], num_frames=6, size=(32, 40), motion_mix=True
    )
    assert row.preset == "gopro+mix" and row.frames == 6
    assert row.frames_moving + row.frames_still <= 6
    video = synth.make_video(
        "astronaut",
        preset="gopro",
        num_frames=6,
        size=(32, 40),
        seed=10_000,
        **motion_overrides(np.random.default_rng([10_000, 1])),
    )
    blur = video.magnitude.mean(dim=(1, 2, 3))
    assert row.frames_moving == int((blur > MOVING_PX).sum())
    assert row.frames_still == int((blur <= STILL_PX).sum())
    if row.frames_moving:  # the identity network restores nothing
        assert row.psnr_restored_moving == pytest.approx(row.psnr_blurry_moving, abs=1e-3)


def test_blur_groups_split_moving_still_and_still_beside_moving():
    groups = blur_groups([0.2, 6.0, 0.5, 0.4, 1.5, 3.0, 1.0])
    assert groups == [
        ["still", "isolated"],
        ["moving"],
        ["still", "isolated"],
        ["still"],
        [],  # between the thresholds: neither
        ["moving"],
        ["still", "isolated"],
    ]
    assert blur_groups([]) == [] and blur_groups([0.0]) == [["still"]]


def test_evaluation_counts_still_frames_beside_moving_ones():
    synth = pytest.importorskip("ttblur.synth")
    net = ReferenceUNet(ReferenceUNetConfig(widths=(4, 4, 8), mid_blocks=0))
    kwargs = dict(photos=["astronaut"], videos_per_photo=3, num_frames=10, size=(32, 40))
    (row,) = evaluate_reference(net, ["gopro"], motion_mix=True, hand_pauses=True, **kwargs)
    assert row.preset == "gopro+mix+pauses"
    expected = 0
    for k in range(3):
        rng = np.random.default_rng([10_000 + k, 1])
        video = synth.make_video(
            "astronaut",
            preset="gopro",
            num_frames=10,
            size=(32, 40),
            seed=10_000 + k,
            **motion_overrides(rng, pauses=True),
        )
        b = video.magnitude.mean(dim=(1, 2, 3)).tolist()
        expected += sum(
            b[t] <= STILL_PX and max(b[max(t - 1, 0) : t + 2]) > MOVING_PX for t in range(10)
        )
    assert 1 <= row.frames_isolated == expected <= row.frames_still
    with pytest.raises(ValueError, match="hand_pauses needs motion_mix"):
        evaluate_reference(net, ["gopro"], hand_pauses=True, **kwargs)


def test_evaluate_command_adds_the_motion_rows_it_is_asked_for(tmp_path, capsys):
    pytest.importorskip("skimage")
    out = tmp_path / "rows.json"
    args = ["evaluate", "--weights", "tiny", "--presets", "gopro", "--frames", "5"]
    args += ["--size", "32", "40", "--motion-mix", "--hand-pauses", "--json", str(out)]
    assert main(args) == 0
    rows = json.loads(out.read_text())
    assert [r["preset"] for r in rows] == ["gopro", "gopro+mix", "gopro+mix+pauses"]
    assert "still beside moving frames" in capsys.readouterr().out


def test_export_command_writes_a_half_precision_folder_that_loads_by_name(tmp_path, capsys):
    torch.manual_seed(0)
    net = ReferenceUNet(ReferenceUNetConfig(widths=(4, 8, 8), mid_blocks=1))
    torch.nn.init.normal_(net.out.weight, std=0.05)
    net.save_pretrained(tmp_path / "run" / "final")
    assert main(["export", str(tmp_path / "run" / "final"), str(tmp_path / "out"), "--half"]) == 0
    assert "wrote ReferenceUNet to" in capsys.readouterr().out
    exported = reference_model(tmp_path / "out")
    assert isinstance(exported, ReferenceUNet) and exported.config == net.config
    clip = torch.rand(1, 5, 3, 16, 16)
    with torch.no_grad():
        error = (exported(clip) - net(clip)).abs().max().item()
    assert 0 < error < 1e-3  # float16 storage: rounded, not lost


def test_format_rows_prints_each_group_or_a_dash():
    row = EvalRow(
        preset="gopro",
        videos=1,
        frames=3,
        psnr_blurry=30.0,
        psnr_restored=31.0,
        ssim_blurry=0.8,
        ssim_restored=0.9,
        frames_moving=2,
        psnr_blurry_moving=25.0,
        psnr_restored_moving=26.5,
    )
    line = format_rows([row]).splitlines()[-1]
    assert line.endswith("| 2: +1.50 | 0: - | 0: - |")
    assert "nan" not in line


def _synthetic_config(**changes):
    synth = pytest.importorskip("ttblur.synth")
    base = dict(
        model=ReferenceConfig(features=(4, 4, 8), num_blocks=0),
        photos=list(synth.TRAIN_PHOTOS)[:2],
        num_videos=3,
        video_frames=5,
        video_size=(24, 32),
        crop=16,
        batch_size=2,
        refresh_every=2,
        motion_mix=True,
        steps=12,
        checkpoint_every=100,
        threads=1,
    )
    base.update(changes)
    return TrainReferenceConfig(**base)


@pytest.mark.slow
def test_worker_processes_render_the_same_pool_and_refreshes():
    config = _synthetic_config()
    local = VideoPool(config)
    ahead = VideoPool(config, workers=2)
    try:
        local.build(progress=False)
        ahead.build(progress=False)
        for step in range(0, 13):
            local.refresh(step)
            ahead.refresh(step)  # slots rendered ahead by the workers are taken here
            assert ahead.generation == local.generation
            for mine, theirs in zip(ahead.blurry + ahead.sharp, local.blurry + local.sharp):
                assert torch.equal(mine, theirs)
        assert ahead._ahead  # later refreshes are already being rendered
    finally:
        ahead.close()
    with pytest.raises(ValueError, match="custom render"):
        VideoPool(config, render=_render, workers=1)


def test_a_time_budget_stops_at_a_checkpoint_and_the_rerun_finishes(tmp_path):
    config = _config(steps=30)
    pool = _pool(config)
    run = tmp_path / "run"
    first = train_reference(config, run, pool=pool, progress=False, max_seconds=1e-9)
    assert not first.complete and first.steps == 1  # stops after its first step
    assert not (run / "final").exists()
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert state["step"] == 1
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert lines[-1]["stopped"] == "max_seconds"
    second = train_reference(config, run, pool=_pool(config), progress=False)
    assert second.complete and second.steps == 30 and len(second.losses) == 30
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert lines[1] == {"step": 1, "resumed": True} and lines[-1]["step"] == 30
    uninterrupted = train_reference(config, tmp_path / "whole", pool=_pool(config), progress=False)
    assert second.losses == uninterrupted.losses
    with pytest.raises(ValueError, match="max_seconds"):
        train_reference(config, run, pool=pool, progress=False, max_seconds=0)


def test_the_held_out_curve_is_logged_without_changing_a_batch(tmp_path):
    pytest.importorskip("skimage")
    config = _config(steps=6)
    with_curve = train_reference(
        config, tmp_path / "curve", pool=_pool(config), progress=False, eval_every=4
    )
    plain = train_reference(config, tmp_path / "plain", pool=_pool(config), progress=False)
    assert with_curve.losses == plain.losses
    lines = [
        json.loads(line) for line in (tmp_path / "curve" / "log.jsonl").read_text().splitlines()
    ]
    points = [line for line in lines if "eval" in line]
    assert [p["step"] for p in points] == [4, 6]
    for point in points:
        row = point["eval"]
        assert row["preset"] == "gopro" and row["videos"] == 3 and row["frames"] == 24
        assert 15.0 < row["psnr_blurry"] < 45.0 and math.isfinite(row["psnr_restored"])
    assert not any(
        "eval" in line for line in (tmp_path / "plain" / "log.jsonl").read_text().splitlines()
    )
    with pytest.raises(ValueError, match="eval_every"):
        train_reference(config, tmp_path / "bad", pool=_pool(config), eval_every=-1)
