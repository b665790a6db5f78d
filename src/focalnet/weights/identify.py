"""Name the registered variant a state dict belongs to, for error messages and ``focalnet convert``.

A FocalNet checkpoint's tensors reveal almost the whole architecture: the stem's kernel (4 plain, 16 isotropic,
7 overlapping conv-embed) and width, the number of blocks per stage, the focal levels (rows of ``modulation.f``
minus ``2C + 1``) and the kernel sizes (hence the focal window), whether layer-scale ``gamma``s and the
in-modulation LayerNorm exist, and the head's size. Two flags leave no trace (block post-norm and
``normalize_modulator``); they are ignored here, and they never distinguish two registered variants.

Other model families may register their own identifier with :func:`register_identifier`; a state dict that is not
a FocalNet's gets ``None`` instead of an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["fingerprint", "guess_variant", "register_identifier"]

_logger = logging.getLogger(__name__)

Identifier = Callable[[Mapping[str, torch.Tensor]], "str | None"]
_IDENTIFIERS: list[Identifier] = []


def register_identifier(fn: Identifier) -> None:
    """Add ``fn(state_dict) -> variant name | None``; identifiers are tried in registration order."""
    _IDENTIFIERS.append(fn)


def fingerprint(sd: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """The architecture a FocalNet state dict implies (original/timm/HF layouts), or ``None`` if it is not one."""
    from .convert import to_original
    from .loading import CheckpointError

    try:
        sd = to_original(sd)
    except CheckpointError:
        return None
    stem = sd.get("patch_embed.proj.weight")
    if stem is None or stem.ndim != 4 or not any(".modulation.f.weight" in k for k in sd):
        return None
    blocks: dict[int, set[int]] = {}
    for k in sd:
        m = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.", k)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    n = len(blocks)
    if n == 0 or sorted(blocks) != list(range(n)):
        return None
    depths = [len(blocks[i]) for i in range(n)]
    levels, windows, dims = [], [], []
    for i in range(n):
        f = sd.get(f"layers.{i}.blocks.0.modulation.f.weight")
        if f is None:
            return None
        c = f.shape[-1] if f.ndim == 2 else f.shape[1]
        dims.append(int(c))
        levels.append(int(f.shape[0] - 2 * c - 1))
        k0 = sd.get(f"layers.{i}.blocks.0.modulation.focal_layers.0.0.weight")
        windows.append(int(k0.shape[-1]) if k0 is not None else None)
    ksize = int(stem.shape[-1])
    head = sd.get("head.weight")
    return {
        "embed_dim": dims[0],
        "embed_dims": dims,
        "depths": depths,
        "patch_size": 4 if ksize == 7 else ksize,
        "use_conv_embed": ksize == 7,
        "focal_levels": levels,
        "focal_windows": windows,
        "use_layerscale": any(k.endswith("gamma_1") for k in sd),
        "use_postln_in_modulation": any(".modulation.ln." in k for k in sd),
        "num_classes": int(head.shape[0]) if head is not None else 0,
    }


def _spec_fingerprint(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    from .convert import _full_kwargs

    kw = _full_kwargs(kwargs)
    n = len(kw["depths"])
    embed = kw["embed_dim"]
    dims = [embed * 2**i for i in range(n)] if isinstance(embed, int) else [int(d) for d in embed]
    return {
        "embed_dims": dims,
        "depths": kw["depths"],
        "patch_size": int(kw["patch_size"]),
        "use_conv_embed": bool(kw["use_conv_embed"]),
        "focal_levels": kw["focal_levels"],
        "focal_windows": kw["focal_windows"],
        "use_layerscale": bool(kw["use_layerscale"]),
        "use_postln_in_modulation": bool(kw["use_postln_in_modulation"]),
    }


def guess_variant(sd: Mapping[str, torch.Tensor]) -> str | None:
    """The registered variant whose architecture ``sd`` holds (head size aside), or ``None``.

    Returns e.g. ``"focalnet_tiny_lrf"``. Registered identifiers of other families are asked first; any state dict
    that is neither theirs nor a FocalNet's gives ``None``.
    """
    for fn in _IDENTIFIERS:
        try:
            name = fn(sd)
        except Exception:  # another family's identifier must never break an error message
            _logger.debug("identifier %r failed", fn, exc_info=True)
            continue
        if name:
            return name
    fp = fingerprint(sd)
    if fp is None:
        return None
    from focalnet.models.registry import model_specs

    for name, spec in sorted(model_specs().items()):
        if spec.family != "focalnet":
            continue
        want = _spec_fingerprint(spec.kwargs)
        if all(fp[k] == v for k, v in want.items()):
            return name
    return None
