"""Tests of ttblur.training.content: photo variants, dead-leaves images, training content."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttblur.training.content import dead_leaves, leaf_radii, photo_variant, training_image


def test_photo_variants_are_seeded_crops_in_range():
    photo = torch.rand(3, 50, 80)
    a = photo_variant(photo, np.random.default_rng([3, 7]))
    b = photo_variant(photo, np.random.default_rng([3, 7]))
    c = photo_variant(photo, np.random.default_rng([4, 7]))
    assert torch.equal(a, b)
    assert a.shape != c.shape or not torch.equal(a, c)
    for variant in (a, c):
        assert variant.shape[0] == 3
        assert 20 <= variant.shape[1] <= 50 and 32 <= variant.shape[2] <= 80
        assert float(variant.min()) >= 0.0 and float(variant.max()) <= 1.0


def test_dead_leaves_is_seeded_covers_the_image_and_uses_its_textures():
    red = torch.zeros(3, 40, 40)
    red[0] = 0.8
    a = dead_leaves((48, 64), np.random.default_rng(5), [red], leaves=300)
    b = dead_leaves((48, 64), np.random.default_rng(5), [red], leaves=300)
    assert a.shape == (3, 48, 64) and torch.equal(a, b)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    # every leaf, textured or flat, takes its colours from the (channel-permuted) red texture
    # or a pixel of it (+ small jitter): one channel near 0.8 x a gain, the others near 0
    top = a.amax(dim=0)
    rest = a.sum(dim=0) - top
    assert float(rest.mean()) < 0.15 and float(top.mean()) > 0.4
    # occlusion edges: neighbouring pixels differ a lot somewhere, and most pixels sit inside
    # flat leaves
    step = (a[:, :, 1:] - a[:, :, :-1]).abs().amax(dim=0)
    assert float(step.max()) > 0.3 and float((step < 0.02).float().mean()) > 0.5
    plain = dead_leaves((32, 32), np.random.default_rng(1), leaves=50)
    assert plain.shape == (3, 32, 32)
    with pytest.raises(ValueError, match="at least 8"):
        dead_leaves((4, 32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="leaves"):
        dead_leaves((32, 32), np.random.default_rng(0), leaves=0)


def test_leaf_sizes_follow_a_power_law():
    radii = leaf_radii(np.random.default_rng(0), 200_000, 2.0, 100.0)
    assert radii.min() >= 2.0 and radii.max() <= 100.0
    # density r^-3: P(r > x) = ((r_min / x)^2 - (r_min / r_max)^2) / (1 - (r_min / r_max)^2)
    for x in (4.0, 10.0, 30.0):
        expected = ((2.0 / x) ** 2 - 0.02**2) / (1 - 0.02**2)
        assert float((radii > x).mean()) == pytest.approx(expected, rel=0.03)


def test_training_image_draws_leaves_or_a_variant_reproducibly():
    photos = [torch.rand(3, 60, 70), torch.rand(3, 50, 90)]
    shapes = set()
    for seed in range(12):
        first = training_image(photos, np.random.default_rng([seed, 2]))
        again = training_image(photos, np.random.default_rng([seed, 2]))
        assert torch.equal(first, again) and first.shape[0] == 3
        shapes.add("leaves" if min(first.shape[1:]) >= 192 else "photo")
    assert shapes == {"leaves", "photo"}
    only_photos = training_image(photos, np.random.default_rng(0), leaves_share=0.0)
    assert only_photos.shape[1] <= 60
    with pytest.raises(ValueError, match="at least one photo"):
        training_image([], np.random.default_rng(0))
