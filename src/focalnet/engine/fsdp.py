"""FSDP2 (``torch.distributed.fsdp.fully_shard``) for models that do not fit one device (``distributed=fsdp`` under
``torchrun``).

Every repeated unit (FocalNet's stages and their blocks, encoder / decoder layers; see :func:`shard_model`) becomes
its own shard group, then the root; parameters are sharded across the processes. Checkpoints are sharded
``torch.distributed.checkpoint`` folders by default (see :mod:`focalnet.engine.checkpoint`); with
``fsdp_checkpoint=full`` the full state dicts of model and optimizer are gathered to rank 0 instead
(:func:`full_state`, ``full_state_dict=True``) and written as one ordinary file.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["shard_model", "full_state", "load_full_state"]


_UNIT_LISTS = ("layers", "blocks", "stages")


def shard_model(model: nn.Module) -> nn.Module:
    """``fully_shard`` the model's repeated units, then the root; in place.

    The units are ``model.fsdp_units()`` when the model defines it, else every element of an ``nn.ModuleList``
    attribute named ``layers``, ``blocks`` or ``stages`` (FocalNet's stages and blocks, encoder/decoder layers).
    Finer lists (e.g. the focal levels, whose weights the fused inference path reads directly) stay in their
    unit's group: a parameter is only gathered when the forward of its own group runs.
    """
    from torch.distributed.fsdp import fully_shard

    if hasattr(model, "fsdp_units"):
        units = list(model.fsdp_units())
    else:
        units = [child for name, m in model.named_modules() if isinstance(m, nn.ModuleList)
                 and name.rsplit(".", 1)[-1] in _UNIT_LISTS for child in m]
    depth = {id(m): n.count(".") for n, m in model.named_modules()}
    for unit in sorted(units, key=lambda m: -depth.get(id(m), 0)):  # innermost first
        if any(p.requires_grad for p in unit.parameters()):
            fully_shard(unit)
    fully_shard(model)
    return model


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_state(model: nn.Module, optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full (unsharded) model and optimizer state dicts on the CPU of rank 0 (empty elsewhere); collective."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    opts = _options(cpu_offload=True)
    return get_model_state_dict(model, options=opts), get_optimizer_state_dict(model, optimizer, options=opts)


def load_full_state(model: nn.Module, optimizer, model_sd: dict[str, Any], optim_sd: dict[str, Any] | None) -> None:
    """Load full state dicts (every rank read the checkpoint) into a sharded model and its optimizer."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    set_model_state_dict(model, model_sd, options=_options())
    if optim_sd is not None:
        set_optimizer_state_dict(model, optimizer, optim_sd, options=_options())
