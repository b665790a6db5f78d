"""Bad input ends in one line and an exit code: the shared error type, YAML, NaN weights, convert, visualize."""

from __future__ import annotations

import json

import pytest
import torch

from bad_files import good_png, tiny_checkpoint
from focalnet.cli import main
from focalnet.data import DataError, ImageLoadError
from focalnet.engine.checkpoint import CheckpointSaveError
from focalnet.errors import FocalnetError, UsageError, one_line
from focalnet.utils.config import ConfigError, load_yaml, parse_override, read_yaml
from focalnet.weights.loading import CheckpointError


def test_every_user_error_is_a_focalnet_error_with_its_exit_code():
    assert issubclass(ConfigError, UsageError) and issubclass(ConfigError, ValueError) and ConfigError.exit_code == 2
    for cls, builtin in ((CheckpointError, ValueError), (ImageLoadError, OSError), (DataError, ValueError),
                         (CheckpointSaveError, OSError)):
        assert issubclass(cls, FocalnetError) and issubclass(cls, builtin) and cls.exit_code == 1
    assert one_line("a:\n  b\n\n  c") == "a: b; c"


def test_the_cli_shows_a_user_error_as_one_line_and_a_bug_as_an_internal_error(monkeypatch, capsys):
    from focalnet.commands import models

    def boom(args):
        raise CheckpointError("first line\n  second line")

    monkeypatch.setattr(models, "run", boom)
    assert main(["models"]) == 1
    assert capsys.readouterr().err == "focalnet models: first line; second line\n"

    def bug(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(models, "run", bug)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError" in err and "Traceback" not in err
    assert main(["models", "-v"]) == 1
    assert "Traceback" in capsys.readouterr().err  # -v shows it, for the bug report


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["models", "--family"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("focalnet models: error: argument --family")


# ---------------------------------------------------------------------------------------------- YAML
@pytest.mark.parametrize("text, match", [
    ("a: 1\nb: 2\na: 3\n", r"duplicate key 'a' on line 3 \(first on line 1\)"),
    ("data:\n  root: x\n  root: y\n", "duplicate key 'root' on line 3"),
    ("model: {name: a, name: b}\n", "duplicate key 'name'"),
])
def test_duplicate_yaml_keys_are_refused(tmp_path, text, match):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_yaml(f)


def test_yaml_merge_keys_may_be_overridden_and_distinct_keys_pass():
    assert load_yaml("b: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n") == {"b": {"x": 1, "y": 2}, "c": {"x": 3, "y": 2}}


def test_duplicate_keys_in_an_override_value_are_refused():
    with pytest.raises(ConfigError, match="override 'model.kwargs=.*duplicate key 'a'"):
        parse_override("model.kwargs={a: 1, a: 2}")
    assert parse_override("a.b=[1") == (["a", "b"], "[1")  # not YAML: stays a string, as before


def test_non_utf8_yaml_is_a_clear_error(tmp_path):
    f = tmp_path / "latin1.yaml"
    f.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml is not UTF-8 text \(byte 0xe9 at offset 9\)"):
        read_yaml(f)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffname: caf\u00e9\n".encode())
    assert read_yaml(bom) == {"name": "caf\u00e9"}


@pytest.mark.parametrize("command", [["train", "--config"], ["train", "task=detection", "--config"],
                                     ["train", "task=segmentation", "--config"]])
def test_duplicate_keys_and_bad_encoding_via_every_config_reader(tmp_path, capsys, command):
    dup = tmp_path / "dup.yaml"
    dup.write_text("seed: 1\nseed: 2\n")
    assert main([*command, str(dup)]) == 2
    err = capsys.readouterr().err
    assert "duplicate key 'seed'" in err and err.count("\n") == 1
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    assert main([*command, str(latin)]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------- weights
def test_predict_with_nan_weights_says_they_are_broken(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "nan.pt", nan=True)
    img = good_png(tmp_path / "x.png")
    assert main(["predict", str(img), "--checkpoint", str(ckpt), "--device", "cpu"]) == 1
    cap = capsys.readouterr()
    assert "nan" not in cap.out.lower()
    assert "weights in" in cap.err and "are broken" in cap.err and cap.err.count("\n") == 1


def test_predict_with_good_weights_still_works(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "ok.pt")
    img = good_png(tmp_path / "x.png")
    assert main(["predict", str(img), "--checkpoint", str(ckpt), "--device", "cpu", "--json", "-"]) == 0
    top = json.loads(capsys.readouterr().out)["results"][0]["top"]
    assert [t["label"] for t in top] and all(0 <= t["prob"] <= 1 for t in top)


# ---------------------------------------------------------------------------------------------- convert
def _tiny_weights(tmp_path):
    import focalnet

    src = tmp_path / "w.pth"
    torch.save(focalnet.create_model("focalnet_tiny_srf", embed_dim=8, depths=[1, 1, 1, 1]).state_dict(), src)
    (tmp_path / "w.json").write_text(json.dumps({"kwargs": {"embed_dim": 8, "depths": [1, 1, 1, 1]}}))
    return src


@pytest.mark.parametrize("to", ["safetensors", "original", "timm"])
def test_convert_into_an_existing_folder_is_a_usage_error(tmp_path, capsys, to):
    src = _tiny_weights(tmp_path)
    (tmp_path / "exists").mkdir()
    assert main(["convert", str(src), str(tmp_path / "exists"), "--to", to]) == 2
    err = capsys.readouterr().err
    assert "is an existing folder; give a file name" in err and err.count("\n") == 1
    assert list((tmp_path / "exists").iterdir()) == []


def test_convert_refuses_to_overwrite_its_source_or_a_file_as_hf_folder(tmp_path, capsys):
    src = _tiny_weights(tmp_path)
    assert main(["convert", str(src), str(src), "--to", "original"]) == 2
    assert "is the source file" in capsys.readouterr().err
    assert main(["convert", str(src), str(src), "--to", "hf"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "out.json")]) == 2
    assert "another name than .json" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "hf"), "--to", "hf"]) == 0  # and the good case works


# ---------------------------------------------------------------------------------------------- visualize
@pytest.mark.parametrize("flag, value, match", [
    ("--fps", "0", "--fps must be a positive number"),
    ("--fps", "-2", "--fps must be a positive number"),
    ("--fps", "nan", "--fps must be a positive number"),
    ("--every", "0", "--every must be >= 1"),
    ("--size", "-1", "--size must be >= 0"),
    ("--max-frames", "0", "--max-frames must be >= 1"),
    ("--animate", "x.png", "must end in .gif or .mp4"),
])
def test_visualize_refuses_bad_numbers_before_any_work(tmp_path, capsys, flag, value, match):
    img = good_png(tmp_path / "x.png")
    assert main(["visualize", str(img), "--out", str(tmp_path / "o"), flag, value]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
