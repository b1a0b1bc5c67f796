import pytest
import torch
from pydantic import ValidationError
from torch import nn

from ttblur.specs import (
    SPECS,
    ModelSpec,
    check_model,
    eval_mode,
    get_spec,
    infer_spec,
    list_specs,
    pad_to_multiple,
    register_spec,
)
from ttblur.testing import standin_model

BUILTIN = ["estrnn", "mmp_rnn", "dstnet", "shiftnet", "image", "reference"]


def test_builtin_specs_registered_with_official_conventions():
    assert set(BUILTIN) <= set(list_specs())
    estrnn = get_spec("estrnn")
    assert estrnn.input_range == (-0.5, 0.5)
    assert estrnn.channel_order == "BGR"
    assert (estrnn.past_frames, estrnn.future_frames, estrnn.multiple) == (2, 2, 4)
    assert estrnn.device_attribute == "device"
    assert get_spec("mmp_rnn").keep_frozen_in_eval
    dst = get_spec("dstnet")
    assert (dst.past_frames, dst.future_frames, dst.multiple) == (0, 0, 16)
    shift = get_spec("shiftnet")
    assert shift.max_batch == 1 and not shift.output_has_batch
    assert get_spec("image").layout == "BCHW"


def test_get_spec_is_case_and_dash_insensitive_and_lists_names():
    assert get_spec("MMP-RNN") is SPECS["mmp_rnn"]
    spec = get_spec("estrnn")
    assert get_spec(spec) is spec
    with pytest.raises(ValueError, match=r"unknown spec='nope'.*dstnet.*estrnn"):
        get_spec("nope")
    with pytest.raises(ValueError, match="known names"):
        get_spec(3)  # type: ignore[arg-type]


def test_register_spec_refuses_duplicates_unless_overwrite():
    spec = ModelSpec(name="My-Net", past_frames=1, future_frames=1, clip_length=5)
    try:
        register_spec(spec)
        assert get_spec("my_net") is spec
        with pytest.raises(ValueError, match="already registered"):
            register_spec(spec)
        other = spec.replace(clip_length=9)
        register_spec(other, overwrite=True)
        assert get_spec("my-net").clip_length == 9
    finally:
        SPECS.pop("my_net", None)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"clip_length": 4, "past_frames": 2, "future_frames": 2}, "clip_length"),
        ({"layout": "BCHW", "past_frames": 1, "clip_length": 4}, "BCHW"),
        ({"input_range": (1.0, 0.0)}, "input_range"),
        ({"device_attribute": "not an id"}, "identifier"),
        ({"multiple": 0}, "multiple"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_spec_validation(fields, message):
    with pytest.raises(ValidationError, match=message):
        ModelSpec(name="x", **fields)


def test_spec_is_frozen_and_json_round_trips():
    spec = get_spec("shiftnet")
    with pytest.raises(ValidationError):
        spec.clip_length = 3  # type: ignore[misc]
    assert ModelSpec.model_validate_json(spec.model_dump_json()) == spec


def test_output_frames():
    spec = get_spec("estrnn")
    assert spec.output_frames(5) == 1
    assert spec.output_frames(20) == 16
    with pytest.raises(ValueError, match="at least 5 frames"):
        spec.output_frames(4)
    assert get_spec("dstnet").output_frames(3) == 3


def test_value_range_and_bgr_mapping_are_inverse():
    spec = get_spec("estrnn")
    clip = torch.zeros(1, 5, 3, 4, 4)
    clip[:, :, 0] = 1.0  # pure red
    model_in = spec.to_model_input(clip)
    # BGR: red ends up in the last channel, mapped from 1 to 0.5; zeros map to -0.5
    assert torch.allclose(model_in[:, :, 2], torch.full((1, 5, 4, 4), 0.5))
    assert torch.allclose(model_in[:, :, 0], torch.full((1, 5, 4, 4), -0.5))
    back = spec.from_model_range(model_in)
    assert torch.allclose(back, clip)


def test_bchw_layout_flattens_frames():
    spec = get_spec("image")
    clip = torch.rand(2, 3, 3, 5, 6)
    x = spec.to_model_input(clip)
    assert x.shape == (6, 3, 5, 6)
    assert torch.equal(x[4], clip[1, 1])


def test_from_model_output_rejects_wrong_shapes():
    spec = get_spec("estrnn")
    with pytest.raises(ValueError, match=r"spec='estrnn'.*expected \(1, 1, 3, H, W\)"):
        spec.from_model_output(torch.zeros(1, 5, 3, 8, 8), 1, 5)
    with pytest.raises(ValueError, match="output_index"):
        spec.from_model_output((torch.zeros(1, 1, 3, 8, 8),), 1, 5)
    tuple_spec = spec.replace(output_index=0)
    out = tuple_spec.from_model_output((torch.zeros(1, 1, 3, 8, 8), None), 1, 5)
    assert out.shape == (1, 1, 3, 8, 8)


def test_call_splits_batches_for_batch_one_models():
    model = standin_model("shiftnet")
    with torch.no_grad():
        model.head.conv2.weight.normal_(0, 0.05)  # make it non-identity
    spec = get_spec("shiftnet")
    clip = torch.rand(3, 6, 3, 16, 16)
    out = spec.call(model, clip)
    assert out.shape == (3, 2, 3, 16, 16)
    single = spec.call(model, clip[1:2])
    assert torch.allclose(out[1:2], single, atol=1e-6)
    assert not torch.allclose(out[:, 0], clip[:, 2], atol=1e-3)


def test_call_pads_and_crops_to_the_multiple():
    model = standin_model("dstnet")
    clip = torch.rand(1, 3, 3, 20, 33)
    out = get_spec("dstnet").call(model, clip)
    assert out.shape == clip.shape
    assert torch.allclose(out, clip, atol=1e-6)  # identity at initialisation
    with pytest.raises(ValueError, match="multiples of 16"):
        get_spec("dstnet").call(model, clip, pad=False)


class _BatchRecorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.sizes = []
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        self.sizes.append(x.shape[0])
        return x * self.w


def test_call_frame_batches_respect_max_batch_for_image_models():
    model = _BatchRecorder()
    spec = get_spec("image").replace(max_batch=2)
    clip = torch.rand(1, 5, 3, 4, 4)
    out = spec.call(model, clip)
    assert model.sizes == [2, 2, 1]
    assert torch.allclose(out, clip)


def test_pad_to_multiple_content_and_fallback():
    frames = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6)
    padded = pad_to_multiple(frames, 4)
    assert padded.shape == (2, 3, 8, 8)
    assert torch.equal(padded[..., :5, :6], frames)
    assert torch.equal(padded[..., 5, :6], frames[..., 3, :])  # reflection about the last row
    tiny = torch.rand(1, 3, 1, 1)
    assert torch.equal(pad_to_multiple(tiny, 4), tiny.expand(1, 3, 4, 4))  # replicate fallback
    assert pad_to_multiple(frames, 1) is frames


@pytest.mark.parametrize("name", ["estrnn", "mmp_rnn", "dstnet", "shiftnet", "image"])
def test_check_model_accepts_matching_standin(name):
    assert check_model(standin_model(name), name) is SPECS[name]


@pytest.mark.parametrize(
    "model_name, spec_name",
    [
        ("estrnn", "dstnet"),
        ("dstnet", "estrnn"),
        ("shiftnet", "reference"),
        ("image", "dstnet"),
        ("estrnn", "shiftnet"),
        ("dstnet", "image"),
    ],
)
def test_check_model_rejects_mismatched_spec(model_name, spec_name):
    with pytest.raises(ValueError, match=f"does not fit spec='{spec_name}'"):
        check_model(standin_model(model_name), spec_name)


def test_check_model_rejects_wrong_border_frames():
    # a GShiftNet built with 1 + 1 border frames does not fit the 2 + 2 built-in spec...
    from ttblur.testing import ShiftNetLike

    model = ShiftNetLike(past_frames=1, future_frames=1)
    with pytest.raises(ValueError, match=r"spec='shiftnet'.*\(1, 3, 3, 40, 40\)"):
        check_model(model, "shiftnet")
    # ...but fits the same spec with 1 + 1
    spec = get_spec("shiftnet").replace(name="shiftnet11", past_frames=1, future_frames=1)
    assert check_model(model, spec) is spec


def test_check_model_restores_modes_and_device_attribute():
    model = standin_model("mmp_rnn")
    model.train()
    model.prior.eval()
    check_model(model, "mmp_rnn")
    assert model.training and not model.prior.training
    assert model.prior_is_pristine()
    assert model.device == torch.device("cuda")  # restored after the probe ran on the CPU


def test_infer_spec_uses_model_spec_then_image():
    ref = standin_model("reference")
    assert infer_spec(ref) == ref.spec
    image = standin_model("image")
    assert infer_spec(image).name == "image"
    with pytest.raises(ValueError, match="spec='image'"):
        infer_spec(standin_model("estrnn"))
    assert infer_spec(standin_model("estrnn"), "estrnn").name == "estrnn"


def test_eval_mode_restores_each_submodule_flag():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
    model.train()
    model[1].eval()
    with eval_mode(model):
        assert not model.training and not model[0].training
    assert model.training and model[0].training and not model[1].training


def test_the_probe_catches_a_model_needing_a_larger_multiple_than_declared():
    from ttblur.specs import probe_size

    assert [probe_size(m) for m in (1, 2, 4, 8, 16, 32, 64)] == [33, 34, 36, 40, 48, 32, 64]

    class NeedsEight(nn.Module):  # two stride-2 levels and a skip: sides must divide by 4 ...
        def __init__(self) -> None:
            super().__init__()
            self.down = nn.Conv2d(3, 3, 3, stride=4, padding=1)
            self.up = nn.Upsample(scale_factor=4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.shape[-1] % 4 == 0  # ... and say so without a message
            return x + self.up(self.down(x)) * 0

    declared = get_spec("image")  # multiple=1: the probe's 33 px fails, with the hint
    with pytest.raises(ValueError, match=r"33 px is an odd multiple of it\), give the spec"):
        check_model(NeedsEight(), declared)
    fitting = declared.replace(name="image4", multiple=4)
    assert check_model(NeedsEight(), fitting) is fitting


@pytest.mark.parametrize("name", ["image", "reference", "estrnn", "dstnet", "shiftnet", "mmp_rnn"])
def test_the_model_never_gets_a_view_of_frames_ttblur_keeps(name):
    """A network editing its input in place (``x.mul_(0.9)``) used to shift the guard's stored
    windows on every scoring pass: its scores climbed on unchanged weights."""
    spec = get_spec(name)
    clip = torch.rand(2, spec.min_frames, 3, 16, 16)
    kept = clip.clone()

    def editing(x: torch.Tensor) -> torch.Tensor:
        x.mul_(0.5)
        if spec.layout == "BCHW":
            return x
        out = x[:, spec.past_frames : x.shape[1] - spec.future_frames]
        return out if spec.output_has_batch else out[0]

    spec.call(editing, clip)
    assert torch.equal(clip, kept)
    assert (
        not spec.to_model_input(clip).untyped_storage().data_ptr()
        == clip.untyped_storage().data_ptr()
    )
