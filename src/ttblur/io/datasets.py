"""Datasets with ground truth: the sequences of a GoPro- or BSD-layout folder.

Layouts (also accepted one level down, under ``test/``):

* GoPro: ``ROOT/<sequence>/blur/*.png`` and ``ROOT/<sequence>/sharp/*.png``;
* BSD: ``ROOT/<sequence>/Blur/RGB/*.png`` and ``ROOT/<sequence>/Sharp/RGB/*.png``;
* a single sequence folder (``ROOT/blur`` + ``ROOT/sharp``) is one sequence.

Sequences come in natural name order (:func:`ttblur.io.paths.natural_key`); the frames of
each folder are read with :func:`ttblur.io.video.load_video` (natural order too).

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("10", "2"):
    ...     for part in ("blur", "sharp"):
    ...         (root / name / part).mkdir(parents=True)
    >>> [seq.name for seq in find_sequences(root)]
    ['2', '10']
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from ttblur.io.paths import natural_key

__all__ = [
    "LAYOUTS",
    "DatasetSequence",
    "IncompleteSequenceWarning",
    "find_sequences",
    "select_sequences",
]

#: Known layouts: name -> (blurry frames folder, sharp frames folder) inside a sequence.
LAYOUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gopro": (("blur",), ("sharp",)),
    "bsd": (("Blur", "RGB"), ("Sharp", "RGB")),
}


@dataclass(frozen=True)
class DatasetSequence:
    """One sequence of a dataset with ground truth.

    Attributes:
        name: the sequence folder's name.
        layout: ``"gopro"`` or ``"bsd"`` (a key of :data:`LAYOUTS`).
        blur: folder of the blurry frames.
        sharp: folder of the sharp frames.
    """

    name: str
    layout: str
    blur: Path
    sharp: Path


class IncompleteSequenceWarning(UserWarning):
    """A dataset folder holds a sequence with blurry frames and no sharp ones, or the
    reverse: it is not evaluated."""


def _sequence_at(folder: Path, name: str) -> DatasetSequence | None:
    for layout, (blur_parts, sharp_parts) in LAYOUTS.items():
        blur, sharp = folder.joinpath(*blur_parts), folder.joinpath(*sharp_parts)
        if blur.is_dir() and sharp.is_dir():
            return DatasetSequence(name, layout, blur, sharp)
    return None


def _half_of_a_sequence(folder: Path) -> str | None:
    """What a folder holding one half of a sequence lacks (``"blur/ without sharp/"``)."""
    for blur_parts, sharp_parts in LAYOUTS.values():
        blur, sharp = "/".join(blur_parts) + "/", "/".join(sharp_parts) + "/"
        if folder.joinpath(*blur_parts).is_dir():
            return f"{blur} without {sharp}"
        if folder.joinpath(*sharp_parts).is_dir():
            return f"{sharp} without {blur}"
    return None


def find_sequences(root: str | os.PathLike[str]) -> list[DatasetSequence]:
    """The sequences of a GoPro- or BSD-layout dataset folder, in natural name order.

    ``root/<seq>/blur`` + ``root/<seq>/sharp`` (GoPro) or ``root/<seq>/Blur/RGB`` +
    ``root/<seq>/Sharp/RGB`` (BSD); when ``root`` holds none, ``root/test`` is searched; a
    single sequence folder (``root/blur`` + ``root/sharp``) is one sequence. Hidden folders
    are skipped.

    Args:
        root: the dataset folder.

    Returns:
        the sequences (at least one).

    Warns:
        IncompleteSequenceWarning: naming the folders that hold one half of a sequence
            (blurry frames without sharp ones, or the reverse); they are not returned.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: no sequence found.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    single = _sequence_at(base, base.resolve().name)  # `.` and `..` have no name of their own
    if single is not None:
        return [single]
    # Halves of sequences found so far, per folder: warned about beside complete sequences
    # found (in root or, when root has none, in root/test), else the error.
    incomplete: dict[Path, list[str]] = {}
    for folder in (base, base / "test"):
        if not folder.is_dir():
            continue
        found: list[DatasetSequence] = []
        for child in sorted(folder.iterdir(), key=natural_key):
            if not child.is_dir() or child.name.startswith("."):
                continue
            seq = _sequence_at(child, child.name)
            if seq is not None:
                found.append(seq)
            elif (lacks := _half_of_a_sequence(child)) is not None:
                incomplete.setdefault(folder, []).append(f"{child.name} ({lacks})")
        if found:
            for where, names in incomplete.items():
                warnings.warn(
                    f"{len(names)} incomplete sequence(s) in {where} not evaluated: "
                    + ", ".join(names[:10])
                    + (" ..." if len(names) > 10 else ""),
                    IncompleteSequenceWarning,
                    stacklevel=2,
                )
            return found
    if incomplete:
        where, names = next(iter(incomplete.items()))  # the root's halves first
        raise ValueError(
            f"no complete sequence in {where}: "
            + ", ".join(names[:10])
            + " (every sequence needs its blurry and its sharp frames)"
        )
    raise ValueError(
        f"no sequence found in {root}: expected <seq>/blur + <seq>/sharp (GoPro) or "
        "<seq>/Blur/RGB + <seq>/Sharp/RGB (BSD), directly or under test/"
    )


def select_sequences(
    sequences: list[DatasetSequence], names: str | None, *, option: str = "--sequences"
) -> list[DatasetSequence]:
    """The sequences named in a comma-separated list, in the list's order (duplicates once).

    Args:
        sequences: what :func:`find_sequences` found.
        names: ``"000,001"``; ``None`` keeps every sequence.
        option: how the error message calls the list.

    Returns:
        the selected sequences.

    Raises:
        ValueError: an unknown name, or an empty list; the message lists the known names.
    """
    if names is None:
        return sequences
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {s.name: s for s in sequences}
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        listed = ", ".join(list(known)[:20]) + (" ..." if len(known) > 20 else "")
        raise ValueError(f"{option}: unknown {', '.join(unknown) or '(empty)'}; known: {listed}")
    return [known[n] for n in dict.fromkeys(wanted)]
