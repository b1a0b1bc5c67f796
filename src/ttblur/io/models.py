"""A user's network, built from ``module:factory`` (the CLI's ``--model``).

:func:`load_model` imports a factory from an importable module (``mypkg.nets:build``) or from
a Python file (``path/to/nets.py:build``), calls it with no argument and optionally loads
weights into the ``torch.nn.Module`` it returns (:func:`ttblur.io.weights.load_weights`).

Import rules: no file in the current folder can shadow an installed module. A dotted module
is imported with ``sys.path`` as it is, and only if it is found nowhere is the current folder
searched, appended (last) to ``sys.path``; a file is imported from its path, with its folder
appended (last) to ``sys.path`` while it runs, so that its sibling imports work.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "DEFAULT_MODEL",
    "SHIPPED_MODELS",
    "ModelLoadError",
    "absolute_target",
    "factory_source",
    "import_factory",
    "load_model",
]

#: The factory used when none is given: the shipped reference network.
DEFAULT_MODEL = "ttblur.nets.reference:reference_model"
#: The names ``--model`` accepts for the shipped reference networks, and the factory each
#: stands for (``ttblur.nets.reference.REFERENCE_MODELS`` holds the same names).
SHIPPED_MODELS: dict[str, str] = {
    "tiny": "ttblur.nets.reference:reference_tiny",
    "base": "ttblur.nets.reference:reference_base",
}


class ModelLoadError(ValueError):
    """The network named by ``module:factory`` cannot be built: a malformed target, an import
    that fails, a missing attribute, a factory that fails or returns no ``nn.Module``. A
    ``ValueError``; the message names the ``--model`` value and what went wrong."""


@contextlib.contextmanager
def _last_on_sys_path(folder: Path) -> Iterator[None]:
    """``folder`` appended to ``sys.path`` for the duration (never first: a file there named
    like an installed module, such as ``safetensors.py`` or ``torch.py``, cannot shadow it)."""
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.append(entry)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


#: Modules imported from ``.py`` files: ``{name: ((mtime_ns, size), module)}``.
_IMPORTED: dict[str, tuple[tuple[int, int], Any]] = {}


def _looks_like_file(text: str) -> bool:
    return text.endswith(".py") or "/" in text or os.sep in text


def _import_file(module_text: str) -> Any:
    """Import a ``.py`` file given by path (its folder must already be on ``sys.path``)."""
    path = Path(module_text).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"--model: no such Python file: {module_text}")
    name = "_ttblur_user_" + re.sub(r"\W", "_", str(path.resolve()))
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    known = _IMPORTED.get(name)
    if known is not None and known[0] == stamp and sys.modules.get(name) is known[1]:
        return known[1]  # imported once per process while unchanged (its registrations too)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"--model: cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(name, None)
        raise ModelLoadError(
            f"--model: importing {path} failed: {type(err).__name__}: {err}"
        ) from err
    _IMPORTED[name] = (stamp, module)
    return module


def _target_missing(err: ModuleNotFoundError, module_text: str) -> bool:
    """Whether ``err`` says ``module_text`` itself (or a package above it) does not exist,
    rather than that something it imports is missing."""
    parts = module_text.split(".")
    return err.name in {".".join(parts[: i + 1]) for i in range(len(parts))}


def _import_module(module_text: str) -> Any:
    """Import a dotted module name with ``sys.path`` as it is (see :func:`load_model`)."""
    try:
        return importlib.import_module(module_text)
    except ModuleNotFoundError as err:
        if _target_missing(err, module_text):
            raise ModelLoadError(
                f"--model: cannot import module {module_text!r} ({err}); run from the folder "
                "that holds it, or pass path/to/file.py:factory"
            ) from err
        raise ModelLoadError(
            f"--model: importing {module_text!r} failed: ModuleNotFoundError: {err}"
        ) from err
    except Exception as err:
        raise ModelLoadError(
            f"--model: importing {module_text!r} failed: {type(err).__name__}: {err}"
        ) from err


def _factory(module_text: str, attribute: str, target: str) -> Any:
    """Import the module of ``target`` and return its factory (``sys.path`` as set by the
    caller)."""
    module = (
        _import_file(module_text) if _looks_like_file(module_text) else _import_module(module_text)
    )
    factory: Any = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            raise ModelLoadError(f"--model: {module_text} has no attribute {attribute!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ModelLoadError(f"--model: {target} is a {type(factory).__name__}, not callable")
    return factory


def _build(module_text: str, attribute: str, target: str) -> Any:
    """Import the module of ``target`` and call its factory (``sys.path`` as set by the caller)."""
    factory = _factory(module_text, attribute, target)
    try:
        return factory()
    except Exception as err:
        raise ModelLoadError(
            f"--model: calling {attribute}() failed: {type(err).__name__}: {err}"
        ) from err


def absolute_target(target: str) -> str:
    """``target`` with a relative ``path/to/file.py`` made absolute (against this process's
    working directory) when that file exists; a dotted module, a shipped name and anything
    else unchanged.

    A process started in another folder (a Ray worker of a cluster) then imports the same
    file. A dotted module is looked up on that process's own ``sys.path`` and working
    directory: it must be importable there.

    Example:
        >>> absolute_target("mypkg.nets:build")
        'mypkg.nets:build'
    """
    module_text, sep, attribute = target.rpartition(":")
    if not sep or not module_text or not _looks_like_file(module_text):
        return target
    path = Path(module_text).expanduser()
    return f"{path.absolute()}:{attribute}" if path.is_file() else target


def factory_source(target: str) -> Path | None:
    """The folder of the Python source that builds ``target`` (see :func:`load_model`),
    found without running the factory: the folder of a ``path/to/file.py`` (its sibling
    modules are importable from it), or of a dotted module's file. ``None`` for the names of
    :data:`SHIPPED_MODELS` and the default (they change with the installed ttblur) and when
    the module cannot be found.

    A batch fingerprints this folder's ``.py`` files, so that editing a factory counts as
    another network (``ttblur.batch``).
    """
    if target in SHIPPED_MODELS or target == DEFAULT_MODEL:
        return None
    module_text = target.rpartition(":")[0]
    if not module_text:
        return None
    if _looks_like_file(module_text):
        path = Path(module_text).expanduser()
        return path.resolve().parent if path.is_file() else None
    try:
        spec = importlib.util.find_spec(module_text)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and spec.has_location:
        return Path(spec.origin).resolve().parent
    local = Path.cwd() / (module_text.replace(".", os.sep) + ".py")  # load_model's fallback
    return local.resolve().parent if local.is_file() else None


def _under_import_rules(
    action: Callable[[str, str, str], Any], module_text: str, attribute: str, target: str
) -> Any:
    """``action(module_text, attribute, target)`` with :func:`load_model`'s import rules."""
    if _looks_like_file(module_text):
        with _last_on_sys_path(Path(module_text).expanduser().resolve().parent):
            return action(module_text, attribute, target)
    try:
        return action(module_text, attribute, target)
    except ModelLoadError as err:
        if not isinstance(err.__cause__, ModuleNotFoundError) or not _target_missing(
            err.__cause__, module_text
        ):
            raise
        with _last_on_sys_path(Path.cwd()):
            return action(module_text, attribute, target)


def import_factory(target: str) -> Any:
    """Import the module of ``target`` (as :func:`load_model` does) and return its factory,
    without calling it: what the module registers at import (a user's own stage named in a
    config file) is registered before the config is read.

    Raises:
        ModelLoadError: as :func:`load_model`, but for what only the factory's call can do.
    """
    target = SHIPPED_MODELS.get(target, target)
    module_text, sep, attribute = target.rpartition(":")
    if not sep or not module_text or not attribute:
        return None  # load_model reports the malformed target
    return _under_import_rules(_factory, module_text, attribute, target)


def load_model(
    target: str = DEFAULT_MODEL, weights: str | None = None, *, revision: str | None = None
) -> nn.Module:
    """Build the network named by ``target`` and optionally load weights into it.

    Import rules (no file in the current folder can shadow an installed module): a dotted
    ``module`` is imported as it is, and only if it is not found anywhere is the current
    folder searched, appended (last) to ``sys.path``; a ``path/to/file.py`` is imported from
    that file, with its folder appended to ``sys.path`` (sibling imports of modules that are
    not installed work). The default target changes nothing on ``sys.path``.

    Args:
        target: ``"module:factory"`` or ``"path/to/file.py:factory"``; ``factory`` may be
            dotted (``"nets:Builder.create"``). It is called with no argument. A name of
            :data:`SHIPPED_MODELS` (``"tiny"``, ``"base"``) stands for its factory.
        weights: see :func:`ttblur.io.weights.load_weights`; ``None`` keeps what the factory built.
        revision: Hub branch, tag or commit of a repo-id ``weights`` (see
            :func:`ttblur.io.weights.load_weights`).

    Returns:
        the ``torch.nn.Module``.

    Raises:
        ModelLoadError: bad ``target``, import failure, missing attribute, a factory that fails or
            does not return an ``nn.Module``; ``revision`` without a repo-id ``weights``.
        FileNotFoundError / ValueError: as :func:`ttblur.io.weights.load_weights`.
    """
    from torch import nn

    target = SHIPPED_MODELS.get(target, target)
    module_text, sep, attribute = target.rpartition(":")
    if not sep or not module_text or not attribute:
        raise ModelLoadError(
            "--model must be 'module:factory', 'path/to/file.py:factory' or a shipped "
            f"reference network ({', '.join(SHIPPED_MODELS)}), got {target!r}"
        )
    if revision is not None and weights is None:
        raise ModelLoadError("--revision needs --weights OWNER/NAME (a Hugging Face Hub repo id)")
    model = _under_import_rules(_build, module_text, attribute, target)
    if not isinstance(model, nn.Module):
        raise ModelLoadError(
            f"--model: {attribute}() returned a {type(model).__name__}, not a torch.nn.Module"
        )
    if weights is not None:
        from ttblur.io.weights import load_weights

        load_weights(model, weights, revision=revision)
    return model
