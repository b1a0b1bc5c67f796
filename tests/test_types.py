"""The shared checks of ``ttblur.types``."""

import pytest
import torch

from ttblur.types import check_map_shape


def test_per_frame_maps_must_match_the_video() -> None:
    check_map_shape(torch.zeros(4, 1, 6, 8), (4, 3, 6, 8))  # one (1, H, W) map per frame
    for wrong in ((4, 3, 6, 8), (3, 1, 6, 8), (4, 1, 8, 6)):
        with pytest.raises(ValueError, match=r"maps must be \(T, 1, H, W\) = \(4, 1, 6, 8\)"):
            check_map_shape(torch.zeros(wrong), (4, 3, 6, 8), "maps")
