"""Dataset discovery (ttblur.io.datasets), the natural order (ttblur.io.paths) and the eval
library (ttblur.evaluation)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ttblur.evaluation import FrameScores, markdown_table, score_frames
from ttblur.io.datasets import (
    DatasetSequence,
    IncompleteSequenceWarning,
    find_sequences,
    select_sequences,
)
from ttblur.io.paths import (
    FRAME_FILE,
    FRAMES_LIST,
    OutputPathError,
    PlannedOutput,
    check_planned_paths,
    natural_key,
)


def _sequence(root: Path, name: str, layout: str = "gopro") -> Path:
    parts = {"gopro": (("blur",), ("sharp",)), "bsd": (("Blur", "RGB"), ("Sharp", "RGB"))}
    for part in parts[layout]:
        root.joinpath(name, *part).mkdir(parents=True)
    return root / name


def test_natural_key_orders_numbers_as_numbers_and_is_total() -> None:
    names = ["img10.png", "img2.png", "IMG2.png", "a.png", "img1.png"]
    expected = ["a.png", "img1.png", "IMG2.png", "img2.png", "img10.png"]
    assert sorted(names, key=natural_key) == expected
    assert natural_key(Path("/data/seq10")) == natural_key("seq10")
    assert FRAME_FILE.match("00012.png") and not FRAME_FILE.match("a12.png")


def test_gopro_sequences_in_natural_order_hidden_and_incomplete_skipped(tmp_path) -> None:
    for name in ("GOPR0410_11_00", "GOPR0384_11_05", "GOPR0384_11_10", ".hidden"):
        _sequence(tmp_path, name)
    (tmp_path / "only_blur" / "blur").mkdir(parents=True)
    (tmp_path / "only_sharp" / "Sharp" / "RGB").mkdir(parents=True)
    (tmp_path / "notes").mkdir()  # neither half: not a sequence, nothing to say
    with pytest.warns(IncompleteSequenceWarning) as caught:
        found = find_sequences(tmp_path)
    assert [str(w.message) for w in caught] == [
        f"2 incomplete sequence(s) in {tmp_path} not evaluated: only_blur (blur/ without "
        "sharp/), only_sharp (Sharp/RGB/ without Blur/RGB/)"
    ]
    assert [s.name for s in found] == ["GOPR0384_11_05", "GOPR0384_11_10", "GOPR0410_11_00"]
    first = found[0]
    assert first == DatasetSequence(
        "GOPR0384_11_05", "gopro", tmp_path / first.name / "blur", tmp_path / first.name / "sharp"
    )


def test_bsd_layout_under_test_and_a_single_sequence(tmp_path) -> None:
    for name in ("10", "2"):
        _sequence(tmp_path / "test", name, "bsd")
    found = find_sequences(tmp_path)
    assert [(s.name, s.layout) for s in found] == [("2", "bsd"), ("10", "bsd")]
    assert found[0].blur == tmp_path / "test" / "2" / "Blur" / "RGB"
    single = find_sequences(tmp_path / "test" / "10")
    assert [(s.name, s.layout) for s in single] == [("10", "bsd")]


def test_test_folder_is_searched_beside_a_half_sequence_in_the_root(tmp_path) -> None:
    """A root holding only half a sequence (a preview export) used to raise before test/
    was looked at."""
    _sequence(tmp_path / "test", "seq1")
    (tmp_path / "preview" / "blur").mkdir(parents=True)
    with pytest.warns(IncompleteSequenceWarning, match=r"in .* not evaluated: preview \(blur/"):
        found = find_sequences(tmp_path)
    assert [s.name for s in found] == ["seq1"]


def test_discovery_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        find_sequences(tmp_path / "absent")
    with pytest.raises(ValueError, match="no sequence found"):
        find_sequences(tmp_path)
    (tmp_path / "A" / "blur").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no complete sequence .*: A \(blur/ without sharp/\)"):
        find_sequences(tmp_path)


def test_select_sequences_keeps_the_asked_order_once(tmp_path) -> None:
    for name in ("000", "001", "002"):
        _sequence(tmp_path, name)
    found = find_sequences(tmp_path)
    assert select_sequences(found, None) == found
    assert [s.name for s in select_sequences(found, "002, 000,002")] == ["002", "000"]
    with pytest.raises(ValueError, match=r"--sequences: unknown 003; known: 000, 001, 002"):
        select_sequences(found, "000,003")
    with pytest.raises(ValueError, match=r"unknown \(empty\)"):
        select_sequences(found, " , ")


def test_planned_paths_are_checked_before_writing(tmp_path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "00001.png").write_bytes(b"")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    inputs = [("video", clip), ("frames", frames)]
    check_planned_paths(inputs, [PlannedOutput("--out", tmp_path / "out", True)])
    with pytest.raises(FileNotFoundError, match="video not found"):
        check_planned_paths([("video", tmp_path / "absent.mp4")], [])
    with pytest.raises(OutputPathError, match="is the input video"):
        check_planned_paths(inputs, [PlannedOutput("--out", clip, False)])
    with pytest.raises(OutputPathError, match="inside the input frames"):
        check_planned_paths(inputs, [PlannedOutput("--out", frames / "o.mp4", False)])
    single = [("video", frames / "00001.png")]
    with pytest.raises(OutputPathError, match=r"did not write.*'00001\.png'"):
        check_planned_paths(single, [PlannedOutput("--out", frames, True, frames=True)])
    (frames / FRAMES_LIST).write_text("00001.png\n")  # a frame of an earlier write, as input
    with pytest.raises(OutputPathError, match="replaced by an output frame"):
        check_planned_paths(single, [PlannedOutput("--out", frames, True, frames=True)])
    # A frame-folder output that holds a user's images is refused before any work: a 1.png,
    # or frames that ffmpeg extracted (%05d.png from 00001.png) and no ttblur write listed.
    for name in ("1.png", "00001.png", "000001.png"):
        shots = tmp_path / f"shots-{name}"
        shots.mkdir()
        (shots / name).write_bytes(b"")
        with pytest.raises(OutputPathError, match=rf"did not write.*'{name}'"):
            out = PlannedOutput("--out", shots, True, frames=True)
            check_planned_paths([("video", clip)], [out])


def test_a_file_name_whose_temporary_name_would_not_fit_is_refused(tmp_path) -> None:
    """A 240-byte --json name failed only after the whole evaluation: its hidden temporary
    name is about 40 bytes longer, beyond the file system's 255."""
    long = tmp_path / ("J" * 240 + ".json")
    with pytest.raises(OutputPathError, match=r"--json .*shorten the name to at most 2\d\d bytes"):
        check_planned_paths([], [PlannedOutput("--json", long, False)])
    check_planned_paths([], [PlannedOutput("--json", tmp_path / ("J" * 180 + ".json"), False)])


def test_planned_outputs_that_clash_with_each_other_are_refused(tmp_path) -> None:
    # adapt --out o --report-dir o/report.json used to run to the end and fail while
    # publishing, leaving a half-written --out.
    out = tmp_path / "o"
    adapt_files = [PlannedOutput("--out", out / n, False) for n in ("report.json", "a.mp4")]
    planned = [PlannedOutput("--out", out, True), *adapt_files]
    for report, match in [
        (out / "report.json", "--out writes the file .*report.json there, so it cannot be"),
        (out / "a.mp4" / "sub", "--out writes the file .*a.mp4 there"),
    ]:
        with pytest.raises(OutputPathError, match=match):
            check_planned_paths([], [*planned, PlannedOutput("--report-dir", report, True)])
    with pytest.raises(OutputPathError, match="--out writes the same file"):
        check_planned_paths([], [*planned, PlannedOutput("--json", out / "a.mp4", False)])
    # a report folder beside or inside --out, or --out itself, is fine
    for report in (out, out / "report", tmp_path / "r"):
        check_planned_paths([], [*planned, PlannedOutput("--report-dir", report, True)])
    assert not out.exists()


def test_scores_and_table() -> None:
    sharp = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    scores = score_frames(sharp, sharp)
    assert len(scores.psnr) == 3 and all(s == pytest.approx(1.0) for s in scores.ssim)
    # Unequal counts were scored over the shorter side without a word.
    with pytest.raises(ValueError, match=r"fewer frames than the 3 sharp frames \(only 2\)"):
        score_frames(sharp[:2], sharp)
    with pytest.raises(ValueError, match="more frames than the 2 sharp frames"):
        score_frames(iter(sharp), sharp[:2])
    total = FrameScores([10.0], [0.5])
    total.extend(FrameScores([20.0], [0.7]))
    assert total.mean() == pytest.approx({"psnr": 15.0, "ssim": 0.6})
    row = {
        "name": "seq",
        "frames": 2,
        "blurry": {"psnr": 20.0, "ssim": 0.5},
        "unadapted": {"psnr": 25.0, "ssim": 0.7},
        "adapted": {"psnr": 26.5, "ssim": 0.75},
    }
    lines = markdown_table([row]).splitlines()
    assert lines[0].startswith("| sequence | frames |")
    assert lines[2] == "| seq | 2 | 20.00 / 0.5000 | 25.00 / 0.7000 | 26.50 / 0.7500 | +1.50 |"
