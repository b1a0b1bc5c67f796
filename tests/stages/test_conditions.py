"""Functional forms of the condition computations (ttblur.stages.conditions)."""

from __future__ import annotations

import math

import pytest
import torch

from ttblur.stages.conditions import (
    adapt_magnitude,
    blur_direction,
    condition_map,
    match_video_blur,
    neighbour_frames,
    neighbour_pairs,
    video_blur_samples,
)


def test_neighbour_pairs_and_frames_inside_and_at_the_ends() -> None:
    assert neighbour_pairs(5, 10, 2) == [3, 4, 5, 6]
    assert neighbour_pairs(0, 10, 2) == [0, 1]
    assert neighbour_pairs(1, 10, 2) == [0, 1, 2]
    assert neighbour_pairs(9, 10, 2) == [7, 8]
    assert neighbour_pairs(0, 1, 2) == []
    assert neighbour_frames(5, 10, 2) == [3, 4, 6, 7]
    assert neighbour_frames(1, 10, 2) == [0, 2, 3]
    assert neighbour_frames(9, 10, 1) == [8]
    with pytest.raises(ValueError, match="outside"):
        neighbour_pairs(10, 10, 2)


def test_blur_direction_functional_thresholds() -> None:
    flow = torch.tensor([0.3, -0.4]).view(1, 2, 1, 1).expand(1, 2, 2, 2).clone()  # |F| = 0.5
    assert torch.allclose(blur_direction(flow, 0.5)[0, :, 0, 0], torch.tensor([0.6, -0.8]))
    assert torch.allclose(blur_direction(flow, 0.6)[0, :, 0, 0], torch.tensor([0.6, -0.8]))
    with pytest.raises(ValueError, match=r"\(N, 2, h, w\)"):
        blur_direction(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="NaN"):
        blur_direction(torch.full((1, 2, 2, 2), float("nan")))


def test_adapt_magnitude_functional() -> None:
    current = torch.tensor([0.0, 2.0, 4.0]).view(1, 1, 1, 3)
    mean = torch.full((1, 1, 1, 3), 30.0)
    out = adapt_magnitude(current, mean, offset=10.0)
    assert torch.allclose(out.flatten(), torch.tensor([10.0, 25.0, 40.0]))
    out = adapt_magnitude(current, mean, current_max=torch.tensor([8.0]), offset=0.0)
    assert torch.allclose(out.flatten(), torch.tensor([0.0, 7.5, 15.0]))
    zero = adapt_magnitude(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 3.0), offset=1.0)
    assert torch.allclose(zero, torch.full((1, 1, 2, 2), 4.0))  # constant map -> ratio 1
    with pytest.raises(ValueError, match=">= 0"):
        adapt_magnitude(-current, mean)
    with pytest.raises(ValueError, match="must match"):
        adapt_magnitude(current, torch.zeros(1, 1, 3, 1))


def test_condition_map_stacks_pixels_without_a_cap() -> None:
    direction = torch.tensor([0.6, 0.8]).view(1, 2, 1, 1).expand(1, 2, 1, 2)
    magnitude = torch.tensor([50.0, 500.0]).view(1, 1, 1, 2)
    cond = condition_map(direction, magnitude)
    assert cond.shape == (1, 3, 1, 2)
    assert torch.equal(cond[0, 2, 0], torch.tensor([50.0, 500.0]))
    with pytest.warns(DeprecationWarning, match="mag_norm"):
        legacy = condition_map(direction, magnitude, 100.0)
    assert torch.equal(legacy, cond)


def test_video_blur_samples_are_block_means_of_every_frame() -> None:
    maps = torch.zeros(2, 1, 8, 12)
    maps[0, 0, :4, :4] = 8.0  # one block of frame 0 blurred
    maps[1] = 2.0
    samples = video_blur_samples(maps, 4)
    assert samples.shape == (2 * 2 * 3,)
    assert sorted(samples.tolist()) == [0.0] * 5 + [2.0] * 6 + [8.0]
    assert video_blur_samples(maps, 100).tolist() == pytest.approx([8.0 * 16 / 64, 2.0])
    with pytest.raises(ValueError, match="cell"):
        video_blur_samples(maps, 0)
    with pytest.raises(ValueError, match=r"\(T, 1, H, W\)"):
        video_blur_samples(maps[:, 0], 4)


def test_match_video_blur_follows_the_video_distribution_by_rank() -> None:
    # Four patches whose estimates rank 3, 0, 2, 1; half the video is still, half at 12 px.
    estimates = torch.tensor([9.0, 1.0, 7.0, 4.0])
    magnitude = estimates.view(4, 1, 1, 1) * torch.tensor([[0.5, 1.5]]).view(1, 1, 1, 2)
    own = torch.tensor([0.0, 0.0, 5.0, 0.0])
    video = torch.tensor([0.1] * 50 + [12.0] * 50)
    out = match_video_blur(magnitude, own, video, identity_px=0.5)
    means = out.mean(dim=(1, 2, 3))
    # ranks 0 and 1 fall in the still half: identity pairs (length 0)
    assert means[1] == 0.0 and means[3] == 0.0
    assert means[0] == pytest.approx(12.0)
    assert means[2] == pytest.approx(math.sqrt(12.0**2 - 5.0**2))  # its own 5 px removed
    # the spatial shape of each map is kept
    assert out[0, 0, 0].tolist() == pytest.approx([6.0, 18.0])
    # an all-zero estimate gets a constant map
    flat = match_video_blur(torch.zeros(1, 1, 2, 2), torch.zeros(1), torch.tensor([6.0]))
    assert torch.equal(flat, torch.full((1, 1, 2, 2), 6.0))
    # identity_px = 0 keeps small lengths
    small = match_video_blur(
        torch.ones(1, 1, 1, 1), torch.zeros(1), torch.tensor([0.3]), identity_px=0
    )
    assert float(small) == pytest.approx(0.3)


def test_match_video_blur_rejects_bad_input() -> None:
    m = torch.ones(2, 1, 4, 4)
    with pytest.raises(ValueError, match="own_blur"):
        match_video_blur(m, torch.ones(3), torch.ones(5))
    with pytest.raises(ValueError, match="non-empty"):
        match_video_blur(m, torch.ones(2), torch.ones(0))
    with pytest.raises(ValueError, match=">= 0 px"):
        match_video_blur(m, torch.ones(2), -torch.ones(5))
    with pytest.raises(ValueError, match="identity_px"):
        match_video_blur(m, torch.ones(2), torch.ones(5), identity_px=-1.0)
    with pytest.raises(ValueError, match="NaN or inf"):
        match_video_blur(m * math.nan, torch.ones(2), torch.ones(5))
