"""Reading checkpoint files safely and loading them strictly, with errors that say what is wrong.

Files are read with ``torch.load(weights_only=True)`` or as safetensors; a pickle that needs arbitrary code is
refused. ``load_weights`` detects the layout of a state dict (original / timm / Hugging Face / ours), converts
it to the model's canonical layout and loads it strictly.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from focalnet.errors import FocalnetError, InputNotFoundError

_logger = logging.getLogger(__name__)

__all__ = ["CheckpointError", "check_finite", "load_state_dict_file", "unwrap_state_dict", "load_weights"]


class CheckpointError(FocalnetError, ValueError):
    """A checkpoint cannot be read or does not fit the model; the message says why."""


def load_state_dict_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a ``.pth``/``.pt``/``.bin`` (weights-only pickle) or ``.safetensors`` file into a dict."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():  # a FIFO or device would block or never end
        raise CheckpointError(f"{path} is not a regular file (a pipe or device?); pass a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); the download or save was interrupted")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if path.suffix == ".safetensors" or (len(magic) == 8 and not magic.startswith(b"PK") and magic[:1] != b"\x80"):
        try:
            from safetensors.torch import load_file
        except ImportError as e:  # pragma: no cover - safetensors is in the weights extra
            raise CheckpointError("reading .safetensors needs `pip install focalnet[weights]`") from e
        try:
            return load_file(str(path), device=str(map_location))
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from e
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it contains pickled Python objects that are not plain tensors/containers "
            f"({str(e).splitlines()[0][:200]}). Only weights-only checkpoints are loaded; if you trust the file, "
            "re-save its state dict with torch.save(model.state_dict(), ...)"
        ) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path} is corrupt or truncated and cannot be read ({str(e).splitlines()[0]})") from e


def check_finite(model_or_sd: nn.Module | Mapping[str, torch.Tensor], source: object = "the weights") -> None:
    """Raise :class:`CheckpointError` if any floating-point weight is NaN or infinite (broken weights give
    meaningless outputs such as ``nan%``, so they are refused before any prediction)."""
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else model_or_sd
    bad = [k for k, v in sd.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise CheckpointError(
            f"the weights in {source} are broken: {len(bad)} of {len(sd)} tensors hold NaN or infinite values "
            f"({', '.join(bad[:3])}{more}); use an earlier checkpoint or retrain"
        )


def unwrap_state_dict(obj: Mapping) -> dict[str, torch.Tensor]:
    """Find the state dict inside a checkpoint (``model``/``state_dict``/``model_ema`` wrappers, ``module.``)."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    for key in ("model", "state_dict", "model_state", "module"):
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    sd = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        if k.startswith("module."):
            k = k[len("module.") :]
        sd[k] = v
    if not sd:
        raise CheckpointError("checkpoint contains no tensors")
    return sd


def _read_source(source, map_location) -> dict:
    if isinstance(source, Mapping):
        return dict(source)
    s = str(source)
    if s.startswith(("http://", "https://", "hf://", "file://")):
        from .hub import download

        return load_state_dict_file(download(s), map_location)
    if Path(s).is_dir():  # a Hugging Face model directory (save_pretrained / focalnet convert --to hf)
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (Path(s) / name).is_file():
                return load_state_dict_file(Path(s) / name, map_location)
        raise CheckpointError(f"{s} is a folder without model.safetensors or pytorch_model.bin")
    return load_state_dict_file(s, map_location)


def state_dict_mismatch(target: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor]) -> str:
    """What keeps ``sd`` from loading strictly where ``target`` (a module's ``state_dict()``) is expected: one
    line each for missing, unexpected and mis-shaped keys (8 named per line), or ``""`` when it fits."""
    missing = [k for k in target if k not in sd]
    unexpected = [k for k in sd if k not in target]
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(target[k].shape)}"
              for k in target if k in sd and tuple(sd[k].shape) != tuple(target[k].shape)]
    out = ""
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" ... (+{len(items) - 8} more)" if len(items) > 8 else ""
            out += f"\n  {title} ({len(items)}): " + ", ".join(items[:8]) + more
    return out


def check_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Raise a :class:`CheckpointError` naming missing, unexpected and mis-shaped keys."""
    mismatch = state_dict_mismatch(model.state_dict(), sd)
    if not mismatch:
        return

    hint = ""
    try:
        from .identify import guess_variant

        guess = guess_variant(sd)
        head = sd.get("head.weight")
        classes = f"{head.shape[0]}-class head" if head is not None else "no head"
        if guess:
            hint = f"\n  the checkpoint looks like {guess} ({classes})"
        else:
            hint = f"\n  the checkpoint matches no registered variant ({classes})"
    except ImportError:
        pass
    raise CheckpointError(f"checkpoint does not fit {type(model).__name__}:{mismatch}{hint}")


def load_weights(
    model: nn.Module,
    source,
    *,
    strict: bool = True,
    drop_head: bool = False,
    map_location: str | torch.device = "cpu",
) -> nn.Module:
    """Load ``source`` (a path, an URL or an in-memory state dict) into ``model``.

    The layout is detected and converted to the model's own. ``drop_head=True`` ignores the checkpoint's
    classifier (for fine-tuning with another number of classes). With ``strict`` (the default) any other
    mismatch raises a :class:`CheckpointError` that names the keys. Returns the model.
    """
    sd = unwrap_state_dict(_read_source(source, map_location))
    try:
        from .convert import to_canonical

        sd = to_canonical(model, sd)
    except ImportError:
        pass
    if drop_head:
        own = model.state_dict()
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
        sd.update({k: v for k, v in own.items() if k.startswith("head.")})
    if strict:
        check_state_dict(model, sd)
    result = model.load_state_dict(sd, strict=strict)
    if not strict and (result.missing_keys or result.unexpected_keys):
        _logger.warning(
            "non-strict load: %d missing, %d unexpected keys", len(result.missing_keys), len(result.unexpected_keys)
        )
    return model
