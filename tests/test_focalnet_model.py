"""FocalNet: parity with the original code on the golden files, variants, dense features, bad input."""

from __future__ import annotations

import pytest
import torch

import focalnet
from conftest import golden_files, load_golden, require_golden
from focalnet.backbones import FocalNetBackbone
from focalnet.models.registry import get_spec

TOL = dict(atol=1e-4, rtol=1e-4)  # fixed by the golden README; never widen


def _golden_ids(sub):
    return [p.name for p in golden_files(sub)] or ["missing"]


@pytest.mark.parametrize("name", _golden_ids("focalnet"))
def test_golden_parity(name):
    path = next(p for p in require_golden("focalnet") if p.name == name)
    blob = load_golden(path)
    model = focalnet.FocalNet(**blob["config"]).eval()
    model.load_state_dict(blob["state_dict"], strict=True)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(blob["input"]), pre_logits=True)
        logits = model.head(pooled)
        logits2, maps = model.forward_modulation(blob["input"], which=list(blob["modulation"]))
    torch.testing.assert_close(logits, blob["logits"], **TOL)
    torch.testing.assert_close(pooled, blob["pooled_features"], **TOL)
    torch.testing.assert_close(logits2, blob["logits"], **TOL)
    assert set(maps) == set(blob["modulation"])
    for key, ref in blob["modulation"].items():
        torch.testing.assert_close(maps[key].modulator, ref["modulator"], **TOL)
        torch.testing.assert_close(maps[key].gates, ref["gates"], **TOL)


@pytest.mark.parametrize("name", _golden_ids("focalnet_dense"))
def test_golden_dense_features(name):
    """Stage outputs before downsampling, padded input, per-output LayerNorm: the original detection backbone."""
    path = next(p for p in require_golden("focalnet_dense") if p.name == name)
    blob = load_golden(path)
    cfg = dict(blob["config"])
    out_indices = cfg.pop("out_indices")
    backbone = FocalNetBackbone(focalnet.FocalNet(**cfg, num_classes=0), out_indices=out_indices).eval()
    sd = blob["state_dict"]
    body = {k: v for k, v in sd.items() if not k.startswith("norm")}
    missing, unexpected = backbone.body.load_state_dict(body, strict=False)
    assert set(missing) == {"norm.weight", "norm.bias"} and not unexpected
    for i in out_indices:
        backbone.norms[str(i)].weight.data.copy_(sd[f"norm{i}.weight"])
        backbone.norms[str(i)].bias.data.copy_(sd[f"norm{i}.bias"])
    with torch.no_grad():
        feats = backbone(blob["input"])
    assert len(feats) == len(blob["features"])
    for ours, ref in zip(feats, blob["features"]):
        torch.testing.assert_close(ours, ref, **TOL)


@pytest.mark.parametrize("name", focalnet.list_models("focalnet_*"))
def test_variant_param_count(name):
    model = focalnet.create_model(name, device="meta", num_classes=1000)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n == get_spec(name).params


def test_base_iso_other_reading():
    m = focalnet.create_model("focalnet_base_iso", device="meta", use_postln=True, use_postln_in_modulation=False)
    assert sum(p.numel() for p in m.parameters()) == 87_237_400
    assert not any(".modulation.ln." in k for k in m.state_dict())


def test_fl4_normalize_modulator_choice():
    assert get_spec("focalnet_large_fl4").kwargs["normalize_modulator"] is True
    m = focalnet.create_model("focalnet_large_fl4", device="meta", normalize_modulator=False)
    assert not m.layers[0].blocks[0].modulation.normalize_modulator


def test_22k_heads():
    m = focalnet.create_model("focalnet_large_fl3", device="meta")
    assert m.num_classes == 21842
    assert sum(p.numel() for p in m.parameters()) == 239_134_898


def test_registry_rejects_duplicates_and_filters():
    spec = get_spec("focalnet_tiny_srf")
    with pytest.raises(ValueError, match="already registered"):
        focalnet.register_model(spec)
    assert focalnet.list_models("focalnet_*_lrf") == ["focalnet_base_lrf", "focalnet_small_lrf", "focalnet_tiny_lrf"]
    with pytest.raises(KeyError, match="unknown model"):
        focalnet.create_model("focalnet_tiny_xyz")


def test_variants_are_complete_configs():
    """Bug 15 of the original: builders without the YAML flags built the wrong network."""
    m = focalnet.create_model("focalnet_tiny_lrf", device="meta")
    assert m.focal_levels == [3, 3, 3, 3]
    assert m.layers[0].blocks[0].modulation.f.out_features == 2 * 96 + 4
    m = focalnet.create_model("focalnet_large_fl3", device="meta")
    assert m.layers[0].blocks[0].modulation.kernel_sizes == [5, 7, 9]
    assert m.patch_embed.proj.kernel_size == (7, 7)


def _small(**kw):
    return focalnet.FocalNet(embed_dim=16, depths=[1, 1, 2, 1], num_classes=7, **kw).eval()


def test_forward_is_stateless():
    m = _small()
    before = {k for k, _ in m.named_buffers()} | set(vars(m.layers[0].blocks[0].modulation))
    with torch.no_grad():
        m.forward_modulation(torch.randn(1, 3, 64, 64))
        m(torch.randn(1, 3, 64, 64))
    after = {k for k, _ in m.named_buffers()} | set(vars(m.layers[0].blocks[0].modulation))
    assert before == after


def test_modulation_selection_by_index():
    m = _small(focal_levels=3)
    with torch.no_grad():
        logits, maps = m.forward_modulation(torch.randn(2, 3, 64, 64), which=[(-1, -1), (0, 0)])
    assert set(maps) == {"layers.3.blocks.0.modulation", "layers.0.blocks.0.modulation"}
    assert maps["layers.0.blocks.0.modulation"].gates.shape == (2, 4, 16, 16)
    assert maps["layers.3.blocks.0.modulation"].modulator.shape == (2, 128, 2, 2)
    with pytest.raises(KeyError, match="no focal modulation"):
        m.forward_modulation(torch.randn(1, 3, 64, 64), which="layers.9.blocks.0.modulation")


def test_feature_info_and_any_size():
    m = _small()
    assert [f["reduction"] for f in m.feature_info] == [4, 8, 16, 32]
    assert [f["num_chs"] for f in m.feature_info] == [16, 32, 64, 128]
    with torch.no_grad():
        feats = m.forward_intermediates(torch.randn(1, 3, 45, 77), intermediates_only=True)
    assert [tuple(f.shape[-2:]) for f in feats] == [(12, 20), (6, 10), (3, 5), (2, 3)]


def test_backbone_frozen_stages_and_eval_returns_module():
    bb = FocalNetBackbone(_small(), frozen_stages=2)
    assert not any(p.requires_grad for p in bb.body.patch_embed.parameters())
    assert not any(p.requires_grad for p in bb.body.layers[0].parameters())
    assert all(p.requires_grad for p in bb.body.layers[1].parameters())
    assert bb.eval() is bb
    bb.train()
    assert not bb.body.layers[0].training


def test_grad_checkpointing_same_gradients():
    torch.manual_seed(0)
    m = _small()
    x = torch.randn(2, 3, 64, 64)
    m(x).sum().backward()
    ref = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m.set_grad_checkpointing(True)
    m(x).sum().backward()
    for a, b in zip(ref, (p.grad for p in m.parameters())):
        torch.testing.assert_close(a, b)


def test_reset_classifier_and_weight_decay_groups():
    m = _small(use_layerscale=True, use_postln_in_modulation=True)
    m.reset_classifier(3)
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    skip = m.no_weight_decay()
    assert "head.bias" in skip and "norm.weight" in skip and "layers.0.blocks.0.gamma_1" in skip
    assert "layers.0.blocks.0.modulation.ln.weight" in skip
    assert "head.weight" not in skip and "layers.0.blocks.0.modulation.f.weight" not in skip
    decay, no_decay = m.param_groups(0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) > 0 and len(no_decay["params"]) > 0
    assert all(p.ndim > 1 for p in decay["params"])
    m.reset_classifier(0)
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 128)


@pytest.mark.parametrize(
    "shape, match",
    [((1, 1, 64, 64), "expected 3 input channels"), ((1, 3, 16, 64), "smaller than the network's total stride"),
     ((3, 64, 64), "expected an image batch")],
)
def test_bad_input_messages(shape, match):
    with pytest.raises(ValueError, match=match):
        _small()(torch.randn(*shape))


def test_drop_path_trains():
    m = focalnet.FocalNet(embed_dim=16, depths=[1, 1, 2, 1], num_classes=3, drop_path_rate=0.5).train()
    out = m(torch.randn(4, 3, 64, 64))
    assert torch.isfinite(out).all()


def test_stem_conv_embed_grid():
    m = focalnet.FocalNet(embed_dim=8, depths=[1, 1, 1, 1], use_conv_embed=True, num_classes=0).eval()
    with torch.no_grad():
        assert m.forward_features(torch.randn(1, 3, 224, 224)).shape == (1, 7, 7, 64)


@pytest.mark.parametrize("name", _golden_ids("focalnet_dense"))
def test_golden_backbone_remap(name):
    """Classification weights -> backbone with other windows/levels, exactly as the original loader converts them."""
    from focalnet.backbones import load_backbone_weights, remap_classification_state_dict

    path = next(p for p in require_golden("focalnet_dense") if p.name == name)
    blob = load_golden(path)
    cfg = dict(blob["config"])
    out_indices = cfg.pop("out_indices")
    src = load_golden(path.parent.parent / "focalnet" / blob["source_classification_fixture"])["state_dict"]
    backbone = FocalNetBackbone(focalnet.FocalNet(**cfg, num_classes=0), out_indices=out_indices)
    converted, not_provided = remap_classification_state_dict(src, backbone.body.state_dict())
    ref = blob["converted_from_classification"]
    assert set(converted) == set(ref)
    for k in ref:
        torch.testing.assert_close(converted[k], ref[k], atol=0, rtol=0)
    assert all(".focal_layers." in k for k in not_provided)
    left = load_backbone_weights(backbone, {"model": src})
    assert left == not_provided
    torch.testing.assert_close(backbone.body.patch_embed.proj.weight, src["patch_embed.proj.weight"])


def test_backbone_remap_refuses_fewer_levels_and_wrong_depth():
    from focalnet.backbones import remap_classification_state_dict
    from focalnet.weights.loading import CheckpointError

    lrf = focalnet.FocalNet(embed_dim=16, depths=[1, 1, 2, 1], focal_levels=3, num_classes=0).state_dict()
    srf_body = focalnet.FocalNet(embed_dim=16, depths=[1, 1, 2, 1], focal_levels=2, num_classes=0).state_dict()
    with pytest.raises(CheckpointError, match="3 focal levels, the backbone only 2"):
        remap_classification_state_dict(lrf, srf_body)
    deeper = focalnet.FocalNet(embed_dim=16, depths=[1, 1, 3, 1], num_classes=0).state_dict()
    with pytest.raises(CheckpointError, match="keys the backbone does not have"):
        remap_classification_state_dict(deeper, srf_body)
