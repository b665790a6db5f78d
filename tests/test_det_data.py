"""COCO-format synthetic data and the validated reader: bad input gets clear messages, nothing is silently lost."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

pytest.importorskip("pycocotools")
pytest.importorskip("torchvision")

from focalnet.data.coco import make_synthetic_coco, write_coco  # noqa: E402
from focalnet.data.synthetic import make_scenes  # noqa: E402
from focalnet.det.dataset import CocoDetection, DatasetError, collate  # noqa: E402


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    ann = write_coco(root, make_scenes(4, seed=3, size=(96, 112)), "train")
    return root / "images" / "train", ann


def _edit(coco, tmp_path, fn):
    """A copy of the annotation file changed by ``fn(blob)``."""
    images, ann = coco
    blob = json.loads(ann.read_text())
    fn(blob)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(blob))
    return images, path


def test_written_files_are_real_coco_and_round_trip(coco):
    from pycocotools import mask as mask_utils

    images, ann = coco
    scenes = make_scenes(4, seed=3, size=(96, 112))
    ds = CocoDetection(images, ann)
    assert len(ds) == 4 and ds.cat_ids == [1, 2, 3] and [c["name"] for c in ds.categories] == ["horse", "coin", "logo"]
    img, t = ds[0]
    assert img.shape == (3, 96, 112) and img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1
    np.testing.assert_array_equal((img.permute(1, 2, 0) * 255).round().byte().numpy(), scenes[0].image)
    np.testing.assert_array_equal(t["masks"].bool().numpy(), scenes[0].masks)
    np.testing.assert_allclose(t["boxes"].numpy(), scenes[0].boxes)
    np.testing.assert_array_equal(t["labels"].numpy(), scenes[0].labels)
    a = ds.coco.loadAnns(ds.coco.getAnnIds(imgIds=[1]))[0]
    assert mask_utils.area(a["segmentation"]) == a["area"]  # RLE agrees with the recorded area


def test_synthetic_split_reused_and_held_out(tmp_path):
    p = make_synthetic_coco(tmp_path, n_train=3, n_val=2, size=64, seed=1)
    stamp = p["train_ann"].stat().st_mtime_ns
    assert make_synthetic_coco(tmp_path, n_train=3, n_val=2, size=64, seed=1)["train_ann"].stat().st_mtime_ns == stamp
    tr, va = CocoDetection(p["train_images"], p["train_ann"]), CocoDetection(p["val_images"], p["val_ann"])
    assert not torch.equal(tr[0][0], va[0][0])  # different seeds: validation images are not training images
    assert "NOT COCO" in json.loads(p["val_ann"].read_text())["info"]["description"]


def test_hflip_moves_boxes_with_masks(coco):
    images, ann = coco
    ds = CocoDetection(images, ann, train=True, hflip=1.0)
    img, t = ds[0]
    ref_img, ref = CocoDetection(images, ann)[0]
    torch.testing.assert_close(img, ref_img.flip(-1))
    m = t["masks"][0].bool()
    xs = torch.nonzero(m.any(0)).flatten()
    assert (float(xs.min()), float(xs.max()) + 1) == (t["boxes"][0, 0].item(), t["boxes"][0, 2].item())


def test_unknown_category_id(coco, tmp_path):
    def fn(b):
        b["annotations"][0]["category_id"] = 9

    with pytest.raises(DatasetError, match=r"category_id 9, which is not one of the known categories \[1, 2, 3\]"):
        CocoDetection(*_edit(coco, tmp_path, fn))


def test_mask_of_wrong_size(coco, tmp_path):
    from pycocotools import mask as mask_utils

    def fn(b):
        rle = mask_utils.encode(np.asfortranarray(np.ones((64, 64), np.uint8)))
        b["annotations"][1]["segmentation"] = {"size": [64, 64], "counts": rle["counts"].decode()}

    with pytest.raises(DatasetError, match=r"mask is 64x64 \(HxW\) but the image is 96x112"):
        CocoDetection(*_edit(coco, tmp_path, fn))

    def bad_polygon(b):
        b["annotations"][0]["segmentation"] = [[1, 2, 3]]

    with pytest.raises(DatasetError, match="polygon must be a flat list"):
        CocoDetection(*_edit(coco, tmp_path, bad_polygon))


def test_boxes_outside_clipped_or_dropped_with_warnings(coco, tmp_path, caplog):
    def fn(b):
        anns = b["annotations"]
        anns[0]["bbox"] = [-10.0, 5.0, 50.0, 200.0]  # sticks out left and bottom: clipped
        anns[1]["bbox"] = [500.0, 500.0, 10.0, 10.0]  # entirely outside: dropped
        anns[2]["bbox"] = [5.0, 5.0, 0.0, 10.0]  # no width: dropped

    n_anns = len(json.loads(coco[1].read_text())["annotations"])
    with caplog.at_level(logging.WARNING):
        ds = CocoDetection(*_edit(coco, tmp_path, fn), masks=False)
    assert ds.report["clipped"] == 1 and ds.report["dropped_outside"] == 1 and ds.report["dropped_degenerate"] == 1
    text = caplog.text
    assert "1 boxes extend beyond their image and were clipped" in text
    assert "1 boxes lie entirely outside their image and were dropped" in text
    assert "zero or negative width/height" in text
    assert sum(len(ds[i][1]["boxes"]) for i in range(len(ds))) == n_anns - 2
    first = ds._targets[ds.ids[0]]["boxes"][0]
    assert first == (0.0, 5.0, 40.0, 96.0)


def test_images_without_annotations(coco, tmp_path, caplog):
    def fn(b):
        b["annotations"] = [a for a in b["annotations"] if a["image_id"] != 2]

    images, path = _edit(coco, tmp_path, fn)
    with caplog.at_level(logging.INFO):
        train = CocoDetection(images, path, train=True)
    assert 2 not in train.ids and len(train) == 3
    assert "1 of 4 images have no usable annotations: skipped for training" in caplog.text
    val = CocoDetection(images, path)
    assert 2 in val.ids and len(val[val.ids.index(2)][1]["boxes"]) == 0

    def none(b):
        b["annotations"] = []

    with pytest.raises(DatasetError, match="no images with usable annotations to train on"):
        CocoDetection(*_edit(coco, tmp_path, none), train=True)


def test_missing_files_and_not_coco(coco, tmp_path):
    images, ann = coco
    with pytest.raises(DatasetError, match="does not exist"):
        CocoDetection(images, tmp_path / "nope.json")
    with pytest.raises(DatasetError, match="image folder"):
        CocoDetection(tmp_path / "nope", ann)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="not a COCO instance annotation file"):
        CocoDetection(images, bad)

    def renamed(b):
        b["images"][0]["file_name"] = "missing.png"

    with pytest.raises(DatasetError, match="missing.png does not exist"):
        CocoDetection(*_edit(coco, tmp_path, renamed))

    def wrong_size(b):
        b["images"][0]["height"] = 50

    with pytest.raises(DatasetError, match=r"mask is 96x112 \(HxW\) but the image is 50x112"):
        CocoDetection(*_edit(coco, tmp_path, wrong_size))

    def wrong_size_boxes_only(b):
        wrong_size(b)
        for a in b["annotations"]:
            a["segmentation"] = []

    ds = CocoDetection(*_edit(coco, tmp_path, wrong_size_boxes_only), masks=False)
    with pytest.raises(DatasetError, match="is 96x112 but edited.json says 50x112"):
        ds[0]


def test_collate_keeps_lists():
    a = (torch.zeros(3, 4, 5), {"boxes": torch.zeros(0, 4)})
    b = (torch.zeros(3, 6, 5), {"boxes": torch.zeros(2, 4)})
    images, targets = collate([a, b])
    assert [im.shape[1] for im in images] == [4, 6] and len(targets[1]["boxes"]) == 2
