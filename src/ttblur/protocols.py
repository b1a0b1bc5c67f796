"""Stage protocols and the small data types passed between stages.

Every stage of the pipeline is a :class:`typing.Protocol`, so a user can swap any stage for
their own object without subclassing anything. The shapes and units below are the data
contract that all implementations, built-in or not, must follow:

========================  ==========================  ==========================================
thing                     shape                       units / range
========================  ==========================  ==========================================
video                     ``(T, 3, H, W)`` float32    RGB in ``[0, 1]``
blur magnitude map        ``(T, 1, H, W)``            blur trajectory length in **pixels**
flow                      ``(N, 2, H, W)`` float32    pixels, channel 0 = x (u), 1 = y (v)
blur condition map        ``(N, 3, h, w)`` float32    x, y: unit direction in ``[-1, 1]``;
                                                      z = ``min(M / mag_norm, 1)`` in ``[0, 1]``
patch location            :class:`PatchLocation`      pixels
========================  ==========================  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = [
    "BlurSynthesizer",
    "ConditionGenerator",
    "FlowEstimator",
    "PatchLocation",
    "Selection",
    "SharpnessDetector",
]


@dataclass(frozen=True)
class PatchLocation:
    """A square patch of one frame of a video.

    Attributes:
        frame: index of the frame in the video, ``0 <= frame < T``.
        top: row of the patch's top-left pixel.
        left: column of the patch's top-left pixel.
        size: side length of the square patch in pixels.
    """

    frame: int
    top: int
    left: int
    size: int

    def __post_init__(self) -> None:
        if self.frame < 0 or self.top < 0 or self.left < 0:
            raise ValueError(f"PatchLocation indices must be >= 0, got {self}")
        if self.size <= 0:
            raise ValueError(f"PatchLocation size must be > 0, got {self.size}")

    @property
    def bottom(self) -> int:
        """Row one past the patch's last row."""
        return self.top + self.size

    @property
    def right(self) -> int:
        """Column one past the patch's last column."""
        return self.left + self.size

    def crop(self, frames: Tensor) -> Tensor:
        """Crop this patch's box out of ``(..., H, W)`` frames (any leading dimensions).

        Raises:
            ValueError: if the box does not lie inside the frames.
        """
        height, width = frames.shape[-2:]
        if self.bottom > height or self.right > width:
            raise ValueError(f"patch {self} does not fit in frames of size {height}x{width}")
        return frames[..., self.top : self.bottom, self.left : self.right]


@dataclass
class Selection:
    """The pseudo-sharp patches chosen by a :class:`SharpnessDetector`.

    Attributes:
        patches: the chosen patch locations, in a deterministic order.
        magnitude: per-frame blur magnitude maps ``(T, 1, H, W)`` in pixels, as predicted by the
            detector. Condition generators reuse them instead of recomputing.
        threshold: the magnitude threshold (pixels) the detector used, if it used one.
        candidates: number of candidate patches the detector considered.
    """

    patches: list[PatchLocation]
    magnitude: Tensor
    threshold: float | None = None
    candidates: int = 0
    info: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.patches)


@runtime_checkable
class SharpnessDetector(Protocol):
    """Chooses relatively sharp patches of a blurry video to serve as pseudo-sharp images."""

    def select(self, video: Tensor) -> Selection:
        """Choose pseudo-sharp patches.

        Args:
            video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``.

        Returns:
            A :class:`Selection` whose ``magnitude`` is ``(T, 1, H, W)`` in pixels.
        """
        ...


@runtime_checkable
class FlowEstimator(Protocol):
    """Dense optical flow between batches of frames."""

    def __call__(self, src: Tensor, dst: Tensor) -> Tensor:
        """Flow from ``src`` to ``dst``.

        Args:
            src: ``(N, 3, H, W)`` float RGB in ``[0, 1]``.
            dst: ``(N, 3, H, W)`` float RGB in ``[0, 1]``.

        Returns:
            ``(N, 2, H, W)`` float32 flow in pixels: a point at ``(x, y)`` in ``src`` is at
            ``(x + u, y + v)`` in ``dst``, channel 0 = ``u``, channel 1 = ``v``.
        """
        ...


@runtime_checkable
class ConditionGenerator(Protocol):
    """Builds a blur condition map for each selected pseudo-sharp patch."""

    def __call__(self, video: Tensor, selection: Selection) -> Tensor:
        """Blur conditions for ``selection.patches``.

        Args:
            video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``.
            selection: the detector's output (patches and magnitude maps in pixels).

        Returns:
            ``(N, 3, p, p)`` condition maps, ``N = len(selection.patches)``, ``p`` the patch
            size: channels x, y are the unit blur direction, z = ``min(M / mag_norm, 1)``.
        """
        ...


@runtime_checkable
class BlurSynthesizer(Protocol):
    """Blurs sharp images according to pixel-wise blur condition maps."""

    def __call__(self, sharp: Tensor, condition: Tensor) -> Tensor:
        """Synthesize blurry images.

        Args:
            sharp: ``(N, 3, h, w)`` float RGB in ``[0, 1]``.
            condition: ``(N, 3, h, w)`` condition maps (see the module docstring).

        Returns:
            ``(N, 3, h, w)`` float RGB in ``[0, 1]``.
        """
        ...
