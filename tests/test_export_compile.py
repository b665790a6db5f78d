"""torch.compile (whole-graph capture, forward and backward) and torch.export with dynamic batch and image size.

The inductor backend is not used here: on 2 CPU cores it spends minutes generating and compiling C++, and what we
must prove is that the model *captures* as one graph (dynamo, ``fullgraph=True``) and lowers through AOTAutograd
(``aot_eager``). ``benchmarks/bench_focalnet.py --compile`` measures inductor's speed.
"""

from __future__ import annotations

import pytest
import torch
from torch.export import Dim, export

import focalnet


def _tiny(**kw) -> focalnet.FocalNet:
    torch.manual_seed(0)
    kw = {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_classes": 7, "focal_levels": 3, **kw}
    return focalnet.FocalNet(**kw).eval()


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compile_fullgraph_forward_matches_eager():
    """``fullgraph=True`` raises on any graph break, so passing proves the forward is one dynamo graph."""
    model = _tiny()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
        logits, maps = torch.compile(model.forward_modulation, backend="eager", fullgraph=True)(x, which=[(-1, -1)])
        ref_logits, ref_maps = model.forward_modulation(x, which=[(-1, -1)])
    torch.testing.assert_close(logits, ref_logits)
    key = "layers.3.blocks.0.modulation"
    torch.testing.assert_close(maps[key].gates, ref_maps[key].gates)
    torch.testing.assert_close(maps[key].modulator, ref_maps[key].modulator)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_compile_aot_eager_training_step_matches_eager(checkpointing):
    """Forward + backward through AOTAutograd (train mode, layer scale, post-norm) give eager's loss and grads."""
    model = _tiny(use_layerscale=True, use_postln=True, drop_path_rate=0.0).train()
    model.set_grad_checkpointing(checkpointing)
    x = torch.randn(2, 3, 64, 64)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)

    def step(fn):
        model.zero_grad(set_to_none=True)
        loss = fn(x).logsumexp(-1).mean()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss_c, grads_c = step(compiled)
    loss_e, grads_e = step(model)
    torch.testing.assert_close(loss_c, loss_e)
    assert grads_c.keys() == grads_e.keys()
    for name in grads_e:
        torch.testing.assert_close(grads_c[name], grads_e[name], atol=1e-5, rtol=1e-4, msg=name)


def test_export_dynamic_batch_and_image_size():
    """One exported program serves several batch sizes and image sizes (multiples of 32) with eager's outputs."""
    model = _tiny()
    batch = Dim("batch", min=1, max=64)
    # Sides of at least 64: at 32 the last stage is 1x1 and the channels-last convolutions' stride order becomes
    # ambiguous, which export refuses to generalise over (see docs/benchmarks.md, "torch.export").
    h, w = Dim("h32", min=2, max=64), Dim("w32", min=2, max=64)
    ep = export(model, (torch.randn(2, 3, 64, 96),), dynamic_shapes={"x": {0: batch, 2: 32 * h, 3: 32 * w}})
    runner = ep.module()
    for shape in [(1, 3, 64, 64), (5, 3, 128, 96), (3, 3, 224, 160)]:
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(runner(x), model(x))


@pytest.mark.slow
def test_export_forward_intermediates_any_size():
    """Dense features (padded like the detection backbone) export with free, non-multiple image sizes."""

    class Intermediates(torch.nn.Module):
        def __init__(self, body: focalnet.FocalNet) -> None:
            super().__init__()
            self.body = body

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return tuple(self.body.forward_intermediates(x, intermediates_only=True))

    wrapper = Intermediates(_tiny(num_classes=0, focal_levels=2)).eval()
    dims = {0: Dim("batch", min=1, max=16), 2: Dim("h", min=65, max=1024), 3: Dim("w", min=65, max=1024)}
    ep = export(wrapper, (torch.randn(2, 3, 100, 150),), dynamic_shapes={"x": dims})
    runner = ep.module()
    for shape in [(1, 3, 65, 77), (3, 3, 130, 99)]:
        x = torch.randn(shape)
        with torch.no_grad():
            ours, ref = runner(x), wrapper(x)
        assert [o.shape[-2:] for o in ours] == [r.shape[-2:] for r in ref]
        assert ours[0].shape[-2:] == (-(-shape[2] // 4), -(-shape[3] // 4))
        for a, b in zip(ours, ref, strict=True):
            torch.testing.assert_close(a, b)
