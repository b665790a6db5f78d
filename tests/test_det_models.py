"""Detection glue: FocalNet backbone construction and weight loading, torchvision detectors, recipes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import focalnet
from focalnet.backbones import FocalNetBackbone

torchvision = pytest.importorskip("torchvision")

from focalnet.det.config import DetConfig, load_config  # noqa: E402
from focalnet.det.models import build_detector, detector_param_groups  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = dict(embed_dim=16, depths=[1, 1, 2, 1])
SMALL_HEADS = dict(fpn_channels=32, box_head_dim=64, mask_head_dims=(32, 32), min_size=96, max_size=160)


def _classifier_file(tmp_path, levels=2):
    clf = focalnet.create_model("focalnet_tiny_srf", num_classes=10, focal_levels=levels, **TINY)
    with torch.no_grad():
        for p in clf.parameters():
            p.normal_()  # random values everywhere, so a tensor that is not loaded is noticed
    path = tmp_path / "clf.pth"
    torch.save({"model": clf.state_dict()}, path)
    return clf, path


def test_from_name_window9_loads_tiny_srf_classifier(tmp_path):
    """Classification srf weights (windows 3) -> window-9 backbone through from_name: kernels zero-padded, centred."""
    clf, path = _classifier_file(tmp_path)
    bb = FocalNetBackbone.from_name("focalnet_tiny_srf", focal_windows=9, pretrained=str(path), **TINY)
    assert bb.out_channels == [16, 32, 64, 128] and bb.strides == [4, 8, 16, 32]
    assert "norm.weight" not in bb.body.state_dict() and isinstance(bb.body.head, torch.nn.Identity)
    src, dst = clf.state_dict(), bb.body.state_dict()
    for k, v in dst.items():
        if ".focal_layers." in k and k.endswith("0.weight"):
            k0 = src[k].shape[-1]
            assert v.shape[-1] == k0 + 6  # 3 -> 9 and 5 -> 11
            torch.testing.assert_close(v[..., 3:-3, 3:-3], src[k], atol=0, rtol=0)
            assert v[..., :3, :].abs().sum() == 0 and v[..., :, -3:].abs().sum() == 0
        else:
            torch.testing.assert_close(v, src[k], atol=0, rtol=0)


def test_from_name_more_levels_and_detector_path(tmp_path):
    """srf -> 3 focal levels through the Mask R-CNN builder: new gate row zero, global gate kept last."""
    clf, path = _classifier_file(tmp_path)
    det = build_detector("mask_rcnn", "focalnet_tiny_srf", 3, focal_levels=3, pretrained=str(path),
                         backbone_overrides=TINY, **SMALL_HEADS)
    body = det.backbone.body.body
    f_src = clf.state_dict()["layers.0.blocks.0.modulation.f.weight"]  # rows: q, ctx (2C), gates l0, l1, global
    f_dst = body.state_dict()["layers.0.blocks.0.modulation.f.weight"]
    C = 16
    assert f_dst.shape[0] == 2 * C + 4
    torch.testing.assert_close(f_dst[: 2 * C + 2], f_src[: 2 * C + 2], atol=0, rtol=0)
    assert f_dst[2 * C + 2].abs().sum() == 0  # the new level's gate starts at zero
    torch.testing.assert_close(f_dst[-1], f_src[-1], atol=0, rtol=0)


def test_golden_remap_through_from_name():
    """The golden window-9 conversion, reached through from_name (the path detectors use)."""
    from conftest import load_golden, require_golden

    path = next(p for p in require_golden("focalnet_dense") if p.name == "det_window9_from_srf.pt")
    blob = load_golden(path)
    cfg = dict(blob["config"])
    src = load_golden(path.parent.parent / "focalnet" / blob["source_classification_fixture"])
    bb = FocalNetBackbone.from_name("focalnet_tiny_srf", focal_windows=cfg["focal_windows"],
                                    focal_levels=cfg["focal_levels"], pretrained=src["state_dict"],
                                    embed_dim=cfg["embed_dim"], depths=cfg["depths"],
                                    out_indices=cfg["out_indices"], drop_path_rate=0.0)
    sd = bb.body.state_dict()
    for k, ref in blob["converted_from_classification"].items():
        torch.testing.assert_close(sd[k], ref, atol=0, rtol=0)


def test_backbone_param_count_matches_original_t_window9():
    """The original T backbone with window-9 kernels has 28.401 M parameters (spec §7.1, measured)."""
    bb = FocalNetBackbone.from_name("focalnet_tiny_srf", device="meta")
    assert round(sum(p.numel() for p in bb.parameters()) / 1e6, 3) == 28.401


def test_large_variants_postnorm_layerscale_and_stem_padding():
    """The original detection backbone could not host post-norm/layer-scale models; ours builds them."""
    bb = FocalNetBackbone.from_name("focalnet_large_fl3", device="meta")
    assert bb.out_channels == [192, 384, 768, 1536]
    assert bb.body.patch_embed.proj.padding == (2, 2)
    assert any(".gamma_1" in n for n, _ in bb.named_parameters())
    mmdet_stem = FocalNetBackbone.from_name("focalnet_large_fl3", device="meta", stem_padding=3)
    assert mmdet_stem.body.patch_embed.proj.padding == (3, 3)
    bb = FocalNetBackbone.from_name("focalnet_huge_fl4", focal_windows=None, out_indices=(1, 2, 3), device="meta")
    assert bb.strides == [8, 16, 32] and bb.body.focal_windows == [3, 3, 3, 3]
    with torch.no_grad():
        feats = bb(torch.empty(1, 3, 100, 130, device="meta"))
    assert [tuple(f.shape) for f in feats] == [(1, 704, 13, 17), (1, 1408, 7, 9), (1, 2816, 4, 5)]


def test_postnorm_layerscale_backbone_runs_on_cpu():
    bb = FocalNetBackbone.from_name("focalnet_large_fl3", embed_dim=8, depths=[1, 1, 1, 1], frozen_stages=1)
    feats = bb(torch.randn(1, 3, 70, 90))
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 18, 23), (16, 9, 12), (32, 5, 6), (64, 3, 3)]
    assert not any(p.requires_grad for p in bb.body.patch_embed.parameters())


def test_isotropic_variant_refused():
    with pytest.raises(ValueError, match="isotropic"):
        FocalNetBackbone.from_name("focalnet_tiny_iso", device="meta")


@pytest.mark.parametrize("arch", ["mask_rcnn", "retinanet", "fcos"])
def test_detectors_build_and_predict_any_size(arch):
    # few detections: an untrained model's outputs are noise, and mask heads on 100 boxes are slow on a CPU
    extra = dict(box_detections_per_img=5) if arch == "mask_rcnn" else dict(detections_per_img=5, topk_candidates=50)
    det = build_detector(arch, "focalnet_tiny_srf", 3, backbone_overrides=TINY,
                         **{**SMALL_HEADS, **extra}).eval()
    feats = det.backbone(torch.randn(1, 3, 128, 160))
    strides = [128 // f.shape[-2] for f in feats.values()]
    assert strides == ([4, 8, 16, 32, 64] if arch == "mask_rcnn" else [8, 16, 32, 64, 128])
    assert all(f.shape[1] == 32 for f in feats.values())
    with torch.no_grad():
        out = det([torch.rand(3, 90, 130)])[0]  # not a multiple of 32: padded by the transform and the backbone
    assert set(out) >= {"boxes", "scores", "labels"}
    if arch == "mask_rcnn":
        assert out["masks"].shape[-2:] == (90, 130)


def test_detector_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown detector"):
        build_detector("yolo", "focalnet_tiny_srf", 3)
    with pytest.raises(ValueError, match="num_classes"):
        build_detector("fcos", "focalnet_tiny_srf", 0)


def test_param_groups_exclude_norms_biases_gammas():
    det = build_detector("retinanet", "focalnet_tiny_srf", 3, backbone_overrides={**TINY, "use_layerscale": True},
                         fpn_channels=32, min_size=96)
    decay, no_decay = detector_param_groups(det, 0.05)
    names = {id(p): n for n, p in det.named_parameters()}
    nd = {names[id(p)] for p in no_decay["params"]}
    d = {names[id(p)] for p in decay["params"]}
    assert "backbone.body.body.layers.0.blocks.0.gamma_1" in nd
    assert "backbone.body.norms.1.weight" in nd and "backbone.fpn.inner_blocks.0.0.bias" in nd
    assert "backbone.body.body.layers.0.blocks.0.modulation.f.weight" in d
    assert all(det.get_parameter(n).ndim > 1 for n in d)
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.05


# ------------------------------------------------------------------------------------------------ recipes
RECIPES = sorted((REPO / "configs" / "detection").glob("mask_rcnn_*.yaml"))  # others: test_det_rcnn.py
DROP_PATH = {("tiny", "1x"): 0.1, ("tiny", "3x"): 0.3, ("small", "1x"): 0.2, ("small", "3x"): 0.5,
             ("base", "1x"): 0.3, ("base", "3x"): 0.5}


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipes_load_and_are_headed_by_their_command(path):
    cfg = load_config(path)
    rel = path.relative_to(REPO).as_posix()
    head = path.read_text().splitlines()[:6]
    assert any(line.startswith("# Run:") and f"focalnet train --config {rel}" in line for line in head)
    assert cfg.model.focal_windows == 9
    if "synthetic" in path.stem:
        assert cfg.data.synthetic is not None
        return
    size, rf, sched = path.stem.split("_")[3:6]
    assert cfg.model.backbone == f"focalnet_{size}_{rf}" and cfg.model.focal_levels == (2 if rf == "srf" else 3)
    assert cfg.model.drop_path_rate == DROP_PATH[(size, sched)]
    assert (cfg.optim.epochs, cfg.optim.steps) == ((12, [9, 11]) if sched == "1x" else (36, [27, 33]))
    assert (cfg.optim.lr, cfg.optim.weight_decay) == (1e-4, 0.05)
    assert cfg.model.min_size == list(range(480, 801, 32)) and cfg.model.max_size == 1333
    assert cfg.optim.batch_size * cfg.optim.accumulate == 16


def test_all_twelve_mask_rcnn_recipes_exist():
    names = {p.stem for p in RECIPES}
    for size in ("tiny", "small", "base"):
        for rf in ("srf", "lrf"):
            for sched in ("1x", "3x"):
                assert f"mask_rcnn_focalnet_{size}_{rf}_{sched}" in names


def test_config_rejects_unknown_keys_and_parses_overrides(tmp_path):
    with pytest.raises(ValueError, match="unknown config key.*'optim.learning_rate'"):
        DetConfig.from_dict({"optim": {"learning_rate": 1}})
    with pytest.raises(ValueError, match="unknown config key.*'data.synthetic.count'"):
        DetConfig.from_dict({"data": {"synthetic": {"count": 3}}})
    cfg = load_config(None, ["optim.lr=2e-4", "model.min_size=[128, 160]", "data.synthetic.n_train=8"])
    assert cfg.optim.lr == 2e-4 and cfg.model.min_size == [128, 160] and cfg.data.synthetic.n_train == 8
    assert DetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="'optim.epochs' expects int, got 'many'"):
        load_config(None, ["optim.epochs=many"])
    with pytest.raises(ValueError, match="key.sub=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_focal_transformer_backbone_under_detectors_and_segmentor():
    """Issue: detection/segmentation build on Focal Transformer's feature interface too."""
    from focalnet.backbones import FocalTransformerBackbone
    from focalnet.det import maskrcnn_focalnet

    small = dict(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
    cls_model = focalnet.create_model("focal_transformer_tiny", num_classes=5, **small)
    bb = FocalNetBackbone.from_name("focal_transformer_tiny", pretrained=cls_model.state_dict(), frozen_stages=1,
                                    **small)
    assert isinstance(bb, FocalTransformerBackbone) and bb.strides == [4, 8, 16, 32]
    torch.testing.assert_close(bb.body.patch_embed.proj.weight, cls_model.patch_embed.proj.weight)
    assert not any(p.requires_grad for p in bb.body.patch_embed.parameters())
    with pytest.raises(ValueError, match="adapt FocalNet backbones"):
        FocalNetBackbone.from_name("focal_transformer_tiny", focal_levels=3, **small)

    det = maskrcnn_focalnet("focal_transformer_tiny", num_classes=4, backbone_overrides=small,
                            min_size=96, max_size=128).eval()
    with torch.no_grad():
        out = det([torch.rand(3, 96, 120)])
    assert set(out[0]) >= {"boxes", "labels", "scores", "masks"}
