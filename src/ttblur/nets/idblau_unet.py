"""The ID-Blau noise-prediction UNet.

Input: the noisy blurry image ``x_t``, the sharp image and the blur condition map,
concatenated along channels (``3 + 3 + 3 = 9``), plus an integer diffusion timestep per sample.
Output: the predicted noise ``(N, 3, H, W)``.

Value conventions (those of the official ID-Blau code): images are RGB shifted to
``[-0.5, 0.5]``; the condition is passed as it is, x and y the unit blur direction in
``[-1, 1]`` and z = ``min(M / mag_norm, 1)`` in ``[0, 1]`` (the official model was trained
with ``mag_norm = 147`` px, kept here in :attr:`IDBlauConfig.mag_norm`).

Architecture (sizes of the official configuration, :meth:`IDBlauConfig.official`): a 3x3 input
convolution to 64 channels; per level (channel multipliers 1, 2, 3) two residual blocks
(SiLU, conv, + time projection, SiLU, dropout, conv, + skip) and a stride-2 convolution
between levels; two middle blocks; a mirrored decoder with one block more per level fed with
the encoder skips and nearest-neighbour upsampling + conv; SiLU and a conv to 3 channels. The
timestep goes through a sinusoidal embedding of size ``base_channels`` and a two-layer MLP to
``time_dim = 256``.

Normalisation: like the official blocks, none by default. ``norm_groups > 0`` puts a
GroupNorm before each SiLU. It is off by default on evidence: GroupNorm removes each feature
group's spatial mean, i.e. exactly the image-wide offset the noise prediction must reproduce
to the 1e-4 level at high ``t`` and the spatially uniform condition maps of camera shake; with
it a small model's DDIM samples drifted in brightness (15-20 dB against the target after
30k steps) where the norm-free one reached 26 dB after 6k (``docs/blur-synthesis.md``).

Example:
    >>> import torch
    >>> from ttblur.nets.idblau_unet import IDBlauConfig, IDBlauUNet
    >>> net = IDBlauUNet(IDBlauConfig.small())
    >>> x = torch.zeros(2, 9, 32, 32)
    >>> net(x, torch.tensor([0, 1999])).shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from ttblur.io.weights import PretrainedMixin

__all__ = ["IDBlauConfig", "IDBlauUNet", "timestep_embedding"]


class IDBlauConfig(BaseModel):
    """Architecture of :class:`IDBlauUNet` plus the diffusion and condition scales it was
    trained with (so that a weights folder is self-describing).

    Attributes:
        in_channels: input channels (noisy blurry 3 + sharp 3 + condition 3).
        out_channels: predicted noise channels.
        base_channels: width of the first level.
        channel_mults: width multiplier of each level.
        num_res_blocks: residual blocks per encoder level (decoder: one more).
        time_dim: width of the timestep embedding MLP.
        dropout: dropout inside residual blocks.
        norm_groups: GroupNorm groups before each SiLU (0, the default: no normalisation,
            as the official blocks).
        num_train_timesteps, beta_start, beta_end: the linear noise schedule.
        mag_norm: pixels that map to condition z = 1 in the training data.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    in_channels: int = Field(default=9, gt=0)
    out_channels: int = Field(default=3, gt=0)
    base_channels: int = Field(default=64, gt=0)
    channel_mults: tuple[int, ...] = (1, 2, 3)
    num_res_blocks: int = Field(default=2, gt=0)
    time_dim: int = Field(default=256, gt=0)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    norm_groups: int = Field(default=0, ge=0)
    num_train_timesteps: int = Field(default=2000, ge=2)
    beta_start: float = Field(default=1e-6, gt=0.0, lt=1.0)
    beta_end: float = Field(default=1e-2, gt=0.0, lt=1.0)
    mag_norm: float = Field(default=147.0, gt=0.0)

    @model_validator(mode="after")
    def _check(self) -> IDBlauConfig:
        if not self.channel_mults or any(m <= 0 for m in self.channel_mults):
            raise ValueError(f"channel_mults must be positive, got {self.channel_mults}")
        if self.base_channels % 2:
            raise ValueError(f"base_channels must be even, got {self.base_channels}")
        if self.norm_groups and self.base_channels % self.norm_groups:
            raise ValueError(
                f"base_channels ({self.base_channels}) must be divisible by norm_groups "
                f"({self.norm_groups})"
            )
        if self.beta_start > self.beta_end:
            raise ValueError(f"beta_start {self.beta_start} > beta_end {self.beta_end}")
        return self

    @classmethod
    def official(cls) -> IDBlauConfig:
        """The published ID-Blau network: 64 channels, mults (1, 2, 3), 2 blocks, time 256,
        SiLU, no normalisation (9,498,627 parameters)."""
        return cls()

    @classmethod
    def small(cls) -> IDBlauConfig:
        """A small network for CPU tests and quick experiments (16 channels, 2 levels)."""
        return cls(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, time_dim=64)

    @classmethod
    def preset(cls, name: Literal["official", "small"]) -> IDBlauConfig:
        """Configuration by name: ``"official"`` or ``"small"``."""
        presets = {"official": cls.official, "small": cls.small}
        if name not in presets:
            raise ValueError(f"unknown IDBlauConfig preset {name!r}; choose from {sorted(presets)}")
        return presets[name]()

    @property
    def spatial_multiple(self) -> int:
        """Height and width must be multiples of this (one halving per level transition)."""
        return 2 ** (len(self.channel_mults) - 1)


def timestep_embedding(timesteps: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of integer timesteps.

    Args:
        timesteps: ``(N,)`` integer or float timesteps.
        dim: even embedding size.

    Returns:
        ``(N, dim)`` float32: ``[sin(t w_k), cos(t w_k)]`` with ``w_k = 10000^(-k / (dim/2))``.
    """
    half = dim // 2
    freqs = torch.exp(
        torch.arange(half, device=timesteps.device, dtype=torch.float32)
        * (-math.log(10000.0) / half)
    )
    angles = timesteps.float()[:, None] * freqs[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


def _norm(channels: int, groups: int) -> nn.Module:
    return nn.GroupNorm(groups, channels) if groups else nn.Identity()


class _ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, time_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = _norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, out_ch)
        self.norm2 = _norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.time_proj(self.act(emb))[:, :, None, None]
        h = self.conv2(self.dropout(self.act(self.norm2(h))))
        return h + self.skip(x)


class _Down(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _Up(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


class IDBlauUNet(PretrainedMixin, nn.Module):
    """Noise predictor of the ID-Blau conditional diffusion blur model.

    Args:
        config: architecture (see :class:`IDBlauConfig`); default: the official sizes.

    Call ``net(x, timesteps)`` with ``x`` ``(N, 9, H, W)`` = ``[x_t, sharp, condition]`` (images
    in ``[-0.5, 0.5]``, condition as described in the module docstring) and ``timesteps``
    ``(N,)`` integers in ``[0, T)``; ``H`` and ``W`` multiples of
    :attr:`IDBlauConfig.spatial_multiple`. Returns the predicted noise ``(N, 3, H, W)``.
    """

    config_class: ClassVar[type[BaseModel]] = IDBlauConfig
    default_weights: ClassVar[str | None] = "idblau"

    def __init__(self, config: IDBlauConfig | None = None) -> None:
        super().__init__()
        config = config if config is not None else IDBlauConfig.official()
        self.config = config
        base, groups, tdim = config.base_channels, config.norm_groups, config.time_dim
        self.time_mlp = nn.Sequential(nn.Linear(base, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.input_conv = nn.Conv2d(config.in_channels, base, 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels = [base]
        channels = base
        last = len(config.channel_mults) - 1
        for level, mult in enumerate(config.channel_mults):
            out = base * mult
            for _ in range(config.num_res_blocks):
                self.down.append(_ResBlock(channels, out, tdim, config.dropout, groups))
                channels = out
                skip_channels.append(channels)
            if level != last:
                self.down.append(_Down(channels))
                skip_channels.append(channels)

        self.mid = nn.ModuleList(
            [_ResBlock(channels, channels, tdim, config.dropout, groups) for _ in range(2)]
        )

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mults))):
            out = base * mult
            for _ in range(config.num_res_blocks + 1):
                self.up.append(
                    _ResBlock(skip_channels.pop() + channels, out, tdim, config.dropout, groups)
                )
                channels = out
            if level != 0:
                self.up.append(_Up(channels))

        self.output = nn.Sequential(
            _norm(channels, groups),
            nn.SiLU(),
            nn.Conv2d(channels, config.out_channels, 3, padding=1),
        )

    def forward(self, x: Tensor, timesteps: Tensor) -> Tensor:
        """Predict the noise.

        Args:
            x: ``(N, in_channels, H, W)`` float.
            timesteps: ``(N,)`` integer timesteps (a scalar tensor is broadcast).

        Returns:
            ``(N, out_channels, H, W)``.
        """
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must be (N, {cfg.in_channels}, H, W), got shape {tuple(x.shape)}")
        multiple = cfg.spatial_multiple
        if x.shape[2] % multiple or x.shape[3] % multiple:
            raise ValueError(
                f"H and W must be multiples of {multiple}, got {x.shape[2]}x{x.shape[3]}"
            )
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        if timesteps.shape != (x.shape[0],):
            raise ValueError(
                f"timesteps must be (N,) with N = {x.shape[0]}, got {tuple(timesteps.shape)}"
            )
        emb = self.time_mlp(timestep_embedding(timesteps, cfg.base_channels).to(x.dtype))
        h = self.input_conv(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, _ResBlock) else layer(h)
            skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for layer in self.up:
            if isinstance(layer, _ResBlock):
                h = layer(torch.cat((h, skips.pop()), dim=1), emb)
            else:
                h = layer(h)
        return self.output(h)
