"""Pictures and render times of the scenario families of ``ttblur.scenarios``.

Writes ``docs/images/scenario-<family>.png``: for one evaluation video of each family, the
sharp frame, the blurry frame and the ground-truth blur magnitude map (inferno colour map,
0 px black to the frame's largest magnitude, written in the label) of its blurriest frame,
each tile 200x160 (a 256x320 render downscaled by 1.6). With ``--timing`` it also renders the
whole evaluation suite (3 videos per family, 24 frames, 256x320, one torch thread) and prints
a Markdown table of render times (wall and CPU seconds).

Usage (from the repository root)::

    PYTHONPATH=src python scripts/scenario_pictures.py [--timing] [--out docs/images]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ttblur.scenarios import FAMILIES, ScenarioVideo, draw_scenario, make_scenario, scenario_suite

TILE = (200, 160)  # (width, height) of one picture tile
LABEL_H = 22
#: Which evaluation video of each family is pictured.
PICTURED_INDEX = 1


def _to_bgr(image: torch.Tensor) -> np.ndarray:
    rgb = (image.permute(1, 2, 0).clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)
    return cv2.resize(rgb[:, :, ::-1], TILE, interpolation=cv2.INTER_AREA)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    strip = np.full((LABEL_H, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, tile])


def picture(video: ScenarioVideo) -> np.ndarray:
    """Sharp / blurry / magnitude of the frame with the largest mean magnitude."""
    t = int(video.magnitude.mean(dim=(1, 2, 3)).argmax())
    mag = video.magnitude[t, 0]
    top = max(float(mag.max()), 1e-6)
    scaled = (mag / top * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
    colour = cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)
    colour = cv2.resize(colour, TILE, interpolation=cv2.INTER_AREA)
    tiles = [
        _label(_to_bgr(video.sharp[t]), f"sharp (frame {t})"),
        _label(_to_bgr(video.blurry[t]), "blurry"),
        _label(colour, f"magnitude 0-{top:.1f} px"),
    ]
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2]], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--timing", action="store_true", help="time the evaluation suite")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for family in FAMILIES:
        spec = draw_scenario(family, "evaluation", PICTURED_INDEX, num_frames=6)
        path = args.out / f"scenario-{family}.png"
        cv2.imwrite(str(path), picture(make_scenario(spec)), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"{path}: {spec.photo}, exposure ratio {spec.exposure_ratio:.2f}")
    if not args.timing:
        return
    make_scenario(draw_scenario("pan", "evaluation", 0, num_frames=2))  # load photos, warm up
    times: dict[str, list[tuple[float, float]]] = {f: [] for f in FAMILIES}
    for spec in scenario_suite("evaluation", 3, num_frames=24, size=(256, 320)):
        wall, cpu = time.perf_counter(), time.process_time()
        make_scenario(spec)
        times[spec.family].append((time.perf_counter() - wall, time.process_time() - cpu))
    print("| family | wall s (3 videos) | CPU s median | CPU s max |")
    print("|---|---|---|---|")
    for family, rows in times.items():
        walls = ", ".join(f"{w:.1f}" for w, _ in rows)
        cpus = [c for _, c in rows]
        print(f"| `{family}` | {walls} | {statistics.median(cpus):.1f} | {max(cpus):.1f} |")


if __name__ == "__main__":
    main()
