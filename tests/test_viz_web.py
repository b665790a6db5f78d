"""The web demo: maps over HTTP, clear errors for bad uploads, and a headless-Chromium run of the page."""

from __future__ import annotations

import base64
import io
import shutil
import struct
import threading
import urllib.error
import urllib.request
import uuid
import zlib

import numpy as np
import pytest

pytest.importorskip("flask")
from PIL import Image  # noqa: E402

from focalnet.viz.web import DemoConfig, create_app  # noqa: E402

MODEL = "focalnet_tiny_srf"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _png_bytes(shape=(60, 80, 3), seed=0) -> bytes:
    arr = (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _decode(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    import torch

    import focalnet

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("w") / "tiny_srf_seed1.pth"
    torch.save(focalnet.create_model(MODEL).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def app(weights_file, tmp_path_factory):
    wrong = tmp_path_factory.mktemp("w2") / "wrong.pth"
    import torch

    torch.save({"head.weight": torch.zeros(3, 3)}, wrong)
    cfg = DemoConfig(models=[MODEL], default_model=MODEL, image_size=96, max_upload_mb=0.5, max_pixels=4_000_000,
                     weights={"trained.pth": str(weights_file), "wrong.pth": str(wrong)})
    return create_app(cfg)


def test_page_and_maps_over_http(app):
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200 and MODEL.encode() in page.data and b"trained.pth" in page.data
    assert b"http" not in page.data.replace(b"http-equiv", b"")  # no CDN or external assets
    r = client.post("/api/maps", data={"image": (io.BytesIO(_png_bytes()), "a.png"), "model": MODEL})
    assert r.status_code == 200, r.json
    body = r.json
    assert body["warning"] and "not meaningful" in body["warning"] and body["top5"] == []
    assert _decode(body["input"]).size == (128, 96)  # shorter side 96, aspect kept
    assert len(body["modulation"]) == 4 and len(body["gates"]) == 3  # 4 stages; levels 1, 2 + global
    for item in body["modulation"] + body["gates"]:
        assert _decode(item["src"]).size == (128, 96)
    r = client.post("/api/maps", data={"image": (io.BytesIO(_png_bytes(seed=1)), "b.png"), "weights": "trained.pth",
                                       "stage": "0"})
    assert r.status_code == 200 and r.json["warning"] is None and r.json["gate_block"] == "stage 1, block 2"
    top5 = r.json["top5"]  # named ImageNet classes, probabilities in decreasing order
    assert len(top5) == 5 and all(isinstance(t["label"], str) for t in top5)
    assert [t["prob"] for t in top5] == sorted((t["prob"] for t in top5), reverse=True)


@pytest.mark.parametrize(
    "form, status, message",
    [
        ({"image": (io.BytesIO(b"%PDF-1.4 not an image"), "doc.pdf")}, 400, "not an image"),
        ({"image": (io.BytesIO(b""), "empty.png")}, 400, "empty"),
        ({}, 400, "no image uploaded"),
        ({"image": (io.BytesIO(_png_bytes()[:200]), "cut.png")}, 400, "damaged"),
        ({"image": (io.BytesIO(_png_bytes()), "a.png"), "model": "focalnet_huge_fl4"}, 400, "unknown model"),
        ({"image": (io.BytesIO(_png_bytes()), "a.png"), "weights": "/etc/passwd"}, 400, "unknown weights"),
        ({"image": (io.BytesIO(_png_bytes()), "a.png"), "weights": "wrong.pth"}, 400, "cannot compute maps: "),
        ({"image": (io.BytesIO(_png_bytes()), "a.png"), "stage": "x"}, 400, "integer"),
        ({"image": (io.BytesIO(b"\0" * 700_000), "big.png")}, 413, "too large"),
    ],
)
def test_bad_requests_get_clear_messages(app, form, status, message):
    client = app.test_client()
    r = client.post("/api/maps", data=form)
    assert r.status_code == status and message in r.json["error"]
    assert client.get("/healthz").json == {"ok": True}


def test_decompression_bomb_is_refused(app):
    buf = io.BytesIO()
    Image.new("L", (4000, 3000)).save(buf, format="PNG")  # 12 megapixels in a few KB
    r = app.test_client().post("/api/maps", data={"image": (io.BytesIO(buf.getvalue()), "bomb.png")})
    assert r.status_code == 413 and "megapixels" in r.json["error"]

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    # A header claiming 20000 x 20000 pixels: PIL's own bomb guard fires while opening it.
    header = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
              + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    r = app.test_client().post("/api/maps", data={"image": (io.BytesIO(header), "claims.png")})
    assert r.status_code == 413 and "too large" in r.json["error"]


# ------------------------------------------------------------------------------------------------- browser
@pytest.fixture(scope="module")
def server(app):
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()
    thread.join(10)


def test_oversized_upload_over_real_http_then_still_serving(server):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + b"\0" * 800_000 + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(server + "api/maps", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=60)
    assert err.value.code == 413 and b"too large" in err.value.read()
    with urllib.request.urlopen(server + "healthz", timeout=30) as r:
        assert r.status == 200


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install chromium)")
def test_browser_upload_shows_maps(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from skimage import data

    Image.fromarray(data.chelsea()).save(tmp_path / "chelsea.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--headless"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server)
            page.set_input_files("#image", str(tmp_path / "chelsea.png"))
            page.click("#submit")
            page.wait_for_selector("img.map.gate", timeout=120_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('img.map')].every(i => i.complete && i.naturalWidth > 0)",
                timeout=30_000)
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
            sizes = page.eval_on_selector_all("img.map", "els => els.map(e => [e.className, e.naturalWidth])")
            assert sum("modulation" in c for c, _ in sizes) == 4 and sum("gate" in c for c, _ in sizes) == 3
            assert all(w > 0 for _, w in sizes)
            assert "not meaningful" in page.inner_text("#warning")
            assert (tmp_path / "demo.png").stat().st_size > 10_000

            page.set_input_files("#image", str(tmp_path / "notes.txt"))  # not an image: a message, not a crash
            page.click("#submit")
            page.wait_for_selector("#error:not([hidden])", timeout=30_000)
            assert "not an image" in page.inner_text("#error")

            big = tmp_path / "huge.png"
            big.write_bytes(b"\0" * 700_000)  # over the 0.5 MB limit: refused before upload
            page.set_input_files("#image", str(big))
            page.click("#submit")
            page.wait_for_function("() => document.querySelector('#error').textContent.includes('too large')",
                                   timeout=30_000)
            page.set_input_files("#image", str(tmp_path / "chelsea.png"))  # and the server still answers
            page.click("#submit")
            page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Done')",
                                   timeout=120_000)
        finally:
            browser.close()
