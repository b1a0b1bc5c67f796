"""ID-Blau: the conditional diffusion blur model as a :class:`~ttblur.protocols.BlurSynthesizer`.

:class:`IDBlau` combines the noise-prediction network (:class:`~ttblur.nets.idblau_unet.IDBlauUNet`)
with a DDIM sampler. Given sharp images in ``[0, 1]`` and condition maps it draws Gaussian noise
and denoises it into blurry images, conditioned on ``[sharp - 0.5, condition]`` at every step,
as the official ID-Blau code does.

ttblur ships no ID-Blau weights: load them from a folder / Hub repo written by
:meth:`IDBlau.save_pretrained` / :meth:`IDBlau.push_to_hub` (the network's ``config.json`` +
``model.safetensors``, the same files as :class:`~ttblur.nets.idblau_unet.IDBlauUNet`'s), or
train them with ``python -m ttblur.training.idblau``.

Example:
    >>> import torch
    >>> from ttblur.nets.idblau_unet import IDBlauConfig, IDBlauUNet
    >>> from ttblur.stages.idblau import IDBlau
    >>> model = IDBlau(IDBlauUNet(IDBlauConfig.small()), num_steps=2)
    >>> cond = torch.tensor([1.0, 0.0, 0.1]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    >>> model(torch.rand(1, 3, 16, 16), cond).shape
    torch.Size([1, 3, 16, 16])
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ttblur.config import SynthesisConfig
from ttblur.diffusion.ddim import DDIMSampler
from ttblur.diffusion.schedule import LinearNoiseSchedule
from ttblur.hub import WEIGHTS_NAME, PushToHubMixin, WeightsNotFoundError, shipped_weights_dir
from ttblur.nets.idblau_unet import IDBlauUNet
from ttblur.registry import SYNTHESIZERS
from ttblur.stages.reblur import validate_synthesis_inputs
from ttblur.stages.seeded import SeededStage
from ttblur.types import normalised_condition, warn_mag_norm_ignored

#: The ``synthesis`` section's defaults are the constructor defaults (one source).
_DEFAULTS = SynthesisConfig()

__all__ = ["MISSING_WEIGHTS_HELP", "IDBlau"]

#: How to obtain ID-Blau weights; part of the error raised when none are available.
MISSING_WEIGHTS_HELP = (
    "ID-Blau needs trained weights and ttblur ships none. Set `synthesis.weights` (or pass "
    "`repo_id_or_path`) to a folder written by `IDBlau.save_pretrained` / the training script, "
    "or to a Hugging Face Hub repo id holding config.json + model.safetensors; or train weights "
    "with `python -m ttblur.training.idblau --out DIR` (see `--help`); or choose the weight-free "
    "synthesizer with `synthesis.name = 'physical'`."
)


@SYNTHESIZERS.register("idblau")
class IDBlau(SeededStage, PushToHubMixin):
    """Conditional diffusion blur synthesizer (network + DDIM sampler).

    Weights: :meth:`from_pretrained`, :meth:`save_pretrained` and ``push_to_hub`` (from
    :class:`~ttblur.hub.PushToHubMixin`) go through the network's
    :class:`~ttblur.hub.PretrainedMixin` methods, so the files are the network's.

    Args:
        network: the noise predictor; moved to ``device`` and set to eval mode.
        mag_norm: ID-Blau's own scale: the blur length in pixels that maps to the network's
            condition ``z = 1``. Conditions arrive with z in pixels (the pipeline's contract)
            and are converted right before the network, ``z_net = min(M / mag_norm, 1)``
            (:meth:`network_condition`). ``None``: the scale the network was trained with,
            ``network.config.mag_norm`` (147 px for the official recipe).
        num_steps: DDIM steps (official: 20).
        eta: DDIM eta (0: deterministic given the seed).
        clip_sample: clamp each ``x0`` estimate to ``[-clip_sample, clip_sample]`` during
            sampling (images live in ``[-0.5, 0.5]``). Default 0.5: harmless for a
            well-trained network and a large gain for an under-trained one (see
            ``docs/blur-synthesis.md``); ``None`` is the official sampler (no clipping).
        batch_size: patches sampled together.
        seed: seed of the instance's noise generator (CPU ``torch.Generator``).
        device: where the network runs; ``None`` keeps its current device.
        progress: show a tqdm bar over the DDIM steps.
    """

    def __init__(
        self,
        network: IDBlauUNet,
        *,
        mag_norm: float | None = None,
        num_steps: int = _DEFAULTS.num_steps,
        eta: float = _DEFAULTS.eta,
        clip_sample: float | None = 0.5,
        batch_size: int = _DEFAULTS.batch_size,
        seed: int = 0,
        device: torch.device | str | None = None,
        progress: bool = False,
    ) -> None:
        if not isinstance(network, IDBlauUNet):
            raise ValueError(f"network must be an IDBlauUNet, got {type(network).__name__}")
        if mag_norm is not None and not mag_norm > 0:
            raise ValueError(f"mag_norm must be > 0, got {mag_norm}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        cfg = network.config
        if cfg.in_channels != 9 or cfg.out_channels != 3:
            raise ValueError(
                "IDBlau needs a network with 9 input and 3 output channels, got "
                f"{cfg.in_channels} and {cfg.out_channels}"
            )
        if device is not None:
            network = network.to(device)
        self.network = network.eval()
        self.schedule = LinearNoiseSchedule(cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)
        self.sampler = DDIMSampler(
            self.schedule, num_steps=num_steps, eta=eta, clip_sample=clip_sample
        )
        self.mag_norm = float(mag_norm) if mag_norm is not None else float(cfg.mag_norm)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.progress = progress
        self.reseed()

    def __repr__(self) -> str:
        return (
            f"IDBlau(network={type(self.network).__name__}({self.network.config!r}), "
            f"sampler={self.sampler!r}, mag_norm={self.mag_norm}, batch_size={self.batch_size}, "
            f"seed={self.seed})"
        )

    @property
    def device(self) -> torch.device:
        """Device of the network."""
        return next(self.network.parameters()).device

    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_path: str | Path | None = None,
        *,
        revision: str | None = None,
        device: torch.device | str | None = None,
        **kwargs: object,
    ) -> IDBlau:
        """Load the network from a folder, a Hub repo id, or the shipped default (none today).

        Args:
            repo_id_or_path: folder with ``config.json`` + ``model.safetensors`` (as written
                by :meth:`save_pretrained`), a Hub repo id (resolved through the Hub cache,
                so ``HF_HUB_OFFLINE=1`` works once cached), or ``None`` for shipped weights.
            revision: Hub branch, tag or commit hash.
            device: where the network runs.
            **kwargs: passed to :class:`IDBlau` (``mag_norm``, ``num_steps``, ``eta``, ...).

        Raises:
            WeightsNotFoundError: (a ``FileNotFoundError``) no weights found; the message
                says how to get, pre-download or train them.
            InvalidWeightsError: (a ``ValueError``) the files are corrupt, belong to another
                class or do not match the architecture.
        """
        if repo_id_or_path is None and not _has_shipped_weights():
            raise WeightsNotFoundError(MISSING_WEIGHTS_HELP)
        try:
            network = IDBlauUNet.from_pretrained(repo_id_or_path, revision=revision)
        except FileNotFoundError as err:
            raise WeightsNotFoundError(f"{err}\n{MISSING_WEIGHTS_HELP}") from err
        return cls(network, device=device, **kwargs)  # type: ignore[arg-type]

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the network's ``config.json`` + ``model.safetensors`` into folder ``path``.

        Returns:
            the folder, loadable with :meth:`from_pretrained` (and ``IDBlauUNet``'s).
        """
        return self.network.save_pretrained(path)

    @classmethod
    def from_config(
        cls,
        section: SynthesisConfig,
        mag_norm: float | None = None,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> IDBlau:
        """Build from the ``synthesis`` section (weights, weights_revision, num_steps, eta,
        batch_size).

        ``mag_norm`` is deprecated and ignored (DeprecationWarning): conditions arrive in
        pixels and the scale is the network's own (``IDBlauConfig.mag_norm`` in the weights'
        ``config.json``); pass ``IDBlau(network, mag_norm=...)`` to override it.

        Raises:
            FileNotFoundError: ``section.weights`` is None (ttblur ships no ID-Blau weights) or
                cannot be found; never falls back to another synthesizer.
        """
        warn_mag_norm_ignored("IDBlau.from_config", mag_norm)
        return cls.from_pretrained(
            section.weights,
            revision=section.weights_revision,
            device=device,
            num_steps=section.num_steps,
            eta=section.eta,
            batch_size=section.batch_size,
            seed=seed,
        )

    def network_condition(self, condition: Tensor) -> Tensor:
        """Condition in the network's normalised scale.

        Args:
            condition: ``(N, 3, h, w)`` with z the blur length ``M`` in pixels.

        Returns:
            ``(N, 3, h, w)`` with z = ``min(M / mag_norm, 1)`` (:attr:`mag_norm`: ID-Blau's
            own scale).
        """
        return normalised_condition(condition, self.mag_norm)

    @torch.no_grad()
    def __call__(
        self, sharp: Tensor, condition: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Synthesize blurry images by DDIM sampling.

        Args:
            sharp: ``(N, 3, h, w)`` float RGB in ``[0, 1]``.
            condition: ``(N, 3, h, w)``: x, y unit direction, z = blur length in pixels.
            generator: CPU generator for the sampling noise; default: the instance's own
                (seeded with ``seed``, advancing from call to call).

        Returns:
            ``(N, 3, h, w)`` RGB in ``[0, 1]``, on the device and dtype of ``sharp``. Sizes that
            are not multiples of the network's spatial multiple are padded (replicate) and
            cropped back.
        """
        validate_synthesis_inputs(sharp, condition)
        gen = generator if generator is not None else self.generator
        device = self.device
        dtype = next(self.network.parameters()).dtype
        outputs = []
        for i in range(0, sharp.shape[0], self.batch_size):
            s = sharp[i : i + self.batch_size].to(device=device, dtype=dtype)
            c = self.network_condition(condition[i : i + self.batch_size].to(device, dtype))
            outputs.append(self._sample(s, c, gen).to(device=sharp.device, dtype=sharp.dtype))
        return torch.cat(outputs, dim=0)

    def _sample(self, sharp: Tensor, condition: Tensor, generator: torch.Generator) -> Tensor:
        h, w = sharp.shape[-2:]
        multiple = self.network.config.spatial_multiple
        pad_h, pad_w = (-h) % multiple, (-w) % multiple
        guide = torch.cat((sharp - 0.5, condition), dim=1)
        if pad_h or pad_w:
            guide = F.pad(guide, (0, pad_w, 0, pad_h), mode="replicate")

        def predict(x: Tensor, t: Tensor) -> Tensor:
            return self.network(torch.cat((x, guide), dim=1), t)

        shape = (guide.shape[0], 3, guide.shape[2], guide.shape[3])
        out = self.sampler.sample(
            predict,
            shape,
            generator=generator,
            device=guide.device,
            dtype=guide.dtype,
            progress=self.progress,
        )
        return (out[..., :h, :w].clamp(-0.5, 0.5) + 0.5).clamp(0.0, 1.0)


def _has_shipped_weights() -> bool:
    default = IDBlauUNet.default_weights
    return default is not None and (shipped_weights_dir(default) / WEIGHTS_NAME).is_file()
