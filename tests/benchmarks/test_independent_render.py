"""``benchmarks/independent_render.py``: the off-generator clips are what they claim to be."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
import torch

from ttblur import metrics
from ttblur.synth import load_photo

SMALL = {"frames": 9, "size": (64, 96)}


@pytest.fixture(scope="module")
def render(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("independent_render")


def _clip(render: ModuleType, kind: str, seed: int = 3, **kwargs):
    spec = render.ClipSpec(kind, "astronaut", load_photo("astronaut"), seed, **{**SMALL, **kwargs})
    return render.render_clip(spec)


def test_every_kind_renders_frames_in_range_with_its_exposure(render) -> None:
    for kind in render.KINDS:
        clip = _clip(render, kind)
        assert clip.blurry.shape == clip.sharp.shape == (9, 3, 64, 96), kind
        assert 0.0 <= float(clip.blurry.min()) and float(clip.blurry.max()) <= 1.0, kind
        assert len(clip.blur_px) == 9 and min(clip.blur_px) >= 0.0, kind
        assert 0.1 <= clip.exposure <= 1.0, kind
        # 8-bit frames, as a camera writes them.
        assert torch.equal((clip.sharp * 255).round() / 255, clip.sharp), kind


def test_pan_is_blurred_on_every_frame_at_full_exposure(render) -> None:
    clip = _clip(render, "pan_h264", frames=6)
    assert clip.exposure == 1.0 and clip.crf == 23
    # 6-10 px / frame at the centre, more towards the corners (perspective).
    assert all(5.0 < b < 15.0 for b in clip.blur_px), clip.blur_px
    assert float(metrics.psnr(clip.blurry, clip.sharp)) < 30.0


def test_handheld_pauses_are_sharp_and_the_rest_blurred(render) -> None:
    clip = _clip(render, "handheld_pauses", seed=5, frames=12)
    still = [k for k, b in enumerate(clip.blur_px) if b < 1.0]
    moving = [k for k, b in enumerate(clip.blur_px) if b > 4.0]
    # Every third frame is nearly still; the others move 6-16 px / frame at exposure 0.9.
    assert len(still) == 4 and len(moving) >= 6, clip.blur_px
    assert still == list(range(still[0], 12, 3))
    per_frame = metrics.psnr(clip.blurry, clip.sharp, reduction="none")
    # A still frame differs from its truth by the noise only; a moving one by its blur.
    assert float(per_frame[still].min()) > float(per_frame[moving].max()) + 5.0


def test_moving_object_leaves_the_background_sharp(render) -> None:
    clip = _clip(render, "moving_object", seed=4)
    assert max(clip.blur_px) > 2.0  # the object is blurred ...
    diff = (clip.blurry - clip.sharp).abs().amax(dim=1)  # (T, H, W)
    changed = diff > 0.05
    # ... over a small part of each frame: the rest differs by noise and rounding.
    assert float(changed.float().mean()) < 0.25
    assert float(diff[~changed].mean()) < 0.02


def test_renders_are_deterministic_and_seeds_differ(render) -> None:
    a, b = _clip(render, "handheld_jerks"), _clip(render, "handheld_jerks")
    assert torch.equal(a.blurry, b.blurry) and a.blur_px == b.blur_px
    c = _clip(render, "handheld_jerks", seed=4)
    assert not torch.equal(a.blurry, c.blurry)


def test_tone_curves_are_monotone_from_black_to_white(render) -> None:
    x = torch.linspace(0.0, 1.0, 101)
    for name in ("srgb", "gamma24", "gamma22", "filmic"):
        y = render.tone_curve(name)(x)
        assert float(y[0]) == pytest.approx(0.0, abs=1e-3), name
        assert bool((y[1:] >= y[:-1]).all()), name
    assert float(render.tone_curve("srgb")(torch.tensor(1.0))) == pytest.approx(1.0, abs=1e-6)
    # The filmic curve has a shoulder: mid-grey is lifted more than by the sRGB curve.
    mid = torch.tensor(0.18)
    assert float(render.tone_curve("filmic")(mid)) != pytest.approx(
        float(render.tone_curve("srgb")(mid)), abs=0.02
    )
    with pytest.raises(ValueError, match="unknown tone curve"):
        render.tone_curve("log")


def test_unknown_kind_is_refused(render) -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        _clip(render, "fisheye")


def test_blur_map_grows_away_from_the_rotation_centre_and_marks_the_object(render) -> None:
    clip = _clip(render, "rotate_zoom", frames=4)
    assert clip.magnitude.shape == (4, 1, 64, 96)
    blur = clip.magnitude[1, 0]
    centre, corner = float(blur[28:36, 44:52].mean()), float(blur[:6, :6].mean())
    assert corner > 2 * centre, (corner, centre)
    assert clip.blur_px[1] == pytest.approx(float(blur.max()))
    moving = _clip(render, "moving_object", seed=4, frames=4)
    blurred = moving.magnitude[2, 0] > 1.0
    # The object's blur where it passes, the tripod's well under 1 px elsewhere.
    assert 0.02 < float(blurred.float().mean()) < 0.4
    assert float(moving.magnitude[2, 0][~blurred].max()) < 0.5
