"""Blur Magnitude Estimator (BME): per-pixel blur magnitude of a blurry frame, in pixels.

The paper's BME (Sec. 3.2 of "Domain-Adaptive Video Deblurring via Test-Time Blurring") is a
five-stage encoder-decoder with multi-scale feature fusion, trained with an L1 loss on ground-truth
blur magnitude maps divided by a fixed scale (205 px in the official code). This module provides
it in two configurations of the same topology:

* ``"paper"``: a ResNet-50 encoder (bottleneck blocks, layer names identical to torchvision's
  ``resnet50``, so an ImageNet state dict loads through ``encoder_weights=``; nothing is ever
  downloaded), fusion width 64, decoders of five residual blocks (28 M parameters).
* ``"lite"`` (the shipped default ``bme-lite``): a full-resolution conv3x3 stem (16 channels)
  and five stride-2 conv3x3 stages of widths 16-24-32-48-64 (residual blocks in stages 1-3),
  fusion width 16, one residual block per decoder stage (0.32 M parameters, 1.3 MB; about
  0.45 s for a 1280x720 frame on one CPU thread), trained on synthetic videos
  (``docs/rsdm.md``).

Both use BatchNorm (``BMEConfig.norm``), LeakyReLU(0.2) and RGB input.

Topology (``E_s`` encoder features at stride ``2^(s+1)``, ``s = 0..4``)::

    frames -> normalise -> reflect-pad to a multiple of 32
    encoder:   E_0 (/2), E_1 (/4), E_2 (/8), E_3 (/16), E_4 (/32)
    fusion:    P_s = conv3x3(E_s) -> fusion_width channels
               Z_s = conv3x3(act(conv1x1(concat(P_a, P_b, P_c) resampled to stride s)))
               with (a, b, c) = (0, 1, 2) for s = 0, (2, 3, 4) for s = 4, else (s-1, s, s+1)
               (bilinear up-sampling, average-pool down-sampling)
    decoder:   D_4 = ResBlocks(conv1x1(Z_4))
               D_s = ResBlocks(act(conv1x1(concat(ConvT4x4/2(D_{s+1}), Z_s))))   s = 3..0
    head:      ConvT4x4/2(D_0) -> act -> conv1x1 -> 1 channel at full resolution
    crop back to H x W

``forward`` returns the map in training space (magnitude / ``mag_norm``, clamped to [0, 1]);
:meth:`BlurMagnitudeEstimator.predict` returns pixels.

Example:
    >>> import torch
    >>> from ttblur.nets.bme import BlurMagnitudeEstimator, BMEConfig
    >>> bme = BlurMagnitudeEstimator(BMEConfig(variant="lite"))
    >>> bme.predict(torch.rand(2, 3, 37, 50)).shape
    torch.Size([2, 1, 37, 50])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from ttblur.io.weights import PretrainedMixin

__all__ = [
    "BMEConfig",
    "BlurMagnitudeEstimator",
    "ResNet50Encoder",
    "validate_frames",
]

#: Spatial multiple the network pads its input to (five stride-2 stages).
MULTIPLE = 32
_RANGE_TOL = 1e-4
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_RESNET50_WIDTHS = (64, 256, 512, 1024, 2048)

_VARIANT_DEFAULTS: dict[str, dict[str, object]] = {
    "paper": {
        "encoder_widths": _RESNET50_WIDTHS,
        "encoder_blocks": (0, 3, 4, 6, 3),
        "fusion_width": 64,
        "fused_widths": (32, 64, 64, 64, 64),
        "decoder_widths": (32, 32, 64, 64, 64),
        "decoder_blocks": 5,
        "head_width": 32,
        "norm": "batch",
        "stem_width": 0,
        "input_mean": _IMAGENET_MEAN,
        "input_std": _IMAGENET_STD,
    },
    "lite": {
        "encoder_widths": (16, 24, 32, 48, 64),
        "encoder_blocks": (0, 1, 1, 1, 0),
        "fusion_width": 16,
        "fused_widths": (8, 16, 24, 32, 32),
        "decoder_widths": (8, 16, 24, 32, 32),
        "decoder_blocks": 1,
        "head_width": 8,
        "norm": "batch",
        "stem_width": 16,
        "input_mean": (0.5, 0.5, 0.5),
        "input_std": (0.25, 0.25, 0.25),
    },
}


class BMEConfig(BaseModel):
    """Architecture and output scale of :class:`BlurMagnitudeEstimator` (``config.json``).

    Fields left ``None`` take the defaults of ``variant`` when the config is built, so a saved
    config always lists every value.

    Attributes:
        variant: ``"paper"`` (ResNet-50 encoder) or ``"lite"`` (small from-scratch encoder).
        mag_norm: pixels that map to 1 in training space: targets are ``magnitude / mag_norm``
            and predictions are ``clamp(out, 0, 1) * mag_norm`` px (official code: 205).
        encoder_widths: channels of the five encoder stages (strides 2..32). Fixed to
            ResNet-50's ``(64, 256, 512, 1024, 2048)`` for ``"paper"``.
        encoder_blocks: residual blocks per encoder stage (``"lite"``); for ``"paper"`` the
            bottleneck counts of ResNet-50 ``(0, 3, 4, 6, 3)`` (stage 0 is the stem), fixed.
        fusion_width: channels every encoder stage is projected to before fusion.
        fused_widths: output channels of the fusion at each of the five strides.
        decoder_widths: channels of the decoder at each of the five strides.
        decoder_blocks: residual blocks per decoder stage (official: 5).
        head_width: channels of the final transposed convolution to full resolution.
        norm: ``"batch"`` (BatchNorm after every convolution of the encoder and the residual
            blocks, as the official code; it trains much faster from scratch) or ``"none"``
            (plain convolutions with biases).
        stem_width: ``"lite"`` only: channels of a full-resolution conv3x3 before the first
            stride-2 stage (0: none), keeping the finest detail that blur erases.
        negative_slope: LeakyReLU slope of fusion, decoder and head.
        input_mean, input_std: per-channel RGB normalisation applied to ``[0, 1]`` inputs
            (ImageNet statistics for ``"paper"``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: Literal["paper", "lite"] = "lite"
    mag_norm: float = Field(default=205.0, gt=0.0)
    encoder_widths: tuple[int, int, int, int, int] | None = None
    encoder_blocks: tuple[int, int, int, int, int] | None = None
    fusion_width: int | None = Field(default=None, gt=0)
    fused_widths: tuple[int, int, int, int, int] | None = None
    decoder_widths: tuple[int, int, int, int, int] | None = None
    decoder_blocks: int | None = Field(default=None, ge=0)
    head_width: int | None = Field(default=None, gt=0)
    norm: Literal["batch", "none"] | None = None
    stem_width: int | None = Field(default=None, ge=0)
    negative_slope: float = Field(default=0.2, ge=0.0, lt=1.0)
    input_mean: tuple[float, float, float] | None = None
    input_std: tuple[float, float, float] | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_variant_defaults(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        variant = data.get("variant", "lite")
        defaults = _VARIANT_DEFAULTS.get(str(variant))
        if defaults is None:
            return data  # the Literal check reports the bad variant
        filled = dict(data)
        for key, value in defaults.items():
            if filled.get(key) is None:
                filled[key] = value
        return filled

    @model_validator(mode="after")
    def _check(self) -> BMEConfig:
        for name in ("encoder_widths", "fused_widths", "decoder_widths"):
            widths = getattr(self, name)
            if widths is None or min(widths) < 1:
                raise ValueError(f"{name} must be five positive ints, got {widths}")
        if self.encoder_blocks is None or min(self.encoder_blocks) < 0:
            raise ValueError(f"encoder_blocks must be five ints >= 0, got {self.encoder_blocks}")
        if self.input_std is None or min(self.input_std) <= 0:
            raise ValueError(f"input_std must be positive, got {self.input_std}")
        if self.variant == "paper":
            if tuple(self.encoder_widths or ()) != _RESNET50_WIDTHS:
                raise ValueError(
                    f"variant 'paper' uses ResNet-50 widths {_RESNET50_WIDTHS}, "
                    f"got encoder_widths={self.encoder_widths}"
                )
            if self.stem_width:
                raise ValueError("stem_width is a 'lite' option; the ResNet-50 has its own stem")
            if tuple(self.encoder_blocks) != (0, 3, 4, 6, 3):
                raise ValueError(
                    "variant 'paper' uses ResNet-50 blocks (0, 3, 4, 6, 3), "
                    f"got encoder_blocks={self.encoder_blocks}"
                )
        return self


def validate_frames(frames: Tensor, name: str = "frames") -> None:
    """Check a batch of RGB frames.

    Args:
        frames: must be a floating point ``(N, 3, H, W)`` tensor, finite, in ``[0, 1]``
            (1e-4 tolerance), ``H, W >= 1``.

    Raises:
        ValueError: naming the first violated requirement.
    """
    if not isinstance(frames, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"{name} must be (N, 3, H, W), got shape {tuple(frames.shape)}")
    if not frames.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got {frames.dtype}")
    if frames.shape[2] < 1 or frames.shape[3] < 1:
        raise ValueError(f"{name} must have H, W >= 1, got {tuple(frames.shape)}")
    if frames.shape[0] == 0:
        return
    low_t, high_t = torch.aminmax(frames.detach())
    low, high = float(low_t), float(high_t)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or inf")
    if low < -_RANGE_TOL or high > 1 + _RANGE_TOL:
        raise ValueError(f"{name} must be RGB in [0, 1], got values in [{low:.4g}, {high:.4g}]")


# --------------------------------------------------------------------------------------------
# building blocks


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.Identity()


class _ConvNormAct(nn.Sequential):
    """conv3x3 (stride ``stride``) -> BatchNorm (``norm="batch"``) -> LeakyReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, slope: float) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=norm != "batch"),
            _norm(norm, c_out),
            nn.LeakyReLU(slope, inplace=True),
        )


class _ResBlock(nn.Module):
    """``act(x + N(conv3x3(act(N(conv3x3(x))))))``, ``N`` BatchNorm or identity."""

    def __init__(self, channels: int, slope: float, norm: str = "batch") -> None:
        super().__init__()
        bias = norm != "batch"
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.bn1 = _norm(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.bn2 = _norm(norm, channels)
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        y = F.leaky_relu(self.bn1(self.conv1(x)), self.slope)
        return F.leaky_relu(x + self.bn2(self.conv2(y)), self.slope)


class _Bottleneck(nn.Module):
    """ResNet-50 bottleneck (stride on the 3x3 conv), torchvision's parameter names."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class ResNet50Encoder(nn.Module):
    """ResNet-50 without its classifier, returning the five feature maps of strides 2..32.

    Parameter names match torchvision's ``resnet50`` (``conv1``, ``bn1``, ``layer1`` ..
    ``layer4``), so :meth:`load_torchvision` accepts its ImageNet state dict.

    ``forward(x (N, 3, H, W)) -> [E_0 (N, 64, H/2, W/2), E_1 (N, 256, H/4, W/4),
    E_2 (N, 512, H/8, W/8), E_3 (N, 1024, H/16, W/16), E_4 (N, 2048, H/32, W/32)]``
    for ``H, W`` multiples of 32.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._layer(64, 64, 3, 1)
        self.layer2 = self._layer(256, 128, 4, 2)
        self.layer3 = self._layer(512, 256, 6, 2)
        self.layer4 = self._layer(1024, 512, 3, 2)

    @staticmethod
    def _layer(c_in: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [_Bottleneck(c_in, planes, stride)]
        layers += [_Bottleneck(planes * _Bottleneck.expansion, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        e0 = self.relu(self.bn1(self.conv1(x)))
        e1 = self.layer1(self.maxpool(e0))
        e2 = self.layer2(e1)
        e3 = self.layer3(e2)
        e4 = self.layer4(e3)
        return [e0, e1, e2, e3, e4]

    def load_torchvision(self, path: str | Path) -> None:
        """Load a torchvision ``resnet50`` state dict (``.safetensors``, ``.pth`` or ``.pt``).

        ``.pth``/``.pt`` files are read with ``torch.load(weights_only=True)`` (tensors only,
        no arbitrary objects). The classifier (``fc.*``) is ignored; every other key must match
        exactly.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: missing, unexpected or mis-shaped keys.
        """
        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"no encoder weights file at '{file}'")
        loaded: object
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded = load_file(str(file))
        else:
            loaded = torch.load(str(file), map_location="cpu", weights_only=True)
            if isinstance(loaded, dict) and "state_dict" in loaded:
                loaded = loaded["state_dict"]
        if not isinstance(loaded, dict):
            raise ValueError(f"{file} does not hold a state dict")
        state = {
            str(k).removeprefix("module."): v
            for k, v in loaded.items()
            if not str(k).removeprefix("module.").startswith("fc.")
        }
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or shapes:
            raise ValueError(
                f"{file} is not a torchvision resnet50 state dict: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}, shape mismatch {shapes[:5]}"
            )
        self.load_state_dict(state, strict=True)


class _LiteEncoder(nn.Module):
    """Optional full-resolution ``conv3x3 -> act`` stem (``stem_width > 0``), then five stages,
    each ``conv3x3/2 -> norm -> act`` and ``blocks[s]`` residual blocks."""

    def __init__(
        self,
        widths: Sequence[int],
        blocks: Sequence[int],
        slope: float,
        norm: str,
        stem_width: int,
    ) -> None:
        super().__init__()
        self.stem: nn.Module = nn.Identity()
        c_in = 3
        if stem_width > 0:
            self.stem = _ConvNormAct(3, stem_width, 1, norm, slope)
            c_in = stem_width
        stages = []
        for width, count in zip(widths, blocks):
            stages.append(
                nn.Sequential(
                    _ConvNormAct(c_in, width, 2, norm, slope),
                    *[_ResBlock(width, slope, norm) for _ in range(count)],
                )
            )
            c_in = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def _resample(x: Tensor, source: int, target: int) -> Tensor:
    """Move a feature map from stride level ``source`` to ``target`` (levels differ by 2x)."""
    if source == target:
        return x
    if source > target:  # coarser -> finer
        return F.interpolate(
            x, scale_factor=float(2 ** (source - target)), mode="bilinear", align_corners=False
        )
    k = 2 ** (target - source)
    return F.avg_pool2d(x, k, stride=k)


class _MultiScaleFusion(nn.Module):
    """Fuses each stride level with its two nearest levels (see the module docstring)."""

    def __init__(
        self, in_widths: Sequence[int], width: int, out_widths: Sequence[int], slope: float
    ) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(c, width, 3, padding=1) for c in in_widths)
        self.mix = nn.ModuleList(nn.Conv2d(3 * width, 3 * width, 1) for _ in in_widths)
        self.out = nn.ModuleList(nn.Conv2d(3 * width, c, 3, padding=1) for c in out_widths)
        self.slope = slope
        last = len(in_widths) - 1
        # first of the three consecutive levels fused into level s
        self.sources = [max(0, min(s - 1, last - 2)) for s in range(last + 1)]

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        projected = [conv(f) for conv, f in zip(self.project, features)]
        fused = []
        for level, start in enumerate(self.sources):
            group = [_resample(projected[j], j, level) for j in range(start, start + 3)]
            mixed = F.leaky_relu(self.mix[level](torch.cat(group, dim=1)), self.slope)
            fused.append(self.out[level](mixed))
        return fused


class _Merge(nn.Module):
    """Up-sample the coarser decoder output (ConvT 4x4/2), concat the skip, conv1x1 + act."""

    def __init__(self, c_coarse: int, c_skip: int, c_out: int, slope: float) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(c_coarse, c_coarse, 4, stride=2, padding=1)
        self.conv = nn.Conv2d(c_coarse + c_skip, c_out, 1)
        self.slope = slope

    def forward(self, coarse: Tensor, skip: Tensor) -> Tensor:
        up = self.up(coarse)
        return F.leaky_relu(self.conv(torch.cat((up, skip), dim=1)), self.slope)


# --------------------------------------------------------------------------------------------
# the estimator


class BlurMagnitudeEstimator(PretrainedMixin, nn.Module):
    """Per-pixel blur magnitude of blurry RGB frames (the paper's BME).

    Args:
        config: architecture and output scale; default ``BMEConfig()`` (the ``"lite"``
            variant).
        encoder_weights: path of a torchvision ``resnet50`` ImageNet state dict
            (``.safetensors`` / ``.pth``) to initialise the ``"paper"`` encoder with. Never
            downloaded; ``ValueError`` for the ``"lite"`` variant.

    ``from_pretrained()`` with no argument loads the shipped ``bme-lite`` weights (trained on
    synthetic videos of every ``ttblur.synth`` preset, see ``docs/rsdm.md``);
    ``from_pretrained(folder_or_repo_id, revision=None)``, ``save_pretrained(folder)`` and
    ``push_to_hub(repo_id)`` come from :class:`~ttblur.io.weights.PretrainedMixin`
    (``docs/weights.md``).

    Example:
        >>> import torch
        >>> from ttblur import BlurMagnitudeEstimator
        >>> bme = BlurMagnitudeEstimator()
        >>> out = bme(torch.rand(1, 3, 64, 64))
        >>> out.shape, bool(out.min() >= 0), bool(out.max() <= 1)
        (torch.Size([1, 1, 64, 64]), True, True)
    """

    config_class = BMEConfig
    default_weights = "bme-lite"
    multiple = MULTIPLE
    _mean: Tensor
    _std: Tensor

    def __init__(
        self, config: BMEConfig | None = None, *, encoder_weights: str | Path | None = None
    ) -> None:
        super().__init__()
        self.config = config or BMEConfig()
        cfg = self.config
        assert cfg.encoder_widths and cfg.encoder_blocks and cfg.fused_widths  # filled by config
        assert cfg.decoder_widths and cfg.fusion_width and cfg.head_width
        assert cfg.decoder_blocks is not None and cfg.input_mean and cfg.input_std
        slope = cfg.negative_slope
        norm = cfg.norm or "batch"
        self.encoder: nn.Module
        if cfg.variant == "paper":
            self.encoder = ResNet50Encoder()
            if encoder_weights is not None:
                self.encoder.load_torchvision(encoder_weights)
        else:
            if encoder_weights is not None:
                raise ValueError("encoder_weights (a torchvision resnet50) needs variant='paper'")
            self.encoder = _LiteEncoder(
                cfg.encoder_widths, cfg.encoder_blocks, slope, norm, cfg.stem_width or 0
            )
        self.fusion = _MultiScaleFusion(
            cfg.encoder_widths, cfg.fusion_width, cfg.fused_widths, slope
        )
        dec = cfg.decoder_widths
        fused = cfg.fused_widths
        self.bottom = nn.Sequential(
            nn.Conv2d(fused[4], dec[4], 1),
            *[_ResBlock(dec[4], slope, norm) for _ in range(cfg.decoder_blocks)],
        )
        self.merges = nn.ModuleList(_Merge(dec[s + 1], fused[s], dec[s], slope) for s in range(4))
        self.decoders = nn.ModuleList(
            nn.Sequential(*[_ResBlock(dec[s], slope, norm) for _ in range(cfg.decoder_blocks)])
            for s in range(4)
        )
        self.head_up = nn.ConvTranspose2d(dec[0], cfg.head_width, 4, stride=2, padding=1)
        self.head = nn.Conv2d(cfg.head_width, 1, 1)
        # start near "slightly blurred" (2 px) rather than at a random offset of tens of px
        assert self.head.bias is not None
        nn.init.constant_(self.head.bias, 2.0 / cfg.mag_norm)
        mean = torch.tensor(cfg.input_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(cfg.input_std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("_mean", mean, persistent=False)
        self.register_buffer("_std", std, persistent=False)

    @property
    def mag_norm(self) -> float:
        """Pixels that map to 1 in training space."""
        return float(self.config.mag_norm)

    @property
    def device(self) -> torch.device:
        """Device of the module's parameters."""
        return next(self.parameters()).device

    def extra_repr(self) -> str:
        params = sum(p.numel() for p in self.parameters())
        return f"variant={self.config.variant!r}, mag_norm={self.mag_norm}, params={params}"

    def _raw(self, frames: Tensor) -> Tensor:
        """Un-clamped network output ``(N, 1, H, W)`` in training space (no input checks)."""
        height, width = frames.shape[-2:]
        x = (frames - self._mean.to(frames.dtype)) / self._std.to(frames.dtype)
        pad_h, pad_w = (-height) % MULTIPLE, (-width) % MULTIPLE
        if pad_h or pad_w:
            # reflect needs pad < size; tiny frames fall back to edge replication
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        # channels-last activations run about 30% faster on CPU (oneDNN), same numbers
        x = x.contiguous(memory_format=torch.channels_last)
        encoded = self.encoder(x)
        fused = self.fusion(encoded)
        y = self.bottom(fused[4])
        for s in range(3, -1, -1):
            y = self.decoders[s](self.merges[s](y, fused[s]))
        y = F.leaky_relu(self.head_up(y), self.config.negative_slope)
        y = self.head(y)
        return y[..., :height, :width].contiguous()

    def forward(self, frames: Tensor, *, clamp: bool = True) -> Tensor:
        """Blur magnitude in training space.

        Args:
            frames: ``(N, 3, H, W)`` float RGB in ``[0, 1]``, any ``H, W >= 1`` (padded
                internally to a multiple of 32 by reflection, cropped back), any float dtype
                (computed in the parameters' dtype).
            clamp: clamp to ``[0, 1]`` (default). Training uses ``clamp=False`` so that the L1
                loss keeps a gradient for outputs outside the range.

        Returns:
            ``(N, 1, H, W)``: magnitude / ``mag_norm``, in ``[0, 1]`` when ``clamp``.

        Raises:
            ValueError: wrong rank / channels, non-float dtype, NaN/inf or values outside
                ``[0, 1]``.
        """
        validate_frames(frames)
        out = self._raw(frames.to(next(self.parameters()).dtype))  # float16 / 64 accepted
        return out.clamp(0.0, 1.0) if clamp else out

    @torch.no_grad()
    def predict(self, frames: Tensor, *, batch_size: int = 8) -> Tensor:
        """Blur magnitude maps in pixels.

        Runs in eval mode under ``torch.no_grad`` on the module's device, ``batch_size``
        frames at a time (the training mode is restored afterwards).

        Args:
            frames: ``(N, 3, H, W)`` float RGB in ``[0, 1]`` on any device.
            batch_size: frames per forward pass (> 0).

        Returns:
            ``(N, 1, H, W)`` float32 blur magnitude in pixels, in ``[0, mag_norm]``, on the
            device of ``frames``.

        Raises:
            ValueError: invalid ``frames`` (see :meth:`forward`) or ``batch_size <= 0``.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        validate_frames(frames)
        param = next(self.parameters())
        was_training = self.training
        self.eval()
        try:
            outputs = []
            for start in range(0, frames.shape[0], batch_size):
                # The network's own dtype: a module built under torch.set_default_dtype(float64)
                # holds float64 weights.
                chunk = frames[start : start + batch_size].to(param.device, param.dtype)
                out = self._raw(chunk).clamp(0.0, 1.0) * self.mag_norm
                outputs.append(out.to(frames.device, torch.float32))
        finally:
            self.train(was_training)
        if not outputs:
            return torch.zeros(0, 1, *frames.shape[-2:], device=frames.device, dtype=torch.float32)
        return torch.cat(outputs)
