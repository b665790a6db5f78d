"""Mask2Former on FocalNet (issue #12): model wrapper, COCO panoptic/instance readers, synthetic writer, metrics."""

import json
import shutil

import numpy as np
import pytest
import torch

import focalnet
from focalnet.backbones import FocalNetBackbone
from focalnet.seg.data import SegDataError
from focalnet.seg.mask2former import build_mask2former
from focalnet.seg.panoptic import (
    Category,
    CocoInstanceDataset,
    CocoPanopticDataset,
    MaskTrainTransform,
    collate_masks,
    id2rgb,
    rgb2id,
    write_synthetic_panoptic,
)
from focalnet.seg.panoptic_eval import MaskAPMeter, PanopticQualityMeter

TINY = dict(hidden_dim=32, feature_size=32, mask_feature_size=32, encoder_layers=1, decoder_layers=3,
            num_attention_heads=2, dim_feedforward=64, encoder_feedforward_dim=64, num_queries=8,
            train_num_points=256)
SMALL_FOCALNET = dict(embed_dim=16, depths=[1, 1, 1, 1], focal_windows=3)


@pytest.fixture(scope="module")
def pan_root(tmp_path_factory):
    return write_synthetic_panoptic(tmp_path_factory.mktemp("pan") / "pan", n_train=3, n_val=2, size=(64, 80))


def _copy(root, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


# ------------------------------------------------------------------ model
def test_backbone_is_the_encoder_and_keeps_its_weights_after_hf_init():
    torch.manual_seed(0)
    cls_model = focalnet.create_model("focalnet_tiny_srf", num_classes=3, **SMALL_FOCALNET)
    bb = FocalNetBackbone.from_name("focalnet_tiny_srf", pretrained=cls_model.state_dict(), **SMALL_FOCALNET)
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    m = build_mask2former(bb, 5, thing_classes=[0, 1], **TINY)
    enc = m.hf.model.pixel_level_module.encoder
    assert enc.backbone is bb and enc.channels == [16, 32, 64, 128]
    # HF sized its input projections (strides 8..32, coarse first) and FPN lateral (stride 4) from our channels
    dec = m.hf.model.pixel_level_module.decoder
    assert [p[0].in_channels for p in dec.input_projections] == [128, 64, 32]
    assert dec.lateral_convolutions[0][0].in_channels == 16
    for k, v in m.backbone.state_dict().items():  # HF's post_init re-initialised them; they were restored
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)
    torch.testing.assert_close(bb.body.patch_embed.proj.weight, cls_model.patch_embed.proj.weight)
    # the pretrained stem really was overwritten by HF's init before the restore (so the restore matters)
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation
    from transformers.models.mask2former import modeling_mask2former as mod

    from focalnet.seg.mask2former import HFEncoder

    bb2 = FocalNetBackbone.from_name("focalnet_tiny_srf", pretrained=cls_model.state_dict(), **SMALL_FOCALNET)
    orig, mod.load_backbone = mod.load_backbone, lambda cfg: HFEncoder(bb2)
    try:
        Mask2FormerForUniversalSegmentation(Mask2FormerConfig(num_labels=5, **TINY))
    finally:
        mod.load_backbone = orig
    assert not torch.equal(bb2.body.patch_embed.proj.weight, cls_model.patch_embed.proj.weight)


def test_losses_backward_and_predictions_at_any_size():
    torch.manual_seed(0)
    bb = FocalNetBackbone.from_name("focalnet_tiny_srf", **SMALL_FOCALNET)
    m = build_mask2former(bb, 5, thing_classes=[0, 1], **TINY)
    x = torch.randn(2, 3, 50, 70)  # not multiples of 32: padded inside, cropped back
    masks = [torch.rand(3, 50, 70) > 0.5, torch.zeros(0, 50, 70, dtype=torch.bool)]
    labels = [torch.tensor([0, 2, 4]), torch.zeros(0, dtype=torch.long)]
    out = m.losses(x, masks, labels)
    # main + (decoder_layers - 1) deep-supervision copies of the three matched losses
    assert {"loss_cross_entropy", "loss_mask", "loss_dice"} <= set(out) and len(out) == 3 * 3 + 1
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert bb.body.patch_embed.proj.weight.grad is not None
    with pytest.raises(ValueError, match="class labels"):
        m.losses(x, masks, [torch.tensor([0, 2, 9]), labels[1]])
    m.eval()
    r = m.predict(x, target_sizes=[(50, 70), (100, 140)])
    assert r[0]["semantic"].shape == (50, 70) and r[1]["semantic"].shape == (100, 140)
    assert r[1]["panoptic"]["segmentation"].shape == (100, 140)
    inst = r[0]["instance"]
    assert inst["masks"].shape[1:] == (50, 70) and len(inst["masks"]) <= 8 * 5  # top-k of queries x classes
    assert set(inst["labels"].tolist()) <= {0, 1}  # ... of which the things are kept


def test_focal_transformer_backbone_and_bad_settings():
    small = dict(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
    bb = FocalNetBackbone.from_name("focal_transformer_tiny", **small)
    m = build_mask2former(bb, 3, **TINY).eval()
    assert m.predict(torch.randn(1, 3, 64, 64), tasks=("semantic",))[0]["semantic"].shape == (64, 64)
    with pytest.raises(ValueError, match="multiple of 32"):
        build_mask2former(bb, 3, **{**TINY, "feature_size": 48})
    with pytest.raises(ValueError, match="unknown Mask2Former setting"):
        build_mask2former(bb, 3, num_querys=5)


def test_param_groups_follow_the_original_optimizer():
    bb = FocalNetBackbone.from_name("focalnet_tiny_srf", **SMALL_FOCALNET)
    m = build_mask2former(bb, 3, **TINY)
    groups = m.param_groups(0.05, backbone_multiplier=0.1)
    assert sum(len(g["params"]) for g in groups) == len([p for p in m.parameters() if p.requires_grad])
    where = {id(p): g for g in groups for p in g["params"]}
    assert where[id(bb.body.patch_embed.proj.weight)]["lr_scale"] == 0.1
    assert where[id(bb.body.patch_embed.proj.weight)]["weight_decay"] == 0.05
    assert where[id(bb.norms["0"].weight)]["weight_decay"] == 0.0
    assert where[id(m.hf.model.transformer_module.queries_features.weight)]["weight_decay"] == 0.0
    # the pixel decoder's level embedding is a plain parameter in the original too: it decays
    assert where[id(m.hf.model.pixel_level_module.decoder.level_embed)]["weight_decay"] == 0.05
    assert where[id(m.hf.class_predictor.weight)] is where[id(m.hf.class_predictor.bias)]
    assert where[id(m.hf.class_predictor.weight)]["lr_scale"] == 1.0


# ------------------------------------------------------------------ data
def test_id_encoding_round_trip():
    ids = np.array([[0, 1, 255], [256, 4001, 16777215]])
    np.testing.assert_array_equal(rgb2id(id2rgb(ids)), ids)
    np.testing.assert_array_equal(id2rgb(np.array([[4001]]))[0, 0], [4001 % 256, 4001 // 256, 0])


def test_synthetic_panoptic_set_is_real_coco_format(pan_root):
    js = json.loads((pan_root / "annotations/panoptic_val2017.json").read_text())
    assert {c["name"]: c["isthing"] for c in js["categories"]} == {
        "horse": 1, "coin": 1, "logo": 1, "brick": 0, "grass": 0, "gravel": 0, "moon": 0}
    d = CocoPanopticDataset(pan_root, "train2017")
    d.check()
    assert len(d) == 3 and d.thing_classes == [0, 1, 2] and d.stuff_classes == [3, 4, 5, 6]
    for i in range(len(d)):
        s = d[i]
        assert s.image.shape == (64, 80, 3)
        assert (s.masks.sum(0) == 1).all()  # the segments tile the image exactly once
        assert (s.labels < 3).sum() >= 1 and (s.labels >= 3).sum() >= 1  # things and stuff in every image
        assert len(set(s.labels[s.labels >= 3].tolist())) == (s.labels >= 3).sum()  # one segment per stuff class
        for m, lab in zip(s.masks, s.labels):
            assert (s.semantic[m] == lab).all()
            assert (s.panoptic[m, 0] == d.categories[lab].id).all()
    inst = CocoInstanceDataset(pan_root, "train2017")
    s0, p0 = inst[0], d[0]
    assert inst.class_names == ["horse", "coin", "logo"]
    things = p0.masks[p0.labels < 3]
    assert len(s0.masks) == len(things) and all((a == b).all() for a, b in zip(s0.masks, things))


def _edit_json(path, fn):
    js = json.loads(path.read_text())
    fn(js)
    path.write_text(json.dumps(js))


@pytest.mark.parametrize("case, match", [
    ("unknown_category", "category id 99, not among the categories"),
    ("missing_png", "PNG\\(s\\) missing"),
    ("missing_image", "image\\(s\\) missing"),
    ("id_not_listed", "not in its segments_info"),
    ("listed_not_in_png", "do not occur in the PNG"),
    ("size_mismatch", "but the JSON says image"),
    ("no_isthing", "needs 'isthing'"),
    ("not_json", "not valid JSON"),
    ("grey_png", "must be RGB"),
])
def test_panoptic_reader_errors(pan_root, tmp_path, case, match):
    from PIL import Image

    root = _copy(pan_root, tmp_path)
    jpath = root / "annotations/panoptic_val2017.json"
    png = root / "annotations/panoptic_val2017/000000000001.png"
    if case == "unknown_category":
        _edit_json(jpath, lambda js: js["annotations"][0]["segments_info"][0].update(category_id=99))
    elif case == "missing_png":
        png.unlink()
    elif case == "missing_image":
        (root / "val2017/000000000002.jpg").unlink()
    elif case == "id_not_listed":
        _edit_json(jpath, lambda js: js["annotations"][0]["segments_info"].pop())
    elif case == "listed_not_in_png":
        _edit_json(jpath, lambda js: js["annotations"][0]["segments_info"].append(
            {"id": 77777, "category_id": 1, "iscrowd": 0}))
    elif case == "size_mismatch":
        Image.fromarray(np.asarray(Image.open(png))[:-4]).save(png)
    elif case == "no_isthing":
        _edit_json(jpath, lambda js: js["categories"][0].pop("isthing"))
    elif case == "not_json":
        jpath.write_text("{oops")
    elif case == "grey_png":
        Image.open(png).convert("L").save(png)
    with pytest.raises(SegDataError, match=match) as e:
        CocoPanopticDataset(root, "val2017").check()
    assert "\n" not in str(e.value)


def test_instance_reader_errors(pan_root, tmp_path):
    root = _copy(pan_root, tmp_path)
    jpath = root / "annotations/instances_val2017.json"
    _edit_json(jpath, lambda js: js["annotations"][0].update(category_id=42))
    with pytest.raises(SegDataError, match="category id 42"):
        CocoInstanceDataset(root, "val2017")
    root = _copy(pan_root, tmp_path / "b")
    (root / "val2017/000000000001.jpg").unlink()
    with pytest.raises(SegDataError, match="missing from"):
        CocoInstanceDataset(root, "val2017")


def test_lsj_transform_and_collate(pan_root):
    d = CocoPanopticDataset(pan_root, "train2017")
    torch.manual_seed(0)
    tf = MaskTrainTransform((48, 40), "lsj", 0.5, 2.0)
    items = [tf(d[i]) for i in range(3)]
    for t in items:
        assert t["image"].shape == (3, 48, 40) and t["masks"].shape[1:] == (48, 40)
        assert len(t["masks"]) == len(t["labels"]) and t["masks"].flatten(1).any(1).all()
        assert t["masks"].sum(0).max() <= 1
    # no jitter, no flip: the masks are the reader's, as they were
    same = MaskTrainTransform((64, 80), "none", flip_prob=0.0)(d[0])
    np.testing.assert_array_equal(same["masks"].numpy(), d[0].masks)
    b = collate_masks(items)
    assert b["image"].shape == (3, 3, 48, 40) and len(b["masks"]) == 3


# ------------------------------------------------------------------ metrics
def _pairs(cat, inst):
    return torch.stack([torch.as_tensor(cat), torch.as_tensor(inst)], -1).long()


def test_pq_against_a_hand_computed_case_and_torchmetrics():
    """4x6 image. GT: thing 1 (two instances: A = cols 0-1, B = cols 4-5 of rows 0-1), stuff 5 everywhere else,
    one void pixel. Prediction: A exactly (IoU 1), B shifted so IoU = 2/6 (FN + FP), stuff mostly right."""
    cats = [Category(1, "obj", True), Category(5, "sky", False)]
    gc = torch.full((4, 6), 5)
    gi = torch.zeros(4, 6, dtype=torch.long)
    gc[:2, :2], gi[:2, :2] = 1, 1  # A: 4 px
    gc[:2, 4:], gi[:2, 4:] = 1, 2  # B: 4 px
    gc[3, 5] = -1  # void
    pc, pi = gc.clone(), gi.clone()
    pc[3, 5] = 5  # prediction on void: left out of the stuff union
    pc[:2, 4:], pi[:2, 4:] = 5, 0  # B missed ...
    pc[1:3, 3:5], pi[1:3, 3:5] = 1, 3  # ... and a predicted object (4 px) overlapping B by 1 px (IoU 1/7)
    m = PanopticQualityMeter(cats)
    m.update(_pairs(pc, pi), _pairs(gc, gi))
    # thing: TP A (IoU 1), FN B, FP the shifted object -> PQ = 1 / (1 + .5 + .5) = 0.5, SQ 1, RQ 0.5
    # stuff: GT 24-8-1 = 15 px; pred stuff = 24 - 4 (A) - 4 (new obj) = 16 px incl. 1 void px and 3 px of B;
    # intersection = 15 - 3 (new obj over GT stuff) = 12; union = 16 + 15 - 12 - 1 (void) = 18 -> IoU 2/3
    assert m.counts() == {1: (1.0, 1, 1, 1), 5: pytest.approx((12 / 18, 1, 0, 0))}
    r = m.compute()
    assert r["PQ_th"] == pytest.approx(50.0) and r["SQ_th"] == pytest.approx(100.0) and r["RQ_th"] == 50.0
    assert r["PQ_st"] == pytest.approx(100 * 12 / 18) and r["RQ_st"] == 100.0
    assert r["PQ"] == pytest.approx((50.0 + 100 * 12 / 18) / 2)

    # torchmetrics' PanopticQuality agrees (its void handling does not bite here)
    from torchmetrics.detection import PanopticQuality

    tm = PanopticQuality(things={1}, stuffs={5}, allow_unknown_preds_category=True)
    void = torch.tensor(tm.void_color)
    p, t = _pairs(pc, pi), _pairs(gc, gi)
    t[t[..., 0] < 0] = void
    assert float(tm(p[None], t[None])) == pytest.approx(r["PQ"] / 100)

    # ... but where a GT segment is left mostly unassigned, panopticapi counts a FN and torchmetrics does not
    m2 = PanopticQualityMeter(cats)
    empty = _pairs(torch.full((4, 6), -1), torch.zeros(4, 6))
    m2.update(empty, _pairs(gc, gi))
    assert m2.compute()["PQ"] == 0.0
    assert m2.counts()[1] == (0.0, 0, 0, 2)


def test_mask_ap_perfect_and_wrong_predictions():
    cats = [Category(1, "obj", True), Category(2, "bg", False)]
    gt = np.zeros((2, 32, 32), bool)
    gt[0, 2:12, 2:12] = True
    gt[1, 16:30, 10:28] = True
    perfect = MaskAPMeter(cats)
    perfect.update(1, gt, [0, 0], gt, [0, 0], [0.9, 0.8])
    assert perfect.compute()["AP"] == pytest.approx(100.0)
    wrong = MaskAPMeter(cats)
    wrong.update(1, gt, [0, 0], np.roll(gt, 12, axis=2), [0, 0], [0.9, 0.8])
    assert wrong.compute()["AP"] < 30
    nothing = MaskAPMeter(cats)
    nothing.update(1, gt, [0, 0], np.zeros((0, 32, 32), bool), [], [])
    assert nothing.compute()["AP"] == 0.0
