"""The runnable examples in ``examples/``: each one runs end to end with its tiny settings.

Every example is executed as a user would run it (``python examples/NAME.py --quick ...``)
in a subprocess, from an empty working directory, with one torch thread (two threads on a
loaded 2-core machine make these runs several times slower) and the Hub offline.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# example -> (extra arguments after --quick, text its output must contain)
RUNS: dict[str, tuple[list[str], list[str]]] = {
    "quickstart.py": ([], ["adapted model", "unadapted model", "pseudo-sharp patches"]),
    "adapt_many_videos.py": ([], ["3 videos in", "| clip0 | done |", "ran 0, skipped 3"]),
    "custom_synthesizer.py": ([], ["adapted with AnisotropicGaussian", "PhysicalReblur"]),
    "wrap_estrnn.py": (["--adapt"], ["standin_model('estrnn')", "restored 8 frames"]),
    "wrap_mmp_rnn.py": (["--adapt"], ["standin_model('mmp_rnn')", "restored 8 frames"]),
    "wrap_dstnet.py": (["--adapt"], ["standin_model('dstnet')", "restored 8 frames"]),
    "wrap_shiftnet.py": (["--out", "restored"], ["standin_model('shiftnet')", "wrote 8 frames"]),
    "train_bme_on_gopro.py": (["--root", "footage"], ["trained 3 steps", "rsdm={'weights'"]),
}


def _run(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _fake_footage(root: Path, sequences: int = 2, frames: int = 6) -> None:
    """A tiny ``GOPRO_Large_all``-style tree: a texture panning 2 px per frame, PNG frames."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur((rng.random((64, 128, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    for s in range(sequences):
        folder = root / f"GOPR0000_00_{s:02d}"
        folder.mkdir(parents=True)
        for t in range(frames):
            cv2.imwrite(str(folder / f"{t + 1:06d}.png"), texture[8:56, 2 * t : 2 * t + 64])


def _example_files() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def test_every_example_is_run_here() -> None:
    assert _example_files() == sorted(RUNS)


@pytest.mark.parametrize("script", _example_files())
def test_example_has_a_docstring_that_says_how_to_run_it(script: str) -> None:
    docstring = ast.get_docstring(ast.parse((EXAMPLES / script).read_text(encoding="utf-8")))
    assert docstring, f"{script} has no module docstring"
    assert f"examples/{script}" in docstring, f"{script}'s docstring does not show how to run it"
    assert "--quick" in docstring


@pytest.mark.parametrize("script", sorted(RUNS))
def test_example_runs_quick(script: str, tmp_path: Path) -> None:
    args, expected = RUNS[script]
    if script == "train_bme_on_gopro.py":
        _fake_footage(tmp_path / "footage")
    result = _run(script, ["--quick", *args], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for text in expected:
        assert text in output, f"{text!r} missing from the output of {script}:\n{output[-4000:]}"
    if script == "wrap_shiftnet.py":
        assert len(list((tmp_path / "restored").glob("*.png"))) == 8
    if script == "train_bme_on_gopro.py":
        final = tmp_path / "runs" / "bme-footage" / "final"
        assert (final / "model.safetensors").is_file() and (final / "config.json").is_file()


def test_wrap_example_names_the_missing_checkpoint(tmp_path: Path) -> None:
    result = _run("wrap_estrnn.py", ["--repo", str(tmp_path)], tmp_path)
    assert result.returncode != 0
    assert "--weights is required together with --repo" in result.stderr
