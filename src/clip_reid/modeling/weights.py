"""Where CLIP weights come from: OpenAI checkpoints (file or official URL), open_clip tags, random.

OpenAI distributes CLIP as TorchScript archives; a plain state dict works too. Both are read
without executing pickled code (``torch.jit.load`` for archives, ``weights_only=True`` for state
dicts) and loaded strictly, so a wrong or truncated file fails with its name, never half-loaded.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from clip_reid.data.download import DownloadError, download_file
from clip_reid.load_errors import load_failure

OPENAI_URLS = {
    "RN50": "https://openaipublic.azureedge.net/clip/models/"
    "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
    "ViT-B-16": "https://openaipublic.azureedge.net/clip/models/"
    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
}
DEFAULT_CACHE = Path.home() / ".cache" / "clip"
# Entries of OpenAI checkpoints that are metadata, not parameters of the model.
_OPENAI_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")


class WeightsError(RuntimeError):
    """CLIP weights could not be found, downloaded or loaded."""


def openai_checkpoint(arch: str, cache_dir: Path | None = None) -> Path:
    """The cached official checkpoint for ``arch``, downloaded once and SHA-256 verified."""
    if arch not in OPENAI_URLS:
        raise WeightsError(
            f"No official OpenAI checkpoint for {arch!r}; available: {sorted(OPENAI_URLS)}. "
            "Use a file path or an open_clip tag instead."
        )
    url = OPENAI_URLS[arch]
    target = Path(cache_dir or DEFAULT_CACHE) / url.rsplit("/", 1)[-1]
    try:
        return download_file(url, target, sha256=url.rsplit("/", 2)[-2])
    except DownloadError as error:
        raise WeightsError(
            f"{error}\nOffline: download {url} elsewhere, copy it to {target} (or any path) and "
            f"set model.clip.weights to that path in your parameters."
        ) from error


def read_openai_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """Parameters of an OpenAI CLIP checkpoint (TorchScript archive or plain state dict)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"CLIP weights file not found: {path}. Download the official checkpoint (e.g. "
            f"{OPENAI_URLS['RN50']}) to that path, or set model.clip.weights to an existing file."
        )
    try:
        if _is_torchscript(path):
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        with path.open("rb") as file:
            start = file.read(16)
        raise WeightsError(
            f"Cannot read CLIP weights {path}: {load_failure(error, start)}. The file is "
            "truncated or not a CLIP checkpoint; delete it and download it again."
        ) from error
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors.")
    return {k: v.float() for k, v in state.items() if k not in _OPENAI_METADATA_KEYS}


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a ``code/`` folder (state dicts have none)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name or name.startswith("code/") for name in archive.namelist())


def load_state_dict_strictly(model: torch.nn.Module, state: dict, source: str) -> None:
    """``load_state_dict(strict=True)`` with the mismatches spelled out, shapes included."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong_shape:
        def show(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f" … (+{len(items) - 8})" if len(items) > 8 else "")

        raise WeightsError(
            f"Weights from {source} do not fit the model: missing {len(missing)} "
            f"[{show(missing)}], unexpected {len(unexpected)} [{show(unexpected)}], "
            f"wrong shape {len(wrong_shape)} [{show(wrong_shape)}]. Check that the backbone "
            "parameter matches the checkpoint."
        )
    model.load_state_dict(state, strict=True)
