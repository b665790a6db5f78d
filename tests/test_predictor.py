"""focalnet.Predictor (the fast inference path) and the fused CPU inference kernels of focalnet.layers.fused."""

from __future__ import annotations

import pytest
import torch

import focalnet
from focalnet.layers import fused
from focalnet.predictor import Predictor, native_bf16

SMALL = dict(embed_dim=16, depths=[1, 1, 2, 1], num_classes=7, drop_path_rate=0.0)


def _model(**kw) -> focalnet.FocalNet:
    torch.manual_seed(0)
    m = focalnet.FocalNet(**{**SMALL, **kw}).eval()
    with torch.no_grad():  # non-trivial norms and biases, so every fused epilogue matters
        for p in m.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return m


def test_fused_kernels_match_plain_ops():
    if not fused._available():
        pytest.skip("this torch has no oneDNN post-op kernels")
    torch.manual_seed(0)
    x, r = torch.randn(2, 5, 6, 8), torch.randn(2, 5, 6, 12)
    w, b = torch.randn(12, 8), torch.randn(12)
    with torch.no_grad():
        assert fused.fusable(x)
        torch.testing.assert_close(fused.linear_gelu(x, w, b), torch.nn.functional.gelu(x @ w.T + b))
        torch.testing.assert_close(fused.linear_add(x, w, b, r), r + (x @ w.T + b))
        torch.testing.assert_close(fused.linear_mul(x, w, b, r), r * (x @ w.T + b))
        c = torch.randn(2, 8, 9, 9).contiguous(memory_format=torch.channels_last)
        k = torch.randn(8, 1, 5, 5)
        ref = torch.nn.functional.gelu(torch.nn.functional.conv2d(c, k, padding=2, groups=8))
        torch.testing.assert_close(fused.dwconv_gelu(c, k, 2), ref)
    assert not fused.fusable(x)  # autograd on: never the fused kernels


@pytest.mark.parametrize("kw", [{}, dict(use_layerscale=True, use_postln=True, focal_levels=3),
                                dict(use_postln_in_modulation=True, normalize_modulator=True)])
def test_fused_model_equals_exact_model(kw):
    model = _model(**kw)
    x = torch.randn(2, 3, 64, 96)
    exact = Predictor.exact(model)
    assert exact.settings.exact and not exact.settings.compiled
    ref = exact(x)
    with torch.no_grad():
        plain = model(x)  # exact mode switched the fused kernels off
    assert torch.equal(ref, plain)
    fast = Predictor(model, precision="fp32", compile=False)
    assert not fast.settings.exact
    torch.testing.assert_close(fast(x), ref, atol=1e-5, rtol=1e-5)
    # Training is untouched: gradients flow through the plain ops.
    model.train()
    model(x).sum().backward()
    assert model.layers[0].blocks[0].mlp.fc1.weight.grad is not None


def test_predictor_bf16_close_and_float_logits():
    model = _model()
    x = torch.randn(3, 3, 64, 64)
    ref = Predictor.exact(model)(x)
    p = Predictor(model, precision="bf16", compile=False)
    out = p(x)
    assert out.dtype == torch.float32 and out.shape == (3, 7)
    assert p.settings.precision == "bf16" and p.settings.channels_last
    assert (out - ref).abs().max() < 0.1
    auto = Predictor(model, compile="auto")
    assert auto.settings.precision == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
    assert not auto.settings.compiled  # no workload given: compiling would not pay on a CPU
    assert focalnet.Predictor is Predictor


def test_predictor_rejects_bad_settings():
    model = _model()
    with pytest.raises(ValueError, match="precision"):
        Predictor(model, precision="int8")
    with pytest.raises(ValueError, match="fp16"):
        Predictor(model, precision="fp16", device="cpu")
    with pytest.raises(ValueError, match="compile"):
        Predictor(model, compile="maybe")


def test_large_depthwise_weight_grad_matches_aten():
    from focalnet.layers.dwconv import depthwise_conv2d

    torch.manual_seed(0)
    x = torch.randn(2, 4, 11, 9, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(4, 1, 15, 15, dtype=torch.float64)
    x1, w1 = x.clone().requires_grad_(), w.clone().requires_grad_()
    x2, w2 = x.clone().requires_grad_(), w.clone().requires_grad_()
    g = torch.randn(2, 4, 11, 9, dtype=torch.float64)
    torch.nn.functional.conv2d(x1, w1, padding=7, groups=4).backward(g)
    y = depthwise_conv2d(x2, w2, 7)
    y.backward(g)
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w, padding=7, groups=4))
    torch.testing.assert_close(x2.grad, x1.grad)
    torch.testing.assert_close(w2.grad, w1.grad.float().double(), atol=1e-4, rtol=1e-4)  # weight grad in fp32


_HANG_SCRIPT = """
import torch, focalnet
import focalnet.layers.dwconv as dw
calls = []
plain = dw.depthwise_weight_grad
dw.depthwise_weight_grad = lambda *a: calls.append(a[2]) or plain(*a)
torch.manual_seed(0)
torch.set_num_threads(1)
m = focalnet.FocalNet(embed_dim=64, depths=[1, 1, 1, 1], focal_levels=4, focal_windows=9, num_classes=3,
                      drop_path_rate=0.0)
mod = m.layers[0].blocks[0].modulation  # kernels 9, 11, 13, 15
x = torch.randn(2, 112, 112, 64)
with torch.autocast("cpu", dtype=torch.bfloat16):
    y = mod(x)
y.float().sum().backward()
assert mod.focal_layers[3][0].weight.grad.isfinite().all()
assert calls == [15], calls  # only the 15x15 level leaves aten's slow weight gradient
print("ok")
"""


def test_bf16_large_depthwise_backward_does_not_hang():
    """An fl4 / window-9 modulation (15x15 level) under bf16 autocast: forward+backward in a subprocess with a
    timeout. Through aten's weight gradient this takes minutes on one thread; ours takes seconds."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(focalnet.__file__).parents[1])}
    r = subprocess.run([sys.executable, "-c", _HANG_SCRIPT], capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_predict_images_fast_and_exact_paths(tmp_path):
    from PIL import Image

    from focalnet.train.inference import Loaded, predict_images

    model = _model()
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy()).save(p)
        paths.append(str(p))
    pre = {"input_size": 64, "interpolation": "bicubic", "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3}
    loaded = Loaded(model, pre, [f"c{i}" for i in range(7)], "tiny")
    fast = predict_images(loaded, paths, topk=3)
    exact = predict_images(loaded, paths, topk=3, exact=True)
    assert [r["top"][0]["index"] for r in fast] == [r["top"][0]["index"] for r in exact]
    for f, e in zip(fast, exact):
        assert abs(f["top"][0]["prob"] - e["top"][0]["prob"]) < 0.05
    wrapped = Predictor(model, compile=False).as_module()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(wrapped.eval()(x), Predictor(model, compile=False)(x))
