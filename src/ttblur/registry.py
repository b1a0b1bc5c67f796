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
        self._originals: dict[str, T] = {}  # the built-in entries, as their modules registered

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
            # A built-in name is taken whether or not its module was imported yet.
            self._load(key)
            if key in self._entries and not overwrite:
                what = "is a built-in" if self.is_builtin(key) else "is already registered as a"
                raise ValueError(f"{key!r} {what} {self.kind}; pass overwrite=True to replace it")
            if self._is_builtin_entry(key, value):
                self._originals.setdefault(key, value)
            self._entries[key] = value
            return value

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> T:
        """Remove and return the entry ``name``; a built-in that an entry replaced
        (``overwrite=True``), or that was itself removed, comes back on the next lookup.

        Raises:
            KeyError: nothing is registered as ``name``.
        """
        return self._entries.pop(_normalise(name))

    def pop(self, name: str, *default: T) -> T:
        """Remove and return the entry ``name``; ``default`` when there is none."""
        return self._entries.pop(_normalise(name), *default)

    def is_builtin(self, name: str) -> bool:
        """Whether ``name`` names one of ttblur's own entries now (not an entry of the user's
        registered over it with ``overwrite=True``)."""
        key = _normalise(name)
        if key not in self._builtins:
            return False
        # Not registered yet (its module not imported, or importing now): the built-in.
        return key not in self._entries or self._is_builtin_entry(key, self._entries[key])

    def _is_builtin_entry(self, key: str, value: Any) -> bool:
        return getattr(value, "__module__", None) == self._builtins.get(key)

    # -- lookup
    def _load(self, key: str) -> None:
        module = self._builtins.get(key)
        if module is None or key in self._entries:
            return
        if key in self._originals:  # removed or replaced, then unregistered: restored
            self._entries[key] = self._originals[key]
            return
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
        callee = getattr(factory, "from_config", factory)
        unknown = sorted(set(params) - set(accepted_kwargs(callee, params)))
        if unknown:
            where = "its from_config" if callee is not factory else "its"
            raise ValueError(
                f"{self.kind} {name!r} takes no parameter {', '.join(map(repr, unknown))}; "
                f"{where} signature is {inspect.signature(callee)}"
            )

    def build(
        self,
        name: str,
        section: Any = None,
        params: Mapping[str, Any] | None = None,
        **context: Any,
    ) -> Any:
        """Build the stage ``name``.

        A factory with a ``from_config`` classmethod (every built-in, and a user's subclass of
        one) is built with ``from_config(section, **params, **context)``: the section's typed
        fields reach it through ``section``. Any other factory is called as
        ``factory(**fields, **params, **context)``, where ``fields`` are the section's typed
        fields that the user set and the factory takes by name (``patch_size`` for a detector
        whose constructor has one): a setting written in the config is never dropped while the
        report records it. Only the ``context`` entries the callee accepts are passed (see
        :func:`accepted_kwargs`).

        Args:
            name: the registered name.
            section: the config section (given to ``from_config``).
            params: the section's own parameters (``{"name": ..., **params}`` minus the name
                and the typed fields); ``None`` when ``section`` is not the stage's own (a
                flow estimator reads the ``dbcgm`` section): no typed field is passed then.
            context: run context: ``device``, ``seed``, ``flow``.

        Raises:
            ValueError: unknown name, or a parameter the factory does not take.
        """
        factory: Any = self.get_entry(name)
        own = dict(params or {})
        self.check_params(name, own)
        from_config = getattr(factory, "from_config", None)
        if section is not None and from_config is not None:
            extra = {k: v for k, v in accepted_kwargs(from_config, context).items() if k not in own}
            return from_config(section, **own, **extra)
        if section is not None and params is not None:
            own = {**_set_fields(section, factory), **own}
        extra = {k: v for k, v in accepted_kwargs(factory, context).items() if k not in own}
        return factory(**own, **extra)


def _set_fields(section: Any, factory: Any) -> dict[str, Any]:
    """The typed fields of a config ``section`` whose values differ from the section's
    defaults (``name`` aside) and that ``factory`` takes by keyword.

    By value, not by which fields were assigned: configs that compare equal (one loaded from
    its own JSON, or rebuilt from ``report.config``) build the same stage.
    """
    typed = getattr(type(section), "model_fields", {})
    values = {
        n: getattr(section, n)
        for n, info in typed.items()
        if n != "name" and getattr(section, n) != info.get_default(call_default_factory=True)
    }
    return accepted_kwargs(factory, values)


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
