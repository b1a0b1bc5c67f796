"""Tests of ttblur.stages.dbcgm: DBCGM formulas on hand-made inputs, caching, ablations."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch import Tensor

from ttblur.config import DBCGMConfig
from ttblur.protocols import ConditionGenerator, PatchLocation, Selection
from ttblur.stages.dbcgm import (
    DomainBlurConditionGenerator,
    FlowOnlyCondition,
    RandomCondition,
    build_condition_generator,
    neighbour_pairs,
)
from ttblur.stages.flow import OpenCVFlow

# ---- a fake flow estimator that knows which pair and which pixels it was given --------------

FlowFn = Callable[[int, Tensor, Tensor], tuple[Tensor, Tensor]]


class Official(DomainBlurConditionGenerator):
    """DBCGM with the official code's settings (BME magnitude, 10 px offset, no motion cap),
    returning the bare condition maps; the class's own defaults are ``DBCGMConfig``'s."""

    def __init__(self, **kwargs: Any) -> None:
        settings = {"magnitude": "bme", "magnitude_offset": 10.0, "motion_cap": False}
        super().__init__(**{**settings, **kwargs})

    def __call__(self, video: Tensor, selection: Selection) -> Tensor:  # type: ignore[override]
        return super().__call__(video, selection).maps


def coded_video(num_frames: int, height: int = 64, width: int = 64) -> Tensor:
    """Frames whose channels encode (frame index, absolute x, absolute y) exactly."""
    video = torch.empty(num_frames, 3, height, width)
    for a in range(num_frames):
        video[a, 0] = a / 20.0
    video[:, 1] = (torch.arange(width, dtype=torch.float32) / (width - 1)).view(1, 1, width)
    video[:, 2] = (torch.arange(height, dtype=torch.float32) / (height - 1)).view(1, height, 1)
    return video


class CodedFlow:
    """Returns ``fn(a, X, Y)`` for the pair ``(a, a+1)`` at absolute pixel coordinates X, Y."""

    def __init__(self, fn: FlowFn, height: int = 64, width: int = 64) -> None:
        self.fn, self.height, self.width = fn, height, width
        self.pairs: list[int] = []
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, src: Tensor, dst: Tensor) -> Tensor:
        self.shapes.append(tuple(src.shape))
        out = torch.empty(src.shape[0], 2, *src.shape[2:])
        for i in range(src.shape[0]):
            a = round(float(src[i, 0, 0, 0]) * 20)
            assert round(float(dst[i, 0, 0, 0]) * 20) == a + 1, "dst must be the next frame"
            x = torch.round(src[i, 1] * (self.width - 1))
            y = torch.round(src[i, 2] * (self.height - 1))
            u, v = self.fn(a, x, y)
            out[i, 0], out[i, 1] = u, v
            self.pairs.append(a)
        return out


def const_table(table: dict[int, tuple[float, float]]) -> FlowFn:
    def fn(a: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        u, v = table[a]
        return torch.full_like(x, u), torch.full_like(x, v)

    return fn


def flat_magnitude(num_frames: int, value: float = 20.0, size: int = 64) -> Tensor:
    return torch.full((num_frames, 1, size, size), value)


# ---- neighbour bookkeeping -------------------------------------------------------------------


# ---- direction: accumulation, normalisation, fallback -----------------------------------------


def test_accumulated_flow_is_the_sum_over_the_four_pairs() -> None:
    table = {a: (float(a), 1.0) for a in range(7)}
    flow = CodedFlow(const_table(table))
    gen = Official(flow=flow, context=4)
    video = coded_video(7)
    cond = gen(video, Selection([PatchLocation(3, 10, 12, 16)], flat_magnitude(7)))
    # pairs (1,2), (2,3), (3,4), (4,5): F = (1+2+3+4, 4) = (10, 4)
    expected = torch.tensor([10.0, 4.0]) / math.hypot(10.0, 4.0)
    assert cond.shape == (1, 3, 16, 16)
    assert torch.allclose(cond[0, :2], expected.view(2, 1, 1).expand(2, 16, 16), atol=1e-6)
    assert sorted(flow.pairs) == [1, 2, 3, 4]


def test_accumulation_is_per_pixel_at_the_same_pixel_and_cropped_back_exactly() -> None:
    # Position-dependent flow: the patch must receive the flow of its own absolute pixels.
    def fn(a: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return 1.0 + x / 10.0, a + y / 100.0

    gen = Official(flow=CodedFlow(fn), context=8, min_flow=0.0)
    patches = [
        PatchLocation(3, 5, 30, 16),
        PatchLocation(3, 40, 2, 16),
        PatchLocation(4, 20, 20, 16),
    ]
    video = coded_video(8)
    total, counts = gen.accumulated_flow(video, patches)
    for i, p in enumerate(patches):
        ys, xs = torch.meshgrid(
            torch.arange(p.top, p.bottom, dtype=torch.float32),
            torch.arange(p.left, p.right, dtype=torch.float32),
            indexing="ij",
        )
        pairs = neighbour_pairs(p.frame, 8, 2)
        u = sum(1.0 + xs / 10.0 for _ in pairs)
        v = sum(a + ys / 100.0 for a in pairs)
        assert torch.allclose(total[i, 0], u, atol=1e-5)
        assert torch.allclose(total[i, 1], v, atol=1e-5)
        assert int(counts[i]) == 4
    cond = gen(video, Selection(patches, flat_magnitude(8)))
    norm = torch.linalg.vector_norm(total, dim=1, keepdim=True)
    assert torch.allclose(cond[:, :2], total / norm, atol=1e-6)
    assert torch.allclose(torch.linalg.vector_norm(cond[:, :2], dim=1), torch.ones(3, 16, 16))


def test_flow_is_computed_on_a_context_window_clamped_to_the_frame() -> None:
    flow = CodedFlow(const_table({a: (1.0, 0.0) for a in range(7)}))
    gen = Official(flow=flow, context=8)
    gen(coded_video(7), Selection([PatchLocation(3, 16, 20, 16)], flat_magnitude(7)))
    assert set(flow.shapes) == {(4, 3, 32, 32)}  # 4 pairs in one batch; 16 + 2 * 8 px

    flow = CodedFlow(const_table({a: (1.0, 0.0) for a in range(7)}))
    gen = Official(flow=flow, context=8)
    gen(coded_video(7), Selection([PatchLocation(3, 0, 44, 20)], flat_magnitude(7)))
    assert set(flow.shapes) == {(4, 3, 28, 28)}  # rows 0..28, cols 36..64: clamped


def test_overlapping_patches_compute_each_pair_once() -> None:
    flow = CodedFlow(const_table({a: (1.0, 2.0) for a in range(12)}))
    gen = Official(flow=flow, context=8)
    patches = [
        PatchLocation(t, top, left, 24)
        for t in (2, 3, 4, 5, 6, 7)
        for top, left in ((0, 0), (4, 8), (10, 10), (20, 30), (40, 40))
    ]
    gen(coded_video(12), Selection(patches, flat_magnitude(12)))
    distinct = sorted({a for p in patches for a in neighbour_pairs(p.frame, 12, 2)})
    assert distinct == list(range(0, 9))
    assert gen.flow_computations == len(distinct)
    assert sorted(flow.pairs) == distinct  # no pair computed twice
    assert gen.last_stats["flow_pairs"] == len(distinct)
    gen(coded_video(12), Selection(patches[:5], flat_magnitude(12)))
    assert gen.flow_computations == len(distinct) + 4  # counter accumulates; cache is per call


def test_output_order_follows_the_selection_not_the_frame_order() -> None:
    table = {a: (1.0, 0.0) if a < 4 else (0.0, 1.0) for a in range(10)}
    gen = Official(flow=CodedFlow(const_table(table)), context=0)
    patches = [PatchLocation(7, 0, 0, 16), PatchLocation(2, 0, 0, 16)]
    cond = gen(coded_video(10), Selection(patches, flat_magnitude(10)))
    assert torch.allclose(cond[0, :2, 0, 0], torch.tensor([0.0, 1.0]))  # pairs 5..8
    assert torch.allclose(cond[1, :2, 0, 0], torch.tensor([1.0, 0.0]))  # pairs 0..3


def test_direction_fallback_uses_patch_mean_then_unit_x() -> None:
    # Left half: 4 x (-0.1, 0) -> |F| = 0.4 < min_flow; right half: 4 x (0, 2).
    def fn(a: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        left = x < 32
        return torch.where(left, -0.1, 0.0), torch.where(left, 0.0, 2.0)

    gen = Official(flow=CodedFlow(fn), context=0, min_flow=0.5)
    cond = gen(coded_video(7), Selection([PatchLocation(3, 0, 16, 32)], flat_magnitude(7)))
    mean = torch.tensor([-0.4 * 0.5, 8.0 * 0.5])
    mean = mean / mean.norm()
    assert torch.allclose(cond[0, :2, :, :16], mean.view(2, 1, 1).expand(2, 32, 16), atol=1e-6)
    assert torch.allclose(
        cond[0, :2, :, 16:], torch.tensor([0.0, 1.0]).view(2, 1, 1).expand(2, 32, 16)
    )
    assert gen.last_stats["fallback_fraction"] == pytest.approx(0.5)

    zero = Official(flow=CodedFlow(const_table({a: (0.0, 0.0) for a in range(7)})), context=0)
    cond = zero(coded_video(7), Selection([PatchLocation(3, 0, 0, 16)], flat_magnitude(7)))
    assert torch.equal(cond[0, 0], torch.ones(16, 16))
    assert torch.equal(cond[0, 1], torch.zeros(16, 16))


# ---- magnitude adaptation ---------------------------------------------------------------------


def _ramp_magnitude(num_frames: int, frame: int) -> Tensor:
    magnitude = torch.empty(num_frames, 1, 64, 64)
    for s in range(num_frames):
        magnitude[s] = 4.0 * s + 2.0  # neighbours: constants 2, 6, 10, ...
    magnitude[frame, 0] = torch.linspace(0.0, 8.0, 64).view(1, 64).expand(64, 64)
    return magnitude


def test_magnitude_adaptation_matches_the_formula_with_frame_maximum() -> None:
    magnitude = _ramp_magnitude(7, 3)
    magnitude[3, 0, 60, 60] = 16.0  # frame maximum outside the patch
    gen = Official(flow=CodedFlow(const_table({a: (1.0, 0.0) for a in range(7)})), context=0)
    patch = PatchLocation(3, 8, 8, 32)
    cond = gen(coded_video(7), Selection([patch], magnitude))
    neighbour_mean = (6.0 + 10.0 + 18.0 + 22.0) / 4  # frames 1, 2, 4, 5
    current = patch.crop(magnitude[3])
    expected = current / 16.0 * neighbour_mean + 10.0
    assert torch.allclose(cond[0, 2], expected[0], atol=1e-6)


def test_magnitude_adaptation_patch_scope_offset_and_clipping() -> None:
    magnitude = _ramp_magnitude(7, 3)
    magnitude[3, 0, 60, 60] = 16.0
    flow = CodedFlow(const_table({a: (1.0, 0.0) for a in range(7)}))
    patch = PatchLocation(3, 8, 8, 32)
    current = patch.crop(magnitude[3])[0]
    gen = Official(flow=flow, context=0, magnitude_offset=0.0, normalize_over="patch")
    cond = gen(coded_video(7), Selection([patch], magnitude))
    expected = current / current.max() * 14.0  # no offset
    assert torch.allclose(cond[0, 2], expected, atol=1e-5)
    # No cap: z is M' in px, however long (the normalised scale capped it at mag_norm).
    small = Official(flow=flow, context=0, magnitude_offset=200.0)
    z = small(coded_video(7), Selection([patch], magnitude))[0, 2]
    m = current / 16.0 * 14.0 + 200.0  # 200.9 .. 204.3 px across the patch
    assert torch.allclose(z, m, atol=1e-4)


def test_motion_cap_bounds_the_adapted_magnitude_by_the_per_frame_motion() -> None:
    # Neighbour maps of 20 px and a 10 px offset ask for ~30 px; the camera moves 3 px per
    # frame on the left half of the patch and 40 px on the right half.
    def fn(a: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return torch.where(x < 24, 3.0, 40.0), torch.zeros_like(x)

    patch = PatchLocation(3, 8, 8, 32)
    selection = Selection([patch], flat_magnitude(7, 20.0))
    capped = Official(flow=CodedFlow(fn), context=0, motion_cap=True)
    plain = Official(flow=CodedFlow(fn), context=0)
    z_capped = capped(coded_video(7), selection)[0, 2]
    z_plain = plain(coded_video(7), selection)[0, 2]
    assert torch.allclose(z_plain, torch.full_like(z_plain, 30.0), atol=1e-4)
    assert torch.allclose(z_capped[:, :16], torch.full((32, 16), 3.0), atol=1e-4)  # x < 24
    assert torch.allclose(z_capped[:, 16:], torch.full((32, 16), 30.0), atol=1e-4)
    assert capped.last_stats["mean_magnitude_px"] == pytest.approx(16.5, abs=1e-3)
    assert "motion_cap=True" in repr(capped)
    built = DomainBlurConditionGenerator.from_config(DBCGMConfig(), flow=CodedFlow(fn))
    assert built.motion_cap is True and built.magnitude_offset == 3.0


def test_video_lengths_give_a_still_video_identity_pairs_and_a_blurred_one_its_blur() -> None:
    patches = [PatchLocation(2, 0, 0, 32), PatchLocation(3, 32, 32, 32)]
    video = coded_video(6)
    flow = CodedFlow(const_table(dict.fromkeys(range(5), (6.0, 0.0))))
    gen = DomainBlurConditionGenerator(flow=flow, context=0, lengths="video", motion_cap=False)
    still = gen(video, Selection(patches, flat_magnitude(6, 0.2))).maps
    assert torch.equal(still[:, 2], torch.zeros(2, 32, 32))
    assert torch.allclose(still[:, 0], torch.ones(2, 32, 32))  # the direction is kept
    maps = flat_magnitude(6, 1.0)
    maps[:, :, :, 32:] = 9.0  # the right half of every frame is blurred 9 px
    blurred = gen(video, Selection(patches, maps)).maps
    # patch 0 (estimate 1 + 3 px, own 1 px) ranks first: quantile 0.25 of the blocks (1 px)
    # minus its own blur -> identity; patch 1 (own 9 px) ranks second: 9 px - 9 px -> 0 too
    assert torch.equal(blurred[:, 2], torch.zeros(2, 32, 32))
    maps = torch.zeros(6, 1, 64, 64)
    maps[:, :, :, 32:] = 9.0  # both patches sharp (own 0 px), half of every frame at 9 px
    sharp_patches = [PatchLocation(2, 0, 0, 32), PatchLocation(3, 32, 0, 32)]
    lengths = gen(video, Selection(sharp_patches, maps)).maps[:, 2].mean(dim=(1, 2))
    assert lengths[0] == pytest.approx(0.0)  # rank 0 -> still quantile
    assert lengths[1] == pytest.approx(9.0, abs=1e-4)  # rank 1 -> the blurred quantile
    assert "lengths='video'" in repr(gen)
    built = DomainBlurConditionGenerator.from_config(
        DBCGMConfig(lengths="video", identity_px=1.0), flow=flow
    )
    assert built.lengths == "video" and built.identity_px == 1.0
    with pytest.raises(ValueError, match="lengths"):
        DomainBlurConditionGenerator(lengths="frame")  # type: ignore[arg-type]


def test_exposure_magnitude_is_the_fitted_ratio_times_the_video_motion(panning_video) -> None:
    # A pan slowing to a stop at frame 3 and speeding up again (8.4 px per frame over its
    # higher-motion half, tests/stages/test_exposure.py) with an exposure of 0.5 frame interval:
    # 4.2 px of blur everywhere, whatever the BME maps say (30 px here).
    video = panning_video(0.5, motions=(8, 6, 4, 0, 6, 8, 10, 12))
    maps = torch.full((8, 1, 96, 128), 30.0)
    maps[3] = 3.0  # the patch's frame is the sharp one (else the fit is refused: no reference)
    selection = Selection([PatchLocation(3, 16, 0, 64)], maps)
    gen = DomainBlurConditionGenerator(
        magnitude="exposure", magnitude_offset=10.0, motion_cap=False
    )
    out = gen(video, selection)
    z = out.maps[0, 2]
    assert out.exposure is not None and out.exposure.ratio == pytest.approx(0.5, abs=0.1)
    assert out.exposure.motion_px == pytest.approx(8.4, abs=0.3)
    assert torch.allclose(z, torch.full_like(z, out.exposure.blur_px or 0.0), atol=1e-4)
    assert "magnitude='exposure'" in repr(gen)
    bme = DomainBlurConditionGenerator(magnitude="bme", magnitude_offset=10.0, motion_cap=False)
    from_bme = bme(video, selection)
    assert float(from_bme.maps[0, 2].mean()) > 20.0 and from_bme.exposure is None
    # A still video gives no ratio: the BME magnitude adaptation is used instead.
    still = panning_video(0.5, speed=0)
    out = gen(still, selection)
    assert torch.allclose(out.maps, bme(still, selection).maps)
    assert out.exposure is not None and out.exposure.ratio is None
    built = build_condition_generator(DBCGMConfig(magnitude="exposure"), seed=4)
    assert isinstance(built, DomainBlurConditionGenerator)
    assert (built.magnitude, built.seed) == ("exposure", 4)
    with pytest.raises(ValueError, match="magnitude must be"):
        Official(magnitude="flow")  # type: ignore[arg-type]


def test_magnitude_uses_existing_neighbours_at_the_ends_and_single_frames() -> None:
    magnitude = _ramp_magnitude(5, 0)
    flow = CodedFlow(const_table({a: (0.0, 1.0) for a in range(5)}))
    gen = Official(flow=flow, context=0)
    patch = PatchLocation(0, 0, 0, 16)
    cond = gen(coded_video(5), Selection([patch], magnitude))
    current = patch.crop(magnitude[0])[0]
    expected = current / 8.0 * ((6.0 + 10.0) / 2) + 10.0  # neighbours 1 and 2 only
    assert torch.allclose(cond[0, 2], expected, atol=1e-5)
    assert sorted(flow.pairs) == [0, 1]

    single = torch.full((1, 1, 64, 64), 7.0)
    flow = CodedFlow(const_table({}))
    gen = Official(flow=flow, context=0)
    cond = gen(coded_video(1), Selection([patch], single))
    assert torch.allclose(cond[0, 2], torch.full((16, 16), 17.0))  # M_t + offset
    assert torch.equal(cond[0, 0], torch.ones(16, 16)) and flow.pairs == []
    # The shipped settings cap by the motion per frame, of which a lone frame has none:
    # 0 / 0 made the whole condition NaN.
    capped = DomainBlurConditionGenerator(flow=CodedFlow(const_table({})), context=0)
    assert capped.motion_cap
    cond = capped(coded_video(1), Selection([patch], single)).maps
    assert torch.allclose(cond[0, 2], torch.full((16, 16), 7.0 + capped.magnitude_offset))


def test_magnitude_maps_in_a_store_are_read_once_per_frame(monkeypatch) -> None:
    from ttblur.io.frame_store import FrameStore

    torch.manual_seed(0)
    maps = torch.rand(6, 1, 32, 32) * 8.0
    store = FrameStore.from_chunks([maps])
    # several patches per frame, not in frame order
    patches = [PatchLocation(t, y, x, 16) for t in (4, 0, 2, 0, 5, 2, 4) for y, x in [(0, 16)]]
    patches += [PatchLocation(2, 16, 0, 16), PatchLocation(0, 8, 8, 16)]
    gen = Official(flow=CodedFlow(const_table({})), context=0)
    expected = gen.adapted_magnitude(Selection(patches, maps), torch.device("cpu"))
    reads: list[int] = []
    real = FrameStore.__getitem__

    def counting(self: FrameStore, index: Any) -> Tensor:
        reads.append(index)
        return real(self, index)

    monkeypatch.setattr(FrameStore, "__getitem__", counting)
    got = gen.adapted_magnitude(Selection(patches, store), torch.device("cpu"))
    assert torch.allclose(got, expected, atol=1e-6)
    assert sorted(reads) == list(range(6))  # frames 0-5: every patch frame and its neighbours
    reads.clear()
    lengths = gen.video_lengths(expected, Selection(patches, store))
    assert torch.allclose(lengths, gen.video_lengths(expected, Selection(patches, maps)))
    assert [r for r in reads if isinstance(r, int)] == [0, 2, 4, 5]
    store.close()


# ---- input validation -------------------------------------------------------------------------


def test_generator_input_validation() -> None:
    gen = Official(flow=CodedFlow(const_table({})), context=0)
    video = coded_video(5)
    ok = PatchLocation(2, 0, 0, 16)
    with pytest.raises(ValueError, match=r"\(T, 1, H, W\)"):
        gen(video, Selection([ok], torch.zeros(5, 1, 32, 32)))
    with pytest.raises(ValueError, match=">= 0 px"):
        gen(video, Selection([ok], -torch.ones(5, 1, 64, 64)))
    with pytest.raises(ValueError, match="does not fit"):
        gen(video, Selection([PatchLocation(2, 50, 0, 16)], flat_magnitude(5)))
    with pytest.raises(ValueError, match="does not fit"):
        gen(video, Selection([PatchLocation(5, 0, 0, 16)], flat_magnitude(5)))
    with pytest.raises(ValueError, match="same size"):
        gen(video, Selection([ok, PatchLocation(2, 0, 0, 8)], flat_magnitude(5)))
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\)"):
        gen(video[:, :2], Selection([ok], flat_magnitude(5)))
    with pytest.raises(ValueError, match="NaN"):
        gen(video * float("nan"), Selection([ok], flat_magnitude(5)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gen(video + 2, Selection([ok], flat_magnitude(5)))
    with pytest.warns(DeprecationWarning, match="mag_norm"):
        Official(mag_norm=147.0)
    with pytest.raises(ValueError, match="normalize_over"):
        Official(normalize_over="video")  # type: ignore[arg-type]

    def bad_flow(src: Tensor, dst: Tensor) -> Tensor:
        return torch.zeros(src.shape[0], 2, 4, 4)

    with pytest.raises(ValueError, match="returned"):
        Official(flow=bad_flow)(video, Selection([ok], flat_magnitude(5)))


def test_empty_selection_gives_empty_output() -> None:
    gen = Official(flow=CodedFlow(const_table({})))
    out = gen(coded_video(5), Selection([], flat_magnitude(5)))
    assert out.shape == (0, 3, 0, 0)
    assert FlowOnlyCondition(flow=CodedFlow(const_table({})))(
        coded_video(5), Selection([], flat_magnitude(5))
    ).shape == (0, 3, 0, 0)


# ---- with a real flow estimator on hand-made translations -------------------------------------


def _translating_video(angle_deg: float, speed: float, frames: int = 7, size: int = 96) -> Tensor:
    rng = np.random.default_rng(1)
    big = cv2.GaussianBlur(rng.random((size + 80, size + 80)).astype(np.float32), (0, 0), 1.5)
    big = (big - big.min()) / (big.max() - big.min())
    dx, dy = speed * math.cos(math.radians(angle_deg)), speed * math.sin(math.radians(angle_deg))
    out = []
    for a in range(frames):
        # content moves by (+dx, +dy) per frame
        m = np.float32([[1, 0, a * dx - 40], [0, 1, a * dy - 40]])
        out.append(cv2.warpAffine(big, m, (size, size), flags=cv2.INTER_CUBIC))
    return torch.from_numpy(np.clip(np.stack(out), 0, 1)).unsqueeze(1).expand(-1, 3, -1, -1)


@pytest.mark.parametrize("angle", [0.0, 135.0, 250.0])
def test_opencv_flow_direction_of_a_translating_video(angle: float) -> None:
    video = _translating_video(angle, 2.0).contiguous()
    gen = Official(flow=OpenCVFlow("medium"), context=16)
    cond = gen(video, Selection([PatchLocation(3, 24, 24, 48)], flat_magnitude(7, size=96)))
    x, y = cond[0, 0].mean(), cond[0, 1].mean()
    got = math.degrees(math.atan2(float(y), float(x)))
    assert abs((got - angle + 180) % 360 - 180) < 3.0
    only = FlowOnlyCondition(flow=OpenCVFlow("medium"), context=16)
    z = only(video, Selection([PatchLocation(3, 24, 24, 48)], flat_magnitude(7, size=96)))[0, 2]
    assert float(z.mean()) == pytest.approx(2.0, abs=0.2)  # per-frame motion in px


# ---- ablations and factory --------------------------------------------------------------------


def test_flow_only_magnitude_is_per_frame_motion() -> None:
    table = {a: (float(a), 1.0) for a in range(7)}
    gen = FlowOnlyCondition(flow=CodedFlow(const_table(table)), context=0)
    patches = [PatchLocation(3, 0, 0, 16), PatchLocation(1, 0, 0, 16)]
    cond = gen(coded_video(7), Selection(patches, flat_magnitude(7)))
    assert torch.allclose(cond[0, 2], torch.full((16, 16), math.hypot(10, 4) / 4))
    assert torch.allclose(cond[1, 2], torch.full((16, 16), math.hypot(3, 3) / 3))
    assert torch.allclose(cond[1, :2, 0, 0], torch.tensor([1.0, 1.0]) / math.sqrt(2))


def test_random_condition_is_seeded_constant_and_in_range() -> None:
    video = torch.rand(4, 3, 8, 8)
    patches = [PatchLocation(t % 4, 0, 0, 1) for t in range(4000)]
    sel = Selection(patches, torch.zeros(4, 1, 8, 8))
    a = RandomCondition((20.0, 60.0), seed=5)(video, sel)
    b = RandomCondition((20.0, 60.0), seed=5)(video, sel)
    c = RandomCondition((20.0, 60.0), seed=6)(video, sel)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(torch.linalg.vector_norm(a[:, :2], dim=1), torch.ones(4000, 1, 1))
    z = a[:, 2].flatten()
    assert float(z.min()) >= 20.0 and float(z.max()) <= 60.0
    assert float(z.mean()) == pytest.approx(40.0, abs=1.0)
    # Uniform angle: the mean resultant length of 4000 uniform angles is ~1/sqrt(4000) = 0.016.
    assert float(a[:, :2, 0, 0].mean(dim=0).norm()) < 0.05
    quadrants = torch.histc(
        torch.atan2(a[:, 1, 0, 0], a[:, 0, 0, 0]), bins=4, min=-math.pi, max=math.pi
    )
    assert float(quadrants.min()) > 900

    gen = RandomCondition(seed=0)
    big = gen(
        torch.rand(6, 3, 32, 32),
        Selection([PatchLocation(1, 0, 0, 16)] * 2, torch.zeros(6, 1, 32, 32)),
    )
    assert big.shape == (2, 3, 16, 16)
    assert torch.equal(big, big[:, :, :1, :1].expand_as(big))  # constant over the patch
    with pytest.raises(ValueError, match="magnitude_range"):
        RandomCondition((50.0, 20.0))
    # px, no longer capped at 1: the default is the old (0, 1) of the 147 px scale
    assert RandomCondition().magnitude_range == (0.0, 147.0)
    assert RandomCondition((200.0, 300.0)).magnitude_range == (200.0, 300.0)


def test_build_condition_generator_by_name() -> None:
    flow = OpenCVFlow("ultrafast")
    section = DBCGMConfig(neighbours=3, context=5, magnitude_offset=2.0, min_flow=0.1)
    dbcgm = build_condition_generator(section, flow=flow)
    assert isinstance(dbcgm, DomainBlurConditionGenerator) and isinstance(dbcgm, ConditionGenerator)
    assert (dbcgm.neighbours, dbcgm.context) == (3, 5)
    assert (dbcgm.magnitude_offset, dbcgm.min_flow, dbcgm.flow) == (2.0, 0.1, flow)
    only = build_condition_generator(section.model_copy(update={"name": "flow_only"}))
    assert isinstance(only, FlowOnlyCondition) and isinstance(only.flow, OpenCVFlow)
    assert only.flow.preset == "medium"
    rand = build_condition_generator(
        DBCGMConfig(name="random", random_magnitude=(10.0, 30.0)), seed=9
    )
    assert isinstance(rand, RandomCondition)
    assert rand.magnitude_range == (10.0, 30.0) and rand.seed == 9
    with pytest.warns(DeprecationWarning, match="mag_norm"):
        legacy = build_condition_generator(section, 205.0, flow=flow)
    assert isinstance(legacy, DomainBlurConditionGenerator) and legacy.neighbours == 3
    gen = DomainBlurConditionGenerator.from_config(DBCGMConfig(flow_preset="fast"))
    assert isinstance(gen.flow, OpenCVFlow) and gen.flow.preset == "fast"
    with pytest.raises(ValueError, match="RAFTFlow needs weights"):
        build_condition_generator(DBCGMConfig(flow="raft"))


# ---- blurry translating videos made in the test (exposure averaging of sub-frames) ------------


def _blurred_translation(
    angle_deg: float, speed: float, exposure: float, frames: int = 7, size: int = 112
) -> tuple[Tensor, float]:
    """Blurry frames of a texture moving ``speed`` px per frame; the shutter is open for the
    fraction ``exposure`` of the frame interval. Returns the video and the blur length in px."""
    rng = np.random.default_rng(3)
    noise = rng.random((size + 120, size + 120)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.2)
    big = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    ux, uy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    out = []
    for t in range(frames):
        subs = []
        for s in np.linspace(-exposure / 2, exposure / 2, 17):
            shift = (t - frames // 2 + s) * speed
            m = np.array([[1, 0, shift * ux - 60], [0, 1, shift * uy - 60]], np.float32)
            subs.append(cv2.warpAffine(big, m, (size, size), flags=cv2.INTER_LINEAR))
        out.append(np.mean(subs, axis=0))
    video = torch.from_numpy(np.clip(np.stack(out), 0, 1)).unsqueeze(1).expand(-1, 3, -1, -1)
    return video.contiguous(), speed * exposure


def _circular_mean_deg(cond: Tensor) -> float:
    return math.degrees(math.atan2(float(cond[:, 1].mean()), float(cond[:, 0].mean())))


@pytest.mark.parametrize("angle", [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0])
def test_direction_of_blurry_translations_in_eight_directions(angle: float) -> None:
    video, _ = _blurred_translation(angle, 3.0, 0.5)
    gen = Official(flow=OpenCVFlow("medium"), context=8)
    patch = PatchLocation(3, 8, 8, 96)
    cond = gen(video, Selection([patch], flat_magnitude(7, size=112)))
    error = (_circular_mean_deg(cond) - angle + 180) % 360 - 180
    assert abs(error) < 10.0


def test_condition_magnitude_grows_with_exposure() -> None:
    zs, flow_only = [], []
    for exposure in (0.125, 0.25, 0.375):  # like BSD 1/8, 2/16, 3/24 ms at a fixed frame rate
        video, blur_px = _blurred_translation(30.0, 8.0, exposure)
        truth = torch.full((7, 1, 112, 112), blur_px)  # ground-truth magnitude maps
        gen = Official(flow=OpenCVFlow("fast"), context=8)
        sel = Selection([PatchLocation(3, 8, 8, 96)], truth)
        z = gen(video, sel)[0, 2]
        # constant maps: M' = M / M * M + 10 = blur length + offset
        assert torch.allclose(z, torch.full_like(z, blur_px + 10.0), atol=1e-4)
        zs.append(float(z.mean()))
        only = FlowOnlyCondition(flow=OpenCVFlow("fast"), context=8)
        flow_only.append(float(only(video, sel)[0, 2].mean()))
    assert zs[0] < zs[1] < zs[2]
    # The flow-only ablation sees the inter-frame motion (8 px) whatever the exposure.
    assert all(abs(m - 8.0) < 0.8 for m in flow_only)


# ---- acceptance on ttblur.synth videos: pure translations with known direction and speed ------

_TRANSLATION = {
    "rotation_std": 0.0,
    "zoom_std": 0.0,
    "direction_spread_deg": 0.0,
    "speed_variation": 0.0,
}


def _synthetic(preset: str, angle: float):
    pytest.importorskip("skimage")  # bundled photos come from scikit-image (ttblur[data])
    from ttblur.synth import make_video

    return make_video(
        "astronaut", preset=preset, num_frames=5, size=(160, 160), seed=0,
        direction_deg=angle, **_TRANSLATION,
    )  # fmt: skip


@pytest.mark.parametrize("angle", [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0])
def test_synthetic_translation_direction_within_10_degrees(angle: float) -> None:
    video = _synthetic("bsd-2ms16ms", angle)
    gen = Official(flow=OpenCVFlow("medium"), context=32)
    patch = PatchLocation(2, 32, 32, 96)
    cond = gen(video.blurry, Selection([patch], video.magnitude))
    error = (_circular_mean_deg(cond) - angle + 180) % 360 - 180
    assert abs(error) < 10.0
    # and it agrees with the ground-truth condition's direction
    truth = patch.crop(video.condition(147.0)[2:3])
    assert abs((_circular_mean_deg(cond) - _circular_mean_deg(truth) + 180) % 360 - 180) < 10.0


def test_synthetic_magnitude_grows_with_bsd_exposure() -> None:
    patch = PatchLocation(2, 32, 32, 96)
    zs, truth_px, flow_only_px = [], [], []
    for preset in ("bsd-1ms8ms", "bsd-2ms16ms", "bsd-3ms24ms"):
        video = _synthetic(preset, 60.0)
        sel = Selection([patch], video.magnitude)  # ground-truth magnitude maps, px
        gen = Official(flow=OpenCVFlow("fast"), context=32)
        z = gen(video.blurry, sel)[0, 2]
        zs.append(float(z.mean()))
        truth_px.append(float(patch.crop(video.magnitude[2]).mean()))
        only = FlowOnlyCondition(flow=OpenCVFlow("fast"), context=32)
        flow_only_px.append(float(only(video.blurry, sel)[0, 2].mean()))
    assert zs[0] < zs[1] < zs[2]
    # Uniform translation: M' = M / max M * mean(M_neighbours) + 10 is the true length + 10 px.
    for z, px in zip(zs, truth_px):
        assert z == pytest.approx(px + 10.0, rel=0.03)
    # The flow-only ablation measures inter-frame motion (330 px/s at 15 fps = 22 px) for all
    # three exposures: it cannot tell the domains apart.
    assert all(m == pytest.approx(22.0, rel=0.1) for m in flow_only_px)
