"""Makers of malformed inputs shared by the image tests and the bad-input corpus (tests/test_bad_input_corpus.py).

Every maker takes a target path, writes a small file there (a few hundred bytes at most) and returns the path.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A 60-byte PNG whose header claims ``width x height`` pixels (PIL: DecompressionBombError)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
                     + _chunk(b"IEND", b""))
    return path


def good_png(path: Path, size: tuple[int, int] = (24, 20), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def truncated_png(path: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(buf, format="PNG")
    path.write_bytes(buf.getvalue()[:60])
    return path


def truncated_jpeg(path: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    return path


def exif_jpeg(path: Path, orientation: int, size: tuple[int, int] = (20, 10)) -> Path:
    """A ``size`` (w, h) JPEG, left half red and right half blue as stored, with an EXIF orientation tag."""
    w, h = size
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    a[:, w // 2 :] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(path, format="JPEG", quality=100, exif=exif.tobytes())
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def text_as(path: Path, text: str = "this is not an image") -> Path:
    path.write_text(text)
    return path


def garbage(path: Path, n: int = 256, seed: int = 0) -> Path:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


TINY_KWARGS = {"embed_dim": 8, "depths": [1, 1, 1, 1], "patch_size": 2}
TINY_TRAIN = ["model.kwargs={embed_dim: 8, depths: [1, 1, 1, 1], patch_size: 2}", "data.img_size=16",
              "data.batch_size=4", "data.limit_train=8", "data.limit_val=4", "sched.epochs=1", "progress=false",
              "tensorboard=false", "max_steps=1"]
_TRAINED: dict[str, Path] = {}


def _trained_checkpoint() -> Path:
    """One real checkpoint of `focalnet train` (a FocalNet with 8 channels, one step on digits), made once."""
    if "ckpt" not in _TRAINED:
        import tempfile

        from focalnet.cli import main

        out = Path(tempfile.mkdtemp(prefix="focalnet-tiny-")) / "run"
        assert main(["train", *TINY_TRAIN, "--out", str(out)]) == 0
        _TRAINED["ckpt"] = sorted((out / "checkpoints").glob("checkpoint-*.pt"))[-1]
    return _TRAINED["ckpt"]


def tiny_checkpoint(path: Path, nan: bool = False, drop: tuple[str, ...] = (), **changes) -> Path:
    """A copy of a real `focalnet train` checkpoint at ``path``; ``nan`` fills its weights with NaN, ``changes``
    replace top-level entries (``config=...``, ``meta=...``) and ``drop`` removes entries."""
    import torch

    from focalnet.engine.checkpoint import save_checkpoint

    ck = torch.load(_trained_checkpoint(), map_location="cpu", weights_only=True)
    if nan:
        ck["model"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                       for k, v in ck["model"].items()}
    ck.update(changes)
    for k in drop:
        ck.pop(k, None)
    save_checkpoint(ck, path)
    return path
