"""Data: image decoding of odd formats, bad files, bad folder layouts, and the deterministic sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from focalnet.data import (
    DataError,
    DigitsDataset,
    GlobalBatchSampler,
    ImageFolderDataset,
    ImageLoadError,
    SeededTransformDataset,
    build_transform,
    class_names,
    load_rgb,
)


def _save(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def test_grayscale_rgba_16bit_palette_become_8bit_rgb(tmp_path):
    g = _save(tmp_path / "g.png", np.full((6, 7), 100, np.uint8))
    rgba = np.zeros((5, 5, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[0, 0, 3] = 255  # one opaque red pixel, the rest transparent
    a = _save(tmp_path / "a.png", rgba)
    b16 = np.full((4, 4), 65535, np.uint16)
    b16[0, 0] = 0
    s = tmp_path / "s16.png"
    Image.fromarray(b16).save(s)
    p = tmp_path / "p.gif"
    Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4) * 16).convert("P").save(p)
    for path in (g, a, s, p):
        img = load_rgb(path)
        assert img.mode == "RGB"
    assert np.asarray(load_rgb(g))[0, 0].tolist() == [100, 100, 100]
    arr = np.asarray(load_rgb(a))
    assert arr[0, 0].tolist() == [255, 0, 0] and arr[1, 1].tolist() == [255, 255, 255]  # alpha over white
    arr16 = np.asarray(load_rgb(s))
    assert arr16[0, 0].tolist() == [0, 0, 0] and arr16[1, 1].tolist() == [255, 255, 255]  # scaled, not clipped


def test_truncated_and_non_image_files_raise_a_clear_error(tmp_path):
    good = _save(tmp_path / "x.jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    trunc = tmp_path / "t.jpg"
    trunc.write_bytes(good.read_bytes()[:300])
    junk = tmp_path / "j.png"
    junk.write_text("not an image")
    for bad in (trunc, junk, tmp_path / "missing.png"):
        with pytest.raises(ImageLoadError, match=bad.name):
            load_rgb(bad)


def _folder(root, classes=("cat", "dog"), n=3):
    for c in classes:
        for i in range(n):
            _save(root / c / f"{i}.png", np.full((8, 8, 3), 40 * i, np.uint8))
    return root


def test_image_folder_skip_and_error_policies(tmp_path, caplog):
    root = _folder(tmp_path / "train")
    (root / "cat" / "0.png").write_bytes(b"\x89PNG broken")
    ds = ImageFolderDataset(root, bad_images="skip")
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    img, target = ds[0]
    assert img.mode == "RGB" and target == 0
    assert "skipping unreadable image" in caplog.text and "0.png" in caplog.text
    assert str(root / "cat" / "0.png") in ds.bad
    strict = ImageFolderDataset(root, bad_images="error")
    with pytest.raises(ImageLoadError, match="0.png"):
        strict[0]


def test_empty_and_mislaid_folders_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        ImageFolderDataset(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nowhere")
    loose = tmp_path / "loose"
    _save(loose / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="directly"):
        ImageFolderDataset(loose)
    (tmp_path / "noimg" / "cls").mkdir(parents=True)
    (tmp_path / "noimg" / "cls" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="contains no images"):
        ImageFolderDataset(tmp_path / "noimg")
    train = ImageFolderDataset(_folder(tmp_path / "tr"))
    with pytest.raises(DataError, match=r"bird.*mislabelled"):
        ImageFolderDataset(_folder(tmp_path / "va", classes=("cat", "bird")), classes=train.classes)


def test_val_may_hold_a_subset_of_classes(tmp_path):
    train = ImageFolderDataset(_folder(tmp_path / "tr", classes=("a", "b", "c")))
    val = ImageFolderDataset(_folder(tmp_path / "va", classes=("c",)), classes=train.classes)
    assert {t for t in val.targets} == {2}


def test_digits_split_is_fixed_and_stratified():
    tr, va = DigitsDataset("train"), DigitsDataset("val")
    assert len(tr) + len(va) == 1797 and len(va) == 359
    assert sorted(set(va.targets)) == list(range(10))
    img, t = tr[0]
    assert img.size == (8, 8) and img.mode == "RGB"


@pytest.mark.parametrize("world,accum", [(2, 1), (1, 2), (4, 1)])
def test_global_batches_are_independent_of_world_size(world, accum):
    n, per = 50, 6
    ref = list(GlobalBatchSampler(n, per * world * accum, 1, 0, 1, seed=3))
    samplers = [GlobalBatchSampler(n, per, world, r, accum, seed=3) for r in range(world)]
    streams = [list(s) for s in samplers]
    for step, batch in enumerate(ref):
        got = []
        for r in range(world):
            for m in range(accum):
                got += streams[r][step * accum + m]
        assert got == batch or sorted(got) == sorted(batch)
        assert sorted(got) == sorted(batch)
    s = GlobalBatchSampler(n, per, 1, 0, 1, seed=3)
    s.set_epoch(0, start=2)
    assert list(s) == list(GlobalBatchSampler(n, per, 1, 0, 1, seed=3))[2:]
    s.set_epoch(1)
    assert list(s) != ref
    with pytest.raises(DataError, match="fewer than one global batch"):
        GlobalBatchSampler(5, 4, 2, 0)


def test_seeded_augmentation_is_reproducible_and_leaves_global_rng_alone():
    from focalnet.train.config import AugConfig

    pp = {"input_size": 16, "interpolation": "bicubic", "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3}
    tf = build_transform(pp, AugConfig(scale=[0.3, 1.0], hflip=0.5, reprob=0.5), is_training=True)
    ds = SeededTransformDataset(DigitsDataset("val"), tf, seed=1)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = ds[5][0]
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(123)
    torch.testing.assert_close(ds[5][0], a)
    ds.set_epoch(1)
    assert not torch.equal(ds[5][0], a)


def test_imagenet_class_names():
    n1k, n22k = class_names("imagenet-1k"), class_names("imagenet-22k")
    assert len(n1k) == 1000 and len(n22k) == 21842
    assert n22k[:1000] == n1k and "tench" in n1k[0]


def test_hugging_face_data_sets_need_the_package(monkeypatch):
    import builtins

    from focalnet.data import build_datasets
    from focalnet.train.config import DataConfig

    real_import = builtins.__import__

    def no_datasets(name, *a, **k):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(DataError, match="pip install datasets"):
        build_datasets(DataConfig(dataset="hf:cifar10"))


def test_label_set_follows_the_head_size():
    from focalnet.train.inference import label_set_for

    assert label_set_for(1000) == "imagenet-1k" and label_set_for(21842) == "imagenet-22k"
    assert label_set_for(10) is None
