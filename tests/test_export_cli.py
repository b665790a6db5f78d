"""`focalnet export`: ONNX with dynamic batch/size verified in onnxruntime, torch.export program, bad input."""

from __future__ import annotations

import pytest
import torch

import focalnet
from focalnet.cli import main as cli_main
from focalnet.utils import exporting

SMALL = dict(embed_dim=16, depths=[1, 1, 2, 1], num_classes=5, drop_path_rate=0.0)


def _model() -> focalnet.FocalNet:
    torch.manual_seed(0)
    m = focalnet.FocalNet(**SMALL).eval()
    with torch.no_grad():
        for p in m.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return m


def test_onnx_dynamic_batch_and_size_matches_pytorch(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = _model()
    path = exporting.export_onnx(model, tmp_path / "m.onnx", size=64)
    import onnx

    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    # Batch 1-3, non-square sides and one that is no multiple of the stride: one artefact for all.
    diffs = exporting.verify(model, "onnx", path, shapes=[(2, 64, 96), (1, 128, 64), (3, 96, 96), (1, 65, 77)])
    assert len(diffs) == 4 and max(diffs.values()) <= 1e-4, diffs
    # A different model gives different logits: the check can fail.
    other = _model()
    with torch.no_grad():
        other.head.bias.add_(1.0)
    assert max(exporting.verify(other, "onnx", path, shapes=[(1, 64, 64)]).values()) > 0.5


def test_cli_export_onnx_and_program(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    model = _model()
    monkeypatch.setattr("focalnet.commands.export._load", lambda args: (model, "tiny"))
    out = tmp_path / "tiny.onnx"
    assert cli_main(["export", "--format", "onnx", "--out", str(out), "--size", "64", "--time", "--batch", "1",
                     "--rounds", "1", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "verified against PyTorch fp32" in text
    assert "onnxruntime (CPU)" in text and "time / eager" in text
    pt2 = tmp_path / "tiny.pt2"
    assert cli_main(["export", "--format", "torch-export", "--out", str(pt2), "--size", "64"]) == 0
    assert pt2.is_file()
    diffs = exporting.verify(model, "program", pt2, shapes=[(1, 64, 96), (3, 128, 64)])
    assert max(diffs.values()) <= 1e-4


def test_cli_export_bad_input(tmp_path, capsys):
    assert cli_main(["export", "--model", "focalnet_nope", "--out", str(tmp_path / "x.onnx")]) == 2  # usage
    assert "focalnet_nope" in capsys.readouterr().err
    assert cli_main(["export", "--batch", "0", "--model", "focalnet_tiny_srf"]) == 2
    with pytest.raises(SystemExit):
        cli_main(["export", "--format", "tflite"])
