"""Coarse-to-fine Lucas-Kanade optical flow in PyTorch: batched, on any device, no weights.

:class:`PyramidFlow` (registered as ``"pyramid"``, ``DBCGMConfig(flow="pyramid")``) follows
the :class:`~ttblur.protocols.FlowEstimator` call and convention of the other estimators
(``flow(src, dst) -> (N, 2, H, W)``; a point at ``(x, y)`` in ``src`` is at ``(x + u, y + v)``
in ``dst``). Every step is a tensor operation over the whole batch, so on a GPU a batch of
pairs costs a few kernel launches per level instead of one CPU call per pair as OpenCV's DIS
does:

1. grey frames, a Gaussian-like pyramid (2x average pooling) down to ``min_side`` px;
2. at each level, from the coarsest: the flow of the level above doubled and upsampled, then
   ``iterations`` Lucas-Kanade steps: ``dst`` warped by the current flow (bilinear
   ``grid_sample``), the gradients of the mean of ``src`` and the warped ``dst``, and per pixel
   the 2x2 least-squares update over a ``window`` x ``window`` box, with Tikhonov damping
   ``damping`` so that textureless pixels stay put rather than jump;
3. the flow at full resolution.

It is a plain local method: large displacements are found through the pyramid (each level
halves them), but occlusions and motion boundaries are smoothed over by the window. The
defaults (6 levels down to 8 px, 2 steps per level, 11 px window) were chosen on development
scenario videos and translated textures; ``benchmarks/flow_accuracy.py`` compares it with DIS
on the held-out ones (docs/dbcgm.md).

Example:
    >>> import torch
    >>> from ttblur.stages.pyramid_flow import PyramidFlow
    >>> frames = torch.rand(2, 3, 64, 64)
    >>> PyramidFlow()(frames, frames).abs().max() < 1e-3
    tensor(True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ttblur.config import DBCGMConfig
from ttblur.registry import FLOWS
from ttblur.stages.flow import luma, validate_flow_inputs, warp_back

__all__ = ["PyramidFlow", "lucas_kanade_step"]


def _gradients(image: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences (one-sided at the borders), ``(N, 1, H, W)`` each."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2.0
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2.0
    return gx, gy


def lucas_kanade_step(
    src: Tensor, dst: Tensor, flow: Tensor, *, window: int, damping: float
) -> Tensor:
    """One damped Lucas-Kanade update of ``flow`` from ``src`` to ``dst`` (grey frames).

    Args:
        src, dst: ``(N, 1, H, W)`` grey frames.
        flow: ``(N, 2, H, W)`` current flow, px.
        window: side of the box the least squares sum over (odd).
        damping: added to the diagonal of each 2x2 system (texture below it barely moves).

    Returns:
        the updated flow ``(N, 2, H, W)``.
    """
    warped, _ = warp_back(dst, flow)
    gx, gy = _gradients(0.5 * (src + warped))
    diff = warped - src

    def box(x: Tensor) -> Tensor:
        return F.avg_pool2d(x, window, stride=1, padding=window // 2, count_include_pad=False)

    sxx, sxy, syy = box(gx * gx) + damping, box(gx * gy), box(gy * gy) + damping
    sxt, syt = box(gx * diff), box(gy * diff)
    det = sxx * syy - sxy * sxy
    du = -(syy * sxt - sxy * syt) / det
    dv = -(sxx * syt - sxy * sxt) / det
    return flow + torch.cat((du, dv), dim=1)


@FLOWS.register("pyramid")
class PyramidFlow:
    """Coarse-to-fine Lucas-Kanade flow (:class:`~ttblur.protocols.FlowEstimator`), batched.

    Args:
        levels: most pyramid levels (fewer when the frames get below ``min_side``).
        iterations: Lucas-Kanade steps per level.
        window: least-squares box side, px (odd).
        damping: Tikhonov damping of each 2x2 system.
        min_side: the coarsest level's short side stays at least this, px.
        device: where it computes (``None``: on the inputs' device); the result is returned
            on ``src``'s device.
    """

    def __init__(
        self,
        levels: int = 6,
        iterations: int = 2,
        window: int = 11,
        damping: float = 1e-5,
        min_side: int = 8,
        device: str | torch.device | None = None,
    ) -> None:
        if levels < 1 or iterations < 1:
            raise ValueError(f"levels and iterations must be >= 1, got {levels}, {iterations}")
        if window < 3 or window % 2 == 0:
            raise ValueError(f"window must be odd and >= 3, got {window}")
        if damping <= 0:
            raise ValueError(f"damping must be > 0, got {damping}")
        self.levels = levels
        self.iterations = iterations
        self.window = window
        self.damping = damping
        self.min_side = min_side
        self.device = torch.device(device) if device is not None else None

    @classmethod
    def from_config(
        cls, section: DBCGMConfig, device: str | torch.device | None = None
    ) -> PyramidFlow:
        """Build for the pipeline (defaults; it runs on the run ``device``)."""
        del section  # no options in the dbcgm section
        return cls(device=device)

    def __repr__(self) -> str:
        return (
            f"PyramidFlow(levels={self.levels}, iterations={self.iterations}, "
            f"window={self.window}, damping={self.damping:g})"
        )

    def _pyramid(self, image: Tensor) -> list[Tensor]:
        levels = [image]
        while len(levels) < self.levels and min(levels[-1].shape[-2:]) >= 2 * self.min_side:
            levels.append(F.avg_pool2d(levels[-1], 2, ceil_mode=True))
        return levels

    def __call__(self, src: Tensor, dst: Tensor) -> Tensor:
        """Flow from ``src`` to ``dst``.

        Args:
            src, dst: ``(N, 3, H, W)`` float RGB in ``[0, 1]``, ``H, W >= 8``.

        Returns:
            ``(N, 2, H, W)`` float32 flow in pixels on ``src``'s device.
        """
        validate_flow_inputs(src, dst)
        device = self.device or src.device
        with torch.no_grad():
            first = self._pyramid(luma(src.to(device))[:, None])
            second = self._pyramid(luma(dst.to(device))[:, None])
            flow = torch.zeros(
                first[-1].shape[0], 2, *first[-1].shape[-2:], dtype=torch.float32, device=device
            )
            for a, b in zip(reversed(first), reversed(second)):
                if flow.shape[-2:] != a.shape[-2:]:
                    scale_y = a.shape[-2] / flow.shape[-2]
                    scale_x = a.shape[-1] / flow.shape[-1]
                    flow = F.interpolate(
                        flow, size=a.shape[-2:], mode="bilinear", align_corners=False
                    )
                    # Python scalars, not a tensor made on the device (a blocking upload).
                    flow = torch.cat((flow[:, :1] * scale_x, flow[:, 1:] * scale_y), dim=1)
                for _ in range(self.iterations):
                    flow = lucas_kanade_step(a, b, flow, window=self.window, damping=self.damping)
            flow = torch.nan_to_num(flow, nan=0.0, posinf=0.0, neginf=0.0)
        limit = float(math.hypot(*src.shape[-2:]))
        return flow.clamp(-limit, limit).to(src.device)
