"""The ``ttblur`` command line: ``adapt``, ``deblur``, ``eval``, ``demo`` and their errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
from safetensors.torch import save_file

import ttblur.api
from ttblur.cli import find_sequences, load_model, load_weights, main, save_weights
from ttblur.inference import deblur
from ttblur.io.models import SHIPPED_MODELS
from ttblur.nets.reference import REFERENCE_MODELS
from ttblur.synth import SyntheticVideo, load_photo, make_video
from ttblur.testing import standin_model
from ttblur.video import load_video, save_video, video_info

TINY = ["--epochs", "1", "--patch-size", "32", "--no-progress"]
FACTORY = """
from ttblur.testing import standin_model


def build():
    return standin_model("estrnn")


def not_a_module():
    return 42


def broken():
    raise RuntimeError("no GPU here")
"""


@pytest.fixture(scope="module")
def clip() -> SyntheticVideo:
    return make_video(
        load_photo("astronaut"), preset="bsd-2ms16ms", num_frames=7, size=(64, 80), seed=3
    )


@pytest.fixture
def factory(tmp_path: Path) -> str:
    path = tmp_path / "user_nets.py"
    path.write_text(FACTORY)
    return str(path)


@pytest.fixture
def video_file(tmp_path: Path, clip: SyntheticVideo) -> Path:
    return save_video(clip.blurry, tmp_path / "clip.mp4", fps=24)


# ------------------------------------------------------------------------------ adapt


def test_adapt_writes_weights_video_report_and_visual_report(
    tmp_path, factory, video_file, capsys
) -> None:
    out, pictures = tmp_path / "out", tmp_path / "pictures"
    args = ["adapt", str(video_file), "--model", f"{factory}:build", "--spec", "estrnn"]
    code = main([*args, "--out", str(out), "--report-dir", str(pictures), "--seed", "5", *TINY])
    assert code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "pseudo-sharp patches" in text and "wrote" in text

    model = standin_model("estrnn")
    assert load_weights(model, out / "adapted.safetensors") == out / "adapted.safetensors"
    assert load_video(out / "deblurred.mp4").shape == (7, 3, 64, 80)
    report = json.loads((out / "report.json").read_text())
    assert report["num_frames"] == 7 and report["spec"] == "estrnn"
    assert report["config"]["seed"] == 5 and report["config"]["finetune"]["epochs"] == 1
    assert report["config"]["rsdm"]["patch_size"] == 32
    assert (pictures / "index.html").is_file() and (pictures / "patches.png").is_file()

    # the adapted weights round-trip: `ttblur deblur --weights` gives the adapted model's output
    frames_out = tmp_path / "frames"
    model_args = ["--model", f"{factory}:build", "--spec", "estrnn", "--weights", str(out)]
    code = main(["deblur", str(video_file), *model_args, "--out", str(frames_out), "--no-progress"])
    assert code == 0
    expected = deblur(model, load_video(video_file), spec="estrnn", progress=False)
    assert (load_video(frames_out) - expected).abs().max() <= 0.5 / 255 + 1e-6


def test_adapt_reads_a_config_file_and_flags_override_it(tmp_path, factory, video_file) -> None:
    config = tmp_path / "cfg.json"
    # epochs 0 alone would be refused: the flag replaces it before the file is validated
    config.write_text(json.dumps({"finetune": {"epochs": 0}, "rsdm": {"patch_size": 32}}))
    out = tmp_path / "out"
    args = ["adapt", str(video_file), "--model", f"{factory}:build", "--spec", "estrnn"]
    code = main([*args, "--config", str(config), "--epochs", "1", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["finetune"]["epochs"] == 1
    assert report["config"]["rsdm"]["patch_size"] == 32
    assert len(report["train_loss"]) == 1


# ------------------------------------------------------------------------------ deblur


def test_deblur_with_the_default_reference_model(tmp_path, video_file, capsys) -> None:
    out = tmp_path / "sharp.mp4"
    code = main(["deblur", str(video_file), "--out", str(out), "--window", "6", "--fps", "12"])
    assert code == 0
    assert load_video(out).shape == (7, 3, 64, 80)
    assert "wrote" in capsys.readouterr().out


def test_deblur_bit_depth_follows_the_input_unless_given(tmp_path, video_file, capsys) -> None:
    deep = save_video(load_video(video_file), tmp_path / "deep", bit_depth=16)
    run = ["deblur", str(deep), "--window", "6", "--no-progress", "--out"]
    assert main([*run, str(tmp_path / "a")]) == 0
    assert video_info(tmp_path / "a").bit_depth == 16
    assert main([*run, str(tmp_path / "b"), "--bit-depth", "8"]) == 0
    assert video_info(tmp_path / "b").bit_depth == 8
    capsys.readouterr()
    assert main([*run, str(tmp_path / "c.mp4"), "--bit-depth", "16"]) == 1
    assert "--bit-depth 16: --out" in capsys.readouterr().err
    assert not (tmp_path / "c.mp4").exists()


def test_weights_from_a_folder_and_from_the_hub_cache(
    tmp_path, hub_cache, video_file, capsys
) -> None:
    trained = standin_model("estrnn", seed=7)
    folder = tmp_path / "weights"
    save_weights(trained, folder / "model.safetensors")
    hub_cache.add("someone/estrnn-standin", folder)
    for weights in (str(folder), "someone/estrnn-standin"):
        built = standin_model("estrnn")
        load_weights(built, weights)
        for key, value in trained.state_dict().items():
            assert torch.equal(built.state_dict()[key], value)
    out = ["--out", str(tmp_path / "sharp"), "--no-progress"]
    assert main(["deblur", str(video_file), "--weights", "someone/missing", *out]) == 1
    assert "someone/missing" in capsys.readouterr().err


def test_revision_pins_a_hub_repo_from_the_command_line(
    tmp_path, hub_cache, factory, video_file, capsys
) -> None:
    for seed, ref in ((1, "main"), (2, "v2")):
        folder = tmp_path / f"weights-{ref}"
        save_weights(standin_model("estrnn", seed=seed), folder / "model.safetensors")
        hub_cache.add("someone/estrnn-standin", folder, ref=ref)
    for revision, seed in ((None, 1), ("v2", 2)):
        built = load_model(f"{factory}:build", "someone/estrnn-standin", revision=revision)
        expected = standin_model("estrnn", seed=seed).state_dict()
        assert all(torch.equal(v, expected[k]) for k, v in built.state_dict().items())
    args = ["deblur", str(video_file), "--model", f"{factory}:build", "--spec", "estrnn"]
    args += ["--weights", "someone/estrnn-standin", "--no-progress"]
    out = tmp_path / "sharp.mp4"
    assert main([*args, "--revision", "v2", "--out", str(out)]) == 0, capsys.readouterr().err
    assert load_video(out).shape == (7, 3, 64, 80)
    capsys.readouterr()
    assert main([*args, "--revision", "v9", "--out", str(tmp_path / "other.mp4")]) == 1
    err = capsys.readouterr().err.strip()
    assert "someone/estrnn-standin" in err and "v9" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "other.mp4").exists()


def test_a_module_in_the_current_folder_never_shadows_an_installed_one(
    tmp_path, monkeypatch
) -> None:
    # my_nets is found in the current folder (searched last), but its `import colorsys` gets
    # the standard library's, not the colorsys.py planted beside it
    (tmp_path / "colorsys.py").write_text("raise RuntimeError('planted module executed')\n")
    (tmp_path / "my_nets.py").write_text(
        "import colorsys\n\nfrom ttblur.testing import standin_model\n\n\n"
        "def build():\n    assert hasattr(colorsys, 'rgb_to_hsv')\n"
        "    return standin_model('estrnn')\n"
    )
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    assert type(load_model("my_nets:build")).__name__ == "ESTRNNLike"
    assert type(load_model()).__name__ == "ReferenceDeblurNet"
    assert sys.path == before


def test_load_model_imports_modules_and_files(tmp_path, factory, monkeypatch) -> None:
    assert type(load_model(f"{factory}:build")).__name__ == "ESTRNNLike"
    monkeypatch.chdir(tmp_path)  # a module next to the current folder is importable by name
    assert type(load_model("user_nets:build")).__name__ == "ESTRNNLike"
    assert type(load_model()).__name__ == "ReferenceDeblurNet"
    assert type(load_model("tiny")).__name__ == "ReferenceDeblurNet"
    assert type(load_model("base")).__name__ == "ReferenceUNet"
    assert set(SHIPPED_MODELS) == set(REFERENCE_MODELS)
    for name, target in SHIPPED_MODELS.items():
        assert isinstance(load_model(target), REFERENCE_MODELS[name][0])


# ------------------------------------------------------------------------------ eval


def _write_sequence(blur: Path, sharp: Path, seed: int) -> SyntheticVideo:
    clip = make_video(
        load_photo("coffee"), preset="bsd-2ms16ms", num_frames=7, size=(64, 80), seed=seed
    )
    save_video(clip.blurry, blur)
    save_video(clip.sharp, sharp)
    return clip


def test_eval_on_gopro_and_bsd_layouts(tmp_path, factory, capsys, monkeypatch) -> None:
    gopro, bsd = tmp_path / "GOPRO", tmp_path / "BSD"
    clips = {}
    for name, seed in (("GOPR0001_00", 1), ("GOPR0002_00", 2)):
        seq = gopro / "test" / name
        clips[name] = _write_sequence(seq / "blur", seq / "sharp", seed)
    _write_sequence(bsd / "007" / "Blur" / "RGB", bsd / "007" / "Sharp" / "RGB", 3)
    assert [s.layout for s in find_sequences(bsd)] == ["bsd"]
    assert [s.name for s in find_sequences(gopro)] == ["GOPR0001_00", "GOPR0002_00"]

    seen: list[torch.Tensor] = []
    real_adapt = ttblur.api.adapt

    def spy(model, video, *args, **kwargs):
        seen.append(video.clone())
        return real_adapt(model, video, *args, **kwargs)

    monkeypatch.setattr(ttblur.api, "adapt", spy)
    model = ["--model", f"{factory}:build", "--spec", "estrnn"]
    report = tmp_path / "gopro.json"
    code = main(
        ["eval", str(gopro), *model, "--sequences", "GOPR0002_00", "--json", str(report), *TINY]
    )
    assert code == 0, capsys.readouterr().err
    table = capsys.readouterr().out
    assert "| GOPR0002_00 | 7 |" in table and "GOPR0001_00" not in table and "**mean**" in table
    results = json.loads(report.read_text())
    (row,) = results["sequences"]
    assert row["name"] == "GOPR0002_00" and row["layout"] == "gopro" and row["frames"] == 7
    for kind in ("blurry", "unadapted", "adapted"):
        assert 10.0 < row[kind]["psnr"] < 60.0 and 0.0 < row[kind]["ssim"] <= 1.0
    # the identity stand-in leaves the input unchanged before adaptation
    assert row["unadapted"]["psnr"] == pytest.approx(row["blurry"]["psnr"], abs=1e-6)
    # adaptation saw the blurry frames only (8-bit PNGs), never the sharp ones
    (video,) = seen
    blurry = clips["GOPR0002_00"].blurry
    assert (video - blurry).abs().max() <= 0.5 / 255 + 1e-6

    code = main(["eval", str(bsd), *model, "--max-frames", "6", *TINY])
    assert code == 0
    assert "| 007 | 6 |" in capsys.readouterr().out


def test_eval_errors(tmp_path, capsys) -> None:
    assert main(["eval", str(tmp_path / "missing")]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 1
    assert "no sequence found" in capsys.readouterr().err
    seq = tmp_path / "only"
    _write_sequence(seq / "blur", seq / "sharp", 1)
    assert [s.name for s in find_sequences(seq)] == ["only"]  # a single sequence folder
    assert main(["eval", str(tmp_path), "--sequences", "nope", "--no-progress"]) == 1
    assert "unknown nope" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--crop-border", "40", "--no-progress"]) == 1
    assert "--crop-border 40 removes the whole 64x80 frames of sequence 'only'" in (
        capsys.readouterr().err
    )


def test_eval_keeps_the_finished_sequences_when_one_fails(tmp_path, factory, capsys) -> None:
    data = tmp_path / "ds"
    for name, seed in (("a", 1), ("b", 2)):
        _write_sequence(data / name / "blur", data / name / "sharp", seed)
    (data / "b" / "sharp" / "00006.png").unlink()  # b's ground truth is one frame short
    report = tmp_path / "r.json"
    model = ["--model", f"{factory}:build", "--spec", "estrnn"]
    assert main(["eval", str(data), *model, "--json", str(report), *TINY]) == 1
    captured = capsys.readouterr()
    assert "| a | 7 |" in captured.out and "the mean covers only these: 1 sequence failed" in (
        captured.out
    )
    assert "1 sequence failed: b:" in captured.err
    results = json.loads(report.read_text())
    assert [r["name"] for r in results["sequences"]] == ["a"]
    assert [f["name"] for f in results["failed"]] == ["b"]
    assert "do not pair up" in results["failed"][0]["error"]


# ------------------------------------------------------------------------------ demo


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


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "argv",
    [
        ["adapt", "clip.mp4"],  # --out is required
        ["adapt", "clip.mp4", "--out", "o", "--epochs", "0"],
        ["deblur", "clip.mp4", "--out", "o", "--spec", "nope"],
        ["deblur", "clip.mp4", "--out", "o", "--window", "x"],
        ["eval"],
        ["frobnicate"],
        ["demo", "--preset", "nope"],
        ["adapt", "clip.mp4", "--out", "o", "--seed", "-1"],
        ["demo", "--seed", "-1"],
        ["demo", "--epochs", "0"],
        ["demo", "--patch-size", "0"],
    ],
)
def test_usage_errors_exit_with_status_2(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: ttblur" in capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys) -> None:
    assert main([]) == 2
    assert "examples:" in capsys.readouterr().out


def test_help_shows_examples(capsys) -> None:
    for command in ("adapt", "deblur", "eval"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and "--model" in text and "--weights" in text


def test_bad_inputs_exit_with_status_1_and_one_line(tmp_path, factory, video_file, capsys) -> None:
    pickle_file = tmp_path / "model.pth"
    pickle_file.write_bytes(b"not read")
    wrong = tmp_path / "wrong.safetensors"
    save_file({"weight": torch.zeros(2)}, str(wrong))
    out = ["--out", str(tmp_path / "o.mp4"), "--no-progress"]
    cases = {
        "no such Python file": ["--model", str(tmp_path / "absent.py") + ":build"],
        "cannot import module": ["--model", "no_such_module_anywhere:build"],
        "has no attribute": ["--model", f"{factory}:missing"],
        "not a torch.nn.Module": ["--model", f"{factory}:not_a_module"],
        "no GPU here": ["--model", f"{factory}:broken"],
        "must be 'module:factory'": ["--model", "user_nets"],
        "never loaded": ["--weights", str(pickle_file)],
        "does not match": ["--weights", str(wrong)],
        "no such file or folder": ["--weights", str(tmp_path / "absent.safetensors")],
    }
    for expected, option in cases.items():
        assert main(["deblur", str(video_file), *option, *out]) == 1, expected
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
    assert main(["deblur", str(tmp_path / "absent.mp4"), *out]) == 1
    assert "video not found" in capsys.readouterr().err


def test_unavailable_device_exits_with_status_1(video_file, tmp_path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip(
            "needs a machine without CUDA (this one has a CUDA GPU, so --device cuda works)"
        )
    assert main(["deblur", str(video_file), "--out", str(tmp_path / "o"), "--device", "cuda"]) == 1
    assert "CUDA is not available" in capsys.readouterr().err


def test_runtime_errors_exit_with_status_1(tmp_path, capsys) -> None:
    code = main(["demo", "--out", str(tmp_path), "--frames", "4", "--size", "64", "80"])
    assert code == 1
    assert "at least 5" in capsys.readouterr().err
    for bad in (["--frames", "0"], ["--size", "0", "64"]):  # not numbers a clip can have: usage
        with pytest.raises(SystemExit) as stopped:
            main(["demo", "--out", str(tmp_path), *bad])
        assert stopped.value.code == 2 and "expected a number >= 1" in capsys.readouterr().err


def test_module_entry_point_prints_the_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ttblur", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().startswith("0.")


REGISTERING = """
from ttblur.registry import DETECTORS
from ttblur.stages.rsdm import RandomPatchSelector
from ttblur.testing import standin_model


@DETECTORS.register("cli_test_mine")
class Mine(RandomPatchSelector):
    pass


def build():
    return standin_model("estrnn")
"""


def test_a_stage_registered_by_the_model_module_can_be_named_in_the_config(
    tmp_path, video_file, capsys
) -> None:
    from ttblur.registry import DETECTORS

    nets = tmp_path / "nets.py"
    nets.write_text(REGISTERING)
    config = tmp_path / "mine.json"
    config.write_text(
        json.dumps({"rsdm": {"name": "cli_test_mine", "patch_size": 32}, "finetune": {"epochs": 1}})
    )
    argv = ["adapt", str(video_file), "--model", f"{nets}:build", "--spec", "estrnn"]
    try:
        code = main([*argv, "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress"])
        assert code == 0, capsys.readouterr().err
        report = json.loads((tmp_path / "o" / "report.json").read_text())
        assert report["config"]["rsdm"]["name"] == "cli_test_mine"
    finally:
        DETECTORS.unregister("cli_test_mine")
