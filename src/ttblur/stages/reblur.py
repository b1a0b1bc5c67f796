"""Weight-free, spatially varying motion blur along a pixel-wise blur condition.

Every output pixel ``p`` averages the sharp image sampled along a straight segment centred on
``p``: direction ``(x, y)`` (the condition's first two channels), length ``z`` pixels (the
third channel is the blur length in pixels; no cap). The average is taken in linear light
(inverse gamma, average, gamma), as a camera integrates light over its exposure. Sampling is
bilinear (``grid_sample`` with border padding), so the operator is differentiable with
respect to both the sharp image and the condition and runs on any device.

Why a segment centred on the pixel: a scene point seen at pixel ``q`` of the sharp
(mid-exposure) frame moves along ``q + f(t)`` with ``f`` running from ``-F/2`` to ``+F/2``
(``F`` the start-to-end displacement). The frame at time ``t`` therefore shows
``S(p - f(t))`` at pixel ``p``, and averaging over ``t`` visits the segment of length ``|F|``
centred on ``p``. This is the convention of :mod:`ttblur.synth` and of the ID-Blau conditions
(flow from exposure start to end, magnitude = its length).

Example:
    >>> import torch
    >>> from ttblur.stages.reblur import motion_blur
    >>> sharp = torch.rand(1, 3, 32, 32)
    >>> cond = torch.zeros(1, 3, 32, 32)
    >>> cond[:, 0] = 1.0          # horizontal
    >>> cond[:, 2] = 10.0         # 10 px long
    >>> motion_blur(sharp, cond).shape
    torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from ttblur.config import SynthesisConfig
from ttblur.io.frame_store import Frames
from ttblur.registry import SYNTHESIZERS
from ttblur.stages.seeded import SeededStage
from ttblur.types import validate_video, warn_mag_norm_ignored

#: The ``synthesis`` section's defaults are the constructor defaults (one source).
_DEFAULTS = SynthesisConfig()

__all__ = [
    "MAX_AUTO_TAPS",
    "TAP_SPACING",
    "PhysicalReblur",
    "auto_taps",
    "estimate_noise_std",
    "match_noise",
    "motion_blur",
    "validate_synthesis_inputs",
    "video_noise_std",
]

#: Spacing in pixels between consecutive samples along a blur segment when taps are automatic.
TAP_SPACING = 0.5
#: Cap on the automatic number of samples per segment (beyond it the spacing grows).
MAX_AUTO_TAPS = 301
_DIRECTION_EPS = 1e-8
_CONDITION_TOL = 1e-5
#: Second-difference kernel of Immerkaer's noise estimator; its L2 norm is 6.
_NOISE_KERNEL = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
#: Median of |N(0, 1)|: a robust (median absolute deviation) standard deviation.
_MAD_TO_STD = 1.4826
_NOISE_SAMPLES = 2_000_000


def auto_taps(max_length: float) -> int:
    """Number of samples along the longest blur segment of a batch.

    ``ceil(max_length / TAP_SPACING) + 1``, at least 2 and at most :data:`MAX_AUTO_TAPS`.

    Args:
        max_length: longest blur segment in pixels, ``>= 0``.
    """
    if not math.isfinite(max_length) or max_length < 0:
        raise ValueError(f"max_length must be a finite number >= 0, got {max_length}")
    return int(min(max(math.ceil(max_length / TAP_SPACING) + 1, 2), MAX_AUTO_TAPS))


def validate_synthesis_inputs(sharp: Tensor, condition: Tensor) -> None:
    """Check the inputs of a :class:`~ttblur.protocols.BlurSynthesizer` call.

    Args:
        sharp: must be ``(N, 3, H, W)`` floating point, finite, in ``[0, 1]``, non-empty.
        condition: must be ``(N, 3, H, W)`` with the same N, H, W and device, finite, x and y
            in ``[-1, 1]``, z ``>= 0`` (a blur length in px).

    Raises:
        ValueError: naming the first violated requirement.
    """
    if not isinstance(sharp, Tensor) or not isinstance(condition, Tensor):
        raise ValueError(
            f"sharp and condition must be torch.Tensor, got {type(sharp).__name__} and "
            f"{type(condition).__name__}"
        )
    if sharp.ndim != 4 or sharp.shape[1] != 3:
        raise ValueError(f"sharp must be (N, 3, H, W), got shape {tuple(sharp.shape)}")
    if condition.ndim != 4 or condition.shape[1] != 3:
        raise ValueError(f"condition must be (N, 3, H, W), got shape {tuple(condition.shape)}")
    if condition.shape[0] != sharp.shape[0] or condition.shape[2:] != sharp.shape[2:]:
        raise ValueError(
            f"condition {tuple(condition.shape)} must match sharp {tuple(sharp.shape)} in N, H, W"
        )
    if sharp.shape[0] == 0 or sharp.shape[2] == 0 or sharp.shape[3] == 0:
        raise ValueError(f"sharp must be non-empty, got shape {tuple(sharp.shape)}")
    for name, tensor in (("sharp", sharp), ("condition", condition)):
        if not tensor.is_floating_point():
            raise ValueError(f"{name} must be a floating point tensor, got {tensor.dtype}")
    if sharp.device != condition.device:
        raise ValueError(f"sharp is on {sharp.device} but condition is on {condition.device}")
    sharp, condition = sharp.detach(), condition.detach()
    if not bool(torch.isfinite(sharp).all()):
        raise ValueError("sharp contains NaN or inf")
    if not bool(torch.isfinite(condition).all()):
        raise ValueError("condition contains NaN or inf")
    validate_video(sharp, "sharp")
    z = condition[:, 2]
    zlow, zhigh = float(z.min()), float(z.max())
    if zlow < -_CONDITION_TOL:
        raise ValueError(
            f"condition channel z (blur length in px) must be >= 0, got values in "
            f"[{zlow:.4g}, {zhigh:.4g}]"
        )
    xy = condition[:, :2]
    xylow, xyhigh = float(xy.min()), float(xy.max())
    if xylow < -1 - _CONDITION_TOL or xyhigh > 1 + _CONDITION_TOL:
        raise ValueError(
            f"condition channels x, y (unit direction) must be in [-1, 1], got values in "
            f"[{xylow:.4g}, {xyhigh:.4g}]"
        )


def estimate_noise_std(images: Tensor, *, per_image: bool = False) -> Tensor:
    """Standard deviation of additive white noise in ``images``, estimated without a reference.

    Immerkaer's second-difference filter (which cancels locally linear image content) is applied
    to every channel; the noise standard deviation is the median absolute response times 1.4826
    (median absolute deviation of a Gaussian) divided by the filter's L2 norm (6). The median
    makes edges and texture, which give large responses on few pixels, count little.

    Measured on ``ttblur.synth`` videos (``docs/results.md``): within 10 % of the true noise for
    the five presets; clean frames read about 0.002 (the texture floor).

    Args:
        images: ``(N, C, H, W)`` float images in ``[0, 1]``, ``H, W >= 3``.
        per_image: return one value per image instead of one for the whole batch.

    Returns:
        float32 tensor: 0-dim, or ``(N,)`` with ``per_image=True``. Units of the images.
    """
    if images.ndim != 4 or images.shape[-1] < 3 or images.shape[-2] < 3:
        raise ValueError(f"images must be (N, C, H, W) with H, W >= 3, got {tuple(images.shape)}")
    n, c, h, w = images.shape
    flat_images = images.detach().float().reshape(n * c, h, w)
    # The 3x3 filter as nine shifted, weighted slices added in place: the same sums in the
    # same order as a single-channel conv2d (bit for bit: every weight is a power of two, so
    # ``alpha * slice`` is exact with or without a fused multiply-add), at about a tenth of
    # its cost on the CPU (no temporary per slice).
    response = torch.zeros(n * c, h - 2, w - 2, dtype=torch.float32, device=images.device)
    for i, row in enumerate(_NOISE_KERNEL):
        for j, weight in enumerate(row):
            response.add_(flat_images[:, i : i + h - 2, j : j + w - 2], alpha=weight)
    response = response.abs().reshape(n, -1)
    if per_image:
        return response.median(dim=1).values * (_MAD_TO_STD / 6.0)
    flat = response.flatten()
    if flat.numel() > _NOISE_SAMPLES:  # median of a regular subsample: same answer, bounded cost
        flat = flat[:: flat.numel() // _NOISE_SAMPLES + 1]
    return flat.median() * (_MAD_TO_STD / 6.0)


def video_noise_std(
    frames: Frames, max_frames: int = 8, *, device: torch.device | str | None = None
) -> float:
    """Sensor noise std of a video from up to ``max_frames`` evenly spaced frames
    (:func:`estimate_noise_std`; no reference needed).

    Args:
        frames: ``(T, 3, H, W)`` float RGB in ``[0, 1]``.
        max_frames: frames looked at, at most.
        device: where the estimate is computed (the frames looked at are copied there);
            ``None``: where the frames are.
    """
    step = max(1, math.ceil(frames.shape[0] / max_frames))
    sampled = frames[::step]
    return float(estimate_noise_std(sampled if device is None else sampled.to(device)))


def match_noise(
    images: Tensor,
    target_std: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    batch_size: int | None = None,
) -> Tensor:
    """Top up the noise of each image to ``target_std`` (clipped to ``[0, 1]``).

    Blurring averages the sensor noise of the pseudo-sharp patch away, so a re-blurred patch is
    cleaner than the video's real blurry frames. This adds zero-mean Gaussian noise of standard
    deviation ``sqrt(max(target_std^2 - s_i^2, 0))`` to image ``i``, where ``s_i`` is the
    noise already present (:func:`estimate_noise_std` per image).

    The noise is drawn where ``images`` are: with ``generator``'s draws on the CPU, and on
    another device (CUDA) with a generator of that device seeded by one draw of ``generator``
    (no host-to-device copy of the noise; reproducible per device, not across devices).

    With ``batch_size`` (or a ``device`` other than the images'), ``batch_size`` images at a
    time (default: all) are copied to ``device``, topped up there (each batch with its own
    draws from ``generator``) and copied back into the result: host images topped up on a GPU,
    in bounded device memory.

    Args:
        images: ``(N, 3, H, W)`` float in ``[0, 1]``.
        target_std: the noise level to reach (e.g. :func:`estimate_noise_std` of the video).
        generator: CPU generator for the noise (or for the device generator's seed).
        device: where the estimate and the noise are computed; ``None``: where ``images``
            are.
        batch_size: images per batch, ``>= 1``; ``None``: all at once.

    Returns:
        a new tensor, same shape, dtype and device as ``images``.
    """
    if not (math.isfinite(target_std) and target_std >= 0):
        raise ValueError(f"target_std must be a finite number >= 0, got {target_std}")
    where = images.device if device is None else torch.device(device)
    if batch_size is None and where == images.device:
        return _top_up(images, target_std, generator)
    if batch_size is None:
        batch_size = max(images.shape[0], 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    out = torch.empty_like(images)
    for start in range(0, images.shape[0], batch_size):
        chunk = images[start : start + batch_size].to(where)
        out[start : start + batch_size] = _top_up(chunk, target_std, generator).to(out.device)
    return out


def _top_up(images: Tensor, target_std: float, generator: torch.Generator | None) -> Tensor:
    """:func:`match_noise` of one batch, where ``images`` are."""
    present = estimate_noise_std(images, per_image=True)
    extra = (target_std**2 - present.square()).clamp_min(0.0).sqrt()
    if images.device.type == "cpu":
        noise = torch.randn(images.shape, generator=generator, dtype=torch.float32)
    else:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        on_device = torch.Generator(device=images.device).manual_seed(seed)
        noise = torch.randn(
            images.shape, generator=on_device, dtype=torch.float32, device=images.device
        )
    # In place on the fresh noise tensor (the same values as ``(images + noise).clamp``:
    # addition commutes bit for bit), so a batch costs one image-sized buffer, not four.
    noise = noise.mul_(extra.view(-1, 1, 1, 1)).to(images.dtype)
    return noise.add_(images).clamp_(0.0, 1.0)


def _direction_norm(direction: Tensor) -> Tensor:
    """``torch.linalg.vector_norm(direction, dim=1, keepdim=True)`` of ``(N, 2, H, W)``
    directions, for float32 at about a tenth of its cost on the CPU (where a reduction over
    two channels is slow): the squares summed in float32 and the root taken in float64, the
    same bits as ``vector_norm`` on the CPU (torch 2.13 on x86_64, checked on 17 M values
    from 1e-20 to 1e18; the directions reaching here are in ``[-1, 1]``); elsewhere, a GPU
    included, it may differ from it in the last bit. Other dtypes use ``vector_norm``."""
    if direction.dtype != torch.float32:
        return torch.linalg.vector_norm(direction, dim=1, keepdim=True)
    x, y = direction[:, 0:1], direction[:, 1:2]
    return (x * x + y * y).double().sqrt().float()


def _displacement(condition: Tensor) -> tuple[Tensor, Tensor]:
    """Full blur vector ``(N, 2, H, W)`` in px and its length ``(N, 1, H, W)`` in px."""
    direction = condition[:, :2]
    norm = _direction_norm(direction)
    # Directions are renormalised (resized condition maps are not exactly unit); a zero
    # direction means "no blur" there.
    unit = direction / norm.clamp_min(_DIRECTION_EPS)
    unit = torch.where(norm > _DIRECTION_EPS, unit, torch.zeros_like(unit))
    length = condition[:, 2:3].clamp_min(0.0)
    return unit * length, length * (norm > _DIRECTION_EPS)


def motion_blur(
    sharp: Tensor,
    condition: Tensor,
    mag_norm: float | None = None,
    *,
    taps: int | None = None,
    gamma: float = 2.2,
) -> Tensor:
    """Blur each pixel along a segment given by its blur condition (no noise).

    Args:
        sharp: ``(N, 3, H, W)`` float RGB in ``[0, 1]``.
        condition: ``(N, 3, H, W)`` condition maps: channels x, y = unit blur direction
            (renormalised here; ``(0, 0)`` means no blur), z = the segment length in pixels.
        mag_norm: deprecated (DeprecationWarning): when given, z is read the old way, as
            ``min(M / mag_norm, 1)`` in ``[0, 1]``, and turned into ``z * mag_norm`` px, so
            old callers get the same blur. Pass z in pixels instead.
        taps: samples per segment (``>= 2``); ``None`` picks :func:`auto_taps` of the longest
            segment in the batch (0.5 px spacing, capped at :data:`MAX_AUTO_TAPS`).
        gamma: display gamma; the average is taken over ``sharp ** gamma``. ``1`` averages the
            values as they are.

    Returns:
        ``(N, 3, H, W)`` RGB in ``[0, 1]``, same dtype and device as ``sharp``. Pixels whose
        segment length is 0 are returned unchanged (bit-exact).

    Raises:
        ValueError: wrong rank / channels / sizes, non-float dtype, NaN or inf, values out of
            range, or invalid ``mag_norm`` / ``taps`` / ``gamma``.
    """
    validate_synthesis_inputs(sharp, condition)
    if mag_norm is not None:
        condition = _legacy_condition(sharp, condition, mag_norm)
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma}")
    if taps is not None and (not isinstance(taps, int) or taps < 2):
        raise ValueError(f"taps must be an integer >= 2 or None, got {taps}")

    return _blur(sharp, condition, taps, float(gamma))


def _legacy_condition(sharp: Tensor, condition: Tensor, mag_norm: float) -> Tensor:
    """A condition with the old normalised z (``min(M / mag_norm, 1)``) in pixels, computed
    as the old code did (``clamp(z, 0, 1) * mag_norm`` in ``sharp``'s dtype)."""
    warnings.warn(
        "motion_blur(sharp, condition, mag_norm) is deprecated: z is now the blur length in "
        "pixels; this call reads z as min(M / mag_norm, 1) as before. Pass z in pixels "
        "(ttblur.types.pixel_condition(condition, mag_norm)) and no mag_norm",
        DeprecationWarning,
        stacklevel=3,
    )
    if not (isinstance(mag_norm, (int, float)) and math.isfinite(mag_norm) and mag_norm > 0):
        raise ValueError(f"mag_norm must be a finite number > 0, got {mag_norm}")
    zhigh = float(condition[:, 2].max())
    if zhigh > 1 + _CONDITION_TOL:
        raise ValueError(
            f"with mag_norm, condition channel z (magnitude / mag_norm) must be in [0, 1], got "
            f"a maximum of {zhigh:.4g}"
        )
    condition = condition.to(sharp.dtype)
    length = condition[:, 2:3].clamp(0.0, 1.0) * float(mag_norm)
    return torch.cat((condition[:, :2], length), dim=1)


def _blur(sharp: Tensor, condition: Tensor, taps: int | None, gamma: float) -> Tensor:
    """:func:`motion_blur` without input checks."""
    condition = condition.to(sharp.dtype)
    vector, length = _displacement(condition)
    max_length = float(length.detach().max())
    if max_length == 0.0:
        return sharp.clone()
    num_taps = taps if taps is not None else auto_taps(max_length)

    h, w = sharp.shape[-2:]
    ys = torch.arange(h, device=sharp.device, dtype=sharp.dtype)
    xs = torch.arange(w, device=sharp.device, dtype=sharp.dtype)
    base_y, base_x = torch.meshgrid(ys, xs, indexing="ij")
    # grid_sample with align_corners=False: pixel centre x maps to (2x + 1) / W - 1.
    base = torch.stack(((2 * base_x + 1) / w - 1, (2 * base_y + 1) / h - 1), dim=-1)
    step = torch.stack((vector[:, 0] * (2.0 / w), vector[:, 1] * (2.0 / h)), dim=-1)  # (N,H,W,2)

    linear = sharp.clamp(0.0, 1.0) ** gamma
    total = torch.zeros_like(sharp)
    for k in range(num_taps):
        # Midpoint rule on the centred segment: offsets in (-1/2, 1/2) of its length.
        offset = (k + 0.5) / num_taps - 0.5
        grid = base.unsqueeze(0) + offset * step
        total = total + F.grid_sample(
            linear, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
    mean = (total / num_taps).clamp(0.0, 1.0)
    blurred = mean.clamp_min(1e-12) ** (1.0 / gamma)
    return torch.where(length > 0, blurred, sharp)


@SYNTHESIZERS.register("physical")
class PhysicalReblur(SeededStage):
    """Weight-free :class:`~ttblur.protocols.BlurSynthesizer`: linear-light motion blur.

    Calls :func:`motion_blur` batch by batch and optionally adds Gaussian sensor noise drawn
    from a ``torch.Generator`` seeded at construction (noise is drawn on the CPU, so results
    do not depend on the device).

    Args:
        mag_norm: deprecated and ignored (DeprecationWarning): the condition's z is the blur
            length in pixels, used as it is.
        taps: samples per blur segment, ``None`` for automatic (0.5 px spacing).
        gamma: display gamma for the linear-light average.
        noise_std: standard deviation of additive Gaussian noise in ``[0, 1]`` units (0: off).
        batch_size: patches processed per :func:`motion_blur` call (bounds memory).
        seed: seed of the noise generator.

    Example:
        >>> import torch
        >>> from ttblur.stages.reblur import PhysicalReblur
        >>> reblur = PhysicalReblur()
        >>> cond = torch.tensor([1.0, 0.0, 14.7]).view(1, 3, 1, 1).expand(2, 3, 16, 16)
        >>> reblur(torch.rand(2, 3, 16, 16), cond).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(
        self,
        mag_norm: float | None = None,
        *,
        taps: int | None = _DEFAULTS.taps,
        gamma: float = _DEFAULTS.gamma,
        noise_std: float = _DEFAULTS.noise_std,
        batch_size: int = _DEFAULTS.batch_size,
        seed: int = 0,
    ) -> None:
        warn_mag_norm_ignored("PhysicalReblur", mag_norm)
        if taps is not None and taps < 2:
            raise ValueError(f"taps must be >= 2 or None, got {taps}")
        if not (math.isfinite(gamma) and gamma > 0):
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if not (math.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.taps = taps
        self.gamma = float(gamma)
        self.noise_std = float(noise_std)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.reseed()

    @classmethod
    def from_config(
        cls, section: SynthesisConfig, mag_norm: float | None = None, *, seed: int = 0
    ) -> PhysicalReblur:
        """Build from the ``synthesis`` section of :class:`~ttblur.config.AdaptConfig`.

        Uses ``gamma``, ``taps``, ``noise_std`` and ``batch_size``; ``mag_norm`` is deprecated
        and ignored (DeprecationWarning).
        """
        warn_mag_norm_ignored("PhysicalReblur.from_config", mag_norm)
        return cls(
            taps=section.taps,
            gamma=section.gamma,
            noise_std=section.noise_std,
            batch_size=section.batch_size,
            seed=seed,
        )

    def __repr__(self) -> str:
        return (
            f"PhysicalReblur(taps={self.taps}, gamma={self.gamma}, "
            f"noise_std={self.noise_std}, batch_size={self.batch_size}, seed={self.seed})"
        )

    def __call__(
        self, sharp: Tensor, condition: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Blur ``sharp`` along ``condition``.

        Args:
            sharp: ``(N, 3, h, w)`` float RGB in ``[0, 1]``.
            condition: ``(N, 3, h, w)``: x, y unit direction, z = blur length in pixels.
            generator: CPU generator for the noise; default: the instance's own generator
                (seeded with ``seed``, advancing from call to call).

        Returns:
            ``(N, 3, h, w)`` RGB in ``[0, 1]`` (noise added after the blur, then clipped).
        """
        validate_synthesis_inputs(sharp, condition)
        outputs = [
            _blur(
                sharp[i : i + self.batch_size],
                condition[i : i + self.batch_size],
                self.taps,
                self.gamma,
            )
            for i in range(0, sharp.shape[0], self.batch_size)
        ]
        out = torch.cat(outputs, dim=0)
        if self.noise_std > 0:
            gen = generator if generator is not None else self.generator
            noise = torch.randn(out.shape, generator=gen, dtype=torch.float32)
            out = (out + self.noise_std * noise.to(device=out.device, dtype=out.dtype)).clamp(0, 1)
        return out
