"""The trainers' shared machinery: schedule, checkpoints, resume check, command line, data."""

import argparse
import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import save_file
from torch import nn

from ttblur.nets.bme import BMEConfig
from ttblur.nets.reference import ReferenceConfig, ReferenceDeblurNet, ReferenceUNetConfig
from ttblur.training import bme, idblau, reference
from ttblur.training.common import (
    CheckpointLayout,
    ConfigOptions,
    JsonLinesLog,
    check_same_config,
    cosine_lr,
    cosine_schedule,
    load_checkpoint,
    optimizer_step,
    resume_from,
    save_checkpoint,
    torch_threads,
)
from ttblur.training.data import flip_transpose, frame_sequences, natural_key

# ---------------------------------------------------------------------- learning rate


@pytest.mark.parametrize(
    ("lr", "lr_min", "steps"),
    [pytest.param(8e-4, 1e-6, 4000, marks=pytest.mark.slow), (1e-3, 1e-4, 37), (2e-3, 0.0, 500)],
)
def test_schedule_equals_the_closed_form_at_every_step(lr, lr_min, steps):
    """torch's LambdaLR gives the trainers' earlier closed form to float precision (1 rounding)."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = cosine_schedule(optimizer, lr=lr, lr_min=lr_min, total_steps=steps)
    worst = 0.0
    for step in range(steps + 1):
        progress = step / steps
        closed = lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * progress))
        current = optimizer.param_groups[0]["lr"]
        assert scheduler.get_last_lr()[0] == current
        worst = max(worst, abs(current - closed) / closed if closed else abs(current))
        optimizer.step()
        scheduler.step()
    assert worst <= 2.3e-16  # at most about one unit in the last place of a float64
    assert cosine_lr(0, steps, lr, lr_min) == lr
    assert cosine_lr(steps, steps, lr, lr_min) == pytest.approx(lr_min, rel=1e-12)
    assert cosine_lr(2 * steps, steps, lr, lr_min) == cosine_lr(steps, steps, lr, lr_min)


def test_warm_up_rises_linearly_then_joins_the_cosine():
    lr, steps = 1e-3, 100
    assert cosine_lr(0, steps, lr, 0.0, warmup_steps=10) == pytest.approx(lr / 10)
    assert cosine_lr(4, steps, lr, 0.0, warmup_steps=10) == pytest.approx(
        0.5 * cosine_lr(4, steps, lr, 0.0)
    )
    for step in (10, 50, 100):
        assert cosine_lr(step, steps, lr, 0.0, warmup_steps=10) == cosine_lr(step, steps, lr, 0.0)
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=0.5)
    cosine_schedule(optimizer, lr=lr, lr_min=0.0, total_steps=steps, start_step=3, warmup_steps=10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.4 * cosine_lr(3, steps, lr, 0.0))


def test_schedule_resumes_at_its_step():
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=0.5)  # lr is replaced
    cosine_schedule(optimizer, lr=1e-3, lr_min=0.0, total_steps=100, start_step=25)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(cosine_lr(25, 100, 1e-3, 0.0))


# ---------------------------------------------------------------------- checkpoints


def _tiny_run(steps, folder=None, checkpoint_at=None):
    """Adam on a tiny ReferenceDeblurNet with a fixed batch per step; resumable from ``folder``."""
    torch.manual_seed(0)
    model = ReferenceDeblurNet(ReferenceConfig(features=(4, 4, 8), num_blocks=1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    step = 0
    if folder is not None and CheckpointLayout().exists(folder):
        state, _ = load_checkpoint(folder, model, optimizer)
        step = state["step"]
    scheduler = cosine_schedule(optimizer, lr=1e-2, lr_min=1e-4, total_steps=steps, start_step=step)
    while step < steps:
        gen = torch.Generator().manual_seed(step)
        clips = torch.rand(2, 5, 3, 16, 16, generator=gen)
        loss = (model(clips)[:, 0] - clips[:, 2].flip(-1)).abs().mean()
        optimizer_step(loss, model, optimizer, grad_clip=1.0, scheduler=scheduler)
        step += 1
        if step == checkpoint_at:
            save_checkpoint(folder, model, optimizer, {"step": step})
            return model
    return model


def test_resume_through_the_shared_checkpoint_is_exact(tmp_path):
    straight = _tiny_run(6)
    _tiny_run(6, tmp_path / "ck", checkpoint_at=3)
    resumed = _tiny_run(6, tmp_path / "ck")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    files = sorted(p.relative_to(tmp_path / "ck").as_posix() for p in (tmp_path / "ck").rglob("*"))
    assert files == [
        "model",
        "model/config.json",
        "model/model.safetensors",
        "optimizer.safetensors",
        "state.json",
    ]  # no staging file left behind


def test_checkpoints_of_earlier_versions_load(tmp_path):
    """Moments ``<index>.exp_avg|exp_avg_sq|step`` ((1,) float32 steps), no optimizer groups."""
    model = _tiny_run(2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(1, 5, 3, 16, 16)).mean().backward()
    optimizer.step()
    folder = tmp_path / "old"
    model.save_pretrained(folder / "model")
    moments = {}
    for index, param in enumerate(model.parameters()):
        state = optimizer.state[param]
        moments[f"{index}.exp_avg"] = state["exp_avg"].contiguous()
        moments[f"{index}.exp_avg_sq"] = state["exp_avg_sq"].contiguous()
        moments[f"{index}.step"] = state["step"].reshape(1).float()
    save_file(moments, str(folder / "optimizer.safetensors"))
    (folder / "state.json").write_text(json.dumps({"step": 7, "losses": [0.5]}))
    other = ReferenceDeblurNet(model.config)
    restored = torch.optim.Adam(other.parameters(), lr=1e-3)
    state, extra = load_checkpoint(folder, other, restored)
    assert state["step"] == 7 and extra == {}
    saved, loaded = optimizer.state_dict()["state"], restored.state_dict()["state"]
    assert saved.keys() == loaded.keys()
    for index, entry in saved.items():
        assert entry.keys() == loaded[index].keys()
        for key, value in entry.items():
            assert value.shape == loaded[index][key].shape, (index, key)
            assert torch.equal(value, loaded[index][key]), (index, key)


def test_checkpoint_layout_prefix_and_extra_tensors(tmp_path):
    model = _tiny_run(1)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(1, 5, 3, 16, 16)).mean().backward()
    optimizer.step()
    layout = CheckpointLayout(model_dir="", tensors="t.safetensors", state="s.json", prefix="o.")
    generator = torch.Generator().manual_seed(3)
    extra = {"generator_state": generator.get_state()}
    save_checkpoint(tmp_path, model, optimizer, {"step": 1}, layout=layout, tensors=extra)
    assert {p.name for p in tmp_path.iterdir()} == {
        "config.json",
        "model.safetensors",
        "t.safetensors",
        "s.json",
    }
    restored = torch.optim.Adam(ReferenceDeblurNet(model.config).parameters())
    _, others = load_checkpoint(tmp_path, ReferenceDeblurNet(model.config), restored, layout=layout)
    assert torch.equal(others["generator_state"], generator.get_state())


class _Run(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = 1e-3
    threads: int | None = 1


def test_resume_check_allows_only_runtime_fields_to_change(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"config": _Run().model_dump(mode="json")}))
    assert resume_from(tmp_path, _Run(threads=4), resume=True, overwrite=False)
    with pytest.raises(ValueError, match=r"different config \(fields \['lr'\]\)"):
        resume_from(tmp_path, _Run(lr=1.0), resume=True, overwrite=False)
    with pytest.raises(ValueError, match="resume"):
        resume_from(tmp_path, _Run(), resume=False, overwrite=False)
    assert not resume_from(tmp_path, _Run(lr=1.0), resume=False, overwrite=True)
    assert not resume_from(tmp_path / "none", _Run(), resume=True, overwrite=False)
    with pytest.raises(ValueError, match="different config"):
        check_same_config({"lr": 1e-3, "threads": 1}, _Run(threads=2), where=tmp_path)


def test_threads_are_restored_and_log_lines_appended(tmp_path):
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    for step in (1, 2):
        with JsonLinesLog(tmp_path / "log.jsonl") as log:
            log.write({"step": step})
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"step": 1}, {"step": 2}]
    with JsonLinesLog(tmp_path / "log.jsonl") as log:
        log.mark_resumed(1)
    last = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert last == {"step": 1, "resumed": True}


# ---------------------------------------------------------------------- command line


def _help(parser: argparse.ArgumentParser, *argv: str) -> str:
    """The ``--help`` text of ``parser`` (or of its sub-command ``argv``)."""
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
        parser.parse_args([*argv, "--help"])
    return out.getvalue()


@pytest.mark.parametrize(
    ("options", "config", "nested"),
    [
        (reference.TRAIN_OPTIONS, reference.TrainReferenceConfig, {"model"}),
        (reference.TINY_OPTIONS, ReferenceConfig, set()),
        (reference.BASE_OPTIONS, ReferenceUNetConfig, set()),
        (bme.TRAIN_OPTIONS, bme.TrainBMEConfig, {"model"}),
        (idblau.TRAIN_OPTIONS, idblau.TrainIDBlauConfig, set()),
    ],
)
def test_cli_builder_maps_every_field(options, config, nested):
    assert set(options.fields) == set(config.model_fields) - nested
    parser = argparse.ArgumentParser()
    options.add_to(parser)
    defaults = options.values(parser.parse_args([]))
    reference_config = config.model_validate(defaults) if not nested else None
    for name, info in config.model_fields.items():
        if name in nested:
            continue
        default = info.get_default(call_default_factory=True)
        assert defaults[name] == (list(default) if isinstance(default, tuple) else default), name
    if reference_config is not None:
        assert reference_config == config()
    for option in options.options:  # every option has a help text from the docstring
        assert option.kwargs["help"].split(" (default")[0], option.field


def test_cli_builder_types_choices_switches_and_optional_lists():
    class Cfg(BaseModel):
        """Settings.

        Attributes:
            size: ``(H, W)`` of the frames,
                in pixels.
            mode: how.
        """

        size: tuple[int, int] = (4, 6)
        mode: str = "a"
        kind: int | None = None
        photos: list[str] | None = None
        names: list[str] = Field(default_factory=lambda: ["x"])
        fast: bool = False
        augment: bool = True
        scale: float = Field(default=1.0, description="a factor")

    options = ConfigOptions(Cfg, flags={"kind": ["--kind-alias"]})
    parser = argparse.ArgumentParser()
    options.add_to(parser)
    help_text = parser.format_help()
    assert "(H, W) of the frames, in pixels." in help_text and "a factor" in help_text
    argv = ["--size", "8", "10", "--kind-alias", "3", "--photos", "--names", "a", "b"]
    values = options.values(parser.parse_args([*argv, "--fast", "--no-augment"]))
    assert Cfg(**values) == Cfg(
        size=(8, 10), kind=3, photos=None, names=["a", "b"], fast=True, augment=False
    )
    assert options.values(parser.parse_args(["--photos", "p"]))["photos"] == ["p"]
    assert all(flag in help_text for flag in ("--fast", "--no-augment", "--kind ", "--kind-alias"))


def test_cli_builder_refuses_nested_configs_and_unknown_fields():
    with pytest.raises(TypeError, match="model"):
        ConfigOptions(reference.TrainReferenceConfig)
    with pytest.raises(ValueError, match="no fields"):
        ConfigOptions(BMEConfig, include=("nope",))


def test_trainers_keep_every_earlier_flag():
    earlier = {
        reference: "--out --steps --batch-size --crop --lr --lr-min --loss --num-videos "
        "--video-frames --video-size --refresh-every --checkpoint-every --arch --features "
        "--num-blocks --widths --mid-blocks --motion-mix --preset --seed --threads --no-resume "
        "--export --no-progress",
        bme: "--out --variant --encoder-weights --init-weights --epochs --steps-per-epoch "
        "--batch-size --crop --scale-range --lr --lr-min --presets --photos --videos-per-preset "
        "--video-frames --video-size --no-augment-photos --gopro-root --gopro-fraction "
        "--gopro-frames --gopro-magnitude --num-threads --device --seed --resume --stop-after "
        "--export --no-progress",
    }
    for module, flags in earlier.items():
        text = _help(module.build_parser(), "train")
        assert [flag for flag in flags.split() if flag not in text] == [], module.__name__
    idblau_flags = (
        "--out --data --config --steps --batch-size --crop-size --lr --lr-min --grad-clip "
        "--seed --device --save-every --mag-norm --no-resume --no-progress --threads --presets "
        "--photos --frames-per-video --size --frames-per-blur --stride --gamma --flow-preset "
        "--cache-dir --max-windows"
    )
    text = _help(idblau.build_parser())
    assert [flag for flag in idblau_flags.split() if flag not in text] == []


def test_running_reference_command_line_gives_the_same_config():
    """The command of the long ``base`` run: its saved config must compare equal on resume."""
    argv = (
        "train --arch base --motion-mix --out runs/base --steps 4000 --batch-size 8 --crop 128 "
        "--num-videos 96 --video-frames 12 --video-size 160 224 --refresh-every 4 "
        "--checkpoint-every 100 --lr 8e-4 --threads 1 --seed 0 --no-progress"
    ).split()
    config = reference.config_from_args(reference.build_parser().parse_args(argv))
    expected = reference.TrainReferenceConfig(
        model=ReferenceUNetConfig(),
        motion_mix=True,
        num_videos=96,
        video_frames=12,
        video_size=(160, 224),
        crop=128,
        batch_size=8,
        steps=4000,
        lr=8e-4,
        refresh_every=4,
        checkpoint_every=100,
        threads=1,
        seed=0,
    )
    assert config.model_dump(mode="json") == expected.model_dump(mode="json")


# ---------------------------------------------------------------------- data helpers


def test_frame_sequences_sort_naturally_and_skip_hidden_files(tmp_path):
    for name in ("f10.png", "F2.PNG", "f1.png", ".f0.ttblur-tmp-1234.png", "notes.txt"):
        (tmp_path / "seq" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "seq" / name).write_bytes(b"")
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "a.jpg").write_bytes(b"")
    (sequence,) = frame_sequences(tmp_path, min_frames=2)
    assert [p.name for p in sequence] == ["f1.png", "F2.PNG", "f10.png"]
    assert [len(s) for s in frame_sequences(tmp_path)] == [3, 1]
    assert sorted(["b2", "B10", "a"], key=natural_key) == ["a", "b2", "B10"]


def test_flip_transpose_draws_three_coins_whatever_the_outcome():
    image = torch.arange(12.0).reshape(1, 3, 4)
    seen = set()
    for seed in range(16):
        gen = torch.Generator().manual_seed(seed)
        a, b = flip_transpose(image, image + 1, gen)
        assert torch.equal(b, a + 1)
        seen.add(tuple(a.shape))
        after = torch.randint(1000, (1,), generator=gen)
        ref = torch.Generator().manual_seed(seed)
        torch.randint(2, (3,), generator=ref)
        assert torch.equal(after, torch.randint(1000, (1,), generator=ref))
    assert seen == {(1, 3, 4), (1, 4, 3)}


def test_idblau_settings_validate():
    with pytest.raises(ValueError, match="lr_min"):
        idblau.TrainIDBlauConfig(lr=1e-4, lr_min=1e-3)
    with pytest.raises(ValueError):
        idblau.TrainIDBlauConfig(batch_size=0)
    assert Path(idblau.CHECKPOINT_LAYOUT.state).name == idblau.STATE_JSON
