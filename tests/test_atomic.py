"""``ttblur.atomic``: outputs appear complete under their final names, or not at all."""

from __future__ import annotations

import json
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
