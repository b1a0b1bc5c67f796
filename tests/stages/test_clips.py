"""Motion-consistent pseudo clips: shifts, blur, mirroring and margins."""

import pytest
import torch
import torch.nn.functional as F

from ttblur.protocols import PatchLocation
from ttblur.stages.clips import (
    clip_margin,
    mirrored_box,
    patch_motion_conditions,
    synthesize_motion_clips,
)
from ttblur.stages.reblur import motion_blur


def uniform(n: int, size: int, x: float, y: float, z: float) -> torch.Tensor:
    return torch.tensor([x, y, z]).view(1, 3, 1, 1).expand(n, 3, size, size).clone()


def identity(boxes: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    return boxes.clone()


def _unblurred_clip(video, patch, x: float, y: float, step: float, radius: int):
    return synthesize_motion_clips(
        video,
        [patch],
        uniform(1, patch.size, x, y, 0.0),
        identity,
        step_px=step,
        radius=radius,
    )[0]


def test_frames_move_k_steps_along_the_direction() -> None:
    torch.manual_seed(0)
    video = torch.rand(6, 3, 48, 64)
    patch = PatchLocation(2, 10, 20, 16)
    clip = _unblurred_clip(video, patch, 1.0, 0.0, step=3.0, radius=2)
    assert clip.shape == (5, 3, 16, 16)
    frame = video[patch.frame]
    for slot, k in enumerate(range(-2, 3)):
        # Content at x in the centre frame sits at x + 3k in frame k: the window moves -3k.
        left = patch.left - 3 * k
        assert torch.equal(clip[slot], frame[:, 10:26, left : left + 16])
    # Vertical direction, 2 px per frame, radius 1.
    down = _unblurred_clip(video, patch, 0.0, 1.0, step=2.0, radius=1)
    assert torch.equal(down[0], frame[:, 12:28, 20:36])
    assert torch.equal(down[2], frame[:, 8:24, 20:36])


def test_every_frame_carries_the_patch_blur() -> None:
    torch.manual_seed(1)
    video = torch.rand(5, 3, 64, 64)
    patch = PatchLocation(2, 24, 24, 16)
    condition = uniform(1, 16, 0.0, 1.0, 6.0)
    blur = lambda boxes, cond: motion_blur(boxes, cond)  # noqa: E731
    clips = synthesize_motion_clips(video, [patch], condition, blur, step_px=0.0, radius=2)
    expected = motion_blur(video[2:3], uniform(1, 64, 0.0, 1.0, 6.0))
    for slot in range(5):  # no motion: all five frames are the blurred patch
        assert torch.allclose(clips[0, slot], expected[0, :, 24:40, 24:40], atol=1e-5)


def test_image_models_get_the_centre_frame_only() -> None:
    video = torch.rand(5, 3, 32, 32)
    clips = synthesize_motion_clips(
        video,
        [PatchLocation(1, 0, 0, 16)],
        uniform(1, 16, 1.0, 0.0, 0.0),
        identity,
        step_px=50.0,
        radius=0,
    )
    assert clips.shape == (1, 1, 3, 16, 16)
    assert torch.equal(clips[0, 0], video[1, :, :16, :16])


def test_box_mirrors_the_frame_at_its_edges() -> None:
    frame = torch.rand(3, 20, 24)
    patch = PatchLocation(0, 2, 0, 8)
    box = mirrored_box(frame, patch, 5)
    padded = F.pad(frame[None], (5, 5, 5, 5), mode="reflect")[0]
    assert torch.equal(box, padded[:, 2 : 2 + 18, 0:18])
    # Margins wider than the frame keep mirroring (no error); rows and columns may differ.
    assert mirrored_box(frame, patch, 40).shape == (3, 88, 88)
    assert torch.equal(mirrored_box(frame, patch, (5, 0)), padded[:, 2:20, 5:13])


def test_margin_covers_shifts_and_half_the_blur_in_multiples_of_8() -> None:
    assert clip_margin(2, 10.0, 10.0) == 32  # ceil(20 + 5) + 2 = 27 -> 32
    assert clip_margin(2, 10.0, 10.0, component=0.6) == 24  # ceil(15) + 2 = 17 -> 24
    assert clip_margin(0, 0.0, 0.0) == 8
    with pytest.raises(ValueError, match="finite"):
        clip_margin(2, float("nan"), 1.0)


def test_boxes_are_only_as_large_as_the_clip_reads() -> None:
    shapes = []

    def recording(boxes: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(boxes.shape))
        return boxes.clone()

    video = torch.rand(5, 3, 64, 64)
    patches = [PatchLocation(2, 24, 24, 16)] * 3
    condition = torch.cat([uniform(2, 16, 1.0, 0.0, 10.0), uniform(1, 16, 0.0, 1.0, 10.0)])
    synthesize_motion_clips(video, patches, condition, recording, step_px=3.0, radius=2)
    # Horizontal: 6 + 5 + 2 = 13 -> 16 columns, 2 -> 8 rows; vertical: the other way round.
    assert sorted(shapes) == [(1, 3, 48, 32), (2, 3, 32, 48)]


def test_patch_condition_is_the_mean_direction_and_magnitude() -> None:
    condition = uniform(2, 4, 0.6, 0.8, 0.25)
    condition[1, :2] = 0.0  # no direction: falls back to horizontal
    out = patch_motion_conditions(condition)
    assert torch.allclose(out[0], torch.tensor([0.6, 0.8, 0.25]))
    assert torch.allclose(out[1], torch.tensor([1.0, 0.0, 0.25]))


def test_input_checks() -> None:
    video = torch.rand(5, 3, 32, 32)
    with pytest.raises(ValueError, match="patches but"):
        synthesize_motion_clips(video, [], uniform(1, 16, 1, 0, 0), identity, step_px=1.0, radius=2)
    with pytest.raises(ValueError, match="radius"):
        synthesize_motion_clips(
            video,
            [PatchLocation(1, 0, 0, 16)],
            uniform(1, 16, 1, 0, 0),
            identity,
            step_px=1.0,
            radius=-1,
        )
