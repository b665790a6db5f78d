"""The model registry: one table of complete, named variants for every model family.

Each entry is a :class:`ModelSpec` holding the model class and the *complete* keyword arguments of the variant
(never completed later by a YAML file), the resolution and class count it was published at, and the paper numbers
used by ``focalnet models``. ``create_model`` builds a variant with optional keyword overrides and, on request,
loads its default pretrained weights.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from focalnet.errors import UsageError

__all__ = ["ModelSpec", "register_model", "get_spec", "list_models", "list_pretrained", "create_model", "model_specs",
           "check_model_kwargs"]


@dataclass(frozen=True)
class ModelSpec:
    """A named, fully specified variant.

    ``kwargs`` are the constructor's keyword arguments with ``num_classes`` left to ``num_classes`` below, so that
    ``create_model(name)`` builds the network exactly as published. ``source`` cites where the numbers come from.
    """

    name: str
    family: str
    builder: Callable[..., nn.Module]
    kwargs: dict[str, Any]
    num_classes: int = 1000
    img_size: int = 224
    params: int | None = None  # trainable parameters at 1000 classes, measured on the original code
    gmacs: float | None = None  # published GMACs at ``img_size`` (paper / README "FLOPs" are MACs)
    top1: float | None = None  # published ImageNet-1K top-1 of the released weights, if any
    source: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def params_at(self, num_classes: int | None = None) -> int | None:
        """Trainable parameters with a ``num_classes`` head (default: the variant's own, e.g. 21,842 for L/XL/H);
        ``params`` is measured at 1000 classes, the head adds ``(classes - 1000) * (width + 1)``."""
        if self.params is None:
            return None
        n = self.num_classes if num_classes is None else num_classes
        depths = self.kwargs.get("depths", ())
        embed = self.kwargs.get("embed_dim")
        if not depths or embed is None:
            return self.params if n == 1000 else None
        width = int(embed) * 2 ** (len(depths) - 1) if isinstance(embed, int) else int(list(embed)[-1])
        return self.params + (n - 1000) * (width + 1) if n > 0 else self.params - 1000 * (width + 1)

    def build_kwargs(self, **overrides: Any) -> dict[str, Any]:
        kw = dict(self.kwargs)
        kw.setdefault("num_classes", self.num_classes)
        kw.update(overrides)
        return kw


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a variant to the registry. Registering a name twice is an error, never a silent replacement."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    # Model families register themselves on import; importing the package imports them all.
    import focalnet.models  # noqa: F401


def model_specs() -> dict[str, ModelSpec]:
    _ensure_loaded()
    return dict(_REGISTRY)


class UnknownModelError(UsageError, KeyError):
    """A model name that is not registered (a KeyError, as before, and a usage error: exit code 2)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def get_spec(name: str) -> ModelSpec:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}; {hint}see focalnet.list_models() (or `focalnet models`) for all "
            f"{len(_REGISTRY)} names"
        ) from None


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Names of registered variants matching a shell-style ``pattern`` (e.g. ``"focalnet_*_lrf"``)."""
    _ensure_loaded()
    families = sorted({s.family for s in _REGISTRY.values()})
    if family is not None and family not in families:
        raise UsageError(f"unknown model family {family!r}; choose from {', '.join(families)}")
    return sorted(
        n for n, s in _REGISTRY.items() if fnmatch.fnmatch(n, pattern) and (family is None or s.family == family)
    )


def list_pretrained(pattern: str = "*", available_only: bool = True) -> list[str]:
    """timm's ``list_pretrained``: ``variant.tag`` names of released weights matching ``pattern``.

    ``available_only`` (default) leaves out weights with no known live copy (see ``focalnet.list_weights``)."""
    from focalnet.weights.records import list_weights

    _ensure_loaded()
    return sorted(
        r.name
        for r in list_weights()
        if (fnmatch.fnmatch(r.name, pattern) or fnmatch.fnmatch(r.variant, pattern))
        and (r.status == "available" or not available_only)
    )


def _is_model_dir(path: str) -> bool:
    from pathlib import Path

    return "://" not in path and Path(path).expanduser().is_dir()


def _split_tag(name: str, pretrained: bool | str) -> tuple[str, str | None]:
    """timm's ``variant.tag`` names: ``create_model("focalnet_tiny_srf.ms_in1k")`` -> (variant, tag)."""
    if name in _REGISTRY or "." not in name:
        return name, None
    base, tag = name.split(".", 1)
    if base not in _REGISTRY:
        return name, None  # get_spec reports the unknown name
    return base, tag


def _cfg_for(model: nn.Module, name: str, tag: str | None) -> dict[str, Any] | None:
    """The pretrained_cfg of the variant's weights record (tag or default), or ``None`` when it has none."""
    from focalnet.weights.records import get_weights

    try:
        rec = get_weights(f"{name}.{tag}" if tag else name)
    except KeyError:
        return None
    return rec.pretrained_cfg(in_chans=getattr(model, "in_chans", 3), stride=getattr(model, "stride", 32))


def create_model(
    name: str,
    pretrained: bool | str = False,
    device: str | torch.device | None = None,
    *,
    features_only: bool = False,
    out_indices: int | tuple[int, ...] | list[int] | None = None,
    global_pool: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the registered variant ``name`` (timm's ``variant.tag`` spelling picks a weights tag too).

    ``overrides`` replace any constructor keyword (e.g. ``num_classes=10, drop_path_rate=0.1``).
    ``pretrained=True`` loads the variant's default released weights; a string picks a weights tag
    (see ``focalnet.list_weights(name)``) or names a local file / URL / Hugging Face model folder to load instead
    (a folder's ``config.json`` sets the class count and architecture flags, its ``preprocessor_config.json`` the
    ``pretrained_cfg``). timm's keywords: ``num_classes=0`` (no classifier), ``global_pool=""`` (no pooling), and
    ``features_only=True`` with ``out_indices`` (stage indices; an int ``n`` = the last ``n``), which returns a
    :class:`~focalnet.models.features.FeatureNet` giving a list of NCHW maps. ``model.pretrained_cfg`` is always
    the dict of the variant's weights record (input size, crop, interpolation, mean/std), loaded or not.
    """
    _ensure_loaded()
    name, tag = _split_tag(name, pretrained)
    if tag is not None and pretrained is True:
        pretrained = tag
    spec = get_spec(name)
    if isinstance(pretrained, str) and spec.family == "focalnet" and _is_model_dir(pretrained):
        # A Hugging Face folder (save_pretrained / focalnet convert --to hf): its config.json gives the class count
        # and the architecture flags (normalize_modulator included); explicit overrides still win.
        from focalnet.weights.hf import read_hf_dir

        overrides = {**read_hf_dir(pretrained).kwargs, **overrides}
    kwargs = spec.build_kwargs(**overrides)
    if device is not None:
        with torch.device(device):
            model = spec.builder(**kwargs)
    else:
        model = spec.builder(**kwargs)
    if global_pool is not None:
        from .base import GLOBAL_POOLS

        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got {global_pool!r}")
        model.global_pool = global_pool
    if pretrained:
        from focalnet.weights import load_pretrained

        load_pretrained(model, name, pretrained, num_classes=kwargs.get("num_classes"))
    else:
        cfg = _cfg_for(model, name, tag)
        if cfg is not None:
            model.pretrained_cfg = cfg
    if features_only:
        from .features import FeatureNet

        return FeatureNet(model, out_indices if out_indices is not None else len(model.layers), prune=True)
    if out_indices is not None:
        raise TypeError("out_indices is a features_only keyword: create_model(name, features_only=True, "
                        "out_indices=...)")
    return model


_POSITIVE_INTS = ("embed_dim", "patch_size", "depths", "focal_levels", "focal_windows", "num_heads", "in_chans",
                  "window_size", "focal_window", "focal_level")


def check_model_kwargs(name: str, kwargs: dict[str, Any], img_size: int | None = None, name_key: str = "model.name",
                       kwargs_key: str = "model.kwargs") -> None:
    """Raise a one-line :class:`~focalnet.utils.config.ConfigError` if ``name`` is not registered, a kwarg is not a
    constructor argument (naming the closest one), a size is out of range, the variant cannot be built with these
    arguments, or ``img_size`` is smaller than the network's stride. Builds on the ``meta`` device: no memory, fast.
    """
    import difflib
    import inspect

    from focalnet.utils.config import ConfigError

    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        raise ConfigError(f"{name_key}={name!r} is not a registered model"
                          + (f"; did you mean {close[0]!r}?" if close else "; see `focalnet models`"))
    spec = _REGISTRY[name]
    params = inspect.signature(spec.builder).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        valid = [p for p in params if p != "self"]
        for k in kwargs:
            if k not in valid:
                close = difflib.get_close_matches(k, valid, n=1)
                raise ConfigError(f"{kwargs_key}.{k} is not an argument of {name}"
                                  + (f"; did you mean {kwargs_key}.{close[0]}?" if close else ""))
    for k in _POSITIVE_INTS:
        if k in kwargs:
            v = kwargs[k]
            vals = v if isinstance(v, (list, tuple)) else [v]
            if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in vals):
                raise ConfigError(f"{kwargs_key}.{k}={v!r}: every value must be an integer >= 1")
    try:
        with torch.device("meta"):
            model = spec.builder(**spec.build_kwargs(**kwargs))
    except (TypeError, ValueError, RuntimeError, AssertionError, IndexError, ZeroDivisionError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{kwargs_key} {kwargs} cannot build {name}: {msg}") from None
    stride = getattr(model, "stride", None)
    if img_size is not None and isinstance(stride, int) and img_size < stride:
        raise ConfigError(f"data.img_size={img_size} is smaller than the network's stride {stride} ({name} with "
                          f"patch_size {kwargs.get('patch_size', spec.kwargs.get('patch_size'))}); use >= {stride}")
