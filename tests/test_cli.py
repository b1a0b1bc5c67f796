"""The ``ttblur`` command line."""

import json
import subprocess
import sys

import cv2
import pytest

from ttblur.cli import main
from ttblur.video import load_video


def test_demo_writes_its_outputs_and_prints_metrics(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--frames", "7", "--size", "64", "80"]
    code = main([*args, "--patch-size", "32", "--epochs", "1", "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    for row in ("blurry input", "unadapted model", "adapted"):
        assert row in text
    image = cv2.imread(str(out / "side_by_side.png"))
    assert image.shape == (64, 4 * 80, 3)
    assert load_video(out / "deblurred.mp4").shape == (7, 3, 64, 80)
    report = json.loads((out / "report.json").read_text())
    assert report["num_frames"] == 7 and report["spec"] == "reference"


def test_usage_errors_exit_with_status_2(capsys) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--preset", "nope"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_runtime_errors_exit_with_status_1(tmp_path, capsys) -> None:
    code = main(["demo", "--out", str(tmp_path), "--frames", "4", "--size", "64", "80"])
    assert code == 1
    assert "at least 5" in capsys.readouterr().err


def test_module_entry_point_prints_the_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ttblur", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().startswith("0.")
