"""Weights: layout conversion (exact, against transformers and timm), identification, safe loading, download.

Interop tests build tiny configurations, give every tensor random values (so each norm, bias, gate and
layer-scale path changes the output) and compare logits of our model with transformers' / timm's FocalNet after
conversion, in both directions. Download tests use a local HTTP server on 127.0.0.1; nothing touches the internet.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import logging
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

import focalnet
from conftest import golden_files, load_golden
from focalnet.models import registry
from focalnet.models.focalnet import FocalNet
from focalnet.weights import convert, hub, records
from focalnet.weights.convert import (
    detect_layout,
    from_hf,
    from_timm,
    hf_config,
    register_converter,
    timm_kwargs,
    to_canonical,
    to_hf,
    to_original,
    to_timm,
)
from focalnet.weights.export import atomic_write, convert_checkpoint
from focalnet.weights.identify import guess_variant, register_identifier
from focalnet.weights.loading import CheckpointError, load_state_dict_file

ATOL = RTOL = 1e-4

# Small configurations covering every structural flag (spec §3.1 columns).
SMALL = {
    "srf": dict(embed_dim=16, depths=[1, 2], focal_levels=2, focal_windows=3),
    "lrf": dict(embed_dim=16, depths=[1, 1, 2, 1], focal_levels=3, focal_windows=3),
    "postln_layerscale": dict(
        embed_dim=16, depths=[1, 2], focal_levels=3, focal_windows=5, use_conv_embed=True, use_postln=True,
        use_layerscale=True,
    ),
    "postln_layerscale_modln": dict(
        embed_dim=16, depths=[1, 2], focal_levels=4, focal_windows=3, use_conv_embed=True, use_postln=True,
        use_layerscale=True, use_postln_in_modulation=True,
    ),
    "normalize_modulator": dict(embed_dim=16, depths=[1, 2], focal_levels=4, focal_windows=3, normalize_modulator=True),
    "mixed_levels": dict(embed_dim=16, depths=[1, 1], focal_levels=[1, 3], focal_windows=[5, 3]),
    "isotropic": dict(embed_dim=32, depths=[2], patch_size=16, focal_levels=3, focal_windows=3, use_layerscale=True,
                      use_postln_in_modulation=True),
}
HIERARCHICAL = [k for k in SMALL if k != "isotropic"]


def _kw(name: str, num_classes: int = 7) -> dict:
    return {**SMALL[name], "num_classes": num_classes, "drop_path_rate": 0.0, "img_size": 64}


@torch.no_grad()
def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Values far from the init so that every path matters: norms 1+0.2N, biases 0.1N, gammas 0.5+0.2N."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        n = torch.randn(p.shape, generator=g)
        if p.ndim >= 2:
            p.copy_(n / max(1, p[0].numel()) ** 0.5)
        elif name.endswith("bias"):
            p.copy_(0.1 * n)
        elif "gamma" in name:
            p.copy_(0.5 + 0.2 * n)
        else:
            p.copy_(1 + 0.2 * n)
    return model.eval()


def _ours(name: str, seed: int = 0) -> FocalNet:
    return _randomize(FocalNet(**_kw(name)), seed)


def _hf_model(kw: dict):
    transformers = pytest.importorskip("transformers")
    cfg = hf_config(kw)
    cfg.pop("model_type")
    return transformers.FocalNetForImageClassification(transformers.FocalNetConfig(**cfg)).eval()


def _timm_model(kw: dict):
    tf = pytest.importorskip("timm.models.focalnet")
    return tf.FocalNet(**timm_kwargs(kw)).eval()


def _x(seed: int = 1, size: int = 64) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ interop: HF
@pytest.mark.parametrize("name", list(SMALL))
def test_ours_to_hf_same_logits(name):
    ours = _ours(name)
    hf = _hf_model(_kw(name))
    hf.load_state_dict(to_hf(ours.state_dict()), strict=True)
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(hf(pixel_values=x).logits, ours(x), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name", ["srf", "postln_layerscale_modln", "normalize_modulator", "isotropic"])
def test_hf_to_ours_same_logits(name):
    hf = _randomize(_hf_model(_kw(name)), seed=3)
    ours = FocalNet(**_kw(name)).eval()
    focalnet.load_weights(ours, hf.state_dict())  # layout detected and converted
    x = _x(2)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(pixel_values=x).logits, atol=ATOL, rtol=RTOL)


# ------------------------------------------------------------------------------------------------ interop: timm
@pytest.mark.parametrize("name", HIERARCHICAL)
def test_ours_to_timm_same_logits(name):
    ours = _ours(name)
    tm = _timm_model(_kw(name))
    tm.load_state_dict(to_timm(ours.state_dict(), use_postln=bool(_kw(name).get("use_postln"))), strict=True)
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(tm(x), ours(x), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name", ["lrf", "postln_layerscale", "postln_layerscale_modln"])
def test_timm_to_ours_same_logits(name):
    tm = _randomize(_timm_model(_kw(name)), seed=5)
    ours = FocalNet(**_kw(name)).eval()
    focalnet.load_weights(ours, {"state_dict": tm.state_dict()})
    x = _x(4)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tm(x), atol=ATOL, rtol=RTOL)


def test_timm_own_filter_agrees_with_ours():
    """timm's checkpoint_filter_fn applied to an original state dict gives exactly our to_timm output."""
    tfm = pytest.importorskip("timm.models.focalnet")
    kw = _kw("postln_layerscale_modln")
    tm = _timm_model(kw)
    sd = _ours("postln_layerscale_modln").state_dict()
    theirs = tfm.checkpoint_filter_fn({"model": sd}, tm)
    mine = to_timm(sd, use_postln=True)
    assert set(theirs) == set(mine)
    for k in mine:
        assert torch.equal(theirs[k], mine[k]), k


def test_golden_state_dicts_through_hf_match_original_logits():
    files = golden_files("focalnet")
    if not files:
        pytest.skip("golden fixtures not available")
    for path in files[:3] + [f for f in files if "normalize" in f.name or "huge" in f.name]:
        blob = load_golden(path)
        hf = _hf_model({**blob["config"], "drop_path_rate": 0.0})
        hf.load_state_dict(to_hf(blob["state_dict"]), strict=True)
        with torch.no_grad():
            torch.testing.assert_close(hf(pixel_values=blob["input"]).logits, blob["logits"], atol=ATOL, rtol=RTOL)


# ------------------------------------------------------------------------------------------------ layouts
@functools.cache
def _meta_sd(variant: str) -> dict:
    return focalnet.create_model(variant, device="meta").state_dict()


@pytest.mark.parametrize("variant", focalnet.list_models(family="focalnet"))
def test_round_trips_and_identification_for_every_variant(variant):
    sd = _meta_sd(variant)
    post = bool(registry.get_spec(variant).kwargs.get("use_postln"))
    for foreign, layout in ((to_timm(sd, use_postln=post), "timm"), (to_hf(sd), "hf"), (sd, "original")):
        assert detect_layout(foreign) == layout
        back = to_original(foreign)
        assert list(map(str, back)) == list(sd) or set(back) == set(sd)
        assert all(back[k].shape == sd[k].shape for k in sd)
        assert guess_variant(foreign) == variant


def test_round_trip_is_bit_exact():
    sd = _ours("postln_layerscale_modln").state_dict()
    for back in (from_timm(to_timm(sd, use_postln=True)), from_hf(to_hf(sd)), from_hf(to_hf(sd, prefix=""))):
        assert set(back) == set(sd)
        assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_detect_layout_accepts_wrappers_and_prefixes():
    sd = _ours("srf").state_dict()
    assert detect_layout({"model": sd}) == "original"
    assert detect_layout({f"module.{k}": v for k, v in sd.items()}) == "original"
    assert detect_layout(to_hf(sd)) == "hf"
    assert detect_layout(to_hf(sd, prefix="", with_head=False)) == "hf"
    assert detect_layout({"state_dict": to_timm(sd)}) == "timm"
    with pytest.raises(CheckpointError, match="unrecognised state-dict layout"):
        detect_layout({"conv1.weight": torch.zeros(1), "bn1.weight": torch.zeros(1)})


def test_wrong_layout_is_refused_with_a_clear_message():
    model = FocalNet(**_kw("srf"))
    resnet_like = {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(7, 64)}
    with pytest.raises(CheckpointError, match="unrecognised state-dict layout"):
        focalnet.load_weights(model, resnet_like)


def test_other_families_pass_through_unless_they_register_a_converter():
    class FocalTransformerStandIn(nn.Module):
        pass

    sd = {"patch_embed.proj.weight": torch.zeros(1), "layers.0.blocks.0.attn.qkv.weight": torch.zeros(1)}
    assert to_canonical(FocalTransformerStandIn(), {"model": sd}) == sd

    register_converter("FocalTransformerStandIn", lambda m, s: {("renamed." + k): v for k, v in s.items()})
    try:
        assert set(to_canonical(FocalTransformerStandIn(), sd)) == {"renamed." + k for k in sd}
        with pytest.raises(ValueError, match="already registered"):
            register_converter("FocalTransformerStandIn", lambda m, s: s)
    finally:
        convert._CONVERTERS.pop("FocalTransformerStandIn")


def test_guess_variant_is_tolerant_of_other_families():
    ft_like = {
        "patch_embed.proj.weight": torch.zeros(96, 3, 4, 4),
        "layers.0.blocks.0.attn.qkv.weight": torch.zeros(288, 96),
        "head.weight": torch.zeros(1000, 768),
    }
    assert guess_variant(ft_like) is None
    assert guess_variant({"conv1.weight": torch.zeros(1)}) is None
    for path in golden_files("focal_transformer")[:1]:
        assert guess_variant(load_golden(path)["state_dict"]) is None

    register_identifier(lambda sd: "focalt_tiny" if any(".attn." in k for k in sd) else None)
    try:
        assert guess_variant(ft_like) == "focalt_tiny"
        assert guess_variant(_meta_sd("focalnet_tiny_srf")) == "focalnet_tiny_srf"
    finally:
        from focalnet.weights import identify

        identify._IDENTIFIERS.pop()


# ------------------------------------------------------------------------------------------------ bad input
class _Payload:
    """A class instance inside a checkpoint: unpickling it would need arbitrary code."""

    def __init__(self):
        self.x = 1


@pytest.fixture
def tiny_file(tmp_path) -> Path:
    path = tmp_path / "tiny.pth"
    torch.save({"model": _ours("srf").state_dict(), "epoch": 1}, path)
    return path


def test_corrupt_truncated_empty_and_pickled_object_files_are_refused(tmp_path, tiny_file):
    model = FocalNet(**_kw("srf"))
    before = {k: v.clone() for k, v in model.state_dict().items()}

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(tiny_file.read_bytes()[: tiny_file.stat().st_size // 2])
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    evil = tmp_path / "evil.pth"
    torch.save({"model": _ours("srf").state_dict(), "extra": _Payload()}, evil)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")

    cases = [
        (corrupt, "corrupt or truncated"),
        (truncated, "corrupt or truncated"),
        (empty, "empty"),
        (evil, "refusing to load"),
        (bad_st, "not a readable safetensors"),
    ]
    for path, message in cases:
        with pytest.raises(CheckpointError, match=message):
            focalnet.load_weights(model, path)
    for k, v in model.state_dict().items():  # nothing was half-loaded
        assert torch.equal(v, before[k])
    with pytest.raises(FileNotFoundError):
        focalnet.load_weights(model, tmp_path / "missing.pth")


def test_checkpoint_of_another_variant_names_keys_and_the_guess():
    model = focalnet.create_model("focalnet_tiny_srf", device="meta")
    with pytest.raises(CheckpointError) as err:
        focalnet.load_weights(model, _meta_sd("focalnet_tiny_lrf"))
    msg = str(err.value)
    assert "shape mismatches" in msg and "layers.0.blocks.0.modulation.f.weight" in msg
    assert "unexpected keys" in msg and "focal_layers.2.0.weight" in msg
    assert "looks like focalnet_tiny_lrf" in msg

    small = focalnet.create_model("focalnet_small_srf", device="meta")
    with pytest.raises(CheckpointError) as err:  # HF layout: converted first, then compared
        focalnet.load_weights(small, to_hf(_meta_sd("focalnet_tiny_srf")))
    assert "missing keys (192)" in str(err.value) and "looks like focalnet_tiny_srf" in str(err.value)


# ------------------------------------------------------------------------------------------------ conversion CLI
def test_convert_cli_round_trip_and_hf_from_pretrained(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    from focalnet.cli import main

    kw = _kw("postln_layerscale_modln")
    ours = _ours("postln_layerscale_modln")
    src = tmp_path / "ours.pth"
    torch.save({"model": ours.state_dict()}, src)
    (tmp_path / "ours.json").write_text(json.dumps({"variant": None, "kwargs": kw}))

    assert main(["convert", str(src), str(tmp_path / "st.safetensors")]) == 0
    assert json.loads((tmp_path / "st.json").read_text())["kwargs"]["use_postln_in_modulation"] is True
    assert main(["convert", str(tmp_path / "st.safetensors"), str(tmp_path / "hf"), "--to", "hf"]) == 0
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "timm.pth"), "--to", "timm"]) == 0
    assert main(["convert", str(tmp_path / "timm.pth"), str(tmp_path / "back.pth"), "--to", "original"]) == 0
    out = capsys.readouterr().out
    assert "hf -> timm" in out and "timm -> original" in out

    back = torch.load(tmp_path / "back.pth", weights_only=True)["model"]
    sd = ours.state_dict()
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)

    reloaded = focalnet.load_weights(FocalNet(**kw), tmp_path / "hf")  # an HF directory loads directly too
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in sd.items())
    hf = transformers.FocalNetForImageClassification.from_pretrained(tmp_path / "hf").eval()
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(hf(pixel_values=x).logits, ours(x), atol=ATOL, rtol=RTOL)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind


def test_convert_cli_wrong_model_is_a_clear_error(tmp_path, capsys):
    from focalnet.cli import main

    src = tmp_path / "tiny.pth"
    torch.save(_ours("srf").state_dict(), src)
    assert main(["convert", str(src), str(tmp_path / "x.safetensors")]) == 2  # no config, no matching variant
    assert "pass --model" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "x.safetensors"), "--model", "focalnet_tiny_srf"]) == 2
    assert "shape mismatches" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_convert_identifies_registered_variant_without_config(tmp_path):
    sd = {k: torch.zeros(v.shape) for k, v in _meta_sd("focalnet_tiny_srf").items()}
    src = tmp_path / "timm_layout.pth"
    torch.save(to_timm(sd), src)
    summary = convert_checkpoint(src, tmp_path / "t.safetensors")
    assert summary["variant"] == "focalnet_tiny_srf" and summary["from_layout"] == "timm"
    assert json.loads((tmp_path / "t.json").read_text())["variant"] == "focalnet_tiny_srf"
    loaded = load_state_dict_file(tmp_path / "t.safetensors")
    assert set(loaded) == set(sd)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")

    def boom(tmp):
        Path(tmp).write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


# ------------------------------------------------------------------------------------------------ download
class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []
    truncate: set[str] = set()

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path.lstrip("/") in self.truncate:
            body = b"\x80\x02only part of it"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 1000))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Handler, directory=str(root))
    _Handler.requests = []
    _Handler.truncate = set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("FOCALNET_CACHE", str(path))
    return path


def test_download_caches_verifies_and_reports_errors(server, cache):
    root, base = server
    (root / "a.bin").write_bytes(b"weights" * 1000)
    digest = hashlib.sha256(b"weights" * 1000).hexdigest()

    p1 = hub.download(base + "a.bin", sha256=digest, progress=False, verify=False)
    p2 = hub.download(base + "a.bin", sha256=digest[:16], progress=False, verify=False)
    assert p1 == p2 == cache / "a.bin" and p1.read_bytes() == b"weights" * 1000
    assert _Handler.requests == ["/a.bin"]  # the second call was a cache hit

    with pytest.raises(hub.DownloadError, match="SHA-256 mismatch"):
        hub.download(base + "a.bin", cache_dir=cache / "other", sha256="0" * 64, progress=False, verify=False)
    with pytest.raises(CheckpointError, match="not a usable checkpoint"):
        hub.download(base + "a.bin", cache_dir=cache / "other", progress=False)  # verify: not a checkpoint
    assert list((cache / "other").iterdir()) == []  # no partial or unverified file kept

    with pytest.raises(hub.DownloadError, match="HTTP 404"):
        hub.download(base + "missing.pth", progress=False)
    _Handler.truncate.add("short.pth")
    with pytest.raises(hub.DownloadError, match="broke off|truncated"):
        hub.download(base + "short.pth", progress=False)
    with pytest.raises(hub.DownloadError, match="cannot reach"):
        hub.download("http://127.0.0.1:9/none.pth", progress=False)  # discard port: refused, like offline
    assert sorted(p.name for p in cache.iterdir()) == ["a.bin", "other"]


def test_create_model_pretrained_end_to_end(server, cache, monkeypatch):
    """The real registry entry of focalnet_tiny_srf, its release URL pointed at the local server."""
    root, base = server
    ref = focalnet.create_model("focalnet_tiny_srf")
    torch.save({"model": ref.state_dict(), "epoch": 299}, root / "focalnet_tiny_srf.pth")
    digest = hashlib.sha256((root / "focalnet_tiny_srf.pth").read_bytes()).hexdigest()
    rec = records.get_weights("focalnet_tiny_srf")
    local = dataclasses.replace(rec, urls=(base + "focalnet_tiny_srf.pth",), mirrors=(), sha256=digest)
    monkeypatch.setitem(records._WEIGHTS, rec.name, local)

    model = focalnet.create_model("focalnet_tiny_srf", pretrained=True)
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert model.pretrained_cfg["label_set"] == "imagenet-1k" and model.pretrained_cfg["tag"] == "ms_in1k"
    assert (cache / "focalnet_tiny_srf.pth").is_file()


def _register_tiny(monkeypatch, num_classes: int, record_kwargs: dict) -> str:
    name = "test_tiny_focalnet"
    spec = registry.ModelSpec(name, "focalnet", FocalNet, {**SMALL["srf"], "drop_path_rate": 0.0}, num_classes)
    monkeypatch.setitem(registry._REGISTRY, name, spec)
    rec = records.WeightsRecord(variant=name, tag="test", file_name="x", input_size=224, **record_kwargs)
    monkeypatch.setitem(records._WEIGHTS, rec.name, rec)
    monkeypatch.setitem(records._DEFAULT, name, rec.name)
    return name


def test_22k_head_keeps_first_1000_rows_and_other_counts_drop_it(server, cache, monkeypatch, caplog):
    root, base = server
    src = _randomize(FocalNet(**{**SMALL["srf"], "num_classes": 21842}))
    # Served in the HF layout from a mirror, after a dead primary link: exercises fallback + conversion.
    torch.save(to_hf(src.state_dict()), root / "hf22k.bin")
    name = _register_tiny(
        monkeypatch,
        21842,
        dict(urls=(base + "dead.pth",), mirrors=((base + "hf22k.bin", "hf"),), num_classes=21842,
             label_set="imagenet-22k"),
    )
    full = focalnet.create_model(name, pretrained=True)
    assert torch.equal(full.head.weight, src.head.weight)

    with caplog.at_level(logging.INFO, logger="focalnet"):
        m1k = focalnet.create_model(name, pretrained=True, num_classes=1000)
    assert torch.equal(m1k.head.weight, src.head.weight[:1000]) and torch.equal(m1k.head.bias, src.head.bias[:1000])
    assert torch.equal(m1k.norm.weight, src.norm.weight)
    assert "first 1000" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="focalnet"):
        m10 = focalnet.create_model(name, pretrained=True, num_classes=10)
    assert m10.head.weight.shape == (10, src.num_features)
    assert torch.equal(m10.layers[1].blocks[1].modulation.f.weight, src.layers[1].blocks[1].modulation.f.weight)
    assert "dropping the checkpoint's head" in caplog.text

    m0 = focalnet.create_model(name, pretrained=True, num_classes=0)
    assert isinstance(m0.head, nn.Identity)
    assert _Handler.requests.count("/hf22k.bin") == 1  # downloaded once, then cached


def test_dead_records_and_bad_downloads_are_clear(server, cache, monkeypatch):
    root, base = server
    with pytest.raises(hub.DownloadError, match="no live copy"):
        focalnet.create_model("focalnet_tiny_iso", pretrained=True)

    (root / "garbage.pth").write_bytes(b"PK\x03\x04garbage-not-a-zip")
    name = _register_tiny(monkeypatch, 7, dict(urls=(base + "garbage.pth",), num_classes=7,
                                               label_set="imagenet-1k"))
    with pytest.raises(hub.DownloadError, match="corrupt or truncated"):  # every source tried, each failure named
        focalnet.create_model(name, pretrained=True)
    assert not cache.exists() or not any(cache.iterdir())  # a corrupt download is never cached
    with pytest.raises(FileNotFoundError, match="tags: test"):
        focalnet.create_model(name, pretrained="no_such_tag")


def test_pretrained_path_loads_with_conversion(tmp_path, cache):
    ref = _randomize(FocalNet(**_kw("lrf")))
    path = tmp_path / "timm_lrf.pth"
    torch.save(to_timm(ref.state_dict()), path)
    model = FocalNet(**_kw("lrf"))
    hub.load_pretrained(model, "focalnet_tiny_lrf", str(path))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ref.state_dict().items())


# ------------------------------------------------------------------------------------------------ records, labels
def test_records_cover_every_variant_and_models_shows_weights(capsys):
    from focalnet.cli import main

    for variant in focalnet.list_models(family="focalnet"):
        recs = records.list_weights(variant)
        assert recs, variant
        spec = registry.get_spec(variant)
        for r in recs:
            assert r.num_classes in (spec.num_classes, 0) and r.label_set in ("imagenet-1k", "imagenet-22k")
            assert all(u.startswith(("https://", "hf://")) for u, _ in r.sources)
    assert records.get_weights("focalnet_tiny_srf").urls[0].startswith(
        "https://github.com/microsoft/FocalNet/releases/download/v1.0.0/"
    )
    assert records.get_weights("focalnet_base_iso").status == "dead"
    assert main(["models", "focalnet_tiny_*"]) == 0
    rows = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()[2:-1]}  # -1: legend
    assert rows == {"focalnet_tiny_iso": "dead", "focalnet_tiny_lrf": "available", "focalnet_tiny_srf": "available"}


def test_labels():
    names = focalnet.weights.labels("imagenet-1k")
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish" and len(set(names)) == 1000
    assert focalnet.weights.synsets("in1k")[0] == "n01440764"
    with pytest.raises(ValueError, match="unknown label set"):
        focalnet.weights.labels("coco")
    pytest.importorskip("timm")
    names22 = focalnet.weights.labels("imagenet-22k")
    assert len(names22) == 21842 and names22[:1000] == names
    assert focalnet.weights.synsets("imagenet-22k")[850] == "n04399382"  # teddy bear: a 1K class absent in 22K


def test_hf_sources_offline_give_a_clear_error(cache, monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # never reach the network from tests
    with pytest.raises(hub.DownloadError, match="offline, or the hub is unreachable"):
        hub.download("hf://timm/focalnet_tiny_srf.ms_in1k/model.safetensors")
    with pytest.raises(hub.DownloadError, match="hf://owner/repo"):
        hub.download("hf://only-a-repo")
