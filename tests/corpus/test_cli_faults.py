"""Fault corpus of the command line and of video I/O.

Every case feeds ``ttblur`` (or :mod:`ttblur.video`) one bad input, bad path or fault
(signal, divergence, planted module) and asserts the exact outcome: the exit status and the
message, or the documented recovery. Every case also asserts that no input and no earlier
output was changed or lost: all files under the test folder are fingerprinted (bytes and
modification time) before the run and compared after it.

The network is the tiny ESTRNN stand-in (:func:`ttblur.testing.standin_model`) built by a
factory file, and the videos are a few frames of 64x80 px, so the in-process cases take well
under a second each; the cases that start a subprocess (signals, planted modules) are marked
``slow``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

import ttblur.api
from ttblur.atomic import TEMP_MARKER
from ttblur.cli import Terminated, main, save_weights
from ttblur.testing import standin_model
from ttblur.video import TruncatedVideoWarning, _write_chunks, load_video, save_video

H, W = 64, 80
TINY = ["--epochs", "1", "--patch-size", "32", "--no-progress"]
FACTORY = """
from ttblur.testing import standin_model


def build():
    return standin_model("estrnn")
"""
# The stand-in, but once a staging file (".*ttblur-tmp*") exists in $TTBLUR_TEST_WATCH, each
# forward call announces it ($TTBLUR_TEST_STARTED) and sleeps: the test then signals the
# process while an output is half written.
SLOW_FACTORY = """
import glob
import os
import time

import torch

from ttblur.testing import standin_model


class WaitsForOutput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = standin_model("estrnn")

    def forward(self, x):
        if glob.glob(os.path.join(os.environ["TTBLUR_TEST_WATCH"], ".*ttblur-tmp*")):
            open(os.environ["TTBLUR_TEST_STARTED"], "w").close()
            time.sleep(120)
        return self.inner(x)


def build():
    return WaitsForOutput()
"""
MODEL = ["--spec", "estrnn", "--no-progress"]

Fingerprint = dict[str, tuple[str, int]]


# ------------------------------------------------------------------------------ helpers


def fingerprint(root: Path) -> Fingerprint:
    """``{relative path: (sha256, mtime_ns)}`` of every file under ``root`` (hidden too)."""
    found: Fingerprint = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(root))] = (digest, path.stat().st_mtime_ns)
    return found


def assert_unchanged(before: Fingerprint, root: Path, *, new: set[str] | None = None) -> None:
    """Every file of ``before`` is still there, byte for byte and untouched; the only new
    files are ``new`` (none by default); no staging file is left anywhere."""
    after = fingerprint(root)
    for name, print_ in before.items():
        assert after.get(name) == print_, f"{name} was changed or removed"
    assert set(after) - set(before) == (new or set()), "unexpected new files"
    assert not [p for p in root.rglob("*") if TEMP_MARKER in p.name], "staging files left"


def frames(count: int, seed: int = 0) -> torch.Tensor:
    """A smooth random ``(count, 3, H, W)`` clip (compresses well, decodes fast)."""
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand(count, 3, H // 8, W // 8, generator=gen)
    return torch.nn.functional.interpolate(small, size=(H, W), mode="bilinear").clamp(0, 1)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``main(argv)`` in process: ``(exit status, stderr)``."""
    code = main(argv)
    return code, capsys.readouterr().err.strip()


def assert_one_line_error(code: int, err: str, expected: str) -> None:
    assert code == 1, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("ttblur ") and ": error: " in err, err
    assert expected in err, err
    assert "Traceback" not in err


@pytest.fixture
def factory(tmp_path: Path) -> str:
    path = tmp_path / "nets.py"
    path.write_text(FACTORY)
    return f"{path}:build"


@pytest.fixture
def clip_file(tmp_path: Path) -> Path:
    return save_video(frames(7), tmp_path / "clip.mp4", fps=24)


@pytest.fixture
def frame_folder(tmp_path: Path) -> Path:
    return save_video(frames(7), tmp_path / "frames")


@pytest.fixture
def previous_adapt(tmp_path: Path) -> Path:
    """An output folder holding what an earlier ``ttblur adapt`` run wrote."""
    out = tmp_path / "out"
    save_weights(standin_model("estrnn", seed=9), out / "adapted.safetensors")
    save_video(frames(7, seed=9), out / "deblurred.mp4", fps=24)
    (out / "report.json").write_text('{"earlier": true}\n')
    return out


# ------------------------------------------------------------------------------ bad inputs


def _write_truncated_mp4(path: Path, keep: float = 0.5) -> None:
    """An MP4 whose index (moov) sits at the end, cut: it cannot be opened at all."""
    data = save_video(frames(24), path.with_name("whole.mp4"), fps=24).read_bytes()
    path.with_name("whole.mp4").unlink()
    path.write_bytes(data[: int(len(data) * keep)])


def _png_bytes() -> bytes:
    ok, encoded = cv2.imencode(".png", np.zeros((H, W, 3), np.uint8))
    assert ok
    return encoded.tobytes()


def _zero_frame(path: Path) -> None:
    """A container with a video stream header but no frame."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        container.start_encoding()


def _make_bad_input(kind: str, root: Path) -> Path:
    """Create the bad input ``kind`` under ``root``; returns the path given to the CLI."""
    if kind.startswith("missing"):
        return root / kind.replace("missing", "absent").replace("-", ".")
    if kind.startswith("empty-file"):
        path = root / f"empty.{kind.rsplit('-', 1)[1]}"
        path.write_bytes(b"")
        return path
    if kind == "empty-folder":
        (root / "nothing").mkdir()
        return root / "nothing"
    if kind == "text-as-mkv":
        path = root / "notes.mkv"
        path.write_text("these are notes, not a video\n")
        return path
    if kind == "mp4-as-png-frame":
        folder = root / "frames"
        folder.mkdir()
        for index in range(3):
            (folder / f"{index:05d}.png").write_bytes(_png_bytes())
        shutil.copyfile(save_video(frames(3), root / "c.mp4"), folder / "00003.png")
        (root / "c.mp4").unlink()
        return folder
    if kind == "truncated-mp4":
        _write_truncated_mp4(root / "cut.mp4")
        return root / "cut.mp4"
    if kind == "truncated-png-frame":
        folder = root / "frames"
        folder.mkdir()
        for index in range(3):
            (folder / f"{index:05d}.png").write_bytes(_png_bytes())
        (folder / "00003.png").write_bytes(_png_bytes()[:40])
        return folder
    if kind == "mixed-size-frames":
        folder = root / "frames"
        folder.mkdir()
        (folder / "00000.png").write_bytes(_png_bytes())
        _, small = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
        (folder / "00001.png").write_bytes(small.tobytes())
        return folder
    if kind.startswith("zero-frames-"):
        path = root / f"zero.{kind.rsplit('-', 1)[1]}"
        _zero_frame(path)
        return path
    raise AssertionError(kind)


BAD_INPUTS = {
    "missing-mp4": "video not found",
    "missing-avi": "video not found",
    "missing-mkv": "video not found",
    "missing-frames": "video not found",
    "empty-file-mp4": "as a video file",
    "empty-file-avi": "as a video file",
    "empty-file-mkv": "as a video file",
    "empty-folder": "has no image files",
    "text-as-mkv": "as a video file",
    "mp4-as-png-frame": "cannot decode image file",
    "truncated-mp4": "as a video file",
    "truncated-png-frame": "cannot decode image file",
    "mixed-size-frames": "all frames in",
    "zero-frames-mp4": "has no video stream",
    "zero-frames-mkv": "as a video file",
    "zero-frames-avi": "the video has no frames",
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_error_and_nothing_is_written(
    kind, tmp_path, factory, capsys
) -> None:
    source = _make_bad_input(kind, tmp_path)
    previous = save_video(frames(5, seed=4), tmp_path / "previous.mp4")
    before = fingerprint(tmp_path)
    code, err = run(
        ["deblur", str(source), "--model", factory, *MODEL, "--out", str(previous)], capsys
    )
    assert_one_line_error(code, err, BAD_INPUTS[kind])
    assert_unchanged(before, tmp_path)


@pytest.mark.parametrize("kind", ["missing-mkv", "empty-folder", "text-as-mkv"])
def test_bad_input_to_adapt_leaves_earlier_outputs(
    kind, tmp_path, factory, previous_adapt, capsys
) -> None:
    source = _make_bad_input(kind, tmp_path)
    before = fingerprint(tmp_path)
    argv = ["adapt", str(source), "--model", factory, "--out", str(previous_adapt), *TINY]
    code, err = run([*argv, "--spec", "estrnn"], capsys)
    assert_one_line_error(code, err, BAD_INPUTS[kind])
    assert_unchanged(before, tmp_path)


def test_too_little_memory_for_the_pairs_is_a_one_line_error_with_the_cli_advice(
    tmp_path, factory, capsys, monkeypatch
) -> None:
    import ttblur.pipeline

    monkeypatch.setattr(ttblur.pipeline, "available_memory", lambda: 1000)
    source = save_video(frames(7), tmp_path / "clip.mkv")
    before = fingerprint(tmp_path)
    code, err = run(_adapt_argv(source, factory, tmp_path / "out"), capsys)
    assert_one_line_error(code, err, "on the command line; or adapt to a shorter clip")
    assert '--config with {"rsdm": {"max_patches": 1}}' in err
    assert_unchanged(before, tmp_path)


def test_png_renamed_to_mp4_is_read_as_one_frame(tmp_path, factory, capsys) -> None:
    """Documented recovery: containers are recognised by content, not by extension."""
    source = tmp_path / "picture.mp4"
    source.write_bytes(_png_bytes())
    before = fingerprint(tmp_path)
    code, err = run(
        ["deblur", str(source), "--model", factory, *MODEL, "--out", str(tmp_path / "o")], capsys
    )
    assert code == 0, err
    assert load_video(tmp_path / "o").shape == (1, 3, H, W)
    assert_unchanged(before, tmp_path, new={"o/00000.png", "o/.ttblur-frames"})


# ------------------------------------------------------------------------------ truncated


def _truncated(path: Path) -> int:
    """Write 24 frames to ``path`` (the suffix picks the container; MP4 with its index in
    front), cut the file in half; returns the frames that still decode."""
    if path.suffix == ".mp4":
        with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
            for image in (frames(24) * 255).round().byte().permute(0, 2, 3, 1).numpy():
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode(None))
    else:
        save_video(frames(24), path, fps=24)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedVideoWarning)
        return int(load_video(path).shape[0])


@pytest.mark.parametrize("suffix", [".avi", ".mkv", ".mp4"])
def test_truncated_video_warns_with_both_counts_and_keeps_what_decodes(
    suffix, tmp_path, factory, capsys
) -> None:
    source = tmp_path / f"cut{suffix}"
    decoded = _truncated(source)
    assert 0 < decoded < 24
    before = fingerprint(tmp_path)
    out = tmp_path / "sharp.mp4"
    code, err = run(["deblur", str(source), "--model", factory, *MODEL, "--out", str(out)], capsys)
    assert code == 0, err
    declared = "1.00 s (about 24 frames)" if suffix == ".mkv" else "24 frames"  # no count stored
    assert f"declares {declared} but only {decoded} " in err and "could be decoded" in err
    assert err.startswith("ttblur deblur: warning: ") and len(err.splitlines()) == 1
    assert load_video(out).shape[0] == decoded
    assert_unchanged(before, tmp_path, new={"sharp.mp4"})


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])
def test_truncated_video_strict_raises(suffix, tmp_path) -> None:
    source = tmp_path / f"cut{suffix}"
    decoded = _truncated(source)
    declared = r"1\.00 s \(about 24 frames\)" if suffix == ".mkv" else "24 frames"
    with pytest.raises(ValueError, match=f"declares {declared} but only {decoded} "):
        load_video(source, strict=True)
    with pytest.warns(TruncatedVideoWarning, match=f"only {decoded} .*could be decoded"):
        assert load_video(source).shape[0] == decoded


# ------------------------------------------------------------------------------ 0-4 frames


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_short_videos_deblur_and_are_refused_by_adapt(count, tmp_path, factory, capsys) -> None:
    source = save_video(frames(count), tmp_path / f"short{count}.mkv", fps=24)
    before = fingerprint(tmp_path)
    out = tmp_path / "sharp.mkv"
    code, err = run(["deblur", str(source), "--model", factory, *MODEL, "--out", str(out)], capsys)
    assert code == 0, err
    assert load_video(out).shape == (count, 3, H, W)
    assert_unchanged(before, tmp_path, new={"sharp.mkv"})

    before = fingerprint(tmp_path)
    argv = ["adapt", str(source), "--model", factory, "--spec", "estrnn"]
    code, err = run([*argv, "--out", str(tmp_path / "adapted"), *TINY], capsys)
    assert_one_line_error(code, err, f"video has {count} frames; adapt needs at least 5")
    assert_unchanged(before, tmp_path)


# ------------------------------------------------------------------------------ paths


def _adapt_argv(source: Path, factory: str, out: Path, *extra: str) -> list[str]:
    return [
        "adapt",
        str(source),
        "--model",
        factory,
        "--spec",
        "estrnn",
        "--out",
        str(out),
        *extra,
        *TINY,
    ]


def test_report_dir_equal_to_the_input_folder_is_refused(
    tmp_path, factory, frame_folder, capsys
) -> None:
    before = fingerprint(tmp_path)
    argv = _adapt_argv(frame_folder, factory, tmp_path / "out", "--report-dir", str(frame_folder))
    code, err = run(argv, capsys)
    assert_one_line_error(code, err, f"--report-dir {frame_folder} is inside the input video")
    assert_unchanged(before, tmp_path)
    assert not (tmp_path / "out").exists()


def test_report_dir_inside_the_input_folder_is_refused(
    tmp_path, factory, frame_folder, capsys
) -> None:
    before = fingerprint(tmp_path)
    inner = frame_folder / "report"
    code, err = run(
        _adapt_argv(frame_folder, factory, tmp_path / "out", "--report-dir", str(inner)), capsys
    )
    assert_one_line_error(code, err, "is inside the input video")
    assert_unchanged(before, tmp_path)
    assert not inner.exists()


def test_out_inside_the_input_folder_is_refused(tmp_path, factory, frame_folder, capsys) -> None:
    before = fingerprint(tmp_path)
    code, err = run(_adapt_argv(frame_folder, factory, frame_folder), capsys)
    assert_one_line_error(code, err, f"--out {frame_folder} is inside the input video")
    assert_unchanged(before, tmp_path)


@pytest.mark.parametrize("link", ["hard", "symbolic", "same-path"])
def test_out_that_is_the_input_file_is_refused(link, tmp_path, factory, clip_file, capsys) -> None:
    out = tmp_path / "alias.mp4"
    if link == "hard":
        os.link(clip_file, out)
    elif link == "symbolic":
        out.symlink_to(clip_file)
    else:
        out = clip_file
    before = fingerprint(tmp_path)
    code, err = run(
        ["deblur", str(clip_file), "--model", factory, *MODEL, "--out", str(out)], capsys
    )
    assert_one_line_error(code, err, "(the same file); writing it would destroy the input")
    assert_unchanged(before, tmp_path)


def test_input_at_the_adapt_output_path_is_refused(tmp_path, factory, capsys) -> None:
    out = tmp_path / "out"
    source = save_video(frames(7), out / "deblurred.mp4", fps=24)
    before = fingerprint(tmp_path)
    code, err = run(_adapt_argv(source, factory, out), capsys)
    assert_one_line_error(code, err, f"--out {source} is the input video")
    assert_unchanged(before, tmp_path)


def test_adapt_out_that_is_an_existing_file_is_refused(
    tmp_path, factory, clip_file, capsys
) -> None:
    out = tmp_path / "taken"
    out.write_text("a file, not a folder\n")
    before = fingerprint(tmp_path)
    code, err = run(_adapt_argv(clip_file, factory, out), capsys)
    assert_one_line_error(code, err, f"--out {out} exists and is not a folder")
    assert_unchanged(before, tmp_path)


def test_deblur_out_that_is_an_existing_folder_is_refused(
    tmp_path, factory, clip_file, capsys
) -> None:
    (tmp_path / "sharp.mp4").mkdir()
    before = fingerprint(tmp_path)
    out = tmp_path / "sharp.mp4"
    code, err = run(
        ["deblur", str(clip_file), "--model", factory, *MODEL, "--out", str(out)], capsys
    )
    assert_one_line_error(code, err, f"--out {out} is a folder, but a file is written there")
    assert_unchanged(before, tmp_path)


def test_deblur_out_that_is_a_read_only_file_is_refused(tmp_path, factory, clip_file, capsys):
    out = tmp_path / "sharp.mp4"
    out.write_bytes(b"the user's own video")
    out.chmod(0o444)
    before = fingerprint(tmp_path)
    code, err = run(
        ["deblur", str(clip_file), "--model", factory, *MODEL, "--out", str(out)], capsys
    )
    assert_one_line_error(code, err, f"--out {out}: '{out}' is read-only")
    assert_unchanged(before, tmp_path)


def test_output_below_a_file_is_refused(tmp_path, factory, clip_file, capsys) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    before = fingerprint(tmp_path)
    out = blocker / "sub" / "sharp.mp4"
    code, err = run(
        ["deblur", str(clip_file), "--model", factory, *MODEL, "--out", str(out)], capsys
    )
    assert_one_line_error(code, err, f"{blocker} is not a folder")
    assert_unchanged(before, tmp_path)


def test_unwritable_output_folder_is_refused_before_the_model_is_built(
    tmp_path, factory, clip_file, capsys, monkeypatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    built: list[str] = []
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: Path(p) != locked and real_access(p, mode, **kw)
    )
    monkeypatch.setattr("ttblur.cli.load_model", lambda *a, **k: built.append("model"))
    before = fingerprint(tmp_path)
    out = locked / "sharp.mp4"
    code, err = run(
        ["deblur", str(clip_file), "--model", factory, *MODEL, "--out", str(out)], capsys
    )
    assert_one_line_error(code, err, f"the folder {locked} is not writable")
    assert built == []
    assert_unchanged(before, tmp_path)


def test_png_folder_output_holding_other_images_is_refused(
    tmp_path, factory, clip_file, capsys
) -> None:
    out = tmp_path / "sharp"
    out.mkdir()
    (out / "holiday.png").write_bytes(_png_bytes())
    before = fingerprint(tmp_path)
    code, err = run(
        ["deblur", str(clip_file), "--model", factory, *MODEL, "--out", str(out)], capsys
    )
    assert_one_line_error(code, err, "already holds image files that ttblur did not write")
    assert_unchanged(before, tmp_path)


def test_revision_with_a_local_weights_path_is_refused(
    tmp_path, factory, clip_file, capsys
) -> None:
    weights = save_weights(standin_model("estrnn"), tmp_path / "w.safetensors")
    before = fingerprint(tmp_path)
    argv = ["deblur", str(clip_file), "--model", factory, *MODEL, "--weights", str(weights)]
    code, err = run([*argv, "--revision", "v2", "--out", str(tmp_path / "o.mp4")], capsys)
    assert_one_line_error(code, err, "--revision v2 applies to a Hugging Face Hub repo id")
    assert_unchanged(before, tmp_path)


# ------------------------------------------------------------------------------ divergence


@pytest.mark.parametrize("command", ["adapt", "eval"])
def test_floating_point_error_is_one_line(
    command, tmp_path, factory, previous_adapt, monkeypatch, capsys
) -> None:
    def diverge(*args: object, **kwargs: object) -> None:
        raise FloatingPointError("fine-tuning loss became nan at epoch 1")

    monkeypatch.setattr(ttblur.api, "adapt", diverge)
    if command == "adapt":
        argv = _adapt_argv(save_video(frames(7), tmp_path / "clip.mkv"), factory, previous_adapt)
    else:
        sequence = tmp_path / "dataset" / "seq"
        save_video(frames(7), sequence / "blur")
        save_video(frames(7, seed=1), sequence / "sharp")
        json_out = previous_adapt / "report.json"  # an earlier file the failed run must keep
        argv = [
            "eval",
            str(sequence),
            "--model",
            factory,
            "--spec",
            "estrnn",
            "--json",
            str(json_out),
            *TINY,
        ]
    before = fingerprint(tmp_path)
    code, err = run(argv, capsys)
    assert_one_line_error(code, err, "fine-tuning loss became nan at epoch 1")
    assert_unchanged(before, tmp_path)


# ------------------------------------------------------------------------------ interrupted writers


def _interrupted(clip: torch.Tensor, after: int, error: BaseException) -> Iterator[torch.Tensor]:
    """One-frame chunks of ``clip`` that raise ``error`` (a signal's exception) midway."""
    for index in range(clip.shape[0]):
        if index == after:
            raise error
        yield clip[index : index + 1]


@pytest.mark.parametrize("target", ["prev.mp4", "prev.mkv", "prev.avi", "prev-frames"])
@pytest.mark.parametrize("error", [KeyboardInterrupt(), Terminated(15)], ids=["SIGINT", "SIGTERM"])
def test_interrupted_writer_keeps_the_earlier_file(target, error, tmp_path) -> None:
    earlier = save_video(frames(5, seed=2), tmp_path / target, fps=24)
    before = fingerprint(tmp_path)
    with pytest.raises(type(error)):
        _write_chunks(_interrupted(frames(6), 4, error), earlier, 24.0)
    assert_unchanged(before, tmp_path)
    assert load_video(earlier).shape == (5, 3, H, W)


# ------------------------------------------------------------------------------ subprocesses


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("TTBLUR_DEBUG", None)
    env.update(extra)
    return env


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_midway(argv: list[str], cwd: Path, watch: Path, signum: int) -> tuple[int, str]:
    """Run ``python -m ttblur argv``; once the slow model reports that a staging file exists,
    send ``signum``; returns ``(exit status, stderr)``."""
    started = cwd / "started.flag"
    env = _env(TTBLUR_TEST_WATCH=str(watch), TTBLUR_TEST_STARTED=str(started))
    process = subprocess.Popen(
        [sys.executable, "-m", "ttblur", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a test run started in the background inherits SIGINT ignored (POSIX job control);
        # the CLI under test is meant to be interrupted as from a terminal
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                _, err = process.communicate(timeout=30)
                pytest.fail(f"the run never reached its output (rc {process.returncode}): {err}")
            time.sleep(0.05)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    started.unlink()
    return process.returncode, err.strip()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "status", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (signal 15)")],
    ids=["SIGINT", "SIGTERM"],
)
@pytest.mark.parametrize("target", ["previous.mp4", "previous-frames"])
def test_signal_during_deblur_keeps_the_previous_output(
    signum, status, word, target, tmp_path
) -> None:
    (tmp_path / "slow.py").write_text(SLOW_FACTORY)
    # long enough for libx264 to emit packets (and create the file) before the last window
    source = save_video(frames(60), tmp_path / "clip.mkv", fps=24)
    previous = save_video(frames(5, seed=5), tmp_path / target, fps=24)
    before = fingerprint(tmp_path)
    watch = tmp_path if previous.suffix else previous
    argv = [
        "deblur",
        str(source),
        "--model",
        "slow.py:build",
        *MODEL,
        "--window",
        "5",
        "--out",
        str(previous),
    ]
    code, err = _signal_midway(argv, tmp_path, watch, signum)
    assert code == status, err
    assert err.splitlines()[-1] == f"ttblur deblur: {word}; no partial output was written"
    assert_unchanged(before, tmp_path)
    assert load_video(previous).shape == (5, 3, H, W)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_signal_during_adapt_keeps_all_previous_outputs(signum, status, tmp_path) -> None:
    out = tmp_path / "out"
    save_weights(standin_model("estrnn", seed=9), out / "adapted.safetensors")
    save_video(frames(7, seed=9), out / "deblurred.mp4", fps=24)
    (out / "report.json").write_text('{"earlier": true}\n')
    (tmp_path / "slow.py").write_text(SLOW_FACTORY)
    source = save_video(frames(7), tmp_path / "clip.mkv", fps=24)
    before = fingerprint(tmp_path)
    argv = [
        "adapt",
        str(source),
        "--model",
        "slow.py:build",
        "--spec",
        "estrnn",
        "--out",
        str(out),
        *TINY,
    ]
    # the slow model stalls in the deblurring pass, i.e. after the new weights were staged
    code, err = _signal_midway(argv, tmp_path, out, signum)
    assert code == status, err
    assert err.splitlines()[-1] == (
        f"ttblur adapt: {'interrupted' if status == 130 else 'terminated (signal 15)'}; "
        "no partial output was written"
    )
    assert_unchanged(before, tmp_path)
    assert load_video(out / "deblurred.mp4").shape == (7, 3, H, W)
    assert (out / "report.json").read_text() == '{"earlier": true}\n'


PLANTED = "from pathlib import Path\nPath({marker!r}).write_text('executed')\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "entry"),
    [
        ("safetensors", "-m"),
        ("safetensors", "script"),
        ("torch", "-m"),
        ("numpy", "script"),
        ("av", "-m"),
    ],
)
def test_a_planted_module_in_the_current_folder_is_never_executed(module, entry, tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "MARKER"
    (work / f"{module}.py").write_text(PLANTED.format(marker=str(marker)))
    source = save_video(frames(5), work / "clip.mp4", fps=24)
    save_video(frames(5, seed=1), work / "sharp.mp4", fps=24)  # an earlier output
    # --weights makes the run import safetensors and read a file with it
    weights = save_weights(standin_model("estrnn"), tmp_path / "w.safetensors")
    argv = ["deblur", str(source), "--out", "sharp.mp4", "--no-progress"]
    if entry == "script":  # how the installed `ttblur` command starts: its own folder first
        launcher = tmp_path / "bin" / "ttblur_launcher.py"
        launcher.parent.mkdir()
        launcher.write_text("import sys\nfrom ttblur.cli import main\nsys.exit(main())\n")
        command = [sys.executable, str(launcher)]
    else:
        command = [sys.executable, "-m", "ttblur"]
    factory = tmp_path / "factory" / "nets.py"
    factory.parent.mkdir()
    factory.write_text(FACTORY)
    argv += ["--model", f"{factory}:build", "--spec", "estrnn", "--weights", str(weights)]
    before = fingerprint(work)
    done = subprocess.run(
        command + argv, cwd=work, env=_env(), capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), f"{module}.py in the current folder was executed"
    assert_unchanged({k: v for k, v in before.items() if k != "sharp.mp4"}, work, new={"sharp.mp4"})
    assert load_video(work / "sharp.mp4").shape == (5, 3, H, W)


@pytest.mark.slow
def test_default_model_runs_from_a_folder_with_a_planted_module(tmp_path) -> None:
    marker = tmp_path / "MARKER"
    work = tmp_path / "work"
    work.mkdir()
    (work / "safetensors.py").write_text(PLANTED.format(marker=str(marker)))
    source = save_video(frames(5), work / "clip.mp4", fps=24)
    done = subprocess.run(
        [sys.executable, "-m", "ttblur", "deblur", str(source), "--out", "o.mp4", "--no-progress"],
        cwd=work,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
