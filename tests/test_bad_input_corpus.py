"""No user input ends in a Python traceback: a corpus of malformed inputs run through every command.

Each case calls ``focalnet.cli.main(argv)`` in-process and must either succeed (exit 0) or end with one message on
stderr that starts with ``focalnet `` and continues on no other line, and the exit code the case names: 2 for usage
and configuration errors (found before any work starts), 1 for runtime errors (a damaged or missing input file).
An "internal error" (an exception the package did not expect) fails the case, and so does any pickle that runs
code (the corpus' malicious pickles would create ``pwned`` folders).

The files are tiny (a few hundred bytes; the only model is a FocalNet with 8 channels) and built once per module.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bad_files import (
    TINY_KWARGS,
    bomb_png,
    exif_jpeg,
    fifo,
    garbage,
    good_png,
    text_as,
    tiny_checkpoint,
    truncated_jpeg,
    truncated_png,
)
from focalnet.cli import main

HAS_FIFO = hasattr(os, "mkfifo")


# ------------------------------------------------------------------------------------------------- files
class _Evil:
    """A pickle payload that would create a folder when unpickled (it never may be)."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def _write_pickles(F: Path) -> None:
    sd = {"w": torch.zeros(2)}
    torch.save({"model": sd, "evil": _Evil(str(F / "pwned_zip"))}, F / "evil.pt")
    torch.save({"state_dict": _Evil(str(F / "pwned_legacy"))}, F / "evil_legacy.pth",
               _use_new_zipfile_serialization=False)
    (F / "evil_raw.bin").write_bytes(pickle.dumps({"x": _Evil(str(F / "pwned_raw"))}))
    (F / "evil.safetensors").write_bytes(pickle.dumps(_Evil(str(F / "pwned_st"))))


def _folder_set(root: Path, classes=("a", "b"), n=2, val=True) -> Path:
    for split in ("train", "val") if val else ("train",):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                good_png(root / split / c / f"{i}.png", (12, 12), seed=i)
    return root


def _coco(F: Path) -> None:
    img_dir = F / "coco_images"
    img_dir.mkdir()
    good_png(img_dir / "0.png", (32, 32))
    bomb_png(img_dir / "bomb.png")
    images = [{"id": 1, "file_name": "0.png", "height": 32, "width": 32}]
    cats = [{"id": 1, "name": "thing"}]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10], "area": 100, "iscrowd": 0,
             "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]]}]
    ok = {"images": images, "categories": cats, "annotations": anns}
    files = {
        "coco_ok.json": ok,
        "coco_list.json": [1, 2, 3],
        "coco_noimages.json": {"categories": cats, "annotations": []},
        "coco_nocats.json": {"images": images, "annotations": []},
        "coco_dangling.json": {**ok, "annotations": [{**anns[0], "image_id": 99}]},
        "coco_badbbox.json": {**ok, "annotations": [{**anns[0], "bbox": "wide"}]},
        "coco_shortbbox.json": {**ok, "annotations": [{**anns[0], "bbox": [1, 2]}]},
        "coco_negbbox.json": {**ok, "annotations": [{**anns[0], "bbox": [5, 5, -3, -3]}]},
        "coco_nanbbox.json": {**ok, "annotations": [{**anns[0], "bbox": [5, 5, float("nan"), 3]}]},
        "coco_badcat.json": {**ok, "annotations": [{**anns[0], "category_id": 7}]},
        "coco_missingfile.json": {**ok, "images": [{**images[0], "file_name": "absent.png"}]},
        "coco_wrongsize.json": {**ok, "images": [{**images[0], "height": 64}]},
        "coco_bombimage.json": {**ok, "images": [{**images[0], "file_name": "bomb.png"}]},
        "coco_badseg.json": {**ok, "annotations": [{**anns[0], "segmentation": "polygon"}]},
        "coco_noid.json": {**ok, "images": [{"file_name": "0.png", "height": 32, "width": 32}]},
        "coco_strdims.json": {**ok, "images": [{**images[0], "height": "tall"}]},
        "coco_escape.json": {**ok, "images": [{**images[0], "file_name": "../../../etc/passwd"}]},
    }
    for name, obj in files.items():
        (F / name).write_text(json.dumps(obj))
    (F / "coco_invalid.json").write_text("{not json")
    (F / "coco_latin1.json").write_bytes(b'{"images": [], "categories": [{"id": 1, "name": "caf\xe9"}]}')


def _ade(F: Path) -> None:
    def seg_root(name: str) -> Path:
        root = F / name
        for split in ("training", "validation"):
            (root / "images" / split).mkdir(parents=True)
            (root / "annotations" / split).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)).save(root / "images" / split / f"{i}.jpg")
                Image.fromarray(np.full((16, 16), i + 1, np.uint8)).save(root / "annotations" / split / f"{i}.png")
        return root

    def mask(name: str) -> Path:
        return seg_root(name) / "annotations" / "training" / "0.png"

    seg_root("ade_ok")
    mask("ade_nomask").unlink()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(mask("ade_rgbmask"))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(mask("ade_smallmask"))
    text_as(mask("ade_textmask"))
    bomb_png(mask("ade_bombmask"))
    text_as(seg_root("ade_textimage") / "images" / "training" / "0.jpg")
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(mask("ade_bigvalue"))
    root = seg_root("ade_empty")
    for sub in ("images/training", "annotations/training"):
        for f in (root / sub).iterdir():
            f.unlink()
    if HAS_FIFO:
        p = seg_root("ade_fifo") / "images" / "training" / "0.jpg"
        p.unlink()
        fifo(p)


def _yaml(F: Path) -> None:
    texts = {
        "dup.yaml": "seed: 1\nseed: 2\n",
        "dup_nested.yaml": "optim:\n  lr: 0.1\n  lr: 0.2\n",
        "invalid.yaml": "optim: [1\n",
        "tabs.yaml": "optim:\n\tlr: 1\n",
        "list.yaml": "- 1\n- 2\n",
        "scalar.yaml": "just a string\n",
        "unknown_top.yaml": "optimiser: {lr: 1}\n",
        "unknown_nested.yaml": "optim: {learning_rate: 1}\n",
        "wrong_type.yaml": "seed: [1, 2]\n",
        "section_scalar.yaml": "optim: 3\n",
        "laughs.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
        "python_tag.yaml": "seed: !!python/object/apply:os.system ['mkdir pwned_yaml']\n",
        "deep.yaml": "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "det_unknown.yaml": "model: {archh: mask_rcnn}\n",
        "seg_unknown.yaml": "train: {max_iter: 3}\n",
    }
    for name, t in texts.items():
        (F / name).write_text(t)
    (F / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (F / "utf16.yaml").write_bytes("seed: 1\n".encode("utf-16"))
    garbage(F / "binary.yaml")
    (F / "empty.yaml").write_text("")
    (F / "folder.yaml").mkdir()


def _checkpoints(F: Path) -> None:
    tiny_checkpoint(F / "tiny.pt")
    tiny_checkpoint(F / "nan.pt", nan=True)
    ck = torch.load(F / "tiny.pt", weights_only=True)
    cfg, meta = ck["config"], ck["meta"]

    def with_model(**changes):
        return {**cfg, "model": {**cfg["model"], **changes}}

    tiny_checkpoint(F / "badname.pt", config=with_model(name="focalnet_nope"))
    tiny_checkpoint(F / "badkwargs.pt", config=with_model(kwargs={**TINY_KWARGS, "embed_dim": -4}))
    tiny_checkpoint(F / "typokwargs.pt", config=with_model(kwargs={**TINY_KWARGS, "embd_dim": 8}))
    tiny_checkpoint(F / "wrongarch.pt", config=with_model(kwargs={**TINY_KWARGS, "embed_dim": 16}))
    tiny_checkpoint(F / "nopreprocess.pt", meta={**meta, "preprocess": None})
    tiny_checkpoint(F / "badpreprocess.pt", meta={**meta, "preprocess": {"input_size": "big"}})
    tiny_checkpoint(F / "fewnames.pt", meta={**meta, "class_names": ["only one"]})
    tiny_checkpoint(F / "strmeta.pt", meta="not a dict")
    tiny_checkpoint(F / "badtask.pt", task="astrology")
    tiny_checkpoint(F / "strconfig.pt", config="not a dict")
    tiny_checkpoint(F / "unknownkey.pt", config={**cfg, "bogus": 1})
    tiny_checkpoint(F / "noconfig.pt", drop=("config",))
    data = (F / "tiny.pt").read_bytes()
    (F / "truncated.pt").write_bytes(data[: len(data) // 2])
    (F / "empty.pt").write_bytes(b"")
    garbage(F / "garbage.pt")
    garbage(F / "garbage.pth", seed=2)
    text_as(F / "text.pth", "model weights go here")
    torch.save({"step": 1}, F / "nomodel.pt")
    torch.save({"model": {"w": torch.zeros(2)}}, F / "nometa.pt")
    torch.save([1, 2, 3], F / "list.pt")
    torch.save(torch.zeros(3), F / "tensor.pt")
    torch.save({"model": {"a": 1, "b": "x"}}, F / "notensors.pt")
    import focalnet

    torch.save(focalnet.create_model("focalnet_tiny_srf", embed_dim=8, depths=[1, 1, 1, 1]).state_dict(),
               F / "tiny_sd.pth")
    (F / "tiny_sd.json").write_text(json.dumps({"kwargs": {"embed_dim": 8, "depths": [1, 1, 1, 1]}}))
    shutil.copy(F / "tiny_sd.pth", F / "badjson.pth")
    (F / "badjson.json").write_text("{kwargs")
    shutil.copy(F / "tiny_sd.pth", F / "badkw.pth")
    (F / "badkw.json").write_text(json.dumps({"kwargs": {"embed_dim": -4, "depths": "x"}}))
    shutil.copy(F / "tiny_sd.pth", F / "listjson.pth")
    (F / "listjson.json").write_text("[1, 2]")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(F / "small.safetensors"))
    st = (F / "small.safetensors").read_bytes()
    (F / "corrupt.safetensors").write_bytes(st[:20])
    (F / "badheader.safetensors").write_bytes(b"\xff" * 8 + b"{not json}")
    text_as(F / "text.safetensors")
    (F / "ckdir_empty").mkdir()
    (F / "ckdir_garbage" / "checkpoints").mkdir(parents=True)
    garbage(F / "ckdir_garbage" / "checkpoints" / "checkpoint-00000001.pt")
    for name, cfg in {"hf_badjson": "{", "hf_othertype": json.dumps({"model_type": "bert"}),
                      "hf_badcfg": json.dumps({"model_type": "focalnet", "embed_dim": "wide", "depths": 3}),
                      "hf_listcfg": "[]"}.items():
        (F / name).mkdir()
        save_file({"w": torch.zeros(2)}, str(F / name / "model.safetensors"))
        (F / name / "config.json").write_text(cfg)
    (F / "hf_empty").mkdir()


def _images(F: Path) -> None:
    good_png(F / "good.png")
    Image.open(F / "good.png").convert("RGB").save(F / "good.jpg")
    exif_jpeg(F / "exif.jpg", 6)
    bomb_png(F / "bomb.png")
    truncated_png(F / "trunc.png")
    truncated_jpeg(F / "trunc.jpg")
    text_as(F / "text.png")
    garbage(F / "garbage.jpg")
    (F / "empty.png").write_bytes(b"")
    (F / "dir.png").mkdir()
    garbage(F / "garbage.gif", seed=3)
    garbage(F / "garbage.mp4", seed=4)
    (F / "noimages").mkdir()
    (F / "good.txt").write_text("hello")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(F / "one_pixel.png")
    Image.fromarray(np.zeros((3, 4000, 3), np.uint8)).save(F / "sliver.png")
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(F / "cmyk.tif") if False else None
    if HAS_FIFO:
        fifo(F / "pipe.png")
        fifo(F / "pipe.gif")
        fifo(F / "pipe.pt")
        fifo(F / "pipe.yaml")


def _data(F: Path) -> None:
    _folder_set(F / "data_ok")
    (F / "data_flat" / "train").mkdir(parents=True)
    good_png(F / "data_flat" / "train" / "0.png")
    (F / "data_emptyclasses" / "train" / "a").mkdir(parents=True)
    (F / "data_emptyclasses" / "val" / "a").mkdir(parents=True)
    root = _folder_set(F / "data_allbad")
    for p in root.rglob("*.png"):
        text_as(p)
    root = _folder_set(F / "data_onebomb")
    bomb_png(root / "train" / "a" / "0.png")
    _folder_set(F / "data_noval", val=False)
    root = _folder_set(F / "data_valextra")
    (root / "val" / "zzz").mkdir()
    good_png(root / "val" / "zzz" / "0.png")
    (F / "data_file").write_text("not a folder")


@pytest.fixture(scope="module")
def F(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for make in (_images, _checkpoints, _write_pickles, _yaml, _data, _coco, _ade):
        make(root)
    return root


# ------------------------------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    command: str  # for the counts
    category: str  # images, checkpoints, weights, configs, overrides, data, coco, ade, arguments
    name: str
    argv: tuple[str, ...]
    expect: int | tuple[int, ...]  # exit code(s) accepted
    fifo: bool = False


CASES: list[Case] = []


def case(command: str, category: str, name: str, argv: str | list[str], expect, fifo: bool = False) -> None:
    if command in ("detect", "segment") and expect in (1, 2):
        expect = (1, 2)  # the old spellings keep their historical exit code 2 for every error: a clean failure
    CASES.append(Case(command, category, name, tuple(argv.split() if isinstance(argv, str) else argv), expect,
                      fifo))


OK, RUN, USAGE = 0, 1, 2
FAIL = (RUN, USAGE)  # the old detect/segment spellings and engine-owned checks: a clean failure, either code

# ---- top level
case("cli", "arguments", "unknown-command", "frobnicate", USAGE)
case("cli", "arguments", "unknown-top-flag", "--frobnicate", USAGE)
case("cli", "arguments", "version", "--version", OK)
case("cli", "arguments", "help", "--help", OK)

# ---- models
case("models", "arguments", "no-match", "models nothing_like_this*", OK)
case("models", "arguments", "bad-family", "models --family transformers", USAGE)
case("models", "arguments", "family-missing-value", "models --family", USAGE)
case("models", "arguments", "two-patterns", "models a b", USAGE)
case("models", "arguments", "unknown-flag", "models --params", USAGE)
case("models", "arguments", "bracket-pattern", "models [", OK)

# ---- convert: sources
CONV = "convert {F}/%s {T}/out.safetensors"
for name, src, code in [
    ("missing", "nothing.pth", RUN), ("empty", "empty.pt", RUN), ("truncated", "truncated.pt", RUN),
    ("garbage", "garbage.pth", RUN), ("text", "text.pth", RUN), ("evil-zip", "evil.pt", RUN),
    ("evil-legacy", "evil_legacy.pth", RUN), ("evil-raw", "evil_raw.bin", RUN),
    ("evil-as-safetensors", "evil.safetensors", RUN), ("corrupt-safetensors", "corrupt.safetensors", RUN),
    ("bad-header-safetensors", "badheader.safetensors", RUN), ("text-safetensors", "text.safetensors", RUN),
    ("list", "list.pt", RUN), ("bare-tensor", "tensor.pt", RUN), ("no-tensors", "notensors.pt", RUN),
    ("unknown-shapes", "small.safetensors", RUN), ("hf-empty-folder", "hf_empty", RUN),
    ("hf-invalid-json", "hf_badjson", RUN), ("hf-other-model-type", "hf_othertype", RUN),
    ("hf-bad-config", "hf_badcfg", RUN), ("hf-list-config", "hf_listcfg", RUN),
    ("beside-json-invalid", "badjson.pth", RUN), ("beside-json-bad-kwargs", "badkw.pth", RUN),
    ("beside-json-list", "listjson.pth", RUN), ("image-as-checkpoint", "good.png", RUN),
    ("folder-of-images", "noimages", RUN), ("file-url-missing", None, RUN),
]:
    argv = (CONV % src) if src else "convert file:///nonexistent/x.pth {T}/out.safetensors"
    case("convert", "checkpoints", f"src-{name}", argv, code)
case("convert", "checkpoints", "src-fifo", CONV % "pipe.pt", RUN, fifo=True)
case("convert", "checkpoints", "src-dev-zero", "convert /dev/zero {T}/out.safetensors", RUN)
# ---- convert: arguments and destinations
case("convert", "arguments", "ok", "convert {F}/tiny_sd.pth {T}/ok.safetensors", OK)
case("convert", "arguments", "dst-existing-folder", "convert {F}/tiny_sd.pth {F}/noimages", USAGE)
case("convert", "arguments", "dst-is-source", "convert {F}/tiny_sd.pth {F}/tiny_sd.pth --to original", USAGE)
case("convert", "arguments", "dst-json-name", "convert {F}/tiny_sd.pth {T}/x.json", USAGE)
case("convert", "arguments", "dst-under-a-file", "convert {F}/tiny_sd.pth {F}/good.png/x.safetensors", USAGE)
case("convert", "arguments", "hf-dst-is-file", "convert {F}/tiny_sd.pth {F}/good.png --to hf", USAGE)
case("convert", "arguments", "bad-format", "convert {F}/tiny_sd.pth {T}/x --to onnx", USAGE)
case("convert", "arguments", "unknown-model", "convert {F}/tiny_sd.pth {T}/x.safetensors --model resnet50", USAGE)
case("convert", "arguments", "wrong-model", "convert {F}/tiny_sd.pth {T}/x.safetensors --model focalnet_base_lrf",
     USAGE)
case("convert", "arguments", "transformer-model",
     "convert {F}/tiny_sd.pth {T}/x.safetensors --model focal_transformer_tiny", USAGE)
case("convert", "arguments", "missing-dst", "convert {F}/tiny_sd.pth", USAGE)

# ---- predict: images (the other images of the call are still classified; the exit code says one failed)
PRED = "predict {F}/good.png {F}/%s --checkpoint {F}/tiny.pt --device cpu"
for name, img in [("missing", "absent.png"), ("bomb", "bomb.png"), ("truncated-png", "trunc.png"),
                  ("truncated-jpeg", "trunc.jpg"), ("text", "text.png"), ("garbage", "garbage.jpg"),
                  ("empty", "empty.png"), ("folder", "dir.png"), ("gif-garbage", "garbage.gif"),
                  ("not-an-image-suffix", "good.txt")]:
    case("predict", "images", f"image-{name}", PRED % img, RUN)
case("predict", "images", "image-fifo", PRED % "pipe.png", RUN, fifo=True)
case("predict", "images", "image-dev-zero", "predict /dev/zero --checkpoint {F}/tiny.pt --device cpu", RUN)
case("predict", "images", "exif-ok", "predict {F}/exif.jpg --checkpoint {F}/tiny.pt --device cpu", OK)
case("predict", "images", "one-pixel-ok", "predict {F}/one_pixel.png --checkpoint {F}/tiny.pt --device cpu", OK)
case("predict", "images", "sliver-ok", "predict {F}/sliver.png --checkpoint {F}/tiny.pt --device cpu", OK)
# ---- predict: checkpoints and weights
PCK = "predict {F}/good.png --checkpoint {F}/%s --device cpu"
for name, *ck in [("missing", "absent.pt"), ("empty", "empty.pt"), ("truncated", "truncated.pt"),
                 ("garbage", "garbage.pt"), ("text", "text.pth"), ("evil-zip", "evil.pt"),
                 ("evil-legacy", "evil_legacy.pth"), ("evil-raw", "evil_raw.bin"), ("no-model", "nomodel.pt"),
                 ("no-meta", "nometa.pt"), ("str-meta", "strmeta.pt"), ("list", "list.pt"),
                 ("unknown-task", "badtask.pt"), ("config-not-a-mapping", "strconfig.pt"),
                 ("config-unknown-key", "unknownkey.pt"), ("no-config", "noconfig.pt", (OK, RUN)),
                 ("unknown-model-name", "badname.pt"), ("negative-embed-dim", "badkwargs.pt"),
                 ("kwargs-typo", "typokwargs.pt"), ("no-preprocess", "nopreprocess.pt"),
                 ("bad-preprocess", "badpreprocess.pt"), ("too-few-class-names", "fewnames.pt", (OK, RUN)),
                 ("arch-mismatch", "wrongarch.pt", (OK, RUN)), ("nan-weights", "nan.pt"),
                 ("empty-run-folder", "ckdir_empty"),
                 ("garbage-in-run-folder", "ckdir_garbage"), ("safetensors-not-a-checkpoint", "small.safetensors")]:
    case("predict", "checkpoints", f"checkpoint-{name}", PCK % ck[0], ck[1] if len(ck) > 1 else RUN)
case("predict", "checkpoints", "checkpoint-fifo", PCK % "pipe.pt", RUN, fifo=True)
PW = "predict {F}/good.png --model focalnet_tiny_srf --weights {F}/%s --device cpu"
for name, w in [("missing", "absent.pth"), ("garbage", "garbage.pth"), ("evil", "evil.pt"),
                ("shape-mismatch", "tiny_sd.pth"), ("corrupt-safetensors", "corrupt.safetensors"),
                ("hf-folder-empty", "hf_empty")]:
    case("predict", "weights", f"weights-{name}", PW % w, RUN)
case("predict", "arguments", "unknown-model", "predict {F}/good.png --model nope --weights {F}/tiny_sd.pth", USAGE)
case("predict", "arguments", "no-images", "predict --checkpoint {F}/tiny.pt", USAGE)
case("predict", "arguments", "topk-text", "predict {F}/good.png --checkpoint {F}/tiny.pt --topk many", USAGE)
case("predict", "arguments", "topk-zero", "predict {F}/good.png --checkpoint {F}/tiny.pt --topk 0", USAGE)
case("predict", "arguments", "topk-negative", "predict {F}/good.png --checkpoint {F}/tiny.pt --topk -1", USAGE)
case("predict", "arguments", "topk-larger-than-classes", "predict {F}/good.png --checkpoint {F}/tiny.pt --topk 50",
     OK)
case("predict", "arguments", "device-bogus", "predict {F}/good.png --checkpoint {F}/tiny.pt --device bogus", USAGE)

# ---- eval
TINYDATA = ["data.limit_val=4", "data.eval_batch_size=4"]
EV = "eval --checkpoint {F}/tiny.pt --device cpu --json {T}/e.json data.dataset=folder"
for name, extra, code in [
    ("root-missing", "data.root={F}/absent", RUN), ("root-a-file", "data.root={F}/data_file", RUN),
    ("flat-folder", "data.root={F}/data_flat", RUN), ("empty-classes", "data.root={F}/data_emptyclasses", RUN),
    ("all-images-bad", "data.root={F}/data_allbad", RUN), ("no-val-split", "data.root={F}/data_noval", RUN),
    ("val-has-extra-class", "data.root={F}/data_valextra", RUN),
    ("unknown-key", "data.root={F}/data_ok data.bogus=1", USAGE),
    ("not-a-data-key", "data.root={F}/data_ok optim.lr=1", (OK, USAGE)),
    ("no-equals", "data.root={F}/data_ok data.root", USAGE),
    ("empty-key", "data.root={F}/data_ok =3", USAGE),
    ("double-dot", "data.root={F}/data_ok data..root=x", USAGE),
    ("batch-size-text", "data.root={F}/data_ok data.eval_batch_size=lots", USAGE),
    ("batch-size-zero", "data.root={F}/data_ok data.eval_batch_size=0", USAGE),
    ("dup-key-in-value", "data.root={F}/data_ok data.mean={a:1,a:2}", USAGE),
    ("ok", "data.root={F}/data_ok", OK),
]:
    case("eval", "data" if code != USAGE else "overrides", f"eval-{name}", [*EV.split(), *extra.split()], code)
for name, ck in [("garbage", "garbage.pt"), ("evil", "evil.pt"), ("nan", "nan.pt"), ("missing", "absent.pt")]:
    case("eval", "checkpoints", f"eval-checkpoint-{name}",
         f"eval --checkpoint {{F}}/{ck} --device cpu data.dataset=folder data.root={{F}}/data_ok", RUN)
case("eval", "arguments", "eval-amp-bogus", "eval --checkpoint {F}/tiny.pt --amp fp8", USAGE)
case("eval", "arguments", "eval-out-is-a-file",
     "eval --checkpoint {F}/tiny.pt --device cpu --out {F}/good.png data.dataset=folder data.root={F}/data_ok", USAGE)
case("eval", "arguments", "eval-json-is-a-folder",
     "eval --checkpoint {F}/tiny.pt --device cpu --json {F}/noimages data.dataset=folder data.root={F}/data_ok", FAIL)

# ---- train
TT = ["model.kwargs={embed_dim: 8, depths: [1, 1, 1, 1], patch_size: 2}", "data.img_size=16", "data.batch_size=4",
      "data.limit_train=8", "data.limit_val=4", "sched.epochs=1", "progress=false", "tensorboard=false",
      "max_steps=1", "output_dir={T}"]
for name, cfg, code in [
    ("missing", "absent.yaml", USAGE), ("folder", "folder.yaml", USAGE), ("dup-keys", "dup.yaml", USAGE),
    ("dup-nested", "dup_nested.yaml", USAGE), ("invalid", "invalid.yaml", USAGE), ("tabs", "tabs.yaml", USAGE),
    ("list", "list.yaml", USAGE), ("scalar", "scalar.yaml", USAGE), ("unknown-top", "unknown_top.yaml", USAGE),
    ("unknown-nested", "unknown_nested.yaml", USAGE), ("wrong-type", "wrong_type.yaml", USAGE),
    ("section-is-scalar", "section_scalar.yaml", USAGE), ("billion-laughs", "laughs.yaml", USAGE),
    ("python-tag", "python_tag.yaml", USAGE), ("deep-nesting", "deep.yaml", USAGE),
    ("latin1", "latin1.yaml", USAGE), ("utf16", "utf16.yaml", USAGE), ("binary", "binary.yaml", USAGE),
    ("image-as-config", "good.png", USAGE), ("empty-is-defaults", "empty.yaml", OK),
]:
    case("train", "configs", f"config-{name}", ["train", "--config", f"{{F}}/{cfg}", *TT], code)
case("train", "configs", "config-fifo", ["train", "--config", "{F}/pipe.yaml", *TT], USAGE, fifo=True)
for name, ov in [
    ("no-equals", "optim.lr"), ("empty-key", "=1"), ("unknown-section", "optimiser.lr=1"),
    ("unknown-key", "optim.learning_rate=1"), ("setting-as-section", "seed.x=1"), ("lr-text", "optim.lr=fast"),
    ("lr-negative", "optim.lr=-1"), ("lr-zero", "optim.lr=0"), ("batch-zero", "data.batch_size=0"),
    ("batch-negative", "data.batch_size=-8"), ("epochs-negative", "sched.epochs=-1"),
    ("img-size-tiny", "data.img_size=1"), ("std-zero", "data.std=[0,0,0]"), ("std-short", "data.std=[1]"),
    ("model-unknown", "model.name=nope"), ("model-kwargs-typo", "model.kwargs={embd_dim: 8}"),
    ("embed-negative", "model.kwargs={embed_dim: -4, depths: [1, 1, 1, 1]}"),
    ("focal-levels-zero", "model.kwargs={embed_dim: 8, depths: [1, 1, 1, 1], focal_levels: [0, 0, 0, 0]}"),
    ("optimizer-unknown", "optim.name=nope"),
    ("bad-images-policy", "data.bad_images=maybe"), ("dataset-unknown", "data.dataset=imagenet9000"),
    ("device-bogus", "device=bogus"), ("amp-bogus", "amp=fp8"), ("dup-key-in-value", "model.kwargs={a: 1, a: 2}"),
    ("name-with-slash", "name=../../escape"), ("eval-every-zero", "eval_every=0"),
    ("mixup-negative", "aug.mixup=-1"), ("accum-zero", "optim.accum_steps=0"), ("keep-negative", "threads=-3"),
]:
    case("train", "overrides", f"override-{name}", ["train", *TT, ov], USAGE)
for name, root, code, extra in [
    ("root-missing", "absent", RUN, []), ("root-a-file", "data_file", RUN, []), ("flat", "data_flat", RUN, []),
    ("empty-classes", "data_emptyclasses", RUN, []), ("all-bad", "data_allbad", RUN, []),
    ("no-val", "data_noval", RUN, []), ("val-extra-class", "data_valextra", RUN, []),
    ("bomb-skipped", "data_onebomb", OK, []), ("bomb-error-policy", "data_onebomb", RUN, ["data.bad_images=error"]),
    ("root-unset", None, FAIL, []),
]:
    ov = ["data.dataset=folder"] + ([f"data.root={{F}}/{root}"] if root else [])
    case("train", "data", f"data-{name}", ["train", *TT, *ov, *extra], code)
for name, ck, code in [("missing", "absent.pt", RUN), ("garbage", "garbage.pt", RUN), ("evil", "evil.pt", RUN),
                       ("not-a-training-checkpoint", "nometa.pt", FAIL), ("other-architecture", "wrongarch.pt", FAIL)]:
    case("train", "checkpoints", f"resume-{name}", ["train", *TT, "--resume", f"{{F}}/{ck}"], code)
case("train", "arguments", "output-dir-is-a-file", ["train", *TT, "output_dir={F}/good.png"], FAIL)
case("train", "arguments", "two-stage-depths-ok", ["train", *TT, "model.kwargs={embed_dim: 8, depths: [1, 1]}"], OK)
case("train", "arguments", "pretrained-garbage", ["train", *TT, "model.pretrained={F}/garbage.pth"], RUN)
case("train", "arguments", "pretrained-evil", ["train", *TT, "model.pretrained={F}/evil.pt"], RUN)

# ---- visualize
VIS = "visualize {F}/%s --out {T}/maps --size 32"
for name, img in [("missing", "absent.png"), ("bomb", "bomb.png"), ("text", "text.png"), ("empty", "empty.png"),
                  ("truncated", "trunc.jpg"), ("empty-folder", "noimages"), ("garbage-gif", "garbage.gif"),
                  ("garbage-video", "garbage.mp4")]:
    case("visualize", "images", f"image-{name}", VIS % img, RUN)
case("visualize", "images", "image-fifo", VIS % "pipe.png", RUN, fifo=True)
case("visualize", "images", "video-fifo", VIS % "pipe.gif", RUN, fifo=True)
case("visualize", "images", "exif-ok", VIS % "exif.jpg", OK)
VW = "visualize {F}/good.png --out {T}/maps --size 32 --weights {F}/%s"
for name, w in [("missing", "absent.pth"), ("garbage", "garbage.pth"), ("evil", "evil.pt"), ("nan", "nan.pt"),
                ("shape-mismatch", "tiny_sd.pth"), ("evil-legacy", "evil_legacy.pth")]:
    case("visualize", "weights", f"weights-{name}", VW % w, RUN)
for name, extra in [("fps-zero", "--animate {T}/a.gif --fps 0"), ("fps-negative", "--animate {T}/a.gif --fps -1"),
                    ("every-zero", "--every 0"), ("size-negative", "--size -3"), ("max-side-zero", "--max-side 0"),
                    ("stages-bogus", "--stages banana"), ("stages-out-of-range", "--stages 9"),
                    ("model-unknown", "--model resnet"), ("animate-png", "--animate {T}/a.png"),
                    ("query-outside", "--query 2 2"), ("head-negative", "--head -1"),
                    ("out-is-a-file", "--out {F}/good.png"), ("device-bogus", "--device bogus"),
                    ("no-figures-without-animate", "--no-figures")]:
    case("visualize", "arguments", f"arg-{name}", (VIS % "good.png") + " " + extra, USAGE)

# ---- serve (every case must fail before a server starts; the runner makes starting one fail the case)
for name, args in [("weights-dir-missing", "--weights-dir {F}/absent"), ("weights-missing", "--weights {F}/absent.pth"),
                   ("models-no-match", "--models nothing*"), ("port-out-of-range", "--port 70000"),
                   ("port-negative", "--port -1"), ("size-zero", "--size 0"), ("upload-negative", "--max-upload-mb -1"),
                   ("queue-zero", "--queue-size 0"), ("port-text", "--port http"),
                   ("weights-dir-is-file", "--weights-dir {F}/good.png"), ("device-bogus", "--device bogus"),
                   ("model-unknown", "--model nope"), ("weights-garbage", "--weights {F}/garbage.pth"),
                   ("weights-evil", "--weights {F}/evil.pt"), ("weights-fifo", "--weights {F}/pipe.pt")]:
    case("serve", "arguments" if "weights-" not in name or "dir" in name else "weights", name, f"serve {args}",
         RUN if name in ("weights-garbage", "weights-evil") else USAGE, fifo=name == "weights-fifo")

# ---- benchmark (every case must fail before timing anything)
for name, args in [("model-unknown", "--model nope"), ("batch-zero", "--batch 0"), ("size-zero", "--size 0"),
                   ("rounds-zero", "--rounds 0"), ("warmup-negative", "--warmup -1"),
                   ("threads-negative", "--threads -1"), ("threads-zero", "--threads 0"),
                   ("compare-unknown", "--compare pytorch-image-models --rounds 1"), ("batch-text", "--batch eight")]:
    case("benchmark", "arguments", name, f"benchmark {args}", USAGE)

# ---- detect
DT = ["--set", "model.backbone_overrides={embed_dim: 8, depths: [1, 1, 1, 1]}", "--set", "optim.max_iters=1",
      "--set", "model.min_size=[32]", "--set", "model.max_size=32", "--set", "data.num_workers=0",
      "--output", "{T}/det", "--no-progress"]


def _det_data(ann: str, images: str = "coco_images") -> list[str]:
    return ["--set", f"data.train_images={{F}}/{images}", "--set", f"data.train_ann={{F}}/{ann}",
            "--set", f"data.val_images={{F}}/{images}", "--set", f"data.val_ann={{F}}/{ann}"]


for name, ann in [("missing", "absent.json"), ("invalid-json", "coco_invalid.json"), ("latin1", "coco_latin1.json"),
                  ("a-list", "coco_list.json"), ("no-images", "coco_noimages.json"), ("no-categories",
                  "coco_nocats.json"), ("dangling-annotation", "coco_dangling.json"), ("bbox-text",
                  "coco_badbbox.json"), ("bbox-short", "coco_shortbbox.json"), ("bbox-negative", "coco_negbbox.json"),
                  ("bbox-nan", "coco_nanbbox.json"), ("unknown-category", "coco_badcat.json"),
                  ("image-file-missing", "coco_missingfile.json"), ("image-size-mismatch", "coco_wrongsize.json"),
                  ("image-bomb", "coco_bombimage.json"), ("segmentation-text", "coco_badseg.json"),
                  ("image-without-id", "coco_noid.json"), ("height-text", "coco_strdims.json"),
                  ("path-escape", "coco_escape.json"), ("folder-as-file", "noimages")]:
    case("detect", "coco", f"coco-{name}", ["detect", "train", *DT, *_det_data(ann)], RUN)
case("detect", "coco", "images-folder-missing", ["detect", "train", *DT, *_det_data("coco_ok.json", "absent")], RUN)
for name, cfg in [("missing", "absent.yaml"), ("dup", "dup.yaml"), ("latin1", "latin1.yaml"),
                  ("unknown-key", "det_unknown.yaml"), ("list", "list.yaml")]:
    case("detect", "configs", f"config-{name}", ["detect", "train", "--config", f"{{F}}/{cfg}", *DT], USAGE)
for name, ov in [("no-equals", "optim.lr"), ("unknown", "optim.learning_rate=1"), ("arch-unknown", "model.arch=yolo"),
                 ("backbone-unknown", "model.backbone=resnet"), ("lr-text", "optim.lr=fast")]:
    case("detect", "overrides", f"override-{name}", ["detect", "train", *DT, "--set", ov,
                                                     *_det_data("coco_ok.json")], USAGE)
for name, ck in [("missing", "absent.pt"), ("garbage", "garbage.pt"), ("evil", "evil.pt"),
                 ("classification-checkpoint", "tiny.pt")]:
    # the checkpoint names its task: the old spelling may run a classification checkpoint as what it is
    code = (OK, RUN, USAGE) if name == "classification-checkpoint" else RUN
    case("detect", "checkpoints", f"eval-{name}", f"detect eval --checkpoint {{F}}/{ck} --device cpu", code)
    case("detect", "checkpoints", f"predict-{name}",
         f"detect predict --checkpoint {{F}}/{ck} {{F}}/good.png --out {{T}}/p --device cpu", code)
for name, args in [("n-train-negative", "--n-train -1"), ("size-zero", "--size 0"), ("root-is-a-file",
                   "--root {F}/good.png")]:
    case("detect", "arguments", f"data-{name}", f"detect data {args}", USAGE)

# ---- the new spelling for detection / segmentation: `focalnet train` with task=... (same bad files)
NDT = ["train", "task=detection", "model.backbone_overrides={embed_dim: 8, depths: [1, 1, 1, 1]}",
       "model.min_size=[32]", "model.max_size=32", "data.num_workers=0", "max_steps=1", "--out", "{T}/det"]
for name, ann in [("missing", "absent.json"), ("invalid-json", "coco_invalid.json"), ("a-list", "coco_list.json"),
                  ("dangling-annotation", "coco_dangling.json"), ("bbox-text", "coco_badbbox.json"),
                  ("image-file-missing", "coco_missingfile.json"), ("image-bomb", "coco_bombimage.json"),
                  ("height-text", "coco_strdims.json")]:
    ov = ["data.train_images={F}/coco_images", f"data.train_ann={{F}}/{ann}",
          "data.val_images={F}/coco_images", f"data.val_ann={{F}}/{ann}"]
    case("train", "coco", f"detection-coco-{name}", [*NDT, *ov], FAIL)
NSG = ["train", "task=segmentation", "model.backbone_kwargs={embed_dim: 8, depths: [1, 1, 1, 1]}", "max_steps=1",
       "data.workers=0", "data.crop_size=[16, 16]", "data.img_scale=[32, 16]", "model.channels=8",
       "model.aux_channels=8", "model.num_classes=4", "data.reduce_zero_label=false", "--out", "{T}/seg"]
for name, root in [("root-missing", "absent"), ("image-without-mask", "ade_nomask"), ("rgb-mask", "ade_rgbmask"),
                   ("mask-size-mismatch", "ade_smallmask"), ("bomb-mask", "ade_bombmask"),
                   ("text-image", "ade_textimage"), ("label-out-of-range", "ade_bigvalue")]:
    case("train", "ade", f"segmentation-ade-{name}", [*NSG, f"data.root={{F}}/{root}"], FAIL)

# ---- export (every case must fail before anything is exported)
EXP = "export --out {T}/m.onnx --checkpoint {F}/%s"
for name, ck in [("missing", "absent.pt"), ("garbage", "garbage.pt"), ("evil", "evil.pt"), ("nan", "nan.pt"),
                 ("truncated", "truncated.pt"), ("empty-run-folder", "ckdir_empty")]:
    case("export", "checkpoints", f"checkpoint-{name}", EXP % ck, RUN)
case("export", "checkpoints", "checkpoint-kwargs-typo", EXP % "typokwargs.pt", (OK, RUN))  # meta rebuilds it
for name, extra in [("size-zero", "--size 0"), ("batch-zero", "--batch 0"), ("rounds-zero", "--rounds 0"),
                    ("threads-negative", "--threads -1"), ("tolerance-negative", "--tolerance -1"),
                    ("format-unknown", "--format tflite"), ("out-is-a-folder", "--out {F}/noimages")]:
    case("export", "arguments", f"arg-{name}", (EXP % "tiny.pt") + " " + extra, USAGE)
case("export", "arguments", "model-unknown", "export --out {T}/m.onnx --model nope", USAGE)
case("export", "weights", "weights-garbage", "export --out {T}/m.onnx --model focalnet_tiny_srf --weights "
     "{F}/garbage.pth", RUN)

# ---- data
for name, args in [("unknown-kind", "data synth imagenet --out {T}/d"), ("no-kind", "data synth"),
                   ("out-is-a-file", "data synth coco --out {F}/good.png"),
                   ("ade-out-is-a-file", "data synth ade --out {F}/good.png"),
                   ("panoptic-out-is-a-file", "data synth panoptic --out {F}/good.png"),
                   ("panoptic-no-train", "data synth panoptic --out {T}/p --train 0 --val 2"),
                   ("panoptic-too-small", "data synth panoptic --out {T}/p --size 16 16")]:
    case("data", "arguments", name, args, FAIL)

# ---- segment
SG = ["--set", "model.backbone_kwargs={embed_dim: 8, depths: [1, 1, 1, 1]}", "--set", "train.max_iters=1",
      "--set", "train.batch_size=2", "--set", "data.workers=0", "--set", "data.crop_size=[16, 16]",
      "--set", "data.img_scale=[32, 16]", "--set", "model.channels=8", "--set", "model.aux_channels=8",
      "--set", "model.num_classes=4", "--set", "data.reduce_zero_label=false", "--out", "{T}/seg"]
for name, root in [("root-missing", "absent"), ("image-without-mask", "ade_nomask"), ("rgb-mask", "ade_rgbmask"),
                   ("mask-size-mismatch", "ade_smallmask"), ("text-mask", "ade_textmask"),
                   ("bomb-mask", "ade_bombmask"), ("text-image", "ade_textimage"), ("label-out-of-range",
                   "ade_bigvalue"), ("empty-folders", "ade_empty"), ("root-is-a-file", "good.png")]:
    case("segment", "ade", f"ade-{name}", ["segment", "train", *SG, "--data", f"{{F}}/{root}"], RUN)
case("segment", "ade", "ade-fifo-image", ["segment", "train", *SG, "--data", "{F}/ade_fifo"], RUN, fifo=True)
for name, cfg in [("missing", "absent.yaml"), ("dup", "dup.yaml"), ("latin1", "latin1.yaml"),
                  ("unknown-key", "seg_unknown.yaml")]:
    case("segment", "configs", f"config-{name}", ["segment", "train", "--config", f"{{F}}/{cfg}", *SG,
                                                  "--data", "{F}/ade_ok"], USAGE)
for name, ov in [("no-equals", "train.lr"), ("unknown", "train.learning_rate=1"),
                 ("classes-one", "model.num_classes=1"), ("test-mode", "test.mode=blurry"),
                 ("crop-negative", "data.crop_size=[-1, 16]")]:
    case("segment", "overrides", f"override-{name}", ["segment", "train", *SG, "--set", ov, "--data", "{F}/ade_ok"],
         USAGE)
for name, ck in [("missing", "absent.pt"), ("garbage", "garbage.pt"), ("evil", "evil.pt"),
                 ("classification-checkpoint", "tiny.pt")]:
    # the checkpoint names its task: the old spelling may run a classification checkpoint as what it is
    code = (OK, RUN, USAGE) if name == "classification-checkpoint" else RUN
    case("segment", "checkpoints", f"eval-{name}", f"segment eval --checkpoint {{F}}/{ck} --device cpu", code)
    case("segment", "checkpoints", f"predict-{name}",
         f"segment predict --checkpoint {{F}}/{ck} {{F}}/good.png --out {{T}}/p --device cpu", code)
for name, args in [("train-negative", "--out {T}/s --train -1"), ("size-zero", "--out {T}/s --size 0 0"),
                   ("out-is-a-file", "--out {F}/good.png --train 1 --val 1")]:
    case("segment", "arguments", f"synth-{name}", f"segment synth {args}", USAGE)


# ------------------------------------------------------------------------------------------------- runner
_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING) ")


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse exits (usage errors, --help)
        assert e.code is None or isinstance(e.code, int), f"SystemExit with a message: {e.code!r}"
        rc = e.code or 0
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def check_outcome(c: Case, rc: int, out: str, err: str) -> None:
    expect = c.expect if isinstance(c.expect, tuple) else (c.expect,)
    shown = f"exit {rc}\n--- stderr ---\n{err[-3000:]}\n--- stdout ---\n{out[-1500:]}"
    assert "Traceback" not in err + out, shown
    assert "internal error" not in err, shown
    assert rc in expect, f"expected exit {expect}, got {shown}"
    if rc == 0:
        return
    lines = [ln for ln in err.splitlines() if ln.strip() and not _LOG.match(ln)]
    assert lines, f"no message on stderr: {shown}"
    assert lines[-1].startswith("focalnet"), f"the last line is not the command's message: {shown}"
    assert not any(ln[:1].isspace() for ln in lines), f"a message continues on another line: {shown}"
    assert sum(ln.startswith("focalnet") for ln in lines) == 1, f"more than one message: {shown}"


@pytest.fixture
def no_network(monkeypatch):
    """Nothing in the corpus may reach the network: fail fast instead of retrying."""
    import socket

    def refuse(*a, **k):
        raise OSError("network disabled in the bad-input corpus")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("c", CASES, ids=[f"{c.command}:{c.name}" for c in CASES])
def test_bad_input(c: Case, F, tmp_path, capsys, monkeypatch, no_network):
    if c.fifo and not HAS_FIFO:
        pytest.skip("no named pipes here")
    if c.command == "serve":
        import focalnet.viz.web as web

        def no_server(*a, **k):
            raise AssertionError("the bad input reached the web server instead of being refused")

        monkeypatch.setattr(web, "launch", no_server)
    monkeypatch.chdir(tmp_path)  # commands with default output folders write here
    argv = [a.replace("{F}", str(F)).replace("{T}", str(tmp_path)) for a in c.argv]
    rc, out, err = _run(argv, capsys)
    check_outcome(c, rc, out, err)
    assert not list(F.glob("pwned*")) and not list(tmp_path.glob("pwned*")), "a pickle ran code"


def test_corpus_size_and_coverage():
    counts = Counter(c.command for c in CASES)
    assert len(CASES) >= 150, len(CASES)
    for command in ("models", "convert", "train", "eval", "predict", "visualize", "serve", "benchmark", "detect",
                    "segment"):
        assert counts[command] >= 4, (command, counts[command])
    assert {c.category for c in CASES} >= {"images", "checkpoints", "weights", "configs", "overrides", "data", "coco",
                                           "ade", "arguments"}
    assert len({(c.command, c.name) for c in CASES}) == len(CASES), "duplicate case names"


def test_the_checker_catches_what_it_must():
    """The corpus' assertions are not vacuous: a traceback, two lines, a wrong code, a missing message all fail."""
    c = Case("x", "arguments", "probe", (), RUN)
    check_outcome(c, 1, "", "focalnet x: one line\n")
    check_outcome(c, 1, "", "2026-12-01 10:00:00,000 INFO focalnet.x: log\nWARNING: note\nfocalnet x: one line\n")
    for rc, err in [(1, "Traceback (most recent call last):\nfocalnet x: boom\n"), (1, "focalnet x: a\n  b\n"),
                    (2, "focalnet x: wrong code\n"), (1, ""), (1, "focalnet x: internal error: KeyError\n"),
                    (1, "focalnet x: a\nfocalnet x: b\n"), (1, "focalnet x: msg\nmore\n")]:
        with pytest.raises(AssertionError):
            check_outcome(c, rc, "", err)
