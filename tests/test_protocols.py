import pytest
import torch

from ttblur.protocols import PatchLocation, Selection


def test_patch_location_crops_the_box():
    frames = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).reshape(2, 3, 10, 12)
    loc = PatchLocation(frame=1, top=2, left=5, size=4)
    crop = loc.crop(frames[loc.frame])
    assert crop.shape == (3, 4, 4)
    assert torch.equal(crop, frames[1, :, 2:6, 5:9])
    assert (loc.bottom, loc.right) == (6, 9)


def test_patch_location_is_frozen_and_validated():
    loc = PatchLocation(0, 0, 0, 8)
    with pytest.raises(AttributeError):
        loc.top = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="size"):
        PatchLocation(0, 0, 0, 0)
    with pytest.raises(ValueError, match=">= 0"):
        PatchLocation(0, -1, 0, 8)
    with pytest.raises(ValueError, match="does not fit"):
        PatchLocation(0, 6, 0, 8).crop(torch.zeros(3, 10, 10))


def test_selection_length():
    sel = Selection(patches=[PatchLocation(2, 0, 0, 4)] * 3, magnitude=torch.zeros(5, 1, 4, 4))
    assert len(sel) == 3
