"""End to end on the synthetic ADE20K-layout set: `focalnet train | eval | predict` (task: segmentation), tiny model.

A short run must lower the loss and reach, on held-out images, an mIoU above chance, defined as the better of
(a) predicting background everywhere and (b) the same model before training, both scored by our evaluator.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from focalnet.cli import main
from focalnet.engine.run import load_run
from focalnet.seg import ConfusionMatrix, SegConfig, build_segmentor, evaluate, write_synthetic_ade
from focalnet.seg.evaluation import make_dataset

ITERS = 40
CONFIG = f"""
task: segmentation
model:
  backbone: focalnet_tiny_srf
  backbone_kwargs: {{embed_dim: 16, depths: [1, 1, 1, 1], focal_windows: 3, drop_path_rate: 0.0}}
  num_classes: 4
  channels: 32
  aux_channels: 16
data:
  reduce_zero_label: false
  class_names: [background, horse, coin, logo]
  img_scale: [128, 64]
  ratio_range: [0.75, 1.5]
  crop_size: [64, 64]
  workers: 0
optim:
  max_iters: {ITERS}
  batch_size: 4
  lr: 1.0e-3
  warmup_iters: 5
test:
  crop_size: [48, 48]
  stride: [32, 32]
  aug_ratios: [1.0, 1.5]
eval_every_steps: {ITERS}
save_every_steps: {ITERS}
log_every: 1
device: cpu
progress: false
tensorboard: false
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seg")
    data = write_synthetic_ade(tmp / "data", n_train=48, n_val=12, size=(64, 64), seed=0)
    cfg = tmp / "tiny.yaml"
    cfg.write_text(CONFIG)
    rc = main(["train", "--config", str(cfg), f"data.root={data}", "--out", str(tmp / "run")])
    assert rc == 0
    return tmp, data, cfg


def _eval_json(tmp, *extra) -> dict:
    out = tmp / f"metrics{len(extra)}.json"
    assert main(["eval", "--checkpoint", str(tmp / "run"), "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def _history(run_dir) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "train"]


def test_short_training_lowers_the_loss(run):
    tmp, _, _ = run
    hist = _history(tmp / "run")
    assert len(hist) == ITERS and all(np.isfinite(h["loss"]) for h in hist)
    first, last = np.mean([h["loss"] for h in hist[:5]]), np.mean([h["loss"] for h in hist[-5:]])
    assert last < 0.9 * first, (first, last)  # measured: 1.92 -> 1.57
    assert hist[0]["lr"] < hist[5]["lr"]  # warm-up, then poly decay
    assert hist[-1]["lr"] < hist[5]["lr"]
    assert {"loss_decode", "loss_aux"} <= set(hist[0])


def test_heldout_miou_beats_chance(run):
    tmp, data, cfg_path = run
    m = _eval_json(tmp)
    from focalnet.seg import load_config

    cfg = load_config(cfg_path, [f"data.root={data}"])
    val = make_dataset(cfg, "val")
    background = ConfusionMatrix(4)
    for i in range(len(val)):
        _, lab = val.load(i)
        background.update(torch.zeros(lab.shape, dtype=torch.long), torch.from_numpy(lab))
    torch.manual_seed(cfg.seed)
    untrained = evaluate(build_segmentor(cfg.model), val, cfg)
    chance = max(background.compute()["mIoU"], untrained["mIoU"])
    assert m["mIoU"] > chance + 5, (m["mIoU"], chance)
    assert m["aAcc"] > 0 and m["images"] == 12 and set(m["IoU"]) == {"background", "horse", "coin", "logo"}


def test_checkpoint_reloads_to_the_same_metrics(run):
    tmp, data, _ = run
    r = load_run(tmp / "run")
    assert r.step == ITERS and r.cfg.model.num_classes == 4 and r.cfg.task == "segmentation"
    m = evaluate(r.model, make_dataset(r.cfg, "val"), r.cfg)
    assert m["mIoU"] == pytest.approx(_eval_json(tmp)["mIoU"])
    assert (tmp / "run" / "checkpoints" / "best.pt").is_file() and (tmp / "run" / "curves.png").is_file()


def test_resume_continues_from_the_checkpoint(run, tmp_path):
    tmp, data, cfg = run
    out = tmp_path / "resumed"
    assert main(["train", "--out", str(out), "--resume", str(tmp / "run"), f"optim.max_iters={ITERS + 3}",
                 f"save_every_steps={ITERS + 3}"]) == 0
    hist = _history(out)
    assert [h["step"] for h in hist] == [ITERS + 1, ITERS + 2, ITERS + 3]
    assert load_run(out).step == ITERS + 3


def test_sliding_window_and_multiscale_flip_evaluation(run):
    tmp, _, _ = run
    slide = _eval_json(tmp, "test.mode=slide")
    aug = _eval_json(tmp, "--aug-test", "test.mode=whole")
    for m in (slide, aug):
        assert 0 < m["mIoU"] <= 100 and 0 < m["aAcc"] <= 100
    assert aug["aug"] is True


def test_predict_writes_colour_mask_and_overlay(run, capsys):
    tmp, data, _ = run
    imgs = sorted((data / "images/validation").glob("*.jpg"))[:2]
    out = tmp / "pred"
    assert main(["predict", *map(str, imgs), "--checkpoint", str(tmp / "run"), "--out", str(out)]) == 0
    for p in imgs:
        mask = Image.open(out / f"{p.stem}_mask.png")
        assert mask.mode == "P" and mask.size == Image.open(p).size
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 1, 2, 3}
        overlay = Image.open(out / f"{p.stem}_overlay.png")
        assert overlay.mode == "RGB" and overlay.size == mask.size
    assert "background" in capsys.readouterr().out


def test_old_spelling_still_works_and_prints_the_new_one(run, capsys):
    tmp, data, _ = run
    out = tmp / "m_old.json"
    assert main(["segment", "eval", "--checkpoint", str(tmp / "run"), "--json", str(out)]) == 0
    assert "is now: focalnet eval --checkpoint" in capsys.readouterr().err
    assert json.loads(out.read_text())["images"] == 12


def test_cli_reports_bad_input_clearly(run, tmp_path, capsys):
    tmp, data, cfg = run
    ckpt = str(tmp / "run")
    assert main(["eval", "--checkpoint", str(tmp_path / "none.pt")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["eval", "--checkpoint", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.pt" in err and err.count("\n") == 1
    typo = tmp_path / "typo.yaml"
    typo.write_text(cfg.read_text().replace("warmup_iters", "warmup_iter"))
    assert main(["train", "--config", str(typo), f"data.root={data}", "--out", str(tmp_path / "r")]) == 2
    assert "unknown config key 'optim.warmup_iter'" in capsys.readouterr().err
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(data, broken)
    victim = sorted((broken / "annotations/training").glob("*.png"))[-1]
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(victim)
    assert main(["train", "--config", str(cfg), f"data.root={broken}", "--out", str(tmp_path / "r")]) == 1
    assert f"mask {victim.name} is 10x10 but image" in capsys.readouterr().err  # found before any training
    assert not (tmp_path / "r" / "checkpoints").exists()
    assert main(["eval", "--checkpoint", ckpt, f"data.root={tmp_path / 'nowhere'}"]) == 1
    assert "data root not found" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "no.jpg"), "--checkpoint", ckpt, "--out", str(tmp_path)]) == 1
    assert "no.jpg" in capsys.readouterr().out
    assert main(["eval", "--checkpoint", ckpt, "model.num_classes=5"]) == 2
    assert "model.num_classes: the model of a checkpoint cannot change" in capsys.readouterr().err


def test_all_ignored_validation_set_is_an_error_not_a_number(run, tmp_path):
    tmp, data, _ = run
    root = write_synthetic_ade(tmp_path / "d", 1, 2, (48, 48), seed=5)
    for p in (root / "annotations/validation").glob("*.png"):
        Image.fromarray(np.full((48, 48), 255, np.uint8)).save(p)
    r = load_run(tmp / "run", [f"data.root={root}"])
    assert isinstance(r.cfg, SegConfig)
    with pytest.raises(ValueError, match="no labelled pixels"):
        evaluate(r.model, make_dataset(r.cfg, "val"), r.cfg)
