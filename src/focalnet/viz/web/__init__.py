"""Local web demo of modulation and gating maps, on Gradio (the ``serve`` extra; what the authors' demo used).

:func:`create_demo` returns a :class:`gradio.Blocks` app: pick a model and weights (only the configured files whose
tensors fit that model; class names from the file's weights record), upload an image, a GIF or a video, or pick one
of the bundled scikit-image photos (astronaut, chelsea, coffee), and see the input, the modulator overlay of every
stage (or, for the one-stage isotropic models, of every quarter of the depth), the gates of one chosen block drawn
over the image, the depthwise kernels and the top-5 classes. Every map has a colour bar. A GIF or video gives an
animation of the maps.

Serving: one job computes at a time (``concurrency_limit=1``) behind a bounded queue (``queue_size``; a full queue
is answered with a message, not a server error). The handler is a generator that yields after every stage and
every video frame, so a job whose browser went away is stopped there by Gradio, and queued jobs of a closed page
are dropped. Uploads are bounded (``max_upload_mb``, ``max_pixels``, ``max_frames``), any failure is answered with a
one-line message and clears the maps of the previous image, and the server binds 127.0.0.1 unless told otherwise.
Weights are only ever chosen among files the operator configured, never by a path sent from the browser.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local demo phones nobody

_logger = logging.getLogger(__name__)

__all__ = ["DemoConfig", "Server", "WeightsInfo", "UserError", "block_choices", "create_demo", "default_models",
           "example_images", "launch", "scan_weights"]

RANDOM = "random"
EXAMPLES = ("astronaut", "chelsea", "coffee")
VIDEO_SUFFIXES = {".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def default_models(max_params: int = 100_000_000) -> list[str]:
    """FocalNet variants small enough for a CPU demo (tiny/small/base and the isotropic ones)."""
    from focalnet.models.registry import get_spec, list_models

    return [n for n in list_models(family="focalnet") if (get_spec(n).params or 0) <= max_params]


class UserError(ValueError):
    """A problem with the request that the user can fix; shown as one line."""


@dataclass(frozen=True)
class WeightsInfo:
    """A configured weights file: the variant its tensors hold, its head size and its class names."""

    label: str
    path: str
    variant: str | None
    num_classes: int
    class_names: tuple[str, ...] | None = None


@dataclass
class DemoConfig:
    """What the operator allows: models, weights files (label -> path), sizes and limits."""

    models: Sequence[str] = field(default_factory=default_models)
    default_model: str = "focalnet_tiny_srf"
    weights: dict[str, str] = field(default_factory=dict)
    image_size: int = 224
    max_upload_mb: float = 10.0
    max_pixels: int = 40_000_000
    max_frames: int = 24
    queue_size: int = 8
    cache_size: int = 2
    device: str = "cpu"


# ------------------------------------------------------------------------------------------------ weights
def _class_names(path: Path, variant: str | None, num_classes: int) -> tuple[str, ...] | None:
    """Names from the weights record whose file this is (else by head size: 1000 -> ImageNet-1K, 21842 -> 22K)."""
    from focalnet.weights.label_sets import labels

    label_set = None
    try:
        from focalnet.weights.records import list_weights

        for rec in list_weights(variant) if variant else []:
            if rec.file_name == path.name or Path(rec.file_name).stem == path.stem:
                label_set = rec.label_set
                break
    except Exception:  # a missing record never breaks the demo
        _logger.debug("no weights record for %s", path, exc_info=True)
    if label_set is None:
        label_set = {1000: "imagenet-1k", 21841: "imagenet-22k", 21842: "imagenet-22k"}.get(num_classes)
    if label_set is None:
        return None
    try:
        names = labels(label_set)
    except (ImportError, OSError, ValueError):
        return None
    return tuple(names) if len(names) == num_classes else None


def scan_weights(files: dict[str, str]) -> dict[str, WeightsInfo]:
    """Identify each configured file once (its variant, head size, class names); unreadable files are refused."""
    from focalnet.weights.identify import guess_variant
    from focalnet.weights.loading import load_state_dict_file, unwrap_state_dict

    out = {}
    for label, p in files.items():
        try:
            sd = unwrap_state_dict(load_state_dict_file(p))
        except (OSError, ValueError) as e:
            raise UserError(f"{p}: not a readable weights file ({e})") from None
        variant = guess_variant(sd)
        head = next((v for k, v in sd.items() if k.endswith("head.weight") or k.endswith("classifier.weight")), None)
        n = int(head.shape[0]) if head is not None and head.ndim == 2 else 0
        if variant is None:
            _logger.warning("%s matches no registered FocalNet variant; it is not offered", p)
        out[label] = WeightsInfo(label, str(p), variant, n, _class_names(Path(p), variant, n))
    return out


def _weights_for(model: str, infos: dict[str, WeightsInfo]) -> list[str]:
    return [RANDOM] + [w.label for w in infos.values() if w.variant == model]


def _mismatch(model: str, info: WeightsInfo) -> str:
    what = f"{info.variant} weights" if info.variant else "weights of no registered FocalNet variant"
    return f"{info.label} holds {what}; it does not fit {model}" + (
        f" (choose {info.variant} in the model menu)" if info.variant else "")


class _ModelCache:
    """The last few built models, keyed by (model, weights); building and loading happen once per key."""

    def __init__(self, size: int, device: str) -> None:
        self.size, self.device = max(1, size), device
        self._models: OrderedDict[tuple[str, str], object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, info: WeightsInfo | None):
        import focalnet

        key = (name, info.label if info else RANDOM)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            kw = {"num_classes": info.num_classes} if info and info.num_classes else {}
            model = focalnet.create_model(name, device=self.device, **kw)
            if info is not None:
                try:
                    focalnet.load_weights(model, info.path)
                except (OSError, ValueError) as e:
                    _logger.info("weights %s do not load into %s: %s", info.path, name, e)
                    raise UserError(_mismatch(name, info)) from None
            model.eval()
            self._models[key] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return model


# ------------------------------------------------------------------------------------------------ inputs
def _read_image(path: str, max_pixels: int):
    """Decode an uploaded image with PIL, refusing non-images and decompression bombs with a clear message."""
    from PIL import Image

    p = Path(path)
    if p.stat().st_size == 0:
        raise UserError("the uploaded file is empty")
    try:
        im = Image.open(p)  # reads the header only
    except Image.DecompressionBombError:
        raise UserError(f"the image is too large; the limit is {max_pixels / 1e6:.0f} megapixels") from None
    except Exception as e:
        raise UserError(f"the upload is not an image PIL can read ({type(e).__name__}); use PNG, JPEG, BMP, WebP, "
                        "GIF or a video") from None
    w, h = im.size
    if w * h > max_pixels:
        raise UserError(f"the image is too large: {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is "
                        f"{max_pixels / 1e6:.0f}")
    try:
        im.load()
    except Exception as e:
        raise UserError(f"the image is damaged and cannot be decoded ({type(e).__name__})") from None
    from focalnet.data.images import exif_upright

    return exif_upright(im)  # phone photos: upright as every other reader of the package shows them


def _is_animation(path: str) -> bool:
    p = Path(path)
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        return False
    if p.suffix.lower() != ".gif":
        return True
    from focalnet.viz.sequence import count_frames

    return (count_frames(p) or 1) > 1


def example_images(folder: str | os.PathLike | None = None) -> list[str]:
    """The bundled example photos (scikit-image's astronaut, chelsea, coffee) as PNG files, written once."""
    from PIL import Image
    from skimage import data

    folder = Path(folder or Path(tempfile.gettempdir()) / "focalnet_demo_examples")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in EXAMPLES:
        p = folder / f"{name}.png"
        if not p.is_file():
            Image.fromarray(getattr(data, name)()).save(p)
        paths.append(str(p))
    return paths


# ------------------------------------------------------------------------------------------------ maps
def block_choices(model_name: str) -> list[tuple[str, str]]:
    """(label, value) pairs for the gates menu: every stage's last block, or for isotropic models the blocks drawn."""
    import torch

    import focalnet
    from focalnet.viz import resolve_blocks

    with torch.device("meta"):
        model = focalnet.create_model(model_name)
    n = len(model.layers)
    out = []
    for s, b in resolve_blocks(model, None):
        depth = len(model.layers[s].blocks)
        label = f"stage {s + 1} (block {b + 1} of {depth})" if n > 1 else f"block {b + 1} of {depth}"
        out.append((label, f"{s + 1}.{b + 1}"))
    return out


def _top5(logits: np.ndarray, names: Sequence[str] | None) -> dict[str, float]:
    z = logits.astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    return {(names[i] if names else f"class {i}"): float(p[i]) for i in np.argsort(-p)[:5]}


def _fig_rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _overlays_figure(maps, title: str):
    from focalnet.viz.figures import _figure, _off, _panel_size, _suptitle, _title, overlay_panel, stamp

    n = len(maps.blocks)
    pw, ph = _panel_size(maps.image, 2.4)
    pw += 0.6
    fig = _figure(pw * (n + 1), ph + 1.1)
    axes = fig.subplots(1, n + 1, squeeze=False)[0]
    axes[0].imshow(maps.image)
    _title(axes[0], "input", pw)
    _off(axes[0])
    for ax, b in zip(axes[1:], maps.blocks):
        overlay_panel(fig, ax, maps.image, b.modulator_norm_up, f"stage {b.stage + 1}, block {b.block + 1}", pw,
                      label="|modulator|")
    _suptitle(fig, title)
    if not maps.meaningful:
        stamp(fig)
    return fig


# ------------------------------------------------------------------------------------------------ app
def create_demo(config: DemoConfig | None = None, infos: dict[str, WeightsInfo] | None = None):
    """The Gradio app (call ``.queue(...)`` is done here; run it with :func:`launch` or ``.launch()``)."""
    import gradio as gr

    cfg = config or DemoConfig()
    models = list(cfg.models)
    if cfg.default_model not in models:
        models.insert(0, cfg.default_model)
    infos = scan_weights(cfg.weights) if infos is None else infos
    cache = _ModelCache(cfg.cache_size, cfg.device)
    examples = example_images()
    stats = {"jobs": 0, "finished": 0, "frames": 0, "errors": 0}
    n_outputs = 7  # input, modulation, gates, kernels, top5, animation, status

    def cleared(status: str):
        return (None, None, None, None, None, None, status)

    def on_model(model_name):
        if model_name not in models:
            return gr.update(), gr.update()
        blocks = block_choices(model_name)
        w = _weights_for(model_name, infos)
        return (gr.update(choices=w, value=RANDOM), gr.update(choices=blocks, value=blocks[-1][1]))

    def run(model_name, weights_label, block, upload) -> Iterator[tuple]:
        from focalnet.viz import RANDOM_WEIGHTS_NOTE, compute_maps, focal_kernels, resolve_blocks
        from focalnet.viz.figures import gates_figure, kernels_figure
        from focalnet.viz.sequence import iter_frames, maps_frame, write_animation

        stats["jobs"] += 1
        t0 = time.perf_counter()
        yield cleared("Working...")  # the previous image's maps go at once, whatever happens next
        try:
            if model_name not in models:
                raise UserError(f"unknown model {model_name!r}; choose one of {', '.join(models)}")
            if weights_label != RANDOM and weights_label not in infos:
                raise UserError(f"unknown weights {weights_label!r}")
            info = infos.get(weights_label) if weights_label != RANDOM else None
            if info is not None and info.variant != model_name:
                raise UserError(_mismatch(model_name, info))
            path = upload if isinstance(upload, (str, os.PathLike)) else getattr(upload, "path", None)
            if not path:
                raise UserError("no image: upload one or pick an example")
            model = cache.get(model_name, info)
            which = resolve_blocks(model, None)
            try:
                gate_pair = resolve_blocks(model, [str(block)])[0] if block else which[-1]
            except ValueError as e:
                raise UserError(f"gates of {block!r}: {e}") from None
            if gate_pair not in which:
                which.append(gate_pair)
            weights = info.path if info else None
            note = "" if weights else f" — {RANDOM_WEIGHTS_NOTE}"
            if _is_animation(path):
                frames, names, maps = [], [], None
                try:
                    for i, frame in enumerate(iter_frames(path, max_frames=cfg.max_frames)):
                        maps = compute_maps(model, frame, which=which, size=cfg.image_size, weights=weights)
                        frames.append(maps_frame(maps))
                        names.append(f"{Path(path).name} #{i + 1}")
                        stats["frames"] += 1
                        # a yield per frame: an abandoned job stops here
                        yield (maps.image, gr.update(), gr.update(), gr.update(), gr.update(), gr.update(),
                               f"Frame {i + 1}...")
                except (OSError, ValueError) as e:
                    raise UserError(f"cannot read the video: {e}") from None
                if maps is None:
                    raise UserError("the video holds no frames")
                out = Path(tempfile.mkdtemp(prefix="focalnet_demo_")) / "maps.gif"
                write_animation(frames, out, fps=4, captions=names)
                stats["finished"] += 1
                yield (maps.image, None, None, None, None, str(out),
                       f"Done: {len(frames)} frames in {time.perf_counter() - t0:.1f} s{note}")
                return
            image = _read_image(str(path), cfg.max_pixels)
            maps = compute_maps(model, image, which=which, size=cfg.image_size, weights=weights)
            yield (maps.image, None, None, None, None, None, "Drawing the maps...")
            main = [b for b in maps.blocks if (b.stage, b.block) in resolve_blocks(model, None)]
            gate_block = next(b for b in maps.blocks if (b.stage, b.block) == gate_pair)
            mod_maps = type(maps)(image=maps.image, blocks=main, logits=maps.logits, weights=maps.weights)
            modulation = _fig_rgb(_overlays_figure(mod_maps, f"{model_name}: modulator L2 norm over the image"))
            yield (maps.image, modulation, None, None, None, None, "Drawing the gates...")
            gmaps = type(maps)(image=maps.image, blocks=[gate_block], logits=maps.logits, weights=maps.weights)
            gates = _fig_rgb(gates_figure(gmaps, title=f"{model_name}: gates of stage {gate_block.stage + 1}, "
                                          f"block {gate_block.block + 1} over the image (raw gate logits)"))
            yield (maps.image, modulation, gates, None, None, None, "Drawing the kernels...")
            kernels = _fig_rgb(kernels_figure(focal_kernels(model), meaningful=weights is not None,
                                              title=f"{model_name}: depthwise focal kernels, last block per stage"))
            top5 = _top5(maps.logits, info.class_names if info else None) if weights else None
            stats["finished"] += 1
            yield (maps.image, modulation, gates, kernels, top5, None,
                   f"Done in {time.perf_counter() - t0:.1f} s; gates of stage {gate_block.stage + 1}, "
                   f"block {gate_block.block + 1}{note}")
        except UserError as e:
            stats["errors"] += 1
            yield cleared(f"Error: {e}")
        except Exception as e:  # never leave a job without an answer, never take the server down
            stats["errors"] += 1
            _logger.exception("unexpected error in the demo")
            yield cleared(f"Error: internal error ({type(e).__name__}: {e})")

    blocks0 = block_choices(cfg.default_model)
    with gr.Blocks(title="FocalNet: what the network looks at") as demo:
        gr.Markdown("## FocalNet: modulation and gating maps\nUpload an image (or a GIF/video), or pick an example. "
                    "Maps of **random weights** show the architecture, not what a trained network learned.")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                model_dd = gr.Dropdown(models, value=cfg.default_model, label="model", elem_id="model",
                                       allow_custom_value=True)  # checked in `run`, with a one-line answer
                weights_dd = gr.Dropdown(_weights_for(cfg.default_model, infos), value=RANDOM,
                                         label="weights (only files that fit this model)", elem_id="weights",
                                         allow_custom_value=True)
                block_dd = gr.Dropdown(blocks0, value=blocks0[-1][1], label="gates of", elem_id="block",
                                       allow_custom_value=True)
                upload = gr.File(label="image, GIF or video", file_count="single", type="filepath", elem_id="upload")
                gr.Examples([[p] for p in examples], inputs=[upload], label="examples (scikit-image)")
                button = gr.Button("Show maps", variant="primary", elem_id="run")
                status = gr.Markdown("Pick an image.", elem_id="status")
                top5 = gr.Label(num_top_classes=5, label="top-5 (trained weights only)", elem_id="top5")
            with gr.Column(scale=3):
                inp = gr.Image(label="input", format="png", interactive=False, elem_id="input", height=260)
                modulation = gr.Image(label="modulation per stage", format="png", interactive=False,
                                      elem_id="modulation")
                gates = gr.Image(label="gates per focal level", format="png", interactive=False, elem_id="gates")
                kernels = gr.Image(label="kernels", format="png", interactive=False, elem_id="kernels", height=420)
                animation = gr.Image(label="animation (GIF/video input)", interactive=False, elem_id="animation")
        outputs = [inp, modulation, gates, kernels, top5, animation, status]
        assert len(outputs) == n_outputs
        model_dd.change(on_model, [model_dd], [weights_dd, block_dd], queue=False)
        button.click(run, [model_dd, weights_dd, block_dd, upload], outputs, api_name="maps", concurrency_limit=1)
    demo.queue(max_size=cfg.queue_size, default_concurrency_limit=1)
    demo.focalnet_stats = stats
    demo.focalnet_config = cfg
    return demo


class _BusyIsNotAnError:
    """ASGI wrapper: Gradio answers a full queue with 503; say 429 (busy, retry later) instead, and count statuses.

    A full queue is the bounded queue doing its job, not a server failure, so the demo never sends a 5xx for it.
    """

    def __init__(self, app, stats: dict) -> None:
        self.app, self.stats = app, stats
        stats.setdefault("status", {})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                if message["status"] == 503:
                    message = dict(message, status=429,
                                   headers=[*message.get("headers", []), (b"retry-after", b"5")])
                code = int(message["status"])
                self.stats["status"][code] = self.stats["status"].get(code, 0) + 1
            await send(message)

        await self.app(scope, receive, send_wrapper)


@dataclass
class Server:
    """A running demo: ``url``; ``close()`` stops it."""

    url: str
    demo: object
    _server: object
    _thread: threading.Thread

    def close(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        try:
            self.demo.close()
        except Exception:  # already closed
            pass


def launch(demo, host: str = "127.0.0.1", port: int = 7860, block: bool = True, max_upload_mb: float = 10.0):
    """Serve ``demo`` on ``host:port`` (loopback by default; ``port=0``: a free one) with uvicorn.

    ``block=False`` returns a :class:`Server` at once (tests, notebooks); otherwise it serves until Ctrl+C.
    """
    import socket

    import fastapi
    import gradio as gr
    import uvicorn

    if port == 0:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    app = fastapi.FastAPI()

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    app = gr.mount_gradio_app(app, demo, path="", server_name=host, server_port=port,
                              footer_links=[], show_error=False, max_file_size=int(max_upload_mb * 1024 * 1024),
                              ssr_mode=False, mcp_server=False)

    asgi = _BusyIsNotAnError(app, demo.focalnet_stats)
    server = uvicorn.Server(uvicorn.Config(asgi, host=host, port=port, log_level="warning", lifespan="on"))
    url = f"http://{host}:{port}/"
    if block:
        server.run()
        return url
    thread = threading.Thread(target=server.run, name="focalnet-demo", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the demo server did not start on {host}:{port}")
        time.sleep(0.05)
    return Server(url, demo, server, thread)
