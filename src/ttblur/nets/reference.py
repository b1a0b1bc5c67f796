"""ttblur's reference video deblurring networks: :class:`ReferenceDeblurNet` (0.35 M
parameters, shipped trained as ``"tiny"``) and :class:`ReferenceUNet` (2.85 M parameters, the
size users adapt in practice, shipped trained as ``"base"``; how far each deblurs is measured
in ``docs/reference-model.md``).

Clip-based networks of our own design, trained on the synthetic source domain (``ttblur.synth``
preset ``"gopro"``, training photos only). They play the role of a pretrained deblurring model
that :func:`ttblur.adapt` adapts to a new domain.

Calling convention (its :class:`~ttblur.specs.ModelSpec` is ``model.spec``, the built-in
``"reference"`` spec): input ``(B, T, 3, H, W)`` RGB in ``[0, 1]`` with ``H, W`` multiples of
8 and ``T >= 5``; output ``(B, T - 4, 3, H, W)``: output frame ``k`` restores input frame
``k + 2`` from frames ``k .. k + 4`` (2 past, 2 future, like ESTRNN).

Architecture of ``"tiny"`` (widths ``f1, f2, f3 = config.features``)::

    every frame (shared weights):  conv3x3/2 -> f1 @ 1/2,  conv3x3/2 -> f2 @ 1/4
    per output frame t:            concat f2 features of frames t-2..t+2 -> conv1x1 -> f2 @ 1/4
                                   conv3x3/2 -> f3 @ 1/8 -> num_blocks residual blocks
                                   pixel-shuffle up to 1/4 (+ fused features) -> conv3x3
                                   pixel-shuffle up to 1/2 (+ frame t's f1 features) -> conv3x3
                                   pixel-shuffle up to full size -> residual added to frame t
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from ttblur.io.weights import (
    CLASS_KEY,
    PretrainedMixin,
    parse_config,
    read_config_json,
    resolve_pretrained,
)
from ttblur.specs import ModelSpec, get_spec

__all__ = [
    "DEFAULT_REFERENCE",
    "REFERENCE_MODELS",
    "ReferenceConfig",
    "ReferenceDeblurNet",
    "ReferenceNet",
    "ReferenceUNet",
    "ReferenceUNetConfig",
    "reference_base",
    "reference_model",
    "reference_tiny",
]


class ReferenceConfig(BaseModel):
    """Architecture of :class:`ReferenceDeblurNet` (stored in ``config.json``).

    Attributes:
        features: channel widths at 1/2, 1/4 and 1/8 resolution.
        num_blocks: residual blocks at 1/8 resolution.
        past_frames: frames before the restored frame in each window.
        future_frames: frames after the restored frame in each window.
        negative_slope: LeakyReLU slope.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    features: tuple[int, int, int] = (16, 32, 64)
    num_blocks: int = Field(default=4, ge=0)
    past_frames: int = Field(default=2, ge=0)
    future_frames: int = Field(default=2, ge=0)
    negative_slope: float = Field(default=0.1, ge=0.0, lt=1.0)

    @field_validator("features")
    @classmethod
    def _positive(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(value) < 1:
            raise ValueError(f"features must be positive, got {value}")
        return value


class ReferenceUNetConfig(BaseModel):
    """Architecture of :class:`ReferenceUNet` (stored in ``config.json``).

    Attributes:
        widths: channel widths at 1/2, 1/4 and 1/8 resolution.
        frame_blocks: residual blocks per frame at 1/2 resolution (before fusion).
        fuse_blocks: residual blocks on the fused window features at 1/4.
        mid_blocks: residual blocks at 1/8.
        dec_blocks: residual blocks of the decoder at 1/4 and at 1/2.
        past_frames: frames before the restored frame in each window.
        future_frames: frames after the restored frame in each window.
        negative_slope: LeakyReLU slope.
        block: ``"residual"``: two 3x3 convolutions with a LeakyReLU between them;
            ``"gated"``: a normalised, gated block (channel layer norm, pointwise expansion,
            depthwise 3x3, multiplicative gate, global channel attention, then a gated
            pointwise feed-forward part), which tolerates a higher learning rate.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    widths: tuple[int, int, int] = (32, 64, 128)
    frame_blocks: int = Field(default=1, ge=0)
    fuse_blocks: int = Field(default=2, ge=0)
    mid_blocks: int = Field(default=8, ge=0)
    dec_blocks: tuple[int, int] = (2, 1)
    past_frames: int = Field(default=2, ge=0)
    future_frames: int = Field(default=2, ge=0)
    negative_slope: float = Field(default=0.1, ge=0.0, lt=1.0)
    block: Literal["residual", "gated"] = "residual"

    @field_validator("widths")
    @classmethod
    def _positive(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(value) < 1:
            raise ValueError(f"widths must be positive, got {value}")
        return value

    @field_validator("dec_blocks")
    @classmethod
    def _non_negative(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 0:
            raise ValueError(f"dec_blocks must be >= 0, got {value}")
        return value


class _ResBlock(nn.Module):
    def __init__(self, channels: int, slope: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), self.slope))

    def zero_branch(self) -> None:
        """Make the block the identity (its residual branch outputs zero)."""
        nn.init.zeros_(self.conv2.weight)
        if self.conv2.bias is not None:
            nn.init.zeros_(self.conv2.bias)


class _ChannelNorm(nn.Module):
    """Layer norm over the channels of every pixel of a ``(N, C, H, W)`` map."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        centred = x - x.mean(dim=1, keepdim=True)
        scale = torch.rsqrt(centred.pow(2).mean(dim=1, keepdim=True) + self.eps)
        return centred * scale * self.weight + self.bias


class _GatedBlock(nn.Module):
    """Normalised gated block: a spatial part (norm, 1x1 to 2C, depthwise 3x3, product of
    the two halves, global channel attention, 1x1 back to C) and a feed-forward part (norm,
    1x1 to 2C, product of the halves, 1x1 back), each added through a per-channel scale that
    starts at zero, so the block starts as the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        wide = 2 * channels
        self.norm1 = _ChannelNorm(channels)
        self.expand = nn.Conv2d(channels, wide, 1)
        self.depthwise = nn.Conv2d(wide, wide, 3, padding=1, groups=wide)
        self.attention = nn.Conv2d(channels, channels, 1)
        self.project = nn.Conv2d(channels, channels, 1)
        self.norm2 = _ChannelNorm(channels)
        self.ff_expand = nn.Conv2d(channels, wide, 1)
        self.ff_project = nn.Conv2d(channels, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.depthwise(self.expand(self.norm1(x))).chunk(2, dim=1)
        y = gate * value
        y = y * self.attention(y.mean(dim=(2, 3), keepdim=True))
        x = x + self.alpha * self.project(y)
        gate, value = self.ff_expand(self.norm2(x)).chunk(2, dim=1)
        return x + self.beta * self.ff_project(gate * value)

    def zero_branch(self) -> None:
        """Make the block the identity (both scales at zero)."""
        nn.init.zeros_(self.alpha)
        nn.init.zeros_(self.beta)


class _ClipDeblurNet(PretrainedMixin, nn.Module):
    """What both reference networks share: the window convention, its spec and input checks."""

    multiple = 8
    config: ReferenceConfig | ReferenceUNetConfig

    @property
    def spec(self) -> ModelSpec:
        """The calling convention: the built-in ``"reference"`` spec (with this config's
        border frames)."""
        base = get_spec("reference")
        past, future = self.config.past_frames, self.config.future_frames
        if (past, future) == (base.past_frames, base.future_frames):
            return base
        return base.replace(
            past_frames=past,
            future_frames=future,
            clip_length=max(base.clip_length, past + future + 1),
        )

    def _act(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.config.negative_slope)

    def _check_clip(self, x: Tensor) -> int:
        """Validate a ``(B, T, 3, H, W)`` clip; return the number of output frames."""
        past, future = self.config.past_frames, self.config.future_frames
        window = past + future + 1
        if x.ndim != 5 or x.shape[2] != 3:
            raise ValueError(f"expected (B, T, 3, H, W), got shape {tuple(x.shape)}")
        frames, height, width = x.shape[1], x.shape[3], x.shape[4]
        if frames < window:
            raise ValueError(f"need at least {window} frames per clip, got {frames}")
        if height % self.multiple or width % self.multiple:
            raise ValueError(
                f"H and W must be multiples of {self.multiple}, got {height}x{width} "
                "(ttblur.deblur pads automatically)"
            )
        return frames - past - future

    def _windows(self, features: Tensor, count: int) -> Tensor:
        """``(B, T, C, h, w)`` per-frame features -> ``(B * count, window * C, h, w)``: the
        concatenated features of each output frame's window."""
        window = self.config.past_frames + self.config.future_frames + 1
        stacked = torch.stack(
            [features[:, t : t + window].flatten(1, 2) for t in range(count)], dim=1
        )
        return stacked.flatten(0, 1)


class ReferenceDeblurNet(_ClipDeblurNet):
    """Small clip-based video deblurring network (about 0.35 M parameters by default), the
    ``"tiny"`` reference model.

    Args:
        config: architecture; default :class:`ReferenceConfig()`.

    Example:
        >>> import torch
        >>> from ttblur.nets.reference import ReferenceDeblurNet
        >>> net = ReferenceDeblurNet()
        >>> net(torch.rand(1, 7, 3, 32, 48)).shape
        torch.Size([1, 3, 3, 32, 48])
    """

    config_class = ReferenceConfig
    default_weights = "reference"
    config: ReferenceConfig

    def __init__(self, config: ReferenceConfig | None = None) -> None:
        super().__init__()
        self.config = config or ReferenceConfig()
        f1, f2, f3 = self.config.features
        window = self.config.past_frames + self.config.future_frames + 1
        slope = self.config.negative_slope
        self.enc1 = nn.Conv2d(3, f1, 3, stride=2, padding=1)
        self.enc2 = nn.Conv2d(f1, f2, 3, stride=2, padding=1)
        self.fuse = nn.Conv2d(window * f2, f2, 1)
        self.down = nn.Conv2d(f2, f3, 3, stride=2, padding=1)
        self.body = nn.Sequential(*[_ResBlock(f3, slope) for _ in range(self.config.num_blocks)])
        self.up3 = nn.Conv2d(f3, 4 * f2, 1)
        self.dec3 = nn.Conv2d(f2, f2, 3, padding=1)
        self.up2 = nn.Conv2d(f2, 4 * f1, 1)
        self.dec2 = nn.Conv2d(f1, f1, 3, padding=1)
        self.out = nn.Conv2d(f1, 3 * 4, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        if self.out.bias is not None:
            nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Restore the centre frames of a clip.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in ``[0, 1]``, ``T >= past + future + 1``, ``H`` and
                ``W`` multiples of 8.

        Returns:
            ``(B, T - past - future, 3, H, W)``, nominally in ``[0, 1]`` (not clamped).
        """
        count = self._check_clip(x)
        past = self.config.past_frames
        batch, frames, _, height, width = x.shape
        flat = x.reshape(batch * frames, 3, height, width)
        e1 = self._act(self.enc1(flat))
        e2 = self._act(self.enc2(e1))
        e1 = e1.reshape(batch, frames, *e1.shape[1:])
        e2 = e2.reshape(batch, frames, *e2.shape[1:])
        fused = self._act(self.fuse(self._windows(e2, count)))
        deep = self.body(self._act(self.down(fused)))
        y = F.pixel_shuffle(self.up3(deep), 2) + fused
        y = self._act(self.dec3(y))
        centre_e1 = e1[:, past : past + count].flatten(0, 1)
        y = F.pixel_shuffle(self.up2(y), 2) + centre_e1
        y = self._act(self.dec2(y))
        residual = F.pixel_shuffle(self.out(y), 2)
        centre = x[:, past : past + count].flatten(0, 1)
        return (centre + residual).reshape(batch, count, 3, height, width)


class ReferenceUNet(_ClipDeblurNet):
    """Clip-based video deblurring U-Net (about 2.9 M parameters by default), the ``"base"``
    reference model, trained with ``python -m ttblur.training.reference train --arch base``
    (its shipped weights: ``docs/reference-model.md``).

    Every frame is encoded once (pixel-unshuffle to 1/2, ``frame_blocks`` residual blocks, a
    stride-2 conv to 1/4); each output frame fuses the 1/4 features of its window (1x1 conv,
    then ``fuse_blocks`` residual blocks whose 3x3 kernels absorb small misalignments), goes
    down to 1/8 for ``mid_blocks`` residual blocks, and back up with skips (the fused 1/4
    features, then the centre frame's 1/2 features) to a residual added to the centre frame.
    The last convolution and the second convolution of every residual block start at zero, so
    the untrained network is the identity.

    Args:
        config: architecture; default :class:`ReferenceUNetConfig()`.

    Shape:
        - Input: ``(B, T, 3, H, W)`` RGB in ``[0, 1]``, ``T >= past + future + 1``, ``H`` and
          ``W`` multiples of 8.
        - Output: ``(B, T - past - future, 3, H, W)``; output frame ``k`` restores input frame
          ``k + past``.

    Example:
        >>> import torch
        >>> from ttblur.nets.reference import ReferenceUNet, ReferenceUNetConfig
        >>> net = ReferenceUNet(ReferenceUNetConfig(widths=(8, 8, 16), mid_blocks=1))
        >>> net(torch.rand(1, 6, 3, 16, 24)).shape
        torch.Size([1, 2, 3, 16, 24])
    """

    config_class = ReferenceUNetConfig
    default_weights = "reference-base"
    config: ReferenceUNetConfig

    def __init__(self, config: ReferenceUNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ReferenceUNetConfig()
        c1, c2, c3 = cfg.widths
        window = cfg.past_frames + cfg.future_frames + 1
        slope = cfg.negative_slope

        def block(channels: int) -> _ResBlock | _GatedBlock:
            if cfg.block == "gated":
                return _GatedBlock(channels)
            return _ResBlock(channels, slope)

        def blocks(channels: int, count: int) -> nn.Sequential:
            return nn.Sequential(*[block(channels) for _ in range(count)])

        self.stem = nn.Conv2d(3 * 4, c1, 3, padding=1)
        self.frame_body = blocks(c1, cfg.frame_blocks)
        self.enc2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.fuse = nn.Conv2d(window * c2, c2, 1)
        self.fuse_body = blocks(c2, cfg.fuse_blocks)
        self.down = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.mid_body = blocks(c3, cfg.mid_blocks)
        self.up3 = nn.Conv2d(c3, 4 * c2, 1)
        self.dec2_body = blocks(c2, cfg.dec_blocks[0])
        self.up2 = nn.Conv2d(c2, 4 * c1, 1)
        self.dec1_body = blocks(c1, cfg.dec_blocks[1])
        self.out = nn.Conv2d(c1, 3 * 4, 3, padding=1)
        # Every residual branch and the output start at zero: the network starts as the
        # identity and each block as a pass-through, which keeps the 13 unnormalised residual
        # blocks stable under Adam (a first run with default init diverged at step ~580).
        nn.init.zeros_(self.out.weight)
        if self.out.bias is not None:
            nn.init.zeros_(self.out.bias)
        for module in self.modules():
            if isinstance(module, (_ResBlock, _GatedBlock)):
                module.zero_branch()

    def forward(self, x: Tensor) -> Tensor:
        """Restore the centre frames of a clip (see the class docstring for shapes)."""
        count = self._check_clip(x)
        past = self.config.past_frames
        batch, frames, _, height, width = x.shape
        flat = x.reshape(batch * frames, 3, height, width)
        e1 = self.frame_body(self._act(self.stem(F.pixel_unshuffle(flat, 2))))
        e2 = self._act(self.enc2(e1))
        e1 = e1.reshape(batch, frames, *e1.shape[1:])
        e2 = e2.reshape(batch, frames, *e2.shape[1:])
        fused = self.fuse_body(self._act(self.fuse(self._windows(e2, count))))
        deep = self.mid_body(self._act(self.down(fused)))
        y = self.dec2_body(F.pixel_shuffle(self.up3(deep), 2) + fused)
        centre_e1 = e1[:, past : past + count].flatten(0, 1)
        y = self.dec1_body(F.pixel_shuffle(self.up2(y), 2) + centre_e1)
        residual = F.pixel_shuffle(self.out(y), 2)
        centre = x[:, past : past + count].flatten(0, 1)
        return (centre + residual).reshape(batch, count, 3, height, width)


#: Shipped reference networks: name -> (class, folder under ``ttblur/weights/``).
REFERENCE_MODELS: dict[str, tuple[type[_ClipDeblurNet], str]] = {
    "tiny": (ReferenceDeblurNet, "reference"),
    "base": (ReferenceUNet, "reference-base"),
}
#: Every reference architecture a weights folder's ``config.json`` may name.
_REFERENCE_CLASSES: tuple[type[_ClipDeblurNet], ...] = (ReferenceDeblurNet, ReferenceUNet)


#: The reference network :func:`reference_model` loads when no name is given.
DEFAULT_REFERENCE = "tiny"

ReferenceNet = ReferenceDeblurNet | ReferenceUNet


def _class_named(name: object) -> type[_ClipDeblurNet]:
    """The reference class a ``config.json`` names in ``"_class_name"`` (``"tiny"``'s class
    when it names none or an unknown one; ``parse_config`` then reports the mismatch)."""
    for cls in _REFERENCE_CLASSES:
        if cls.__name__ == name:
            return cls
    return ReferenceDeblurNet


def reference_tiny() -> ReferenceDeblurNet:
    """The shipped ``"tiny"`` network (``reference_model("tiny")``); ``--model tiny``."""
    return ReferenceDeblurNet.from_pretrained()


def reference_base() -> ReferenceUNet:
    """The shipped ``"base"`` network (``reference_model("base")``); ``--model base``."""
    return ReferenceUNet.from_pretrained()


def reference_model(
    weights: str | Path | None = None,
    *,
    revision: str | None = None,
    map_location: str | torch.device = "cpu",
) -> ReferenceNet:
    """Load a reference deblurring network (eval mode).

    Args:
        weights: ``None`` loads :data:`DEFAULT_REFERENCE`; a name of :data:`REFERENCE_MODELS`
            (``"tiny"``, ``"base"``) loads that network's weights shipped inside the package
            (no network access); otherwise a local
            folder with ``config.json`` + ``model.safetensors`` or a Hugging Face Hub repo id,
            whose ``config.json`` names the class (:class:`ReferenceUNet` or
            :class:`ReferenceDeblurNet`).
        revision: Hub revision for a repo id.
        map_location: device the weights are loaded to.

    Returns:
        the network; its calling convention is ``model.spec``.

    Raises:
        ttblur.io.weights.WeightsNotFoundError: (a ``FileNotFoundError``) the weights cannot be
            found, e.g. a repo id that is neither reachable nor in the Hub cache.
        ttblur.io.weights.InvalidWeightsError: (a ``ValueError``) the files are corrupt or do not
            match the architecture.

    See ``docs/weights.md``; ``save_pretrained`` / ``push_to_hub`` write and publish the
    same files.
    """
    name = DEFAULT_REFERENCE if weights is None else weights
    if isinstance(name, str) and name in REFERENCE_MODELS:
        cls, _ = REFERENCE_MODELS[name]
        return cls.from_pretrained(None, map_location=map_location)  # type: ignore[return-value]
    if isinstance(name, str) and "/" not in name and not Path(name).expanduser().exists():
        raise ValueError(
            f"unknown reference network {name!r}: a shipped name ("
            f"{', '.join(map(repr, REFERENCE_MODELS))}), a weights folder or a Hugging Face Hub "
            "repo id (owner/name)"
        )
    folder = resolve_pretrained(name, default=None, revision=revision)
    raw = read_config_json(folder)
    assert raw is not None  # required=True raises instead
    cls = _class_named(raw.get(CLASS_KEY))
    config = parse_config(raw, folder, cls.__name__, cls.config_class)
    return cls.from_folder(folder, config=config, map_location=map_location)  # type: ignore[return-value]
