"""The engine's own guarantees, task-independent: config checks before any work, run names, logs after resume,
the task registry, the command grammar."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from focalnet.cli import main

TINY = ["model.kwargs={embed_dim: 8, depths: [1, 1, 1, 1], patch_size: 2}", "data.img_size=16", "data.batch_size=8",
        "data.limit_train=64", "data.limit_val=16", "sched.epochs=2", "progress=false", "tensorboard=false"]


@pytest.mark.parametrize("override, message", [
    ("eval_every=0", "eval_every must be >= 1"),
    ("optim.lr=0", "optim.lr must be > 0"),
    ("optim.lr=-1e-3", "optim.lr must be > 0"),
    ("data.img_size=16", "smaller than the network's stride 32"),
    ("data.std=[0,0,0]", "data.std"),
    ("model.name=nope", "model.name='nope' is not a registered model"),
    ("model.name=focalnet_tiny_srff", "did you mean 'focalnet_tiny_srf'"),
    ("optim.name=nope", "optim.name='nope' is not a known optimizer"),
    ("sched.name=nope", "sched.name='nope'"),
    ("device=bogus", "device='bogus' is not a device"),
    ("model.kwargs.embed_dmi=8", "did you mean model.kwargs.embed_dim"),
    ("model.kwargs.focal_levels=[0,1,1,1]", "focal_levels"),
    ("model.kwargs.embed_dim=-4", "embed_dim"),
    ("name=../../x", "without path separators"),
    ("name=a/b", "without path separators"),
    ("task=nope", "task='nope' is not a known task"),
    ("max_steps=0", "max_steps must be >= 1"),
    ("amp=fp8", "amp='fp8'"),
    ("distributed=zero", "distributed='zero'"),
])
def test_bad_configs_are_one_line_errors_before_any_work(tmp_path, capsys, override, message):
    assert main(["train", override, f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not any(tmp_path.iterdir())  # nothing was written


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_config_error(tmp_path, capsys):
    assert main(["train", "device=cuda", *TINY, f"output_dir={tmp_path}"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_out_pointing_at_a_file_and_bad_topk_are_usage_errors(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["train", "--out", str(f)]) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path), "--out", str(f)]) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert main(["predict", "x.png", "--topk", "-1"]) == 2
    assert "--topk must be >= 1" in capsys.readouterr().err


def test_metrics_are_cut_back_to_the_checkpoint_on_resume(tmp_path):
    from focalnet.train import load_config, train

    def cfg(name):
        return load_config(overrides=[*TINY, f"output_dir={tmp_path}", f"name={name}", "log_every=1",
                                      "save_every_steps=3"])

    full = train(cfg("full"))

    class Killed(Exception):
        pass

    def kill(event, state):
        if event == "step_end" and state["step"] == 5:
            raise Killed

    c = cfg("killed")
    with pytest.raises(Killed):
        train(c, callbacks=[kill])
    rows = [json.loads(x) for x in (c.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4, 5]
    c.resume = "auto"
    train(c)

    def steps(run_dir: Path):
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [(r["split"], r["step"]) for r in rows]

    assert steps(c.run_dir) == steps(full.run_dir)  # no row twice, none missing
    csv_rows = (c.run_dir / "metrics.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + len(steps(full.run_dir))
    assert (c.run_dir / "checkpoints" / "best.pt").is_file() and (c.run_dir / "curves.png").is_file()
    from focalnet.engine.checkpoint import list_checkpoints, load_checkpoint

    best = load_checkpoint(c.run_dir / "checkpoints" / "best.pt")  # still readable after older files were pruned
    assert best["best_value"] == max(r["top1"] for r in map(json.loads, (c.run_dir / "metrics.jsonl").read_text()
                                                             .splitlines()) if r["split"] == "val")
    assert len(list_checkpoints(c.run_dir / "checkpoints")) == 2  # keep_checkpoints


def test_resume_refuses_a_structural_change_and_names_the_keys(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "max_steps=2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "auto", "model.kwargs.embed_dim=16"]) == 2
    err = capsys.readouterr().err
    assert "model.kwargs" in err and "different model" in err
    # the saved config is the base: no TINY overrides needed, and max_steps may change
    assert main(["train", "--out", str(out), "--resume", "auto", "max_steps=4"]) == 0
    ck = torch.load(sorted((out / "checkpoints").glob("checkpoint-*.pt"))[-1], weights_only=True)
    assert ck["step"] == 4 and ck["config"]["model"]["kwargs"]["embed_dim"] == 8


def test_registry_is_lazy_and_unknown_tasks_are_config_errors():
    from focalnet.engine import registry
    from focalnet.utils.config import ConfigError

    assert all(":" in t for t in registry.TASKS.values())
    with pytest.raises(ConfigError, match="did you mean 'classification'"):
        registry.get_task("clasification")


def test_help_does_not_import_torch_and_python_m_works():
    code = "import sys; from focalnet.cli import main; main(['--help']); assert 'torch' not in sys.modules, 'torch'"
    env_path = str(Path(__file__).resolve().parents[1] / "src")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": env_path},
                       timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "focalnet", "train", "--help"], capture_output=True, text=True,
                       env={"PYTHONPATH": env_path}, timeout=120)
    assert r.returncode == 0 and "(default: None)" in r.stdout and "--resume" in r.stdout


def test_metric_json_is_strict_json_with_nan_as_null(tmp_path, capsys):
    """COCO reports AP of an empty size range as NaN; eval.json / --json must stay readable by strict parsers."""
    from focalnet.engine.logger import write_json

    out = write_json({"bbox": {"mAP": 0.5, "mAP_large": float("nan"), "per": [float("inf"), 1.0]}}, tmp_path / "m.json")
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data == {"bbox": {"mAP": 0.5, "mAP_large": None, "per": [None, 1.0]}}
    write_json({"x": float("nan")}, "-")
    assert json.loads(capsys.readouterr().out) == {"x": None}
    with pytest.raises(IsADirectoryError):
        write_json({}, tmp_path)
