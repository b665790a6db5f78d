"""Cascade Mask R-CNN, ATSS and Sparse R-CNN: sizes against the authors' README, assignment and matching on
hand-checked cases, losses on tiny inputs (also without objects), bad targets, mmdet backbone loading."""

from __future__ import annotations

import pytest
import torch

torchvision = pytest.importorskip("torchvision")

from focalnet.backbones import FocalNetBackbone, load_mmdet_backbone  # noqa: E402
from focalnet.det.atss import atss_assign, centerness_targets  # noqa: E402
from focalnet.det.models import build_detector  # noqa: E402
from focalnet.det.sparse_rcnn import hungarian_match  # noqa: E402
from focalnet.weights.loading import CheckpointError  # noqa: E402

TINY = dict(embed_dim=16, depths=[1, 1, 2, 1])
TINY_HEADS = {
    "cascade_mask_rcnn": dict(box_head_dim=32, mask_head_dims=(16, 16), box_norm="gn",
                              anchor_sizes=(16, 32, 64, 128, 256), rpn_pre_nms_top_n_train=100,
                              rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=30,
                              box_batch_size_per_image=32),
    "atss": dict(anchor_sizes=(32, 64, 128, 256, 512), gn_groups=8),
    "sparse_rcnn": dict(num_proposals=12, num_stages=2, num_heads=2, ffn_channels=32, feat_channels=8),
}
# FocalNet README, "other detection methods": FocalNet-T, focal windows [11,9,9,7], 3x, params in millions.
README_PARAMS = {"cascade_mask_rcnn": 87.1, "atss": 37.2, "sparse_rcnn": 111.2}


def _tiny(arch: str, num_classes: int = 3):
    torch.manual_seed(0)
    return build_detector(arch, "focalnet_tiny_srf", num_classes, backbone_overrides=TINY, fpn_channels=32,
                          min_size=64, max_size=96, **TINY_HEADS[arch])


def _batch(empty_only: bool = False):
    img = [torch.rand(3, 64, 80), torch.rand(3, 56, 64)]
    mask = torch.zeros(1, 64, 80, dtype=torch.uint8)
    mask[0, 10:40, 20:60] = 1
    full = {"boxes": torch.tensor([[20.0, 10.0, 60.0, 40.0]]), "labels": torch.tensor([2]), "masks": mask}
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, 56, 64, dtype=torch.uint8)}
    return (img[1:], [empty]) if empty_only else (img, [full, empty])


@pytest.mark.parametrize("arch", sorted(README_PARAMS))
def test_parameter_counts_match_readme(arch):
    """Full-size FocalNet-T (lrf: levels 3, windows [11,9,9,7]) detectors for 80 classes, built on meta."""
    with torch.device("meta"):
        model = build_detector(arch, "focalnet_tiny_lrf", 80, focal_windows=[11, 9, 9, 7], focal_levels=[3, 3, 3, 3])
    n = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(n - README_PARAMS[arch]) / README_PARAMS[arch] < 0.01, (arch, n)


@pytest.mark.parametrize("arch", sorted(README_PARAMS))
def test_losses_backward_and_predictions(arch):
    model = _tiny(arch)
    model.train()
    images, targets = _batch()
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > 0.8 * len(grads)
    # A batch with no object at all still trains: finite losses, gradients reach the classifier.
    model.zero_grad()
    losses = model(*_batch(empty_only=True))
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for o, im in zip(out, images):
        assert o["boxes"].shape[1] == 4 and len(o["boxes"]) == len(o["scores"]) == len(o["labels"])
        if len(o["labels"]):
            assert o["labels"].min() >= 1 and o["labels"].max() <= 3
            assert (o["boxes"][:, 2] <= im.shape[-1] + 1e-3).all() or arch == "sparse_rcnn"
        if arch == "cascade_mask_rcnn":
            assert o["masks"].shape[1:] == (1, *im.shape[-2:])


def test_cascade_structure_follows_the_authors_config():
    model = _tiny("cascade_mask_rcnn")
    rh = model.roi_heads
    assert rh.iou_thresholds == (0.5, 0.6, 0.7) and rh.stage_loss_weights == (1.0, 0.5, 0.25)
    assert [c.weights for c in rh.box_coders] == [(10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0),
                                                  pytest.approx((1 / 0.033, 1 / 0.033, 1 / 0.067, 1 / 0.067))]
    assert len(rh.mask_heads) == 3 and rh.box_predictors[0].bbox_pred.out_features == 4 * 3
    agnostic = build_detector("cascade_mask_rcnn", "focalnet_tiny_srf", 3, backbone_overrides=TINY, fpn_channels=32,
                              min_size=64, max_size=96, class_agnostic=True, box_loss="smooth_l1",
                              mask_per_stage=False, **TINY_HEADS["cascade_mask_rcnn"])
    assert agnostic.roi_heads.box_predictors[0].bbox_pred.out_features == 4 and len(agnostic.roi_heads.mask_heads) == 1
    agnostic.train()
    losses = agnostic(*_batch())
    assert "s2.loss_mask" in losses and "s0.loss_mask" not in losses


def test_cascade_test_time_scores_average_the_stages_logits():
    """With identical stages, the averaged logits equal each stage's: scores must be the softmax of one stage."""
    model = _tiny("cascade_mask_rcnn").eval()
    rh = model.roi_heads
    for s in (1, 2):
        rh.box_heads[s].load_state_dict(rh.box_heads[0].state_dict())
        rh.box_predictors[s].load_state_dict(rh.box_predictors[0].state_dict())
    with torch.no_grad():
        rh.box_predictors[0].bbox_pred.weight.zero_()
        rh.box_predictors[0].bbox_pred.bias.zero_()  # no refinement: every stage sees the same boxes
        for s in (1, 2):
            rh.box_predictors[s].load_state_dict(rh.box_predictors[0].state_dict())
        rh.score_thresh = 0.0
        feats = model.backbone(torch.rand(1, 3, 64, 64))
        props = [torch.tensor([[4.0, 4.0, 40.0, 40.0]])]
        out = rh(feats, props, [(64, 64)])[0][0]
        logits = rh.box_predictors[0](rh.box_heads[0](rh.box_roi_pool(feats, props, [(64, 64)])))[0]
    expect = torch.softmax(logits, -1)[0, 1:]
    assert torch.allclose(out["scores"].sort().values, expect.sort().values, atol=1e-6)


# ------------------------------------------------------------------------------------------------ ATSS
def _grid(stride: int, n: int, size: float) -> torch.Tensor:
    c = (torch.arange(n) * stride + stride / 2).float()
    cy, cx = torch.meshgrid(c, c, indexing="ij")
    ctr = torch.stack([cx.flatten(), cy.flatten()], 1)
    return torch.cat([ctr - size / 2, ctr + size / 2], 1)


def test_atss_assign_hand_checked():
    # Level 0: 3x3 anchors of side 8 at stride 8 (centres 4, 12, 20); level 1: one 24x24 anchor centred at 12.
    anchors = torch.cat([_grid(8, 3, 8), torch.tensor([[0.0, 0.0, 24.0, 24.0]])])
    counts = [9, 1]
    # A box equal to the centre anchor: candidates (topk 3) are it (IoU 1), two side anchors (IoU 0) and the big
    # anchor (IoU 64/576 = 0.111); mean 0.278 + std 0.484 = 0.762, so only the centre anchor is positive.
    idx = atss_assign(anchors, counts, torch.tensor([[8.0, 8.0, 16.0, 16.0]]), topk=3)
    assert idx.tolist() == [-1, -1, -1, -1, 0, -1, -1, -1, -1, -1]
    # A 3x3 box in the top-left corner: anchor 0 has the only non-zero IoU (9/64) and passes the threshold,
    # but its centre (4, 4) lies outside the box [0.5, 3.5]: no positive at all.
    idx = atss_assign(anchors, counts, torch.tensor([[0.5, 0.5, 3.5, 3.5]]), topk=3)
    assert (idx == -1).all()
    # Grow the box to [0.5, 4.5]: the centre is now inside (by 0.5 > 0.01) and anchor 0 becomes positive.
    idx = atss_assign(anchors, counts, torch.tensor([[0.5, 0.5, 4.5, 4.5]]), topk=3)
    assert idx.tolist() == [0] + [-1] * 9
    # Two boxes that both select the centre anchor: it goes to the one with the higher IoU (box 1: IoU 1 vs 0.56).
    gt = torch.tensor([[8.0, 8.0, 17.0, 17.0], [8.0, 8.0, 16.0, 16.0]])
    idx = atss_assign(anchors, counts, gt, topk=3)
    assert idx[4] == 1
    # No boxes: everything is background.
    assert (atss_assign(anchors, counts, torch.zeros(0, 4)) == -1).all()


def test_centerness_targets():
    a = torch.tensor([[0.0, 0.0, 4.0, 4.0], [2.0, 0.0, 6.0, 4.0]])  # centres (2, 2) and (4, 2)
    gt = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 8.0, 8.0]])
    # first: centred -> 1; second: l=4, r=4, t=2, b=6 -> sqrt(1 * 2/6)
    assert torch.allclose(centerness_targets(a, gt), torch.tensor([1.0, (2 / 6) ** 0.5]))


# ------------------------------------------------------------------------------------------------ Sparse R-CNN
def test_hungarian_match_is_optimal_not_greedy():
    """L1 costs A-G0 2, A-G1 20, B-G0 1, B-G1 17: greedy (B-G0 first) costs 21, the optimum A-G0 + B-G1 19."""
    preds = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 11.5, 11.5]])
    gts = torch.tensor([[0.0, 0.0, 11.0, 11.0], [0.0, 0.0, 20.0, 20.0]])
    logits = torch.zeros(2, 3)
    rows, cols = hungarian_match(logits, preds, torch.tensor([0, 1]), gts, torch.ones(4), cls_weight=0.0,
                                 l1_weight=1.0, giou_weight=0.0)
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 0, 1: 1}


def test_hungarian_match_focal_cost_and_counts():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)  # identical boxes: only the class cost decides
    logits = torch.tensor([[-4.0, 0.0], [3.0, 0.0], [0.0, 0.0]])
    rows, cols = hungarian_match(logits, boxes, torch.tensor([0]), torch.tensor([[0.0, 0.0, 10.0, 10.0]]),
                                 torch.full((4,), 10.0))
    assert rows.tolist() == [1] and cols.tolist() == [0]  # the most confident prediction of class 0
    rows, cols = hungarian_match(logits, boxes, torch.zeros(0, dtype=torch.int64), torch.zeros(0, 4), torch.ones(4))
    assert len(rows) == len(cols) == 0


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("arch", sorted(README_PARAMS))
def test_bad_targets_have_clear_messages(arch):
    model = _tiny(arch).train()
    images, targets = _batch()
    degenerate = [dict(targets[0], boxes=torch.tensor([[20.0, 10.0, 20.0, 40.0]])), targets[1]]
    with pytest.raises(ValueError, match="box 0 .* has no area"):
        model(images, degenerate)
    unknown = [dict(targets[0], labels=torch.tensor([7])), targets[1]]
    with pytest.raises(ValueError, match=r"labels must be 1\.\.3"):
        model(images, unknown)
    if arch == "cascade_mask_rcnn":
        no_masks = [{k: v for k, v in targets[0].items() if k != "masks"}, targets[1]]
        with pytest.raises(ValueError, match="needs one 'masks' entry per box"):
            model(images, no_masks)


def test_build_rejects_unknown_arch_and_box_norm():
    with pytest.raises(ValueError, match="unknown detector"):
        build_detector("yolo", "focalnet_tiny_srf", 3, backbone_overrides=TINY)
    with pytest.raises(ValueError, match="box_norm"):
        build_detector("cascade_mask_rcnn", "focalnet_tiny_srf", 3, backbone_overrides=TINY, box_norm="ln")


# ------------------------------------------------------------------------------------------------ mmdet weights
def test_mmdet_detector_checkpoint_backbone_loads_strictly(tmp_path):
    """An original detector checkpoint: ``state_dict`` with ``backbone.*`` (classification layout + ``norm{i}``),
    neck and head keys. Its backbone part fills the adapter exactly; a missing or mis-shaped tensor is refused."""
    kw = dict(focal_windows=[11, 9, 9, 7], focal_levels=[3, 3, 3, 3], **TINY)
    bb = FocalNetBackbone.from_name("focalnet_tiny_lrf", **kw)
    sd = {}
    g = torch.Generator().manual_seed(0)
    for k, v in bb.state_dict().items():
        orig = k[len("body."):] if k.startswith("body.") else "norm{}.{}".format(*k.split(".")[1:])
        sd["backbone." + orig] = torch.randn(v.shape, generator=g)
    sd["neck.lateral_convs.0.conv.weight"] = torch.randn(8, 16, 1, 1)
    sd["roi_head.bbox_head.0.fc_cls.weight"] = torch.randn(81, 8)
    path = tmp_path / "cascade.pth"
    torch.save({"meta": {"epoch": 36}, "state_dict": sd}, path)
    fresh = FocalNetBackbone.from_name("focalnet_tiny_lrf", **kw)
    load_mmdet_backbone(fresh, str(path))
    got = fresh.state_dict()
    assert torch.equal(got["norms.2.weight"], sd["backbone.norm2.weight"])
    assert torch.equal(got["body.layers.0.blocks.0.modulation.focal_layers.2.0.weight"],
                       sd["backbone.layers.0.blocks.0.modulation.focal_layers.2.0.weight"])
    assert all(torch.equal(v, sd["backbone." + (k[5:] if k.startswith("body.") else "norm" + k[6:])])
               for k, v in got.items())
    del sd["backbone.norm3.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): norms.3.bias"):
        load_mmdet_backbone(fresh, sd)
    other = FocalNetBackbone.from_name("focalnet_tiny_lrf", focal_windows=9, focal_levels=[3, 3, 3, 3], **TINY)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_mmdet_backbone(other, str(path))
    with pytest.raises(CheckpointError, match="no 'backbone.\\*' keys"):
        load_mmdet_backbone(fresh, {"neck.x": torch.zeros(1)})


def test_gflops_match_readme():
    """mmdet-style ``forward_dummy`` at 1280x800 on meta (nothing computed). Sparse R-CNN counts 3.3 G more than
    mmcv's counter, which skips the dynamic-conv bmm and the attention in-projection (docs/detection.md)."""
    from torch.utils.flop_counter import FlopCounterMode

    readme = {"cascade_mask_rcnn": (751, 0.01), "atss": (220, 0.01), "sparse_rcnn": (178, 0.025)}
    for arch, (ref, tol) in readme.items():
        with torch.device("meta"):
            model = build_detector(arch, "focalnet_tiny_lrf", 80, focal_windows=[11, 9, 9, 7],
                                   focal_levels=[3, 3, 3, 3]).eval()
        with FlopCounterMode(display=False) as counter:
            model.forward_dummy(torch.zeros(1, 3, 800, 1280, device="meta"))
        g = counter.get_total_flops() / 2e9
        assert abs(g - ref) / ref < tol, (arch, g)


# ------------------------------------------------------------------------------------------------ recipes
def _recipes():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs" / "detection"
    return sorted(p for arch in README_PARAMS for p in root.glob(f"{arch}_focalnet_*.yaml"))


@pytest.mark.parametrize("path", _recipes(), ids=lambda p: p.stem)
def test_recipes_load_and_follow_the_authors_configs(path):
    from focalnet.det.config import load_config

    cfg = load_config(path)
    head = path.read_text().splitlines()[:8]
    rel = path.relative_to(path.parents[2]).as_posix()
    assert any(line.startswith("# Run:") and f"--config {rel}" in line for line in head)
    assert cfg.model.arch == path.stem.split("_focalnet_")[0]
    if "synthetic" in path.stem:
        assert cfg.data.synthetic is not None
        return
    rf = path.stem.split("_")[-2]
    assert cfg.model.backbone == f"focalnet_tiny_{rf}" and cfg.model.focal_windows == [11, 9, 9, 7]
    assert cfg.model.focal_levels == [2 if rf == "srf" else 3] * 4 and cfg.model.drop_path_rate == 0.3
    assert (cfg.optim.epochs, cfg.optim.steps, cfg.optim.warmup_iters) == (36, [27, 33], 500)
    assert cfg.model.min_size == list(range(480, 801, 32)) and cfg.model.max_size == 1333
    if cfg.model.arch == "sparse_rcnn":  # the authors keep Sparse R-CNN's own optimiser
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.clip_grad) == (2.5e-5, 1e-4, 1.0)
        assert cfg.model.detector["num_proposals"] == 300
    else:
        assert (cfg.optim.lr, cfg.optim.weight_decay) == (1e-4, 0.05)
    images = {"cascade_mask_rcnn": 8, "atss": 16, "sparse_rcnn": 16}[cfg.model.arch]
    assert cfg.optim.batch_size * cfg.optim.accumulate == images


@pytest.mark.parametrize("arch", sorted(README_PARAMS))
def test_focal_transformer_backbone(arch):
    """Any registered backbone goes through the same adapter: here Focal Transformer-T (built on meta)."""
    from focalnet.backbones import FocalTransformerBackbone

    with torch.device("meta"):
        model = build_detector(arch, "focal_transformer_tiny", 80, focal_windows=None)
    assert isinstance(model.backbone.body, FocalTransformerBackbone)
