"""Short detection training runs on the synthetic COCO set: the loss falls, held-out mAP beats an untrained model
(our concrete "chance": the same network and seed before training, scored by pycocotools), checkpoints round-trip,
and the CLI trains, evaluates and draws."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("pycocotools")
pytest.importorskip("torchvision")

from focalnet.cli import main  # noqa: E402
from focalnet.data.coco import make_synthetic_coco  # noqa: E402
from focalnet.det.config import DetConfig  # noqa: E402
from focalnet.det.dataset import CocoDetection, DatasetError  # noqa: E402
from focalnet.det.evaluation import build_model, evaluate  # noqa: E402
from focalnet.engine.loop import fit  # noqa: E402
from focalnet.engine.run import load_run  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_coco")
    make_synthetic_coco(root, n_train=32, n_val=12, size=128, seed=0)
    return root


def _cfg(data, out, arch="mask_rcnn", **optim) -> dict:
    """A tiny but complete recipe: narrow FocalNet, small heads, 128 px, few RoI samples (2 CPU cores)."""
    det = dict(rpn_batch_size_per_image=64, box_batch_size_per_image=64, rpn_pre_nms_top_n_train=300,
               rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=100,
               box_detections_per_img=20)
    if arch != "mask_rcnn":
        # focal-loss heads start at a 0.01 prior: after a few steps scores are still under the default 0.05
        det = dict(detections_per_img=20, topk_candidates=200, score_thresh=0.001)
    return {
        "task": "detection",
        "model": {"arch": arch, "backbone": "focalnet_tiny_srf", "drop_path_rate": 0.0,
                  "backbone_overrides": {"embed_dim": 16, "depths": [1, 1, 1, 1]}, "fpn_channels": 32,
                  "min_size": [128], "max_size": 160, "box_head_dim": 64, "mask_head_dims": [32, 32],
                  "anchor_sizes": [16, 32, 64, 128, 256] if arch != "fcos" else None, "detector": det},
        "data": {"synthetic": {"root": str(data), "n_train": 32, "n_val": 12, "size": 128, "seed": 0},
                 "num_workers": 0},
        "optim": {"lr": 1e-3, "epochs": 4, "steps": [100], "warmup_iters": 4, "batch_size": 4, **optim},
        "output_dir": str(out.parent), "name": out.name, "eval_every": 100, "log_every": 1, "progress": False,
        "tensorboard": False,
    }


def _first_last(history, k=5):  # one train record per step (log_every=1)
    losses = [h["loss"] for h in history]
    return float(np.mean(losses[:k])), float(np.mean(losses[-k:]))


def test_mask_rcnn_short_training_learns(data, tmp_path):
    cfg = DetConfig.from_dict(_cfg(data, tmp_path / "run"))
    torch.manual_seed(cfg.seed)
    untrained = build_model(cfg.model, 3)  # the same initialisation train() starts from (same seed)
    val = CocoDetection(data / "images" / "val", data / "annotations" / "instances_val.json", masks=False)
    chance = evaluate(untrained, val)

    result = fit(cfg)
    assert result.steps == 32 and len(result.history) == 32
    first, last = _first_last(result.history)
    assert last < 0.75 * first, (first, last)
    m = result.metrics
    assert m["images"] == 12
    assert m["bbox"]["mAP"] > chance["bbox"]["mAP"] + 0.02, (m["bbox"], chance["bbox"])
    assert m["segm"]["mAP"] > chance["segm"]["mAP"] + 0.02, (m["segm"], chance["segm"])
    assert m["bbox"]["mAP50"] > 0.1

    # the checkpoint rebuilds the same model: evaluation reproduces the training run's final numbers
    run = load_run(result.checkpoint)
    assert run.cfg == cfg and [c["name"] for c in run.task.categories] == ["horse", "coin", "logo"]
    again = evaluate(run.model, val)
    assert again["bbox"]["mAP"] == pytest.approx(m["bbox"]["mAP"], abs=1e-6)
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["bbox"]["mAP"] == pytest.approx(m["bbox"]["mAP"]) and saved["task"] == "detection"


def test_retinanet_short_training_lowers_loss_and_evaluates(data, tmp_path):
    cfg = DetConfig.from_dict(_cfg(data, tmp_path / "run", arch="retinanet", epochs=2))
    result = fit(cfg)
    first, last = _first_last(result.history, k=4)
    assert last < 0.9 * first, (first, last)
    m = result.metrics
    assert "segm" not in m and 0.0 <= m["bbox"]["mAP"] <= 1.0 and m["detections"] > 0


def test_lr_schedule_warmup_and_steps():
    from focalnet.det.evaluation import lr_lambda

    f = lr_lambda(warmup_iters=10, warmup_ratio=0.001, steps=[9, 11], gamma=0.1, iters_per_epoch=100)
    assert f(0) == pytest.approx(0.001) and f(5) == pytest.approx(0.5005) and f(10) == 1.0
    assert f(899) == 1.0 and f(900) == pytest.approx(0.1) and f(1100) == pytest.approx(0.01)


def test_empty_predictions_and_empty_ground_truth(data, tmp_path, caplog):
    cfg = DetConfig.from_dict(_cfg(data, tmp_path))
    cfg.model.detector["box_score_thresh"] = 1.01  # nothing can pass: the model predicts nothing
    model = build_model(cfg.model, 3)
    val = CocoDetection(data / "images" / "val", data / "annotations" / "instances_val.json", masks=False)
    with caplog.at_level(logging.WARNING):
        m = evaluate(model, val)
    assert m["detections"] == 0 and m["bbox"]["mAP"] == 0.0 and m["segm"]["mAP"] == 0.0
    assert "the model made no predictions on 12 images" in caplog.text

    blob = json.loads((data / "annotations" / "instances_val.json").read_text())
    blob["annotations"] = []
    (tmp_path / "empty.json").write_text(json.dumps(blob))
    empty = CocoDetection(data / "images" / "val", tmp_path / "empty.json", masks=False)
    with pytest.raises(DatasetError, match="mAP is undefined"):
        evaluate(model, empty)


def test_cli_train_eval_predict(data, tmp_path, capsys):
    from PIL import Image

    recipe = _cfg(data, tmp_path / "run")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(tmp_path / "recipe.yaml"), "optim.epochs=1", "max_steps=3"]) == 0
    out = capsys.readouterr().out
    assert "trained 3 steps" in out and "bbox mAP" in out and "segm mAP" in out
    run_dir = tmp_path / "run"
    assert (run_dir / "checkpoints" / "checkpoint-00000003.pt").is_file() and (run_dir / "config.yaml").is_file()

    assert main(["eval", "--checkpoint", str(run_dir), "--json", str(tmp_path / "m.json")]) == 0
    assert "12 images" in capsys.readouterr().out
    assert set(json.loads((tmp_path / "m.json").read_text())) >= {"bbox", "segm"}

    img = data / "images" / "val" / "000000.png"
    assert main(["predict", str(img), "--checkpoint", str(run_dir), "--out", str(tmp_path / "p"), "--score", "0"]) == 0
    assert "detections (" in capsys.readouterr().out
    drawn = np.array(Image.open(tmp_path / "p" / "000000_det.png"))
    original = np.array(Image.open(img))
    # enlarged (score labels legible at 100 %) with a legend strip below
    h, w = original.shape[:2]
    assert drawn.shape[1] % w == 0 and drawn.shape[1] >= 384 and drawn.shape[0] > h * drawn.shape[1] // w

    assert main(["predict", str(img), "--checkpoint", str(run_dir), "--out", str(tmp_path / "q"),
                 "--score", "1.01"]) == 2  # a score above 1 is a usage error now
    assert "--score must be in [0, 1]" in capsys.readouterr().err
    assert main(["predict", str(img), "--checkpoint", str(run_dir), "--out", str(tmp_path / "q"), "--score", "1"]) == 0
    assert "no detections with score >= 1.0" in capsys.readouterr().out
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "q" / "000000_det.png")), original)

    # the old spelling still works and says the new one
    assert main(["detect", "eval", "--checkpoint", str(run_dir), "--json", str(tmp_path / "m2.json")]) == 0
    assert "is now: focalnet eval --checkpoint" in capsys.readouterr().err


def test_cli_bad_input_messages(data, tmp_path, capsys):
    not_ckpt = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(1)}, not_ckpt)
    assert main(["eval", "--checkpoint", str(not_ckpt)]) == 1
    assert "not a focalnet training checkpoint" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.pt")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("task: detection\noptim: {learning_rate: 1}\n")
    assert main(["train", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown config key 'optim.learning_rate'" in capsys.readouterr().err
    assert main(["train", "task=detection", "data.train_ann=" + str(tmp_path / "none.json"),
                 "data.train_images=" + str(tmp_path), f"output_dir={tmp_path}"]) == 1
    assert "none.json does not exist" in capsys.readouterr().err
    assert main(["train", "task=detection", "model.arch=yolo", f"output_dir={tmp_path}"]) == 2
    assert "model.arch='yolo' is not one of" in capsys.readouterr().err
