"""Focal Transformer v1: golden parity, fast == faithful at many sizes, variants, FLOPs, weights, maps, backbone."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import focalnet
from conftest import golden_files, load_golden, require_golden
from focalnet.backbones import FocalTransformerBackbone
from focalnet.models import focal_transformer as ft
from focalnet.models.registry import get_spec
from focalnet.weights.loading import CheckpointError

TOL = dict(atol=1e-4, rtol=1e-4)  # fixed by the golden README; never widen
SAME = dict(atol=1e-4, rtol=1e-4)  # fast vs faithful: the same math in another order (float rounding only)

# A small config with every ingredient: 4 stages, 2 focal levels, fw 7/5/3/1, expansion, fc pooling.
SMALL = dict(
    embed_dim=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4], focal_levels=[2, 2, 2, 2],
    focal_windows=[7, 5, 3, 1], expand_sizes=[3, 3, 3, 3], num_classes=10, drop_path_rate=0.0,
)


def _golden_ids(sub):
    return [p.name for p in golden_files(sub)] or ["missing"]


def _golden(name):
    return load_golden(next(p for p in require_golden("focal_transformer") if p.name == name))


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random values in every parameter (zero-initialised tables would hide bias bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim > 1 else 0.1) + (1.0 if p.ndim == 1 else 0))
    return model.eval()


# ---------------------------------------------------------------------------------------------- golden parity
@pytest.mark.parametrize("impl", ["fast", "faithful"])
@pytest.mark.parametrize("name", _golden_ids("focal_transformer"))
def test_golden_parity(name, impl):
    blob = _golden(name)
    model = focalnet.FocalTransformer(**blob["config"], attn_impl=impl).eval()
    model.load_state_dict(blob["state_dict"], strict=True)  # original keys, buffers included
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(blob["input"]), pre_logits=True)
        logits = model.head(pooled)
    torch.testing.assert_close(logits, blob["logits"], **TOL)
    torch.testing.assert_close(pooled, blob["pooled_features"], **TOL)


def test_golden_attention_maps_and_buffers():
    blob = _golden("ft_tiny_like.pt")
    model = focalnet.FocalTransformer(**blob["config"]).eval()
    model.load_state_dict(blob["state_dict"])
    with torch.no_grad():
        logits, maps = model.forward_attention(blob["input"], which=[(0, 0), (-1, -1), "layers.2.blocks.1"])
    torch.testing.assert_close(logits, blob["logits"], **TOL)
    assert set(maps) == {"layers.0.blocks.0", "layers.3.blocks.0", "layers.2.blocks.1"}
    # keys per window as in spec §2.1: 49 + 132 + fw^2 pooled; the last stage (7x7, no expansion) 49 + 1
    assert maps["layers.0.blocks.0"].attn.shape == (2, 64, 1, 49, 230)
    assert maps["layers.2.blocks.1"].attn.shape == (2, 4, 2, 49, 190)
    assert maps["layers.3.blocks.0"].attn.shape == (2, 1, 4, 49, 50)
    # the slot tables the fast path builds from sizes alone equal the checkpoint's buffers
    attn = model.layers[0].blocks[0].attn
    torch.testing.assert_close(attn.valid_ind_rolled, ft._rolled_valid_slots(7, 3), rtol=0, atol=0)
    assert attn.valid_ind_rolled.numel() == 132
    assert torch.equal(attn.relative_position_index_0, ft._relative_position_index(7, 7))
    assert torch.equal(model.layers[1].blocks[0].attn.relative_position_index_0, ft._relative_position_index(7, 5))


def test_rolled_keys_wrap_and_duplicate():
    """The 132 rolled keys: 120 unique ring tokens + 12 duplicates, wrapped around the border (spec §2.3a)."""
    tables = ft._cached_key_tables(56, 56, 7, 3, 7, ((8, 8),), "cpu")
    corner = tables.fine[0, 49:]  # window at rows/cols 0..6
    assert corner.numel() == 132 and corner.unique().numel() == 120
    rows, cols = corner // 56, corner % 56
    assert {53, 54, 55} <= set(rows.tolist()) and {53, 54, 55} <= set(cols.tolist())  # wrapped from the far side
    window = {(r, c) for r in range(7) for c in range(7)}
    ring = {(r % 56, c % 56) for r in range(-3, 10) for c in range(-3, 10)} - window
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == ring
    # pooled neighbourhood of the corner window: 7x7 around pooled (0,0) -> only 4x4 valid, the rest masked -100
    assert (tables.pooled[0][0] >= 0).sum() == 16 and (tables.mask[0] == -100).sum() == 33


# ---------------------------------------------------------------------------------------------- fast == faithful
@pytest.mark.parametrize(
    "build, size",
    [(224, (224, 224)), (224, (160, 200)), (224, (250, 97)), (256, (224, 224)), (96, (150, 130)), (224, (33, 40))],
)
def test_fast_equals_faithful_any_size(build, size):
    torch.manual_seed(0)
    model = _randomize(focalnet.FocalTransformer(img_size=build, **SMALL))
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        fast = model(x)
        model.set_attn_impl("faithful")
        faithful = model(x)
    assert fast.shape == (1, 10) and torch.isfinite(fast).all()
    torch.testing.assert_close(fast, faithful, **SAME)


@pytest.mark.parametrize(
    "kw",
    [
        dict(focal_levels=[3, 3, 3, 3]),  # a second coarse level (sub-window pooling, strided unfold)
        dict(focal_pool="mean"),
        dict(focal_pool="conv", expand_layer="even"),
        dict(focal_pool="max", expand_layer="odd", use_conv_embed=True, use_layerscale=True),
        dict(focal_levels=[1, 1, 1, 1], expand_sizes=[0, 0, 0, 0]),  # plain window attention
    ],
)
def test_fast_equals_faithful_options(kw):
    model = _randomize(focalnet.FocalTransformer(img_size=128, **{**SMALL, **kw}))
    x = torch.randn(1, 3, 120, 136)
    with torch.no_grad():
        fast = model(x)
        model.set_attn_impl("faithful")
        torch.testing.assert_close(fast, model(x), **SAME)


# ---------------------------------------------------------------------------------------------- variants, FLOPs
VARIANTS = {
    "focal_transformer_tiny": 28_880_380,
    "focal_transformer_small": 51_141_940,
    "focal_transformer_base": 89_815_400,
    "focal_transformer_tiny_conv": 30_825_244,
    "focal_transformer_small_conv": 53_086_804,
    "focal_transformer_base_conv": 93_268_712,
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_parameter_counts(name):
    assert focalnet.list_models("focal_transformer_*", family="focal_transformer") == sorted(VARIANTS)
    model = focalnet.create_model(name, device="meta")
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n == VARIANTS[name] == get_spec(name).params
    sd = model.state_dict()
    n_buffers = sum(1 for _ in model.buffers())
    # spec §5: T 256 keys (222 params + 34 buffers), S/B 496 (426 + 70)
    assert (len(sd), n_buffers) == ((256, 34) if "tiny" in name else (496, 70))
    assert "layers.3.blocks.0.attn.relative_position_bias_table_to_neighbors" not in sd  # 7x7 stage at 224


def test_resolution_dependent_parameter_set():
    # spec §2.2: at 256 stage 4 is 8x8 and expands: +2 blocks x 24 heads x 49 x 132 parameters
    model = focalnet.create_model("focal_transformer_tiny", img_size=256, device="meta")
    assert sum(p.numel() for p in model.parameters()) == 29_190_844


@pytest.mark.parametrize("name, gmacs", [("focal_transformer_tiny", 4.9), ("focal_transformer_small", 9.4),
                                         ("focal_transformer_base", 16.4)])
def test_flops_match_published(name, gmacs):
    """Counted on the fast path (132 rolled keys, k/v of pooled tokens as computed); MACs = flops / 2."""
    model = focalnet.create_model(name, device="meta").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    macs = counter.get_total_flops() / 2 / 1e9
    assert abs(macs - gmacs) / gmacs < 0.02, macs


# ---------------------------------------------------------------------------------------------- weights
def test_load_weights_bare_wrapped_and_file(tmp_path):
    blob = _golden("ft_256.pt")
    sd = blob["state_dict"]
    for source in (sd, {"model": sd}, {"model": {f"module.{k}": v for k, v in sd.items()}}):
        model = focalnet.FocalTransformer(**blob["config"]).eval()
        focalnet.load_weights(model, source)
        with torch.no_grad():
            torch.testing.assert_close(model(blob["input"]), blob["logits"], **TOL)
    path = tmp_path / "focal-ckpt.pth"
    torch.save({"model": sd, "epoch": 3}, path)
    model = focalnet.load_weights(focalnet.FocalTransformer(**blob["config"]).eval(), path)
    with torch.no_grad():
        torch.testing.assert_close(model(blob["input"]), blob["logits"], **TOL)


def test_checkpoint_of_another_resolution_or_variant_is_named():
    sd256 = _golden("ft_256.pt")["state_dict"]
    cfg = dict(_golden("ft_256.pt")["config"])
    at224 = focalnet.FocalTransformer(**{**cfg, "img_size": 224})
    with pytest.raises(CheckpointError, match=r"layers\.3\.blocks\.0: it was built for a larger resolution"):
        ft.check_focal_transformer_state_dict(at224, sd256)
    with pytest.raises(CheckpointError, match=r"layers\.3\.blocks\.0: it was built for a larger resolution"):
        focalnet.load_weights(at224, sd256)  # through the weights package's converter hook
    sd224 = _golden("ft_tiny_like.pt")["state_dict"]
    cfg224 = dict(_golden("ft_tiny_like.pt")["config"])
    at256 = focalnet.FocalTransformer(**{**cfg224, "img_size": 256})
    with pytest.raises(CheckpointError, match=r"<= 7x7 tokens"):
        ft.check_focal_transformer_state_dict(at256, sd224)
    conv = focalnet.FocalTransformer(**{**cfg224, "use_conv_embed": True})
    with pytest.raises(CheckpointError, match="use_conv_embed: checkpoint False vs model True"):
        ft.check_focal_transformer_state_dict(conv, sd224)
    deeper = focalnet.FocalTransformer(**{**cfg224, "depths": [1, 1, 3, 1]})
    with pytest.raises(CheckpointError, match=r"depths: checkpoint \[1, 1, 2, 1\] vs model \[1, 1, 3, 1\]"):
        ft.check_focal_transformer_state_dict(deeper, sd224)
    v2 = dict(sd224, **{"layers.0.blocks.0.attn.coord2rpb_all.0.0.weight": torch.zeros(16, 2)})
    with pytest.raises(CheckpointError, match="Focal-fast"):
        ft.check_focal_transformer_state_dict(focalnet.FocalTransformer(**cfg224), v2)
    ft.check_focal_transformer_state_dict(focalnet.FocalTransformer(**cfg224), sd224)  # fits: no error
    # the weights package names the variant of a full-size checkpoint (built on the meta device: shapes only)
    tiny = focalnet.create_model("focal_transformer_tiny_conv", device="meta").state_dict()
    assert ft.identify_focal_transformer(tiny) == "focal_transformer_tiny_conv"
    assert ft.identify_focal_transformer(sd224) is None


def test_weights_records_mark_dead_links():
    for name in VARIANTS:
        (rec,) = focalnet.list_weights(name)
        assert rec.available is False and rec.status == "dead" and not rec.sources
        assert rec.dead_urls[0].startswith("https://projects4jw.blob.core.windows.net/model/focal-transformer/")
        assert rec.num_classes == 1000 and rec.input_size == 224 and rec.layout == "original"
    from focalnet.weights.hub import DownloadError

    with pytest.raises(DownloadError, match="no live copy of focal_transformer_tiny"):  # says so, downloads nothing
        focalnet.create_model("focal_transformer_tiny", pretrained=True, device="meta")


# ---------------------------------------------------------------------------------------------- interface
def test_bad_input_and_bad_config():
    model = focalnet.FocalTransformer(**SMALL).eval()
    with pytest.raises(ValueError, match="expected 3 input channels, got 1"):
        model(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="smaller than the network's total stride 32"):
        model(torch.zeros(1, 3, 31, 64))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="must be odd"):
        focalnet.FocalTransformer(**{**SMALL, "focal_windows": [6, 5, 3, 1]})
    with pytest.raises(ValueError, match="expand_sizes"):
        focalnet.FocalTransformer(**{**SMALL, "expand_sizes": [8, 3, 3, 3]})
    with pytest.raises(ValueError, match="too small"):
        focalnet.FocalTransformer(img_size=16, **SMALL)
    with pytest.raises(NotImplementedError, match="use_shift"):
        focalnet.FocalTransformer(use_shift=True, **SMALL)
    with pytest.raises(ValueError, match="attn_impl"):
        model.set_attn_impl("magic")


def test_optimizer_hooks_and_head():
    model = focalnet.FocalTransformer(**SMALL)
    skip = model.no_weight_decay()
    assert "layers.0.blocks.0.attn.relative_position_bias_table_to_neighbors" in skip
    assert "layers.0.blocks.0.attn.relative_position_bias_table_to_windows.0" in skip
    assert "layers.0.blocks.0.attn.relative_position_bias_table" in skip
    assert "layers.0.blocks.0.pool_layers.0.weight" not in skip  # the (1, 49) fc-pool weight is decayed
    assert "layers.0.blocks.0.attn.qkv.weight" not in skip
    groups = model.param_groups(0.05)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    # the model-level init overwrites the fc-pool's 1/49 fill (spec §1)
    w = model.layers[0].blocks[0].pool_layers[0].weight
    assert not torch.allclose(w, torch.full_like(w, 1 / 49))
    assert model.group_matcher()["stem"] == r"^patch_embed"
    model.reset_classifier(3)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    model.reset_classifier(0)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 128)


def test_attention_maps_query_map_mass():
    model = _randomize(focalnet.FocalTransformer(**SMALL), seed=1)
    x = torch.randn(2, 3, 200, 232)  # stage maps 50x58, 25x29, 12x14, 6x7: padding at every stage
    with torch.no_grad():
        logits, maps = model.forward_attention(x)
        torch.testing.assert_close(logits, model(x), **SAME)
    assert len(maps) == 5
    for name, m in maps.items():
        torch.testing.assert_close(m.attn.sum(-1), torch.ones_like(m.attn[..., 0]))
        H, W = m.grid_size
        Hp, Wp = m.padded_size
        n_fine = m.fine_index.shape[1]
        for y, x_ in [(0, 0), (H - 1, W - 1), (H // 2, W // 3)]:
            qm = m.query_map(y, x_)
            assert qm.shape == (2, H, W) and (qm >= 0).all(), name
            # expected mass: keys on real tokens + pooled keys times the share of their cell on the grid
            ws = m.window_size
            w = (y // ws) * (Wp // ws) + x_ // ws
            a = m.attn[:, w, :, (y % ws) * ws + x_ % ws].mean(1)
            pos = m.fine_index[w]
            inside = ((pos // Wp) < H) & ((pos % Wp) < W)
            expected = a[:, :n_fine][:, inside].sum(-1)
            start = n_fine
            for lvl in m.pooled:
                cover = torch.zeros(Hp, Wp)
                cover[:H, :W] = 1
                for j, idx in enumerate(lvl.index[w].tolist()):
                    if idx >= 0:
                        r, c = divmod(idx, lvl.pooled_size[1])
                        r0, c0 = lvl.offset[0] + r * lvl.cell, lvl.offset[1] + c * lvl.cell
                        share = cover[max(r0, 0) : r0 + lvl.cell, max(c0, 0) : c0 + lvl.cell].sum() / lvl.cell**2
                        expected = expected + a[:, start + j] * share
                start += lvl.index.shape[1]
            torch.testing.assert_close(qm.sum((1, 2)), expected, atol=1e-5, rtol=1e-5)
            assert (qm.sum((1, 2)) <= 1 + 1e-5).all()
    # no padding anywhere at the construction size: every map sums to 1 (masked pooled slots carry ~e^-100)
    with torch.no_grad():
        _, maps = model.forward_attention(torch.randn(1, 3, 224, 224), which=[(0, 0), (2, -1)])
    for m in maps.values():
        torch.testing.assert_close(m.query_map(3, 5, head=0).sum(), torch.tensor(1.0))
    with pytest.raises(KeyError, match="no block named"):
        model.forward_attention(x, which="layers.9.blocks.0")


def test_dense_features_and_backbone():
    model = _randomize(focalnet.FocalTransformer(**SMALL))
    x = torch.randn(1, 3, 100, 150)  # not multiples of 32
    with torch.no_grad():
        feats = model.forward_intermediates(x, intermediates_only=True)
    assert [tuple(f.shape) for f in feats] == [(1, 16, 25, 38), (1, 32, 13, 19), (1, 64, 7, 10), (1, 128, 4, 5)]
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    backbone = FocalTransformerBackbone(model, out_indices=(1, 3), frozen_stages=2)
    assert backbone.out_channels == [32, 128] and backbone.strides == [8, 32]
    with torch.no_grad():
        outs = backbone.eval()(x)
    assert [tuple(o.shape) for o in outs] == [(1, 32, 13, 19), (1, 128, 4, 5)]
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not any(p.requires_grad for p in model.layers[0].parameters())
    assert all(p.requires_grad for p in model.layers[1].parameters())
    with pytest.raises(TypeError):
        FocalTransformerBackbone(focalnet.FocalNet(depths=[1, 1, 1, 1], embed_dim=16))


def test_gradients_checkpointing_and_paths_agree():
    """Same gradients from the faithful path, the fast path, and the fast path with gradient checkpointing."""
    model = _randomize(focalnet.FocalTransformer(**SMALL)).train()
    x = torch.randn(2, 3, 64, 72)
    with torch.inference_mode():  # memoised index tables made here must serve the autograd forwards below
        model(x)
    grads = []
    for impl, ckpt in (("faithful", False), ("fast", False), ("fast", True)):
        model.zero_grad()
        model.set_attn_impl(impl)
        model.set_grad_checkpointing(ckpt)
        model(x).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for g in grads[1:]:
        for n, ref in grads[0].items():
            scale = ref.abs().max().clamp_min(1.0)  # float32 sums in another order: compare relative to the tensor
            torch.testing.assert_close(g[n] / scale, ref / scale, atol=1e-4, rtol=1e-4, msg=n)


def test_torch_compile_fullgraph():
    """One graph, no breaks (index tables are traced from the buffers); aot_eager keeps CI fast, see the docs
    for the inductor check."""
    model = _randomize(focalnet.FocalTransformer(**{**SMALL, "depths": [1, 1, 1, 1]}))
    x = torch.randn(1, 3, 96, 80)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), **SAME)
