"""Loading and saving weights: ``config.json`` + ``model.safetensors``, never pickle.

Every stage with weights (``BlurMagnitudeEstimator``, ``IDBlau``, the reference model, ...)
inherits :class:`PretrainedMixin`, which gives it

* ``from_pretrained(repo_id_or_path=None, revision=None)``: ``None`` loads the small default
  shipped inside the package (``ttblur/weights/<name>/``) with no network; an existing local
  folder loads from that folder; anything else is a Hugging Face Hub repo id resolved through
  the Hub cache (so ``HF_HUB_OFFLINE=1`` with a populated cache works);
* ``save_pretrained(path)``: writes the two files to a folder that ``from_pretrained`` reads.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from pydantic import BaseModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "PretrainedMixin",
    "resolve_pretrained",
    "shipped_weights_dir",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

_T = TypeVar("_T", bound="PretrainedMixin")


def shipped_weights_dir(name: str) -> Path:
    """Folder of the default weights ``name`` shipped inside the package."""
    return Path(str(resources.files("ttblur") / "weights" / name))


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~", "\\")) or text.count("/") > 1 or ":" in text


def resolve_pretrained(
    repo_id_or_path: str | Path | None,
    *,
    default: str | None,
    revision: str | None = None,
) -> Path:
    """Find the folder holding ``config.json`` and ``model.safetensors``.

    Args:
        repo_id_or_path: ``None`` for the shipped default, a local folder, or a Hub repo id.
        default: name of the shipped default under ``ttblur/weights/``.
        revision: Hub revision (branch, tag or commit); only for repo ids.

    Raises:
        FileNotFoundError: no such local folder, no shipped default, or the repo id cannot be
            resolved (Hub unreachable and not in the local cache): the message names the repo
            and how to pre-download it.
    """
    if repo_id_or_path is None:
        if default is None:
            raise FileNotFoundError("this class ships no default weights: pass a folder or repo id")
        folder = shipped_weights_dir(default)
        if not (folder / WEIGHTS_NAME).is_file():
            raise FileNotFoundError(
                f"the shipped default weights '{default}' are missing from {folder}; "
                "reinstall ttblur or pass a folder / Hub repo id"
            )
        return folder
    path = Path(repo_id_or_path).expanduser()
    if path.is_dir():
        return path
    text = str(repo_id_or_path)
    if isinstance(repo_id_or_path, Path) or _looks_like_path(text) or path.exists():
        raise FileNotFoundError(f"no weights folder at '{text}'")
    return _download_from_hub(text, revision)


def _download_from_hub(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HFValidationError

    files = []
    try:
        for filename in (CONFIG_NAME, WEIGHTS_NAME):
            files.append(hf_hub_download(repo_id, filename, revision=revision))
    except HFValidationError as err:
        raise FileNotFoundError(
            f"'{repo_id}' is neither an existing folder nor a valid Hub repo id ({err})"
        ) from err
    except Exception as err:  # network errors, missing cache entries, missing files, auth
        raise FileNotFoundError(
            f"could not get weights for Hub repo '{repo_id}'"
            f"{'@' + revision if revision else ''}: {type(err).__name__}: {err}. "
            "Without network access, pre-download them on a connected machine with "
            f"`hf download {repo_id}` (then copy the cache, HF_HOME) and set HF_HUB_OFFLINE=1, "
            "or pass the local folder instead."
        ) from err
    return Path(files[-1]).parent


class PretrainedMixin:
    """Adds ``from_pretrained`` / ``save_pretrained`` to an ``nn.Module``.

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

        The state dict must match the architecture exactly (strict key and shape matching);
        the returned module is in eval mode.

        Raises:
            FileNotFoundError: the weights cannot be found (see :func:`resolve_pretrained`).
            ValueError: the files are corrupt or do not match the architecture.
        """
        folder = resolve_pretrained(repo_id_or_path, default=cls.default_weights, revision=revision)
        config_path = folder / CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} is missing")
        try:
            raw = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{config_path} is not valid JSON: {err}") from err
        saved_class = raw.pop("_class_name", cls.__name__)
        if saved_class != cls.__name__:
            raise ValueError(f"{folder} holds weights of {saved_class}, not {cls.__name__}")
        config = cls.config_class.model_validate(raw)
        module = cls(config)  # type: ignore[call-arg]
        weights_path = folder / WEIGHTS_NAME
        try:
            state = load_file(str(weights_path), device=str(map_location))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"cannot read {weights_path}: {err}") from err
        module._load_strict(state, source=str(folder))
        module.eval()  # type: ignore[attr-defined]
        return module

    def _load_strict(self, state: dict[str, torch.Tensor], *, source: str) -> None:
        own = self.state_dict()  # type: ignore[attr-defined]
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [
            f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
            for k, v in own.items()
            if k in state and state[k].shape != v.shape
        ]
        if missing or unexpected or shapes:
            raise ValueError(
                f"weights in {source} do not match {type(self).__name__}: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatch {shapes[:5]}"
            )
        self.load_state_dict(state, strict=True)  # type: ignore[attr-defined]

    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into folder ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"_class_name": type(self).__name__, **self.config.model_dump(mode="json")}
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        state = {
            k: v.detach().to("cpu").contiguous()
            for k, v in self.state_dict().items()  # type: ignore[attr-defined]
        }
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        return folder
