"""Benchmark utilities and `focalnet benchmark`: peers compute our function, timing bookkeeping, memory numbers.

No test asserts on time; the speed numbers live in docs/benchmarks.md.
"""

from __future__ import annotations

import pytest
import torch

import focalnet
from focalnet.cli import main as cli_main
from focalnet.utils.benchmark import (
    Candidate,
    build_candidates,
    make_step,
    output_differences,
    saved_activation_bytes,
    step_peak_memory,
    summarize,
    time_interleaved,
)

SMALL = {"embed_dim": 16, "depths": [1, 1, 2, 1]}  # a small network of the same family: fast, same code paths


def test_peers_get_our_weights_and_agree():
    """timm and transformers, loaded with our weights by the benchmark's key mapping, give our logits."""
    pytest.importorskip("timm")
    pytest.importorskip("transformers")
    cands = build_candidates("focalnet_tiny_lrf", compare=("timm", "hf"), variants=("channels_last",), **SMALL)
    assert [c.label for c in cands] == ["ours", "ours channels_last", "timm", "transformers"]
    diffs = output_differences(cands, torch.randn(1, 3, 64, 64))
    assert max(diffs.values()) < 1e-4, diffs
    # The comparison is only meaningful if the weights are really shared: perturb ours and the peers disagree.
    with torch.no_grad():
        cands[0].model.head.bias.add_(1.0)
    assert output_differences(cands, torch.randn(1, 3, 64, 64))["timm"] > 0.5


def test_peer_refuses_unsupported_variant():
    with pytest.raises(ValueError, match="layer scale"):
        build_candidates("focalnet_large_fl3", compare=("timm",), **SMALL)
    with pytest.raises(ValueError, match="unknown peer"):
        build_candidates("focalnet_tiny_srf", compare=("onnx",), **SMALL)


def test_time_interleaved_rotates_and_summarizes():
    calls: list[str] = []
    steps = {k: (lambda k=k: calls.append(k)) for k in ("a", "b", "c")}
    results = time_interleaved(steps, rounds=3, warmup=1, batch=4)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # nobody always runs first
    assert all(len(r.times) == 3 for r in results)
    rows = summarize(results, baseline="b")
    assert next(r for r in rows if r["label"] == "b")["time_vs_ours"] == 1.0


def test_make_step_backward_fills_and_resets_grads():
    model = focalnet.FocalNet(embed_dim=8, depths=[1, 1, 1, 1], num_classes=3, drop_path_rate=0.0)
    step = make_step(Candidate("m", model, model), torch.randn(1, 3, 32, 32), backward=True)
    step()
    first = model.head.weight.grad.clone()
    step()  # grads are dropped before each step, not accumulated
    torch.testing.assert_close(model.head.weight.grad, first)


def test_checkpointing_memory_is_measured_smaller():
    torch.manual_seed(0)
    model = focalnet.FocalNet(embed_dim=16, depths=[1, 1, 2, 1], num_classes=5, drop_path_rate=0.0).train()
    x = torch.randn(2, 3, 64, 64)
    off_saved, off_peak = saved_activation_bytes(model, x), step_peak_memory(model, x)
    model.set_grad_checkpointing(True)
    on_saved, on_peak = saved_activation_bytes(model, x), step_peak_memory(model, x)
    assert 0 < on_saved < 0.5 * off_saved
    assert on_peak["ACT"] < off_peak["ACT"]
    params = sum(p.numel() * 4 for p in model.parameters())
    assert off_peak["PARAM"] == params == on_peak["PARAM"]
    # The stem output alone (B, 16, 16, 16) fp32 is saved in both modes.
    assert on_saved >= 2 * 16 * 16 * 16 * 4


def test_cli_benchmark_small_run(capsys):
    pytest.importorskip("timm")
    rc = cli_main(["benchmark", "--batch", "1", "--size", "64", "--rounds", "1", "--warmup", "0",
                   "--compare", "timm", "--threads", "1", "--memory"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "GMACs per image at 64x64" in out
    for label in ("| ours |", "| timm |", "time / ours (median)", "saved for backward"):
        assert label in out


@pytest.mark.parametrize("argv, message", [
    (["--model", "focalnet_nope"], "unknown model"),
    (["--compare", "onnx", "--size", "64", "--batch", "1"], "unknown peer"),
    (["--batch", "0"], "must be positive"),
])
def test_cli_benchmark_bad_input(argv, message, capsys):
    assert cli_main(["benchmark", *argv]) == 2  # a usage error, shown as one line by the CLI
    err = capsys.readouterr().err
    assert message in err and err.startswith("focalnet benchmark: ") and err.count("\n") == 1


def test_iqr_stays_within_measured_times():
    """With 2 rounds the 'exclusive' quartiles extrapolate below the fastest round (a negative time); ours do not."""
    from focalnet.utils.benchmark import TimingResult

    for times in ([0.1, 1.0], [0.5, 0.6, 3.0], [2.0]):
        lo, hi = TimingResult("a", times, 1).spread
        assert min(times) <= lo <= hi <= max(times)


def test_cli_benchmark_json_records(tmp_path, capsys):
    import json

    pytest.importorskip("timm")
    out = tmp_path / "bench.json"
    rc = cli_main(["benchmark", "--batch", "1", "--size", "64", "--rounds", "2", "--warmup", "0", "--compare", "timm",
                   "--threads", "1", "--backward", "--bf16", "--exact", "--predictor", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "-0." not in text  # no negative time in the IQR columns
    records = json.loads(out.read_text())
    names = [r["name"] for r in records]
    assert names[0] == "ours" and "timm" in names and "timm bf16 autocast" in names
    assert any(n.startswith("ours Predictor") for n in names) and "ours exact (unfused)" in names
    for r in records:
        assert r["forward_median_s"] > 0 and r["peak_mem_mb"] > 0
        assert r["settings"]["batch"] == 1 and r["settings"]["size"] == 64
        assert "torch" in r["machine"] and "cpu" in r["machine"]
        lo, hi = r["forward_iqr_s"]
        assert 0 < lo <= hi
        if r["name"].startswith("ours Predictor"):
            assert r["train_step_median_s"] is None  # an inference path: not timed as a training step
        else:
            assert r["train_step_median_s"] > 0
    assert next(r for r in records if r["name"] == "ours")["forward_time_vs_ours"] == 1.0


def test_selective_recompute_same_gradients_less_memory():
    torch.manual_seed(0)
    model = focalnet.FocalNet(embed_dim=16, depths=[1, 1, 2, 1], num_classes=5, drop_path_rate=0.0).train()
    x = torch.randn(2, 3, 64, 64)
    grads, acts = {}, {}
    for mode in (False, True, "mlp"):
        model.set_selective_recompute(mode)
        model.zero_grad(set_to_none=True)
        model(x).logsumexp(-1).mean().backward()
        grads[mode] = [p.grad.clone() for p in model.parameters()]
        acts[mode] = step_peak_memory(model, x)["ACT"]
    for mode in (True, "mlp"):
        for a, b in zip(grads[False], grads[mode]):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert acts["mlp"] < acts[True] < 0.75 * acts[False]
    with pytest.raises(ValueError, match="selective"):
        model.set_selective_recompute("all")
