"""Checkpoint files: weights-only readable, atomic, and a full disk never destroys the previous checkpoint."""

from __future__ import annotations

import errno
import io
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from focalnet.engine import checkpoint as ck
from focalnet.errors import FocalnetError


def _state(v: float) -> dict:
    return {"model": {"w": torch.full((3,), v)}, "step": int(v), "rng": ck.capture_rng(), "config": {"a": [1, 2]}}


def test_round_trip_is_weights_only(tmp_path):
    path = ck.save_checkpoint(_state(1.0), ck.checkpoint_path(tmp_path, 1))
    back = torch.load(path, weights_only=True)
    assert back["step"] == 1 and torch.equal(back["model"]["w"], torch.ones(3))
    assert ck.load_checkpoint(path)["config"] == {"a": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_rng_states_restore_exactly():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    state = ck.capture_rng()
    a = (random.random(), np.random.rand(), torch.rand(2))
    ck.restore_rng(state)
    b = (random.random(), np.random.rand(), torch.rand(2))
    assert a[:2] == b[:2] and torch.equal(a[2], b[2])


class _FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes and then fails like a full disk (``OSError(ENOSPC)`` from ``write``)."""

    def __init__(self, fh, room: int):
        self.fh, self.room = fh, room

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(b)
        return self.fh.write(b)


def _fill_disk_after(room: int):
    """A replacement for ``ck._write``: torch's real zip writer over a disk with ``room`` bytes left."""
    return lambda obj, fh: torch.save(obj, _FullDisk(fh, room))


def test_torch_reports_a_full_disk_as_a_runtime_error():
    """Why save_checkpoint catches every exception: torch's zip writer hides the ENOSPC in a RuntimeError."""
    with pytest.raises(RuntimeError) as info:
        torch.save(_state(1.0), _FullDisk(io.BytesIO(), 300))
    assert not isinstance(info.value, OSError)
    assert ck._os_error_in(info.value).errno == errno.ENOSPC


@pytest.mark.parametrize("room", [0, 300, 5000])
def test_disk_full_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, room):
    good = ck.save_checkpoint(_state(1.0), ck.checkpoint_path(tmp_path, 1))
    monkeypatch.setattr(ck, "_write", _fill_disk_after(room))
    target = ck.checkpoint_path(tmp_path, 2)
    with pytest.raises(ck.CheckpointSaveError) as info:
        ck.save_checkpoint(_state(2.0), target)
    assert str(info.value).startswith(f"[Errno {errno.ENOSPC}] disk full while saving {target}; "
                                      f"previous checkpoint kept: {good}")
    assert isinstance(info.value, FocalnetError) and "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]  # neither a partial file nor a temp file
    assert ck.find_latest(tmp_path) == good
    assert torch.equal(ck.load_checkpoint(good)["model"]["w"], torch.ones(3))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_real_enospc_from_the_kernel(tmp_path, monkeypatch):
    """/dev/full fails every write with ENOSPC: the real error path, not a simulation of it."""
    monkeypatch.setattr(ck, "_write", lambda obj, fh: torch.save(obj, open("/dev/full", "wb", buffering=0)))
    with pytest.raises(ck.CheckpointSaveError, match=r"disk full while saving .*; no previous checkpoint"):
        ck.save_checkpoint(_state(2.0), ck.checkpoint_path(tmp_path, 2))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("failure", [TypeError("cannot pickle 'generator' object"), PermissionError(13, "denied")])
def test_any_failure_of_the_save_is_a_clear_error_and_leaves_no_temp_file(tmp_path, monkeypatch, failure):
    good = ck.save_checkpoint(_state(1.0), ck.checkpoint_path(tmp_path, 1))

    def broken(obj, fh):
        fh.write(b"PK partial")
        raise failure

    monkeypatch.setattr(ck, "_write", broken)
    with pytest.raises(ck.CheckpointSaveError, match=rf"could not save .*previous checkpoint kept: {good}"):
        ck.save_checkpoint(_state(2.0), ck.checkpoint_path(tmp_path, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]


def test_an_interrupt_during_the_save_removes_the_temp_file_and_goes_through(tmp_path, monkeypatch):
    def interrupted(obj, fh):
        fh.write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ck, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(_state(2.0), ck.checkpoint_path(tmp_path, 2))
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    good = ck.save_checkpoint(_state(1.0), ck.checkpoint_path(tmp_path, 1))
    dead = tmp_path / f".checkpoint-00000002.pt.tmp-{_dead_pid()}"
    mine = tmp_path / f".checkpoint-00000003.pt.tmp-{os.getpid()}"  # a recycled PID: nothing is saving yet
    live_writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".checkpoint-00000004.pt.tmp-{live_writer.pid}"
        for f in (dead, mine, live):
            f.write_bytes(b"PK partial checkpoint")
        other = tmp_path / ".notes.txt"
        other.write_text("not ours")
        removed = ck.clean_stale_temp_files(tmp_path)
        assert sorted(removed) == sorted([dead, mine])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([good.name, live.name, other.name])
    finally:
        live_writer.kill()
        live_writer.wait()
    assert ck.clean_stale_temp_files(tmp_path / "missing") == []


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_sharded_checkpoint_folders_are_atomic_pruned_cleaned_and_read_without_unpickling(tmp_path):
    """A torch.distributed.checkpoint folder (here written by one process): found, pruned and cleaned like the
    files; read back in one process; a .metadata that would unpickle arbitrary objects is refused."""
    import pickle

    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    from focalnet.weights.loading import CheckpointError

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    for step in (1, 2, 3):
        ck.save_sharded_checkpoint({"model": get_model_state_dict(model),
                                    "optimizer": get_optimizer_state_dict(model, opt)},
                                   {"step": step, "config": {"a": 1}}, ck.checkpoint_path(tmp_path, step, True), True)
    ck.save_checkpoint(_state(4.0), ck.checkpoint_path(tmp_path, 4))
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == ["checkpoint-00000001.dcp", "checkpoint-00000002.dcp",
                                                              "checkpoint-00000003.dcp", "checkpoint-00000004.pt"]
    ck.prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-00000003.dcp", "checkpoint-00000004.pt"]
    latest = tmp_path / "checkpoint-00000003.dcp"
    back = ck.load_checkpoint(latest)
    assert back["step"] == 3 and back["sharded"] and back["config"] == {"a": 1}
    assert torch.equal(back["model"]["weight"], model.weight.detach())
    assert "model" not in ck.load_checkpoint(latest, tensors=False)
    fresh = torch.nn.Linear(3, 2)  # model and optimizer (moments included) into a new plain model
    fresh_opt = torch.optim.AdamW(fresh.parameters())
    ck.load_sharded_into(latest, fresh, fresh_opt)
    assert torch.equal(fresh.bias, model.bias)
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])

    dead = tmp_path / f".checkpoint-00000005.dcp.tmp-{_dead_pid()}"  # a writer killed mid-save
    dead.mkdir()
    (dead / "__0_0.distcp").write_bytes(b"partial")
    assert ck.clean_stale_temp_files(tmp_path) == [dead] and not dead.exists()

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (latest / ".metadata").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="posix.system is not allowed|could not read"):
        ck.load_checkpoint(latest)
    (latest / "engine.pt").unlink()
    with pytest.raises(CheckpointError, match="no engine.pt"):
        ck.load_checkpoint(latest)


def test_newest_by_step_and_pruning(tmp_path):
    for s in (2, 10, 9):
        ck.save_checkpoint(_state(float(s)), ck.checkpoint_path(tmp_path, s))
    (tmp_path / "checkpoint-notanumber.pt").write_text("x")
    assert ck.find_latest(tmp_path).name == "checkpoint-00000010.pt"
    ck.prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == ["checkpoint-00000009.pt", "checkpoint-00000010.pt"]


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    from focalnet.weights.loading import CheckpointError

    p = ck.save_checkpoint(_state(1.0), ck.checkpoint_path(tmp_path, 1))
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        ck.load_checkpoint(p)
