"""ttblur.evaluation: scoring sequences in memory, the frame-weighted mean row."""

from __future__ import annotations

import pytest

from ttblur.config import AdaptConfig
from ttblur.evaluation import EvalOptions, evaluate, frame_mean, markdown_table
from ttblur.io.datasets import find_sequences
from ttblur.io.video import save_video
from ttblur.synth import make_video
from ttblur.testing import standin_model


def _row(name: str, frames: int, psnr: float) -> dict:
    scores = {"psnr": psnr, "ssim": psnr / 100}
    return {
        "name": name,
        "frames": frames,
        "blurry": scores,
        "unadapted": scores,
        "adapted": scores,
    }


def test_frame_mean_weights_each_sequence_by_its_frames() -> None:
    mean = frame_mean([_row("a", 3, 20.0), _row("b", 1, 40.0)])
    assert mean["name"] == "**mean**" and mean["frames"] == 4
    assert mean["adapted"]["psnr"] == pytest.approx(25.0)
    assert mean["blurry"]["ssim"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="no frames"):
        frame_mean([])
    table = markdown_table([_row("a", 3, 20.0), mean])
    assert "| a | 3 | 20.00 / 0.2000 |" in table and "| **mean** | 4 |" in table


def test_evaluate_scores_blurry_unadapted_and_adapted_per_sequence(tmp_path) -> None:
    for name, seed in (("s1", 1), ("s2", 2)):
        clip = make_video("coffee", "bsd-2ms16ms", num_frames=6, size=(48, 64), seed=seed)
        save_video(clip.blurry, tmp_path / name / "blur")
        save_video(clip.sharp, tmp_path / name / "sharp")
    config = AdaptConfig()
    config.finetune.epochs = 1
    config.rsdm.patch_size = 32
    result = evaluate(
        find_sequences(tmp_path),
        standin_model("estrnn"),
        config,
        EvalOptions(spec="estrnn", max_frames=5, progress=False),
    )
    assert [r["name"] for r in result.rows] == ["s1", "s2"] and result.frames == 10
    for row in result.rows:
        # the identity stand-in returns its input before adaptation
        assert row["unadapted"]["psnr"] == pytest.approx(row["blurry"]["psnr"], abs=1e-5)
        assert 15.0 < row["adapted"]["psnr"] < 60.0
    assert result.mean == frame_mean(result.rows)


def test_frames_that_do_not_pair_up_are_refused_not_scored_shifted(tmp_path) -> None:
    import torch

    from ttblur.evaluation import load_pair

    clip = make_video("coffee", "bsd-2ms16ms", num_frames=6, size=(48, 64), seed=1)
    blur, sharp = tmp_path / "blur", tmp_path / "sharp"
    save_video(clip.blurry, blur)
    save_video(clip.sharp, sharp)
    _, truth = load_pair(blur, sharp, max_frames=5)
    assert torch.equal(truth, load_pair(blur, sharp)[1][:5])
    (sharp / "00002.png").unlink()  # every later pair would be shifted by one frame
    with pytest.raises(ValueError, match=r"do not pair up: frame '00002' is only in .*blur$"):
        load_pair(blur, sharp, max_frames=5)
    (blur / "00004.png").unlink()  # same counts, still shifted in the middle
    with pytest.raises(ValueError, match=r"frame '00002' is only in .*blur \(and 1 more\)"):
        load_pair(blur, sharp)
    other = tmp_path / "gt"  # a layout naming its frames differently: counts must agree
    save_video(clip.sharp[:4], other)
    for path in sorted(other.glob("*.png")):
        path.rename(path.with_name("gt_" + path.name))
    with pytest.raises(ValueError, match=r"blur holds 5 frames but .*gt holds 4: blurry and sharp"):
        load_pair(blur, other)
    files = (tmp_path / "b.mp4", tmp_path / "s.mp4")
    save_video(clip.blurry, files[0])
    save_video(clip.sharp[:5], files[1])
    with pytest.raises(ValueError, match=r"b\.mp4 holds 6 frames but .*s\.mp4 holds 5"):
        load_pair(*files, max_frames=3)
