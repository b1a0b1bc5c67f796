"""Old module paths kept as aliases of their new place (``ttblur.video`` -> ``ttblur.io.video``).

An alias module holds two lines::

    from ttblur.io.aliases import alias_module

    __all__, __getattr__ = alias_module("ttblur.io.video")

Every public name of the target is then importable from the old path (``from ttblur.video
import load_video``), typed as ``Any`` for type checkers, and is the very same object as the
target's (so a monkeypatch of the target is seen through the alias).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["alias_module"]


def alias_module(
    target: str, renamed: Mapping[str, str] | None = None
) -> tuple[list[str], Callable[[str], Any]]:
    """``__all__`` and a module ``__getattr__`` serving the names of module ``target``.

    Args:
        target: the module the names now live in.
        renamed: old names served under another name in ``target`` (``{"_old": "new"}``).

    Returns:
        ``(target.__all__, __getattr__)``.
    """
    module = importlib.import_module(target)
    old_names = dict(renamed or {})

    def forward(name: str) -> Any:
        return getattr(module, old_names.get(name, name))

    return list(module.__all__), forward
