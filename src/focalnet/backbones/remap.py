"""Loading classification checkpoints into dense-prediction backbones with other focal windows or levels.

The rules are those of the authors' detection/segmentation loader (``mmcv_custom/checkpoint.py``):

* depthwise focal kernels are zero-padded, centred, when the backbone's kernel is larger (3 -> 9) and
  centre-cropped when it is smaller (no interpolation);
* ``modulation.f`` (query, context and gate rows) keeps the query/context rows, the rows of the levels that exist
  in both, and the global-level row (always the last); rows of new levels start at zero. Fewer levels than the
  checkpoint is refused, as in the original;
* the classifier (``norm``, ``head``) is dropped; tensors the checkpoint cannot provide (new focal levels,
  per-output norms) keep their initialisation.

Unlike the original (``strict=False``, silently ignoring anything), any other mismatch is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from focalnet.weights.loading import CheckpointError

_logger = logging.getLogger(__name__)

__all__ = ["remap_classification_state_dict", "load_backbone_weights"]

_CLASSIFIER_PREFIXES = ("head.", "norm.")


def _resize_kernel(w: torch.Tensor, k: int) -> torch.Tensor:
    """Centre a (C, 1, k0, k0) depthwise kernel in a k x k one: zero-pad when growing, crop when shrinking."""
    k0 = w.shape[-1]
    if k == k0:
        return w
    if k > k0:
        d = (k - k0) // 2
        return F.pad(w, (d, k - k0 - d, d, k - k0 - d))
    d = (k0 - k) // 2
    return w[..., d : d + k, d : d + k].clone()


def remap_classification_state_dict(
    sd: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Convert a classification state dict (original key names) to fit ``target`` (a backbone body's state dict).

    Returns ``(converted, not_provided)``: the tensors to load, and the target keys the checkpoint cannot provide
    (left at their initialisation). Raises :class:`CheckpointError` on anything the rules cannot reconcile.
    """
    out: dict[str, torch.Tensor] = {}
    unexpected, bad = [], []
    for key, t in sd.items():
        if key.startswith(_CLASSIFIER_PREFIXES):
            continue
        if key not in target:
            unexpected.append(key)
            continue
        want = target[key].shape
        if t.shape == want:
            out[key] = t
        elif ".focal_layers." in key and t.ndim == 4 and t.shape[:2] == want[:2]:
            out[key] = _resize_kernel(t, want[-1])
        elif key.endswith(("modulation.f.weight", "modulation.f.bias")) and t.shape[1:] == want[1:]:
            C = target[key.rsplit(".", 1)[0] + ".weight"].shape[1]
            n_old, n_new = t.shape[0] - 2 * C - 1, want[0] - 2 * C - 1  # focal levels
            if n_new < n_old:
                bad.append(f"{key}: the checkpoint has {n_old} focal levels, the backbone only {n_new} (not supported)")
                continue
            new = torch.zeros(want, dtype=t.dtype)
            new[: 2 * C + n_old] = t[: 2 * C + n_old]  # q, ctx and the gates of the existing levels
            new[-1] = t[-1]  # the global level's gate stays the last row
            out[key] = new
        else:
            bad.append(f"{key}: checkpoint {tuple(t.shape)} vs backbone {tuple(want)}")
    if unexpected or bad:
        msg = "classification checkpoint does not fit the backbone:"
        if unexpected:
            msg += f"\n  keys the backbone does not have ({len(unexpected)}): " + ", ".join(unexpected[:8])
        if bad:
            msg += f"\n  shapes the loader cannot reconcile ({len(bad)}): " + "; ".join(bad[:8])
        raise CheckpointError(msg)
    not_provided = [k for k in target if k not in out and not k.startswith(_CLASSIFIER_PREFIXES)]
    return out, not_provided


def load_backbone_weights(backbone: nn.Module, source, map_location="cpu") -> list[str]:
    """Load a classification checkpoint (path, URL or state dict; any supported layout) into a backbone.

    ``backbone`` is a :class:`~focalnet.backbones.FocalNetBackbone` (its ``body`` is filled) or a bare FocalNet.
    Returns the keys left at their initialisation (new focal levels), which are also logged.
    """
    from focalnet.weights.loading import _read_source, unwrap_state_dict

    body = getattr(backbone, "body", backbone)
    sd = unwrap_state_dict(_read_source(source, map_location))
    try:
        from focalnet.weights.convert import to_canonical

        sd = to_canonical(body, sd)
    except ImportError:
        pass
    converted, not_provided = remap_classification_state_dict(sd, body.state_dict())
    missing, unexpected = body.load_state_dict(converted, strict=False)
    assert not unexpected, unexpected  # remap only keeps target keys
    if not_provided:
        _logger.info("backbone keys not in the checkpoint, left at init: %s", ", ".join(not_provided))
    return not_provided
