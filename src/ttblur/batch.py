"""Adapt many videos, each on its own: one task per video, resumable, on Ray or in-process.

The paper's protocol adapts a network to each test video separately. :func:`adapt_many` runs
that protocol over a list of :class:`VideoJob` (a folder of videos: :func:`find_videos`; a
dataset with ground truth: :func:`dataset_jobs`). Each video is one task (:func:`run_video`):
load it, adapt a copy of the network, deblur, write the outputs, score against the ground truth
when there is some. A task's outputs are published together (temporary files renamed into
place) and its ``manifest.json`` is written last, so:

* a rerun skips every video whose manifest says ``done`` with the same settings and network
  (:func:`settings_digest`) for the same input (same size and modification time) and whose
  outputs are all there, and redoes the rest;
* a failing video (corrupt file, too few frames, a network error) is recorded in its manifest
  with the error and does not stop the others;
* a driver killed in the middle leaves finished videos intact and unfinished ones without a
  manifest (their temporary files are ignored and replaced by the rerun).

``summary.json`` and ``summary.md`` in the output folder list every video (status, seconds,
PSNR / SSIM of the blurry input, the unadapted and the adapted network when ground truth
exists) and are rewritten as videos finish.

Backends: ``"ray"`` submits one Ray task per video with its CPUs / GPUs declared (fractional
GPUs allowed) and ``max_retries`` for worker loss (``pip install ttblur[ray]``). Without an
address it starts a Ray runtime of its own on this machine (``workers * cpus_per_video``
CPUs), even where a bare ``ray.init()`` would join a running cluster (``RAY_ADDRESS`` set, a
``ray start`` on this machine); with one (``"auto"``, ``"HOST:6379"``) it joins that cluster,
where every video is submitted at once and the cluster's free resources decide how many run.
Input, output, factory-file and local weights paths are made absolute first: a cluster's
workers run in the folder their node was started in. ``"local"`` runs the videos one after
another in this process. ``"auto"`` uses Ray when it is installed and more than one worker or
a cluster address is asked for, else runs locally. Running on a cluster: docs/many-videos.md.

A video's folder is only ever written by the task running that video; temporary files a
killed run left there are removed when the video is run again.

Output layout::

    OUT/<video>/adapted.safetensors   adapted weights
    OUT/<video>/deblurred.mp4         the video deblurred by the adapted network
    OUT/<video>/report.json           the AdaptReport
    OUT/<video>/manifest.json         VideoRecord (written last)
    OUT/summary.json, OUT/summary.md  every video's record

Example:
    >>> jobs = find_videos("clips/")  # doctest: +SKIP
    >>> result = adapt_many(jobs, "adapted/", BatchSettings(), workers=2)  # doctest: +SKIP
    >>> print(summary_table(result.records))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ttblur.config import AdaptConfig
from ttblur.evaluation import KINDS
from ttblur.io.atomic import (
    TEMP_MARKER,
    StagedOutputs,
    atomic_write_json,
    atomic_write_text,
    json_text,
    kept_signal_handlers,
    remove_stale_temporaries,
)
from ttblur.io.frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ttblur.io.models import DEFAULT_MODEL, absolute_target, factory_source
from ttblur.io.paths import (
    PlannedOutput,
    absolute_if_local,
    check_output_folders,
    check_planned_paths,
    natural_key,
)

if TYPE_CHECKING:
    from torch import nn

    from ttblur.io.datasets import DatasetSequence

__all__ = [
    "MANIFEST",
    "OUTPUTS",
    "SUMMARY_JSON",
    "SUMMARY_MD",
    "BatchResult",
    "BatchSettings",
    "VideoJob",
    "VideoRecord",
    "adapt_many",
    "dataset_jobs",
    "find_videos",
    "load_record",
    "ray_available",
    "run_video",
    "settings_digest",
    "summary_table",
]

MANIFEST = "manifest.json"
#: Files every finished video folder holds besides its manifest.
OUTPUTS = ("adapted.safetensors", "deblurred.mp4", "report.json")
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"

Backend = Literal["auto", "local", "ray"]


# ============================================================================ jobs


@dataclass(frozen=True)
class VideoJob:
    """One video to adapt.

    Attributes:
        name: unique name; the video's output folder is ``OUT/<name>``.
        blurry: a video file or a folder of frames.
        sharp: folder (or file) of the ground-truth frames, ``None`` when there is none.
    """

    name: str
    blurry: Path
    sharp: Path | None = None

    def fingerprint(self) -> dict[str, Any]:
        """Size and modification time of the input(s): a rerun redoes a video whose input
        changed. A folder counts its image files, their total size and newest time."""
        return {"blurry": _fingerprint(self.blurry), "sharp": _fingerprint(self.sharp)}


def _fingerprint(
    path: Path | None, suffixes: tuple[str, ...] | None = IMAGE_EXTENSIONS
) -> list[int] | None:
    """``[files, total size, newest modification time]`` of a file, or of the files of a
    folder whose suffix is in ``suffixes`` (``None``: every file); ``None`` when ``path`` is
    ``None`` or unreadable."""
    if path is None:
        return None
    try:
        if path.is_dir():
            stats = [
                p.stat()
                for p in path.iterdir()
                if p.is_file() and (suffixes is None or p.suffix.lower() in suffixes)
            ]
            return [
                len(stats),
                sum(s.st_size for s in stats),
                max((s.st_mtime_ns for s in stats), default=0),
            ]
        stat = path.stat()
        return [1, stat.st_size, stat.st_mtime_ns]
    except OSError:
        return None


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(
        p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") for p in path.iterdir()
    )


def find_videos(folder: str | os.PathLike[str]) -> list[VideoJob]:
    """The videos directly inside ``folder``: video files (``.mp4 .mkv .avi .mov .m4v``) and
    sub-folders holding image frames, in natural name order.

    A file is named by its stem (``clip.mp4`` -> ``clip``) unless another entry has the same
    stem or that stem as its full name, then by its full name: names are unique. Hidden
    entries are skipped.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: it holds no video.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"'{root}' is not a folder of videos")
    entries = [
        p
        for p in root.iterdir()
        if not p.name.startswith(".")
        and ((p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS) or _is_frame_folder(p))
    ]
    if not entries:
        raise ValueError(
            f"'{root}' holds no video: expected files ({', '.join(VIDEO_EXTENSIONS)}) or "
            "folders of frames"
        )
    stems = [p.stem if p.is_file() else p.name for p in entries]
    full = {p.name for p in entries}
    jobs = [  # a stem that is another entry's full name (a.mp4.mkv beside a.mp4) is not unique
        VideoJob(
            stem if stems.count(stem) == 1 and (stem == p.name or stem not in full) else p.name, p
        )
        for p, stem in zip(entries, stems, strict=True)
    ]
    return sorted(jobs, key=lambda job: natural_key(job.name))


def dataset_jobs(sequences: Iterable[DatasetSequence]) -> list[VideoJob]:
    """One job per sequence of a dataset with ground truth (:mod:`ttblur.io.datasets`)."""
    return [VideoJob(seq.name, seq.blur, seq.sharp) for seq in sequences]


# ============================================================================ settings, records


class BatchSettings(BaseModel):
    """What every task of a batch does (the same for every video; picklable for Ray).

    Attributes:
        model: ``module:factory`` of the network or a shipped reference name (``"tiny"``,
            ``"base"``; :func:`ttblur.io.models.load_model`), built once per worker process;
            ignored when :func:`adapt_many` gets a module.
        weights: weights for ``model`` (file, folder or Hub repo id).
        revision: Hub revision of repo-id ``weights``.
        spec: calling convention (``None``: ``model.spec``, else ``"image"``).
        device: run device of each task (``None``: CUDA if the task has a GPU, else CPU).
        config: the adaptation's configuration.
        max_frames: use only the first frames of each video.
        crop_border: pixels removed from each side before the metrics.
        threads: ``torch.set_num_threads`` inside each task (``None``: the task's CPUs).
        progress: show each video's progress bars (adaptation stages, deblurring) where its
            task runs: on the terminal for in-process runs; a Ray worker's output is not shown.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str = DEFAULT_MODEL
    weights: str | None = None
    revision: str | None = None
    spec: str | None = None
    device: str | None = None
    config: AdaptConfig = Field(default_factory=AdaptConfig)
    max_frames: int | None = Field(default=None, gt=0)
    crop_border: int = Field(default=0, ge=0)
    threads: int | None = Field(default=None, gt=0)
    progress: bool = False


@dataclass
class VideoRecord:
    """What happened to one video (its ``manifest.json``).

    Attributes:
        name: the job's name.
        status: ``"done"``, ``"failed"``, or ``"pending"`` (in the summary only: not run yet
            by the current batch, or interrupted before it finished).
        input: the blurry input's path.
        fingerprint: :meth:`VideoJob.fingerprint` at the time it ran.
        settings: :func:`settings_digest` of what ran (network, weights, configuration).
        seconds: wall time of the task.
        error: ``"Type: message"`` of a failure, else ``None``.
        frames: frames adapted to (``None`` when it failed before loading).
        height, width: frame size, px (``None`` likewise).
        patches: pseudo-sharp patches the adaptation used.
        reverted: whether the unadapted weights were kept.
        best_epoch: epoch kept (0: unadapted).
        scores: with ground truth, ``{kind: {"psnr": dB, "ssim": ...}}`` for each of
            ``blurry``, ``unadapted``, ``adapted`` (means over the frames); else ``None``.
        outputs: files written in the video's folder.
        warnings: ``"Category: message"`` of every warning raised while it ran (a truncated
            video, a diverged fine-tuning ...; not deprecations), kept here because a Ray
            worker's output does not reach the driver.
    """

    name: str
    status: Literal["done", "failed", "pending"]
    input: str
    fingerprint: dict[str, Any]
    seconds: float
    settings: str = ""
    error: str | None = None
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    patches: int | None = None
    reverted: bool | None = None
    best_epoch: int | None = None
    scores: dict[str, dict[str, float]] | None = None
    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """The manifest's text (standard JSON: an infinite PSNR is ``null``)."""
        return json_text(asdict(self))

    @property
    def gain(self) -> float | None:
        """Adapted - unadapted PSNR (dB) when scored."""
        if self.scores is None:
            return None
        return self.scores["adapted"]["psnr"] - self.scores["unadapted"]["psnr"]


def load_record(out: str | os.PathLike[str], name: str) -> VideoRecord | None:
    """The manifest of video ``name`` under ``out``; ``None`` if missing or unreadable."""
    path = Path(out) / name / MANIFEST
    try:
        record = VideoRecord(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    for scores in (record.scores or {}).values():  # JSON null: a PSNR of inf (equal frames)
        if scores.get("psnr", 0.0) is None:
            scores["psnr"] = float("inf")
    return record


def _weights_fingerprint(settings: BatchSettings) -> list[int] | None:
    """:func:`_fingerprint` of a local ``settings.weights`` file or folder (weights
    overwritten in place are new weights); ``None`` for a Hub id or no weights."""
    if settings.weights is None:
        return None
    return _fingerprint(Path(settings.weights).expanduser(), suffixes=None)


#: The configuration's weights fields, ``(section, field)``: local files or Hub repo ids.
_STAGE_WEIGHTS = (("rsdm", "weights"), ("dbcgm", "flow_weights"), ("synthesis", "weights"))


def _stage_weights_fingerprints(config: AdaptConfig) -> dict[str, list[int] | None]:
    """:func:`_fingerprint` of each local weights file or folder the configuration names
    (``rsdm.weights``, ``dbcgm.flow_weights``, ``synthesis.weights``): stage weights
    overwritten in place make another run, as the network's do."""
    named = {
        f"{section}.{name}": getattr(getattr(config, section), name)
        for section, name in _STAGE_WEIGHTS
    }
    local = {key: Path(value).expanduser() for key, value in named.items() if value is not None}
    return {key: _fingerprint(path, suffixes=None) for key, path in local.items() if path.exists()}


def settings_digest(settings: BatchSettings, model: nn.Module | None = None) -> str:
    """A digest of what a task runs: the settings (but ``threads`` and ``progress``), the local
    weights file, the local stage weights the configuration names, the ``.py`` files of the
    factory's folder (:func:`~ttblur.io.models.factory_source`) and, when given, the
    network's parameters and buffers (so a rerun with another configuration or network redoes
    every video). A Hub repo id counts by its name and revision."""
    import torch

    # threads change how fast, not what (progress: what is shown): a rerun still skips
    digest = hashlib.sha256(
        settings.model_dump_json(exclude={"threads", "progress"}).encode("utf-8")
    )
    digest.update(json.dumps(_weights_fingerprint(settings)).encode("utf-8"))
    stages = _stage_weights_fingerprints(settings.config)
    if stages:  # only when the config names local weights: earlier digests stay valid
        digest.update(json.dumps(stages, sort_keys=True).encode("utf-8"))
    # A factory whose code was edited builds another network: its folder's .py files count.
    source = factory_source(settings.model)
    digest.update(json.dumps(_fingerprint(source, suffixes=(".py",))).encode("utf-8"))
    if model is not None:
        digest.update(type(model).__qualname__.encode("utf-8"))
        for name, tensor in model.state_dict().items():
            digest.update(name.encode("utf-8"))
            raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
            digest.update(raw.numpy().tobytes())
    return digest.hexdigest()[:16]


def _absolute_settings(settings: BatchSettings) -> BatchSettings:
    """``settings`` with every local path absolute: the network's ``.py`` file
    (:func:`~ttblur.io.models.absolute_target`), its weights and the configuration's stage
    weights (:func:`~ttblur.io.paths.absolute_if_local`), so that a Ray worker started in
    another folder (a cluster's) loads the same files. Hub repo ids stay as they are."""
    config = settings.config
    for section, name in _STAGE_WEIGHTS:
        part = getattr(config, section)
        absolute = absolute_if_local(getattr(part, name))
        config = config.model_copy(update={section: part.model_copy(update={name: absolute})})
    return settings.model_copy(
        update={
            "model": absolute_target(settings.model),
            "weights": absolute_if_local(settings.weights),
            "config": config,
        }
    )


def _absolute_job(job: VideoJob) -> VideoJob:
    """``job`` with absolute input paths (see :func:`_absolute_settings`)."""
    sharp = None if job.sharp is None else Path(job.sharp).expanduser().absolute()
    return replace(job, blurry=Path(job.blurry).expanduser().absolute(), sharp=sharp)


def _finished(out: Path, job: VideoJob, digest: str) -> VideoRecord | None:
    """The job's record if it is done, with the same settings, for the same input, with every
    output present."""
    record = load_record(out, job.name)
    if record is None or record.status != "done" or record.settings != digest:
        return None
    if record.fingerprint != job.fingerprint():
        return None
    folder = out / job.name
    if not all((folder / name).is_file() for name in record.outputs):
        return None
    return record


# ============================================================================ one video

#: Networks built in this process, by (model, weights, revision, weights file size and time):
#: a Ray worker reuses its
#: network for every video it runs (``adapt`` never changes the network it is given).
_NETWORKS: dict[tuple[str, str | None, str | None, str], nn.Module] = {}


def _network(settings: BatchSettings) -> nn.Module:
    from ttblur.io.models import load_model

    key = (settings.model, settings.weights, settings.revision, str(_weights_fingerprint(settings)))
    if key not in _NETWORKS:
        _NETWORKS[key] = load_model(settings.model, settings.weights, revision=settings.revision)
    return _NETWORKS[key]


def _mean_scores(restored: Any, sharp: Any, crop_border: int) -> dict[str, float]:
    from ttblur.evaluation import score_frames

    return score_frames(restored, sharp, crop_border).mean()


def run_video(
    job: VideoJob,
    out: str | os.PathLike[str],
    settings: BatchSettings,
    model: nn.Module | None = None,
    *,
    digest: str | None = None,
) -> VideoRecord:
    """Adapt to one video, write its outputs and manifest, and return its record.

    Any ``Exception`` (unreadable video, too few frames, a network that fails) is caught and
    recorded as ``status="failed"``; ``KeyboardInterrupt`` is not. Outputs are published
    together with a "done" manifest (:class:`~ttblur.io.atomic.StagedOutputs`); the manifest
    is then rewritten with the final seconds and warnings. A failure does not replace an
    earlier run's "done" manifest (its outputs are intact and still its own): the failure is
    in the returned record (the summary) only, and a rerun with other settings retries.

    Args:
        job: the video.
        out: the batch's output folder; the video's outputs go to ``out/<job.name>``.
        settings: what to run.
        model: the network (``None``: built from ``settings.model``).
        digest: :func:`settings_digest` of ``settings`` and ``model`` when the caller has it
            (:func:`adapt_many` computes it once per batch); ``None`` computes it.

    Returns:
        the :class:`VideoRecord` written to ``out/<job.name>/manifest.json``.
    """
    import torch

    start = time.perf_counter()
    folder = Path(out) / job.name
    fingerprint = job.fingerprint()
    if digest is None:
        digest = settings_digest(settings, model)
    record = VideoRecord(job.name, "failed", str(job.blurry), fingerprint, 0.0, digest)
    remove_stale_temporaries(folder)  # left by a run killed while writing this video
    threads = torch.get_num_threads()
    try:
        if settings.threads is not None:
            torch.set_num_threads(settings.threads)
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")

                def stamped(done: VideoRecord) -> VideoRecord:
                    """``done`` with the warnings and seconds so far: the manifest published
                    with the outputs is complete if a signal ends the run right after."""
                    seconds = round(time.perf_counter() - start, 2)
                    return replace(done, warnings=_warning_texts(caught), seconds=seconds)

                _adapt_one(job, folder, settings, model, record, stamped)
        finally:  # outside the recorder: still shown where the task runs
            record.warnings = _warning_texts(caught)
            for w in _about_the_video(caught):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        record.status = "done"
    except Exception as err:  # recorded, so that the other videos go on
        record.status = "failed"
        record.error = f"{type(err).__name__}: {err}".strip()
    finally:
        torch.set_num_threads(threads)  # the caller's setting back
    record.seconds = round(time.perf_counter() - start, 2)
    try:
        _write_manifest(Path(out), record)
    except OSError as err:  # a protected manifest must not stop the other videos
        note = f"its manifest could not be written ({type(err).__name__}: {err})"
        warnings.warn(f"{job.name}: {note}", RuntimeWarning, stacklevel=2)
        if record.status == "failed":
            record.error = f"{record.error}; {note}"
    return record


def _warning_texts(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """The video's warnings as ``Category: message`` lines, each once."""
    kept = _about_the_video(caught)
    return list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in kept))


def _write_manifest(out: Path, record: VideoRecord) -> None:
    """Write ``record`` as its video's manifest, except a failure over an earlier "done"
    manifest: that run's outputs are intact and still its own (the failure is in the
    summary; a rerun with other settings retries, one with that run's settings skips)."""
    previous = load_record(out, record.name)
    if record.status == "failed" and previous is not None and previous.status == "done":
        return
    (out / record.name).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / record.name / MANIFEST, record.to_json())


def _about_the_video(caught: Sequence[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    """The caught warnings but deprecations and resource warnings (about the code, not the
    video; Python's default filters hide them too)."""
    ignored = (DeprecationWarning, PendingDeprecationWarning, ResourceWarning)
    return [w for w in caught if not issubclass(w.category, ignored)]


def _adapt_one(
    job: VideoJob,
    folder: Path,
    settings: BatchSettings,
    model: nn.Module | None,
    record: VideoRecord,
    stamped: Callable[[VideoRecord], VideoRecord],
) -> None:
    from ttblur.api import adapt
    from ttblur.evaluation import load_pair
    from ttblur.inference import deblur, deblur_file
    from ttblur.io.video import save_video, video_info
    from ttblur.io.weights import save_weights

    network = model if model is not None else _network(settings)
    spec, device = settings.spec, settings.device
    shown = settings.progress
    run = functools.partial(adapt, config=settings.config, spec=spec, device=device, progress=shown)
    restored = None
    if job.sharp is None and settings.max_frames is None:
        # Streamed from its file (adapt through a temporary frame store, the output written
        # by deblur_file window by window): memory does not grow with the video's length.
        result = run(network, job.blurry)
    else:  # a frame cap, or scores against ground truth: both videos in memory
        if job.sharp is None:
            from ttblur.io.video import load_video

            blurry, sharp = load_video(job.blurry, max_frames=settings.max_frames), None
        else:
            blurry, sharp = load_pair(job.blurry, job.sharp, max_frames=settings.max_frames)
        result = run(network, blurry)
        restored = deblur(
            result.model, blurry, spec=result.spec, device=result.device, progress=shown
        )
        if sharp is not None:
            unadapted = deblur(
                network, blurry, spec=result.spec, device=result.device, progress=shown
            )
            border = settings.crop_border
            record.scores = {
                "blurry": _mean_scores(blurry, sharp, border),
                "unadapted": _mean_scores(unadapted.clamp(0, 1), sharp, border),
                "adapted": _mean_scores(restored.clamp(0, 1), sharp, border),
            }
    record.frames = result.report.num_frames
    record.height, record.width = result.report.frame_size
    record.patches = len(result.report.patches)
    record.reverted = result.report.reverted
    record.best_epoch = result.report.best_epoch
    with StagedOutputs() as staged:
        save_weights(result.model, staged.file(folder / "adapted.safetensors"))
        video_out = staged.file(folder / "deblurred.mp4")
        if restored is None:  # the same frames deblur + save_video give, written as they come
            deblur_file(
                result.model,
                job.blurry,
                video_out,
                spec=result.spec,
                device=result.device,
                progress=shown,
            )
        else:
            fps = video_info(job.blurry).fps or 25.0
            save_video(restored.clamp(0, 1), video_out, fps=fps)
        staged.file(folder / "report.json").write_text(
            result.report.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
        record.outputs = list(OUTPUTS)
        # Published with the outputs (renamed last, signals deferred): an interrupt can never
        # leave new outputs under an earlier run's "done" manifest, and it holds the warnings
        # and seconds so far. run_video rewrites it with the final seconds.
        done = stamped(replace(record, status="done"))
        staged.file(folder / MANIFEST).write_text(done.to_json(), encoding="utf-8")


# ============================================================================ many videos


@dataclass
class BatchResult:
    """What :func:`adapt_many` did.

    Attributes:
        records: one per job, in the jobs' order.
        ran: names of the videos run by this call.
        skipped: names of the videos already done by an earlier run (not run again).
        backend: ``"ray"`` or ``"local"``.
        seconds: wall time of the call.
    """

    records: list[VideoRecord]
    ran: list[str]
    skipped: list[str]
    backend: str
    seconds: float

    @property
    def failed(self) -> list[VideoRecord]:
        """Records of the videos that failed."""
        return [r for r in self.records if r.status == "failed"]


def ray_available() -> bool:
    """Whether Ray can be imported (``pip install ttblur[ray]``)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _choose_backend(backend: Backend, workers: int, address: str | None) -> str:
    if backend not in ("auto", "local", "ray"):
        raise ValueError(f"backend must be 'auto', 'local' or 'ray', got {backend!r}")
    if backend == "local" and address is not None:
        raise ValueError("a Ray address needs the 'ray' (or 'auto') backend")
    if backend == "ray" or (backend == "auto" and address is not None):
        if not ray_available():
            raise ImportError("the 'ray' backend needs Ray: pip install 'ttblur[ray]'")
        return "ray"
    if backend == "auto" and workers > 1 and ray_available():
        return "ray"
    return "local"


def _check_ray_device(device: str | None, gpus: float) -> None:
    """Refuse a CUDA device Ray tasks could not see: Ray hides every GPU from a task that
    declares none (``CUDA_VISIBLE_DEVICES`` empty) and numbers a task's GPUs from 0."""
    if device is None:
        return
    import torch

    wanted = torch.device(device)
    if wanted.type != "cuda":
        return
    if gpus == 0:
        raise ValueError(
            f"device {device!r} on Ray workers needs gpus_per_video > 0 (--gpus-per-video; "
            "0.25 shares a GPU between 4 videos): Ray hides the GPUs from tasks that declare none"
        )
    visible = max(1, math.ceil(gpus))
    if wanted.index is not None and wanted.index >= visible:
        raise ValueError(
            f"device {device!r}: a Ray task sees only the {visible} GPU(s) it declares, "
            "numbered from 0; use device 'cuda'"
        )


def _check_jobs(jobs: Sequence[VideoJob], out: Path) -> None:
    names = [job.name for job in jobs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"video names must be unique, repeated: {', '.join(duplicates)}")
    for job in jobs:
        if not job.name or job.name in (".", "..") or "/" in job.name or os.sep in job.name:
            raise ValueError(f"video name {job.name!r} cannot name an output folder")
        if job.name.startswith(TEMP_MARKER) or job.name in (SUMMARY_JSON, SUMMARY_MD):
            raise ValueError(f"video name {job.name!r} is reserved for the batch's own files")
    inputs = [(f"video {job.name!r}", job.blurry) for job in jobs]
    inputs += [(f"sharp frames of {job.name!r}", job.sharp) for job in jobs if job.sharp]
    check_planned_paths(inputs, [PlannedOutput("out", out, True)])
    check_output_folders(
        inputs,
        [(f"the output folder of {job.name!r}", out / job.name) for job in jobs],
        files=(*OUTPUTS, MANIFEST),
    )


def adapt_many(
    jobs: Sequence[VideoJob],
    out: str | os.PathLike[str],
    settings: BatchSettings | None = None,
    *,
    model: nn.Module | None = None,
    workers: int = 1,
    backend: Backend = "auto",
    ray_address: str | None = None,
    cpus_per_video: float = 1.0,
    gpus_per_video: float = 0.0,
    max_retries: int = 3,
    on_record: Callable[[VideoRecord], None] | None = None,
) -> BatchResult:
    """Adapt to every video of ``jobs`` on its own, skipping those already done.

    Args:
        jobs: the videos (:func:`find_videos`, :func:`dataset_jobs`); names must be unique.
        out: output folder (created): ``out/<name>/`` per video, ``summary.json`` / ``.md``.
        settings: network, configuration and scoring (default :class:`BatchSettings()`).
        model: the network itself instead of ``settings.model`` (sent once to the workers).
        workers: videos run at once (local Ray runtime: ``workers * cpus_per_video`` CPUs;
            on a cluster its free resources decide).
        backend: ``"auto"``, ``"local"`` (one after another here) or ``"ray"``.
        ray_address: a running Ray cluster's address (``"auto"``: the one ``RAY_ADDRESS``
            names or started on this machine); ``None``: a local runtime of this call's own.
        cpus_per_video: CPUs each Ray task declares (``settings.threads`` defaults to it).
        gpus_per_video: GPUs each Ray task declares (fractions share a GPU).
        max_retries: Ray retries of a task whose worker died (failures inside a task are
            recorded, not retried).
        on_record: called with each record as its video finishes (progress).

    Returns:
        :class:`BatchResult`.

    Raises:
        ValueError: repeated or unusable names, an output folder inside an input, bad counts.
        FileNotFoundError: a missing input.
        ImportError: the Ray backend without Ray installed.
    """
    start = time.perf_counter()
    settings = settings if settings is not None else BatchSettings()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if cpus_per_video <= 0 or gpus_per_video < 0 or max_retries < 0:
        raise ValueError("cpus_per_video must be > 0, gpus_per_video and max_retries >= 0")
    # Absolute paths: a Ray worker of a cluster runs in another folder than this process.
    root = Path(out).expanduser().absolute()
    jobs = [_absolute_job(job) for job in jobs]
    _check_jobs(jobs, root)
    chosen = _choose_backend(backend, workers, ray_address)
    if chosen == "ray":
        _check_ray_device(settings.device, gpus_per_video)
    root.mkdir(parents=True, exist_ok=True)
    if chosen == "ray" and settings.threads is None:
        settings = settings.model_copy(update={"threads": max(int(cpus_per_video), 1)})
    digest = settings_digest(settings, model)  # of the paths as given: earlier runs still match
    settings = _absolute_settings(settings)
    records: dict[str, VideoRecord] = {}
    skipped = []
    for job in jobs:
        done = _finished(root, job, digest)
        if done is not None:
            records[job.name] = done
            skipped.append(job.name)
    todo = [job for job in jobs if job.name not in records]
    order = [job.name for job in jobs]
    for job in todo:  # the summary lists every video from the start
        records[job.name] = VideoRecord(
            job.name, "pending", str(job.blurry), job.fingerprint(), 0.0, digest
        )

    def finished(record: VideoRecord) -> None:
        records[record.name] = record
        _write_summary(root, [records[n] for n in order])
        if on_record is not None:
            on_record(record)

    _write_summary(root, [records[n] for n in order])
    if chosen == "ray":
        _run_ray(
            todo,
            root,
            settings,
            model,
            workers,
            ray_address,
            cpus_per_video,
            gpus_per_video,
            max_retries,
            digest,
            finished,
        )
    else:
        for job in todo:
            finished(run_video(job, root, settings, model, digest=digest))
    return BatchResult(
        [records[n] for n in order],
        [job.name for job in todo],
        skipped,
        chosen,
        time.perf_counter() - start,
    )


def _check_feasible(resources: dict[str, float], cpus: float, gpus: float) -> None:
    """Refuse tasks no node of the Ray cluster can run: Ray would wait for them forever."""
    for name, wanted in (("CPU", cpus), ("GPU", gpus)):
        have = float(resources.get(name, 0.0))
        if wanted > have:
            option = f"--{name.lower()}s-per-video"
            raise ValueError(
                f"{option} {wanted:g} but the Ray cluster has {have:g} {name}(s) in all: no "
                "task could ever start"
                + (" (no GPU is visible to Ray)" if name == "GPU" and have == 0 else "")
            )


def _task(
    job: VideoJob, out: str, settings: BatchSettings, model: nn.Module | None, digest: str
) -> VideoRecord:
    """The body of a Ray task (Ray resolves ``model`` from the object store)."""
    return run_video(job, out, settings, model, digest=digest)


def _run_ray(
    todo: Sequence[VideoJob],
    out: Path,
    settings: BatchSettings,
    model: nn.Module | None,
    workers: int,
    address: str | None,
    cpus: float,
    gpus: float,
    retries: int,
    digest: str,
    finished: Callable[[VideoRecord], None],
) -> None:
    import ray

    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if address is None:
            # "local": a runtime of our own even where ray.init() alone would join another
            # (RAY_ADDRESS set, or a `ray start` cluster on this machine), which also refuses
            # num_cpus; joining a cluster is what --ray-address asks for.
            address = "local"
            options["num_cpus"] = max(round(workers * cpus), 1)
        with kept_signal_handlers():  # ray.init installs its own SIGTERM handler
            try:
                ray.init(address=address, **options)
            except ConnectionError as err:
                raise ConnectionError(
                    f"{err} (a wrong address, or a cluster with token authentication: Ray >= "
                    "2.59 turns it on for the clusters it starts, and a driver joining one by "
                    "address needs RAY_AUTH_MODE=token and the cluster's token; 'auto' finds a "
                    "cluster started on this machine; docs/many-videos.md)"
                ) from err
        started = True
    try:
        _check_feasible(ray.cluster_resources(), cpus, gpus)
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=retries)(_task)
        shared: Any = ray.put(model) if model is not None else None
        pending = {task.remote(job, str(out), settings, shared, digest): job for job in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as err:  # the worker died after its retries
                    record = VideoRecord(
                        job.name,
                        "failed",
                        str(job.blurry),
                        job.fingerprint(),
                        0.0,
                        digest,
                        error=f"{type(err).__name__}: {err}".strip(),
                    )
                    _write_manifest(out, record)
                finished(record)
    finally:
        if started:
            ray.shutdown()


# ============================================================================ summary


def summary_table(records: Sequence[VideoRecord]) -> str:
    """A Markdown table of the records: status, seconds, frames and, with ground truth, the
    PSNR / SSIM of the blurry input, the unadapted and the adapted network and the gain."""
    lines = [
        "| video | status | seconds | frames | blurry PSNR / SSIM | unadapted PSNR / SSIM "
        "| adapted PSNR / SSIM | gain (dB) | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        if r.scores is not None:
            cells = [f"{r.scores[k]['psnr']:.2f} / {r.scores[k]['ssim']:.4f}" for k in KINDS]
            gain = f"{r.gain:+.2f}"
        else:
            cells, gain = ["-"] * len(KINDS), "-"
        notes = [r.error] if r.error else []
        if r.status == "done" and r.reverted:
            notes.append("unadapted weights kept")
        if r.warnings:  # the first one, and how many more the manifest holds
            more = f" (+{len(r.warnings) - 1} more in its manifest)" if len(r.warnings) > 1 else ""
            notes.append(r.warnings[0][:120] + more)
        note = _cell("; ".join(notes))
        frames = "-" if r.frames is None else str(r.frames)
        lines.append(
            f"| {_cell(r.name)} | {r.status} | {r.seconds:.1f} | {frames} | {' | '.join(cells)} "
            f"| {gain} | {note[:200]} |"
        )
    return "\n".join(lines)


def _cell(text: str) -> str:
    """``text`` safe in a Markdown table cell (no ``|``, no line break)."""
    return text.replace("|", "/").replace("\n", " ")


def _write_summary(out: Path, records: Sequence[VideoRecord]) -> None:
    atomic_write_json(out / SUMMARY_JSON, [asdict(r) for r in records])
    atomic_write_text(out / SUMMARY_MD, summary_table(records) + "\n")
