"""The one image reader: decompression bombs, FIFOs and devices, EXIF orientation, and every reader using it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bad_files import bomb_png, exif_jpeg, fifo, good_png, tiny_checkpoint
from focalnet.data import ImageFolderDataset, ImageLoadError, load_rgb
from focalnet.data.images import image_size
from focalnet.errors import FocalnetError

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")


def test_a_decompression_bomb_is_an_unreadable_image(tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png")
    with pytest.raises(ImageLoadError, match=r"bomb\.png.*(decompression bomb|exceeds limit)"):
        load_rgb(bomb)
    with pytest.raises(ImageLoadError):
        image_size(bomb)


def test_a_moderate_bomb_that_pil_only_warns_about_is_refused_too(tmp_path):
    from PIL import Image

    side = int((Image.MAX_IMAGE_PIXELS * 1.5) ** 0.5)  # between PIL's warning and error thresholds
    with pytest.raises(ImageLoadError, match="bomb"):
        load_rgb(bomb_png(tmp_path / "warn.png", side, side))


@needs_fifo
@pytest.mark.timeout(20)
def test_a_fifo_is_refused_without_blocking(tmp_path):
    pipe = fifo(tmp_path / "pipe.png")  # opening it for reading would wait forever for a writer
    with pytest.raises(ImageLoadError, match=r"pipe\.png: it is a named pipe \(FIFO\), not an image file"):
        load_rgb(pipe)
    with pytest.raises(ImageLoadError, match="FIFO"):
        image_size(pipe)


@pytest.mark.timeout(20)
def test_devices_and_folders_are_refused(tmp_path):
    if os.path.exists("/dev/zero"):
        with pytest.raises(ImageLoadError, match="a device"):
            load_rgb("/dev/zero")  # would be read forever
    with pytest.raises(ImageLoadError, match="a folder"):
        load_rgb(tmp_path)
    with pytest.raises(ImageLoadError, match="image not found"):
        load_rgb(tmp_path / "missing.png")


def test_image_load_errors_are_focalnet_errors_and_still_oserrors(tmp_path):
    e = pytest.raises(ImageLoadError, load_rgb, tmp_path / "missing.png").value
    assert isinstance(e, FocalnetError) and isinstance(e, OSError) and e.exit_code == 1


# orientation -> where the stored left (red) half ends up: (upright size w x h, colour at top-left, at bottom-right)
_EXIF = {
    1: ((20, 10), "red", "blue"),   # as stored
    2: ((20, 10), "blue", "red"),   # mirrored left-right
    3: ((20, 10), "blue", "red"),   # rotated 180
    4: ((20, 10), "red", "blue"),   # mirrored top-bottom
    5: ((10, 20), "red", "blue"),   # transposed
    6: ((10, 20), "red", "blue"),   # rotated 90 clockwise: the left half becomes the top
    7: ((10, 20), "blue", "red"),   # transversed
    8: ((10, 20), "blue", "red"),   # rotated 90 counter-clockwise: the left half becomes the bottom
}


@pytest.mark.parametrize("orientation", sorted(_EXIF))
def test_exif_orientation_is_honoured(tmp_path, orientation):
    path = exif_jpeg(tmp_path / f"o{orientation}.jpg", orientation)
    img = load_rgb(path)
    size, top_left, bottom_right = _EXIF[orientation]
    assert img.size == size == image_size(path)
    a = np.asarray(img).astype(int)
    colour = {"red": (255, 0, 0), "blue": (0, 0, 255)}
    assert np.abs(a[0, 0] - colour[top_left]).max() < 40
    assert np.abs(a[-1, -1] - colour[bottom_right]).max() < 40


def test_a_phone_photo_is_upright_in_every_reader(tmp_path):
    """predict/eval/train (load_rgb), visualize (viz.load_image), segmentation and detection read the same way."""
    from focalnet.seg.data import read_image
    from focalnet.viz import load_image

    path = exif_jpeg(tmp_path / "phone.jpg", 6)
    ref = np.asarray(load_rgb(path))
    assert ref.shape == (20, 10, 3)
    assert np.array_equal(np.asarray(load_image(path)), ref)
    assert np.array_equal(read_image(path), ref)


def test_training_with_bad_images_skip_skips_a_bomb(tmp_path, caplog):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(2):
            good_png(tmp_path / c / f"{i}.png", seed=i)
    bomb_png(tmp_path / "a" / "0.png")
    ds = ImageFolderDataset(tmp_path, bad_images="skip")
    img, target = ds[0]
    assert img.size == (24, 20) and target == 0
    assert "0.png" in caplog.text
    with pytest.raises(ImageLoadError, match="0.png"):
        ImageFolderDataset(tmp_path, bad_images="error")[0]


@pytest.mark.timeout(60)
def test_predict_keeps_the_rest_of_the_batch_after_a_bomb_and_a_fifo(tmp_path, capsys):
    from focalnet.cli import main

    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    good = good_png(tmp_path / "good.png")
    bomb = bomb_png(tmp_path / "bomb.png")
    paths = [str(good), str(bomb)]
    if hasattr(os, "mkfifo"):
        paths.append(str(fifo(tmp_path / "pipe.jpg")))
    rc = main(["predict", *paths, "--checkpoint", str(ckpt), "--json", "-", "--device", "cpu", "--topk", "2"])
    res = json.loads(capsys.readouterr().out)["results"]
    assert rc == 1
    assert len(res[0]["top"]) == 2
    assert "bomb.png" in res[1]["error"] and "top" not in res[1]
    if len(paths) == 3:
        assert "FIFO" in res[2]["error"]
