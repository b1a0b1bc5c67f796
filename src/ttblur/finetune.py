"""Pseudo training pairs and the fine-tuning loop of test-time adaptation.

A pseudo pair is built for every selected patch at frame ``t``:

* for a video model, the input clip is ``[B_{t-k}, ..., B_{t-1}, R_t, B_{t+1}, ..., B_{t+k}]``
  cropped at the patch box, where ``B`` are the original blurry frames, ``R_t`` the re-blurred
  pseudo-sharp patch and ``k = max(2, past_frames, future_frames)``; the target is the
  pseudo-sharp patch ``S_t`` and the loss is taken on the model's output for frame ``t``;
* for an image model the input is ``R_t`` alone.

The loop follows the official recipe (Adam, cosine schedule, gradient clipping) and chooses the
epoch by the loss on held-out *pseudo* pairs, never on ground truth. If no epoch beats the
unadapted model on that split, the unadapted weights are kept.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ttblur._state import ModuleSnapshot
from ttblur.config import FinetuneConfig, GuardConfig, parse_trainable
from ttblur.inference import reflect_index
from ttblur.io.frame_store import Frames
from ttblur.specs import ModelSpec, eval_mode, kept_modes
from ttblur.types import PatchLocation

__all__ = [
    "EpochGuard",
    "FinetuneResult",
    "LossFn",
    "PseudoPairs",
    "build_pseudo_pairs",
    "check_crop_size",
    "check_loss",
    "check_loss_value",
    "finetune",
    "predict_centre",
    "select_trainable",
]

LossFn = Callable[[Tensor, Tensor], Tensor]

_NORM_LAYERS = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)


@dataclass
class PseudoPairs:
    """Pseudo training pairs for one video.

    Attributes:
        inputs: ``(N, L, 3, p, p)`` float32 in [0, 1]; ``L`` clip frames (1 for image models),
            the re-blurred patch at index ``centre``.
        targets: ``(N, 3, p, p)`` float32 in [0, 1], the pseudo-sharp patches.
        centre: index of the re-blurred frame inside each clip.
        patches: where each pair comes from.
    """

    inputs: Tensor
    targets: Tensor
    centre: int
    patches: list[PatchLocation]

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def clip_radius(spec: ModelSpec, neighbours: int = 2) -> int:
    """Frames taken on each side of ``t`` for a fine-tuning clip of a video model."""
    if spec.layout == "BCHW":
        return 0
    return max(neighbours, spec.past_frames, spec.future_frames)


def build_pseudo_pairs(
    video: Frames,
    patches: list[PatchLocation],
    reblurred: Tensor,
    spec: ModelSpec,
    *,
    neighbours: int = 2,
) -> PseudoPairs:
    """Assemble the fine-tuning pairs of the design brief.

    Args:
        video: ``(T, 3, H, W)`` blurry video in [0, 1].
        patches: the ``N`` pseudo-sharp patch locations (all the same size ``p``).
        reblurred: ``(N, 3, p, p)`` re-blurred pseudo-sharp patches in [0, 1].
        spec: the model's calling convention (decides image vs video clips).
        neighbours: frames on each side of ``t`` for video models (at least the spec's
            past/future frames). Frames beyond the ends of the video are mirrored.

    Returns:
        :class:`PseudoPairs` with inputs ``(N, 2k+1, 3, p, p)`` (``(N, 1, 3, p, p)`` for image
        models) and targets ``(N, 3, p, p)``.
    """
    if reblurred.ndim != 4 or reblurred.shape[0] != len(patches) or reblurred.shape[1] != 3:
        raise ValueError(
            f"reblurred must be (N={len(patches)}, 3, p, p), got {tuple(reblurred.shape)}"
        )
    if not patches:
        raise ValueError("no patches to build pseudo pairs from")
    sizes = {p.size for p in patches}
    if len(sizes) != 1:
        raise ValueError(f"all patches must have the same size, got sizes {sorted(sizes)}")
    num_frames = video.shape[0]
    radius = clip_radius(spec, neighbours)
    size = patches[0].size
    # Filled crop by crop: indexing whole frames first would copy 2k+1 full frames per patch.
    inputs = torch.empty(
        len(patches), 2 * radius + 1, 3, size, size, dtype=video.dtype, device=video.device
    )
    targets = torch.empty(len(patches), 3, size, size, dtype=video.dtype, device=video.device)
    for index, loc in enumerate(patches):
        for slot, offset in enumerate(range(-radius, radius + 1)):
            if offset:
                inputs[index, slot] = loc.crop(video[reflect_index(loc.frame + offset, num_frames)])
        inputs[index, radius] = reblurred[index]
        targets[index] = loc.crop(video[loc.frame])
    return PseudoPairs(inputs, targets, radius, list(patches))


def select_trainable(model: nn.Module, trainable: str) -> list[nn.Parameter]:
    """Parameters to fine-tune; parameters the user froze are never included.

    Args:
        model: the network.
        trainable: ``"all"``, ``"norm"`` (parameters of normalisation layers) or
            ``"re:<regex>"`` matched with :func:`re.search` on parameter names.

    Raises:
        ValueError: unknown mode, bad regex, or no parameter selected. For ``"norm"`` the
            message lists the normalisation-like submodules the model has (its own classes
            such as a custom ``LayerNorm2d`` are not torch's) and a ``"re:<regex>"`` value
            that selects their parameters, or says that the norm layers found are frozen.
    """
    parsed = parse_trainable(trainable)
    if isinstance(parsed, re.Pattern):
        chosen = [p for n, p in model.named_parameters() if p.requires_grad and parsed.search(n)]
    elif parsed == "all":
        chosen = [p for p in model.parameters() if p.requires_grad]
    else:
        ids = {
            id(p)
            for module in model.modules()
            if isinstance(module, _NORM_LAYERS)
            for p in module.parameters(recurse=False)
        }
        chosen = [p for p in model.parameters() if p.requires_grad and id(p) in ids]
    if not chosen:
        hint = _norm_hint(model) if trainable == "norm" else ""
        raise ValueError(
            f"trainable={trainable!r} selects no trainable parameter of the model{hint}. "
            f'The options are "all" (every parameter not frozen), "norm" (torch normalisation '
            f'layers: {", ".join(_NORM_NAMES)}) and "re:<regex>" on parameter names '
            f"(e.g. {_example_names(model)})"
        )
    return chosen


_NORM_NAMES = ("BatchNorm*", "GroupNorm", "LayerNorm", "InstanceNorm*", "LocalResponseNorm")


def _example_names(model: nn.Module, count: int = 3) -> str:
    names = [name for name, p in model.named_parameters() if p.requires_grad][:count]
    return ", ".join(repr(n) for n in names) if names else "the model has no trainable parameter"


def _matching(model: nn.Module, trainable: str) -> list[str]:
    """Names of the trainable parameters a ``"re:<regex>"`` value selects."""
    pattern = re.compile(trainable[3:])
    return [n for n, p in model.named_parameters() if p.requires_grad and pattern.search(n)]


def _norm_hint(model: nn.Module) -> str:
    """Why ``"norm"`` found nothing: frozen torch norm layers, or the model's own
    normalisation-like classes (a class or attribute name holding "norm") with a regex that
    selects their parameters."""
    frozen = [
        name
        for name, module in model.named_modules()
        if isinstance(module, _NORM_LAYERS) and any(True for _ in module.parameters(False))
    ]
    # The model's own normalisation classes: a class whose name says "norm", or one that some
    # attribute named "...norm..." holds; then every instance of such a class counts.
    kinds = {
        type(module)
        for name, module in model.named_modules()
        if name
        and not isinstance(module, _NORM_LAYERS)
        and ("norm" in type(module).__name__.lower() or "norm" in name.rsplit(".", 1)[-1].lower())
    }
    own: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if type(module) in kinds and any(p.requires_grad for p in module.parameters(False)):
            own.setdefault(type(module).__name__, []).append(name)
    parts = []
    if frozen:
        parts.append(
            f"; its {len(frozen)} torch normalisation layer(s) (e.g. '{frozen[0]}') have only "
            "frozen parameters (requires_grad=False), which are never trained"
        )
    if not own:
        if not frozen:
            parts.append("; it has no normalisation layer with trainable parameters")
        return "".join(parts)
    found = ", ".join(f"{kind} x{len(names)} (e.g. '{names[0]}')" for kind, names in own.items())
    parts.append(f"; normalisation-like modules of the model's own classes: {found}")
    prefixes = sorted({name for names in own.values() for name in names})
    regex = "re:^(" + "|".join(re.escape(name) for name in prefixes) + r")\."
    selected = _matching(model, regex)
    if selected:
        leaves = sorted({name.rsplit(".", 1)[-1] for name in prefixes})
        short = r"re:(^|\.)(" + "|".join(re.escape(leaf) for leaf in leaves) + r")\."
        if len(regex) > 80 and len(short) < len(regex) and _matching(model, short) == selected:
            regex = short
        parts.append(f"; trainable={regex!r} selects their {len(selected)} parameter tensors")
    return "".join(parts)


@dataclass
class FinetuneResult:
    """What the fine-tuning loop did.

    Attributes:
        train_loss: mean training loss per epoch.
        val_loss: validation loss per epoch (empty without a validation split).
        baseline_val_loss: validation loss of the unadapted model (None without a split).
        best_epoch: 1-based epoch whose weights were kept; 0 means the unadapted weights.
        reverted: True when the unadapted weights were kept: no epoch beat the unadapted model
            on the validation split, or fine-tuning diverged.
        diverged: True when the loss (or a weight) became NaN / inf; the unadapted weights,
            buffers and flags were then restored bit for bit.
        message: why the run reverted after a divergence (None otherwise).
        num_train, num_val: pairs in each split.
        guard_scores: the guard's score (dB, higher is better) after each epoch (empty
            without a guard).
        baseline_guard_score: the guard's score of the unadapted model (None without one).
        val_best_epoch: the epoch the held-out pseudo pairs alone would keep (0: the
            unadapted model); differs from ``best_epoch`` when the guard chose.
        guard_rejected: the guard found no epoch ``min_gain_db`` better than the unadapted
            model (the run rolled back unless ``rollback`` was off).
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    baseline_val_loss: float | None = None
    best_epoch: int = 0
    reverted: bool = False
    diverged: bool = False
    message: str | None = None
    num_train: int = 0
    num_val: int = 0
    guard_scores: list[float] = field(default_factory=list)
    baseline_guard_score: float | None = None
    val_best_epoch: int = 0
    guard_rejected: bool = False


@dataclass(frozen=True)
class EpochGuard:
    """A guard's part in choosing the epoch (see :mod:`ttblur.stages.guard`).

    Attributes:
        score: ``score(model) -> float``, higher is better (the model is in eval mode,
            gradients off); called on the unadapted model and after every epoch.
        min_gain_db: how much the best epoch must beat the unadapted model's score to be kept
            (default: ``GuardConfig().min_gain_db``).
        rollback: restore the unadapted weights when no epoch gains ``min_gain_db``; False
            keeps the best-scoring epoch and only flags ``guard_rejected``.
        may_keep: False: the score chooses the best epoch but cannot keep it (no gain is
            enough; a score not trusted on this video), so it counts as rejected.
    """

    score: Callable[[nn.Module], float]
    min_gain_db: float = GuardConfig.model_fields["min_gain_db"].default
    rollback: bool = True
    may_keep: bool = True


class _Diverged(FloatingPointError):
    """The fine-tuning loss or weights became NaN / inf (handled inside :func:`finetune`)."""


def _augment(
    inputs: Tensor, targets: Tensor, crop: int | None, flips: bool, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Same random crop / flip / rot90 for a clip batch ``(B, L, 3, p, p)`` and its targets."""
    size = targets.shape[-1]
    if crop is not None and crop < size:  # crop > size is refused by finetune
        top, left = (int(v) for v in torch.randint(0, size - crop + 1, (2,), generator=gen))
        inputs = inputs[..., top : top + crop, left : left + crop]
        targets = targets[..., top : top + crop, left : left + crop]
    if not flips:
        return inputs, targets
    if torch.rand((), generator=gen) < 0.5:
        inputs, targets = inputs.flip(-1), targets.flip(-1)
    if torch.rand((), generator=gen) < 0.5:
        inputs, targets = inputs.flip(-2), targets.flip(-2)
    if inputs.shape[-1] == inputs.shape[-2]:
        turns = int(torch.randint(0, 4, (), generator=gen))
        inputs, targets = inputs.rot90(turns, (-2, -1)), targets.rot90(turns, (-2, -1))
    return inputs.contiguous(), targets.contiguous()


def predict_centre(model: nn.Module, spec: ModelSpec, clips: Tensor, centre: int) -> Tensor:
    """Model output for the frame at index ``centre`` of each clip, in [0, 1] space.

    Shape:
        - clips: ``(B, L, 3, h, w)`` (``L = 1`` for image models); output: ``(B, 3, h, w)``.
    """
    if spec.layout == "BCHW":
        return spec.call(model, clips)[:, 0]
    out = spec.call(model, clips)
    return out[:, centre - spec.past_frames]


def _batches(count: int, batch: int, gen: torch.Generator | None) -> Iterator[Tensor]:
    order = torch.randperm(count, generator=gen) if gen is not None else torch.arange(count)
    yield from order.split(batch)


def check_crop_size(crop_size: int | None, side: int) -> None:
    """Refuse a ``finetune.crop_size`` larger than the ``side`` px patches it crops (it would
    be ignored: the whole patch trained).

    Raises:
        ValueError: naming both sizes.
    """
    if crop_size is not None and crop_size > side:
        raise ValueError(
            f"finetune.crop_size={crop_size} is larger than the {side} px pseudo-sharp patches "
            f"it crops; set it to at most {side}, or None to train on whole patches"
        )


def check_loss(loss_fn: LossFn, device: torch.device, size: int = 32) -> None:
    """Call ``loss_fn`` once on random ``(2, 3, size, size)`` tensors and check its result.

    Args:
        loss_fn: the loss.
        device: where fine-tuning runs.
        size: the side of the patches fine-tuning gives it (the crop size, else the patch
            size): a multiscale or perceptual loss that pools several times needs that much.

    Raises:
        ValueError: it fails, returns no finite scalar tensor, or ignores ``pred``.
    """
    # A local generator: checking the loss must not consume the caller's global RNG.
    gen = torch.Generator().manual_seed(0)
    shape = (2, 3, size, size)
    pred = torch.rand(*shape, generator=gen).to(device).requires_grad_(True)
    target = torch.rand(*shape, generator=gen).to(device)
    try:
        value = loss_fn(pred, target)
    except Exception as err:
        raise ValueError(
            f"loss_fn(pred, target) failed on {shape} tensors (the size fine-tuning gives it): "
            f"{type(err).__name__}: {err}"
        ) from err
    check_loss_value(value)
    if not torch.isfinite(value.detach()).all():
        raise ValueError(
            f"loss_fn(pred, target) returned {float(value.detach())} on {shape} tensors in "
            "[0, 1]: it must be finite (fine-tuning on it could only diverge)"
        )


def check_loss_value(value: object, *, needs_grad: bool = True) -> Tensor:
    """What a loss must return: a scalar tensor that depends on ``pred`` (checked on the probe
    of :func:`check_loss` and on every loss fine-tuning computes; ``needs_grad=False`` for the
    validation passes, which run without gradients).

    Raises:
        ValueError: not a 0-dim tensor, or no gradient would flow from it.
    """
    if not isinstance(value, Tensor) or value.numel() != 1 or value.ndim != 0:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"loss_fn must return a scalar tensor, got {got}")
    if needs_grad and not value.requires_grad:
        raise ValueError("loss_fn's result does not depend on pred (no gradient would flow)")
    return value


def _set_train_mode(model: nn.Module, spec: ModelSpec) -> None:
    """Train mode, except where training would change what is frozen: a normalisation layer
    with running statistics (BatchNorm, InstanceNorm with ``track_running_stats``) whose own
    parameters are all frozen stays in eval mode, so its statistics stay as they were and it
    normalises as at inference; with ``spec.keep_frozen_in_eval`` every submodule whose
    parameters are all frozen does. A layer without parameters (``affine=False``) has nothing
    to freeze and trains as usual."""
    model.train()
    for module in model.modules():
        params = list(module.parameters())
        if not params or any(p.requires_grad for p in params) or module is model:
            continue
        if spec.keep_frozen_in_eval or getattr(module, "running_mean", None) is not None:
            module.eval()


#: Share of the GPU's free memory the pseudo pairs may take to be kept there for the whole run.
RESIDENT_SHARE = 0.25


def _resident(pairs: PseudoPairs, device: torch.device, dtype: torch.dtype) -> PseudoPairs:
    """The pairs on the run device in the model's dtype, copied once, so that batching and
    augmentation run there with no host round trip per step; left where they are (each batch
    copied then) when a CUDA device has too little free memory for
    :data:`RESIDENT_SHARE` of it. Crops, flips and rotations are exact, so the batches are the
    same either way."""
    inputs, targets = pairs.inputs, pairs.targets
    if inputs.device == device and inputs.dtype == dtype and targets.dtype == dtype:
        return pairs
    if device.type == "cuda":
        need = (inputs.numel() + targets.numel()) * torch.finfo(dtype).bits // 8
        free, _ = torch.cuda.mem_get_info(device)
        if need > RESIDENT_SHARE * free:
            return pairs
    return PseudoPairs(
        inputs.to(device, dtype), targets.to(device, dtype), pairs.centre, pairs.patches
    )


def _evaluate(
    model: nn.Module,
    spec: ModelSpec,
    pairs: PseudoPairs,
    index: Tensor,
    loss_fn: LossFn,
    batch: int,
    device: torch.device,
    dtype: torch.dtype,
) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for chunk in index.split(batch):
            rows = chunk.to(pairs.inputs.device)
            clips = pairs.inputs[rows].to(device, dtype)
            target = pairs.targets[rows].to(device, dtype)
            pred = predict_centre(model, spec, clips, pairs.centre)
            total += float(check_loss_value(loss_fn(pred, target), needs_grad=False)) * len(chunk)
    return total / max(len(index), 1)


def finetune(
    model: nn.Module,
    pairs: PseudoPairs,
    loss_fn: LossFn,
    config: FinetuneConfig,
    *,
    spec: ModelSpec,
    device: torch.device,
    seed: int = 0,
    progress: bool = True,
    guard: EpochGuard | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` in place on pseudo pairs and keep the best epoch's weights.

    Args:
        model: the network to adapt (already a copy if the caller wants one), on ``device``.
        pairs: pseudo training pairs from :func:`build_pseudo_pairs`.
        loss_fn: ``loss_fn(pred, target) -> scalar`` on ``(B, 3, h, w)`` tensors in [0, 1].
        config: the recipe (epochs, batch, lr, cosine floor, clip, validation share, ...).
        spec: the model's calling convention.
        device: where to train.
        seed: seeds the split, the shuffling, the augmentation and the model's own randomness
            (inside a forked RNG, so the caller's global RNG state is untouched).
        progress: show a progress bar.
        guard: when given, its score chooses the epoch (the best-scoring one, kept only if it
            beats the unadapted model by ``guard.min_gain_db``); the held-out pseudo pairs are
            still evaluated and reported (``val_best_epoch``).

    Returns:
        :class:`FinetuneResult`. ``model`` holds the chosen weights afterwards; each submodule
        gets its own train/eval flag back, and the user's frozen parameters stay frozen.
        When fine-tuning diverges (a NaN / inf loss, or NaN / inf weights or buffers at the
        end) nothing is raised: the model gets its unadapted parameters, buffers, gradients
        and flags back bit for bit and the result has ``reverted``, ``diverged`` and
        ``message`` set. Normalisation layers whose parameters are all frozen keep their
        running statistics (they stay in eval mode while the rest trains).

    Raises:
        ValueError: ``config.crop_size`` larger than the pairs, a ``config.trainable`` that
            selects no parameter, or a ``loss_fn`` that returns no scalar tensor or ignores
            ``pred`` (:func:`check_loss_value`; :func:`check_loss` tries a loss up front).
    """
    devices = [device] if device.type == "cuda" else []
    with kept_modes(model), torch.random.fork_rng(devices=devices):
        with spec.on_device(model, device):
            torch.manual_seed(seed)
            return _finetune(model, pairs, loss_fn, config, spec, device, seed, progress, guard)


def _guard_score(model: nn.Module, guard: EpochGuard) -> float:
    """``guard.score(model)`` as its contract says: eval mode, gradients off (a custom score
    would otherwise update BatchNorm statistics, draw dropout and build a graph)."""
    with eval_mode(model), torch.no_grad():
        return float(guard.score(model))


def _finetune(
    model: nn.Module,
    pairs: PseudoPairs,
    loss_fn: LossFn,
    config: FinetuneConfig,
    spec: ModelSpec,
    device: torch.device,
    seed: int,
    progress: bool,
    guard: EpochGuard | None,
) -> FinetuneResult:
    check_crop_size(config.crop_size, pairs.targets.shape[-1])
    gen = torch.Generator().manual_seed(seed)
    count = len(pairs)
    num_val = math.floor(count * config.val_fraction) if count >= 2 else 0
    if config.val_fraction > 0 and count >= 2:
        num_val = max(num_val, 1)
    order = torch.randperm(count, generator=gen)
    val_index, train_index = order[:num_val], order[num_val:]
    result = FinetuneResult(num_train=len(train_index), num_val=num_val)

    dtype = next(model.parameters()).dtype
    pairs = _resident(pairs, device, dtype)
    params = select_trainable(model, config.trainable)
    chosen = {id(p) for p in params}
    original_flags = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)

    batch = min(config.batch_size, len(train_index))
    steps = config.epochs * math.ceil(len(train_index) / batch)
    optimizer = torch.optim.Adam(params, lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(steps, 1), eta_min=config.lr_min
    )
    use_amp = config.amp and device.type == "cuda" and dtype == torch.float32
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    def snapshot() -> dict[str, Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    # The unadapted model, exactly (non-persistent buffers, gradients and flags included):
    # what a reverted or diverged run gives back.
    initial = ModuleSnapshot.capture(model)
    was_finite = _all_finite(model)
    best_state: dict[str, Tensor] | None = None
    best_loss = math.inf
    if num_val:
        best_loss = _evaluate(model, spec, pairs, val_index, loss_fn, batch, device, dtype)
        result.baseline_val_loss = best_loss
    # The best-scoring epoch is tracked apart from the unadapted model's score: with
    # ``rollback`` off it is kept even when it scores below the unadapted model.
    best_score = -math.inf
    if guard is not None:
        result.baseline_guard_score = _guard_score(model, guard)

    bar = tqdm(total=steps, desc="fine-tune", disable=not progress, leave=False)
    step = 0
    try:
        for epoch in range(1, config.epochs + 1):
            _set_train_mode(model, spec)
            running, seen = 0.0, 0
            for chunk in _batches(len(train_index), batch, gen):
                rows = train_index[chunk].to(pairs.inputs.device)
                clips, target = _augment(
                    pairs.inputs[rows], pairs.targets[rows], config.crop_size, config.augment, gen
                )
                clips, target = clips.to(device, dtype), target.to(device, dtype)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    pred = predict_centre(model, spec, clips, pairs.centre)
                    loss = check_loss_value(loss_fn(pred.float(), target.float()))
                value = float(loss.detach())  # the step's one wait for the device
                if not math.isfinite(value):
                    raise _Diverged(
                        f"the fine-tuning loss became {value} at epoch {epoch} (step {step + 1} "
                        f"of {steps})"
                    )
                scaler.scale(loss).backward()
                if config.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                schedule.step()
                running += value * len(rows)
                seen += len(rows)
                step += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{value:.4f}")
            result.train_loss.append(running / max(seen, 1))
            if num_val:
                val = _evaluate(model, spec, pairs, val_index, loss_fn, batch, device, dtype)
                result.val_loss.append(val)
                if val < best_loss:
                    best_loss, result.val_best_epoch = val, epoch
                    if guard is None:
                        result.best_epoch, best_state = epoch, snapshot()
            if guard is not None:
                if was_finite and not _all_finite(model):
                    raise _Diverged(f"the weights after epoch {epoch} hold NaN / inf values")
                score = _guard_score(model, guard)
                result.guard_scores.append(score)
                if score > best_score:
                    best_score, result.best_epoch, best_state = score, epoch, snapshot()
        optimizer.zero_grad(set_to_none=True)
        if not num_val:
            result.val_best_epoch = config.epochs
        if guard is not None:
            _guard_choice(result, guard)
            if result.best_epoch == 0:  # rolled back, or no epoch scored above -inf
                result.reverted = True
                initial.restore()
            elif best_state is not None:
                model.load_state_dict(best_state)
        elif not num_val:
            result.best_epoch = config.epochs
        elif result.best_epoch == 0:
            result.reverted = True
            initial.restore()
        elif best_state is not None:
            model.load_state_dict(best_state)
        if was_finite and not _all_finite(model):
            raise _Diverged(
                f"the weights kept after epoch {result.best_epoch} hold NaN / inf values"
            )
    except _Diverged as err:
        initial.restore()
        result.best_epoch, result.reverted, result.diverged = 0, True, True
        advice = f"lower finetune.lr (now {config.lr:g})"
        if config.grad_clip is None:
            advice += ", set finetune.grad_clip (now None)"
        advice += ", check that loss_fn stays finite"
        if dtype != torch.float32:
            advice += f", or adapt a float32 copy of the model (this one is {dtype})"
        result.message = (
            f"fine-tuning diverged: {err}. The unadapted weights were restored; {advice}."
        )
    finally:
        bar.close()
        for name, p in model.named_parameters():
            p.requires_grad_(original_flags[name])
    return result


def _guard_choice(result: FinetuneResult, guard: EpochGuard) -> None:
    """Keep the best-scoring epoch if it beats the unadapted model by ``min_gain_db`` (and the
    score ``may_keep``); else flag it and, with ``rollback``, choose the unadapted weights
    (epoch 0)."""
    baseline = result.baseline_guard_score
    best = max(result.guard_scores, default=-math.inf)
    gain = best - baseline if baseline is not None else -math.inf
    if guard.may_keep and gain > guard.min_gain_db:
        return
    result.guard_rejected = True
    if guard.rollback:
        result.best_epoch, result.reverted = 0, True


def _all_finite(model: nn.Module) -> bool:
    """Whether every floating parameter and buffer of ``model`` is free of NaN / inf.

    One wait for each device the model lives on (the flags are stacked there), not one per
    tensor: on a GPU every ``bool()`` of a device tensor waits for the device.
    """
    flags: dict[torch.device, list[Tensor]] = {}
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            flags.setdefault(t.device, []).append(torch.isfinite(t.detach()).all())
    return all(bool(torch.stack(found).all()) for found in flags.values())


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` on the same device and dtype (the user's model is untouched).

    Raises:
        TypeError: the model cannot be deep-copied (a lock, an open file, an old
            ``weight_norm`` after a forward pass ...), with the way around it.
    """
    try:
        return copy.deepcopy(model)
    except (TypeError, RuntimeError, copy.Error) as err:
        raise TypeError(
            f"cannot copy the model to adapt it ({type(err).__name__}: {err}); pass "
            "in_place=True to adapt the model itself (restored on any failure), or make it "
            "deep-copyable"
        ) from err
