"""Atomic file outputs: a file appears under its final name complete, or not at all.

Every file ttblur writes to a user-chosen path goes through this module:

- :func:`atomic_path` yields a temporary path in the destination's folder (same file system,
  hidden name, same suffix so that encoders pick the right container); when the block ends
  normally the file is flushed to disk (``fsync``) and renamed over the destination with
  :func:`os.replace` (atomic on POSIX and Windows). When the block raises anything, including
  ``KeyboardInterrupt`` and ``SystemExit``, the temporary file is removed and the destination
  is left exactly as it was: an earlier file under that name is neither deleted nor changed.
- :func:`atomic_write_bytes` / :func:`atomic_write_text` write a whole payload that way.
- :class:`StagedOutputs` stages several files (and folders of files) and renames all of them
  into place at the end, with ``SIGINT`` / ``SIGTERM`` deferred during the renames
  (:func:`deferred_signals`), so a run that writes several outputs never leaves the new files
  of an interrupted run beside the old ones of an earlier run.
- :func:`terminate_as_interrupt` turns ``SIGTERM`` / ``SIGHUP`` into :class:`Terminated` (a
  ``KeyboardInterrupt``), so that a terminated run cleans up its temporary files like an
  interrupted one.

Temporary names start with ``.`` and contain ``.ttblur-tmp-`` (:data:`TEMP_MARKER`), then
the writing process's host tag and pid; frame folders ignore hidden files, so a staging file
is never read back as a frame. A process killed outright (``SIGKILL``, power loss) cannot
remove its temporaries: the next write of the same file (or into the same staged folder) on
the same host removes those whose process is gone (POSIX).

What replacing a file means (:func:`write_target`): a symbolic link is followed (the file it
points to is replaced; the link stays); a read-only file is refused with ``PermissionError``,
never replaced; the replaced file's permission bits are kept. Replacing is a rename, so other
hard links to the old file keep the old content.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "notes.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (folder / "notes.txt").read_text()
    'hello'
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "TEMP_MARKER",
    "StagedOutputs",
    "Terminated",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "deferred_signals",
    "json_text",
    "kept_signal_handlers",
    "remove_stale_temporaries",
    "temp_name",
    "terminate_as_interrupt",
    "write_target",
]

#: Part of every temporary name this module creates: ``.NAME`` + this marker + 8 random
#: characters + ``.SUFFIX`` (hidden, in the final file's own folder).
TEMP_MARKER = ".ttblur-tmp-"

_DEFERRED = tuple(
    s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s
)


@functools.cache
def _host() -> str:
    """8 hex digits of this host name's CRC-32."""
    return f"{zlib.crc32(socket.gethostname().encode('utf-8', 'replace')):08x}"


def _owner() -> str:
    """``HOST-PID`` of this process (the pid is read each time: a forked child has its own)."""
    return f"{_host()}-{os.getpid()}"


def temp_name(final: Path) -> Path:
    """A fresh hidden temporary path beside ``final``, keeping its suffix (``.mp4`` ...)."""
    return final.with_name(
        f".{_stem(final)}{TEMP_MARKER}{_owner()}-{secrets.token_hex(4)}{final.suffix}"
    )


def _stem(final: Path) -> str:
    return final.name[: -len(final.suffix)] if final.suffix else final.name


_OWNED = re.compile(r"^([0-9a-f]{8})-([0-9]+)-[0-9a-f]{8}$")
#: Every owner tag (``HOST-PID-TOKEN``) in a temporary name; a temporary written through
#: another one (a staged file that a writer stages again) holds two.
_TAGS = re.compile(re.escape(TEMP_MARKER) + r"([0-9a-f]{8}-[0-9]+-[0-9a-f]{8})")


def _orphaned(tag: str) -> bool:
    """Whether the temporary whose owner part is ``tag`` (``HOST-PID-TOKEN``) was left by a
    process of this host that no longer runs. Unknown formats, other hosts and non-POSIX
    systems: ``False`` (left alone)."""
    match = _OWNED.match(tag)
    if match is None or os.name != "posix" or match[1] != _host():
        return False
    try:
        os.kill(int(match[2]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


def _left_by_dead(name: str) -> bool:
    """Whether a temporary name's owners (every ``HOST-PID`` in it) are all processes of this
    host that no longer run."""
    tags = _TAGS.findall(name)
    return bool(tags) and all(_orphaned(tag) for tag in tags)


def _remove_orphans(final: Path) -> None:
    """Remove the temporaries of ``final`` (beside it) left by dead processes of this host,
    also those of a temporary of ``final`` (``..NAME.ttblur-tmp-A.ttblur-tmp-B.mp4``)."""
    prefix = f"{_stem(final)}{TEMP_MARKER}"
    with contextlib.suppress(OSError):
        for path in final.parent.iterdir():
            name = path.name
            if (
                name.startswith(".")
                and name.lstrip(".").startswith(prefix)
                and name.endswith(final.suffix)
                and _left_by_dead(name)
            ):
                _remove(path)


def _remove_orphan_stages(folder: Path) -> None:
    """Remove staging folders inside ``folder`` left by dead processes of this host."""
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            if path.name.startswith(TEMP_MARKER) and _left_by_dead(path.name):
                _remove(path)


def write_target(final: str | os.PathLike[str]) -> Path:
    """The file a write to ``final`` replaces: ``final`` itself, or the file a symbolic link
    there points to (the link is kept). The one rule for every output file.

    Raises:
        IsADirectoryError: ``final`` (or the link's target) is an existing folder.
        PermissionError: it is an existing read-only file (no write permission bit, or not
            writable by this user): ttblur never replaces a file the user protected.
    """
    target = Path(final).expanduser()
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    if target.is_dir():
        raise IsADirectoryError(f"'{Path(final)}' is a folder; expected a file path")
    if target.exists():
        mode = target.stat().st_mode
        if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(
            target, os.W_OK
        ):
            raise PermissionError(
                f"'{Path(final)}' is read-only; ttblur does not replace it (make it writable "
                "or write elsewhere)"
            )
    return target


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files and staging folders a killed run left in ``folder``: names
    holding :data:`TEMP_MARKER` whose owning processes (this host's) no longer run, or without
    an owner (written by ttblur before names carried one). A live run's temporaries, and
    another host's, are left alone, so two runs may share ``folder``; nothing else is touched.

    Returns:
        what was removed (nothing when ``folder`` does not exist).
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    stale = [
        p
        for p in root.iterdir()
        if p.name.startswith(".")
        and TEMP_MARKER in p.name
        and all(_orphaned(tag) for tag in _TAGS.findall(p.name))  # no tag: an older version
    ]
    for path in stale:
        _remove(path)
    return stale


def _fsync_file(path: Path) -> None:
    """Flush ``path``'s data (a file, or a folder's entries) to disk; best effort where the
    platform cannot open it."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    if os.name == "posix":
        _fsync_file(folder)


def _remove(path: Path) -> None:
    """Remove a file or folder if it exists; never raises."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _handling(numbers: Iterable[int], handler: Callable[[int, Any], None] | None) -> Iterator[None]:
    """For the block, ``handler`` for each signal of ``numbers`` that is not ignored
    (``None``: the current handlers stay); afterwards every previous handler is put back,
    whatever replaced it meanwhile. Main thread only (elsewhere the block runs as is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    for number in numbers:
        current = signal.getsignal(number)
        if current is None or (handler is not None and current is signal.SIG_IGN):
            continue
        previous[number] = current
        if handler is not None:
            signal.signal(number, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def kept_signal_handlers() -> contextlib.AbstractContextManager[None]:
    """Put the ``SIGINT`` / ``SIGTERM`` handlers back after the block, whatever it installed
    (``ray.init`` installs its own)."""
    return _handling(_DEFERRED, None)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold back ``SIGINT`` and ``SIGTERM`` for the duration of the block.

    Used around the renames that publish outputs, so that an interrupt arriving then is
    delivered (and raises) right after all of them are in place rather than between two of
    them. Python runs signal handlers in the main thread whichever thread the operating
    system delivers a signal to (tqdm's monitor, OpenMP or PyAV threads included), so the
    block swaps in handlers that only note the signal, then restores the previous handlers
    and re-raises the first signal noted. Outside the main thread the block runs
    unprotected.
    """
    noted: list[int] = []
    try:
        with _handling(_DEFERRED, lambda signum, frame: noted.append(signum)):
            yield
    finally:
        if noted:
            signal.raise_signal(noted[0])


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write ``final`` to; publish it only if the block succeeds.

    The temporary file lies in ``final``'s folder (created if missing) and keeps its suffix.
    After a normal exit it is synced to disk and renamed over ``final`` (:func:`os.replace`);
    on any exception (``KeyboardInterrupt`` and ``SystemExit`` included) it is removed and
    the exception propagates, leaving ``final`` untouched. A block that writes nothing leaves
    ``final`` untouched too.

    ``final`` is checked by :func:`write_target` (symbolic links followed, read-only files
    refused) and temporaries of ``final`` orphaned by killed processes are removed.

    Raises:
        IsADirectoryError: ``final`` is an existing folder.
        PermissionError: ``final`` is a read-only file.
    """
    target = write_target(final)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(target)
    tmp = temp_name(target)
    try:
        yield tmp
        if tmp.exists():
            _fsync_file(tmp)
            _take_mode(tmp, target)
            os.replace(tmp, target)
            _fsync_folder(target.parent)
    except BaseException:
        _remove(tmp)
        raise


def _take_mode(path: Path, target: Path) -> None:
    """Give ``path`` the permission bits of the file it replaces, or those a plain
    ``open(target, "w")`` would (``0o666`` less the umask) for a new file: some writers
    (safetensors) create theirs private (``0o600``)."""
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        mode = 0o666 & ~mask
    os.chmod(path, mode)


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically (see :func:`atomic_path`); returns ``final``."""
    target = Path(final).expanduser()
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def atomic_write_text(final: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``final`` atomically (see :func:`atomic_path`); returns ``final``."""
    return atomic_write_bytes(final, text.encode(encoding))


def json_text(value: Any) -> str:
    """``value`` as standard JSON (indented, with a final newline) for files users read:
    a non-finite float (a PSNR of ``inf`` where a frame equals its ground truth) is written
    as ``null``, as pydantic writes it, never as ``Infinity`` / ``NaN``, which strict
    parsers (``JSON.parse``, ``jq``) refuse."""
    return json.dumps(_finite(value), indent=2, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def atomic_write_json(final: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` to ``final`` atomically as :func:`json_text`; returns ``final``."""
    return atomic_write_text(final, json_text(value))


class StagedOutputs:
    """Stage several output files and publish them together at the end.

    Use as a context manager. :meth:`file` returns a temporary path for a final file,
    :meth:`folder` a hidden staging folder whose files are later moved into a final folder.
    When the ``with`` block ends normally, every staged file is renamed over its final path
    (each rename is atomic; ``SIGINT`` / ``SIGTERM`` are deferred until all are done), stale
    files named in ``folder(..., replaces=...)`` that the new run did not write are removed,
    and the staging folders are deleted. When the block raises, every staged file and folder
    is removed and no final path is touched, so the previous outputs stay complete and
    consistent.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp())
        >>> with StagedOutputs() as staged:
        ...     _ = staged.file(out / "a.txt").write_text("a")
        ...     _ = staged.file(out / "b.txt").write_text("b")
        >>> sorted(p.name for p in out.iterdir())
        ['a.txt', 'b.txt']
    """

    def __init__(self) -> None:
        self._files: list[tuple[Path, Path]] = []
        self._folders: list[tuple[Path, Path, tuple[str, ...]]] = []
        self._copies: list[Path] = []  # staged files copied beside a target on another device
        self.published: list[Path] = []

    def file(self, final: str | os.PathLike[str]) -> Path:
        """A temporary path (same folder and suffix) to write ``final`` to."""
        target = write_target(final)
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(target)
        tmp = temp_name(target)
        self._files.append((tmp, target))
        return tmp

    def folder(self, final: str | os.PathLike[str], *, replaces: Iterable[str] = ()) -> Path:
        """A hidden staging folder inside ``final`` (created) whose files end up in ``final``.

        Args:
            final: the output folder.
            replaces: names of files an earlier run may have left in ``final`` that this run
                owns: those not written again are removed when the outputs are published.
        """
        target = Path(final).expanduser()
        if target.exists() and not target.is_dir():
            raise NotADirectoryError(f"'{target}' exists and is not a folder")
        target.mkdir(parents=True, exist_ok=True)
        _remove_orphan_stages(target)
        stage = target / f"{TEMP_MARKER}{_owner()}-{secrets.token_hex(4)}"
        stage.mkdir()
        self._folders.append((stage, target, tuple(replaces)))
        return stage

    def __enter__(self) -> StagedOutputs:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.discard()
            return
        try:
            self.publish()
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Remove every staged file and folder; final paths are not touched."""
        for tmp in [*(tmp for tmp, _ in self._files), *self._copies]:
            _remove(tmp)
        for stage, _, _ in self._folders:
            _remove(stage)

    def publish(self) -> None:
        """Rename every staged file into place (signals deferred), then clean up."""
        for tmp, _ in self._files:
            if not tmp.is_file():
                raise FileNotFoundError(f"staged output '{tmp}' was not written")
        moves: list[tuple[Path, Path]] = list(self._files)
        stale: list[Path] = []
        for stage, target, replaces in self._folders:
            names = sorted(p.name for p in stage.iterdir() if p.is_file())
            moves += [(stage / name, target / name) for name in names]
            stale += [target / n for n in replaces if n not in names and (target / n).is_file()]
        # Checked before the first rename: all published or none.
        moves = [(tmp, write_target(target)) for tmp, target in moves]
        moves = [(self._beside(tmp, target), target) for tmp, target in moves]
        for tmp, target in moves:
            _fsync_file(tmp)
            _take_mode(tmp, target)
        with deferred_signals():
            for tmp, target in moves:
                os.replace(tmp, target)
                self.published.append(target)
            for path in stale:
                path.unlink(missing_ok=True)
        for folder in {target.parent for _, target in moves}:
            _fsync_folder(folder)
        for stage, _, _ in self._folders:
            _remove(stage)

    def _beside(self, tmp: Path, target: Path) -> Path:
        """``tmp``, or a copy of it beside ``target`` when ``target`` (a symbolic link's file)
        lies on another file system, where a rename cannot reach (made before any rename)."""
        if tmp.stat().st_dev == target.parent.stat().st_dev:
            return tmp
        near = temp_name(target)
        self._copies.append(near)
        shutil.copyfile(tmp, near)
        return near


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the CLI receives ``SIGTERM`` (or ``SIGHUP``).

    A ``KeyboardInterrupt`` subclass, so every cleanup that runs for Ctrl-C (``finally``
    blocks, removal of temporary output files) runs for a termination too; the CLI's ``main``
    returns ``128 + signum`` (143 for ``SIGTERM``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn ``SIGTERM`` / ``SIGHUP`` into :class:`Terminated` for the duration (main thread
    only; the previous handlers are restored afterwards)."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    numbers = [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    with _handling(numbers, handler):
        yield
