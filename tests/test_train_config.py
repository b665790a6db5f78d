"""Training configuration: strict keys, YAML + dotted overrides, and the shipped recipes' values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from focalnet.train.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
IN1K = {  # variant -> stochastic depth (spec §3.1 / §5.1)
    "focalnet_tiny_srf": 0.2, "focalnet_tiny_lrf": 0.2, "focalnet_small_srf": 0.3, "focalnet_small_lrf": 0.3,
    "focalnet_base_srf": 0.5, "focalnet_base_lrf": 0.5, "focalnet_tiny_iso": 0.2, "focalnet_small_iso": 0.2,
    "focalnet_base_iso": 0.2,
}


def test_defaults_are_the_digits_job():
    cfg = load_config()
    assert cfg.data.dataset == "digits" and cfg.model.name.startswith("focalnet")
    assert cfg.optim.weight_decay == 0.05 and not cfg.optim.original_zero_decay


def test_typo_in_override_names_the_closest_key():
    with pytest.raises(ConfigError, match=r"optim\.lrr.*did you mean 'optim\.lr'"):
        load_config(overrides=["optim.lrr=1e-3"])
    with pytest.raises(ConfigError, match="did you mean 'sched'"):
        load_config(overrides=["shed.epochs=3"])


def test_typo_in_yaml_file_is_rejected(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("optim:\n  weight_decya: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*optim\.weight_decya.*weight_decay"):
        load_config(p)


def test_wrong_types_and_choices_are_rejected():
    with pytest.raises(ConfigError, match="data.batch_size: expected an integer"):
        load_config(overrides=["data.batch_size=abc"])
    with pytest.raises(ConfigError, match="amp='fp8'"):
        load_config(overrides=["amp=fp8"])
    with pytest.raises(ConfigError, match="not of the form"):
        load_config(overrides=["optim.lr"])


def test_overrides_parse_yaml_values_and_free_form_kwargs():
    cfg = load_config(overrides=["optim.lr=3e-4", "model.kwargs.depths=[2,2,2,2]", "aug.auto_augment=null",
                                 "model.pretrained=true", "sched.epochs=7"])
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.model.kwargs["depths"] == [2, 2, 2, 2] and cfg.model.kwargs["embed_dim"] == 48
    assert cfg.aug.auto_augment is None and cfg.model.pretrained == "true" and cfg.sched.epochs == 7


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(TrainConfig(), ["optim.layer_decay=0.75", "data.mean=[0.1,0.2,0.3]"])
    path = save_config(cfg, tmp_path / "c.yaml")
    again = load_config(path)
    assert config_to_dict(again) == config_to_dict(cfg)
    assert config_from_dict(yaml.safe_load(path.read_text())) == cfg


@pytest.mark.parametrize("variant", sorted(IN1K))
def test_in1k_recipes_reproduce_the_paper_setting(variant):
    path = CONFIGS / f"{variant}.yaml"
    header = path.read_text().split("\nname:")[0]
    assert f"torchrun --nproc_per_node 8 -m focalnet.cli train --config configs/{variant}.yaml" in header
    cfg = load_config(path)
    assert cfg.model.name == variant and cfg.model.drop_path_rate == IN1K[variant]
    assert cfg.data.batch_size * 8 == 1024 and cfg.optim.base_batch_size == 1024
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.clip_grad) == ("adamw", 1e-3, 0.05, 5.0)
    assert not cfg.optim.original_zero_decay
    assert (cfg.sched.name, cfg.sched.epochs, cfg.sched.warmup_epochs) == ("cosine", 300, 20)
    assert (cfg.sched.min_lr, cfg.sched.warmup_lr) == (1e-5, 1e-6)
    a = cfg.aug
    assert a.auto_augment == "rand-m9-mstd0.5-inc1" and a.reprob == 0.25 and a.remode == "pixel"
    assert (a.mixup, a.cutmix, a.mixup_switch_prob, a.mixup_prob, a.label_smoothing) == (0.8, 1.0, 0.5, 1.0, 0.1)
    assert (a.scale, a.hflip) == ([0.08, 1.0], 0.5)
    d = cfg.data
    assert (d.img_size, d.interpolation, d.crop_pct) == (224, "bicubic", 0.875)
    # the recipe's drop path equals the registered variant's published value
    from focalnet import get_spec

    assert get_spec(variant).kwargs["drop_path_rate"] == IN1K[variant]


def test_every_shipped_config_loads():
    files = sorted(CONFIGS.glob("*.yaml"))
    assert len(files) >= 10
    for f in files:
        load_config(f)
