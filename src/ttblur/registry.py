"""Registries: the stages a config can name, one registry per stage kind.

A registry maps a name to a factory (a class or a function). Built-in stages register
themselves with the :meth:`Registry.register` decorator where they are defined; the registry
knows which module defines each built-in name and imports it on first lookup, so naming a
stage never costs an import that is not needed. A config section is ``{"name": ..., **params}``:
:meth:`Registry.build` looks the name up and calls the factory.

A user's own stage, registered in three lines and named in a JSON config::

    from ttblur.registry import DETECTORS

    @DETECTORS.register("center_crop")
    class CenterCrop:
        def __init__(self, size: int = 64): ...
        def select(self, video): ...

    # config.json: {"rsdm": {"name": "center_crop", "size": 96}}

============================  ===========================  ===============================
registry                      config field                 protocol
============================  ===========================  ===============================
:data:`DETECTORS`             ``rsdm.name``                ``SharpnessDetector``
:data:`CONDITION_GENERATORS`  ``dbcgm.name``               ``ConditionGenerator``
:data:`SYNTHESIZERS`          ``synthesis.name``           ``BlurSynthesizer``
:data:`FLOWS`                 ``dbcgm.flow``               ``FlowEstimator``
:data:`GUARDS`                ``guard.name``               ``Guard``
``ttblur.specs.SPECS``        ``spec=`` of ``adapt``       ``ModelSpec`` (values, not factories)
============================  ===========================  ===============================

This module imports nothing heavy: configs validate names against it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

__all__ = [
    "CONDITION_GENERATORS",
    "DETECTORS",
    "FLOWS",
    "GUARDS",
    "SYNTHESIZERS",
    "Registry",
    "accepted_kwargs",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def accepted_kwargs(factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``kwargs`` that ``factory`` accepts by keyword (all of them when it takes
    ``**kwargs``). Used to hand a stage only the run context it asks for (``device``,
    ``seed``, ``flow``)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: pass nothing extra
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(kwargs)
    names = {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    return {k: v for k, v in kwargs.items() if k in names}


class Registry(Mapping[str, T], Generic[T]):
    """Names -> entries of one kind, case-insensitive (``-`` and ``_`` alike).

    Args:
        kind: what the entries are, for error messages (``"detector"``).
        attribute: where users find it (``"ttblur.registry.DETECTORS"``), for messages.
        builtins: built-in name -> the module that registers it, imported on first lookup.

    A registry is a read-only :class:`~collections.abc.Mapping`; add entries with
    :meth:`register`, remove them with :meth:`unregister`.
    """

    def __init__(
        self, kind: str, builtins: Mapping[str, str] | None = None, *, attribute: str = ""
    ) -> None:
        self.kind = kind
        self.attribute = attribute or "Registry"
        self._entries: dict[str, T] = {}
        self._builtins = {_normalise(k): v for k, v in (builtins or {}).items()}

    # -- registration
    @overload
    def register(
        self, name: str, obj: None = None, *, overwrite: bool = False
    ) -> Callable[[F], F]: ...
    @overload
    def register(self, name: str, obj: T, *, overwrite: bool = False) -> T: ...
    def register(self, name: str, obj: Any = None, *, overwrite: bool = False) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, a decorator that does.

        Raises:
            ValueError: the name is taken and ``overwrite`` is false, or it is empty.
        """
        key = _normalise(name)
        if not key:
            raise ValueError(f"a {self.kind} name must not be empty")

        def add(value: Any) -> Any:
            if key in self._entries and not overwrite:
                raise ValueError(
                    f"a {self.kind} named {key!r} is already registered; pass overwrite=True"
                )
            self._entries[key] = value
            return value

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> T:
        """Remove and return the entry ``name`` (built-ins come back on the next lookup)."""
        return self._entries.pop(_normalise(name))

    def pop(self, name: str, *default: T) -> T:
        """Remove and return the entry ``name``; ``default`` when there is none."""
        return self._entries.pop(_normalise(name), *default)

    def is_builtin(self, name: str) -> bool:
        """Whether ``name`` is one of ttblur's own entries."""
        return _normalise(name) in self._builtins

    # -- lookup
    def _load(self, key: str) -> None:
        module = self._builtins.get(key)
        if module is not None and key not in self._entries:
            importlib.import_module(module)

    def __getitem__(self, name: str) -> T:
        key = _normalise(name) if isinstance(name, str) else name
        self._load(key)
        if key not in self._entries:
            raise KeyError(name)
        return self._entries[key]

    def get_entry(self, name: str) -> T:
        """The entry registered as ``name``.

        Raises:
            ValueError: unknown name; the message lists the known names.
        """
        if not isinstance(name, str):
            raise ValueError(f"a {self.kind} name must be a string, got {type(name).__name__}")
        try:
            return self[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; known names: {', '.join(self.names())} "
                f"(register your own with @{self.attribute}.register({name!r}))"
            ) from None

    def names(self) -> list[str]:
        """Sorted names: the built-ins and everything registered."""
        return sorted({*self._builtins, *self._entries})

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _normalise(name) in {*self._builtins, *self._entries}

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    # -- building
    def check_params(self, name: str, params: Mapping[str, Any]) -> None:
        """Check that the factory ``name`` takes the keyword arguments ``params``.

        Raises:
            ValueError: unknown name, or a parameter the factory does not take.
        """
        factory = self.get_entry(name)
        if not callable(factory):
            raise ValueError(f"{self.kind} {name!r} is not callable")
        unknown = sorted(set(params) - set(accepted_kwargs(factory, params)))
        if unknown:
            raise ValueError(
                f"{self.kind} {name!r} takes no parameter {', '.join(map(repr, unknown))}; "
                f"its signature is {inspect.signature(factory)}"
            )

    def build(
        self,
        name: str,
        section: Any = None,
        params: Mapping[str, Any] | None = None,
        **context: Any,
    ) -> Any:
        """Build the stage ``name``.

        A factory with a ``from_config`` classmethod (every built-in) is built with
        ``from_config(section, **context)``; any other factory with ``factory(**params,
        **context)``. Either way only the ``context`` entries the callee accepts are passed
        (see :func:`accepted_kwargs`).

        Args:
            name: the registered name.
            section: the config section (given to ``from_config``).
            params: the section's own parameters (``{"name": ..., **params}`` minus the name).
            context: run context: ``device``, ``seed``, ``flow``.
        """
        factory: Any = self.get_entry(name)
        from_config = getattr(factory, "from_config", None)
        if section is not None and from_config is not None and self.is_builtin(name):
            return from_config(section, **accepted_kwargs(from_config, context))
        params = dict(params or {})
        self.check_params(name, params)
        extra = {k: v for k, v in accepted_kwargs(factory, context).items() if k not in params}
        return factory(**params, **extra)


#: Sharpness detectors (``AdaptConfig.rsdm.name``).
DETECTORS: Registry[Any] = Registry(
    "detector",
    {"relative_sharpness": "ttblur.stages.rsdm", "random": "ttblur.stages.rsdm"},
    attribute="ttblur.registry.DETECTORS",
)
#: Condition generators (``AdaptConfig.dbcgm.name``).
CONDITION_GENERATORS: Registry[Any] = Registry(
    "condition generator",
    {name: "ttblur.stages.dbcgm" for name in ("dbcgm", "flow_only", "random")},
    attribute="ttblur.registry.CONDITION_GENERATORS",
)
#: Blur synthesizers (``AdaptConfig.synthesis.name``).
SYNTHESIZERS: Registry[Any] = Registry(
    "synthesizer",
    {"physical": "ttblur.stages.reblur", "idblau": "ttblur.stages.idblau"},
    attribute="ttblur.registry.SYNTHESIZERS",
)
#: Optical flow estimators (``AdaptConfig.dbcgm.flow``).
FLOWS: Registry[Any] = Registry(
    "flow estimator",
    {
        "opencv": "ttblur.stages.flow",
        "raft": "ttblur.stages.flow",
        "pyramid": "ttblur.stages.pyramid_flow",
    },
    attribute="ttblur.registry.FLOWS",
)
#: Guards: no-reference scores of an adapted model on the video (``AdaptConfig.guard.name``).
GUARDS: Registry[Any] = Registry(
    "guard", {"reblur": "ttblur.stages.guard"}, attribute="ttblur.registry.GUARDS"
)
