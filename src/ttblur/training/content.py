"""Image content for the training videos: variants of the training photos and dead-leaves
images built from them.

The bundled training photos are 15 pictures, most of them grey textures and scientific images,
while the held-out photos are natural colour scenes. Rendering every training video from a
whole photo teaches a network those 15 pictures (a reference network gained +2.2 dB on unseen
videos of its training photos and +1.2 dB on the held-out ones). Two generators widen the
content without new files:

* :func:`photo_variant`: a random crop (so a random scale once the crop is rescaled to the
  frame), channel order, grey or not, and tone curve of a photo;
* :func:`dead_leaves`: the dead-leaves model of natural images: opaque discs and ellipses
  with a power-law size distribution (density ``r^-3``) dropped on top of each other, each
  filled with a flat colour or a texture cut from a photo, rendered at twice the size and
  averaged down so that their edges are anti-aliased. Its occlusion edges at every scale are
  what a deblurring network has to restore.

:func:`training_image` draws one of them for a training video.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["dead_leaves", "leaf_radii", "photo_variant", "training_image"]


def photo_variant(photo: Tensor, rng: np.random.Generator) -> Tensor:
    """Random crop / channel order / grey / tone curve of a ``(3, H, W)`` photo in [0, 1].

    Shape:
        - photo: ``(3, H, W)``.
        - output: ``(3, h, w)`` with ``h, w`` between 40% and 100% of ``H, W`` (at least 8).
    """
    _, height, width = photo.shape
    crop_h = max(8, round(height * rng.uniform(0.4, 1.0)))
    crop_w = max(8, round(width * rng.uniform(0.4, 1.0)))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    out = photo[:, top : top + crop_h, left : left + crop_w]
    out = out[torch.from_numpy(rng.permutation(3))]
    if rng.uniform() < 0.25:
        out = out.mean(dim=0, keepdim=True).expand(3, -1, -1)
    return out.clamp(0, 1).pow(float(rng.uniform(0.7, 1.4))).contiguous()


def leaf_radii(rng: np.random.Generator, count: int, r_min: float, r_max: float) -> np.ndarray:
    """``count`` leaf radii with density proportional to ``r^-3`` on ``[r_min, r_max]``
    (inverse-CDF sampling): the size law of :func:`dead_leaves`, whose images then look alike
    at every scale.

    Shape:
        - output: ``(count,)`` float64.
    """
    u = rng.uniform(size=count)
    ratio = (r_min / r_max) ** 2
    return r_min / np.sqrt(1.0 - u * (1.0 - ratio))


def dead_leaves(
    size: tuple[int, int],
    rng: np.random.Generator,
    textures: Sequence[Tensor] = (),
    *,
    leaves: int = 1500,
    texture_share: float = 0.5,
    r_min: float = 3.0,
    r_max_share: float = 0.35,
) -> Tensor:
    """A dead-leaves image: ``leaves`` opaque discs / ellipses, later ones on top.

    Args:
        size: ``(H, W)`` of the image, px.
        rng: the generator every draw comes from (same state, same image).
        textures: ``(3, h, w)`` images in [0, 1] to cut leaf textures from and to pick the flat
            leaves' colours in (a random pixel); none: flat uniformly random colours only.
        leaves: how many leaves are dropped (enough to cover the image: the first one is the
            background).
        texture_share: fraction of leaves filled with a texture (the rest: a flat colour).
        r_min: smallest leaf radius, px.
        r_max_share: largest leaf radius as a share of the shorter side.

    Returns:
        ``(3, H, W)`` float32 in [0, 1].

    Shape:
        - textures: each ``(3, h, w)``.
        - output: ``(3, H, W)``.
    """
    height, width = int(size[0]), int(size[1])
    if min(height, width) < 8:
        raise ValueError(f"size must be at least 8 x 8, got {size}")
    if leaves < 1:
        raise ValueError(f"leaves must be >= 1, got {leaves}")
    if not 0.0 <= texture_share <= 1.0:
        raise ValueError(f"texture_share must be in [0, 1], got {texture_share}")
    big_h, big_w = 2 * height, 2 * width  # rendered at twice the size, then averaged down
    r_max = max(2.0 * r_min, 2.0 * r_max_share * min(height, width))
    radii = leaf_radii(rng, leaves, 2.0 * r_min, r_max)
    canvas = np.empty((3, big_h, big_w), dtype=np.float32)
    sources = [t.detach().cpu().float().numpy() for t in textures]
    for index, radius in enumerate(radii):
        if index == 0:  # the background: everything
            y0, y1, x0, x1 = 0, big_h, 0, big_w
            mask = np.ones((big_h, big_w), dtype=bool)
        else:
            cy, cx = rng.uniform(-radius, big_h + radius), rng.uniform(-radius, big_w + radius)
            aspect = math.exp(rng.uniform(-0.7, 0.7))
            angle = rng.uniform(0.0, math.pi)
            ry, rx = radius * math.sqrt(aspect), radius / math.sqrt(aspect)
            reach = max(ry, rx)
            y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, big_h)
            x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, big_w)
            if y0 >= y1 or x0 >= x1:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            dy, dx = yy + 0.5 - cy, xx + 0.5 - cx
            cos_a, sin_a = math.cos(angle), math.sin(angle)
            u, v = cos_a * dx + sin_a * dy, -sin_a * dx + cos_a * dy
            mask = (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
        box_h, box_w = y1 - y0, x1 - x0
        if sources and rng.uniform() < texture_share:
            source = sources[int(rng.integers(len(sources)))]
            _, src_h, src_w = source.shape
            step = 1 if min(src_h, src_w) < 2 * max(box_h, box_w) else int(rng.integers(1, 3))
            need_h, need_w = box_h * step, box_w * step
            reps = (1, -(-need_h // src_h), -(-need_w // src_w))
            tiled = np.tile(source, reps) if max(reps) > 1 else source
            top = int(rng.integers(0, tiled.shape[1] - need_h + 1))
            left = int(rng.integers(0, tiled.shape[2] - need_w + 1))
            patch = tiled[:, top : top + need_h : step, left : left + need_w : step]
            patch = patch[rng.permutation(3)]
            fill = patch * rng.uniform(0.6, 1.4, size=(3, 1, 1)).astype(np.float32)
        else:
            if sources:
                source = sources[int(rng.integers(len(sources)))]
                pixel = source[
                    :, int(rng.integers(source.shape[1])), int(rng.integers(source.shape[2]))
                ]
                colour = pixel.reshape(3, 1, 1) + rng.normal(0.0, 0.05, size=(3, 1, 1))
            else:
                colour = rng.uniform(0.0, 1.0, size=(3, 1, 1))
            fill = np.broadcast_to(colour.astype(np.float32), (3, box_h, box_w))
        region = canvas[:, y0:y1, x0:x1]
        np.copyto(region, np.clip(fill, 0.0, 1.0), where=mask[None])
    image = torch.from_numpy(canvas)[None]
    return F.avg_pool2d(image, 2)[0].clamp(0.0, 1.0).contiguous()


def training_image(
    photos: Sequence[Tensor], rng: np.random.Generator, *, leaves_share: float = 0.5
) -> Tensor:
    """The content of one training video: with probability ``leaves_share`` a
    :func:`dead_leaves` image (size drawn between 192 and 384 px a side) textured by variants
    of ``photos``, else a :func:`photo_variant` of one of them.

    Args:
        photos: ``(3, H, W)`` training photos in [0, 1].
        rng: the generator every draw comes from.
        leaves_share: probability of a dead-leaves image.

    Returns:
        ``(3, h, w)`` float32 in [0, 1].
    """
    if not photos:
        raise ValueError("training_image needs at least one photo")
    if rng.uniform() < leaves_share:
        size = (int(rng.integers(192, 385)), int(rng.integers(192, 385)))
        textures = [photo_variant(photos[int(rng.integers(len(photos)))], rng) for _ in range(4)]
        return dead_leaves(size, rng, textures)
    return photo_variant(photos[int(rng.integers(len(photos)))], rng)
