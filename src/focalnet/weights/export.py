"""Convert a checkpoint file from any supported layout into another, verified against the variant it belongs to.

``convert_checkpoint(src, dst, model=None, to="safetensors")`` is the plain function behind ``focalnet convert``:

* ``src``: a ``.pth``/``.pt``/``.bin``/``.safetensors`` file in the original, timm or Hugging Face layout, a
  Hugging Face model directory (``config.json`` + ``model.safetensors``/``pytorch_model.bin``), an URL, or a
  registered weights name (``focalnet_tiny_srf`` / ``focalnet_tiny_srf.ms_in1k``, downloaded into the cache).
* The variant comes from ``model`` (a registered name), else from a config beside ``src`` (ours or HF's), else
  from the tensors themselves (:func:`focalnet.weights.identify.guess_variant`). The converted state dict is checked
  key by key and shape by shape against that variant (built on the ``meta`` device, so nothing is allocated).
* ``to``: ``safetensors`` (our layout + ``<dst>.json`` naming the variant and its constructor kwargs),
  ``original`` (``{'model': state_dict}`` ``.pth`` as the authors ship it), ``hf`` (a directory that
  ``transformers.FocalNetForImageClassification.from_pretrained`` loads) or ``timm`` (timm's layout, ``.safetensors``
  or ``.pth`` by suffix, plus ``<dst>.json`` with the matching ``timm.models.focalnet.FocalNet`` kwargs).

Every file is written to a temporary name in the target directory and moved into place with ``os.replace``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from focalnet.errors import InputNotFoundError, UsageError

from .convert import _full_kwargs, hf_config, model_kwargs_from_hf_config, timm_kwargs, to_canonical, to_hf, to_timm
from .loading import CheckpointError, check_state_dict, load_state_dict_file, unwrap_state_dict

__all__ = ["FORMATS", "convert_checkpoint", "read_checkpoint", "atomic_write", "save_safetensors"]

_logger = logging.getLogger(__name__)

FORMATS = ("safetensors", "original", "hf", "timm")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then ``os.replace`` it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _write_json(path: Path, obj: Any) -> Path:
    def w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False)
            fh.write("\n")

    return atomic_write(path, w)


def _unshared(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous tensors with no shared storage (safetensors refuses aliasing)."""
    seen: set[int] = set()
    out = {}
    for k, v in sd.items():
        v = v.detach().contiguous()
        ptr = v.untyped_storage().data_ptr()
        if ptr in seen:
            v = v.clone()
        seen.add(v.untyped_storage().data_ptr())
        out[k] = v
    return out


def save_safetensors(sd: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``sd`` as safetensors atomically (``metadata`` values must be strings)."""
    from safetensors.torch import save_file

    tensors = _unshared(sd)
    meta = {"format": "pt", **{k: str(v) for k, v in (metadata or {}).items()}}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _save_torch(obj: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _jsonable(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


def read_checkpoint(src: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, str | None]:
    """Read ``src`` -> ``(state_dict, model kwargs or None, variant or None)`` using any config beside it."""
    from .hub import download
    from .records import get_weights

    s = str(src)
    path = Path(s).expanduser()
    if not path.exists() and "://" not in s:
        try:
            rec = get_weights(s)
        except KeyError:
            raise InputNotFoundError(f"{s} is neither a file, a directory, an URL nor a weights name") from None
        from .hub import fetch_record

        fetched, _url, _layout = fetch_record(rec)  # cached copies first, then each source; offline-aware
        return unwrap_state_dict(load_state_dict_file(fetched)), None, rec.variant
    if "://" in s:
        path = download(s)
    if path.is_dir():
        files = [path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()]
        if not files:
            raise CheckpointError(f"{path} holds neither model.safetensors nor pytorch_model.bin")
        sd = unwrap_state_dict(load_state_dict_file(files[0]))
        cfg_path = path / "config.json"
        kwargs = None
        if cfg_path.is_file():
            cfg = _read_json(cfg_path)
            if cfg.get("model_type") not in (None, "focalnet"):
                raise CheckpointError(f"{cfg_path} describes a {cfg.get('model_type')!r} model, not FocalNet")
            try:
                kwargs = model_kwargs_from_hf_config(cfg)
            except Exception as e:  # wrong types or missing keys in a hand-edited config
                raise CheckpointError(f"{cfg_path} is not a usable FocalNet config ({type(e).__name__}: {e})") from e
        return sd, kwargs, None
    sd = unwrap_state_dict(load_state_dict_file(path))
    beside = path.with_suffix(".json")
    if beside.is_file():
        meta = _read_json(beside)
        if "kwargs" in meta:
            if not isinstance(meta["kwargs"], dict):
                raise CheckpointError(f"{beside}: 'kwargs' must be a mapping of FocalNet settings")
            return sd, dict(meta["kwargs"]), meta.get("variant")
    return sd, None, None


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a clear CheckpointError for anything else."""
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} must hold a JSON object, not {type(obj).__name__}")
    return obj


def _id2label(num_classes: int) -> dict[int, str] | None:
    from .hf import hf_id2label
    from .label_sets import labels

    hf_names = hf_id2label(num_classes)  # Hugging Face's style: every lemma, "tench, Tinca tinca"
    if hf_names is not None:
        return hf_names
    try:
        if num_classes == 1000:
            return dict(enumerate(labels("imagenet-1k")))
        if num_classes == 21842:
            return dict(enumerate(labels("imagenet-22k")))
    except ImportError:
        return None
    return None


def _preprocess_for(src: str | os.PathLike, variant: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Eval preprocessing to export: the source folder's own, else the variant's weights record, else the
    authors' default for the resolution (bicubic, crop 0.875 at 224, 1.0 above)."""
    from .hf import is_hf_dir, read_hf_dir
    from .records import IMAGENET_MEAN, IMAGENET_STD, get_weights

    if "://" not in str(src) and is_hf_dir(src):
        pre = read_hf_dir(src).preprocess
        if pre is not None:
            return pre
    if variant:
        try:
            rec = get_weights(variant)
            return {"input_size": rec.input_size, "interpolation": rec.interpolation, "crop_pct": rec.crop_pct,
                    "mean": list(rec.mean), "std": list(rec.std)}
        except KeyError:
            pass
    size = int(kwargs.get("img_size", 224))
    return {"input_size": size, "interpolation": "bicubic", "crop_pct": 0.875 if size <= 224 else 1.0,
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def _check_destination(dst: Path, to: str, src: str | os.PathLike) -> None:
    """Refuse a destination that cannot be written as asked, before any work (exit code 2 in the CLI)."""
    if to == "hf":
        if dst.exists() and not dst.is_dir():
            raise UsageError(f"{dst} exists and is not a folder; --to hf writes a folder (model.safetensors + "
                             "config.json)")
        return
    if dst.is_dir():
        raise UsageError(f"{dst} is an existing folder; give a file name such as {dst / 'model.safetensors'}"
                         + (" (or --to hf to write a Hugging Face folder)" if to == "safetensors" else ""))
    if dst.exists() and not dst.is_file():
        raise UsageError(f"{dst} exists and is not a regular file")
    if to in ("safetensors", "timm") and dst.suffix == ".json":
        raise UsageError(f"{dst}: the converted weights need another name than .json (a .json config is written "
                         "beside them)")
    try:
        same = dst.exists() and Path(src).exists() and dst.samefile(src)
    except OSError:
        same = False
    if same:
        raise UsageError(f"{dst} is the source file; write the conversion to another file")
    if dst.parent.exists() and not dst.parent.is_dir():
        raise UsageError(f"cannot write {dst}: {dst.parent} is a file, not a folder")


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model: str | None = None,
    to: str = "safetensors",
) -> dict[str, Any]:
    """Convert ``src`` into format ``to`` at ``dst``; returns a summary (variant, layout, files written)."""
    from focalnet.models.focalnet import FocalNet
    from focalnet.models.registry import get_spec

    from .convert import detect_layout
    from .identify import guess_variant

    if to not in FORMATS:
        raise UsageError(f"unknown target format {to!r}; choose from {', '.join(FORMATS)}")
    _check_destination(Path(dst).expanduser(), to, src)
    sd, kwargs, variant = read_checkpoint(src)
    in_layout = detect_layout(sd)
    head = sd.get("head.weight", sd.get("head.fc.weight", sd.get("classifier.weight")))
    n_cls = int(head.shape[0]) if head is not None else 0
    if model is not None:
        variant = model
        kwargs = None
    if kwargs is None:
        variant = variant or guess_variant(sd)
        if variant is None:
            raise UsageError(
                f"cannot tell which FocalNet variant {src} holds (no config beside it and no registered variant has "
                "its shapes); pass --model NAME"
            )
        spec = get_spec(variant)
        if spec.family != "focalnet":
            raise UsageError(f"{variant} is a {spec.family} model; focalnet convert handles FocalNet checkpoints")
        kwargs = spec.build_kwargs(num_classes=n_cls)
    variant = variant or guess_variant(sd)
    kwargs = {**kwargs, "num_classes": n_cls}
    try:
        with torch.device("meta"):
            net = FocalNet(**kwargs)
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"the config of {src} does not build a FocalNet ({e})") from e
    canon = to_canonical(net, sd)
    try:
        check_state_dict(net, canon)  # names missing / unexpected / mis-shaped keys and the guessed variant
    except CheckpointError as e:
        if model is not None:  # the user's --model is what does not fit
            raise UsageError(f"--model {model} does not fit {src}: {e}") from None
        raise

    dst = Path(dst).expanduser()
    full = _jsonable(_full_kwargs(kwargs))
    summary: dict[str, Any] = {
        "variant": variant,
        "from_layout": in_layout,
        "to": to,
        "tensors": len(canon),
        "params": sum(v.numel() for v in canon.values()),
        "files": [],
    }
    meta = {"format": "focalnet", "variant": variant or "", "kwargs": full, "source": str(src)}
    if to == "safetensors":
        summary["files"].append(save_safetensors(canon, dst, {"focalnet_variant": variant or "", "layout": "original"}))
        summary["files"].append(_write_json(dst.with_suffix(".json"), {**meta, "layout": "original"}))
    elif to == "original":
        summary["files"].append(_save_torch({"model": canon}, dst))
    elif to == "hf":
        from .hf import preprocessor_config

        dst.mkdir(parents=True, exist_ok=True)
        summary["files"].append(save_safetensors(to_hf(canon), dst / "model.safetensors"))
        # config.json states every flag, normalize_modulator included (transformers reads it; timm/HF's own
        # L/XL-fl4 uploads leave it false, see docs/weights.md)
        summary["files"].append(_write_json(dst / "config.json", hf_config(kwargs, id2label=_id2label(n_cls))))
        summary["files"].append(_write_json(dst / "preprocessor_config.json",
                                            preprocessor_config(_preprocess_for(src, variant, full))))
    elif to == "timm":
        tsd = to_timm(canon, use_postln=bool(full["use_postln"]))
        if dst.suffix == ".safetensors":
            summary["files"].append(save_safetensors(tsd, dst, {"layout": "timm"}))
        else:
            summary["files"].append(_save_torch(tsd, dst))
        try:
            tkw: dict[str, Any] | None = _jsonable(timm_kwargs(kwargs))
        except ValueError as e:
            _logger.warning("%s", e)
            tkw = None
        summary["files"].append(_write_json(dst.with_suffix(".json"), {**meta, "layout": "timm", "timm_kwargs": tkw}))
    _logger.info("converted %s (%s layout, %s) -> %s", src, in_layout, variant, ", ".join(map(str, summary["files"])))
    return summary
