"""Weights of every network: ``config.json`` + ``model.safetensors``, the Hub cache, never pickle.

One module loads and writes the weights of every network ttblur touches:

* :class:`PretrainedMixin`: the networks ttblur defines (``BlurMagnitudeEstimator``,
  ``IDBlauUNet``, ``ReferenceDeblurNet``, ``ReferenceUNet``). It is a
  :class:`huggingface_hub.PyTorchModelHubMixin` whose hooks follow ttblur's rules:

  - ``from_pretrained(repo_id_or_path=None, *, revision=None, map_location="cpu")``:
    ``None`` loads the default shipped inside the package (``ttblur/weights/<name>/``) with no
    network; an existing local folder loads from that folder; anything else is a Hugging Face
    Hub repo id resolved through the Hub cache (so ``HF_HUB_OFFLINE=1`` with a populated cache
    works). The config is validated by the class's pydantic ``config_class`` and must name the
    class (``"_class_name"``); the state dict must match the architecture key for key and
    shape for shape (``_from_pretrained``).
  - ``save_pretrained(path, *, dtype=None)`` (``_save_pretrained``): the two files, each
    written atomically; ``dtype=torch.float16`` stores half-precision weights.
  - ``push_to_hub(repo_id, ...)``: the two files uploaded in one commit.

* :class:`PushToHubMixin`: ``push_to_hub`` for objects that wrap a network and write it with
  their own ``save_pretrained`` (``RAFTFlow``, the ``IDBlau`` synthesizer).
* :func:`load_weights` / :func:`save_weights`: a user's own ``nn.Module`` (the CLI's
  ``--weights``): a ``.safetensors`` file, a folder or a Hub repo id, strictly matched.
* Building blocks shared by the above: :func:`resolve_pretrained`, :func:`read_config`,
  :func:`read_state_dict`, :func:`check_state_dict`, :func:`write_pretrained`.

Errors (see ``docs/weights.md``):

* :class:`WeightsNotFoundError` (a ``FileNotFoundError``, hence an ``OSError``): the weights
  cannot be found: no such local folder, a file missing from the folder, no shipped default,
  or a Hub repo id that cannot be resolved (Hub unreachable or ``HF_HUB_OFFLINE=1`` and not
  in the local cache, unknown repo or revision). The message names the repo id and how to
  pre-download it.
* :class:`InvalidWeightsError` (a ``ValueError``): the files exist but cannot be used:
  invalid JSON, a config for another class or with invalid values, a corrupted or truncated
  safetensors file, a pickle, missing / unexpected keys or wrong shapes. The message names the
  file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from huggingface_hub import PyTorchModelHubMixin
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ttblur.io.atomic import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "CLASS_KEY",
    "CONFIG_NAME",
    "TORCH_SUFFIXES",
    "WEIGHTS_NAME",
    "InvalidWeightsError",
    "PretrainedMixin",
    "PushToHubMixin",
    "WeightsNotFoundError",
    "check_state_dict",
    "load_safetensors",
    "load_weights",
    "looks_like_local_path",
    "parse_config",
    "read_config",
    "read_config_json",
    "read_state_dict",
    "resolve_pretrained",
    "save_state_dict",
    "save_weights",
    "shipped_weights_dir",
    "state_dict_mismatch",
    "write_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: Key of ``config.json`` naming the class the weights belong to.
CLASS_KEY = "_class_name"
#: Endings of torch (pickle-based) checkpoint files: never read, except RAFT's ``.pth`` / ``.pt``
#: with ``torch.load(weights_only=True)`` (see :func:`read_state_dict`).
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
#: What a user's ``--weights`` folder may hold (the second is written by ``ttblur adapt``).
_USER_WEIGHTS_NAMES = (WEIGHTS_NAME, "adapted.safetensors")

_T = TypeVar("_T", bound="PretrainedMixin")
_C = TypeVar("_C", bound=BaseModel)


class WeightsNotFoundError(FileNotFoundError):
    """The weights cannot be found (locally, in the shipped defaults, or on the Hub / in its
    cache). A ``FileNotFoundError`` (so an ``OSError``); the message says what to do."""


class InvalidWeightsError(ValueError):
    """The weight files exist but cannot be used (corrupted, another class, or not matching
    the architecture). A ``ValueError``; the message names the file and the problem."""


# ============================================================================ finding the files


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
    **hub_kwargs: Any,
) -> Path:
    """Find the folder holding the weight files.

    Args:
        repo_id_or_path: ``None`` for the shipped default, a local folder, or a Hub repo id
            (``owner/name``). An existing folder wins over a repo id of the same name.
        default: name of the shipped default under ``ttblur/weights/``.
        revision: Hub revision (branch, tag or commit hash); only for repo ids (refused
            with a folder or the shipped default, where it would be ignored).
        filenames: files to fetch from a Hub repo (only these are downloaded).
        **hub_kwargs: passed to :func:`huggingface_hub.snapshot_download` for repo ids
            (``cache_dir``, ``token``, ``force_download``, ``local_files_only``).

    Returns:
        the folder: the shipped one, the local one, or the Hub cache snapshot
        (``.../models--owner--name/snapshots/<commit>``). Whether the files are all there is
        checked by the readers (:func:`read_config`, :func:`read_state_dict`).

    Raises:
        WeightsNotFoundError: no such local folder, no shipped default, or the repo id cannot
            be resolved (Hub unreachable and not in the local cache, unknown repo or
            revision): the message names the repo and how to pre-download it.
        ValueError: ``revision`` with a local folder or the shipped default.
    """
    if repo_id_or_path is None:
        if default is None:
            raise WeightsNotFoundError(
                "this class ships no default weights: pass a folder or a Hub repo id"
            )
        _refuse_local_revision("revision", revision, "the shipped default weights")
        folder = shipped_weights_dir(default)
        if not (folder / WEIGHTS_NAME).is_file():
            raise WeightsNotFoundError(
                f"the shipped default weights '{default}' are missing from {folder}; "
                "reinstall ttblur or pass a folder / Hub repo id"
            )
        return folder
    path = Path(repo_id_or_path).expanduser()
    if path.is_dir():
        _refuse_local_revision("revision", revision, f"the local folder {path}")
        return path
    text = str(repo_id_or_path)
    if isinstance(repo_id_or_path, Path) or looks_like_local_path(text) or path.exists():
        raise WeightsNotFoundError(f"no weights folder at '{text}'")
    return _download_from_hub(text, revision, tuple(filenames), hub_kwargs)


def _refuse_local_revision(option: str, revision: str | None, where: str) -> None:
    """A revision names a commit of a Hub repo: with anything else it would be ignored."""
    if revision is not None:
        raise ValueError(
            f"{option} {revision} applies to a Hugging Face Hub repo id, not to {where}"
        )


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


def _cached_snapshot(
    repo_id: str, revision: str | None, filenames: tuple[str, ...], cache_dir: Any
) -> Path | None:
    """The Hub cache's snapshot folder of ``repo_id`` at ``revision`` holding any of
    ``filenames``, looked up on disk only; ``None`` when there is none.

    ``snapshot_download`` already falls back to the cache offline, but some
    ``huggingface_hub`` releases (1.33 among them) do not when ``revision`` is a commit hash
    that no branch or tag of the cache points to; ``try_to_load_from_cache`` resolves refs and
    bare commit hashes alike.
    """
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        found = try_to_load_from_cache(repo_id, name, revision=revision, cache_dir=cache_dir)
        if isinstance(found, str):
            return Path(found).parent
    return None


def _download_from_hub(
    repo_id: str, revision: str | None, filenames: tuple[str, ...], hub_kwargs: dict[str, Any]
) -> Path:
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
            repo_id,
            revision=revision,
            allow_patterns=list(filenames),
            library_name="ttblur",
            **hub_kwargs,
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
        cache_dir = hub_kwargs.get("cache_dir")
        cached = _cached_snapshot(repo_id, revision, filenames, cache_dir)
        if cached is not None:
            return cached
        reason = (
            "the Hub is not contacted because HF_HUB_OFFLINE=1 is set"
            if constants.HF_HUB_OFFLINE
            else "the Hub is not contacted (local_files_only=True)"
            if hub_kwargs.get("local_files_only")
            else "the Hub could not be reached"
        )
        raise WeightsNotFoundError(
            f"could not get the weights of {where}: {reason} and "
            f"the local Hub cache ({cache_dir or constants.HF_HUB_CACHE}) holds no complete "
            f"snapshot of it ({type(err).__name__}: {err}). "
            f"{_predownload_help(repo_id, revision)}"
        ) from err
    return Path(folder)


# ============================================================================ reading the files


def read_config_json(folder: str | Path, *, required: bool = True) -> dict[str, Any] | None:
    """Read ``folder/config.json`` as a JSON object, unvalidated (``"_class_name"`` kept).

    Args:
        folder: the weights folder.
        required: raise when the file is missing (else return ``None``).

    Returns:
        the object, or ``None`` when the file is missing and not ``required``.

    Raises:
        WeightsNotFoundError: the file is missing and ``required``.
        InvalidWeightsError: not valid JSON or not an object.
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
    return raw


def parse_config(
    raw: Mapping[str, Any], folder: str | Path, class_name: str, config_class: type[_C]
) -> _C:
    """Validate a ``config.json`` object read by :func:`read_config_json` for ``class_name``.

    Args:
        raw: the file's object; a ``"_class_name"`` entry must equal ``class_name`` (objects
            without the entry are accepted).
        folder: the weights folder it came from (for messages).
        class_name: the class that loads it.
        config_class: the pydantic model the rest of the object must validate as.

    Raises:
        InvalidWeightsError: another class's config, or values that ``config_class`` rejects.
    """
    path = Path(folder) / CONFIG_NAME
    fields = dict(raw)
    saved_class = fields.pop(CLASS_KEY, class_name)
    if saved_class != class_name:
        raise InvalidWeightsError(
            f"{path} holds weights of {saved_class}, not {class_name}: "
            f"load them with {saved_class}.from_pretrained"
        )
    try:
        return config_class.model_validate(fields)
    except ValidationError as err:
        raise InvalidWeightsError(f"{path} is not a valid {class_name} config: {err}") from err


def read_config(
    folder: str | Path,
    class_name: str,
    config_class: type[_C],
    *,
    required: bool = True,
) -> _C | None:
    """Read and validate ``folder/config.json`` for class ``class_name``.

    :func:`read_config_json` then :func:`parse_config`.

    Returns:
        the validated config, or ``None`` when the file is missing and not ``required``.

    Raises:
        WeightsNotFoundError: the file is missing and ``required``.
        InvalidWeightsError: not valid JSON, not an object, another class's config, or
            values that ``config_class`` rejects.
    """
    raw = read_config_json(folder, required=required)
    if raw is None:
        return None
    return parse_config(raw, folder, class_name, config_class)


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
        InvalidWeightsError: not a safetensors file (a pickle under that name included), or
            truncated / corrupted.
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


def read_state_dict(path: str | Path, *, torch_files: bool = False) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` file, or, only when ``torch_files``, from a
    torch ``.pth`` / ``.pt`` file with ``torch.load(weights_only=True)`` (tensors and plain
    containers only: no code can run).

    Torch files may nest the state dict under ``"state_dict"``, ``"model"`` or
    ``"model_state"``; keys saved from ``nn.DataParallel`` lose their ``"module."`` prefix.

    Args:
        path: the file.
        torch_files: accept torch files (``RAFTFlow``: torchvision distributes RAFT as
            ``.pth``). Otherwise only safetensors is read.

    Returns:
        ``{name: tensor}`` on the CPU.

    Raises:
        WeightsNotFoundError: no such file.
        InvalidWeightsError: unreadable, or not a mapping of names to tensors.
    """
    file = Path(path)
    if file.suffix != ".safetensors" and torch_files:
        if not file.is_file():
            raise WeightsNotFoundError(f"{file} is missing")
        try:
            state: Any = torch.load(str(file), map_location="cpu", weights_only=True)
        except Exception as err:
            raise InvalidWeightsError(
                f"cannot read weights {file}: {type(err).__name__}: {err}"
            ) from err
        if isinstance(state, dict):
            for key in ("state_dict", "model", "model_state"):
                if key in state and isinstance(state[key], dict):
                    state = state[key]
                    break
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise InvalidWeightsError(f"{file} does not hold a state dict (name -> tensor)")
        return {k.removeprefix("module."): v for k, v in state.items()}
    return load_safetensors(file)


def state_dict_mismatch(own: Mapping[str, Any], state: Mapping[str, Any], *, limit: int = 5) -> str:
    """Describe how ``state`` differs from the module state dict ``own``.

    Args:
        own: the module's ``state_dict()`` (names -> tensors).
        state: the loaded weights.
        limit: names listed per kind of difference.

    Returns:
        ``""`` when the keys and shapes match exactly and every tensor is finite where the
        module's own is, else a description naming the missing and unexpected keys, the
        shape mismatches and the tensors holding NaN / inf (a diverged or damaged save; a
        buffer the module itself fills with ``-inf``, such as an attention mask, is allowed).
    """
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} in the file vs {tuple(v.shape)} in the model"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    non_finite = [
        f"{k} ({int((~torch.isfinite(state[k])).sum())} of {state[k].numel()})"
        for k, v in own.items()
        if k in state
        and tuple(state[k].shape) == tuple(v.shape)
        and _floating(state[k])
        and not bool(torch.isfinite(state[k]).all())
        and (not _floating(v) or bool(torch.isfinite(v).all()))
    ]
    parts = []
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatch", shapes),
        ("NaN / inf values in", non_finite),
    ):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{label} {items[:limit]}{more}")
    return "; ".join(parts)


def _floating(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


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
            f"{CONFIG_NAME} ({problem}); different keys or shapes mean the config and the "
            "weights come from different architectures, NaN / inf a diverged or damaged save"
        )


# ============================================================================ writing the files


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` as a safetensors file, atomically (:func:`ttblur.io.atomic.atomic_path`).

    Every tensor is copied to the CPU (so tied weights are stored once per key and the file
    loads back key for key); an earlier file at ``path`` stays whole until the new one
    replaces it.

    Returns:
        the file.
    """
    out = Path(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    return out


def write_pretrained(
    path: str | Path,
    class_name: str,
    config: BaseModel,
    state: Mapping[str, torch.Tensor],
    *,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``config.json`` (``config`` plus ``"_class_name"``) and ``model.safetensors``.

    Args:
        path: the folder (created if needed; existing files are replaced, each atomically).
        class_name: the class that loads the folder.
        config: its config.
        state: the tensors (copied to the CPU).
        dtype: store the floating-point tensors in this precision (e.g. ``torch.float16``
            halves the file); ``None`` keeps each tensor's own. Loading casts them back to
            the module's precision.

    Returns:
        the folder.
    """
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    if dtype is not None:
        state = {k: _cast(k, v, dtype) for k, v in state.items()}
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {CLASS_KEY: class_name, **config.model_dump(mode="json")}
    atomic_write_text(folder / CONFIG_NAME, json.dumps(payload, indent=2) + "\n")
    save_state_dict(state, folder / WEIGHTS_NAME)
    return folder


def _cast(name: str, value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``value`` in ``dtype`` (floating-point tensors only); refuses a cast that turns finite
    values into inf (``float16`` tops out at 65504)."""
    if not value.is_floating_point():
        return value
    cast = value.to(dtype)
    overflow = torch.isfinite(value) & ~torch.isfinite(cast)
    if bool(overflow.any()):
        largest = float(value[overflow].abs().max())
        raise ValueError(
            f"'{name}' holds values up to {largest:.4g} that {dtype} cannot store (they would "
            f"become inf; its largest is {torch.finfo(dtype).max:.4g}); save in a wider dtype "
            "(torch.bfloat16, torch.float32)"
        )
    return cast


# ============================================================================ Hub upload


def _upload(
    save: Any,
    class_name: str,
    repo_id: str,
    *,
    token: str | None,
    private: bool | None,
    commit_message: str | None,
    revision: str | None,
    upload_kwargs: dict[str, Any],
) -> Any:
    """``save(folder)`` into a temporary folder, then create the repo (and branch) and upload
    the folder in one commit."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    message = commit_message or f"Upload {class_name} weights"
    with tempfile.TemporaryDirectory(prefix="ttblur-push-") as tmp:
        folder = save(Path(tmp) / "weights")
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
            **upload_kwargs,
        )


_PUSH_DOC = """Upload what :meth:`save_pretrained` writes to the Hugging Face Hub model repo
        ``repo_id`` (created if needed), in one commit.

        Args:
            repo_id: ``owner/name`` (or ``name`` for the token's own namespace).
            token: Hub token; ``None`` uses the stored login / ``HF_TOKEN``.
            private: visibility when the repo is created (``None``: the Hub's default);
                an existing repo keeps its visibility.
            commit_message: default ``"Upload <class> weights"``.
            revision: branch to commit to (created if missing); ``None``: ``main``.
                ``branch=`` (the name ``PyTorchModelHubMixin`` uses) is accepted too.
            **upload_kwargs: passed to ``HfApi.upload_folder`` (``create_pr``,
                ``allow_patterns``, ``ignore_patterns``, ``delete_patterns``).

        Returns:
            the ``huggingface_hub.CommitInfo`` of the upload (a ``str``: the commit URL).

        Raises:
            huggingface_hub errors: no network, no or invalid token, no write access.
        """


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
        branch: str | None = None,
        **upload_kwargs: Any,
    ) -> Any:
        if not callable(getattr(self, "save_pretrained", None)):
            raise TypeError(
                f"{type(self).__name__} defines no save_pretrained(path): nothing to push"
            )
        return _upload(
            self.save_pretrained,
            type(self).__name__,
            repo_id,
            token=token,
            private=private,
            commit_message=commit_message,
            revision=revision if revision is not None else branch,
            upload_kwargs=upload_kwargs,
        )

    push_to_hub.__doc__ = _PUSH_DOC


class PretrainedMixin(PushToHubMixin, PyTorchModelHubMixin):
    """``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` for an ``nn.Module``: a
    :class:`huggingface_hub.PyTorchModelHubMixin` with ttblur's loading rules.

    A subclass sets ``config_class`` (a pydantic model), stores its config as ``self.config``,
    is constructible as ``cls(config)``, and may name a shipped default (a folder under
    ``ttblur/weights/``) in ``default_weights``. The mixin's hooks do the work:
    ``from_pretrained`` finds the folder (shipped default, local folder or Hub cache snapshot)
    and validates ``config.json``; ``_from_pretrained`` builds ``cls(config)`` and loads
    ``model.safetensors`` strictly; ``_save_pretrained`` writes both files. ``push_to_hub``
    (:class:`PushToHubMixin`'s) uploads them in one commit, creating the branch if needed.
    """

    config_class: ClassVar[type[BaseModel]]
    default_weights: ClassVar[str | None] = None
    config: Any

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls: type[_T],
        repo_id_or_path: str | Path | None = None,
        *,
        revision: str | None = None,
        map_location: str | torch.device = "cpu",
        force_download: bool = False,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
    ) -> _T:
        """Build the module from a config + safetensors folder, a Hub repo or the default.

        Args:
            repo_id_or_path: ``None`` for the shipped default (``default_weights``), a local
                folder, or a Hub repo id (resolved through the Hub cache).
            revision: Hub branch, tag or commit hash (repo ids only).
            map_location: device the module is put on (weights are read on the CPU first).
            force_download: re-download a repo id's files even if cached.
            token: Hub token for private repos (``None``: the stored login / ``HF_TOKEN``).
            cache_dir: Hub cache folder (``None``: ``HF_HUB_CACHE``).
            local_files_only: never contact the Hub (like ``HF_HUB_OFFLINE=1``).

        Returns:
            the module in eval mode. The state dict must match the architecture exactly
            (strict key and shape matching).

        Raises:
            WeightsNotFoundError: the weights cannot be found (see :func:`resolve_pretrained`)
                or a file is missing.
            InvalidWeightsError: the files are corrupt, belong to another class, or do not
                match the architecture.
            ValueError: ``revision`` with a local folder or the shipped default.
        """
        hub_kwargs: dict[str, Any] = {}
        if force_download:
            hub_kwargs["force_download"] = True
        if local_files_only:
            hub_kwargs["local_files_only"] = True
        if token is not None:
            hub_kwargs["token"] = token
        if cache_dir is not None:
            hub_kwargs["cache_dir"] = cache_dir
        folder = resolve_pretrained(
            repo_id_or_path, default=cls.default_weights, revision=revision, **hub_kwargs
        )
        return cls.from_folder(folder, map_location=map_location)

    @classmethod
    def from_folder(
        cls: type[_T],
        folder: str | Path,
        *,
        config: BaseModel | None = None,
        map_location: str | torch.device = "cpu",
    ) -> _T:
        """Build the module from a local weights folder (no Hub lookup).

        Args:
            folder: holds ``model.safetensors`` (and ``config.json`` unless ``config``).
            config: the architecture, when the caller has already read ``config.json``
                (:func:`read_config_json` + :func:`parse_config`); ``None`` reads it.
            map_location: device the module is put on.

        Raises:
            WeightsNotFoundError, InvalidWeightsError: as :meth:`from_pretrained`.
        """
        if config is None:
            config = read_config(folder, cls.__name__, cls.config_class)
        return cls._from_pretrained(model_id=str(folder), map_location=map_location, config=config)

    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls: type[_T],
        *,
        model_id: str,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        map_location: str | torch.device = "cpu",
        config: BaseModel | None = None,
    ) -> _T:
        """Build ``cls(config)`` and load ``model_id/model.safetensors`` into it strictly.

        ``model_id`` is the folder :meth:`from_pretrained` resolved (files already local);
        the Hub arguments are part of the mixin's hook signature and unused here. Pickle
        files are never read, and there is no ``strict=False``.
        """
        weights_path = Path(model_id) / WEIGHTS_NAME
        state = load_safetensors(weights_path)
        module = cls(config)
        net: nn.Module = module  # type: ignore[assignment]
        check_state_dict(net.state_dict(), state, source=weights_path, target=cls.__name__)
        net.load_state_dict(state, strict=True)
        net.to(map_location)
        net.eval()
        return module

    def _save_pretrained(self, save_directory: Path, *, dtype: torch.dtype | None = None) -> None:
        """Write ``config.json`` (``self.config`` + ``"_class_name"``) and
        ``model.safetensors`` (floating-point tensors in ``dtype`` if given) into
        ``save_directory``."""
        net: nn.Module = self  # type: ignore[assignment]
        state = net.state_dict()
        write_pretrained(save_directory, type(self).__name__, self.config, state, dtype=dtype)

    def save_pretrained(  # type: ignore[override]
        self, path: str | Path, *, dtype: torch.dtype | None = None
    ) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into folder ``path`` (created).

        Unlike ``PyTorchModelHubMixin.save_pretrained`` no ``README.md`` model card is
        written: a weights folder holds exactly the two files ttblur ships.

        Args:
            path: the folder.
            dtype: store the floating-point weights in this precision (``torch.float16``
                halves the file); ``None`` keeps the module's own.

        Returns:
            the folder, loadable with ``from_pretrained(path)``.
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_pretrained(folder, dtype=dtype)
        return folder


# ============================================================================ users' own networks


def _user_weights_file(weights: str, revision: str | None) -> Path:
    """The ``.safetensors`` file a ``--weights`` value names (see :func:`load_weights`)."""
    path = Path(weights).expanduser()
    local = path.exists() or looks_like_local_path(weights, (".safetensors", *TORCH_SUFFIXES))
    if local:
        _refuse_local_revision("--revision", revision, f"the local path {weights}")
    if path.is_file():
        return path
    if path.is_dir():
        for name in _USER_WEIGHTS_NAMES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"--weights: {path} holds neither {' nor '.join(_USER_WEIGHTS_NAMES)}"
        )
    if local:
        raise FileNotFoundError(f"--weights: no such file or folder: {weights}")
    folder = resolve_pretrained(weights, default=None, revision=revision, filenames=(WEIGHTS_NAME,))
    return folder / WEIGHTS_NAME


def load_weights(
    model: nn.Module, weights: str | os.PathLike[str], *, revision: str | None = None
) -> Path:
    """Load a safetensors state dict into any ``model`` with strict key and shape matching.

    Args:
        model: the network (a user's own ``nn.Module``; no config is involved).
        weights: a ``.safetensors`` file; a folder holding ``model.safetensors`` (or the
            ``adapted.safetensors`` written by ``ttblur adapt``); or a Hugging Face Hub repo
            id whose ``model.safetensors`` is fetched through the local Hub cache
            (``HF_HUB_OFFLINE=1`` works with a populated cache). Pickle-based checkpoints
            (``.pt``, ``.pth``, ...) are refused.
        revision: Hub branch, tag or commit hash of a repo-id ``weights`` (default: ``main``);
            refused for a local path.

    Returns:
        the file read.

    Raises:
        FileNotFoundError: no such file or folder, or a repo id (at ``revision``) that cannot
            be resolved (:class:`WeightsNotFoundError`).
        ValueError: not a safetensors file, keys / shapes that do not match the model, or
            ``revision`` with a local path.
    """
    file = _user_weights_file(os.fspath(weights), revision)
    if file.suffix != ".safetensors":
        raise ValueError(
            f"--weights: {file} is not a .safetensors file; pickle checkpoints are never loaded "
            "(convert one with torch.load + safetensors.torch.save_file in a trusted session)"
        )
    state = load_safetensors(file)
    problem = state_dict_mismatch(model.state_dict(), state)
    if problem:
        raise ValueError(
            f"--weights: {file} does not match the network built by --model: {problem}"
        )
    model.load_state_dict(state, strict=True)
    return file


def save_weights(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model.state_dict()`` as one safetensors file, atomically (see
    :func:`save_state_dict`); :func:`load_weights` reads it back.

    Returns:
        the file.
    """
    return save_state_dict(model.state_dict(), path)
