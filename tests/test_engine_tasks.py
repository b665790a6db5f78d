"""Every task through the one engine: a run killed with SIGKILL (in a subprocess, at a step after a mid-epoch
checkpoint) and resumed with ``--resume auto`` ends with bit-identical weights; two Gloo processes (DDP) end where
one process with the same global batch ends. Tiny deterministic CPU configs (classification has its own tests in
test_train_engine.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from focalnet.cli import main
from focalnet.engine.checkpoint import find_latest, load_checkpoint
from focalnet.engine.config import load_run_config
from focalnet.engine.loop import fit

pytest.importorskip("torchvision")
pytest.importorskip("pycocotools")

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}

KILLER = """
import os, signal, sys
from focalnet.engine.config import load_run_config
from focalnet.engine.loop import fit

cfg = load_run_config(sys.argv[1])
at = int(sys.argv[2])

def kill(event, state):
    if event == "step_end" and state["step"] == at:
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind, like a lost machine

fit(cfg, callbacks=[kill])
"""


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    from focalnet.data.coco import make_synthetic_coco

    root = tmp_path_factory.mktemp("coco")
    make_synthetic_coco(root, n_train=16, n_val=4, size=96, seed=0)
    return root


@pytest.fixture(scope="module")
def ade(tmp_path_factory):
    from focalnet.seg import write_synthetic_ade

    return write_synthetic_ade(tmp_path_factory.mktemp("ade") / "d", n_train=16, n_val=4, size=(64, 64), seed=0)


def _det(coco: Path, arch: str = "mask_rcnn") -> dict:
    det = (dict(rpn_batch_size_per_image=32, box_batch_size_per_image=32, rpn_pre_nms_top_n_train=100,
                rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50,
                box_detections_per_img=10)
           if arch == "mask_rcnn" else dict(detections_per_img=10, topk_candidates=100, score_thresh=0.001))
    return {
        "task": "detection",
        "model": {"arch": arch, "backbone": "focalnet_tiny_srf", "drop_path_rate": 0.1,
                  "backbone_overrides": {"embed_dim": 8, "depths": [1, 1, 1, 1]}, "fpn_channels": 16,
                  "min_size": [80, 96] if arch == "mask_rcnn" else [96], "max_size": 128, "box_head_dim": 32,
                  "mask_head_dims": [16], "anchor_sizes": [16, 32, 64, 128, 256], "detector": det},
        "data": {"synthetic": {"root": str(coco), "n_train": 16, "n_val": 4, "size": 96, "seed": 0},
                 "num_workers": 0, "hflip": 0.5},
        "optim": {"lr": 1e-3, "epochs": 2, "steps": [1], "warmup_iters": 3, "batch_size": 4},
        "eval_every": 100, "log_every": 1, "progress": False, "tensorboard": False, "device": "cpu",
    }


def _seg(ade: Path) -> dict:
    return {
        "task": "segmentation",
        "model": {"backbone": "focalnet_tiny_srf", "num_classes": 4, "channels": 16, "aux_channels": 8,
                  "dropout": 0.1, "backbone_kwargs": {"embed_dim": 8, "depths": [1, 1, 1, 1], "focal_windows": 3,
                                                       "drop_path_rate": 0.1}},
        "data": {"root": str(ade), "reduce_zero_label": False, "img_scale": [96, 48], "ratio_range": [0.75, 1.5],
                 "crop_size": [48, 48], "workers": 0, "check": False},
        "optim": {"max_iters": 8, "batch_size": 4, "lr": 1e-3, "warmup_iters": 2},
        "test": {"crop_size": [48, 48], "stride": [32, 32]},
        "eval_every_steps": 8, "log_every": 1, "progress": False, "tensorboard": False, "device": "cpu",
    }


def _write(cfg: dict, path: Path, **top) -> Path:
    path.write_text(yaml.safe_dump({**cfg, **top}))
    return path


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(find_latest(run_dir / "checkpoints"))["model"]


def _kill_and_resume(tmp_path: Path, recipe: dict, kill_at: int, expect_latest: int) -> tuple[int, int]:
    full_cfg = _write(recipe, tmp_path / "full.yaml", output_dir=str(tmp_path), name="full", save_every_steps=3)
    full = fit(load_run_config(full_cfg))
    cfg = _write(recipe, tmp_path / "killed.yaml", output_dir=str(tmp_path), name="killed", save_every_steps=3)
    proc = subprocess.run([sys.executable, "-c", KILLER, str(cfg), str(kill_at)], env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    run_dir = tmp_path / "killed"
    latest = find_latest(run_dir / "checkpoints")
    assert latest.name == f"checkpoint-{expect_latest:08d}.pt"  # the newest one before the kill, mid-epoch
    assert main(["train", "--out", str(run_dir), "--resume", "auto"]) == 0  # the saved config, nothing else
    a, b = _weights(full.run_dir), _weights(run_dir)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    steps = [(r.split('"step": ')[1].split(",")[0]) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    full_steps = [(r.split('"step": ')[1].split(",")[0]) for r in (full.run_dir / "metrics.jsonl").read_text()
                  .splitlines()]
    assert steps == full_steps  # no logged row repeated after the resume
    return full.steps, len(a)


def test_detection_killed_with_sigkill_resumes_bit_identically(coco, tmp_path):
    # 16 images / batch 4 = 4 steps per epoch, 2 epochs; checkpoints at 3 (mid-epoch), 4, 6 (mid-epoch); killed at 7
    steps, n = _kill_and_resume(tmp_path, _det(coco), kill_at=7, expect_latest=6)
    assert steps == 8 and n > 50


def test_segmentation_killed_with_sigkill_resumes_bit_identically(ade, tmp_path):
    steps, n = _kill_and_resume(tmp_path, _seg(ade), kill_at=5, expect_latest=4)
    assert steps == 8 and n > 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(cfg: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "focalnet", "train", "--config", str(cfg)]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _compare_params(single: Path, ddp: Path, names: list[str]) -> None:
    a, b = _weights(single), _weights(ddp)
    assert load_checkpoint(find_latest(ddp / "checkpoints"))["step"] == 2
    for k in names:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.slow
def test_detection_two_process_ddp_matches_one_process(coco, tmp_path):
    # RetinaNet normalises its losses per image, so 2 processes x 1 image == 1 process x 2 images
    recipe = _det(coco, "retinanet")
    recipe["model"]["drop_path_rate"] = 0.0
    top = dict(output_dir=str(tmp_path), max_steps=2)
    single = fit(load_run_config(_write(recipe, tmp_path / "s.yaml", name="single", **top),
                                 ["optim.batch_size=2"]))
    recipe["optim"]["batch_size"] = 1
    _torchrun(_write(recipe, tmp_path / "d.yaml", name="ddp", **top))
    model_params = [k for k in _weights(single.run_dir) if "num_batches_tracked" not in k]
    _compare_params(single.run_dir, tmp_path / "ddp", model_params)


@pytest.mark.slow
def test_segmentation_two_process_ddp_matches_one_process_with_accumulation(ade, tmp_path):
    # BatchNorm in the heads normalises per micro-batch: 2 processes x 2 images == 1 process x 2 images x 2 accum
    recipe = _seg(ade)
    recipe["model"]["dropout"] = 0.0
    recipe["model"]["backbone_kwargs"]["drop_path_rate"] = 0.0
    recipe["optim"]["batch_size"] = 2
    top = dict(output_dir=str(tmp_path), max_steps=2)
    single = fit(load_run_config(_write(recipe, tmp_path / "s.yaml", name="single", **top), ["optim.accum_steps=2"]))
    _torchrun(_write(recipe, tmp_path / "d.yaml", name="ddp", **top))
    from focalnet.engine.run import load_run

    params = [n for n, _ in load_run(single.run_dir).model.named_parameters()]  # BN running stats are per rank
    _compare_params(single.run_dir, tmp_path / "ddp", params)


@pytest.mark.slow
def test_fsdp2_two_processes_match_one_and_the_checkpoint_loads_single_process(tmp_path):
    """distributed=fsdp (FSDP2 fully_shard, Gloo on CPU): the same weights as one process with the same global
    batch; its checkpoint is sharded (torch.distributed.checkpoint: every rank wrote its own shard file), loads into
    a plain single-process model, and resumes both the sharded run and, resharded, a single-process one."""
    from focalnet.engine.checkpoint import is_sharded
    from focalnet.engine.run import load_run

    recipe = {"task": "classification", "device": "cpu", "progress": False, "tensorboard": False,
              "output_dir": str(tmp_path), "max_steps": 3, "log_every": 1,
              "model": {"kwargs": {"embed_dim": 8, "depths": [1, 1, 1, 1], "patch_size": 2}, "drop_path_rate": 0.0},
              "data": {"img_size": 16, "batch_size": 8, "limit_train": 64, "limit_val": 16},
              "optim": {"base_batch_size": 8}, "sched": {"epochs": 2, "warmup_epochs": 0.5}}
    single = fit(load_run_config(_write(recipe, tmp_path / "s.yaml", name="single")))
    recipe["data"]["batch_size"] = 4
    _torchrun(_write(recipe, tmp_path / "f.yaml", name="fsdp", distributed="fsdp"))
    ckpts = tmp_path / "fsdp" / "checkpoints"
    latest = find_latest(ckpts)
    assert latest.name == "checkpoint-00000003.dcp" and is_sharded(latest)
    files = sorted(p.name for p in latest.iterdir())
    assert files == [".metadata", "__0_0.distcp", "__1_0.distcp", "engine.pt"], files  # one shard file per rank
    assert not [p for p in ckpts.iterdir() if ".tmp-" in p.name]  # the temp folder was renamed into place
    a, b = _weights(single.run_dir), _weights(tmp_path / "fsdp")  # b: assembled from both shards, one process
    assert load_checkpoint(latest)["step"] == 3 and set(b) == set(a)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
    run = load_run(tmp_path / "fsdp", device="cpu")  # a plain model, one process
    assert all(type(p) is torch.nn.Parameter for p in run.model.parameters())
    torch.testing.assert_close(run.model.state_dict()["head.weight"], a["head.weight"], rtol=1e-4, atol=1e-5)
    _torchrun(_write(recipe, tmp_path / "f2.yaml", name="fsdp", distributed="fsdp", max_steps=5, resume="auto"))
    assert load_checkpoint(find_latest(ckpts))["step"] == 5
    assert [p.name for p in sorted(ckpts.glob("checkpoint-*"))] == ["checkpoint-00000003.dcp",
                                                                     "checkpoint-00000005.dcp"]  # keep-last-2
    _torchrun(_write(recipe, tmp_path / "g.yaml", name="gathered", distributed="fsdp", fsdp_checkpoint="full"))
    assert find_latest(tmp_path / "gathered" / "checkpoints").name == "checkpoint-00000003.pt"  # one gathered file
    torch.testing.assert_close(_weights(tmp_path / "gathered"), b)
    # resharded: the 2-process checkpoint of step 3 continued by one process reaches the same weights at step 5
    recipe["data"]["batch_size"] = 8
    one = fit(load_run_config(_write(recipe, tmp_path / "o.yaml", name="one", max_steps=5, resume=str(latest))))
    assert one.steps == 5
    c, d = _weights(one.run_dir), _weights(tmp_path / "fsdp")
    for k in c:
        torch.testing.assert_close(d[k], c[k], rtol=1e-4, atol=1e-5, msg=k)

