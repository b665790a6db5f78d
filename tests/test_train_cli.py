"""The commands as a user runs them: train -> eval -> predict, and their answers to bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from focalnet.cli import main

TINY = ["model.kwargs={embed_dim: 8, depths: [1, 1, 1, 1], patch_size: 2}", "data.img_size=16", "data.batch_size=8",
        "data.limit_train=32", "data.limit_val=24", "sched.epochs=1", "progress=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", *TINY, f"output_dir={out}", "name=cli"]) == 0
    return out / "cli"


def test_train_writes_everything_and_prints_where(run_dir, capsys):
    for f in ("config.yaml", "metrics.jsonl", "metrics.csv", "curves.png", "eval.json"):
        assert (run_dir / f).is_file(), f
    ckpts = sorted((run_dir / "checkpoints").glob("checkpoint-*.pt"))
    assert [c.name for c in ckpts] == ["checkpoint-00000004.pt"]
    ev = json.loads((run_dir / "eval.json").read_text())
    assert {"top1", "top5", "loss", "images_per_s"} <= set(ev) and ev["images"] == 24
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "val"}
    assert (run_dir / "metrics.csv").read_text().startswith("split,epoch,step,loss,top1,top5,lr")


def test_eval_command_reports_and_writes_json(run_dir, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["eval", "--checkpoint", str(run_dir), "--json", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "top-1" in printed and "images/s" in printed
    ev = json.loads(out.read_text())
    train_eval = json.loads((run_dir / "eval.json").read_text())
    assert ev["images"] == 24 and ev["top1"] == pytest.approx(train_eval["top1"])
    assert ev["loss"] == pytest.approx(train_eval["loss"], rel=1e-5)


def test_predict_prints_topk_and_reports_bad_files(run_dir, tmp_path, capsys):
    from focalnet.data import DigitsDataset

    img, label = DigitsDataset("val")[0]
    good = tmp_path / "digit.png"
    img.resize((32, 32)).convert("LA").save(good)  # grayscale + alpha on purpose
    big16 = tmp_path / "digit16.png"
    Image.fromarray(np.asarray(img.convert("L"), dtype=np.uint16) * 257).save(big16)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = tmp_path / "pred.json"
    rc = main(["predict", str(good), str(big16), str(bad), "--checkpoint", str(run_dir), "--topk", "3",
               "--device", "cpu", "--json", str(out)])
    assert rc == 1  # one file failed; the others were still classified
    res = json.loads(out.read_text())["results"]
    assert [len(r.get("top", [])) for r in res] == [3, 3, 0]
    assert "broken.jpg" in res[2]["error"]
    assert res[0]["top"][0]["label"] in [str(i) for i in range(10)]
    assert sum(p["prob"] for p in res[0]["top"]) <= 1.0 + 1e-6


def test_config_typo_is_a_clear_cli_error(tmp_path, capsys):
    assert main(["train", "optim.wieght_decay=0.1", f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'optim.wieght_decay'" in err and "optim.weight_decay" in err
    assert not any(tmp_path.iterdir())


def test_empty_data_folder_is_a_clear_cli_error(tmp_path, capsys):
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "val").mkdir()
    rc = main(["train", "data.dataset=folder", f"data.root={tmp_path / 'data'}", f"output_dir={tmp_path}"])
    assert rc == 1
    assert "no class sub-folders" in capsys.readouterr().err


def test_print_config_and_missing_checkpoint(tmp_path, capsys):
    assert main(["train", "--print-config", "sched.epochs=3"]) == 0
    assert "epochs: 3" in capsys.readouterr().out
    assert main(["predict", "x.png", "--checkpoint", str(tmp_path)]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_predict_with_a_weights_file_uses_imagenet_names_and_registry_preprocessing(tmp_path, capsys):
    import torch

    from focalnet import create_model
    from focalnet.weights import labels

    model = create_model("focalnet_tiny_iso", drop_path_rate=0.0)  # smallest registered variant, 1000 classes
    path = tmp_path / "tiny_iso.pth"
    torch.save({"model": model.state_dict()}, path)
    img = tmp_path / "rgba.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 4), dtype=np.uint8)).save(img)
    rc = main(["predict", str(img), "--model", "focalnet_tiny_iso", "--weights", str(path), "--device", "cpu",
               "--json", str(tmp_path / "p.json"), "--topk", "2"])
    assert rc == 0
    out = json.loads((tmp_path / "p.json").read_text())
    assert out["label_set"] == "imagenet-1k"
    top = out["results"][0]["top"]
    names = labels("imagenet-1k")
    assert [t["label"] for t in top] == [names[t["index"]] for t in top]


def test_predict_with_released_weights_takes_preprocessing_and_names_from_the_record(tmp_path, monkeypatch, capsys):
    """The download is replaced by a local file (tests never touch the network); the rest is the real path."""
    import torch

    from focalnet import create_model
    from focalnet.weights import get_weights, hub, labels

    path = tmp_path / "focalnet_tiny_srf.pth"
    torch.save({"model": create_model("focalnet_tiny_srf").state_dict()}, path)
    monkeypatch.setattr(hub, "download", lambda url, **kw: path)
    img = tmp_path / "gray16.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 65535, (30, 41), dtype=np.uint16)).save(img)
    assert main(["predict", str(img), "--model", "focalnet_tiny_srf", "--pretrained", "true", "--device", "cpu",
                 "--json", str(tmp_path / "p.json"), "--topk", "3"]) == 0
    out = json.loads((tmp_path / "p.json").read_text())
    assert out["source"] == get_weights("focalnet_tiny_srf").name and out["label_set"] == "imagenet-1k"
    names = labels("imagenet-1k")
    assert [t["label"] for t in out["results"][0]["top"]] == [names[t["index"]] for t in out["results"][0]["top"]]

    from focalnet.train.inference import load_for_inference

    loaded = load_for_inference(model_name="focalnet_tiny_srf", pretrained="ms_in1k")
    rec = get_weights("focalnet_tiny_srf.ms_in1k")
    assert loaded.preprocess["input_size"] == rec.input_size and loaded.preprocess["crop_pct"] == rec.crop_pct
