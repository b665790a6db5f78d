"""The engine end to end on tiny CPU runs: exact resume, DDP == single process, accumulation, faults, fine-tuning."""

from __future__ import annotations

import errno
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from focalnet.train import (
    CheckpointSaveError,
    NonFiniteLossError,
    config_to_dict,
    find_latest,
    load_checkpoint,
    load_config,
    train,
)

TINY = [
    "model.kwargs={embed_dim: 8, depths: [1, 1, 1, 1], patch_size: 2}",
    "data.img_size=16",
    "data.batch_size=8",
    "data.limit_train=64",
    "data.limit_val=40",
    "sched.epochs=2",
    "sched.warmup_epochs=0.5",
    "optim.base_batch_size=8",
    "log_every=2",
    "progress=false",
    "tensorboard=false",
]


def _cfg(tmp_path, name, *extra):
    return load_config(overrides=[*TINY, f"output_dir={tmp_path}", f"name={name}", *extra])


def _weights(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


class _Killed(Exception):
    pass


def _kill_at(step):
    def cb(event, state):
        if event == "step_end" and state["step"] == step:
            raise _Killed(f"killed at step {step}")

    return cb


def test_killed_run_resumes_to_identical_weights(tmp_path):
    # Randomness everywhere it can be: drop path, random-resized crops, random erasing, mixup/cutmix.
    extra = ["model.drop_path_rate=0.2", "aug.scale=[0.5,1.0]", "aug.reprob=0.5", "aug.mixup=0.8", "aug.cutmix=1.0",
             "save_every_steps=5"]
    full = train(_cfg(tmp_path, "full", *extra))
    assert full.steps == 16 and full.checkpoint.name == "checkpoint-00000016.pt"

    cfg = _cfg(tmp_path, "killed", *extra)
    with pytest.raises(_Killed):
        train(cfg, callbacks=[_kill_at(13)])  # in epoch 2; the newest checkpoint is step 10 (its micro-batch 2)
    assert find_latest(cfg.run_dir / "checkpoints").name == "checkpoint-00000010.pt"
    cfg.resume = "auto"
    resumed = train(cfg)
    assert resumed.steps == 16
    a, b = _weights(full.checkpoint), _weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    ck = load_checkpoint(resumed.checkpoint)
    assert {"model", "optimizer", "scheduler", "scaler", "ema", "epoch", "step", "rng", "config", "meta"} <= set(ck)
    assert ck["config"] == config_to_dict(cfg)
    assert (cfg.run_dir / "checkpoints" / "config.yaml").is_file()


def test_accumulation_equals_a_larger_batch(tmp_path):
    extra = ["sched.epochs=1", "model.drop_path_rate=0.0"]  # per-sample drop path draws differ with batch size
    big = train(_cfg(tmp_path, "big", *extra, "data.batch_size=8"))
    acc = train(_cfg(tmp_path, "acc", *extra, "data.batch_size=4", "optim.accum_steps=2"))
    a, b = _weights(big.checkpoint), _weights(acc.checkpoint)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path):
    extra = ["sched.epochs=1", "model.drop_path_rate=0.0", "aug.scale=[0.5,1.0]", "device=cpu"]
    single = train(_cfg(tmp_path, "single", *extra, "data.batch_size=8"))
    cfg = _cfg(tmp_path, "ddp", *extra, "data.batch_size=4")
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text(yaml.safe_dump(config_to_dict(cfg)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "focalnet.cli", "train", "--config", str(cfg_file)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp_ckpt = find_latest(cfg.run_dir / "checkpoints")
    assert ddp_ckpt.name == single.checkpoint.name  # same number of optimizer steps
    a, b = _weights(single.checkpoint), _weights(ddp_ckpt)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
    assert len(load_checkpoint(ddp_ckpt)["rng"]) == 2  # one RNG state per rank


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    def poison(event, state):
        if event == "step_end" and state["step"] == 3:
            with torch.no_grad():
                state["model"].head.weight.fill_(float("nan"))

    cfg = _cfg(tmp_path, "nan", "save_every_steps=2")
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1, step 4.*checkpoint-00000002\.pt"):
        train(cfg, callbacks=[poison])
    last = find_latest(cfg.run_dir / "checkpoints")
    assert last.name == "checkpoint-00000002.pt"
    assert all(torch.isfinite(v).all() for v in _weights(last).values())


def test_full_disk_while_training_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from focalnet.engine import checkpoint as ck

    real, calls = ck._write, []

    class FullDisk(io.RawIOBase):  # takes 1000 bytes, then ENOSPC, as the kernel does
        def __init__(self, fh):
            self.fh, self.room = fh, 1000

        def writable(self):
            return True

        def write(self, b):
            if len(b) > self.room:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.room -= len(b)
            return self.fh.write(b)

    def flaky(obj, fh):
        calls.append(1)
        real(obj, FullDisk(fh) if len(calls) == 2 else fh)  # torch turns the ENOSPC into a RuntimeError

    monkeypatch.setattr(ck, "_write", flaky)
    cfg = _cfg(tmp_path, "full_disk", "save_every_steps=2")
    with pytest.raises(CheckpointSaveError, match="disk full while saving .*previous checkpoint kept: .*"
                       "checkpoint-00000002.pt"):
        train(cfg)
    files = sorted(p.name for p in (cfg.run_dir / "checkpoints").iterdir())
    assert files == ["checkpoint-00000002.pt", "config.yaml"]
    load_checkpoint(cfg.run_dir / "checkpoints" / files[0])


def test_bf16_ema_channels_last_smoke(tmp_path):
    r = train(_cfg(tmp_path, "amp", "amp=bf16", "ema=true", "ema_decay=0.5", "channels_last=true",
                   "max_steps=3"))
    assert r.stopped_early and r.steps == 3
    ck = load_checkpoint(r.checkpoint)
    assert ck["ema"] is not None and ck["step"] == 3
    assert not torch.equal(ck["ema"]["head.weight"], ck["model"]["head.weight"])


def test_fp16_uses_a_grad_scaler_that_is_checkpointed_and_resumed(tmp_path):
    cfg = _cfg(tmp_path, "fp16", "amp=fp16", "max_steps=2")
    r = train(cfg)
    scaler = load_checkpoint(r.checkpoint)["scaler"]
    assert scaler["scale"] > 0 and scaler["_growth_tracker"] == 2
    cfg.resume, cfg.max_steps = "auto", 4
    r2 = train(cfg)
    assert r2.steps == 4 and load_checkpoint(r2.checkpoint)["scaler"]["_growth_tracker"] == 4


def test_finetune_from_22k_keeps_the_1k_rows_and_reset_replaces_the_head(tmp_path):
    from focalnet import create_model
    from focalnet.train.model import load_finetune_weights

    kw = dict(embed_dim=8, depths=[1, 1, 1, 1], drop_path_rate=0.0)
    src = create_model("focalnet_tiny_srf", num_classes=21842, **kw)
    path = tmp_path / "in22k.pth"
    torch.save({"model": src.state_dict()}, path)
    dst = load_finetune_weights(create_model("focalnet_tiny_srf", num_classes=1000, **kw), "focalnet_tiny_srf",
                                str(path), head="auto")
    torch.testing.assert_close(dst.head.weight, src.head.weight[:1000])
    torch.testing.assert_close(dst.head.bias, src.head.bias[:1000])
    torch.testing.assert_close(dst.layers[2].blocks[0].mlp.fc1.weight, src.layers[2].blocks[0].mlp.fc1.weight)
    fresh = create_model("focalnet_tiny_srf", num_classes=10, **kw)
    head_before = fresh.head.weight.clone()
    load_finetune_weights(fresh, "focalnet_tiny_srf", str(path), head="auto")  # 21842 -> 10: reset
    torch.testing.assert_close(fresh.head.weight, head_before)
    torch.testing.assert_close(fresh.norm.weight, src.norm.weight)
    with pytest.raises(ValueError, match="in22k_to_in1k"):
        load_finetune_weights(create_model("focalnet_tiny_srf", num_classes=10, **kw), "focalnet_tiny_srf",
                              str(path), head="in22k_to_in1k")


def test_loader_workers_do_not_change_the_result(tmp_path):
    extra = ["max_steps=3", "aug.scale=[0.5,1.0]", "aug.reprob=0.5"]
    a = train(_cfg(tmp_path, "w0", *extra, "data.num_workers=0"))
    b = train(_cfg(tmp_path, "w2", *extra, "data.num_workers=2"))
    wa, wb = _weights(a.checkpoint), _weights(b.checkpoint)
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=0, msg=k)


def test_resume_deletes_temp_files_of_runs_killed_while_saving(tmp_path):
    cfg = _cfg(tmp_path, "stale", "max_steps=2", "save_every_steps=2")
    train(cfg)
    ckpts = cfg.run_dir / "checkpoints"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])  # a writer that is gone
    proc.wait()
    stale = ckpts / f".checkpoint-00000004.pt.tmp-{proc.pid}"
    stale.write_bytes(b"PK half a checkpoint")
    r = train(_cfg(tmp_path, "stale", "max_steps=3", "save_every_steps=2", "resume=auto"))
    assert r.steps == 3 and not stale.exists()
    assert not [p for p in ckpts.iterdir() if ".tmp-" in p.name]
