"""Weight decay groups (the spec §5.3 fix and its opt-in reproduction), layer-wise lr decay, and the schedule."""

from __future__ import annotations

import math

import pytest
import torch

from focalnet import FocalNet
from focalnet.train.config import OptimConfig, ScheduleConfig
from focalnet.train.optim import build_optimizer, build_scheduler, scaled_lrs


def _tiny(**kw):
    return FocalNet(embed_dim=8, depths=[1, 2], focal_levels=2, focal_windows=3, num_classes=5, use_layerscale=True,
                    **kw)


def _wd_by_name(model, opt):
    ids = {id(p): n for n, p in model.named_parameters()}
    return {ids[id(p)]: g["weight_decay"] for g in opt.param_groups for p in g["params"]}


def test_default_decays_weights_only():
    model = _tiny()
    wd = _wd_by_name(model, build_optimizer(model, OptimConfig(), lr=1e-3))
    assert set(wd) == {n for n, _ in model.named_parameters()}
    decayed = {n for n, v in wd.items() if v == 0.05}
    expected = {n for n, p in model.named_parameters() if p.ndim >= 2}
    assert decayed == expected and decayed
    assert all(wd[n] == 0.0 for n in wd if n.endswith(".bias") or "norm" in n or "gamma" in n)
    assert any("gamma_1" in n for n in wd)


def test_original_zero_decay_switch_decays_nothing():
    model = _tiny()
    wd = _wd_by_name(model, build_optimizer(model, OptimConfig(original_zero_decay=True), lr=1e-3))
    assert len(wd) == sum(1 for _ in model.parameters()) and set(wd.values()) == {0.0}


def test_layer_decay_scales_early_layers_down():
    model = _tiny()
    opt = build_optimizer(model, OptimConfig(layer_decay=0.5), lr=1e-3)
    scale = {}
    ids = {id(p): n for n, p in model.named_parameters()}
    for g in opt.param_groups:
        for p in g["params"]:
            scale[ids[id(p)]] = g["lr_scale"]
    assert scale["head.weight"] == 1.0
    assert scale["patch_embed.proj.weight"] < scale["layers.1.blocks.0.mlp.fc1.weight"] < 1.0
    assert _wd_by_name(model, opt)["layers.0.blocks.0.norm1.weight"] == 0.0


def test_linear_scaling_and_cosine_schedule_with_warmup():
    o, s = OptimConfig(lr=1e-3, base_batch_size=1024), ScheduleConfig(epochs=10, warmup_epochs=2, warmup_lr=1e-6,
                                                                       min_lr=1e-5)
    lr, wlr, mlr = scaled_lrs(o, s, 512)
    assert (lr, wlr, mlr) == pytest.approx((5e-4, 5e-7, 5e-6))
    model = _tiny()
    opt = build_optimizer(model, o, lr)
    sched = build_scheduler(opt, s, wlr, mlr, steps_per_epoch=10)
    lrs = []
    for step in range(0, 101):
        sched.step_update(num_updates=step)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(5e-7)
    assert lrs[10] == pytest.approx((5e-4 - 5e-7) * 10 / 20 + 5e-7)  # linear warm-up, per step
    # after warm-up the cosine is evaluated at t=20 of 100, not restarted at 0 (timm default, as the original)
    assert lrs[20] == pytest.approx(5e-6 + 0.5 * (5e-4 - 5e-6) * (1 + math.cos(math.pi * 20 / 100)))
    assert lrs[100] == pytest.approx(5e-6)
    assert all(a >= b for a, b in zip(lrs[20:], lrs[21:], strict=False))
    state = sched.state_dict()
    torch.save(state, __import__("io").BytesIO())  # plain data, checkpointable


def test_tiny_srf_split_matches_the_spec_and_the_original_bug():
    """Spec §5.3: with the '' keyword fixed, tiny_srf has 89 decayed tensors (28.36 M params) and 123 undecayed."""
    from focalnet import create_model

    model = create_model("focalnet_tiny_srf", device="meta")
    groups = build_optimizer(model, OptimConfig(), lr=1e-3).param_groups
    decayed = [p for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    undecayed = [p for g in groups if g["weight_decay"] == 0 for p in g["params"]]
    assert (len(decayed), len(undecayed)) == (89, 123)
    assert round(sum(p.numel() for p in decayed) / 1e6, 2) == 28.36
    zero = build_optimizer(model, OptimConfig(original_zero_decay=True), lr=1e-3).param_groups
    assert sum(len(g["params"]) for g in zero if g["weight_decay"] == 0) == 212  # the original: all 212 tensors
