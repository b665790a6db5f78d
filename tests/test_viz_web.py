"""The Gradio web demo: maps over HTTP, weights that fit, clear one-line errors, a bounded queue, cancellation,
and a headless-Chromium run of the page (screenshot: set FOCALNET_SAVE_SCREENSHOT=1 to refresh
docs/figures/viz_web_demo.png). Tiny registered FocalNets keep it fast; only 127.0.0.1 is ever contacted."""

from __future__ import annotations

import json
import os
import resource
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gradio")
from PIL import Image  # noqa: E402

from focalnet import FocalNet  # noqa: E402
from focalnet.models.registry import ModelSpec, model_specs, register_model  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NANO, NANO_L3, NANO_ISO = "focalnet_demo_nano", "focalnet_demo_nano_l3", "focalnet_demo_nano_iso"
SPECS = {
    NANO: dict(embed_dim=8, depths=[1, 1, 2, 1], focal_levels=[2] * 4, focal_windows=[3] * 4),
    NANO_L3: dict(embed_dim=8, depths=[1, 1, 2, 1], focal_levels=[3] * 4, focal_windows=[3] * 4),
    NANO_ISO: dict(embed_dim=16, depths=[8], patch_size=16, focal_levels=[2], focal_windows=[3],
                   use_layerscale=True, use_postln_in_modulation=True),
}
DOCS_SHOT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "viz_web_demo.png"


@pytest.fixture(scope="module")
def nano_models():
    """Register the tiny demo variants for this module only: tests elsewhere iterate every registered variant."""
    from focalnet.models import registry

    added = [n for n in SPECS if n not in model_specs()]
    for name in added:
        register_model(ModelSpec(name=name, family="focalnet", builder=FocalNet, kwargs=SPECS[name], params=1))
    yield
    for name in added:
        registry._REGISTRY.pop(name, None)


@pytest.fixture(scope="module")
def files(tmp_path_factory, nano_models):
    d = tmp_path_factory.mktemp("w")
    torch.manual_seed(1)
    torch.save(FocalNet(**SPECS[NANO], num_classes=1000).state_dict(), d / "nano_seed1.pth")
    torch.save(FocalNet(**SPECS[NANO_L3], num_classes=1000).state_dict(), d / "nano_l3.pth")
    torch.save({"head.weight": torch.zeros(3, 3)}, d / "junk.pth")
    rng = np.random.default_rng(0)
    from focalnet.viz.sequence import write_animation

    write_animation([(rng.random((48, 64, 3)) * 255).astype(np.uint8) for _ in range(30)], d / "clip.gif",
                    label_frames=False)
    (d / "notes.txt").write_text("not an image")
    (d / "empty.png").write_bytes(b"")
    Image.fromarray((rng.random((60, 80, 3)) * 255).astype(np.uint8)).save(d / "a.png")
    return d


@pytest.fixture(scope="module")
def server(files):
    from focalnet.viz.web import DemoConfig, create_demo, launch

    cfg = DemoConfig(models=[NANO, NANO_ISO], default_model=NANO, image_size=64, queue_size=3, max_frames=30,
                     weights={f: str(files / f) for f in ("nano_seed1.pth", "nano_l3.pth", "junk.pth")})
    demo = create_demo(cfg)
    srv = launch(demo, host="127.0.0.1", port=0, block=False, max_upload_mb=0.5)
    yield srv
    srv.close()


# ------------------------------------------------------------------------------------------------- raw HTTP
def _upload(url: str, path: Path) -> str:
    b = uuid.uuid4().hex
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{path.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{b}--\r\n".encode()
    req = urllib.request.Request(url + "gradio_api/upload", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={b}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())[0]


def _submit(url: str, path: Path, model=NANO, weights="random", block="4.1"):
    data = {"data": [model, weights, block, {"path": _upload(url, path), "meta": {"_type": "gradio.FileData"}}]}
    req = urllib.request.Request(url + "gradio_api/call/maps", data=json.dumps(data).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        event = json.loads(r.read())["event_id"]
    return urllib.request.urlopen(url + f"gradio_api/call/maps/{event}", timeout=180)


def _call(url: str, path: Path, **kw) -> list:
    """The final outputs: [input, modulation, gates, kernels, top5, animation, status]."""
    with _submit(url, path, **kw) as stream:
        lines = stream.read().decode().strip().split("\n")
    assert lines[-2] == "event: complete", lines[-2:]
    return json.loads(lines[-1][len("data: "):])


def test_maps_weights_that_fit_and_class_names(server, files):
    from focalnet.viz.web import block_choices, scan_weights

    infos = scan_weights({"nano_seed1.pth": str(files / "nano_seed1.pth"), "nano_l3.pth": str(files / "nano_l3.pth")})
    assert infos["nano_seed1.pth"].variant == NANO and infos["nano_l3.pth"].variant == NANO_L3
    assert infos["nano_seed1.pth"].class_names[0] == "tench"  # a 1000-class head: ImageNet-1K names
    out = _call(server.url, files / "a.png", weights="nano_seed1.pth", block="2")
    inp, modulation, gates, kernels, top5, animation, status = out
    assert status.startswith("Done") and "gates of stage 2, block 1" in status and "random" not in status
    assert Image.open(inp["path"]).size == (85, 64)  # shorter side 64, aspect kept
    for fig in (modulation, gates, kernels):
        assert Image.open(fig["path"]).size[0] > 300
    assert animation is None
    labels = [c["label"] for c in top5["confidences"]]
    assert len(labels) == 5 and all(not lab.startswith("class ") for lab in labels)
    out = _call(server.url, files / "a.png")  # random weights: stamped, no top-5
    assert "random weights" in out[-1] and not out[4]  # an empty Label
    # isotropic: the menu lists the blocks drawn, and the chosen one is the one shown (not "stage 1" silently)
    assert block_choices(NANO_ISO) == [("block 2 of 8", "1.2"), ("block 4 of 8", "1.4"), ("block 6 of 8", "1.6"),
                                       ("block 8 of 8", "1.8")]
    assert "gates of stage 1, block 6" in _call(server.url, files / "a.png", model=NANO_ISO, block="1.6")[-1]


@pytest.mark.parametrize(
    "upload, kw, message",
    [
        ("notes.txt", {}, "not an image"),
        ("empty.png", {}, "empty"),
        ("a.png", {"model": "focalnet_huge_fl4"}, "unknown model"),
        ("a.png", {"weights": "/etc/passwd"}, "unknown weights"),
        ("a.png", {"weights": "nano_l3.pth"}, "nano_l3.pth holds focalnet_demo_nano_l3 weights; it does not fit "
                                              "focalnet_demo_nano (choose focalnet_demo_nano_l3 in the model menu)"),
        ("a.png", {"weights": "junk.pth"}, "junk.pth holds weights of no registered FocalNet variant"),
        ("a.png", {"block": "9"}, "stage 9 does not exist"),
    ],
)
def test_bad_requests_get_one_line_and_clear_the_maps(server, files, upload, kw, message):
    out = _call(server.url, files / upload, **kw)
    assert not any(out[:6])  # nothing of a previous image stays on screen
    assert out[-1].startswith("Error: ") and message in out[-1] and "\n" not in out[-1]
    with urllib.request.urlopen(server.url + "healthz", timeout=30) as r:
        assert r.status == 200


def test_oversized_upload_refused_and_server_alive(server, files):
    big = files / "big.png"
    big.write_bytes(b"\0" * 700_000)  # over the 0.5 MB limit
    with pytest.raises(urllib.error.HTTPError) as err:
        _upload(server.url, big)
    assert err.value.code == 413
    with urllib.request.urlopen(server.url + "healthz", timeout=30) as r:
        assert r.status == 200


def test_video_gives_an_animation_and_an_abandoned_job_stops(server, files):
    out = _call(server.url, files / "clip.gif", block="4")
    assert out[-1].startswith("Done: 30 frames") and out[5]["path"].endswith(".gif")
    with Image.open(out[5]["path"]) as im:
        assert im.n_frames == 30 and im.info["duration"] == 250
    stats = server.demo.focalnet_stats
    stream = _submit(server.url, files / "clip.gif")
    for line in stream:  # wait for the first frames, then walk away
        if b"Frame 2" in line:
            break
    stream.close()
    start = stats["frames"]
    time.sleep(12)  # the SSE loop notices a closed connection within 10 s
    stopped = stats["frames"]
    time.sleep(3)
    assert stats["frames"] == stopped and stopped - start < 28  # stopped well before its 30 frames


def test_concurrent_clients_bounded_queue_no_5xx_bounded_memory(server, files):
    """8 clients at once against a queue of 3 on 127.0.0.1: answers or 429 'queue full', never a 5xx."""
    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    _call(server.url, files / "a.png")  # warm
    peak_before = rss_mb()
    statuses, errors = [], []

    def client():
        try:
            with _submit(server.url, files / "a.png") as s:
                statuses.append(s.status)
                body = s.read().decode()
                assert "event: complete" in body and "Done" in body
        except urllib.error.HTTPError as e:
            statuses.append(e.code)
            assert e.code == 429 and b"Queue is full" in e.read()
        except AssertionError as e:
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not any(t.is_alive() for t in threads) and not errors
    assert len(statuses) == 8 and all(s < 500 for s in statuses) and statuses.count(200) >= 1
    assert not [c for c in server.demo.focalnet_stats["status"] if c >= 500]  # the server's own record
    assert rss_mb() - peak_before < 400  # the bounded queue and model cache keep memory flat
    with urllib.request.urlopen(server.url + "healthz", timeout=30) as r:
        assert r.status == 200


# ------------------------------------------------------------------------------------------------- browser
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (scripts/setup.sh: apt-get install chromium)")
def test_browser_upload_shows_maps_then_junk_clears_them(server, files, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from skimage import data

    Image.fromarray(data.chelsea()).save(tmp_path / "chelsea.png")
    shot = DOCS_SHOT if os.environ.get("FOCALNET_SAVE_SCREENSHOT") == "1" else tmp_path / "demo.png"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--headless"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)  # a busy CI machine renders the Gradio page slowly
            page.goto(server.url)
            page.wait_for_selector("#upload input[type=file]", state="attached", timeout=120_000)
            page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "chelsea.png"))
            page.wait_for_timeout(500)
            page.click("#run")
            page.wait_for_function("() => document.querySelector('#status').innerText.includes('Done')",
                                   timeout=180_000)
            for el in ("#input", "#modulation", "#gates", "#kernels"):
                page.wait_for_function(f"() => {{ const i = document.querySelector('{el} img'); "
                                       "return i && i.complete && i.naturalWidth > 0; }", timeout=120_000)
            assert "not meaningful" in page.inner_text("#status")
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 50_000
            with Image.open(shot) as im:  # full colour, not a 256-colour palette (which posterised the maps)
                assert im.mode in ("RGB", "RGBA")
                rgb = np.asarray(im.convert("RGB")).reshape(-1, 3)
            assert len(np.unique(rgb[:: max(1, len(rgb) // 200_000)], axis=0)) > 2000

            page.click("#upload button[aria-label=Clear]")  # the file box shows the last upload: clear it first
            page.locator("#upload input[type=file]").set_input_files(str(files / "notes.txt"))
            page.wait_for_timeout(500)
            page.click("#run")
            page.wait_for_function("() => document.querySelector('#status').innerText.includes('Error')",
                                   timeout=120_000)
            assert "not an image" in page.inner_text("#status")
            assert page.locator("#modulation img").count() == 0 and page.locator("#gates img").count() == 0

            page.click("#upload button[aria-label=Clear]")
            page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "chelsea.png"))
            page.wait_for_timeout(500)
            page.click("#run")  # and the server still answers
            page.wait_for_function("() => document.querySelector('#status').innerText.includes('Done')",
                                   timeout=180_000)

            page.click("#upload button[aria-label=Clear]")  # a bundled example instead of an upload
            page.get_by_text("astronaut.png").first.click()
            page.wait_for_function("() => document.querySelector('#upload').innerText.includes('astronaut')",
                                   timeout=120_000)
            page.click("#run")  # the status still says Done from the last run: wait for this run's picture
            page.wait_for_function("() => { const i = document.querySelector('#input img'); "
                                   "return i && i.complete && i.naturalWidth == 64; }", timeout=180_000)  # 512x512
            page.wait_for_function("() => document.querySelector('#status').innerText.includes('Done')",
                                   timeout=180_000)
        finally:
            browser.close()


def test_serve_command_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    from focalnet.cli import main

    assert main(["serve", "--weights", str(tmp_path / "missing.pth")]) == 2
    assert "weights not found" in capsys.readouterr().err
    assert main(["serve", "--queue-size", "0"]) == 2
    assert "--queue-size" in capsys.readouterr().err
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    assert main(["serve", "--weights", str(tmp_path / "bad.pth")]) == 1  # a damaged file: runtime error
    err = capsys.readouterr().err.strip()
    assert "not a readable weights file" in err and len(err.splitlines()) == 1
