"""ADE20K-layout folders: the synthetic writer, label encoding, and every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from focalnet.seg import SegConfig, SegDataError, SegFolderDataset, find_pairs, write_synthetic_ade
from focalnet.seg.data import encode_labels, read_mask
from focalnet.seg.evaluation import make_dataset
from focalnet.tasks.segmentation import palette


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic_ade(tmp_path_factory.mktemp("ade"), n_train=4, n_val=2, size=(48, 64), seed=3)


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_synthetic_set_has_ade_layout_and_known_masks(synth):
    for split, n in (("training", 4), ("validation", 2)):
        imgs = sorted((synth / "images" / split).glob("*.jpg"))
        anns = sorted((synth / "annotations" / split).glob("*.png"))
        assert len(imgs) == len(anns) == n
        assert [p.stem for p in imgs] == [p.stem for p in anns]
    assert "SYNTHETIC" in (synth / "README.txt").read_text()
    ds = SegFolderDataset(synth / "images/training", synth / "annotations/training", num_classes=4)
    img, lab = ds[0]
    assert img.shape == (3, 48, 64) and lab.shape == (48, 64)
    assert set(lab.unique().tolist()) <= {0, 1, 2, 3} and (lab > 0).any() and (lab == 0).any()
    ds.check()


def test_original_folder_names_work_through_the_config(tmp_path):
    root = write_synthetic_ade(tmp_path, 2, 2, (40, 40), split_names=("train", "validation"))
    (root / "annotations" / "validation").rename(root / "annotations" / "val")  # the authors' names
    cfg = SegConfig.from_dict({"model": {"num_classes": 4}, "data": {
        "root": str(root), "reduce_zero_label": False, "train_img_dir": "images/train",
        "train_ann_dir": "annotations/train", "val_img_dir": "images/validation", "val_ann_dir": "annotations/val"}})
    assert len(make_dataset(cfg, "train")) == 2 and len(make_dataset(cfg, "val")) == 2


def test_reduce_zero_label_is_ade_convention():
    m = np.array([[0, 1, 150], [255, 2, 0]], np.uint8)
    out = encode_labels(m, num_classes=150, reduce_zero_label=True)
    assert out.tolist() == [[255, 0, 149], [255, 1, 255]]
    with pytest.raises(SegDataError, match=r"label values \[151\]"):
        encode_labels(np.array([[151]], np.uint8), 150, True)


def test_image_without_mask_is_named(synth, tmp_path):
    root = _copy(synth, tmp_path / "d")
    victim = sorted((root / "annotations/training").glob("*.png"))[1]
    victim.unlink()
    with pytest.raises(SegDataError, match=rf"1 image\(s\) .* no '.png' mask .*{victim.stem}.jpg"):
        find_pairs(root / "images/training", root / "annotations/training")


def test_mask_of_wrong_size_is_reported(synth, tmp_path):
    root = _copy(synth, tmp_path / "d")
    victim = sorted((root / "annotations/training").glob("*.png"))[0]
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(victim)
    ds = SegFolderDataset(root / "images/training", root / "annotations/training", num_classes=4)
    with pytest.raises(SegDataError, match=rf"mask {victim.name} is 30x20 but image .* is 64x48"):
        ds.check()


def test_unknown_label_values_are_reported(synth, tmp_path):
    root = _copy(synth, tmp_path / "d")
    victim = sorted((root / "annotations/validation").glob("*.png"))[0]
    m = read_mask(victim)
    m[0, :3] = [7, 9, 255]  # 255 (ignore) is allowed, 7 and 9 are not
    Image.fromarray(m).save(victim)
    ds = SegFolderDataset(root / "images/validation", root / "annotations/validation", num_classes=4)
    with pytest.raises(SegDataError, match=rf"{victim.name}: label values \[7, 9\] are outside the 4 classes"):
        ds[0]


def test_rgb_mask_empty_and_missing_folders(synth, tmp_path):
    root = _copy(synth, tmp_path / "d")
    victim = sorted((root / "annotations/training").glob("*.png"))[0]
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(victim)
    with pytest.raises(SegDataError, match="single-channel"):
        read_mask(victim)
    (tmp_path / "empty/images").mkdir(parents=True)
    (tmp_path / "empty/annotations").mkdir(parents=True)
    with pytest.raises(SegDataError, match="no '\\*.jpg' images in"):
        find_pairs(tmp_path / "empty/images", tmp_path / "empty/annotations")
    with pytest.raises(SegDataError, match="image folder not found"):
        find_pairs(tmp_path / "nowhere", tmp_path / "empty/annotations")
    cfg = SegConfig.from_dict({"data": {"root": str(tmp_path / "nowhere")}})
    with pytest.raises(SegDataError, match="data root not found"):
        make_dataset(cfg, "train")


def test_palette_is_distinct_and_stable():
    pal = palette(150)
    assert pal.shape == (256, 3) and len({tuple(c) for c in pal[:150]}) == 150
    assert pal[1].tolist() == [128, 0, 0] and pal[2].tolist() == [0, 128, 0]  # the PASCAL VOC colour map
