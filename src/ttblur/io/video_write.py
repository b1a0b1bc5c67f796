"""Writing videos: a video file (PyAV) or a folder of PNG frames, atomically.

:func:`save_video` writes frames held in memory; :func:`write_frames` is the same writer fed a
chunk at a time, so a long video is never held in memory (:func:`ttblur.inference.deblur_file`
streams through it). Every output goes through :mod:`ttblur.io.atomic`: an interrupted or
failed write leaves an earlier file or frame folder under that name unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ttblur.io.atomic import StagedOutputs, atomic_path
from ttblur.io.frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, check_frames, float_chunks
from ttblur.io.paths import FRAMES_LIST, refuse_foreign_images

__all__ = ["UNWRITABLE_MEDIA", "output_is_file", "save_video", "write_frames"]


#: Suffixes of media formats save_video does not write: such a name is an error, not the
#: name of a PNG folder (``clip.webm`` would otherwise become a folder of that name).
UNWRITABLE_MEDIA: tuple[str, ...] = (
    ".webm", ".gif", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv", ".ts", ".3gp", ".y4m", ".h264",
)  # fmt: skip


def output_is_file(path: str | os.PathLike[str]) -> bool:
    """Whether :func:`save_video` writes a video file at ``path`` (its suffix is one of
    :data:`~ttblur.io.frames.VIDEO_EXTENSIONS`) rather than a folder of PNGs.

    Raises:
        ValueError: an image file name (``x.png``) or a media format it does not write
            (:data:`UNWRITABLE_MEDIA`), so that the CLI refuses it before any work.
    """
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS or suffix in UNWRITABLE_MEDIA:
        kind = "an image file" if suffix in IMAGE_EXTENSIONS else f"a {suffix} file"
        raise ValueError(
            f"'{path}' names {kind}; save_video writes a video file "
            f"({', '.join(VIDEO_EXTENSIONS)}) or a folder of PNGs (a name without those suffixes)"
        )
    return suffix in VIDEO_EXTENSIONS


def _pick_codec(codec: str | None) -> str:
    import av

    if codec is None:
        return "libx264" if "libx264" in av.codecs_available else "mpeg4"
    try:
        av.Codec(codec, "w")
    except Exception as err:
        raise ValueError(f"video codec '{codec}' is not available for encoding in PyAV") from err
    return codec


def _quantize(frames: Tensor, bit_depth: int) -> np.ndarray:
    """``(n, 3, H, W)`` float in [0, 1] -> ``(n, H, W, 3)`` uint8/uint16, rounded."""
    peak = 255.0 if bit_depth == 8 else 65535.0
    dtype = torch.uint8 if bit_depth == 8 else torch.int32
    out = (frames.permute(0, 2, 3, 1) * peak).round_().to(dtype).cpu().numpy()
    return out if bit_depth == 8 else out.astype(np.uint16)


def save_video(
    frames: Tensor | np.ndarray,
    path: str | os.PathLike[str],
    fps: float = 25.0,
    *,
    crf: int = 18,
    codec: str | None = None,
    pix_fmt: str | None = None,
    bit_depth: int = 8,
) -> Path:
    """Write a video to a file (PyAV) or to a folder of PNG frames.

    A path ending in ``.mp4 .mkv .avi .mov .m4v`` is encoded with PyAV: ``libx264`` (falls back
    to ``mpeg4`` when the PyAV build lacks it) in ``yuv420p``, tagged BT.601 limited range so
    that :func:`load_video` and players decode the same colours. ``yuv420p`` needs an even
    width and height: for odd sizes ``libx264`` uses ``yuv444p`` instead (exact size kept; some
    players do not play 4:4:4), ``mpeg4`` keeps ``yuv420p`` (it handles odd sizes). Any other
    path is a folder (created) of zero-padded PNGs ``00000.png, 00001.png, ...`` which
    :func:`load_video` reads back exactly up to the 8-bit (or 16-bit) rounding. Existing
    ``<digits>.png`` files in that folder are replaced or removed; a folder that holds other
    image files is refused, because loading it back would mix them in.

    Args:
        frames: ``(T, 3, H, W)`` tensor (float in ``[0, 1]`` or uint8) or ``(T, H, W, 3)``
            array, validated like :func:`load_video`.
        path: output file or folder.
        fps: frames per second (video files only), > 0.
        crf: ``libx264`` constant rate factor in ``[0, 51]`` (lower is better, 18 is visually
            lossless); for ``mpeg4`` it sets ``qscale = clip(round(crf / 6), 1, 31)``.
        codec: PyAV encoder name, ``None`` for the default above.
        pix_fmt: encoder pixel format, ``None`` for the default above.
        bit_depth: 8 or 16 bits per sample for PNG folders (video files: 8 only).

    Returns:
        the path written.

    Raises:
        ValueError: invalid frames (as :func:`load_video`), no frames (``T = 0``), ``fps``,
            ``crf``, ``bit_depth``, unavailable codec, an image-file path (``x.png``), or a
            folder holding other image files.
    """
    if not isinstance(frames, (Tensor, np.ndarray)):
        raise ValueError(
            "save_video needs frames as a (T, 3, H, W) tensor or a (T, H, W, 3) array, got "
            f"{type(frames).__name__}"
        )
    check_frames(frames)
    return write_frames(
        float_chunks(frames),
        path,
        fps,
        crf=crf,
        codec=codec,
        pix_fmt=pix_fmt,
        bit_depth=bit_depth,
        total=int(frames.shape[0]),
    )


def write_frames(
    chunks: Iterable[Tensor],
    path: str | os.PathLike[str],
    fps: float = 25.0,
    *,
    crf: int = 18,
    codec: str | None = None,
    pix_fmt: str | None = None,
    bit_depth: int = 8,
    total: int | None = None,
) -> Path:
    """The writer behind :func:`save_video`, fed incrementally.

    ``chunks`` yields float32 ``(n, 3, H, W)`` tensors in ``[0, 1]`` (already validated); they
    are encoded as they arrive, so a long video is never held in memory (used by
    :func:`ttblur.inference.deblur_file`). The options are checked before the first chunk is
    pulled; ``total`` (optional) only sets the digit count of PNG names. An error raised by
    ``chunks`` itself propagates unchanged (a partial video file is deleted first).
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    if fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an int in [0, 51], got {crf!r}")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    out = Path(path).expanduser()
    if output_is_file(out):
        if bit_depth != 8:
            raise ValueError("bit_depth=16 is only supported for PNG folders, not video files")
        _write_video_file(chunks, out, fps, crf, codec, pix_fmt)
    else:
        _write_png_folder(chunks, out, bit_depth, total)
    return out


def _no_frames(path: Path) -> ValueError:
    return ValueError(f"no frames to write to '{path}' (the video is empty)")


def _write_png_folder(
    chunks: Iterable[Tensor], folder: Path, bit_depth: int, total: int | None
) -> None:
    """Encode the frames into a hidden staging folder inside ``folder``, then move them in.

    Nothing in ``folder`` changes until every frame is encoded: an error or an interrupt
    leaves the frames of an earlier run there complete (see :class:`ttblur.atomic.StagedOutputs`).
    """
    import cv2

    if folder.exists() and not folder.is_dir():
        raise ValueError(f"'{folder}' exists and is not a folder")
    earlier = refuse_foreign_images(folder, f"folder '{folder}'")
    digits = max(5, len(str(total - 1))) if total else 5
    with StagedOutputs() as staged:
        # Stale frames of a longer video go; only the frames an earlier write listed are ours.
        stage = staged.folder(folder, replaces=earlier)
        names: list[str] = []
        for chunk in chunks:
            for image in _quantize(chunk, bit_depth):
                ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
                if not ok:
                    raise ValueError(f"OpenCV could not encode frame {len(names)} as PNG")
                names.append(f"{len(names):0{digits}d}.png")
                encoded.tofile(stage / names[-1])
        if not names:
            raise _no_frames(folder)
        (stage / FRAMES_LIST).write_text("\n".join(names) + "\n", encoding="utf-8")


def _write_video_file(
    chunks: Iterable[Tensor],
    path: Path,
    fps: float,
    crf: int,
    codec: str | None,
    pix_fmt: str | None,
) -> None:
    import av

    name = _pick_codec(codec)
    pending = iter(chunks)
    first = next(pending, None)  # the frame size is needed before the stream is opened
    if first is None:
        raise _no_frames(path)
    height, width = int(first.shape[-2]), int(first.shape[-1])
    failed_upstream: list[BaseException] = []

    def pulled() -> Iterator[Tensor]:
        yield first
        while True:
            try:
                chunk = next(pending)
            except StopIteration:
                return
            except BaseException as err:  # the producer's own error: not an encoding error
                failed_upstream.append(err)
                raise
            yield chunk

    if pix_fmt is None:
        even = height % 2 == 0 and width % 2 == 0
        pix_fmt = "yuv420p" if even or name == "mpeg4" else "yuv444p"
    options: dict[str, str] = {}
    if name in ("libx264", "libx265"):
        options["crf"] = str(crf)
    elif name == "mpeg4":
        options["flags"] = "+qscale"
        options["global_quality"] = str(118 * min(31, max(1, round(crf / 6))))  # FF_QP2LAMBDA
    try:
        with atomic_path(path) as tmp, av.open(str(tmp), mode="w") as container:
            stream = container.add_stream(name, rate=Fraction(fps).limit_denominator(100000))
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            context = stream.codec_context
            yuv = pix_fmt.startswith("yuv")
            if yuv:  # tag BT.601 limited range: what the conversion below produces
                context.colorspace = 6  # AVCOL_SPC_SMPTE170M
                context.color_primaries = 6  # AVCOL_PRI_SMPTE170M
                context.color_trc = 6  # AVCOL_TRC_SMPTE170M
                context.color_range = 1  # AVCOL_RANGE_MPEG
            stream.options = options
            # A pix_fmt of more than 8 bits gets 16-bit RGB: 8-bit input would round first.
            deep = max(c.bits for c in av.VideoFormat(pix_fmt).components) > 8
            rgb, depth = ("rgb48le", 16) if deep else ("rgb24", 8)
            for chunk in pulled():
                for image in _quantize(chunk, depth):
                    frame = av.VideoFrame.from_ndarray(image, format=rgb)
                    if yuv:
                        frame = frame.reformat(
                            format=pix_fmt, dst_colorspace="itu601", dst_color_range="MPEG"
                        )
                    container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    except BaseException as err:  # atomic_path removed the partial file; `path` is untouched
        if failed_upstream or not isinstance(err, (av.FFmpegError, OSError, ValueError)):
            raise
        raise ValueError(
            f"encoding '{path}' with codec '{name}' / pix_fmt '{pix_fmt}' failed: {err}"
        ) from err
