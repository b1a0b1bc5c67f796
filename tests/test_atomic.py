"""``ttblur.atomic``: outputs appear complete under their final names, or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ttblur.atomic import TEMP_MARKER, StagedOutputs, atomic_path, atomic_write_text
from ttblur.io.atomic import atomic_write_json, json_text


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if TEMP_MARKER in p.name]


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_any_error(tmp_path) -> None:
    target = tmp_path / "sub" / "out.mp4"
    atomic_write_text(target, "old")
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".mp4" and tmp.name.startswith(".")
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible before the block ends
    assert target.read_text() == "new"
    for error in (ValueError("boom"), KeyboardInterrupt(), SystemExit(143)):
        with pytest.raises(type(error)), atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise error
        assert target.read_text() == "new"
    with atomic_path(target):
        pass  # nothing written: the old file stays
    assert target.read_text() == "new"
    assert _leftovers(tmp_path) == []
    with pytest.raises(IsADirectoryError), atomic_path(tmp_path):
        pass


def test_staged_outputs_publish_together_or_not_at_all(tmp_path) -> None:
    out, report = tmp_path / "out", tmp_path / "out" / "report"
    with StagedOutputs() as staged:
        staged.file(out / "a.txt").write_text("a1")
        stage = staged.folder(report, replaces=["p.png", "q.png"])
        (stage / "p.png").write_text("p1")
        (stage / "q.png").write_text("q1")
    assert staged.published == [out / "a.txt", report / "p.png", report / "q.png"]

    with pytest.raises(KeyboardInterrupt), StagedOutputs() as staged:
        staged.file(out / "a.txt").write_text("a2")
        (staged.folder(report) / "p.png").write_text("p2")
        raise KeyboardInterrupt
    assert (out / "a.txt").read_text() == "a1" and (report / "p.png").read_text() == "p1"
    assert _leftovers(tmp_path) == []

    with StagedOutputs() as staged:  # a rerun that draws fewer pictures drops the stale one
        staged.file(out / "a.txt").write_text("a3")
        (staged.folder(report, replaces=["p.png", "q.png"]) / "p.png").write_text("p3")
    assert sorted(p.name for p in report.iterdir()) == ["p.png"]
    assert (out / "a.txt").read_text() == "a3" and _leftovers(tmp_path) == []


def test_staged_file_never_written_fails_and_publishes_nothing(tmp_path) -> None:
    atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(FileNotFoundError, match="was not written"), StagedOutputs() as staged:
        staged.file(tmp_path / "a.txt").write_text("new")
        staged.file(tmp_path / "b.txt")
    assert (tmp_path / "a.txt").read_text() == "old" and not (tmp_path / "b.txt").exists()
    assert _leftovers(tmp_path) == []


def test_a_folder_in_the_way_of_one_file_publishes_nothing(tmp_path) -> None:
    # The staged folder of one output created a folder where another output is a file: the
    # first rename used to go through before the second failed.
    atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(IsADirectoryError, match=r"b\.txt"), StagedOutputs() as staged:
        staged.file(tmp_path / "a.txt").write_text("new")
        staged.file(tmp_path / "b.txt").write_text("b")
        (staged.folder(tmp_path / "b.txt") / "p.png").write_text("p")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert list((tmp_path / "b.txt").iterdir()) == []


def test_published_files_get_the_usual_permissions(tmp_path) -> None:
    # safetensors creates its files private (0o600); published outputs get 0o666 less the
    # umask, as the other outputs do.
    import os

    import torch
    from safetensors.torch import save_file

    from ttblur.io.atomic import StagedOutputs, atomic_path

    mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.safetensors") as tmp:
            save_file({"x": torch.zeros(2)}, str(tmp))
        with StagedOutputs() as staged:
            save_file({"x": torch.zeros(2)}, str(staged.file(tmp_path / "b.safetensors")))
    finally:
        os.umask(mask)
    for name in ("a.safetensors", "b.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


def test_json_text_is_standard_json_with_null_for_non_finite_numbers(tmp_path) -> None:
    # eval --json wrote "psnr": Infinity where a frame equalled its ground truth
    payload = {"psnr": float("inf"), "rows": [1.5, float("nan"), (float("-inf"), 2)], "ok": True}
    text = json_text(payload)
    assert "Infinity" not in text and "NaN" not in text and text.endswith("}\n")
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard {name}"))
    assert strict == {"psnr": None, "rows": [1.5, None, [None, 2]], "ok": True}
    atomic_write_json(tmp_path / "a.json", payload)
    assert (tmp_path / "a.json").read_text() == text


def test_a_symbolic_link_is_followed_and_kept(tmp_path) -> None:
    real = atomic_write_text(tmp_path / "data" / "clip.txt", "old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    with StagedOutputs() as staged:
        staged.file(link).write_text("newer")
    assert link.is_symlink() and real.read_text() == "newer"
    assert _leftovers(tmp_path) == []


def test_a_read_only_file_is_refused_and_modes_are_kept(tmp_path) -> None:
    protected = atomic_write_text(tmp_path / "keep.txt", "mine")
    protected.chmod(0o444)
    with pytest.raises(PermissionError, match=r"keep\.txt' is read-only"):
        atomic_write_text(protected, "other")  # refused even for root
    with pytest.raises(PermissionError), StagedOutputs() as staged:
        staged.file(protected)
    assert protected.read_text() == "mine" and _leftovers(tmp_path) == []
    private = atomic_write_text(tmp_path / "private.txt", "a")
    private.chmod(0o600)
    atomic_write_text(private, "b")
    assert private.stat().st_mode & 0o777 == 0o600 and private.read_text() == "b"


def test_a_read_only_frame_is_refused_before_any_rename(tmp_path) -> None:
    frames, other = tmp_path / "frames", tmp_path / "a.txt"
    atomic_write_text(frames / "00001.png", "old")
    (frames / "00001.png").chmod(0o444)
    with pytest.raises(PermissionError), StagedOutputs() as staged:
        staged.file(other).write_text("a")
        stage = staged.folder(frames)
        (stage / "00000.png").write_text("0")
        (stage / "00001.png").write_text("1")
    assert not other.exists() and not (frames / "00000.png").exists()
    assert (frames / "00001.png").read_text() == "old" and _leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="orphans are recognised by pid on POSIX")
def test_temporaries_of_a_killed_process_are_removed_by_the_next_write(tmp_path) -> None:
    import subprocess
    import sys

    from ttblur.io.atomic import temp_name

    target = tmp_path / "out.mp4"
    child = subprocess.run(  # a process that dies (SIGKILL) with its temporaries in place
        [
            sys.executable,
            "-c",
            "import os, signal, sys; from pathlib import Path; "
            "from ttblur.atomic import StagedOutputs, atomic_path; "
            "t = Path(sys.argv[1]); s = StagedOutputs(); (s.folder(t.parent / 'frames') / "
            "'00000.png').write_text('x'); "
            "c = atomic_path(t); c.__enter__().write_text('partial'); "
            "os.kill(os.getpid(), signal.SIGKILL)",
            str(target),
        ],
        check=False,
    )
    assert child.returncode == -9
    dead = _leftovers(tmp_path)
    assert len(dead) == 2  # the file temporary and the staging folder (with a frame inside)
    live = temp_name(target)  # this process's own temporary: running, so kept
    live.write_text("mine")
    foreign = tmp_path / f".out{TEMP_MARKER}00000000-1-abcdef01.mp4"  # another host: kept
    foreign.write_text("theirs")
    atomic_write_text(target, "done")
    with StagedOutputs() as staged:
        staged.folder(tmp_path / "frames")
    assert target.read_text() == "done"
    assert sorted(_leftovers(tmp_path)) == sorted([live, foreign])


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("other_thread", [False, True])
def test_deferred_signals_hold_an_interrupt_until_the_block_ends(other_thread) -> None:
    """With another thread alive (tqdm's monitor, OpenMP), masking the main thread alone let
    the interrupt through in the middle of the block."""
    import signal
    import threading
    import time

    from ttblur.io.atomic import deferred_signals

    stop = threading.Event()
    if other_thread:
        threading.Thread(target=stop.wait, daemon=True).start()
    reached = []
    # A process started in the background (`nohup ... &`) inherits SIGINT ignored; Python then
    # installs no KeyboardInterrupt handler, so install it for this test and put back what was.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # the handler has had every chance to run by now
                reached.append(True)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        stop.set()
        signal.signal(signal.SIGINT, before)
    assert reached == [True]


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    import subprocess
    import sys

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(child.stdout)


def test_stale_temporaries_of_live_runs_and_other_hosts_are_kept(tmp_path) -> None:
    """remove_stale_temporaries deleted every temporary in the folder, also those a second
    run writing into it was still filling (its outputs then "were not written")."""
    from ttblur.io.atomic import remove_stale_temporaries, temp_name

    live = temp_name(tmp_path / "report.json")
    live.write_text("being written")
    host = live.name.split(TEMP_MARKER)[1][:8]
    dead = tmp_path / f".adapted{TEMP_MARKER}{host}-{_dead_pid()}-0123abcd.safetensors"
    foreign = tmp_path / f".deblurred{TEMP_MARKER}00000000-1-abcdef01.mp4"
    legacy = tmp_path / f".deblurred{TEMP_MARKER}abcdef01.mp4"  # before names had owners
    for path in (dead, foreign, legacy):
        path.write_text("x")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([dead, legacy])
    assert live.exists() and foreign.exists()


def test_a_temporary_of_a_temporary_left_by_a_killed_run_is_removed(tmp_path) -> None:
    """A staged file written through atomic_path (deblur_file into staged.file(...)) has two
    owner tags; orphan removal matched one only, so a SIGKILL left it forever."""
    from ttblur.io.atomic import temp_name

    target = tmp_path / "deblurred.mp4"
    host = temp_name(target).name.split(TEMP_MARKER)[1][:8]
    owner = f"{host}-{_dead_pid()}"
    nested = tmp_path / f"..deblurred{TEMP_MARKER}{owner}-0123abcd{TEMP_MARKER}{owner}-4567ef01.mp4"
    nested.write_text("half a video")
    atomic_write_text(target, "done")
    assert not nested.exists() and target.read_text() == "done"


def test_a_folder_file_linked_to_another_file_system_is_published_with_the_rest(tmp_path) -> None:
    """A rename cannot cross file systems: a staged folder's file whose final name is a link
    to another device failed with EXDEV after some files had been renamed (a mixed folder)."""
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another file system")
    import tempfile

    far = Path(tempfile.mkdtemp(dir=other))
    try:
        out = tmp_path / "report"
        out.mkdir()
        (far / "index.html").write_text("old")
        (out / "index.html").symlink_to(far / "index.html")
        (out / "loss.png").write_text("old")
        with StagedOutputs() as staged:
            stage = staged.folder(out)
            (stage / "index.html").write_text("new")
            (stage / "loss.png").write_text("new")
        assert (out / "index.html").is_symlink()
        assert (far / "index.html").read_text() == "new" and (out / "loss.png").read_text() == "new"
        assert not _leftovers(tmp_path) and not _leftovers(far)
    finally:
        import shutil

        shutil.rmtree(far, ignore_errors=True)
