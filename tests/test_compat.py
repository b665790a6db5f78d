"""timm / torchvision / Hugging Face conventions, ported from those projects' own checks (issue #11).

timm's ``tests/test_models.py`` runs its contract (pretrained_cfg, forward_features / forward_head,
forward_intermediates, reset_classifier, features_only, feature_info) over every registered model; here the same
checks run over every registered variant: the full-size network on the ``meta`` device where only shapes and
configs matter, and a small config of the variant (same flags, tiny widths/depths) where numbers are computed.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

import focalnet
from focalnet.backbones import FocalNetBackbone
from focalnet.layers import DropPath
from focalnet.models.registry import get_spec, list_pretrained
from focalnet.weights.records import get_weights

ALL = focalnet.list_models()
X64 = None


def _small_kwargs(name: str) -> dict:
    spec = get_spec(name)
    n = len(spec.kwargs["depths"])
    if spec.family == "focal_transformer":
        return dict(embed_dim=16, depths=[1] * n, num_heads=[1] * n, drop_path_rate=0.0)
    return dict(embed_dim=8 if n > 1 else 16, depths=[1] * n, drop_path_rate=0.0)


def _small(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return focalnet.create_model(name, **_small_kwargs(name), **kw).eval()


def _x(size: int = 64) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------------------------------------ pretrained_cfg
@pytest.mark.parametrize("name", ALL)
def test_timm_pretrained_cfg_is_a_dict_that_timm_data_reads(name):
    from timm.data import create_transform, resolve_data_config

    m = focalnet.create_model(name, device="meta")
    cfg = m.pretrained_cfg
    assert isinstance(cfg, dict) and m.default_cfg is not None and m.default_cfg == cfg
    for key in ("input_size", "interpolation", "crop_pct", "mean", "std", "num_classes", "first_conv", "classifier",
                "license"):
        assert key in cfg, key
    m.get_submodule(cfg["first_conv"])  # timm's test: the named modules exist
    m.get_submodule(cfg["classifier"])
    spec = get_spec(name)
    assert cfg["input_size"] == (3, spec.img_size, spec.img_size)  # 384 for L/XL
    data = resolve_data_config({}, model=m)
    assert data["input_size"] == (3, spec.img_size, spec.img_size)
    tf = create_transform(**data)
    assert f"CenterCrop(size=({spec.img_size}, {spec.img_size}))" in repr(tf)
    try:
        rec = get_weights(name)
    except KeyError:
        assert cfg["tag"] is None
        return
    assert (cfg["architecture"], cfg["tag"], cfg["crop_pct"]) == (name, rec.tag, rec.crop_pct)
    assert cfg["num_classes"] == rec.num_classes  # the weights' head (0 = headless file)


def test_timm_pretrained_cfg_384_and_crop_values():
    assert focalnet.create_model("focalnet_large_fl3", device="meta").pretrained_cfg["input_size"] == (3, 384, 384)
    assert focalnet.create_model("focalnet_huge_fl4", device="meta").pretrained_cfg["crop_pct"] == 0.9
    m = focalnet.create_model("focalnet_tiny_srf.ms_in1k", device="meta")  # timm's variant.tag spelling
    assert m.pretrained_cfg["tag"] == "ms_in1k"


def test_timm_pretrained_cfg_with_pretrained_path(tmp_path):
    m = _small("focalnet_tiny_srf", num_classes=5)
    path = tmp_path / "w.pth"
    torch.save({"model": m.state_dict()}, path)
    m2 = focalnet.create_model("focalnet_tiny_srf", pretrained=str(path), num_classes=5,
                               **_small_kwargs("focalnet_tiny_srf"))
    cfg = m2.pretrained_cfg
    assert cfg["file"] == str(path) and cfg["num_classes"] == 5 and cfg["input_size"] == (3, 224, 224)
    assert cfg["tag"] is None


# ------------------------------------------------------------------------------------------------ forward API
@pytest.mark.parametrize("name", ALL)
def test_timm_forward_contract(name):
    """timm's test_model_forward_intermediates / test_model_default_cfgs checks on a small config of the variant."""
    m = _small(name)
    x = _x()
    n = len(m.layers)
    with torch.no_grad():
        logits = m(x)
        feats = m.forward_features(x)
        assert m.output_fmt == "NHWC" and feats.shape[-1] == m.num_features == m.head_hidden_size
        pre = m.forward_head(feats, pre_logits=True)
        assert pre.shape == (2, m.head_hidden_size)
        torch.testing.assert_close(m.forward_head(feats), logits)

        final, inter = m.forward_intermediates(x)
        torch.testing.assert_close(final, feats)  # 64 px: a stride multiple, so no padding difference
        assert len(inter) == n and all(t.ndim == 4 for t in inter)
        assert [t.shape[1] for t in inter] == m.feature_info.channels()
        assert [x.shape[-1] // t.shape[-1] for t in inter] == m.feature_info.reduction()
        only = m.forward_intermediates(x, indices=1, intermediates_only=True)  # an int: the last n
        torch.testing.assert_close(only[0], inter[-1])
        nhwc = m.forward_intermediates(x, indices=[-1], output_fmt="NHWC", intermediates_only=True)
        torch.testing.assert_close(nhwc[0], inter[-1].permute(0, 2, 3, 1))
        normed = m.forward_intermediates(x, indices=[n - 1], norm=True, intermediates_only=True)
        torch.testing.assert_close(normed[0].permute(0, 2, 3, 1), feats)
        _, early = m.forward_intermediates(x, indices=[0], stop_early=True)
        torch.testing.assert_close(early[0], inter[0])
        for bad in (n + 1, -1, [n], [-n - 1], [0, n + 2]):
            with pytest.raises(IndexError, match="out of range"):
                m.forward_intermediates(x, indices=bad)
        with pytest.raises(IndexError, match="out of range"):
            m.forward_intermediates(x, indices=0)

        # feature_info[i]["module"] is the module whose output IS feature i (forward hooks see it)
        seen = {}
        hooks = [m.get_submodule(f["module"]).register_forward_hook(
            lambda mod, inp, out, i=i: seen.__setitem__(i, out)) for i, f in enumerate(m.feature_info)]
        m(x)
        for h in hooks:
            h.remove()
        for i, t in enumerate(inter):
            torch.testing.assert_close(seen[i].permute(0, 3, 1, 2), t)

        # reset_classifier(num_classes, global_pool) and the unpooled, headless model
        m.reset_classifier(0, "")
        assert m(x).shape == feats.shape and m.num_classes == 0
        m.reset_classifier(7, "avg")
        assert m(x).shape == (2, 7)
        with pytest.raises(ValueError, match="global_pool"):
            m.reset_classifier(7, "max")

        # prune_intermediate_layers keeps what forward_intermediates(indices) needs
        kept = m.prune_intermediate_layers([0], prune_head=True)
        assert kept == [0] and len(m.layers) == 1
        torch.testing.assert_close(m.forward_intermediates(x, indices=[0], intermediates_only=True)[0], inter[0])


@pytest.mark.parametrize("name", ["focalnet_tiny_srf", "focalnet_large_fl4", "focal_transformer_tiny"])
def test_timm_create_model_num_classes_0_global_pool_and_features_only(name):
    kw = _small_kwargs(name)
    x = _x()
    ref = _small(name)
    with torch.no_grad():
        inter = ref.forward_intermediates(x, intermediates_only=True)
        headless = focalnet.create_model(name, num_classes=0, **kw).eval()
        headless.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith("head.")})
        torch.testing.assert_close(headless(x), ref.forward_head(ref.forward_features(x), pre_logits=True))
        unpooled = focalnet.create_model(name, num_classes=0, global_pool="", **kw).eval()
        assert unpooled(x).shape == ref.forward_features(x).shape

        fo = focalnet.create_model(name, features_only=True, out_indices=(1, 3), **kw).eval()
        fo.body.load_state_dict(ref.state_dict(), strict=False)
        outs = fo(x)
        assert isinstance(outs, list) and len(outs) == 2
        assert fo.feature_info.channels() == [inter[1].shape[1], inter[3].shape[1]]
        assert fo.feature_info.reduction() == [8, 32]
        assert fo.feature_info.module_name() == [f"body.{ref.feature_info[i]['module']}" for i in (1, 3)]
        fo_last2 = focalnet.create_model(name, features_only=True, out_indices=2, **kw)
        assert fo_last2.out_indices == (2, 3)
        fo_pruned = focalnet.create_model(name, features_only=True, out_indices=(0, 1), **kw)
        assert len(fo_pruned.body.layers) == 2  # stages after the last output are gone
    for k, v in fo.body.state_dict().items():
        torch.testing.assert_close(v, ref.state_dict()[k])
    torch.testing.assert_close(outs[0], inter[1])
    torch.testing.assert_close(outs[1], inter[3])
    with pytest.raises(IndexError, match=r"valid indices are -4\.\.3"):
        focalnet.create_model(name, features_only=True, out_indices=(0, 4), **kw)
    with pytest.raises(TypeError, match="features_only"):
        focalnet.create_model(name, out_indices=(0, 1), **kw)


@pytest.mark.parametrize("name", ["focalnet_tiny_lrf", "focalnet_huge_fl4", "focal_transformer_tiny"])
def test_fx_create_feature_extractor(name):
    """torchvision's FX feature extraction traces both families; the named nodes give forward_intermediates."""
    from torchvision.models.feature_extraction import create_feature_extractor

    m = _small(name)
    x = _x()
    nodes = {f["module"]: f"f{i}" for i, f in enumerate(m.feature_info)}
    nodes["head"] = "logits"
    fe = create_feature_extractor(m, return_nodes=nodes)
    with torch.no_grad():
        out = fe(x)
        inter = m.forward_intermediates(x, intermediates_only=True)
        torch.testing.assert_close(out["logits"], m(x))
    for i, t in enumerate(inter):
        torch.testing.assert_close(out[f"f{i}"].permute(0, 3, 1, 2), t)
    with pytest.raises(ValueError, match="input channels"):  # the input check survives tracing
        fe(torch.randn(1, 1, 64, 64))


# ------------------------------------------------------------------------------------------------ small things
def test_drop_path_one_is_zero_not_nan():
    dp = DropPath(1.0).train()
    y = dp(torch.ones(4, 3))
    assert torch.equal(y, torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        DropPath(1.5)
    m = focalnet.create_model("focalnet_tiny_srf", embed_dim=8, depths=[1, 1, 1, 1], drop_path_rate=1.0).train()
    assert torch.isfinite(m(_x())).all()


def test_out_indices_and_frozen_stages_out_of_range_raise():
    body = _small("focalnet_tiny_srf", num_classes=0)
    with pytest.raises(IndexError, match=r"valid indices are -4\.\.3"):
        FocalNetBackbone(body, out_indices=(0, 4))
    with pytest.raises(ValueError, match=r"frozen_stages should be in the range \[-1, 5\]"):
        FocalNetBackbone(body, frozen_stages=6)
    with pytest.raises(ValueError, match=r"trainable_layers should be in the range \[0, 5\]"):
        FocalNetBackbone(body, trainable_layers=6)
    assert FocalNetBackbone(body, out_indices=(-1,)).out_indices == (3,)


def test_list_pretrained_and_did_you_mean():
    names = list_pretrained()
    assert "focalnet_tiny_srf.ms_in1k" in names and "focalnet_large_fl4.ms_in22k" in names
    assert not any(n.startswith("focalnet_tiny_iso") for n in names)  # no live copy
    assert "focalnet_tiny_iso.ms_in1k" in list_pretrained(available_only=False)
    assert list_pretrained("focalnet_large_*") == ["focalnet_large_fl3.ms_in22k", "focalnet_large_fl4.ms_in22k"]
    with pytest.raises(KeyError, match="did you mean 'focalnet_tiny_srf'"):
        focalnet.create_model("focalnet_tiny_srff")
    with pytest.raises(KeyError, match="did you mean 'focal_transformer_tiny'"):
        focalnet.create_model("focal_transfomer_tiny")


# ------------------------------------------------------------------------------------------------ backbones
def test_torchvision_backbone_conventions():
    """OrderedDict output, trainable_layers with torchvision's meaning, an FPN with int out_channels that
    torchvision's detectors take."""
    from torchvision.models.detection import FasterRCNN

    from focalnet.det.models import FocalNetFPN

    bb = FocalNetBackbone.from_name("focalnet_tiny_srf", embed_dim=8, depths=[1, 1, 1, 1], output_format="dict",
                                    trainable_layers=3)
    # torchvision: 3 trainable layers = the last three stages; stage 0 and the stem frozen
    assert not any(p.requires_grad for p in bb.body.patch_embed.parameters())
    assert not any(p.requires_grad for p in bb.body.layers[0].parameters())
    assert all(p.requires_grad for p in bb.body.layers[1].parameters())
    assert bb.trainable_layers == 3
    assert FocalNetBackbone(bb.body, trainable_layers=5).frozen_stages == -1
    assert FocalNetBackbone(bb.body, trainable_layers=0).trainable_layers == 0
    with torch.no_grad():
        out = bb.eval()(_x())
    assert isinstance(out, OrderedDict) and list(out) == ["0", "1", "2", "3"]
    assert [t.shape[1] for t in out.values()] == [8, 16, 32, 64]

    fpn = FocalNetFPN(bb, out_channels=32)  # takes the dict-output backbone; LastLevelMaxPool by default
    assert isinstance(fpn.out_channels, int) and fpn.out_channels == 32
    det = FasterRCNN(fpn, num_classes=3, min_size=64, max_size=64, rpn_pre_nms_top_n_test=20,
                     rpn_post_nms_top_n_test=10, box_detections_per_img=5).eval()
    with torch.no_grad():
        res = det([torch.rand(3, 64, 64)])
    assert set(res[0]) == {"boxes", "labels", "scores"}
    with pytest.raises(ValueError, match="output_format"):
        bb.output_format = "tuple"


@pytest.mark.parametrize("name", ["focalnet_tiny_srf", "focal_transformer_tiny"])
def test_hf_backbone_surface(name):
    kw = _small_kwargs(name)
    bb = FocalNetBackbone.from_name(name, output_format="hf", out_indices=(1, 2, 3), focal_windows=None, **kw).eval()
    assert bb.stage_names == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert bb.out_features == ["stage2", "stage3", "stage4"]
    assert bb.channels == bb.out_channels == [f["num_chs"] for f in bb.feature_info]
    with torch.no_grad():
        out = bb(pixel_values=_x(), output_hidden_states=False, return_dict=True)
    assert isinstance(out.feature_maps, tuple) and len(out.feature_maps) == 3
    assert [t.shape[1] for t in out.feature_maps] == bb.channels
    assert out[0] is out.feature_maps


def test_hf_mask2former_takes_the_backbone():
    """Our backbone replaces the encoder of a transformers Mask2Former (tiny config) with no glue code."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.Mask2FormerConfig(
        backbone_config=transformers.SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                                                out_features=["stage1", "stage2", "stage3", "stage4"]),
        feature_size=32, mask_feature_size=32, hidden_dim=32, num_queries=4, encoder_layers=1, decoder_layers=2,
        encoder_feedforward_dim=32, dim_feedforward=32, num_attention_heads=2, num_labels=3,
    )
    model = transformers.Mask2FormerForUniversalSegmentation(cfg).eval()
    bb = FocalNetBackbone.from_name("focalnet_tiny_srf", embed_dim=8, depths=[1, 1, 1, 1], output_format="hf")
    assert bb.channels == model.model.pixel_level_module.encoder.channels
    model.model.pixel_level_module.encoder = bb
    with torch.no_grad():
        out = model(pixel_values=_x())
    assert out.class_queries_logits.shape == (2, 4, 4)
    assert out.masks_queries_logits.shape[:2] == (2, 4)


# ------------------------------------------------------------------------------------------------ records, packaging
def test_weights_records_facts():
    """First-party HF mirrors for L, H crop 0.9, the normalize_modulator reading documented, hashes only where
    a public source gives one."""
    for v, repo in (("focalnet_large_fl3", "microsoft/focalnet-large-lrf-fl3"),
                    ("focalnet_large_fl4", "microsoft/focalnet-large-lrf-fl4")):
        rec = get_weights(v)
        assert (f"hf://{repo}/pytorch_model.bin", "hf") in rec.sources
        assert repo in rec.hf_hub_ids
    for v in ("focalnet_huge_fl3", "focalnet_huge_fl4"):
        assert get_weights(v).crop_pct == 0.9
    for v in ("focalnet_large_fl4", "focalnet_xlarge_fl4"):
        assert "normalize_modulator" in get_weights(v).notes and "timm and Hugging Face" in get_weights(v).notes
    l4 = get_weights("focalnet_large_fl4")
    assert l4.sha256 == "4d14fe47c7d7138e911be356ff8170d316d2918af7c504c914c2f88ffb16465b"
    assert [l4.sha256_for(u) for u, _ in l4.sources[:2]] == [l4.sha256] * 2  # both copies of the original file
    for rec in focalnet.list_weights():
        if rec.variant.startswith("focalnet_") and rec.sha256 is None and rec.status == "available":
            assert "no published hash found" in rec.notes, rec.name
    assert "bilinear" in get_weights("focalnet_tiny_srf").notes  # HF's own processor differs from the authors'


def test_models_command_counts_the_head_the_variant_has(capsys):
    from focalnet.cli import main

    assert main(["models", "focalnet_large_fl3"]) == 0
    out = capsys.readouterr().out
    assert "239,134,898" in out and "21842" in out  # 207,100,744 at 1000 classes + 20,842 x 1,537
    for name in ALL:
        m = focalnet.create_model(name, device="meta")
        assert get_spec(name).params_at() == sum(p.numel() for p in m.parameters()), name


def test_packaging_one_version_license_typed_and_python_m():
    import subprocess
    import sys
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[1]
    py = tomllib.loads((root / "pyproject.toml").read_text())
    assert "version" not in py["project"] and py["project"]["dynamic"] == ["version"]
    assert py["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "focalnet._version.__version__"}
    assert any(r.startswith("setuptools>=77") for r in py["build-system"]["requires"])
    assert py["project"]["license"] == "MIT" and py["project"]["license-files"] == ["LICENSE"]
    assert py["project"]["urls"] and "Typing :: Typed" in py["project"]["classifiers"]
    assert (root / "LICENSE").read_text().startswith("MIT License")
    assert (root / "src" / "focalnet" / "py.typed").is_file()
    env = {**__import__("os").environ, "PYTHONPATH": str(root / "src")}
    out = subprocess.run([sys.executable, "-m", "focalnet", "--version"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == focalnet.__version__
