"""Building the network of a run, and loading pretrained weights for fine-tuning (head reset or 22K -> 1K)."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn

_logger = logging.getLogger(__name__)

__all__ = ["model_kwargs", "build_model", "load_finetune_weights", "IN22K_CLASSES"]

IN22K_CLASSES = 21842


def model_kwargs(model_cfg, num_classes: int) -> dict[str, Any]:
    """The complete constructor overrides of a run (saved in checkpoints so ``eval``/``predict`` rebuild it)."""
    kw = dict(model_cfg.kwargs)
    kw["num_classes"] = num_classes
    if model_cfg.drop_path_rate is not None:
        kw["drop_path_rate"] = model_cfg.drop_path_rate
    return kw


def build_model(model_cfg, num_classes: int) -> nn.Module:
    from focalnet import create_model

    model = create_model(model_cfg.name, **model_kwargs(model_cfg, num_classes))
    if model_cfg.pretrained and str(model_cfg.pretrained).lower() not in ("false", "none", ""):
        load_finetune_weights(model, model_cfg.name, model_cfg.pretrained, head=model_cfg.head)
    if model_cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model


def _pretrained_state_dict(name: str, pretrained: str) -> dict[str, torch.Tensor]:
    """The pretrained weights as a state dict in our layout, whatever their head size."""
    from focalnet.weights.loading import _read_source, unwrap_state_dict

    p = str(pretrained)
    if not (os.path.exists(p) or p.startswith(("http://", "https://"))):
        # a released checkpoint of the registry (true or a weights tag): build it at its native class count
        from focalnet import create_model, get_spec

        flag: bool | str = True if p.lower() in ("true", "default") else p
        try:
            from focalnet.weights import get_weights

            n = get_weights(name if flag is True else f"{name}.{p}").num_classes
        except (ImportError, KeyError):
            n = get_spec(name).num_classes
        return create_model(name, pretrained=flag, num_classes=n).state_dict()
    return unwrap_state_dict(_read_source(p, "cpu"))


def load_finetune_weights(model: nn.Module, name: str, pretrained: str, head: str = "auto") -> nn.Module:
    """Load pretrained weights into ``model`` (already built with the target class count).

    ``head``: ``keep`` loads the classifier as is (sizes must match); ``reset`` keeps the model's fresh head;
    ``in22k_to_in1k`` keeps rows ``[:1000]`` of a 21,842-way ImageNet-22K head, which are the 1K classes in the
    standard order (spec §4.4); ``auto`` keeps a matching head, maps 22K -> 1K when that fits, else resets.
    """
    from focalnet.weights import load_weights

    sd = _pretrained_state_dict(name, pretrained)
    try:
        from focalnet.weights.convert import to_canonical

        sd = to_canonical(model, sd)
    except ImportError:
        pass
    target = model.num_classes
    src_rows = sd["head.weight"].shape[0] if "head.weight" in sd else None
    mode = head
    if mode == "auto":
        if src_rows == target:
            mode = "keep"
        elif src_rows == IN22K_CLASSES and target == 1000:
            mode = "in22k_to_in1k"
        else:
            mode = "reset"
    if mode == "in22k_to_in1k":
        if src_rows != IN22K_CLASSES or target != 1000:
            raise ValueError(
                f"model.head=in22k_to_in1k needs a {IN22K_CLASSES}-way checkpoint and a 1000-class model; got "
                f"{src_rows} -> {target}"
            )
        sd = dict(sd)
        sd["head.weight"] = sd["head.weight"][:1000].clone()
        sd["head.bias"] = sd["head.bias"][:1000].clone()
        load_weights(model, sd)
    elif mode == "keep":
        load_weights(model, sd)
    else:
        load_weights(model, sd, drop_head=True)
    _logger.info("loaded pretrained weights %s (head: %s, %s -> %s classes)", pretrained, mode, src_rows, target)
    return model
