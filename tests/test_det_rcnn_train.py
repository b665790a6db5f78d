"""Cascade Mask R-CNN, ATSS and Sparse R-CNN train on the engine: a short run on the synthetic COCO set lowers the
loss and ends above the untrained network's held-out mAP (same seed, same pycocotools scoring), images without
objects included; the run folder evaluates through ``focalnet eval``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("pycocotools")
pytest.importorskip("torchvision")

from focalnet.cli import main  # noqa: E402
from focalnet.data.coco import make_synthetic_coco  # noqa: E402
from focalnet.det.config import DetConfig  # noqa: E402
from focalnet.det.dataset import CocoDetection  # noqa: E402
from focalnet.det.evaluation import build_model, evaluate  # noqa: E402
from focalnet.engine.loop import fit  # noqa: E402

HEADS = {
    "cascade_mask_rcnn": dict(box_convs=1, box_norm="gn", rpn_batch_size_per_image=64, box_batch_size_per_image=64,
                              score_thresh=0.001,
                              rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=100,
                              rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=100),
    # focal-loss heads start at a 0.01 prior: after a few steps scores are still under the default 0.05
    "atss": dict(gn_groups=8, score_thresh=0.001, topk_candidates=200),
    "sparse_rcnn": dict(num_proposals=30, num_stages=2, num_heads=4, ffn_channels=64, feat_channels=16),
}
STEPS = {"cascade_mask_rcnn": 32, "atss": 24, "sparse_rcnn": 32}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_coco")
    make_synthetic_coco(root, n_train=32, n_val=12, size=128, seed=0)
    # one training image loses its objects: with keep_empty it is trained on as pure background
    ann = root / "annotations" / "instances_train.json"
    d = json.loads(ann.read_text())
    first = d["images"][0]["id"]
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] != first]
    ann.write_text(json.dumps(d))
    return root


def _cfg(data, out, arch: str) -> dict:
    return {
        "task": "detection",
        "model": {"arch": arch, "backbone": "focalnet_tiny_srf", "drop_path_rate": 0.0,
                  "backbone_overrides": {"embed_dim": 16, "depths": [1, 1, 1, 1]}, "fpn_channels": 32,
                  "min_size": [128], "max_size": 160, "box_head_dim": 64, "mask_head_dims": [16, 16],
                  "anchor_sizes": [16, 32, 64, 128, 256] if arch == "cascade_mask_rcnn" else [32, 64, 128, 256, 512],
                  "detector": HEADS[arch]},
        "data": {"synthetic": {"root": str(data), "n_train": 32, "n_val": 12, "size": 128, "seed": 0},
                 "num_workers": 0, "keep_empty": True},
        "optim": {"lr": 1e-3, "epochs": 100, "steps": [100], "warmup_iters": 4, "batch_size": 4,
                  "clip_grad": 1.0 if arch == "sparse_rcnn" else None},
        "output_dir": str(out.parent), "name": out.name, "eval_every": 1000, "log_every": 1, "progress": False,
        "tensorboard": False, "max_steps": STEPS[arch],
    }


@pytest.mark.parametrize("arch", sorted(HEADS))
def test_short_training_beats_the_untrained_network(data, tmp_path, arch):
    cfg = DetConfig.from_dict(_cfg(data, tmp_path / "run", arch))
    torch.manual_seed(cfg.seed)
    untrained = build_model(cfg.model, 3)  # the same initialisation training starts from (same seed)
    val = CocoDetection(data / "images" / "val", data / "annotations" / "instances_val.json", masks=False)
    chance = evaluate(untrained, val)

    result = fit(cfg)
    assert result.steps == STEPS[arch]
    losses = [h["loss"] for h in result.history]
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses
    m = result.metrics
    assert m["images"] == 12
    assert m["bbox"]["mAP"] > chance["bbox"]["mAP"] + 0.005, (m["bbox"], chance["bbox"])
    assert m["bbox"]["mAP50"] > chance["bbox"]["mAP50"], (m["bbox"], chance["bbox"])
    if arch == "cascade_mask_rcnn":
        assert m["segm"]["mAP"] > chance["segm"]["mAP"], (m["segm"], chance["segm"])

    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--json", str(out)]) in (0, None)
    saved = json.loads(out.read_text())
    bbox = saved.get("bbox") or saved.get("metrics", {}).get("bbox")
    assert bbox["mAP"] == pytest.approx(m["bbox"]["mAP"], abs=1e-6)
