"""Checkpoint files: weights-only readable, atomic, and a full disk never destroys the previous checkpoint."""

from __future__ import annotations

import errno
import random

import numpy as np
import pytest
import torch

from focalnet.engine import checkpoint as ck


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


def test_disk_full_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    good = ck.save_checkpoint(_state(1.0), ck.checkpoint_path(tmp_path, 1))

    def full_disk(obj, fh):
        fh.write(b"PK\x03\x04 partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "_write", full_disk)
    with pytest.raises(ck.CheckpointSaveError, match=r"disk is full.*checkpoint-00000001.pt is intact"):
        ck.save_checkpoint(_state(2.0), ck.checkpoint_path(tmp_path, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]  # neither a partial file nor a temp file
    assert ck.find_latest(tmp_path) == good
    assert torch.equal(ck.load_checkpoint(good)["model"]["w"], torch.ones(3))


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
