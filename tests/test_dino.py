"""DINO (focalnet.det.dino): parity with the authors' FocalNet-DINO outputs, conversion, bad input."""

from __future__ import annotations

import pytest
import torch

from conftest import golden_files, load_golden, require_golden
from focalnet.det.dino import (
    DINO,
    DinoConfig,
    backbone_kwargs_from_args,
    build_backbone,
    from_original,
    to_original_state_dict,
)
from focalnet.det.dino.convert import ORIGINAL_BACKBONES
from focalnet.weights.loading import CheckpointError

FILES = golden_files("focalnet_dino")
TOL = dict(atol=1e-4, rtol=1e-4)


def _close(name, got, want):
    if isinstance(want, dict):
        assert set(want) <= set(got), (name, set(want) - set(got))
        for k in want:
            _close(f"{name}.{k}", got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), name
        for i, (a, b) in enumerate(zip(got, want)):
            _close(f"{name}[{i}]", a, b)
    elif isinstance(want, torch.Tensor):
        torch.testing.assert_close(torch.as_tensor(got).to(want.dtype), want, **TOL, msg=lambda m: f"{name}: {m}")
    else:
        assert got == want, (name, got, want)


@pytest.fixture(scope="module", params=[p.name for p in FILES] or ["missing"])
def golden(request):
    files = require_golden("focalnet_dino")
    g = load_golden(next(p for p in files if p.name == request.param))
    model = from_original(g["dino_args"], g["state_dict"], g["focalnet_backbone"])
    return g, model


def test_eval_outputs_and_postprocess_match_original(golden):
    g, model = golden
    assert not model.training
    from focalnet.det.dino import batch_images

    tensors, mask = batch_images(g["images"])
    torch.testing.assert_close(tensors, g["samples_tensors"])
    assert torch.equal(mask, g["samples_mask"])
    with torch.no_grad():
        out = model(g["images"])
    for k in ("pred_logits", "pred_boxes", "aux_outputs", "interm_outputs"):
        _close(k, out[k], g[k])
    _close("postprocess", model.postprocess(out, g["postprocess_target_sizes"]), g["postprocess_results"])


def test_training_forward_denoising_and_losses_match_original(golden):
    g, model = golden
    model.train()
    try:
        model.config.dn_box_noise_scale = 0.0  # the fixture's deterministic denoising queries
        model.config.dn_label_noise_ratio = 0.0
        out = model(g["images"], g["train_targets"])
        _close("train_pred_logits", out["pred_logits"], g["train_pred_logits"])
        _close("train_pred_boxes", out["pred_boxes"], g["train_pred_boxes"])
        meta = out["dn_meta"]
        assert {k: meta[k] for k in ("pad_size", "num_dn_group")} == g["train_dn_meta"]
        _close("train_dn_outputs", meta["output_known_lbs_bboxes"], g["train_dn_outputs"])
        losses = model.loss(out, g["train_targets"])
        assert set(losses) == set(g["train_losses"])
        assert model.weight_dict == g["weight_dict"]
        for k, want in g["train_losses"].items():
            torch.testing.assert_close(losses[k].detach(), want, atol=1e-6, rtol=1e-4, msg=k)
        total = model.total_loss(losses)
        torch.testing.assert_close(total.detach(), g["train_total_weighted_loss"], atol=1e-6, rtol=1e-4)
        total.backward()
        assert model.label_enc.weight.grad is not None
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_state_dict_converts_back_to_the_original_layout(golden):
    g, model = golden
    back = to_original_state_dict(model)
    assert set(back) == set(g["state_dict"])
    for k, v in g["state_dict"].items():
        assert torch.equal(back[k], v), k


def test_structure_mismatch_names_both_structures():
    files = require_golden("focalnet_dino")
    g5 = load_golden(next(p for p in files if "5scale" in p.name))
    g4 = load_golden(next(p for p in files if "4scale" in p.name))
    with pytest.raises(CheckpointError) as e:
        from_original(g5["dino_args"], g4["state_dict"], g5["focalnet_backbone"])
    msg = str(e.value)
    assert "4-scale" in msg and "5-scale" in msg and "focal levels 3" in msg and "focal levels 4" in msg


def test_shared_head_aliases_must_agree():
    files = require_golden("focalnet_dino")
    g = load_golden(files[0])
    sd = dict(g["state_dict"])
    sd["class_embed.0.bias"] = sd["class_embed.0.bias"] + 1
    with pytest.raises(CheckpointError, match="shared head"):
        from_original(g["dino_args"], sd, g["focalnet_backbone"])


# ------------------------------------------------------------------ tiny random models (no fixtures)
def _tiny_cfg(**kw) -> DinoConfig:
    base = dict(backbone="focalnet_L_384_22k_fl4", num_classes=7, dn_labelbook_size=7, enc_layers=1, dec_layers=2,
                dim_feedforward=32, num_queries=12, num_select=5, dn_number=3, return_interm_indices=[1, 2, 3],
                num_feature_levels=4)
    base.update(kw)
    return DinoConfig.from_args(base)


def _tiny_backbone(out_indices=(1, 2, 3)):
    return build_backbone(dict(embed_dim=16, depths=[1, 1, 1, 1], focal_levels=[2] * 4, focal_windows=[3] * 4,
                               out_indices=out_indices))


def test_training_with_zero_targets_runs_denoising_and_backward():
    model = DINO(_tiny_backbone(), _tiny_cfg()).train()
    images = [torch.randn(3, 40, 48), torch.randn(3, 32, 40)]
    empty = [{"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)} for _ in images]
    out = model(images, empty)
    assert out["dn_meta"]["pad_size"] == 0
    losses = model.loss(out, empty)
    assert losses["loss_bbox"].item() == 0 and losses["loss_bbox_dn"].item() == 0
    total = model.total_loss(losses)
    assert torch.isfinite(total)
    total.backward()
    # one image with boxes, one without: denoising groups cover only the first
    mixed = [{"labels": torch.tensor([1, 2]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.0, 0.1]])},
             empty[1]]
    out = model(images, mixed)
    assert out["dn_meta"]["pad_size"] == 2 * 2 * (2 * 3)  # max boxes x (pos+neg) x groups (dn_number doubled)
    losses = model.loss(out, mixed)
    assert all(torch.isfinite(v) for v in losses.values())


def test_degenerate_and_malformed_targets_are_refused():
    model = DINO(_tiny_backbone(), _tiny_cfg()).train()
    images = [torch.randn(3, 64, 64)]
    bad = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, -0.1, 0.2]])}]
    out = model(images, [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.1, 0.2]])}])
    with pytest.raises(ValueError, match="degenerate"):
        model.loss(out, bad)
    with pytest.raises(ValueError, match="labels must lie"):
        model.loss(out, [{"labels": torch.tensor([9]), "boxes": torch.tensor([[0.5, 0.5, 0.1, 0.2]])}])
    with pytest.raises(ValueError, match="needs targets"):
        model(images)


def test_bad_images_and_configs_give_clear_errors():
    model = DINO(_tiny_backbone(), _tiny_cfg()).eval()
    with pytest.raises(ValueError, match="C, H, W"):
        model([torch.randn(64, 64)])
    with pytest.raises(ValueError, match="hidden_dim"):
        _tiny_cfg(hidden_dim=128)
    with pytest.raises(ValueError, match="masks"):
        DinoConfig.from_args({"masks": True})
    with pytest.raises(ValueError, match="unknown DINO backbone"):
        backbone_kwargs_from_args({"backbone": "resnet50"})


@pytest.mark.parametrize("kw,idx", [
    (dict(return_interm_indices=[0, 1, 2, 3], num_feature_levels=4), (0, 1, 2, 3)),
    (dict(return_interm_indices=[1, 2, 3], num_feature_levels=5), (1, 2, 3)),
    (dict(return_interm_indices=[3], num_feature_levels=1, two_stage_type="no"), (3,)),
    (dict(two_stage_class_embed_share=True, two_stage_bbox_embed_share=True, use_detached_boxes_dec_out=True,
          aux_loss=False), (1, 2, 3)),
    (dict(dec_pred_class_embed_share=False, dec_pred_bbox_embed_share=False, two_stage_learn_wh=True,
          transformer_activation="prelu", pre_norm=True, embed_init_tgt=False, two_stage_pat_embed=2), (1, 2, 3)),
])
def test_other_structures_round_trip_through_the_original_layout(kw, idx):
    torch.manual_seed(0)
    model = DINO(_tiny_backbone(idx), _tiny_cfg(**kw)).eval()
    sd = to_original_state_dict(model)
    args = {**model.config.to_dict()}
    back = from_original(args, sd, dict(embed_dim=16, depths=[1, 1, 1, 1], focal_levels=[2] * 4,
                                        focal_windows=[3] * 4))
    x = [torch.randn(3, 40, 56), torch.randn(3, 32, 32)]
    with torch.no_grad():
        a, b = model(x), back(x)
    torch.testing.assert_close(a["pred_logits"], b["pred_logits"])
    torch.testing.assert_close(a["pred_boxes"], b["pred_boxes"])
    assert ("interm_outputs" in a) == (model.config.two_stage_type == "standard")
    assert len(a["aux_outputs"]) == 1  # always returned, as the original's build_dino forces aux_loss=True
    assert ("loss_ce_0" in model.weight_dict) == model.config.aux_loss
    res = model.postprocess(a, torch.tensor([[40, 56], [32, 32]]))
    assert res[0]["boxes"].shape == (5, 4)


def test_backbone_kwargs_follow_the_original_table():
    kw = backbone_kwargs_from_args({"backbone": "focalnet_L_384_22k_fl4", "focal_levels": 4, "focal_windows": 3,
                                    "return_interm_indices": [0, 1, 2, 3]})
    assert kw["normalize_modulator"] and kw["focal_levels"] == [4] * 4 and kw["out_indices"] == (0, 1, 2, 3)
    kw = backbone_kwargs_from_args({"backbone": "focalnet_L_384_22k", "return_interm_indices": [1, 2, 3]})
    assert kw["focal_windows"] == [5] * 4 and not kw["normalize_modulator"] and kw["out_indices"] == (1, 2, 3)
    kw = backbone_kwargs_from_args({"backbone": "focalnet_tiny_lrf", "return_interm_indices": [1, 2, 3]})
    assert kw["embed_dim"] == 96 and kw["focal_levels"] == [3] * 4
    assert set(ORIGINAL_BACKBONES) == {"focalnet_L_384_22k", "focalnet_L_384_22k_fl4", "focalnet_XL_384_22k",
                                       "focalnet_XL_384_22k_fl4", "focalnet_H_224_22k", "focalnet_H_224_22k_fl4"}
    # the released 5-scale L-fl4 structure, built on the meta device: 218 M parameters as the original
    with torch.device("meta"):
        bb = build_backbone(backbone_kwargs_from_args({"backbone": "focalnet_L_384_22k_fl4"}))
        model = DINO(bb, DinoConfig())
    n = sum(p.numel() for p in model.parameters())
    # independent count: the registered classifier minus its head and final norm, plus one norm per output ...
    backbone = 207_281_248 - (1536 * 1000 + 1000) - 2 * 1536 + 2 * (192 + 384 + 768 + 1536)
    d, ffn, L, heads, pts, cls = 256, 2048, 5, 8, 4, 91
    lin = lambda i, o: i * o + o  # noqa: E731
    msda = lin(d, heads * L * pts * 2) + lin(d, heads * L * pts) + 2 * lin(d, d)
    ffn_ln = lin(d, ffn) + lin(ffn, d)
    enc = 6 * (msda + ffn_ln + 2 * 2 * d)
    dec = 6 * (msda + (3 * d * d + 3 * d) + lin(d, d) + ffn_ln + 3 * 2 * d) + 2 * d + lin(2 * d, d) + lin(d, d)
    mlp = 2 * lin(d, d) + lin(d, 4)
    proj = sum(lin(c, d) + 2 * d for c in (192, 384, 768, 1536)) + (1536 * 9 * d + d) + 2 * d
    rest = L * d + 900 * d + lin(d, d) + 2 * d + 2 * (lin(d, cls) + mlp) + 92 * d
    assert n == backbone + proj + enc + dec + rest  # ... the DINO parts of the released 5-scale L-fl4 structure


def test_transformers_deformable_attention_backend_equals_ours():
    pytest.importorskip("transformers")
    from focalnet.det.dino import ms_deform_attn, set_deform_attn_backend
    from focalnet.det.dino.ops import _transformers_kernel

    shapes = [(6, 8), (3, 4), (2, 2)]
    value = torch.randn(2, sum(h * w for h, w in shapes), 4, 8)
    loc = torch.rand(2, 5, 4, 3, 2, 2) * 1.2 - 0.1  # some points outside the map (zero padding)
    w = torch.rand(2, 5, 4, 3, 2).softmax(-1)
    torch.testing.assert_close(_transformers_kernel()(value, shapes, loc, w), ms_deform_attn(value, shapes, loc, w))
    model = DINO(_tiny_backbone(), _tiny_cfg()).eval()
    x = [torch.randn(3, 40, 48)]
    with torch.no_grad():
        ref = model(x)["pred_boxes"]
        prev = set_deform_attn_backend("transformers")
        try:
            got = model(x)["pred_boxes"]
        finally:
            set_deform_attn_backend(prev)
    torch.testing.assert_close(got, ref)
    with pytest.raises(ValueError, match="unknown deformable-attention backend"):
        set_deform_attn_backend("cuda-magic")


def test_original_attribute_names_drive_denoising():
    model = DINO(_tiny_backbone(), _tiny_cfg()).train()
    model.dn_box_noise_scale = 0.0
    model.dn_label_noise_ratio = 0.0
    assert model.config.dn_box_noise_scale == 0.0 and model.dn_number == 3
    t = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}]
    out = model([torch.randn(3, 32, 32)], t)
    assert out["dn_meta"]["num_dn_group"] == 6
    model.dn_number = 0
    out = model([torch.randn(3, 32, 32)], t)
    assert out["dn_meta"] is None and out["pred_logits"].shape[1] == 12


def test_focal_transformer_backbone_through_the_same_adapter():
    cfg = _tiny_cfg()
    model = DINO(build_backbone({"name": "focal_transformer_tiny", "out_indices": (1, 2, 3)}), cfg).eval()
    back = from_original(cfg.to_dict(), to_original_state_dict(model), {"name": "focal_transformer_tiny"})
    x = [torch.randn(3, 64, 64)]
    with torch.no_grad():
        torch.testing.assert_close(back(x)["pred_boxes"], model(x)["pred_boxes"])


def test_backbone_out_indices_follow_return_interm_indices_like_the_original(caplog):
    """The original build_backbone passes out_indices=return_interm_indices to FocalNet whatever else is given."""
    files = require_golden("focalnet_dino")
    g = load_golden(next(p for p in files if p.name == "dino_4scale_fl3.pt"))
    kw = dict(g["focalnet_backbone"], out_indices=(0, 1, 2, 3))  # disagrees with return_interm_indices [1, 2, 3]
    with caplog.at_level("WARNING"):
        model = from_original(g["dino_args"], g["state_dict"], kw)
    assert "return_interm_indices" in caplog.text
    no_idx = {k: v for k, v in g["focalnet_backbone"].items() if k != "out_indices"}
    ref = from_original(g["dino_args"], g["state_dict"], no_idx)
    with torch.no_grad():
        a, b = model(g["images"]), ref(g["images"])
    torch.testing.assert_close(a["pred_logits"], g["pred_logits"], **TOL)
    torch.testing.assert_close(b["pred_logits"], g["pred_logits"], **TOL)
