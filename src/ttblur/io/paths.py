"""Paths: the natural order of names, frame-file names, and the checks run before writing.

* :func:`natural_key`: ``2.png`` before ``10.png``; frame folders
  (:func:`ttblur.io.video.load_video`), dataset sequences
  (:func:`ttblur.io.datasets.find_sequences`) and training photo folders are listed in this
  order.
* :data:`FRAME_FILE`: the names of the frames :func:`ttblur.io.video.save_video` writes into a
  PNG folder (``00000.png``, ...: five digits or more), :data:`FRAMES_LIST`, the hidden file
  listing them, and :func:`refuse_foreign_images`, the refusal of a PNG-folder output that
  holds any other image (it would mix with or delete them).
* :func:`check_planned_paths`: every input and output of a command checked before any work is
  done (the CLI's ``check_paths``), so that a run never fails halfway on a path.
* :func:`absolute_if_local`: a local path made absolute, so that it names the same file in a
  process with another working directory (a Ray worker on a cluster).

Example:
    >>> sorted(["10.png", "2.png", "B1.png", "a3.png"], key=natural_key)
    ['2.png', '10.png', 'a3.png', 'B1.png']
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from ttblur.io.atomic import temp_name, write_target
from ttblur.io.frames import IMAGE_EXTENSIONS

__all__ = [
    "FRAMES_LIST",
    "FRAME_FILE",
    "OutputPathError",
    "PlannedOutput",
    "absolute_if_local",
    "check_output_folders",
    "check_planned_paths",
    "natural_key",
    "refuse_foreign_images",
    "same_file",
    "written_frames",
]

_DIGITS = re.compile(r"([0-9]+)")

#: Names of the frames written into a PNG folder: five digits or more, ``.png``.
FRAME_FILE = re.compile(r"^[0-9]{5,}\.png$")

#: The hidden file in which a PNG-folder write lists its frames, one name per line. Only the
#: frames it lists are ttblur's: a later write replaces or removes them, and any other image
#: in the folder (``1.png``, or ffmpeg's ``00001.png``) is the user's.
FRAMES_LIST = ".ttblur-frames"


def written_frames(folder: Path) -> list[str]:
    """The frames an earlier write listed in ``folder`` (:data:`FRAMES_LIST`) that are still
    there; empty when it lists none."""
    try:
        names = (folder / FRAMES_LIST).read_text(encoding="utf-8").split("\n")
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return []
    return [n for n in names if FRAME_FILE.match(n) and (folder / n).is_file()]


def refuse_foreign_images(folder: Path, shown: str) -> list[str]:
    """Refuse a PNG-folder output ``folder`` that holds image files ttblur did not write (not
    listed in its :data:`FRAMES_LIST`, not hidden): frames written there would mix with them
    or replace them. Nothing to refuse when ``folder`` is not a folder.

    Returns:
        the frames an earlier write listed there (:func:`written_frames`), which a new write
        replaces.

    Raises:
        OutputPathError: naming ``shown`` (the option or the folder) and one such file.
    """
    if not folder.is_dir():
        return []
    listed = written_frames(folder)
    ours = set(listed)
    foreign = sorted(
        (
            p.name
            for p in folder.iterdir()
            if p.suffix.lower() in IMAGE_EXTENSIONS
            and p.name not in ours
            and not p.name.startswith(".")
        ),
        key=natural_key,
    )
    if foreign:
        raise OutputPathError(
            f"{shown} already holds image files that ttblur did not write (e.g. "
            f"'{foreign[0]}'); frames written there would mix with them or replace them: use "
            f"an empty or new folder (frames written before ttblur listed them in "
            f"{FRAMES_LIST} count as the user's too)"
        )
    return listed


def natural_key(name: str | os.PathLike[str]) -> tuple[list[int | str], str]:
    """Sort key of a name in natural order: runs of digits compare as numbers, the rest
    case-insensitively; ties are broken by the exact name, so the order is total.

    Args:
        name: a file or folder name, or a path (its last component is used).

    Returns:
        the key, for ``sorted(..., key=natural_key)``.
    """
    text = PurePath(name).name if isinstance(name, os.PathLike) else name
    parts = _DIGITS.split(text)
    key: list[int | str] = [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)]
    return key, text


class OutputPathError(ValueError):
    """An output path that cannot be written safely (a ``ValueError``); the message names the
    option and the path."""


@dataclass(frozen=True)
class PlannedOutput:
    """One path a command writes.

    Attributes:
        option: the option that names it (``"--out"``), shown in messages.
        path: the path.
        folder: whether a folder is written there (else a file).
        frames: whether the folder receives numbered PNG frames (:data:`FRAME_FILE`).
    """

    option: str
    path: Path
    folder: bool
    frames: bool = False


def absolute_if_local(text: str | None) -> str | None:
    """``text`` as an absolute path (``~`` expanded, against this process's working directory)
    when it names an existing file or folder here, else unchanged: a Hub repo id, a path that
    does not exist, ``None``.

    Another process reading the same file system, but started in another folder (a Ray
    worker of a cluster), then finds the same file. An existing local folder wins over a Hub
    repo id of the same spelling, as in :func:`ttblur.io.weights.resolve_pretrained`.

    Example:
        >>> absolute_if_local("owner/no-such-repo-here")
        'owner/no-such-repo-here'
    """
    if text is None:
        return None
    path = Path(text).expanduser()
    return str(path.absolute()) if path.exists() else text


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file: hard links and symbolic links included."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    real, base = path.resolve(), folder.resolve()
    return real == base or real.is_relative_to(base)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (where a missing folder would be created)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _check_writable(shown: str, folder: Path) -> None:
    """The nearest existing folder at or above ``folder`` must accept new files."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OutputPathError(f"{shown}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{shown}: the folder {existing} is not writable")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise OutputPathError(f"{shown}: cannot write in the folder {existing} ({err})") from err


#: Bytes a temporary name may need beyond the one :func:`temp_name` gives now (a longer pid).
_PID_ROOM = 10


def _check_name_room(shown: str, path: Path) -> None:
    """The file is written under a hidden temporary name longer than its own: that name must
    fit the file system's limit too, or the write fails after all the work."""
    try:
        limit = os.pathconf(_nearest_existing(path.parent), "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    needed = len(os.fsencode(temp_name(path).name)) + _PID_ROOM
    if needed > limit:
        extra = needed - len(os.fsencode(path.name))
        raise OutputPathError(
            f"{shown}: the file name is {len(os.fsencode(path.name))} bytes; ttblur writes it "
            f"under a temporary name {extra} bytes longer, beyond this file system's limit of "
            f"{limit}: shorten the name to at most {limit - extra} bytes"
        )


def _check_output(output: PlannedOutput, inputs: Sequence[tuple[str, Path]]) -> None:
    path, shown = output.path, f"{output.option} {output.path}"
    if output.folder and path.exists() and not path.is_dir():
        raise OutputPathError(f"{shown} exists and is not a folder (a folder is written there)")
    if not output.folder and path.is_dir():
        raise OutputPathError(f"{shown} is a folder, but a file is written there")
    if not output.folder:
        try:
            path = write_target(path)  # a symbolic link: the file it points to is written
        except PermissionError as err:
            raise OutputPathError(f"{shown}: {err}") from err
        _check_name_room(shown, path)
    if output.frames:
        refuse_foreign_images(path, shown)
    for what, source in inputs:
        if not output.folder and source.is_file() and path.exists() and same_file(path, source):
            raise OutputPathError(
                f"{shown} is the input {what} {source} (the same file); writing it would "
                "destroy the input"
            )
        if source.is_dir() and _inside(path, source):
            raise OutputPathError(
                f"{shown} is inside the input {what} {source}; ttblur never writes into its "
                "input folder (pick a folder outside it)"
            )
        if (
            output.frames
            and source.is_file()
            and FRAME_FILE.match(source.name)
            and source.parent.resolve() == path.resolve()
        ):
            raise OutputPathError(
                f"{shown}: the input {source} would be replaced by an output frame"
            )
    _check_writable(shown, path if output.folder else path.parent)


def check_planned_paths(
    inputs: Sequence[tuple[str, Path]], outputs: Sequence[PlannedOutput]
) -> None:
    """Validate every input and output path of a command before any work is done.

    Inputs must exist. Outputs: no output may need a folder where another writes a file, and
    no two options may write the same file; a folder output must not be an existing file and a file
    output not an existing folder nor a read-only file (a symbolic link is checked at its
    target); no output may be an input (compared as files, so a hard
    link or symbolic link to the input counts) or lie inside an input folder; a frame folder
    output must not hold an input named like one of its frames; the nearest existing folder
    of each output must be writable (checked by creating a temporary file there). Nothing is
    created.

    Args:
        inputs: ``(what, path)`` of everything read (``what`` is shown in messages).
        outputs: everything written.

    Raises:
        FileNotFoundError: a missing input.
        OutputPathError: any output problem, naming the option and the path.
    """
    for what, path in inputs:
        if not path.exists():
            raise FileNotFoundError(f"{what} not found: {path}")
    _check_outputs_apart(outputs)
    for output in outputs:
        _check_output(output, inputs)


def _check_outputs_apart(outputs: Sequence[PlannedOutput]) -> None:
    """No output may need a file where another needs a folder (the same path, or a path
    inside a file), and no two options may write the same file."""
    resolved = [(output, output.path.resolve()) for output in outputs]
    files: dict[Path, PlannedOutput] = {}
    for output, real in resolved:
        if output.folder:
            continue
        other = files.setdefault(real, output)
        if other.option != output.option:
            raise OutputPathError(
                f"{output.option} {output.path}: {other.option} writes the same file "
                f"({other.path}); give the two options different paths"
            )
    for output, real in resolved:
        for parent in (real, *real.parents):
            clash = files.get(parent)
            if clash is not None and (output.folder or parent != real):
                raise OutputPathError(
                    f"{output.option} {output.path}: {clash.option} writes the file "
                    f"{clash.path} there, so it cannot be a folder; give the two options "
                    "different paths"
                )


def check_output_folders(
    inputs: Sequence[tuple[str, Path]],
    folders: Sequence[tuple[str, Path]],
    *,
    files: Sequence[str] = (),
) -> None:
    """Refuse output folders that are, lie inside, or hold an input (a batch's per-video
    folders ``OUT/<name>``, checked together before any work), and files named ``files`` in
    them that are an input (a symbolic or hard link left there: writing it would replace the
    input).

    Linear in the number of paths: each path is resolved once and compared with the set of
    the inputs' folders and ancestors, so a dataset of thousands of videos is checked quickly.

    Args:
        inputs: ``(what, path)`` of everything read (existing paths).
        folders: ``(what, path)`` of the output folders.
        files: names of the files written in each folder.

    Raises:
        OutputPathError: a folder that is an input folder, lies inside one, or holds an input;
            or that exists and is not a folder; a file of one that is an input.
    """
    input_dirs: dict[Path, str] = {}
    holders: dict[Path, tuple[str, Path]] = {}  # every folder that holds an input
    input_files: dict[tuple[int, int], tuple[str, Path]] = {}  # (device, inode) of each
    for what, source in inputs:
        real = source.resolve()
        if real.is_dir():
            input_dirs[real] = what
        elif real.is_file():
            info = real.stat()
            input_files[(info.st_dev, info.st_ino)] = (what, source)
        for parent in (real, *real.parents) if real.is_dir() else real.parents:
            holders.setdefault(parent, (what, source))
    for shown, folder in folders:
        real = folder.resolve()
        if folder.exists() and not folder.is_dir():
            raise OutputPathError(f"{shown} {folder} exists and is not a folder")
        inside = next((input_dirs[d] for d in (real, *real.parents) if d in input_dirs), None)
        if inside is not None:
            raise OutputPathError(
                f"{shown} {folder} is or lies inside the input {inside}; ttblur never writes "
                "into its input folders (pick an output folder outside them)"
            )
        if real in holders:
            what, source = holders[real]
            raise OutputPathError(
                f"{shown} {folder} holds the input {what} {source}; ttblur never writes into "
                "its input folders (pick an output folder outside them)"
            )
        for name in files if real.is_dir() else ():
            try:
                info = (real / name).stat()  # through a symbolic link: its file
            except OSError:
                continue
            if (info.st_dev, info.st_ino) in input_files:
                what, source = input_files[(info.st_dev, info.st_ino)]
                raise OutputPathError(
                    f"{shown} {folder}: its {name} is the input {what} {source} (a link to "
                    "it); writing it would destroy the input (remove the link)"
                )
