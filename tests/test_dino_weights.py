"""Released FocalNet-DINO files: safe reading, structure from the file's args, backbone extraction, records."""

from __future__ import annotations

import argparse
import functools

import pytest
import torch

from conftest import load_golden, require_golden
from focalnet.det.dino import build_backbone, to_original_state_dict
from focalnet.det.dino.weights import (
    COCO_CATEGORY_NAMES,
    coco_label_names,
    load_dino_backbone,
    load_released_dino,
    read_dino_checkpoint,
)
from focalnet.weights import get_weights
from focalnet.weights.loading import CheckpointError


@pytest.fixture(scope="module")
def fixtures():
    files = require_golden("focalnet_dino")
    return {("5" if "5scale" in p.name else "4"): load_golden(p) for p in files}


def _released(tmp_path, g, name="ckpt.pth", **extra):
    args = dict(g["dino_args"])
    ckpt = {"model": g["state_dict"], "optimizer": {"state": {0: {"exp_avg": torch.zeros(1000)}}},
            "lr_scheduler": {"last_epoch": 11}, "epoch": 11, "args": argparse.Namespace(**args), **extra}
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


def test_released_file_loads_with_structure_from_its_args(tmp_path, fixtures):
    g = fixtures["4"]
    path = _released(tmp_path, g)
    args, sd = read_dino_checkpoint(path)
    assert args["num_feature_levels"] == 4 and "optimizer" not in sd and set(sd) == set(g["state_dict"])
    model = load_released_dino(path, backbone=g["focalnet_backbone"])
    assert not model.training
    back = to_original_state_dict(model)
    assert all(torch.equal(back[k], v) for k, v in g["state_dict"].items())
    with torch.no_grad():
        torch.testing.assert_close(model(g["images"])["pred_boxes"], g["pred_boxes"], atol=1e-4, rtol=1e-4)


def test_other_structure_is_an_error_naming_both(tmp_path, fixtures):
    path = _released(tmp_path, fixtures["4"])
    with pytest.raises(CheckpointError) as e:
        load_released_dino(path, expect=fixtures["5"]["dino_args"], backbone=fixtures["4"]["focalnet_backbone"])
    assert "4-scale" in str(e.value) and "5-scale" in str(e.value)
    assert "focalnet_L_384_22k_fl4" in str(e.value) and "focalnet_L_384_22k " in str(e.value)


def test_truncated_file_is_refused(tmp_path, fixtures):
    path = _released(tmp_path, fixtures["4"])
    data = path.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_dino_checkpoint(cut)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_dino_checkpoint(empty)


def test_pickle_with_other_globals_is_refused(tmp_path, fixtures):
    path = _released(tmp_path, fixtures["4"], hook=functools.partial(print, "pwned"))
    with pytest.raises(CheckpointError, match="refusing"):
        read_dino_checkpoint(path)


def test_dino_backbone_loads_into_a_plain_focalnet_backbone(fixtures):
    g = fixtures["5"]
    bb = build_backbone(g["focalnet_backbone"])
    load_dino_backbone(bb, g["state_dict"])
    for k, v in g["state_dict"].items():
        if k.startswith("backbone.0.norm"):
            i, rest = k[len("backbone.0.norm"):].split(".", 1)
            assert torch.equal(bb.state_dict()[f"norms.{i}.{rest}"], v)
    wrong = build_backbone({**g["focalnet_backbone"], "out_indices": (1, 2, 3)})
    with pytest.raises(CheckpointError, match="out_indices"):
        load_dino_backbone(wrong, g["state_dict"])


def test_records_and_coco_names():
    rec = get_weights("dino_focalnet_large_fl4_5scale")
    assert rec.tag == "o365_coco" and rec.urls[0].startswith("hf://microsoft/focalnet-large-fl4-dino-o365-cocoft/")
    assert rec.extra["eval_short_side"] == 1200 and rec.extra["eval_max_size"] == 2000
    assert get_weights("dino_focalnet_large_fl4_5scale.o365").file_name == "focalnet_large_fl4_pretrained_on_o365.pth"
    cls = get_weights("focalnet_large_fl4")
    assert cls.sha256 == "4d14fe47c7d7138e911be356ff8170d316d2918af7c504c914c2f88ffb16465b"
    assert any(u.startswith("hf://microsoft/focalnet-large-lrf-fl4/") for u in cls.urls)
    names = coco_label_names()
    assert len(COCO_CATEGORY_NAMES) == 80 and len(names) == 91
    assert names[1] == "person" and names[90] == "toothbrush" and names[12] == "N/A"
