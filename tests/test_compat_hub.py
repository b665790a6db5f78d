"""Hugging Face folders and caches, offline behaviour and mirror fall-through (issue #11, #10 item 8).

Nothing here touches the internet: downloads go to a local 127.0.0.1 HTTP server, Hugging Face sources are served
from a temporary, pre-populated HF cache (``HF_HUB_CACHE``), and ``hf_hub_download`` is never allowed to reach
the network (``HF_HUB_OFFLINE=1`` or a monkeypatched guard).
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import focalnet
from focalnet.models import registry
from focalnet.models.focalnet import FocalNet
from focalnet.weights import hub, records
from focalnet.weights.convert import to_hf, to_timm

TINY = dict(embed_dim=8, depths=[1, 1, 1, 1], focal_levels=2, focal_windows=3, drop_path_rate=0.0)


# ------------------------------------------------------------------------------------------------ fixtures
class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Our cache and a private Hugging Face cache; the hub itself is unreachable (any network call fails)."""
    ours, hf = tmp_path / "focalnet-cache", tmp_path / "hf-hub"
    monkeypatch.setenv("FOCALNET_CACHE", str(ours))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub

    real = huggingface_hub.hf_hub_download
    calls = []

    def guarded(repo_id, filename, **kw):
        calls.append((repo_id, filename, kw.get("local_files_only")))
        if not kw.get("local_files_only"):
            raise OSError("network disabled in tests")
        return real(repo_id, filename, **kw)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", guarded)
    return ours, hf, calls


def _put_in_hf_cache(hf: Path, repo_id: str, filename: str, data: bytes) -> Path:
    """Lay a file out as huggingface_hub's cache does (refs/main -> snapshots/<commit>/<file>)."""
    repo = hf / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    path = repo / "snapshots" / commit / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _register(monkeypatch, urls=(), mirrors=(), sha256=None, mirror_sha256=None, layout="original") -> str:
    name = "test_compat_tiny"
    spec = registry.ModelSpec(name, "focalnet", FocalNet, dict(TINY), 5)
    monkeypatch.setitem(registry._REGISTRY, name, spec)
    rec = records.WeightsRecord(variant=name, tag="t", urls=tuple(urls), file_name="x.pth", num_classes=5,
                                label_set="custom", input_size=224, layout=layout, mirrors=tuple(mirrors),
                                sha256=sha256, mirror_sha256=dict(mirror_sha256 or {}))
    monkeypatch.setitem(records._WEIGHTS, rec.name, rec)
    monkeypatch.setitem(records._DEFAULT, name, rec.name)
    return name


def _ref(seed: int = 0) -> FocalNet:
    torch.manual_seed(seed)
    return FocalNet(**TINY, num_classes=5).eval()


def _bytes_of(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _safetensors_bytes(sd) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in sd.items()})


# ------------------------------------------------------------------------------------------------ HF cache
def test_weights_in_the_hf_cache_are_reused_offline_and_online(caches, monkeypatch, server):
    """A timm user's cached file serves create_model(pretrained=True) with no network, and HF_HUB_OFFLINE=1."""
    ours, hf, calls = caches
    root, base = server
    ref = _ref()
    _put_in_hf_cache(hf, "timm/test_compat_tiny.t", "model.safetensors", _safetensors_bytes(to_timm(ref.state_dict())))
    name = _register(monkeypatch, urls=(base + "x.pth",), mirrors=(("hf://timm/test_compat_tiny.t/model.safetensors",
                                                                     "timm"),))
    m = focalnet.create_model(name, pretrained=True)
    assert _Handler.requests == []  # the cached mirror was found before trying the (reachable) GitHub-like URL
    for k, v in ref.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m2 = focalnet.create_model(name, pretrained=True)
    assert torch.equal(m2.head.weight, ref.head.weight) and _Handler.requests == []
    assert all(local for _, _, local in calls)  # never a network call to the hub


def test_offline_without_a_cached_copy_fails_fast_with_the_fix(caches, monkeypatch, capsys, tmp_path):
    ours, hf, calls = caches
    name = _register(monkeypatch, urls=("https://github.invalid/x.pth",),
                     mirrors=(("hf://timm/test_compat_tiny.t/model.safetensors", "timm"),))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.DownloadError, match=r"HF_HUB_OFFLINE is set and no usable cached copy.*--weights FILE"):
        focalnet.create_model(name, pretrained=True)
    assert all(local for _, _, local in calls)

    # predict --model X on an offline machine: one line, exit 1, no traceback
    from focalnet.cli import main

    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (64, 64), (10, 200, 30)).save(img)
    code = main(["predict", str(img), "--model", name, "--pretrained", "true", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "HF_HUB_OFFLINE" in err and "Traceback" not in err


def test_unreachable_host_marks_the_network_down_and_says_how_to_fix_it(caches, monkeypatch, capsys, tmp_path):
    ours, hf, calls = caches
    name = _register(monkeypatch, urls=("http://127.0.0.1:9/x.pth",),  # port 9 (discard): refused, like offline
                     mirrors=(("hf://timm/test_compat_tiny.t/model.safetensors", "timm"),
                              ("http://127.0.0.1:9/y.pth", "original")))
    with pytest.raises(hub.NetworkError, match=r"cannot reach 127\.0\.0\.1:9.*HF_HUB_OFFLINE=1.*local file"):
        focalnet.create_model(name, pretrained=True)
    assert all(local for _, _, local in calls)  # after the first refusal the hub mirror was only looked up locally

    from focalnet.cli import main

    code = main(["convert", "http://127.0.0.1:9/focalnet_tiny_srf.pth", str(tmp_path / "out.safetensors")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "HF_HUB_OFFLINE=1" in err


def test_a_mirror_whose_file_does_not_load_falls_through(caches, monkeypatch, server):
    ours, hf, calls = caches
    root, base = server
    ref = _ref()
    (root / "garbage.pth").write_bytes(b"PK\x03\x04not a zip at all")
    other = FocalNet(**{**TINY, "embed_dim": 16}, num_classes=5)  # reads fine but does not fit
    (root / "wrong.pth").write_bytes(_bytes_of({"model": other.state_dict()}))
    (root / "good.pth").write_bytes(_bytes_of({"model": ref.state_dict()}))
    name = _register(monkeypatch, urls=(base + "garbage.pth",),
                     mirrors=((base + "wrong.pth", "original"), (base + "good.pth", "original")))
    m = focalnet.create_model(name, pretrained=True)
    assert torch.equal(m.head.weight, ref.head.weight)
    assert _Handler.requests == ["/garbage.pth", "/wrong.pth", "/good.pth"]
    assert sorted(p.name for p in ours.iterdir()) == ["good.pth"]  # bad files are not kept in the cache


def test_a_bad_cached_file_is_never_reused(caches, monkeypatch, server):
    ours, hf, calls = caches
    root, base = server
    ref = _ref()
    good = _bytes_of({"model": ref.state_dict()})
    (root / "w.pth").write_bytes(good)
    ours.mkdir(parents=True)
    (ours / "w.pth").write_bytes(good[: len(good) // 2])  # an interrupted copy someone left in the cache
    name = _register(monkeypatch, urls=(base + "w.pth",))
    m = focalnet.create_model(name, pretrained=True)
    assert torch.equal(m.head.weight, ref.head.weight)
    assert (ours / "w.pth").read_bytes() == good and _Handler.requests == ["/w.pth"]

    # a cached copy that loads but fails its published SHA-256 is replaced too
    import hashlib

    (ours / "w.pth").write_bytes(_bytes_of({"model": _ref(seed=1).state_dict()}))
    name = _register(monkeypatch, urls=(base + "w.pth",), sha256=hashlib.sha256(good).hexdigest())
    m = focalnet.create_model(name, pretrained=True)
    assert torch.equal(m.head.weight, ref.head.weight) and (ours / "w.pth").read_bytes() == good

    # a bad file in the HF cache (offline: it cannot be re-downloaded) is refused, not loaded
    _put_in_hf_cache(hf, "timm/test_compat_tiny.t", "model.safetensors", b"\x00" * 64)
    name = _register(monkeypatch, mirrors=(("hf://timm/test_compat_tiny.t/model.safetensors", "timm"),))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.DownloadError, match="no usable cached copy"):
        focalnet.create_model(name, pretrained=True)


def test_mirror_sha256_is_verified(caches, monkeypatch, server):
    ours, hf, calls = caches
    root, base = server
    (root / "m.pth").write_bytes(_bytes_of({"model": _ref().state_dict()}))
    name = _register(monkeypatch, mirrors=((base + "m.pth", "original"),), mirror_sha256={base + "m.pth": "0" * 64})
    with pytest.raises(hub.DownloadError, match="SHA-256 mismatch"):
        focalnet.create_model(name, pretrained=True)


# ------------------------------------------------------------------------------------------------ HF folders
def _hf_folder(tmp_path: Path, normalize: bool | None, num_labels: int = 4) -> tuple[Path, torch.Tensor]:
    """A transformers save_pretrained folder of a tiny L-fl4-like FocalNet (post-norm, layer scale, 4 levels)."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.FocalNetConfig(embed_dim=8, depths=[1, 1, 1, 1], focal_levels=[4] * 4, focal_windows=[3] * 4,
                                      use_conv_embed=True, use_post_layernorm=True, use_layerscale=True,
                                      normalize_modulator=bool(normalize), num_labels=num_labels, image_size=384)
    torch.manual_seed(0)
    model = transformers.FocalNetForImageClassification(cfg).eval()
    for p in model.parameters():  # visible differences between readings
        p.data.normal_(0, 0.2)
    folder = tmp_path / "hf"
    model.save_pretrained(folder)
    if normalize is None:
        data = json.loads((folder / "config.json").read_text())
        del data["normalize_modulator"]
        (folder / "config.json").write_text(json.dumps(data))
    with torch.no_grad():
        logits = model(pixel_values=torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))).logits
    return folder, logits


@pytest.mark.parametrize("normalize", [False, True])
def test_save_pretrained_folder_builds_what_its_config_says(tmp_path, normalize):
    folder, hf_logits = _hf_folder(tmp_path, normalize)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the flag is stated: no warning
        m = focalnet.create_model("focalnet_large_fl4", pretrained=str(folder)).eval()
    assert m.num_classes == 4 and [b.modulation.normalize_modulator for b in m.layers[0].blocks] == [normalize]
    with torch.no_grad():
        ours = m(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)))
    torch.testing.assert_close(ours, hf_logits, atol=1e-4, rtol=1e-4)
    assert m.pretrained_cfg["file"] == str(folder) and m.pretrained_cfg["num_classes"] == 4


def test_fl4_weights_without_a_stated_flag_warn_loudly(tmp_path):
    folder, _ = _hf_folder(tmp_path, None)
    with pytest.warns(UserWarning, match="normalize_modulator=True.*timm and Hugging Face build these weights WITHOUT"):
        m = focalnet.create_model("focalnet_large_fl4", pretrained=str(folder))
    assert m.layers[0].blocks[0].modulation.normalize_modulator  # our (the authors') reading is kept


def test_predict_head_size_from_hf_and_timm_heads(tmp_path):
    """predict's head is sized from classifier.* (HF) and head.fc.* (timm) as well as head.* (ours)."""
    from focalnet.train.inference import head_size, load_for_inference

    torch.manual_seed(0)
    m = focalnet.create_model("focalnet_tiny_iso", num_classes=7)
    sd = m.state_dict()
    assert head_size(to_hf(sd)) == head_size(to_timm(sd)) == head_size(sd) == 7
    torch.save(to_hf(sd), tmp_path / "hf.bin")
    loaded = load_for_inference(None, "focalnet_tiny_iso", None, str(tmp_path / "hf.bin"), "cpu")
    assert loaded.model.num_classes == 7 and torch.equal(loaded.model.head.weight, m.head.weight)


def test_convert_to_hf_works_with_auto_image_processor_and_pipeline(tmp_path, capsys):
    """convert --to hf writes preprocessor_config.json and HF-style id2label; the pipeline's top-1 is ours."""
    transformers = pytest.importorskip("transformers")
    from PIL import Image

    from focalnet.cli import main
    from focalnet.train.inference import load_for_inference, predict_images

    torch.manual_seed(0)
    kw = focalnet.get_spec("focalnet_tiny_srf").build_kwargs(**TINY)
    model = FocalNet(**kw).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.3)
    torch.save({"model": model.state_dict()}, tmp_path / "w.pth")
    (tmp_path / "w.json").write_text(json.dumps({"variant": "focalnet_tiny_srf", "kwargs": kw}))
    assert main(["convert", str(tmp_path / "w.pth"), str(tmp_path / "hf"), "--to", "hf"]) == 0
    capsys.readouterr()
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["id2label"]["0"] == "tench, Tinca tinca" and "normalize_modulator" in cfg
    proc = transformers.AutoImageProcessor.from_pretrained(tmp_path / "hf")
    assert type(proc).__name__ == "BitImageProcessor"
    assert proc.size == {"shortest_edge": 256} and proc.crop_size == {"height": 224, "width": 224}

    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        arr = (rng.random((300, 300, 3)) * 255).astype("uint8")
        arr[:, : 100 * (i + 1)] //= 3
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(arr).save(paths[-1])
    pipe = transformers.pipeline("image-classification", model=str(tmp_path / "hf"))
    loaded = load_for_inference(None, "focalnet_tiny_srf", None, str(tmp_path / "hf"), "cpu")
    ours = predict_images(loaded, [str(p) for p in paths], topk=1, exact=True)  # fp32, as the pipeline runs
    for p, r in zip(paths, ours):
        top = pipe(Image.open(p), top_k=1)[0]
        assert top["label"] == r["top"][0]["label"]
        assert abs(top["score"] - r["top"][0]["prob"]) < 1e-3


def test_eval_on_a_val_only_folder_and_predict_with_a_weights_folder(tmp_path, capsys, monkeypatch):
    """focalnet eval/predict --model X --weights HF_FOLDER; the image folder needs only val/."""
    from PIL import Image

    from focalnet.cli import main

    kw = focalnet.get_spec("focalnet_tiny_srf").build_kwargs(**TINY, num_classes=2)
    torch.manual_seed(0)
    torch.save({"model": FocalNet(**kw).state_dict()}, tmp_path / "w.pth")
    (tmp_path / "w.json").write_text(json.dumps({"variant": "focalnet_tiny_srf", "kwargs": kw}))
    assert main(["convert", str(tmp_path / "w.pth"), str(tmp_path / "hf"), "--to", "hf"]) == 0
    for c in ("cat", "dog"):
        (tmp_path / "data" / "val" / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (48, 48), (90 * i, 40, 200)).save(tmp_path / "data" / "val" / c / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = main(["eval", "--model", "focalnet_tiny_srf", "--weights", str(tmp_path / "hf"), "--device", "cpu",
                 f"data.root={tmp_path / 'data'}", "--json", str(tmp_path / "eval.json")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["images"] == 4 and "top1" in result

    code = main(["predict", str(tmp_path / "data" / "val" / "cat" / "0.png"), "--model", "focalnet_tiny_srf",
                 "--weights", str(tmp_path / "hf"), "--device", "cpu", "--json", "-"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and len(out["results"][0]["top"]) == 2  # the folder's 2-class head, not 1000
