"""DINO on the shared engine: recipes, a short CPU run on the synthetic set, evaluation and drawn predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from focalnet.engine.config import load_run_config
from focalnet.utils.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
RECIPES = ["dino_focalnet_large_fl4_5scale", "dino_focalnet_large_fl3_4scale", "dino_focalnet_large_fl4_5scale_hres",
           "dino_focalnet_synthetic_demo"]


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_load_validate_and_name_their_command(name):
    path = REPO / "configs" / "detection" / f"{name}.yaml"
    cfg = load_run_config(path)
    assert cfg.task == "dino"
    head = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    assert f"focalnet train --config configs/detection/{name}.yaml" in head
    from focalnet.det.dino import DinoConfig

    dc = DinoConfig.from_args(cfg.model.args)
    if name.startswith("dino_focalnet_large"):
        assert cfg.optim.lr == 1e-4 and cfg.optim.lr_backbone == 1e-5 and cfg.optim.weight_decay == 1e-4
        assert cfg.optim.clip_max_norm == 0.1 and cfg.optim.batch_size == 2 and cfg.optim.epochs == 12
        assert (dc.num_feature_levels, dc.return_interm_indices) == ((4, [1, 2, 3]) if "4scale" in name
                                                                      else (5, [0, 1, 2, 3]))
        assert dc.num_queries == 900 and dc.dn_number == 100 and dc.num_classes == 91
    if name.endswith("hres"):
        assert max(cfg.data.scales) == 1200 and cfg.data.max_size == 2000 and cfg.data.eval_size == 1200


def test_bad_dino_options_are_config_errors():
    path = REPO / "configs" / "detection" / "dino_focalnet_synthetic_demo.yaml"
    with pytest.raises(ConfigError, match="hidden_dim"):
        from focalnet.tasks.dino import DinoTask

        DinoTask.validate_config(load_run_config(path, ["model.args.hidden_dim=128"]))
    with pytest.raises(ConfigError, match="optim.lr"):
        DinoTask.validate_config(load_run_config(path, ["optim.lr=0"]))


def test_short_cpu_run_learns_evaluates_and_draws(tmp_path, monkeypatch):
    """30 steps on 8 synthetic images (evaluated on those images: a check that the whole DINO pipeline learns,
    not a held-out score): bbox mAP must rise at least 0.02 above the same network before training."""
    from focalnet.cli import main
    from focalnet.data.coco import make_synthetic_coco
    from focalnet.engine.task import Context
    from focalnet.tasks.dino import DinoTask

    monkeypatch.chdir(tmp_path)
    p = make_synthetic_coco(tmp_path / "syn", 8, 2, 96, 0)
    over = ["data.synthetic=null", f"data.train_images={p['train_images']}", f"data.train_ann={p['train_ann']}",
            f"data.val_images={p['train_images']}", f"data.val_ann={p['train_ann']}", "optim.batch_size=4",
            "optim.lr=5e-4", "optim.lr_backbone=5e-4", "optim.epochs=15", "optim.lr_drop=100", "eval_every=100",
            "log_every=1", "progress=false", "tensorboard=false", f"output_dir={tmp_path}/runs", "data.scales=[96]",
            "data.scales2_resize=[96]", "data.scales2_crop=[80,96]", "data.eval_size=96"]
    cfg_path = str(REPO / "configs" / "detection" / "dino_focalnet_synthetic_demo.yaml")
    task = DinoTask(load_run_config(cfg_path, over))
    _, val = task.build_datasets()
    torch.manual_seed(0)
    with torch.no_grad():
        before = task.evaluate(task.build_model().eval(), val, Context(torch.device("cpu")))["bbox"]["mAP"]

    assert main(["train", "--config", cfg_path, *over]) == 0
    run = tmp_path / "runs" / "dino_synthetic_demo"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert len(train) == 30 and all(torch.isfinite(torch.tensor(r["loss"])) for r in train)
    assert {"loss_ce", "loss_bbox_dn", "loss_giou"} <= set(train[0])
    assert main(["eval", "--checkpoint", str(run), "--json", str(tmp_path / "e.json")]) == 0
    metrics = json.loads((tmp_path / "e.json").read_text())
    assert metrics["images"] == 8 and metrics["bbox"]["mAP"] >= before + 0.02, (before, metrics["bbox"])
    img = Path(p["train_images"]) / "000000.png"
    assert main(["predict", str(img), "--checkpoint", str(run), "--out", str(tmp_path / "pred"), "--score", "0"]) == 0
    assert (tmp_path / "pred" / "000000_dino.png").is_file()


def test_pretrained_backbone_and_dino_weights_load_into_the_task_model(tmp_path):
    from focalnet.det.dino import to_original_state_dict
    from focalnet.models.focalnet import FocalNet
    from focalnet.tasks.dino import DinoTask
    from focalnet.weights.loading import CheckpointError

    cfg_path = REPO / "configs" / "detection" / "dino_focalnet_synthetic_demo.yaml"
    kw = dict(embed_dim=32, depths=[1, 1, 2, 1], focal_levels=[2] * 4, focal_windows=[3] * 4)
    cls = FocalNet(num_classes=10, **kw)
    torch.save({"model": cls.state_dict()}, tmp_path / "cls.pth")
    task = DinoTask(load_run_config(cfg_path, [f"model.pretrained={tmp_path / 'cls.pth'}"]))
    model = task.build_model()
    w = model.backbone.body.layers[2].blocks[0].modulation.f.weight
    assert torch.equal(w, cls.layers[2].blocks[0].modulation.f.weight)
    # a FocalNet-DINO file in the original layout starts a run; the structure must match the recipe's
    import argparse

    args = dict(task._resolved["dino_args"], backbone="focalnet_L_384_22k_fl4")
    torch.save({"model": to_original_state_dict(model), "args": argparse.Namespace(**args)}, tmp_path / "d.pth")
    with pytest.raises(CheckpointError, match="4-scale"):
        DinoTask(load_run_config(cfg_path, [f"model.weights={tmp_path / 'd.pth'}",
                                            "model.args.num_feature_levels=5"])).build_model()
