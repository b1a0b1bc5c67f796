"""Tests of ttblur.viz: condition / flow colour coding, magnitude heat maps, PNG writing."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from ttblur.viz import (
    INFERNO_ANCHORS,
    PALETTE,
    add_caption,
    colorbar,
    condition_to_rgb,
    direction_wheel,
    draw_boxes,
    fit_width,
    flow_to_rgb,
    grid,
    hstack,
    hsv_to_rgb,
    line_chart,
    magnitude_to_heatmap,
    save_png,
    to_rgb8,
)


def _condition(angle_deg: float, z: float, size: int = 4) -> torch.Tensor:
    cond = torch.empty(3, size, size)
    cond[0] = math.cos(math.radians(angle_deg))
    cond[1] = math.sin(math.radians(angle_deg))
    cond[2] = z
    return cond


def test_condition_to_rgb_shapes_and_dtype() -> None:
    single = condition_to_rgb(_condition(0, 1.0, 5))
    assert single.shape == (5, 5, 3) and single.dtype == np.uint8
    batch = condition_to_rgb(torch.stack([_condition(0, 1.0), _condition(90, 0.5)]))
    assert batch.shape == (2, 4, 4, 3) and batch.dtype == np.uint8
    assert condition_to_rgb(_condition(0, 1.0).numpy()).shape == (4, 4, 3)


def test_hue_follows_direction_and_value_follows_magnitude() -> None:
    colours = {
        angle: tuple(condition_to_rgb(_condition(angle, 1.0))[0, 0].tolist())
        for angle in (0, 90, 180, 270)
    }
    assert colours[0] == (255, 0, 0)  # +x red
    assert colours[180] == (0, 255, 255)  # -x cyan
    assert colours[90] == (128, 255, 0)  # +y (down): hue 90
    assert colours[270] == (128, 0, 255)  # -y: hue 270
    assert len(set(colours.values())) == 4
    assert condition_to_rgb(_condition(37, 0.0))[0, 0].tolist() == [0, 0, 0]  # z = 0: black
    half = condition_to_rgb(_condition(0, 0.5))[0, 0].tolist()
    assert half == [128, 0, 0]


def test_condition_to_rgb_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, h, w\)"):
        condition_to_rgb(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"z must be in \[0, 1\]"):
        condition_to_rgb(_condition(0, 1.5))
    with pytest.raises(ValueError, match="NaN"):
        condition_to_rgb(_condition(0, float("nan")))


def test_flow_to_rgb_matches_condition_coding() -> None:
    flow = torch.zeros(2, 3, 3)
    flow[0, 0, 0] = -4.0  # one pixel moving left by 4 px, the rest still
    rgb = flow_to_rgb(flow)
    assert rgb.shape == (3, 3, 3)
    assert rgb[0, 0].tolist() == [0, 255, 255]
    assert rgb[1, 1].tolist() == [0, 0, 0]
    assert flow_to_rgb(flow, max_norm=8.0)[0, 0].tolist() == [0, 128, 128]


def test_magnitude_heatmap_endpoints_monotone_and_shapes() -> None:
    ramp = torch.linspace(0, 30, 64).view(1, 1, 1, 64).expand(2, 1, 4, 64)
    heat = magnitude_to_heatmap(ramp)
    assert heat.shape == (2, 4, 64, 3) and heat.dtype == np.uint8
    assert heat[0, 0, 0].tolist() == list(INFERNO_ANCHORS[0])
    assert heat[0, 0, -1].tolist() == list(INFERNO_ANCHORS[-1])
    luma = heat[0, 0].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.diff(luma) > 0)  # perceptual colormap: brightness grows with magnitude
    clipped = magnitude_to_heatmap(ramp, vmax=15.0)
    assert clipped[0, 0, -1].tolist() == list(INFERNO_ANCHORS[-1])
    assert clipped[0, 0, 32].tolist() == list(INFERNO_ANCHORS[-1])  # 15.2 px > vmax
    assert magnitude_to_heatmap(np.zeros((1, 5, 6))).shape == (5, 6, 3)
    with pytest.raises(ValueError, match=">= 0"):
        magnitude_to_heatmap(-ramp)
    with pytest.raises(ValueError, match=r"\(\.\.\., 1, H, W\)"):
        magnitude_to_heatmap(torch.zeros(2, 4, 4))


def test_hsv_to_rgb_primary_hues() -> None:
    hues = np.array([0.0, 60.0, 120.0, 240.0, 360.0])
    rgb = hsv_to_rgb(hues, np.ones(5), np.ones(5))
    assert rgb.tolist() == [[255, 0, 0], [255, 255, 0], [0, 255, 0], [0, 0, 255], [255, 0, 0]]
    assert hsv_to_rgb(np.array(0.0), np.array(0.0), np.array(0.5)).tolist() == [128, 128, 128]


def test_save_png_round_trip_keeps_rgb_order(tmp_path) -> None:
    image = condition_to_rgb(_condition(0, 1.0, 6))  # pure red
    path = save_png(image, tmp_path / "red.png")
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert back.shape == (6, 6, 3)
    assert back[0, 0].tolist() == [0, 0, 255]  # OpenCV reads BGR
    grey = save_png(np.full((3, 4), 0.5), tmp_path / "grey.png")
    assert cv2.imread(str(grey), cv2.IMREAD_UNCHANGED).tolist() == [[128] * 4] * 3
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_png(image, tmp_path / "missing" / "x.png")
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        save_png(np.zeros((2, 2, 4), dtype=np.uint8), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        save_png(np.full((2, 2), 3.0), tmp_path / "x.png")


# ------------------------------------------------------------------------------ drawing helpers


def test_to_rgb8_accepts_chw_tensors_hwc_arrays_and_grey() -> None:
    frame = torch.zeros(3, 4, 5)
    frame[0] = 1.0
    rgb = to_rgb8(frame)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8 and rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb.flags["C_CONTIGUOUS"]  # was the permuted tensor's layout: OpenCV refused it
    assert to_rgb8(np.full((2, 3), 0.5)).tolist() == [[[128] * 3] * 3] * 2
    assert to_rgb8(np.zeros((2, 3, 3), dtype=np.uint8)).shape == (2, 3, 3)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        to_rgb8(torch.zeros(4, 5, 3))
    with pytest.raises(ValueError, match="NaN"):
        to_rgb8(np.full((2, 2, 3), np.nan))


def test_draw_boxes_outlines_inside_the_box_and_keeps_the_input() -> None:
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    out = draw_boxes(image, [(2, 3, 12, 13)], color=(0, 255, 0), thickness=1)
    assert image.max() == 0  # a copy
    assert out[2, 8].tolist() == [0, 255, 0] and out[11, 8].tolist() == [0, 255, 0]
    assert out[7, 3].tolist() == [0, 255, 0] and out[7, 12].tolist() == [0, 255, 0]
    assert out[7, 8].tolist() == [0, 0, 0]  # inside stays untouched
    assert out[18, 25].tolist() == [0, 0, 0]


def test_fit_width_caption_grid_and_hstack_sizes() -> None:
    tile = np.zeros((10, 20, 3), dtype=np.uint8)
    assert fit_width(tile, 60).shape == (30, 60, 3)
    assert fit_width(tile, 10).shape == (5, 10, 3)
    captioned = add_caption(tile, "a caption much longer than twenty pixels, shortened")
    assert captioned.shape[1] == 20 and captioned.shape[0] > 10
    assert captioned[-1].max() == 0 and captioned[0].min() == 255  # white bar on top
    below = add_caption(tile, "x", below=True)
    assert below[0].max() == 0 and below[-1].min() == 255
    sheet = grid([tile] * 5, columns=2, gap=4)
    assert sheet.shape == (3 * 10 + 4 * 4, 2 * 20 + 3 * 4, 3)
    side = hstack([tile, np.zeros((14, 6, 3), dtype=np.uint8)], gap=3)
    assert side.shape == (14, 29, 3)
    with pytest.raises(ValueError):
        grid([], columns=2)


def test_line_chart_draws_series_reference_lines_and_single_points() -> None:
    chart = line_chart(
        {"train": [0.5, 0.4, 0.3], "val": [0.6, 0.55, 0.5]},
        hlines={"baseline": 0.62},
        highlight=(3, 0.5, "kept: epoch 3"),
        title="loss",
        xlabel="epoch",
        ylabel="loss",
        size=(300, 500),
    )
    assert chart.shape == (300, 500, 3) and chart.dtype == np.uint8
    colours = {tuple(c) for c in chart.reshape(-1, 3).tolist()}
    assert PALETTE[0] in colours and PALETTE[1] in colours
    single = line_chart({"train": [0.2]}, hlines={"baseline": 0.3})
    assert PALETTE[0] in {tuple(c) for c in single.reshape(-1, 3).tolist()}
    with pytest.raises(ValueError, match="finite"):
        line_chart({"train": [float("nan")]})
    with pytest.raises(ValueError, match="size"):
        line_chart({"train": [1.0]}, size=(50, 50))


def test_colorbar_and_direction_wheel_legends() -> None:
    bar = colorbar(20.0, width=200, marker=(5.0, "threshold"))
    assert bar.shape[1] == 200 and bar.shape[0] >= 30
    colours = {tuple(c) for c in bar.reshape(-1, 3).tolist()}
    assert INFERNO_ANCHORS[0] in colours and INFERNO_ANCHORS[-1] in colours
    with pytest.raises(ValueError, match="vmax"):
        colorbar(0.0)
    wheel = direction_wheel(65)
    assert wheel.shape == (65, 65, 3)
    assert wheel[32, 32].tolist() == [0, 0, 0]  # centre: no blur
    assert wheel[32, 64].tolist() == [255, 0, 0]  # +x at full length: red
    assert wheel[0, 0].tolist() == [255, 255, 255]  # outside the disc
