"""``ttblur.adapt``: test-time adaptation of a deblurring network to one blurry video.

A thin wrapper around :class:`~ttblur.pipeline.AdaptPipeline` (see ``docs/architecture.md``)::

    video --RSDM--> pseudo-sharp patches + magnitude maps
          --DBCGM--> blur condition per patch
          --synthesizer--> re-blurred patches (noise topped up to the video's own level)
          --fine-tune--> adapted copy of the user's model

No ground truth is used anywhere: the epoch is chosen by the guard's score on the video's own
frames (``guard.enabled``, the default), else on held-out pseudo pairs.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ttblur.config import AdaptConfig
from ttblur.finetune import LossFn
from ttblur.outputs import AdaptOutput, AdaptReport, AdaptResult, ConditionStats
from ttblur.pipeline import AdaptPipeline
from ttblur.specs import ModelSpec
from ttblur.types import BlurSynthesizer, ConditionGenerator, PatchLocation, SharpnessDetector
from ttblur.video import VideoSource

__all__ = ["AdaptOutput", "AdaptReport", "AdaptResult", "ConditionStats", "adapt"]


def adapt(
    model: nn.Module,
    video: VideoSource,
    loss_fn: LossFn | None = None,
    *,
    config: AdaptConfig | dict[str, Any] | str | Path | None = None,
    spec: ModelSpec | str | None = None,
    device: str | torch.device | None = None,
    in_place: bool = False,
    detector: SharpnessDetector | None = None,
    condition_generator: ConditionGenerator | None = None,
    synthesizer: BlurSynthesizer | None = None,
    progress: bool = True,
) -> AdaptOutput:
    """Adapt a deblurring network to one blurry video by test-time blurring.

    Args:
        model: the user's trained deblurring network. It is never modified unless
            ``in_place=True``: a deep copy is adapted (same dtype), moved to ``device``.
        video: ``(T, 3, H, W)`` tensor (float in [0, 1] or ``uint8``), ``(T, H, W, 3)``
            array, frame folder, video file (anything :func:`ttblur.load_video` reads) or an
            iterable of ``(3, H, W)`` frames: the inputs :func:`ttblur.deblur` accepts. At
            least 5 frames, each at least ``config.rsdm.patch_size`` pixels on both sides. A
            path is streamed through temporary files (frames and blur maps; memory does not
            grow with its length) when the built-in stages read it (docs/streaming.md).
        loss_fn: ``loss_fn(pred, target) -> scalar tensor`` on ``(B, 3, h, w)`` tensors in
            [0, 1] (the model's outputs mapped back to [0, 1] by the spec). Default: L1.
        config: an :class:`~ttblur.config.AdaptConfig`, a dict or a JSON file path.
        spec: how to call ``model``: a :class:`~ttblur.specs.ModelSpec` or a built-in name
            (``"estrnn"``, ``"mmp_rnn"``, ``"dstnet"``, ``"shiftnet"``, ``"image"``). ``None``
            uses ``model.spec`` if present, else the image convention, verified by one tiny
            forward pass on the run device (as :func:`ttblur.deblur` does), run on the copy
            that is adapted.
        device: ``None`` picks CUDA when available, else the CPU.
        in_place: adapt ``model`` itself instead of a copy. Its parameters, buffers,
            gradients, ``requires_grad`` flags and modes are recorded first; if the run fails,
            is interrupted (``KeyboardInterrupt``) or diverges, they are restored bit for bit.
        detector, condition_generator, synthesizer: user objects implementing the stage
            protocols; each replaces the stage that ``config`` would build.
        progress: show progress bars.

    Returns:
        :class:`~ttblur.outputs.AdaptOutput` (an :class:`AdaptResult`) with the adapted
        ``model``, the ``report``, ``deblur()`` and what every stage produced (selection,
        conditions, pseudo pairs, fine-tuning result: what ``write_report`` draws). When
        fine-tuning diverges (NaN / inf loss, e.g. a float16 model or a huge ``lr``) nothing
        is raised: the unadapted model is returned (the caller's own model, restored, for
        ``in_place=True``) with ``report.reverted`` and ``report.diverged`` set and the cause
        in ``report.messages``.

    Raises:
        MemoryError: the pseudo pairs the built-in detector would keep cannot fit in the
            memory the system has (the message gives a ``rsdm.max_patches`` that fits).
        ValueError: bad video (too few frames, frames smaller than a patch or than optical
            flow needs, NaN, range, layout, dtype), a model whose output does not fit its spec
            (the message gives the cause), a ``loss_fn`` that fails or does not return a
            scalar depending on its input, or a ``config.finetune.trainable`` that selects no
            parameter. All checks run before any expensive work.
        TypeError: ``model`` is not an ``nn.Module``.

    Notes:
        The caller's global torch RNG state (CPU and the run device) is the same after the
        call as before; every random choice inside comes from ``config.seed``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    pipeline = AdaptPipeline.from_config(
        config,
        device=device,
        detector=detector,
        condition_generator=condition_generator,
        synthesizer=synthesizer,
    )
    return pipeline(model, video, loss_fn, spec=spec, in_place=in_place, progress=progress)


def __getattr__(name: str) -> Any:
    if name == "PatchRecord":
        warnings.warn(
            "ttblur.api.PatchRecord is deprecated: the report's patches are "
            "ttblur.types.PatchLocation",
            DeprecationWarning,
            stacklevel=2,
        )
        return PatchLocation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
