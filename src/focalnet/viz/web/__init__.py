"""Local web demo of modulation and gating maps (what the authors' online demo showed), built on Flask.

``create_app`` returns a Flask application: the page ``/`` lets a user pick a model and weights and upload an
image; ``POST /api/maps`` answers with the input, each stage's modulator overlay and the gate maps of one stage as
PNG data URLs. Uploads are bounded (``MAX_CONTENT_LENGTH`` -> 413; undecodable or over-large images -> 400 with a
message), inference runs on one worker thread with a time limit (-> 503), and any other failure is answered as
JSON 500 rather than taking the server down. Weights can only be chosen among files the operator configured on
the command line, never by a path sent from the browser. All assets are local: the page works offline.
"""

from __future__ import annotations

import base64
import concurrent.futures
import io
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_logger = logging.getLogger(__name__)

__all__ = ["DemoConfig", "create_app", "default_models"]

RANDOM = "random"


def default_models(max_params: int = 100_000_000) -> list[str]:
    """FocalNet variants small enough for a CPU demo (tiny/small/base and the isotropic ones)."""
    from focalnet.models.registry import get_spec, list_models

    return [n for n in list_models(family="focalnet") if (get_spec(n).params or 0) <= max_params]


@dataclass
class DemoConfig:
    """What the operator allows: models, weights files (label -> path), sizes and limits."""

    models: Sequence[str] = field(default_factory=default_models)
    default_model: str = "focalnet_tiny_srf"
    weights: dict[str, str] = field(default_factory=dict)
    image_size: int = 224
    max_upload_mb: float = 10.0
    max_pixels: int = 40_000_000
    timeout_s: float = 120.0
    cache_size: int = 2
    device: str = "cpu"


class _ModelCache:
    """The last few built models, keyed by (model, weights); building and loading happen once per key."""

    def __init__(self, size: int, device: str) -> None:
        self.size, self.device = max(1, size), device
        self._models: OrderedDict[tuple[str, str], object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, weights_label: str, weights_path: str | None):
        import focalnet

        key = (name, weights_label)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            model = focalnet.create_model(name, device=self.device)
            if weights_path is not None:
                focalnet.load_weights(model, weights_path)
            model.eval()
            self._models[key] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return model


class UserError(ValueError):
    """A problem with the request that the user can fix; answered with its HTTP status and message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _png_data_url(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _read_upload(data: bytes, max_pixels: int):
    """Decode an uploaded image with PIL, refusing non-images and decompression bombs with a clear message."""
    from PIL import Image

    if not data:
        raise UserError("the uploaded file is empty")
    try:
        im = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as e:  # PIL's own guard for absurd pixel counts
        raise UserError(f"the image is too large ({e}); the limit is {max_pixels / 1e6:.0f} megapixels", 413) from None
    except Exception as e:
        raise UserError(
            f"the upload is not an image PIL can read ({type(e).__name__}); use PNG, JPEG, BMP, WebP..."
        ) from None
    w, h = im.size
    if w * h > max_pixels:
        raise UserError(
            f"the image is too large: {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is {max_pixels / 1e6:.0f}",
            status=413,
        )
    try:
        im.load()
    except Exception as e:
        raise UserError(f"the image is damaged and cannot be decoded ({type(e).__name__}: {e})") from e
    return im


def _top5(logits: np.ndarray) -> list[dict]:
    """The five most probable classes, named when the head is ImageNet-1K (only shown for loaded weights)."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    names = None
    if len(z) == 1000:
        try:
            from focalnet.weights.label_sets import labels

            names = labels("imagenet-1k")
        except (ImportError, OSError):
            names = None
    return [{"label": names[i] if names else f"class {i}", "prob": round(float(p[i]), 4)} for i in np.argsort(-p)[:5]]


def _compute(model, image, stage: int, size: int, weights_label: str) -> dict:
    from focalnet.viz import RANDOM_WEIGHTS_NOTE, compute_maps
    from focalnet.viz.figures import colorize, overlay

    n = len(model.layers)
    which = [(s, -1) for s in range(n)] if n > 1 else None
    weights = None if weights_label == RANDOM else weights_label
    maps = compute_maps(model, image, which=which, size=size, weights=weights)
    gate_block = next((b for b in maps.blocks if b.stage == stage % n), maps.blocks[-1])
    modulation = [
        {"title": f"modulator, stage {b.stage + 1} block {b.block + 1}",
         "src": _png_data_url(overlay(maps.image, b.modulator_norm_up))}
        for b in maps.blocks
    ]
    L = gate_block.focal_level
    gates = []
    for i in range(L + 1):
        g = gate_block.gates_up[i]
        name = "global" if i == L else f"level {i + 1}"
        gates.append({"title": f"gate {name} [{float(g.min()):.2f}, {float(g.max()):.2f}]",
                      "src": _png_data_url(colorize(g))})
    return {
        "input": _png_data_url(maps.image),
        "size": list(maps.image.shape[:2]),
        "modulation": modulation,
        "gates": gates,
        "gate_block": f"stage {gate_block.stage + 1}, block {gate_block.block + 1}",
        "top5": _top5(maps.logits) if weights is not None else [],
        "warning": RANDOM_WEIGHTS_NOTE if weights_label == RANDOM else None,
    }


def create_app(config: DemoConfig | None = None):
    """The Flask application of the demo (run it with ``app.run`` or any WSGI server)."""
    from flask import Flask, jsonify, render_template, request
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    cfg = config or DemoConfig()
    models = list(cfg.models)
    if cfg.default_model not in models:
        models.insert(0, cfg.default_model)
    here = Path(__file__).parent
    app = Flask(__name__, template_folder=str(here / "templates"), static_folder=str(here / "static"))
    app.config["MAX_CONTENT_LENGTH"] = int(cfg.max_upload_mb * 1024 * 1024)
    cache = _ModelCache(cfg.cache_size, cfg.device)
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="focalnet-demo")
    app.extensions["focalnet_demo"] = {"config": cfg, "cache": cache, "executor": executor}

    def error(message: str, status: int):
        return jsonify({"error": message}), status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_e):
        return error(f"the upload is too large; the limit is {cfg.max_upload_mb:g} MB", 413)

    @app.errorhandler(HTTPException)
    def http_error(e):
        return error(e.description or e.name, e.code or 500)

    @app.errorhandler(Exception)
    def unexpected(e):  # never let a request take the server down
        _logger.exception("unexpected error while serving a request")
        return error(f"internal error: {type(e).__name__}: {e}", 500)

    @app.get("/")
    def index():
        return render_template(
            "index.html",
            models=models,
            default_model=cfg.default_model,
            weights=[RANDOM, *cfg.weights],
            max_upload_mb=cfg.max_upload_mb,
            image_size=cfg.image_size,
        )

    @app.get("/healthz")
    def healthz():
        return jsonify({"ok": True})

    @app.post("/api/maps")
    def api_maps():
        try:
            upload = request.files.get("image")
            if upload is None or not upload.filename:
                raise UserError("no image uploaded: choose a file in the form field 'image'")
            model_name = request.form.get("model", cfg.default_model)
            if model_name not in models:
                raise UserError(f"unknown model {model_name!r}; choose one of {', '.join(models)}")
            weights_label = request.form.get("weights", RANDOM)
            if weights_label != RANDOM and weights_label not in cfg.weights:
                raise UserError(f"unknown weights {weights_label!r}; choose one of {', '.join([RANDOM, *cfg.weights])}")
            try:
                stage = int(request.form.get("stage", -1))
            except ValueError:
                raise UserError("stage must be an integer") from None
            image = _read_upload(upload.read(), cfg.max_pixels)

            def job():
                model = cache.get(model_name, weights_label, cfg.weights.get(weights_label))
                return _compute(model, image, stage, cfg.image_size, weights_label)

            t0 = time.perf_counter()
            future = executor.submit(job)
            try:
                result = future.result(timeout=cfg.timeout_s)
            except concurrent.futures.TimeoutError:
                raise UserError(
                    f"the server is busy or the model is too slow here (over {cfg.timeout_s:g} s); try a smaller "
                    "model or again later", status=503) from None
            except (ValueError, OSError) as e:  # e.g. weights that do not fit the model
                raise UserError(f"cannot compute maps: {e}") from e
            result.update(model=model_name, weights=weights_label, seconds=round(time.perf_counter() - t0, 3))
            return jsonify(result)
        except UserError as e:
            return error(str(e), e.status)

    return app
