"""ttblur.batch: one task per video, manifests, resume, failures recorded, Ray and local."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from ttblur.batch import (
    MANIFEST,
    OUTPUTS,
    SUMMARY_JSON,
    SUMMARY_MD,
    BatchSettings,
    VideoJob,
    adapt_many,
    dataset_jobs,
    find_videos,
    load_record,
    ray_available,
    run_video,
)
from ttblur.cli import main
from ttblur.config import AdaptConfig
from ttblur.io.datasets import find_sequences
from ttblur.io.paths import OutputPathError
from ttblur.io.video import load_video, save_video
from ttblur.synth import make_video
from ttblur.testing import standin_model


def _config() -> AdaptConfig:
    cfg = AdaptConfig()
    cfg.finetune.epochs = 1
    cfg.rsdm.patch_size = 32
    return cfg


SETTINGS = BatchSettings(spec="estrnn", config=_config(), threads=1)


def _clip(seed: int, frames: int = 7):
    return make_video("coffee", "bsd-2ms16ms", num_frames=frames, size=(48, 64), seed=seed)


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    """Two good videos (an mp4 and a frame folder) and a corrupt mp4."""
    folder = tmp_path / "clips"
    save_video(_clip(1).blurry, folder / "a.mp4")
    save_video(_clip(2).blurry, folder / "b")
    (folder / "broken.mp4").write_bytes(b"this is not a video")
    (folder / "notes.txt").write_text("ignored")
    (folder / ".hidden.mp4").write_bytes(b"ignored")
    return folder


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


# ------------------------------------------------------------------------------ jobs


def test_find_videos_lists_files_and_frame_folders_in_natural_order(clips: Path) -> None:
    save_video(_clip(3).blurry, clips / "a10.mp4")
    save_video(_clip(3).blurry, clips / "a2.mkv")
    (clips / "empty").mkdir()
    jobs = find_videos(clips)
    assert [j.name for j in jobs] == ["a", "a2", "a10", "b", "broken"]
    assert jobs[3].blurry == clips / "b" and jobs[3].sharp is None
    save_video(_clip(3).blurry, clips / "a.mkv")  # two stems "a": full names
    names = [j.name for j in find_videos(clips)]
    assert "a.mkv" in names and "a.mp4" in names and "a" not in names
    (clips / "a.mkv").rename(clips / "a.mp4.mkv")  # its stem is another entry's full name
    names = [j.name for j in find_videos(clips)]
    assert "a.mp4.mkv" in names and "a" in names and len(set(names)) == len(names)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_videos(clips / "a.mp4")
    with pytest.raises(ValueError, match="holds no video"):
        find_videos(clips / "empty")


def test_fingerprint_follows_the_input(clips: Path) -> None:
    job = VideoJob("a", clips / "a.mp4")
    first = job.fingerprint()
    assert first == job.fingerprint() and first["sharp"] is None
    os.utime(clips / "a.mp4", ns=(1, 1))
    assert job.fingerprint() != first
    folder = VideoJob("b", clips / "b").fingerprint()["blurry"]
    assert folder[0] == 7  # frames counted


# ------------------------------------------------------------------------------ local runs


def test_failures_are_recorded_and_a_rerun_does_no_work_for_finished_videos(
    clips: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    model = standin_model("estrnn")
    seen = []
    result = adapt_many(find_videos(clips), out, SETTINGS, model=model, on_record=seen.append)
    assert result.backend == "local" and result.ran == ["a", "b", "broken"]
    assert [r.status for r in result.records] == ["done", "done", "failed"]
    assert [r.name for r in seen] == ["a", "b", "broken"]
    broken = result.records[2]
    assert broken.error is not None and "broken.mp4" in broken.error
    assert broken.error.startswith("ValueError")
    for name in ("a", "b"):
        record = load_record(out, name)
        assert record is not None and record.status == "done" and record.frames == 7
        assert sorted(p.name for p in (out / name).iterdir()) == sorted([*OUTPUTS, MANIFEST])
        assert load_video(out / name / "deblurred.mp4").shape == (7, 3, 48, 64)
        report = json.loads((out / name / "report.json").read_text())
        assert report["num_frames"] == 7
    assert sorted(p.name for p in (out / "broken").iterdir()) == [MANIFEST]
    summary = json.loads((out / SUMMARY_JSON).read_text())
    assert [row["status"] for row in summary] == ["done", "done", "failed"]
    table = (out / SUMMARY_MD).read_text()
    assert "| broken | failed |" in table and "| a | done |" in table
    before = {name: _mtimes(out / name) for name in ("a", "b")}

    again = adapt_many(find_videos(clips), out, SETTINGS, model=model)
    assert again.skipped == ["a", "b"] and again.ran == ["broken"]
    assert {name: _mtimes(out / name) for name in ("a", "b")} == before
    assert [r.status for r in again.records] == ["done", "done", "failed"]

    # a changed input is redone, the other finished video is not
    save_video(_clip(5).blurry, clips / "a.mp4")
    (clips / "broken.mp4").unlink()
    third = adapt_many(find_videos(clips), out, SETTINGS, model=model)
    assert third.ran == ["a"] and third.skipped == ["b"]
    # a missing output makes a finished video unfinished
    (out / "b" / "deblurred.mp4").unlink()
    assert adapt_many(find_videos(clips), out, SETTINGS, model=model).ran == ["b"]
    # another configuration or another network redoes every video; threads do not count
    faster = SETTINGS.model_copy(update={"threads": 2})
    assert adapt_many(find_videos(clips), out, faster, model=model).ran == []
    other = SETTINGS.model_copy(update={"config": _config().model_copy(update={"seed": 3})})
    assert adapt_many(find_videos(clips), out, other, model=model).ran == ["a", "b"]
    changed = standin_model("estrnn", seed=1)
    assert adapt_many(find_videos(clips), out, other, model=changed).ran == ["a", "b"]


def test_warnings_of_a_video_are_kept_in_its_manifest_and_the_summary(
    clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warnings

    import ttblur.api
    from ttblur.io.video import TruncatedVideoWarning

    real_adapt = ttblur.api.adapt

    def adapt(model, video, **kwargs):  # as load_video warns on a truncated file
        message = "clip.mp4 declares 20 frames, 10 decoded"
        warnings.warn(message, TruncatedVideoWarning, stacklevel=2)
        warnings.warn("old option", DeprecationWarning, stacklevel=2)  # not about the video
        return real_adapt(model, video, **kwargs)

    monkeypatch.setattr(ttblur.api, "adapt", adapt)
    (clips / "broken.mp4").unlink()
    out = tmp_path / "out"
    with pytest.warns(TruncatedVideoWarning):  # still shown where the task ran
        result = adapt_many(find_videos(clips), out, SETTINGS, model=standin_model("estrnn"))
    expected = ["TruncatedVideoWarning: clip.mp4 declares 20 frames, 10 decoded"]
    assert [r.warnings for r in result.records] == [expected, expected]
    record = load_record(out, "a")
    assert record is not None and record.warnings == expected
    assert "TruncatedVideoWarning: clip.mp4 declares 20 frames" in (out / SUMMARY_MD).read_text()

    # The manifest published with the outputs already holds them: a signal held back during
    # the renames ends the run before the final rewrite (monkeypatched away here), and that
    # manifest said "seconds": 0.0 and no warnings for good.
    import ttblur.batch

    monkeypatch.setattr(ttblur.batch, "_write_manifest", lambda out, record: None)
    shutil.rmtree(out)
    with pytest.warns(TruncatedVideoWarning):
        adapt_many(find_videos(clips), out, SETTINGS, model=standin_model("estrnn"))
    staged = json.loads((out / "a" / MANIFEST).read_text())
    assert staged["status"] == "done" and staged["warnings"] == expected and staged["seconds"] > 0


def test_weights_overwritten_in_place_count_as_another_network(tmp_path: Path) -> None:
    from ttblur.batch import settings_digest
    from ttblur.io.weights import save_weights

    weights = tmp_path / "net.safetensors"
    save_weights(standin_model("estrnn"), weights)
    settings = SETTINGS.model_copy(update={"weights": str(weights)})
    first = settings_digest(settings)
    assert settings_digest(settings) == first
    save_weights(standin_model("estrnn", seed=1), weights)
    os.utime(weights, ns=(1, 1))
    assert settings_digest(settings) != first
    assert settings_digest(SETTINGS.model_copy(update={"weights": "org/hub-id"})) != first


def test_stage_weights_named_in_the_config_count_too(tmp_path: Path) -> None:
    from ttblur.batch import settings_digest
    from ttblur.nets.bme import BlurMagnitudeEstimator

    bme = BlurMagnitudeEstimator.from_pretrained(None).save_pretrained(tmp_path / "bme")
    config = _config()
    config.rsdm.weights = str(bme)
    settings = SETTINGS.model_copy(update={"config": config})
    first = settings_digest(settings)
    assert settings_digest(settings) == first
    os.utime(bme / "model.safetensors", ns=(1, 1))  # weights replaced in place
    assert settings_digest(settings) != first


def test_a_factory_whose_code_changed_counts_as_another_network(tmp_path: Path) -> None:
    from ttblur.batch import settings_digest
    from ttblur.io.models import factory_source

    factory = tmp_path / "fac" / "nets.py"
    factory.parent.mkdir()
    factory.write_text("from ttblur.testing import standin_model\nbuild = standin_model\n")
    settings = SETTINGS.model_copy(update={"model": f"{factory}:build"})
    assert factory_source(settings.model) == factory.parent.resolve()
    first = settings_digest(settings)
    assert settings_digest(settings) == first
    shown = settings.model_copy(update={"progress": True, "threads": 2})
    assert settings_digest(shown) == first  # how it runs and what it shows, not what it does
    helper = factory.parent / "helpers.py"  # a sibling module the factory may import
    helper.write_text("SIZE = 2\n")
    assert settings_digest(settings) != first
    assert factory_source("tiny") is None and factory_source("no.such.module:build") is None
    import ttblur.testing

    expected = Path(ttblur.testing.__file__).resolve().parent
    assert factory_source("ttblur.testing:standin_model") == expected


def test_dataset_jobs_are_scored_against_their_ground_truth(tmp_path: Path) -> None:
    clip = _clip(4, frames=6)
    seq = tmp_path / "data" / "seq1"
    save_video(clip.blurry, seq / "blur")
    save_video(clip.sharp, seq / "sharp")
    jobs = dataset_jobs(find_sequences(tmp_path / "data"))
    assert jobs == [VideoJob("seq1", seq / "blur", seq / "sharp")]
    threads = torch.get_num_threads()
    record = run_video(
        jobs[0],
        tmp_path / "out",
        SETTINGS.model_copy(update={"threads": 2}),
        standin_model("estrnn"),
    )
    assert torch.get_num_threads() == threads  # the caller's setting is restored
    assert record.status == "done" and record.scores is not None
    # the identity stand-in: unadapted == blurry input
    scores = record.scores
    assert scores["unadapted"]["psnr"] == pytest.approx(scores["blurry"]["psnr"], abs=1e-5)
    assert 15.0 < scores["adapted"]["psnr"] < 60.0
    assert record.gain == pytest.approx(scores["adapted"]["psnr"] - scores["unadapted"]["psnr"])
    # mismatched ground truth is a recorded failure, not an exception
    save_video(clip.sharp[:5], seq / "sharp")
    bad = run_video(jobs[0], tmp_path / "out", SETTINGS, standin_model("estrnn"))
    assert bad.status == "failed" and "do not pair up" in (bad.error or "")


def test_bad_batches_are_refused_before_any_work(clips: Path, tmp_path: Path) -> None:
    jobs = find_videos(clips)
    with pytest.raises(ValueError, match="unique"):
        adapt_many([jobs[0], jobs[0]], tmp_path / "out", SETTINGS)
    with pytest.raises(ValueError, match="output folder"):
        adapt_many([VideoJob("..", clips / "a.mp4")], tmp_path / "out", SETTINGS)
    with pytest.raises(ValueError, match="reserved"):
        adapt_many([VideoJob("summary.md", clips / "b")], tmp_path / "out", SETTINGS)
    with pytest.raises(FileNotFoundError, match="not found"):
        adapt_many([VideoJob("x", clips / "missing.mp4")], tmp_path / "out", SETTINGS)
    with pytest.raises(ValueError, match="inside"):
        adapt_many([VideoJob("b", clips / "b")], clips / "b" / "out", SETTINGS)
    # OUT/<name> would be the input folder itself (video "clips" of the folder clips/) or
    # hold an input: the outputs would overwrite or mix with the user's files.
    with pytest.raises(ValueError, match="holds the input"):
        adapt_many([VideoJob(clips.name, clips / "a.mp4")], clips.parent, SETTINGS)
    with pytest.raises(ValueError, match="lies inside the input"):
        adapt_many([VideoJob("b", clips / "b")], clips, SETTINGS)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a").write_text("not a folder")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        adapt_many(jobs, tmp_path / "out", SETTINGS)
    (tmp_path / "out" / "a").unlink()
    (tmp_path / "out").rmdir()
    with pytest.raises(ValueError, match="workers"):
        adapt_many(jobs, tmp_path / "out", SETTINGS, workers=0)
    with pytest.raises(ValueError, match="backend"):
        adapt_many(jobs, tmp_path / "out", SETTINGS, backend="threads")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="address"):
        adapt_many(jobs, tmp_path / "out", SETTINGS, backend="local", ray_address="auto")
    assert not (tmp_path / "out").exists()


def test_without_ray_the_ray_backend_is_refused_and_auto_runs_locally(
    clips: Path, tmp_path: Path, monkeypatch
) -> None:
    import ttblur.batch

    monkeypatch.setattr(ttblur.batch, "ray_available", lambda: False)
    jobs = find_videos(clips)[:1]
    with pytest.raises(ImportError, match="ttblur\\[ray\\]"):
        adapt_many(jobs, tmp_path / "out", SETTINGS, backend="ray")
    result = adapt_many(jobs, tmp_path / "out", SETTINGS, model=standin_model("estrnn"), workers=4)
    assert result.backend == "local" and result.ran == ["a"]


def test_tasks_get_absolute_paths_that_name_the_same_files_from_another_folder(
    clips: Path, tmp_path: Path, monkeypatch
) -> None:
    """A Ray worker of a cluster runs in the folder its node was started in: relative inputs,
    output folder, factory file and weights sent as given were looked up there (the videos
    "did not exist" and their manifests went to that folder). Every task gets absolute paths;
    the settings' digest stays that of the paths as given, so earlier runs still match."""
    import ttblur.batch
    from ttblur.batch import settings_digest
    from ttblur.io.weights import save_weights

    (tmp_path / "nets.py").write_text(
        "from ttblur.testing import standin_model\n\n\ndef build():\n"
        "    return standin_model('estrnn')\n"
    )
    save_weights(standin_model("estrnn"), tmp_path / "w.safetensors")
    (tmp_path / "bme").mkdir()
    config = _config()
    config.rsdm.weights = "bme"  # an existing local folder
    config.dbcgm.flow_weights = "owner/raft-on-the-hub"  # a repo id: left as it is
    given = BatchSettings(model="nets.py:build", weights="w.safetensors", config=config)
    seen: list[tuple[VideoJob, Path, BatchSettings, str | None]] = []

    def record_task(job, out, settings, model=None, *, digest=None):
        seen.append((job, Path(out), settings, digest))
        return ttblur.batch.VideoRecord(job.name, "failed", str(job.blurry), {}, 0.0)

    monkeypatch.setattr(ttblur.batch, "run_video", record_task)
    monkeypatch.chdir(tmp_path)
    adapt_many(find_videos("clips"), "out", given, backend="local")
    monkeypatch.chdir(clips)  # a worker's own working directory
    assert [job.name for job, *_ in seen] == ["a", "b", "broken"]
    for job, out, settings, digest in seen:
        assert job.blurry.is_absolute() and job.blurry.exists()
        assert out == tmp_path / "out" and out.is_dir()
        assert settings.model == f"{tmp_path / 'nets.py'}:build"
        assert settings.weights == str(tmp_path / "w.safetensors")
        assert settings.config.rsdm.weights == str(tmp_path / "bme")
        assert settings.config.dbcgm.flow_weights == "owner/raft-on-the-hub"
        assert settings.config.synthesis.weights is None
        assert settings.config.finetune.epochs == 1  # the rest of the config as given
        with monkeypatch.context() as here:
            here.chdir(tmp_path)
            assert digest == settings_digest(given)
    assert not (clips / "out").exists()


# ------------------------------------------------------------------------------ Ray


@pytest.mark.slow
@pytest.mark.skipif(not ray_available(), reason="needs ray (pip install 'ttblur[ray]')")
def test_ray_runtime_adapts_videos_in_tasks_and_a_rerun_skips_the_finished(
    clips: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    settings = BatchSettings(config=_config())  # the shipped tiny reference network
    result = adapt_many(find_videos(clips), out, settings, workers=2, backend="ray")
    assert result.backend == "ray"
    assert {r.name: r.status for r in result.records} == {
        "a": "done",
        "b": "done",
        "broken": "failed",
    }
    assert "broken.mp4" in (result.records[2].error or "")
    before = {name: _mtimes(out / name) for name in ("a", "b")}
    again = adapt_many(find_videos(clips), out, settings, workers=2, backend="ray")
    assert again.skipped == ["a", "b"] and again.ran == ["broken"]
    assert {name: _mtimes(out / name) for name in ("a", "b")} == before
    # a module sent through Ray's object store instead of a factory name
    fresh = tmp_path / "fresh"
    sent = adapt_many(
        find_videos(clips)[:1], fresh, SETTINGS, model=standin_model("estrnn"), workers=2
    )
    assert sent.backend == "ray" and [r.status for r in sent.records] == ["done"]


@pytest.mark.slow
@pytest.mark.skipif(not ray_available(), reason="needs ray (pip install 'ttblur[ray]')")
def test_a_cluster_started_in_another_folder_reads_and_writes_the_right_files(
    clips: Path, tmp_path: Path
) -> None:
    """A cluster's workers run in the folder their node was started in: relative paths sent
    as given named files there (every video "did not exist", its manifest went there). And
    with RAY_ADDRESS set (as on a cluster's nodes) the local runtime of a run without an
    address tried to join that cluster, which refuses ``num_cpus``: the batch crashed.

    Cluster and driver are both subprocesses: Ray keeps a process's authentication mode once
    read, and Ray >= 2.59 turns token authentication on for a runtime ray.init() starts but not
    for a driver joining by address, so both run with it off (a test runtime on this machine)
    and nothing of that stays in this process."""
    node = tmp_path / "node"
    node.mkdir()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    started = (
        "import ray, time\n"
        "ray.init(num_cpus=1, include_dashboard=False)\n"
        "print(ray.get_runtime_context().gcs_address, flush=True)\n"
        "time.sleep(600)\n"
    )
    driver = (
        "import json, os, sys\n"
        "from ttblur.batch import BatchSettings, adapt_many, find_videos\n"
        "from ttblur.testing import standin_model\n"
        "settings = BatchSettings.model_validate_json(sys.argv[2])\n"
        "model = standin_model('estrnn')\n"
        "joined = adapt_many(find_videos('clips')[:1], 'out', settings, model=model,\n"
        "                    ray_address=sys.argv[1])\n"
        "os.environ['RAY_ADDRESS'] = sys.argv[1]\n"
        "own = adapt_many(find_videos('clips')[1:2], 'own', settings, model=model, workers=2)\n"
        "print(json.dumps([[r.status, r.error] for r in joined.records + own.records]))\n"
    )
    cluster = subprocess.Popen(
        [sys.executable, "-c", started], cwd=node, env=env, stdout=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(180, cluster.kill)  # a runtime that never starts ends the read
    watchdog.start()
    try:
        address = (cluster.stdout.readline() if cluster.stdout else "").strip()
        watchdog.cancel()
        assert address, "the Ray runtime in the other folder did not start"
        run = subprocess.run(
            [sys.executable, "-c", driver, address, SETTINGS.model_dump_json()],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        watchdog.cancel()
        cluster.terminate()
        try:
            cluster.wait(timeout=60)
        except subprocess.TimeoutExpired:
            cluster.kill()
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [["done", None], ["done", None]]
    assert load_record(tmp_path / "out", "a") is not None
    assert load_record(tmp_path / "own", "b") is not None
    assert list(node.iterdir()) == []  # nothing written where the workers run


# ------------------------------------------------------------------------------ CLI


def test_adapt_many_command_writes_a_summary_and_exits_1_on_a_failure(
    clips: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    args = ["adapt-many", str(clips), "--out", str(out), "--epochs", "1", "--patch-size", "32"]
    assert main([*args, "--no-progress"]) == 1
    printed = capsys.readouterr().out
    assert "| broken | failed |" in printed and "2 run" not in printed
    assert "3 videos: 3 run, 0 skipped, 1 failed" in printed
    (clips / "broken.mp4").unlink()
    assert main([*args, "--no-progress"]) == 0
    assert "skipped 2 videos already done" in capsys.readouterr().out
    assert main(["adapt-many", str(clips), "--out", str(clips / "a")]) == 1
    assert "--out" in capsys.readouterr().err


@pytest.mark.slow
def test_killing_the_driver_and_running_again_completes_every_video(
    clips: Path, tmp_path: Path
) -> None:
    (clips / "broken.mp4").unlink()
    save_video(_clip(6).blurry, clips / "c.mp4")
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "ttblur", "adapt-many", str(clips), "--out", str(out),
        "--epochs", "1", "--patch-size", "32", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (out / "a" / MANIFEST).exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the first video never finished"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = [n for n in ("a", "b", "c") if (out / n / MANIFEST).exists()]
    assert "a" in finished and "c" not in finished
    before = {name: _mtimes(out / name) for name in finished}
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"skipped {len(finished)} video" in rerun.stdout
    for name in ("a", "b", "c"):
        record = load_record(out, name)
        assert record is not None and record.status == "done"
        assert load_video(out / name / "deblurred.mp4").shape == (7, 3, 48, 64)
        assert not [p for p in (out / name).iterdir() if p.name.startswith(".")]
    assert {name: _mtimes(out / name) for name in finished} == before


FLAKY = """
import os
from pathlib import Path

from ttblur.testing import standin_model

MARKER = Path({marker!r})


def build():
    if not MARKER.exists():  # the first worker to build the network dies
        MARKER.write_text("died once")
        os._exit(1)
    return standin_model("estrnn")
"""


@pytest.mark.slow
@pytest.mark.skipif(not ray_available(), reason="needs ray (pip install 'ttblur[ray]')")
def test_a_task_whose_worker_dies_is_retried_by_ray_or_recorded(
    clips: Path, tmp_path: Path
) -> None:
    jobs = find_videos(clips)[:1]
    factory = tmp_path / "flaky.py"
    marker = tmp_path / "marker"
    factory.write_text(FLAKY.format(marker=str(marker)))
    settings = BatchSettings(model=f"{factory}:build", spec="estrnn", config=_config(), threads=1)
    retried = adapt_many(jobs, tmp_path / "out", settings, workers=2, backend="ray", max_retries=1)
    assert marker.exists() and [r.status for r in retried.records] == ["done"]
    marker.unlink()
    lost = adapt_many(jobs, tmp_path / "lost", settings, workers=2, backend="ray", max_retries=0)
    (record,) = lost.records
    assert record.status == "failed" and "Worker" in (record.error or "")
    assert load_record(tmp_path / "lost", "a") == record


def test_workers_without_ray_run_in_process_with_a_note(
    clips: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    import ttblur.batch

    monkeypatch.setattr(ttblur.batch, "ray_available", lambda: False)
    (clips / "broken.mp4").unlink()
    out = tmp_path / "out"
    args = ["adapt-many", str(clips), "--out", str(out), "--epochs", "1", "--patch-size", "32"]
    assert main([*args, "--workers", "3", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "Ray is not installed" in captured.err
    assert "[1] a: done" in captured.out and "[2] b: done" in captured.out
    assert "(local," in captured.out
    assert main([*args, "--ray-address", "auto"]) == 1
    assert "--ray-address needs Ray" in capsys.readouterr().err


# ------------------------------------------------------------------------------ third audit


def test_a_failed_rerun_keeps_the_earlier_done_record_and_outputs(
    clips: Path, tmp_path: Path
) -> None:
    (clips / "broken.mp4").unlink()
    out, jobs, model = tmp_path / "out", find_videos(clips), standin_model("estrnn")
    first = adapt_many(jobs, out, SETTINGS, model=model)
    assert [r.status for r in first.records] == ["done", "done"]
    before = {r.name: _mtimes(out / r.name) for r in first.records}
    # every video fails with another network (it does not fit the spec) ...
    again = adapt_many(jobs, out, SETTINGS, model=standin_model("image"))
    assert [r.status for r in again.records] == ["failed", "failed"]
    summary = json.loads((out / SUMMARY_JSON).read_text())
    assert [r["status"] for r in summary] == ["failed", "failed"]  # ... the summary says so
    assert {r.name: _mtimes(out / r.name) for r in first.records} == before  # manifests kept
    assert adapt_many(jobs, out, SETTINGS, model=model).skipped == ["a", "b"]  # none redone


def test_an_output_linked_to_an_input_is_refused_before_any_work(
    clips: Path, tmp_path: Path
) -> None:
    """Only the per-video folders were checked; a link left inside one (deblurred.mp4 ->
    another input) was written through, replacing that input with the other's output."""
    (clips / "broken.mp4").unlink()
    out, jobs, model = tmp_path / "out", find_videos(clips), standin_model("estrnn")
    adapt_many(jobs, out, SETTINGS, model=model)
    (out / "b" / "deblurred.mp4").unlink()
    (out / "b" / "deblurred.mp4").symlink_to(clips / "a.mp4")
    before = (clips / "a.mp4").read_bytes()
    other = SETTINGS.model_copy(update={"config": _config().model_copy(update={"seed": 3})})
    with pytest.raises(OutputPathError, match=r"its deblurred.mp4 is the input video 'a'"):
        adapt_many(jobs, out, other, model=model)
    assert (clips / "a.mp4").read_bytes() == before


def test_a_protected_manifest_does_not_stop_the_other_videos(clips: Path, tmp_path: Path) -> None:
    out, jobs = tmp_path / "out", find_videos(clips)
    adapt_many(jobs, out, SETTINGS, model=standin_model("estrnn"))
    (out / "broken" / MANIFEST).chmod(0o444)  # the failed video's record, protected
    other = SETTINGS.model_copy(update={"config": _config().model_copy(update={"seed": 3})})
    with pytest.warns(RuntimeWarning, match="broken: its manifest could not be written"):
        again = adapt_many(jobs, out, other, model=standin_model("estrnn"))
    assert [r.status for r in again.records] == ["done", "done", "failed"]
    assert "manifest could not be written" in (again.records[2].error or "")


def test_the_summary_lists_every_video_from_the_start(clips: Path, tmp_path: Path) -> None:
    (clips / "broken.mp4").unlink()
    out, seen = tmp_path / "out", []

    def peek(record) -> None:  # the summary as it stands when the first video finishes
        seen.append([r["status"] for r in json.loads((out / SUMMARY_JSON).read_text())])
        raise KeyboardInterrupt  # the run is interrupted right after it

    with pytest.raises(KeyboardInterrupt):
        adapt_many(find_videos(clips), out, SETTINGS, model=standin_model("estrnn"), on_record=peek)
    assert seen == [["done", "pending"]]
    assert "| b | pending |" in (out / SUMMARY_MD).read_text()
    manifest = json.loads((out / "a" / MANIFEST).read_text())
    assert manifest["status"] == "done" and manifest["outputs"] == list(OUTPUTS)


def test_eval_json_may_not_replace_the_batchs_own_files(tmp_path: Path, capsys) -> None:
    clip = _clip(4, frames=6)
    for name in ("s1", "s2"):
        save_video(clip.blurry, tmp_path / "ds" / name / "blur")
        save_video(clip.sharp, tmp_path / "ds" / name / "sharp")
    out = tmp_path / "out"
    base = ["eval", str(tmp_path / "ds"), "--out", str(out), "--epochs", "1", "--no-progress"]
    for target in (out / "summary.json", out / "s1" / "adapted.safetensors", out / "s1"):
        assert main([*base, "--patch-size", "32", "--json", str(target)]) == 1
        assert "the batch writes that path in --out" in capsys.readouterr().err
    assert not out.exists()
    assert main([*base, "--patch-size", "32", "--json", str(out / "eval.json")]) == 0
    assert json.loads((out / "eval.json").read_text())["sequences"]
    # on a cluster the temporary folder of a run without --out would be this machine's only
    assert main(["eval", str(tmp_path / "ds"), "--ray-address", "auto"]) == 1
    assert "--ray-address needs --out" in capsys.readouterr().err


def test_eval_of_the_current_folder_and_a_corrupt_sequence_with_a_border(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    clip = _clip(4, frames=6)
    seq = tmp_path / "ds" / "s1"
    save_video(clip.blurry, seq / "blur")
    save_video(clip.sharp, seq / "sharp")
    monkeypatch.chdir(seq)
    assert [s.name for s in find_sequences(".")] == ["s1"]
    monkeypatch.chdir(seq / "blur")
    assert [s.name for s in find_sequences("..")] == ["s1"]
    broken = tmp_path / "ds" / "s0"
    (broken / "blur").mkdir(parents=True)
    (broken / "sharp").mkdir()
    (broken / "blur" / "00000.png").write_bytes(b"not an image")
    (broken / "sharp" / "00000.png").write_bytes(b"not an image")
    args = ["eval", str(tmp_path / "ds"), "--crop-border", "2", "--epochs", "1"]
    assert main([*args, "--patch-size", "32", "--no-progress"]) == 1  # s0 failed, s1 scored
    captured = capsys.readouterr()
    assert "| s1 | 6 |" in captured.out and "1 sequence failed: s0:" in captured.err


def test_a_bad_weights_path_is_refused_before_any_video(clips: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    args = ["adapt-many", str(clips), "--out", str(out), "--weights", str(tmp_path / "typo.st")]
    assert main([*args, "--no-progress"]) == 1
    assert "typo.st" in capsys.readouterr().err
    assert not (out / "a").exists()


@pytest.mark.skipif(not ray_available(), reason="needs ray (pip install 'ttblur[ray]')")
def test_ray_refuses_gpus_it_does_not_have_and_keeps_the_sigterm_handler(
    clips: Path, tmp_path: Path
) -> None:
    """A task asking for a GPU no node has used to wait forever, silently; and ray.init
    replaced the CLI's SIGTERM handler (exit 1 with C++ stack lines instead of 143)."""

    def mine(signum, frame):  # the handler the CLI installs (terminate_as_interrupt)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with pytest.raises(ValueError, match=r"--gpus-per-video 1 but the Ray cluster has 0"):
            adapt_many(
                find_videos(clips)[:1], tmp_path / "out", SETTINGS, workers=2, gpus_per_video=1
            )
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.skipif(not ray_available(), reason="needs ray (pip install 'ttblur[ray]')")
def test_a_cuda_device_ray_tasks_could_not_see_is_refused_before_any_work(
    clips: Path, tmp_path: Path
) -> None:
    """Ray hides the GPUs from a task that declares none and numbers a task's GPUs from 0:
    every video would fail on its own, after the whole batch ran."""
    jobs = find_videos(clips)[:1]
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"'cuda' on Ray workers needs gpus_per_video > 0"):
        adapt_many(jobs, out, SETTINGS.model_copy(update={"device": "cuda"}), workers=2)
    second = SETTINGS.model_copy(update={"device": "cuda:1"})
    with pytest.raises(ValueError, match=r"sees only the 1 GPU\(s\) it declares"):
        adapt_many(jobs, out, second, workers=2, gpus_per_video=0.5)
    with pytest.raises(ValueError, match=r"sees only the 1 GPU\(s\) it declares"):
        adapt_many(jobs, out, second, ray_address="auto", gpus_per_video=1)
    assert not out.exists()


def test_a_cluster_run_does_not_check_the_device_on_the_driver(
    clips: Path, tmp_path: Path, monkeypatch
) -> None:
    """`--device cuda --ray-address ...` was refused on a head node without a GPU ("CUDA is
    not available on this machine") although the cluster's workers have GPUs."""
    import ttblur.batch
    from ttblur.batch import BatchResult

    asked: dict[str, object] = {}

    def fake_adapt_many(jobs, out, settings, **options):
        asked.update(options, device=settings.device)
        return BatchResult([], [], [], "ray", 0.0)

    monkeypatch.setattr(ttblur.batch, "ray_available", lambda: True)
    monkeypatch.setattr(ttblur.batch, "adapt_many", fake_adapt_many)
    args = ["adapt-many", str(clips), "--out", str(tmp_path / "out"), "--device", "cuda:0"]
    assert main([*args, "--ray-address", "auto", "--gpus-per-video", "0.5"]) == 0
    assert asked["device"] == "cuda:0" and asked["ray_address"] == "auto"
    if not torch.cuda.is_available():  # on this machine the device is still checked
        assert main([*args, "--workers", "2", "--gpus-per-video", "0.5"]) == 1


@pytest.mark.skipif(not ray_available(), reason="needs ray (pip install 'ttblur[ray]')")
def test_a_cluster_that_cannot_be_joined_is_named_with_the_likely_causes(
    clips: Path, tmp_path: Path, monkeypatch
) -> None:
    """Ray 2.60 refuses a driver joining a `ray start` cluster by address without its token
    ("Failed to connect to Ray cluster at ..."): the error says what to check."""
    import ray

    def refused(address=None, **options):
        raise ConnectionError(f"Failed to connect to Ray cluster at {address}")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refused)
    with pytest.raises(ConnectionError, match=r"cluster at 10\.0\.0\.9:6379 .*RAY_AUTH_MODE=token"):
        adapt_many(find_videos(clips)[:1], tmp_path / "out", SETTINGS, ray_address="10.0.0.9:6379")


def test_a_bar_in_a_video_name_does_not_break_the_summary_table() -> None:
    from ttblur.batch import VideoRecord, summary_table

    record = VideoRecord("take|2", "failed", "take|2.mp4", {}, 1.0, error="bad | file")
    row = summary_table([record]).splitlines()[-1]
    assert row.startswith("| take/2 | failed |") and row.count("|") == 10
