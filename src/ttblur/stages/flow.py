"""Dense optical flow between batches of frames (:class:`~ttblur.protocols.FlowEstimator`).

Two implementations share the call ``flow(src, dst) -> (N, 2, H, W)``:

* :class:`OpenCVFlow` (default): OpenCV's DIS optical flow (Kroeger et al., ECCV 2016) on 8-bit
  grey frames. No weights, runs on the CPU, a few milliseconds per 256x256 pair.
* :class:`RAFTFlow`: torchvision's RAFT (small or large) for users with a GPU and weights.
  torchvision is imported lazily, only when a :class:`RAFTFlow` is built, and weights are
  read from a local file or an explicitly named Hugging Face Hub repo, never downloaded
  implicitly.

Flow convention (the protocol's): a point at ``(x, y)`` in ``src`` is at ``(x + u, y + v)`` in
``dst``; channel 0 is ``u`` (x, to the right), channel 1 is ``v`` (y, downwards), in pixels.

Example:
    >>> import torch
    >>> from ttblur.stages.flow import OpenCVFlow
    >>> frames = torch.rand(2, 3, 64, 64)
    >>> OpenCVFlow("ultrafast")(frames, frames).shape
    torch.Size([2, 2, 64, 64])
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from ttblur.config import DBCGMConfig
from ttblur.io.weights import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    InvalidWeightsError,
    PushToHubMixin,
    WeightsNotFoundError,
    looks_like_local_path,
    read_config,
    read_state_dict,
    resolve_pretrained,
    state_dict_mismatch,
    write_pretrained,
)
from ttblur.registry import FLOWS
from ttblur.types import FlowEstimator, validate_video

_DEFAULTS = DBCGMConfig()

__all__ = [
    "DIS_PRESETS",
    "MIN_FLOW_SIZE",
    "OpenCVFlow",
    "RAFTConfig",
    "RAFTFlow",
    "build_flow",
    "luma",
    "validate_flow_inputs",
    "warp_back",
]

#: DIS presets accepted by :class:`OpenCVFlow` (``DBCGMConfig.flow_preset``).
DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
#: Smallest frame side (pixels) a flow estimator accepts.
MIN_FLOW_SIZE = 8
# OpenCV 5.0's DIS crashes (segfault, not an exception) on frames whose short side is below
# 32 px while the long side is large (its pyramid gets fewer levels than the preset's finest
# scale). Such frames are padded by edge replication to this side and the flow is cropped back.
_DIS_SAFE_SIDE = 32
_RAFT_MULTIPLE = 8
#: Smallest side RAFT accepts: its 4-level correlation pyramid needs 16 px feature maps at 1/8.
_RAFT_MIN_SIZE = 128


def validate_flow_inputs(src: Tensor, dst: Tensor) -> None:
    """Check the inputs of a :class:`~ttblur.protocols.FlowEstimator` call.

    Args:
        src: must be ``(N, 3, H, W)`` floating point, finite, RGB in ``[0, 1]``,
            ``H, W >= MIN_FLOW_SIZE``.
        dst: same shape, dtype kind and device as ``src``.

    Raises:
        ValueError: naming the first violated requirement.
    """
    for name, x in (("src", src), ("dst", dst)):
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{name} must be (N, 3, H, W), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating point tensor, got {x.dtype}")
    if src.shape != dst.shape:
        raise ValueError(
            f"src and dst must have the same shape, got {tuple(src.shape)} and {tuple(dst.shape)}"
        )
    if src.device != dst.device:
        raise ValueError(f"src is on {src.device} but dst is on {dst.device}")
    height, width = src.shape[-2:]
    if min(height, width) < MIN_FLOW_SIZE:
        raise ValueError(
            f"frames must be at least {MIN_FLOW_SIZE}x{MIN_FLOW_SIZE} px for optical flow, "
            f"got {height}x{width}"
        )
    if src.shape[0] == 0:
        return
    validate_video(src, "src")
    validate_video(dst, "dst")


def luma(frames: Tensor) -> Tensor:
    """Grey frames: ITU-R BT.601 luma of RGB, float32 on the frames' device.

    Shape:
        - frames: ``(N, 3, H, W)``; output: ``(N, H, W)``.
    """
    return torch.einsum("nchw,c->nhw", frames.detach().float(), _luma_weights(frames.device))


@functools.lru_cache(maxsize=8)
def _luma_weights(device: torch.device) -> Tensor:
    """BT.601's ``(3,)`` weights, made once per device: on a GPU, making them is a blocking
    upload, a wait for the device on every call."""
    return torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=device)


def warp_back(frames: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
    """Warp frames back along a flow: ``frames`` sampled at ``x + flow(x)``.

    Args:
        frames: float images (frame ``s``), one or a batch.
        flow: px, the flow from the frames to be matched (``t``) to ``s``.

    Returns:
        the warped frames (float32, bilinear, border padding) and a mask: 1 where
        ``x + flow(x)`` lies inside the frame, 0 where the sample is made up.

    Shape:
        - frames: ``(C, H, W)`` or ``(N, C, H, W)``; flow: ``(2, H, W)`` or ``(N, 2, H, W)``.
        - output: like ``frames``; mask ``(1, H, W)`` or ``(N, 1, H, W)``.
    """
    single = frames.ndim == 3
    images = frames[None] if single else frames
    vectors = flow[None] if single else flow
    height, width = images.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=vectors.device),
        torch.arange(width, dtype=torch.float32, device=vectors.device),
        indexing="ij",
    )
    x, y = xs + vectors[:, 0], ys + vectors[:, 1]
    grid = torch.stack(((2 * x + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)
    warped = F.grid_sample(images.float(), grid, padding_mode="border", align_corners=False)
    inside = ((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1))[:, None].float()
    return (warped[0], inside[0]) if single else (warped, inside)


def _to_gray_uint8(frames: Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` RGB in [0, 1] -> ``(N, H, W)`` uint8 luma."""
    gray = (luma(frames).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return gray.cpu().numpy()


@FLOWS.register("opencv")
class OpenCVFlow:
    """Weight-free :class:`~ttblur.protocols.FlowEstimator`: OpenCV's DIS optical flow.

    Frames are converted to 8-bit luma (BT.601) and processed pair by pair on the CPU (DIS has
    no batched form); the result is returned as float32 on the input's device. Frames with a
    side below 32 px are edge-padded to 32 px first (OpenCV's DIS is unstable on them) and the
    flow is cropped back.

    Args:
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (OpenCV's DIS presets; slower
            presets use denser patches, more iterations and variational refinement).

    Example:
        >>> import torch
        >>> from ttblur import OpenCVFlow
        >>> flow = OpenCVFlow("fast")
        >>> flow(torch.rand(1, 3, 48, 64), torch.rand(1, 3, 48, 64)).shape
        torch.Size([1, 2, 48, 64])
    """

    def __init__(
        self,
        preset: Literal["ultrafast", "fast", "medium"] = _DEFAULTS.flow_preset,
    ) -> None:
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose from {tuple(DIS_PRESETS)}")
        self.preset = preset

    @classmethod
    def from_config(cls, section: DBCGMConfig) -> OpenCVFlow:
        """Build from the ``dbcgm`` section (``flow_preset``)."""
        return cls(section.flow_preset)

    def __repr__(self) -> str:
        return f"OpenCVFlow(preset={self.preset!r})"

    def _engine(self) -> Any:
        # A fresh DIS object per pair (about 20 us): OpenCV's keeps state between calls, and on
        # frames of 40-44 px its flow depended on the pairs computed before (up to 3.8 px).
        return cv2.DISOpticalFlow_create(DIS_PRESETS[self.preset])  # type: ignore[attr-defined]

    def __call__(self, src: Tensor, dst: Tensor) -> Tensor:
        """Flow from ``src`` to ``dst``.

        Args:
            src: ``(N, 3, H, W)`` float RGB in ``[0, 1]``, ``H, W >= 8``.
            dst: ``(N, 3, H, W)`` float RGB in ``[0, 1]``.

        Returns:
            ``(N, 2, H, W)`` float32 flow in pixels on ``src``'s device: ``src`` pixel
            ``(x, y)`` is at ``(x + u, y + v)`` in ``dst``.

        Raises:
            ValueError: wrong rank / channels / shapes, non-float dtype, NaN/inf, values
                outside ``[0, 1]`` or frames smaller than 8 px.
        """
        validate_flow_inputs(src, dst)
        n, _, height, width = src.shape
        if n == 0:
            return torch.zeros(0, 2, height, width, dtype=torch.float32, device=src.device)
        gray_src, gray_dst = _to_gray_uint8(src), _to_gray_uint8(dst)
        pad_h, pad_w = max(_DIS_SAFE_SIDE - height, 0), max(_DIS_SAFE_SIDE - width, 0)
        out = np.empty((n, 2, height, width), dtype=np.float32)
        for i in range(n):
            a, b = gray_src[i], gray_dst[i]
            if pad_h or pad_w:
                a = cv2.copyMakeBorder(a, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
                b = cv2.copyMakeBorder(b, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
            flow = self._engine().calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None)
            out[i] = flow[:height, :width].transpose(2, 0, 1)
        return torch.from_numpy(out).to(src.device)


# --------------------------------------------------------------------------------------------
# RAFT (torchvision)


_TORCHVISION_HINT = (
    "RAFTFlow needs torchvision's RAFT (torchvision.models.optical_flow), which cannot be "
    "imported here{reason}. Install the torchvision build that matches your torch "
    "(see https://pytorch.org/get-started/previous-versions/ for the pairing, e.g. "
    "`pip install torchvision==<version matching torch {torch}>` from the same index as torch), "
    "or use the weight-free default OpenCVFlow (DBCGMConfig.flow='opencv')."
)


def _import_raft() -> Any:
    """Import ``torchvision.models.optical_flow`` or raise an ImportError naming the fix."""
    try:
        return importlib.import_module("torchvision.models.optical_flow")
    except Exception as err:  # ImportError, or a broken torchvision raising at import
        reason = f" ({type(err).__name__}: {err})"
        raise ImportError(_TORCHVISION_HINT.format(reason=reason, torch=torch.__version__)) from err


_RAFT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin")


class RAFTConfig(BaseModel):
    """What :meth:`RAFTFlow.save_pretrained` stores in ``config.json`` besides the weights.

    Attributes:
        size: torchvision architecture, ``"small"`` (``raft_small``) or ``"large"``
            (``raft_large``).
        num_flow_updates: recurrent refinement iterations used unless the caller passes
            another number.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Literal["small", "large"]
    num_flow_updates: int = Field(default=12, ge=1)


def _pick_weights_file(folder: Path, filename: str | None) -> Path:
    """The weights file in ``folder``: ``filename`` (default ``model.safetensors``) if there,
    else the only ``.safetensors`` / ``.pth`` / ``.pt`` file."""
    preferred = folder / (filename or WEIGHTS_NAME)
    if preferred.is_file():
        return preferred
    if filename is not None:
        raise WeightsNotFoundError(f"no RAFT weights file {preferred}")
    found = sorted(
        p for p in folder.iterdir() if p.suffix in (".safetensors", ".pth", ".pt") and p.is_file()
    )
    if len(found) != 1:
        raise WeightsNotFoundError(
            f"RAFT weights folder {folder} must hold exactly one .safetensors/.pth/.pt file "
            f"(or pass filename=), found {[p.name for p in found]}"
        )
    return found[0]


def _resolve_raft_weights(
    weights: str | Path, filename: str | None, revision: str | None
) -> tuple[Path, RAFTConfig | None]:
    """Local file, local folder or Hub repo id -> (weights file, config if the folder has one).

    Folders and repo ids go through :func:`ttblur.io.weights.resolve_pretrained` (Hub cache,
    ``HF_HUB_OFFLINE``), like every other stage with weights.
    """
    path = Path(weights).expanduser()
    if path.is_file():
        return path, None
    folder = resolve_pretrained(
        weights, default=None, revision=revision, filenames=(filename or WEIGHTS_NAME, CONFIG_NAME)
    )
    config = read_config(folder, RAFTFlow.__name__, RAFTConfig, required=False)
    return _pick_weights_file(folder, filename), config


@FLOWS.register("raft")
class RAFTFlow(PushToHubMixin):
    """:class:`~ttblur.protocols.FlowEstimator` backed by torchvision's RAFT.

    The official DADeblur code estimates blur orientation with RAFT; this class lets users with
    a GPU do the same. The architecture comes from ``torchvision.models.optical_flow``
    (``raft_small`` / ``raft_large``), so the weights must be torchvision's RAFT state dicts
    (e.g. the files behind ``Raft_Large_Weights.C_T_SKHT_V2``), saved as ``.pth`` (loaded with
    ``torch.load(weights_only=True)``) or ``.safetensors``. The original princeton-vl
    checkpoints (``raft-things.pth``) use other key names and do not load.

    :meth:`save_pretrained` writes ``config.json`` (:class:`RAFTConfig`) + ``model.safetensors``;
    :meth:`from_pretrained` and the constructor read such a folder or Hub repo back (the
    config then fixes ``size`` and the default ``num_flow_updates``); ``push_to_hub`` uploads
    it (:class:`~ttblur.io.weights.PushToHubMixin`).

    Args:
        weights: a local weights file, a local folder holding one weights file, or a Hugging
            Face Hub repo id (``filename`` inside it, default ``model.safetensors``), resolved
            through the Hub cache (``HF_HUB_OFFLINE=1`` works once cached). Required:
            nothing is downloaded unless a repo id is named here.
        size: ``"small"``, ``"large"`` or ``"auto"`` (the config's size if the folder has a
            ``config.json``, else the one whose keys match the weights).
        num_flow_updates: RAFT's recurrent refinement iterations; ``None``: the config's, else
            torchvision's default 12 (the official DADeblur code ran 20).
        batch_size: pairs per forward pass (bounds GPU memory).
        device: where the network runs; ``None`` follows the inputs. The flow is returned on
            the inputs' device either way.
        filename: file inside a Hub repo or folder.
        revision: Hub revision (branch, tag or commit) for repo ids.

    Raises:
        ValueError: ``weights`` is None, or (:class:`~ttblur.io.weights.InvalidWeightsError`) the
            files do not hold matching RAFT weights or a valid ``RAFTFlow`` config.
        ImportError: torchvision cannot be imported (the message names the fix).
        FileNotFoundError: (:class:`~ttblur.io.weights.WeightsNotFoundError`) the weights cannot be
            found locally or on the Hub (cache).
    """

    @classmethod
    def from_config(
        cls, section: DBCGMConfig, *, device: torch.device | str | None = None
    ) -> RAFTFlow:
        """Build from the ``dbcgm`` section (``flow_weights``, ``flow_weights_revision``)."""
        return cls(section.flow_weights, revision=section.flow_weights_revision, device=device)

    def __init__(
        self,
        weights: str | Path | None,
        *,
        size: Literal["small", "large", "auto"] = "auto",
        num_flow_updates: int | None = None,
        batch_size: int = 4,
        device: torch.device | str | None = None,
        filename: str | None = None,
        revision: str | None = None,
    ) -> None:
        if weights is None:
            raise ValueError(
                "RAFTFlow needs weights: pass weights=<local .pth/.safetensors file, folder, or "
                "Hugging Face Hub repo id> (DBCGMConfig.flow_weights). ttblur never downloads "
                "RAFT weights implicitly; the weight-free default is OpenCVFlow "
                "(DBCGMConfig.flow='opencv')."
            )
        if size not in ("small", "large", "auto"):
            raise ValueError(f"size must be 'small', 'large' or 'auto', got {size!r}")
        if num_flow_updates is not None and num_flow_updates < 1:
            raise ValueError(f"num_flow_updates must be >= 1, got {num_flow_updates}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        local = Path(weights).expanduser()
        if not local.exists() and (
            isinstance(weights, Path) or looks_like_local_path(str(weights), _RAFT_SUFFIXES)
        ):
            raise WeightsNotFoundError(f"no RAFT weights file or folder at '{weights}'")
        raft = _import_raft()  # before any Hub download: fail fast without torchvision
        path, config = _resolve_raft_weights(weights, filename, revision)
        state = read_state_dict(path, torch_files=True)
        if size != "auto":
            sizes: tuple[str, ...] = (size,)
        elif config is not None:
            sizes = (config.size,)
        else:
            sizes = ("large", "small")
        errors = []
        model = None
        chosen: str = size
        for candidate in sizes:
            net = getattr(raft, f"raft_{candidate}")(weights=None, progress=False)
            problem = state_dict_mismatch(net.state_dict(), state, limit=3)
            if problem:
                errors.append(f"raft_{candidate}: {problem}")
                continue
            net.load_state_dict(state, strict=True)
            model, chosen = net, candidate
            break
        if model is None:
            raise InvalidWeightsError(
                f"{path} does not hold torchvision RAFT weights: {'; '.join(errors)}"
            )
        if num_flow_updates is None:
            num_flow_updates = config.num_flow_updates if config is not None else 12
        self.model = model.eval()
        self.size = chosen
        self.source = str(path)
        self.num_flow_updates = int(num_flow_updates)
        self.batch_size = int(batch_size)
        self.device = torch.device(device) if device is not None else None

    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_path: str | Path,
        *,
        revision: str | None = None,
        **kwargs: Any,
    ) -> RAFTFlow:
        """Load from a folder / Hub repo written by :meth:`save_pretrained` (or any RAFT
        weights the constructor accepts).

        Args:
            repo_id_or_path: local folder or file, or Hub repo id (through the Hub cache).
            revision: Hub branch, tag or commit hash.
            **kwargs: passed to :class:`RAFTFlow` (``num_flow_updates``, ``batch_size``,
                ``device``, ``filename``, ``size``).

        Raises:
            as :class:`RAFTFlow`.
        """
        return cls(repo_id_or_path, revision=revision, **kwargs)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``config.json`` (size, num_flow_updates) + ``model.safetensors`` to ``path``.

        Returns:
            the folder, loadable with :meth:`from_pretrained`.
        """
        config = RAFTConfig(size=self.size, num_flow_updates=self.num_flow_updates)  # type: ignore[arg-type]
        return write_pretrained(path, type(self).__name__, config, self.model.state_dict())

    def __repr__(self) -> str:
        return (
            f"RAFTFlow(size={self.size!r}, num_flow_updates={self.num_flow_updates}, "
            f"batch_size={self.batch_size}, source={self.source!r})"
        )

    @torch.no_grad()
    def __call__(self, src: Tensor, dst: Tensor) -> Tensor:
        """Flow from ``src`` to ``dst``.

        Args:
            src: ``(N, 3, H, W)`` float RGB in ``[0, 1]``, ``H, W >= 8``.
            dst: ``(N, 3, H, W)`` float RGB in ``[0, 1]``.

        Returns:
            ``(N, 2, H, W)`` float32 flow in pixels on ``src``'s device (frames are
            edge-padded to a multiple of 8, and to at least 128 px, the smallest input
            RAFT's correlation pyramid accepts, and the flow is cropped back).
        """
        validate_flow_inputs(src, dst)
        n, _, height, width = src.shape
        if n == 0:
            return torch.zeros(0, 2, height, width, dtype=torch.float32, device=src.device)
        device = self.device if self.device is not None else src.device
        self.model.to(device)
        pad_h = max((-height) % _RAFT_MULTIPLE, _RAFT_MIN_SIZE - height)
        pad_w = max((-width) % _RAFT_MULTIPLE, _RAFT_MIN_SIZE - width)
        outputs = []
        for i in range(0, n, self.batch_size):
            pair = []
            for x in (src[i : i + self.batch_size], dst[i : i + self.batch_size]):
                x = x.to(device=device, dtype=torch.float32) * 2.0 - 1.0  # RAFT expects [-1, 1]
                if pad_h or pad_w:
                    x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
                pair.append(x.contiguous())
            predictions = self.model(pair[0], pair[1], num_flow_updates=self.num_flow_updates)
            outputs.append(predictions[-1][:, :, :height, :width].float())
        return torch.cat(outputs, dim=0).to(src.device)


def build_flow(section: DBCGMConfig) -> FlowEstimator:
    """The flow estimator named by ``section.flow`` (:data:`ttblur.registry.FLOWS`).

    Args:
        section: the ``dbcgm`` section of :class:`~ttblur.config.AdaptConfig`.

    Returns:
        ``"opencv"``: ``OpenCVFlow(section.flow_preset)``; ``"raft"``:
        ``RAFTFlow(section.flow_weights, revision=section.flow_weights_revision)``; a
        registered name: its factory called without arguments.

    Raises:
        ValueError: unknown name, or ``"raft"`` without ``flow_weights``.
        ImportError: ``"raft"`` without an importable torchvision.
    """
    flow: FlowEstimator = FLOWS.build(section.flow, section)
    return flow
