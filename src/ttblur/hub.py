"""Loading, saving and publishing weights: ``config.json`` + ``model.safetensors``, never pickle.

Every stage with weights inherits the machinery here:

* :class:`PretrainedMixin` (``nn.Module`` stages: ``BlurMagnitudeEstimator``, ``IDBlauUNet``,
  ``ReferenceDeblurNet``) gives

  - ``from_pretrained(repo_id_or_path=None, revision=None)``: ``None`` loads the small default
    shipped inside the package (``ttblur/weights/<name>/``) with no network; an existing local
    folder loads from that folder; anything else is a Hugging Face Hub repo id resolved
    through the Hub cache with :func:`huggingface_hub.snapshot_download` (so
    ``HF_HUB_OFFLINE=1`` with a populated cache works);
  - ``save_pretrained(path)``: writes the two files to a folder that ``from_pretrained`` reads;
  - ``push_to_hub(repo_id, ...)``: ``save_pretrained`` into a temporary folder, then
    ``HfApi.create_repo(exist_ok=True)`` and ``HfApi.upload_folder``.

* :class:`PushToHubMixin` gives ``push_to_hub`` to any object with a ``save_pretrained``
  (the ``IDBlau`` synthesizer and ``RAFTFlow``, which wrap a network), and the functions
  :func:`resolve_pretrained`, :func:`read_config`, :func:`load_safetensors`,
  :func:`check_state_dict` and :func:`write_pretrained` are the building blocks those use.

Errors (see ``docs/weights.md``):

* :class:`WeightsNotFoundError` (a ``FileNotFoundError``, hence an ``OSError``): the weights
  cannot be found: no such local folder, a file missing from the folder, no shipped default,
  or a Hub repo id that cannot be resolved (Hub unreachable or ``HF_HUB_OFFLINE=1`` and not
  in the local cache, unknown repo or revision). The message names the repo id and how to
  pre-download it.
* :class:`InvalidWeightsError` (a ``ValueError``): the files exist but cannot be used:
  invalid JSON, a config for another class or with invalid values, a corrupted or truncated
  safetensors file, missing / unexpected keys or wrong shapes. The message names the file.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "InvalidWeightsError",
    "PretrainedMixin",
    "PushToHubMixin",
    "WeightsNotFoundError",
    "check_state_dict",
    "load_safetensors",
    "looks_like_local_path",
    "read_config",
    "resolve_pretrained",
    "shipped_weights_dir",
    "state_dict_mismatch",
    "write_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: Key of ``config.json`` naming the class the weights belong to.
CLASS_KEY = "_class_name"

_T = TypeVar("_T", bound="PretrainedMixin")
_C = TypeVar("_C", bound=BaseModel)


class WeightsNotFoundError(FileNotFoundError):
    """The weights cannot be found (locally, in the shipped defaults, or on the Hub / in its
    cache). A ``FileNotFoundError`` (so an ``OSError``); the message says what to do."""


class InvalidWeightsError(ValueError):
    """The weight files exist but cannot be used (corrupted, another class, or not matching
    the architecture). A ``ValueError``; the message names the file and the problem."""


def shipped_weights_dir(name: str) -> Path:
    """Folder of the default weights ``name`` shipped inside the package."""
    return Path(str(resources.files("ttblur") / "weights" / name))


def looks_like_local_path(text: str, suffixes: tuple[str, ...] = ()) -> bool:
    """Whether ``text`` is meant as a local path rather than a Hub repo id ``owner/name``.

    Args:
        text: what the user passed.
        suffixes: file endings that also mark a local path (e.g. ``(".pth",)``).

    Returns:
        True for text starting with ``.``, ``/``, ``~`` or ``\\``, with more than one ``/``,
        with a ``:`` (Windows drives) or ending with one of ``suffixes``.
    """
    return (
        text.startswith((".", "/", "~", "\\"))
        or text.count("/") > 1
        or ":" in text
        or (bool(suffixes) and text.endswith(suffixes))
    )


def resolve_pretrained(
    repo_id_or_path: str | Path | None,
    *,
    default: str | None,
    revision: str | None = None,
    filenames: Iterable[str] = (CONFIG_NAME, WEIGHTS_NAME),
) -> Path:
    """Find the folder holding the weight files.

    Args:
        repo_id_or_path: ``None`` for the shipped default, a local folder, or a Hub repo id
            (``owner/name``). An existing folder wins over a repo id of the same name.
        default: name of the shipped default under ``ttblur/weights/``.
        revision: Hub revision (branch, tag or commit hash); only for repo ids (ignored for
            folders).
        filenames: files to fetch from a Hub repo (only these are downloaded).

    Returns:
        the folder: the shipped one, the local one, or the Hub cache snapshot
        (``.../models--owner--name/snapshots/<commit>``). Whether the files are all there is
        checked by the loaders (:func:`read_config`, :func:`load_safetensors`).

    Raises:
        WeightsNotFoundError: no such local folder, no shipped default, or the repo id cannot
            be resolved (Hub unreachable and not in the local cache, unknown repo or
            revision): the message names the repo and how to pre-download it.
    """
    if repo_id_or_path is None:
        if default is None:
            raise WeightsNotFoundError(
                "this class ships no default weights: pass a folder or a Hub repo id"
            )
        folder = shipped_weights_dir(default)
        if not (folder / WEIGHTS_NAME).is_file():
            raise WeightsNotFoundError(
                f"the shipped default weights '{default}' are missing from {folder}; "
                "reinstall ttblur or pass a folder / Hub repo id"
            )
        return folder
    path = Path(repo_id_or_path).expanduser()
    if path.is_dir():
        return path
    text = str(repo_id_or_path)
    if isinstance(repo_id_or_path, Path) or looks_like_local_path(text) or path.exists():
        raise WeightsNotFoundError(f"no weights folder at '{text}'")
    return _download_from_hub(text, revision, tuple(filenames))


def _predownload_help(repo_id: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    rev_kw = f", revision='{revision}'" if revision else ""
    return (
        "To use it without network access, pre-download it on a connected machine with "
        f"`hf download {repo_id}{rev}` (huggingface_hub < 1.0: `huggingface-cli download "
        f"{repo_id}{rev}`) or `huggingface_hub.snapshot_download('{repo_id}'{rev_kw})`, "
        "copy the Hub cache (HF_HUB_CACHE, by default ~/.cache/huggingface/hub) to this "
        "machine and set HF_HUB_OFFLINE=1; or download into a folder with "
        f"`hf download {repo_id}{rev} --local-dir DIR` and pass DIR instead of the repo id."
    )


def _cached_snapshot(repo_id: str, revision: str | None, filenames: tuple[str, ...]) -> Path | None:
    """The Hub cache's snapshot folder of ``repo_id`` at ``revision`` holding any of
    ``filenames``, looked up on disk only; ``None`` when there is none.

    ``snapshot_download`` already falls back to the cache offline, but some
    ``huggingface_hub`` releases (1.33 among them) do not when ``revision`` is a commit hash
    that no branch or tag of the cache points to; ``try_to_load_from_cache`` resolves refs and
    bare commit hashes alike.
    """
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        found = try_to_load_from_cache(repo_id, name, revision=revision)
        if isinstance(found, str):
            return Path(found).parent
    return None


def _download_from_hub(repo_id: str, revision: str | None, filenames: tuple[str, ...]) -> Path:
    """Snapshot folder of ``repo_id`` in the Hub cache, downloading ``filenames`` if needed.

    Works offline (``HF_HUB_OFFLINE=1`` or no network) when the cache holds the snapshot.

    Raises:
        WeightsNotFoundError: invalid repo id, unknown repo or revision, or not reachable and
            not cached.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.utils import (
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"Hub repo '{repo_id}'" + (f" (revision '{revision}')" if revision else "")
    try:
        folder = snapshot_download(
            repo_id, revision=revision, allow_patterns=list(filenames), library_name="ttblur"
        )
    except HFValidationError as err:
        raise WeightsNotFoundError(
            f"'{repo_id}' is neither an existing folder nor a valid Hub repo id ({err})"
        ) from err
    except RevisionNotFoundError as err:
        raise WeightsNotFoundError(
            f"{where}: no such revision (branch, tag or commit) on the Hub: {err}"
        ) from err
    except RepositoryNotFoundError as err:
        raise WeightsNotFoundError(
            f"{where} was not found on the Hub, or it is private / gated and no valid token "
            f"was sent (log in with `hf auth login` or set HF_TOKEN): {err}"
        ) from err
    except Exception as err:  # unreachable Hub, offline mode without cache, incomplete cache
        cached = _cached_snapshot(repo_id, revision, filenames)
        if cached is not None:
            return cached
        reason = (
            "the Hub is not contacted because HF_HUB_OFFLINE=1 is set"
            if constants.HF_HUB_OFFLINE
            else "the Hub could not be reached"
        )
        raise WeightsNotFoundError(
            f"could not get the weights of {where}: {reason} and "
            f"the local Hub cache ({constants.HF_HUB_CACHE}) holds no complete snapshot of it "
            f"({type(err).__name__}: {err}). {_predownload_help(repo_id, revision)}"
        ) from err
    return Path(folder)


def read_config(
    folder: str | Path,
    class_name: str,
    config_class: type[_C],
    *,
    required: bool = True,
) -> _C | None:
    """Read and validate ``folder/config.json`` for class ``class_name``.

    Args:
        folder: the weights folder.
        class_name: the class that loads it; a ``"_class_name"`` entry in the file must
            equal it (files without the entry are accepted).
        config_class: the pydantic model the rest of the file must validate as.
        required: raise when the file is missing (else return ``None``).

    Returns:
        the validated config, or ``None`` when the file is missing and not ``required``.

    Raises:
        WeightsNotFoundError: the file is missing and ``required``.
        InvalidWeightsError: not valid JSON, not an object, another class's config, or
            values that ``config_class`` rejects.
    """
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        if not required:
            return None
        raise WeightsNotFoundError(
            f"{path} is missing: a weights folder holds {CONFIG_NAME} and {WEIGHTS_NAME} "
            "(as written by save_pretrained)"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidWeightsError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise InvalidWeightsError(f"{path} must hold a JSON object, got {type(raw).__name__}")
    saved_class = raw.pop(CLASS_KEY, class_name)
    if saved_class != class_name:
        raise InvalidWeightsError(
            f"{path} holds weights of {saved_class}, not {class_name}: "
            f"load them with {saved_class}.from_pretrained"
        )
    try:
        return config_class.model_validate(raw)
    except ValidationError as err:
        raise InvalidWeightsError(f"{path} is not a valid {class_name} config: {err}") from err


def load_safetensors(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` state dict (no pickle involved).

    Args:
        path: the file.
        device: where the tensors are put.

    Returns:
        ``{name: tensor}``.

    Raises:
        WeightsNotFoundError: no such file.
        InvalidWeightsError: not a safetensors file, or truncated / corrupted.
    """
    file = Path(path)
    if not file.is_file():
        raise WeightsNotFoundError(f"{file} is missing")
    try:
        return load_file(str(file), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise InvalidWeightsError(
            f"cannot read {file}: not a valid safetensors file (truncated or corrupted? "
            f"write it again, or re-download it): {type(err).__name__}: {err}"
        ) from err


def state_dict_mismatch(own: Mapping[str, Any], state: Mapping[str, Any], *, limit: int = 5) -> str:
    """Describe how ``state`` differs from the module state dict ``own``.

    Args:
        own: the module's ``state_dict()`` (names -> tensors).
        state: the loaded weights.
        limit: names listed per kind of difference.

    Returns:
        ``""`` when the keys and shapes match exactly, else a description naming the missing
        and unexpected keys and the shape mismatches.
    """
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} in the file vs {tuple(v.shape)} in the model"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    parts = []
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatch", shapes),
    ):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{label} {items[:limit]}{more}")
    return "; ".join(parts)


def check_state_dict(
    own: Mapping[str, Any], state: Mapping[str, Any], *, source: str | Path, target: str
) -> None:
    """Raise unless ``state`` matches ``own`` key for key and shape for shape.

    Args:
        own: the module's ``state_dict()``.
        state: the loaded weights.
        source: the file they came from (named in the message).
        target: the class they are loaded into (named in the message).

    Raises:
        InvalidWeightsError: naming the missing / unexpected keys and shape mismatches.
    """
    problem = state_dict_mismatch(own, state)
    if problem:
        raise InvalidWeightsError(
            f"the weights in {source} do not match {target} as described by its "
            f"{CONFIG_NAME} ({problem}); the config and the weights come from different "
            "architectures"
        )


def write_pretrained(
    path: str | Path, class_name: str, config: BaseModel, state: Mapping[str, torch.Tensor]
) -> Path:
    """Write ``config.json`` (``config`` plus ``"_class_name"``) and ``model.safetensors``.

    Args:
        path: the folder (created if needed; existing files are overwritten).
        class_name: the class that loads the folder.
        config: its config.
        state: the tensors (copied to the CPU, made contiguous).

    Returns:
        the folder.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {CLASS_KEY: class_name, **config.model_dump(mode="json")}
    (folder / CONFIG_NAME).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    save_file(tensors, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    return folder


class PushToHubMixin:
    """Adds ``push_to_hub`` to any class with a ``save_pretrained(path) -> Path``."""

    if TYPE_CHECKING:  # provided by the class that uses the mixin

        def save_pretrained(self, path: str | Path) -> Path: ...

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool | None = None,
        commit_message: str | None = None,
        revision: str | None = None,
    ) -> Any:
        """Upload what :meth:`save_pretrained` writes to the Hugging Face Hub model repo
        ``repo_id`` (created if needed).

        Args:
            repo_id: ``owner/name`` (or ``name`` for the token's own namespace).
            token: Hub token; ``None`` uses the stored login / ``HF_TOKEN``.
            private: visibility when the repo is created (``None``: the Hub's default);
                an existing repo keeps its visibility.
            commit_message: default ``"Upload <class> weights"``.
            revision: branch to commit to (created if missing); ``None``: ``main``.

        Returns:
            the ``huggingface_hub.CommitInfo`` of the upload (a ``str``: the commit URL).

        Raises:
            TypeError: the class using the mixin defines no ``save_pretrained`` (a misuse of
                the mixin: there is nothing to upload).
            huggingface_hub errors: no network, no or invalid token, no write access.
        """
        from huggingface_hub import HfApi

        if not callable(getattr(self, "save_pretrained", None)):
            raise TypeError(
                f"{type(self).__name__} defines no save_pretrained(path): nothing to push"
            )

        api = HfApi(token=token)
        message = commit_message or f"Upload {type(self).__name__} weights"
        with tempfile.TemporaryDirectory(prefix="ttblur-push-") as tmp:
            folder = self.save_pretrained(Path(tmp) / "weights")
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            target = getattr(url, "repo_id", None) or repo_id
            if revision is not None:
                api.create_branch(target, branch=revision, exist_ok=True, repo_type="model")
            return api.upload_folder(
                repo_id=target,
                folder_path=folder,
                repo_type="model",
                commit_message=message,
                revision=revision,
            )


class PretrainedMixin(PushToHubMixin):
    """Adds ``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` to an ``nn.Module``.

    A subclass sets ``config_class`` (a pydantic model), stores its config as ``self.config``,
    is constructible as ``cls(config)``, and may name a shipped default in
    ``default_weights``.
    """

    config_class: ClassVar[type[BaseModel]]
    default_weights: ClassVar[str | None] = None
    config: Any

    @classmethod
    def from_pretrained(
        cls: type[_T],
        repo_id_or_path: str | Path | None = None,
        *,
        revision: str | None = None,
        map_location: str | torch.device = "cpu",
    ) -> _T:
        """Build the module from a config + safetensors folder, a Hub repo or the default.

        Args:
            repo_id_or_path: ``None`` for the shipped default (``default_weights``), a local
                folder, or a Hub repo id (resolved through the Hub cache).
            revision: Hub branch, tag or commit hash (repo ids only).
            map_location: device the module is put on (weights are read on the CPU first).

        Returns:
            the module in eval mode. The state dict must match the architecture exactly
            (strict key and shape matching).

        Raises:
            WeightsNotFoundError: the weights cannot be found (see :func:`resolve_pretrained`)
                or a file is missing.
            InvalidWeightsError: the files are corrupt, belong to another class, or do not
                match the architecture.
        """
        folder = resolve_pretrained(repo_id_or_path, default=cls.default_weights, revision=revision)
        config = read_config(folder, cls.__name__, cls.config_class)
        weights_path = folder / WEIGHTS_NAME
        state = load_safetensors(weights_path)
        module = cls(config)  # type: ignore[call-arg]
        module._load_strict(state, source=str(weights_path))
        module.to(map_location)  # type: ignore[attr-defined]
        module.eval()  # type: ignore[attr-defined]
        return module

    def _load_strict(self, state: dict[str, torch.Tensor], *, source: str) -> None:
        """Load ``state`` after checking it key for key and shape for shape."""
        own = self.state_dict()  # type: ignore[attr-defined]
        check_state_dict(own, state, source=source, target=type(self).__name__)
        self.load_state_dict(state, strict=True)  # type: ignore[attr-defined]

    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into folder ``path``.

        Returns:
            the folder, loadable with ``from_pretrained(path)``.
        """
        state = self.state_dict()  # type: ignore[attr-defined]
        return write_pretrained(path, type(self).__name__, self.config, state)
