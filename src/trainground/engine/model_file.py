"""Final weights as safetensors, with what is needed to use them stored in the metadata."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from trainground.engine.atomic import atomic_path
from trainground.errors import RunDirError

FORMAT = "trainground.model/1"
# Metadata key of the file's SHA-256 (files written before it existed have none and are not verified).
CHECKSUM_KEY = "sha256"


def save_model(path: str | Path, model: nn.Module, *, info: dict[str, Any] | None = None) -> None:
    """Write ``model``'s state dict to ``path`` atomically.

    ``info`` (JSON-serialisable) goes into the safetensors header: with the model's
    ``spec()``, the data schema and the classes, one file is enough to predict.
    """
    # clone(): tied weights share storage, which safetensors refuses; copies do not.
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT}
    if hasattr(model, "spec"):
        meta["model"] = json.dumps(model.spec())
    for key, value in (info or {}).items():
        meta[key] = json.dumps(value)
    meta[CHECKSUM_KEY] = _digest(state, meta)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def _digest(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """SHA-256 over the metadata and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in meta.items() if k != CHECKSUM_KEY}, sort_keys=True).encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def read_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and decoded metadata of a file written by :func:`save_model`, checksum verified."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: missing; the run did not finish (resume it with `trainground fit --resume`)")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as err:  # noqa: BLE001  (any failure to read means the same to the user)
        raise RunDirError(f"{path}: not a readable safetensors file ({err})") from None
    if raw.get("format") != FORMAT:
        raise RunDirError(f"{path}: not a trainground model file (format {raw.get('format')!r})")
    expected = raw.get(CHECKSUM_KEY)
    if expected is not None and expected != _digest(tensors, raw):
        raise RunDirError(f"{path}: checksum mismatch; the model file was damaged or changed after it was written")
    meta = {}
    for key, value in raw.items():
        if key in ("format", CHECKSUM_KEY):
            continue
        try:
            meta[key] = json.loads(value)
        except ValueError:
            raise RunDirError(f"{path}: metadata {key!r} is not valid JSON; the model file is damaged") from None
    return tensors, meta
