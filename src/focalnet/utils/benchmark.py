"""Side-by-side speed and memory measurement of our FocalNet against its peers (timm, Hugging Face transformers).

Shared machines are noisy, so every comparison here is made *within one run*: the candidates are timed in
interleaved rounds (A, B, C, A, B, C, ...) so that a burst of load from elsewhere hits all of them alike, and
results are reported as medians and as ratios to our model. Before timing, every peer gets *our* weights and its
outputs are compared with ours, so the candidates provably compute the same function.

Used by ``benchmarks/bench_focalnet.py``, ``benchmarks/memory_checkpointing.py`` and ``focalnet benchmark``.
Library code: results are returned (and logged), never printed.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

import focalnet

__all__ = [
    "Candidate",
    "TimingResult",
    "build_candidates",
    "output_differences",
    "make_step",
    "time_interleaved",
    "summarize",
    "format_table",
    "saved_activation_bytes",
    "step_peak_memory",
    "SpeedReport",
    "compare_speed",
    "machine_info",
    "write_json",
]

_logger = logging.getLogger(__name__)


@dataclass
class Candidate:
    """One model to time: ``call(x)`` returns logits; ``to_input`` adapts the shared input (layout, dtype)."""

    label: str
    model: nn.Module
    call: Callable[[torch.Tensor], torch.Tensor]
    to_input: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda x: x)
    autocast: torch.dtype | None = None
    inference_only: bool = False  # not timed in forward+backward (an inference path)


# ---------------------------------------------------------------------------------------------------- peers
def _load_converted(peer: nn.Module, converted: dict[str, torch.Tensor]) -> None:
    """Load our weights, converted by :mod:`focalnet.weights.convert`, strictly into ``peer``."""
    target = peer.state_dict()
    peer.load_state_dict({k: v.reshape(target[k].shape).clone() if k in target else v for k, v in converted.items()},
                         strict=True)


def _check_plain(model: focalnet.FocalNet, peer: str) -> None:
    mod = model.layers[0].blocks[0]
    if mod.use_postln or isinstance(mod.gamma_1, nn.Parameter) or mod.modulation.use_postln_in_modulation:
        raise ValueError(f"the {peer} comparison supports the pre-norm T/S/B variants without layer scale only")
    if len(model.layers) != 4:
        raise ValueError(f"the {peer} comparison needs a hierarchical (4-stage) variant")


def build_timm_peer(model: focalnet.FocalNet) -> nn.Module:
    """timm's FocalNet with the same architecture and our weights (timm runs NCHW with 1x1 convs)."""
    from timm.models.focalnet import FocalNet as TimmFocalNet

    _check_plain(model, "timm")
    peer = TimmFocalNet(
        embed_dim=model.embed_dims[0],
        depths=tuple(model.depths),
        focal_levels=tuple(model.focal_levels),
        focal_windows=tuple(model.focal_windows),
        num_classes=model.num_classes,
        drop_path_rate=0.0,
    )
    from focalnet.weights.convert import to_timm

    _load_converted(peer, to_timm(model.state_dict()))
    return peer


def build_hf_peer(model: focalnet.FocalNet) -> nn.Module:
    """transformers' ``FocalNetForImageClassification`` with the same architecture and our weights."""
    from transformers import FocalNetConfig, FocalNetForImageClassification

    _check_plain(model, "transformers")
    dims = model.embed_dims
    config = FocalNetConfig(
        embed_dim=dims[0],
        hidden_sizes=[*dims[1:], dims[-1]],
        depths=list(model.depths),
        focal_levels=list(model.focal_levels),
        focal_windows=list(model.focal_windows),
        num_labels=model.num_classes,
        drop_path_rate=0.0,
    )
    peer = FocalNetForImageClassification(config)
    from focalnet.weights.convert import to_hf

    _load_converted(peer, to_hf(model.state_dict()))
    return peer


def build_candidates(
    name: str = "focalnet_tiny_srf",
    compare: Iterable[str] = ("timm", "hf"),
    variants: Iterable[str] = (),
    seed: int = 0,
    **overrides,
) -> list[Candidate]:
    """Our model (label ``ours``) plus the requested peers, all in eval mode with one set of random weights.

    ``compare``: ``timm`` and/or ``hf``. ``variants`` adds more ways of running *our* model: ``channels_last``
    (input in channels-last memory), ``bf16`` (CPU autocast to bfloat16; timm too, when it is compared, so both
    run under the same autocast), ``compile`` (``torch.compile`` with the default inductor backend; the first call
    compiles, which ``time_interleaved``'s warm-up absorbs), ``exact`` (our plain fp32 ops, the fused CPU
    inference kernels switched off), ``predictor`` (:class:`focalnet.Predictor`'s fast path: bf16 where the
    hardware has it, channels-last, no compile).
    ``overrides`` go to :func:`focalnet.create_model` (e.g. a smaller ``embed_dim`` for a quick check).
    """
    torch.manual_seed(seed)
    ours = focalnet.create_model(name, **{"drop_path_rate": 0.0, **overrides}).eval()
    cands = [Candidate("ours", ours, ours)]
    for v in variants:
        if v == "channels_last":
            cands.append(Candidate("ours channels_last", ours, ours,
                                   to_input=lambda x: x.contiguous(memory_format=torch.channels_last)))
        elif v == "bf16":
            cands.append(Candidate("ours bf16 autocast", ours, ours, autocast=torch.bfloat16))
        elif v == "compile":
            cands.append(Candidate("ours torch.compile", ours, torch.compile(ours)))
        elif v == "exact":
            import copy

            from focalnet.predictor import _set_fused

            plain = copy.deepcopy(ours)
            _set_fused(plain, False)
            cands.append(Candidate("ours exact (unfused)", plain, plain))
        elif v == "predictor":
            from focalnet.predictor import Predictor

            pred = Predictor(ours, compile=False)
            prec = pred.settings.precision
            cands.append(Candidate(f"ours Predictor ({prec}, channels-last)", ours, pred.model,
                                   to_input=pred.prepare, autocast=torch.bfloat16 if prec == "bf16" else None,
                                   inference_only=True))
        else:
            raise ValueError(f"unknown variant {v!r}; choose from channels_last, bf16, compile, exact, predictor")
    for peer in compare:
        if peer == "timm":
            m = build_timm_peer(ours).eval()
            cands.append(Candidate("timm", m, m))
            if "bf16" in variants:
                cands.append(Candidate("timm bf16 autocast", m, m, autocast=torch.bfloat16))
        elif peer in {"hf", "transformers"}:
            m = build_hf_peer(ours).eval()
            cands.append(Candidate("transformers", m, lambda x, m=m: m(pixel_values=x).logits))
        else:
            raise ValueError(f"unknown peer {peer!r}; choose from timm, hf")
    return cands


def _run(c: Candidate, x: torch.Tensor) -> torch.Tensor:
    ctx = torch.autocast("cpu", dtype=c.autocast) if c.autocast is not None else nullcontext()
    with ctx:
        return c.call(c.to_input(x))


def output_differences(cands: Sequence[Candidate], x: torch.Tensor) -> dict[str, float]:
    """Max |logits - ours| per candidate: proof that the timed models compute the same function."""
    with torch.no_grad():
        ref = _run(cands[0], x).float()
        return {c.label: (_run(c, x).float() - ref).abs().max().item() for c in cands}


# ---------------------------------------------------------------------------------------------------- timing
def make_step(c: Candidate, x: torch.Tensor, backward: bool) -> Callable[[], None]:
    """A closure running one forward (no grad) or one forward+backward (gradients dropped each time)."""
    if not backward:

        def fwd() -> None:
            with torch.no_grad():
                _run(c, x)

        return fwd

    params = [p for p in c.model.parameters() if p.requires_grad]

    def fwd_bwd() -> None:
        for p in params:
            p.grad = None
        _run(c, x).float().sum().backward()

    return fwd_bwd


@dataclass
class TimingResult:
    label: str
    times: list[float]  # seconds per call, one per round
    batch: int

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        """Fastest round: on a shared machine the least disturbed, so the steadiest single statistic."""
        return min(self.times)

    @property
    def spread(self) -> tuple[float, float]:
        """Inter-quartile range (seconds). ``inclusive`` quartiles stay within the measured times: the default
        ``exclusive`` method extrapolates beyond them with few rounds (a negative time with 2 rounds)."""
        q = statistics.quantiles(self.times, n=4, method="inclusive") if len(self.times) > 1 else [self.times[0]] * 3
        return q[0], q[2]


def time_interleaved(
    steps: dict[str, Callable[[], None]],
    rounds: int = 10,
    warmup: int = 2,
    batch: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[TimingResult]:
    """Time every step once per round, in rotating order, after ``warmup`` untimed rounds."""
    labels = list(steps)
    for _ in range(warmup):
        for label in labels:
            steps[label]()
    times: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(rounds):
        order = labels[r % len(labels):] + labels[: r % len(labels)]  # rotate: nobody always runs first
        for label in order:
            t0 = time.perf_counter()
            steps[label]()
            times[label].append(time.perf_counter() - t0)
        if progress is not None:
            progress(r)
    return [TimingResult(label, times[label], batch) for label in labels]


def summarize(results: Sequence[TimingResult], baseline: str = "ours") -> list[dict]:
    """Rows with median and best seconds, IQR, images/s and each candidate's time relative to ``baseline``."""
    ref = next(r for r in results if r.label == baseline)
    base, base_best = ref.median, ref.best
    rows = []
    for r in results:
        lo, hi = r.spread
        rows.append({
            "label": r.label,
            "median_s": r.median,
            "best_s": r.best,
            "iqr_s": (lo, hi),
            "img_per_s": r.batch / r.median,
            "time_vs_ours": r.median / base,
            "best_vs_ours": r.best / base_best,
        })
    return rows


def format_table(rows: Sequence[dict], title: str = "") -> str:
    """A Markdown table; ``time / ours`` > 1 means slower than ours (median of rounds, and fastest round)."""
    lines = [f"**{title}**", ""] if title else []
    lines += ["| model | median (s) | IQR (s) | best (s) | images/s (median) | time / ours (median) | "
              "time / ours (best) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["iqr_s"]
        lines.append(f"| {r['label']} | {r['median_s']:.3f} | {lo:.3f}–{hi:.3f} | {r['best_s']:.3f} | "
                     f"{r['img_per_s']:.1f} | {r['time_vs_ours']:.2f} | {r['best_vs_ours']:.2f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- memory
def saved_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes kept alive for the backward pass by one training forward (unique storages, parameters excluded).

    Counts what autograd saves (``saved_tensors_hooks``) plus, for blocks run under gradient checkpointing, the
    block inputs the checkpoint keeps to recompute from; inside a checkpointed block the checkpoint's own hooks
    take over, so nothing saved there reaches ours, which is exactly the memory checkpointing saves.
    """
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def remember(t: torch.Tensor) -> None:
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            s = t.untyped_storage()
            if s.data_ptr() not in param_storages:
                storages[s.data_ptr()] = s.nbytes()

    def pack(t: torch.Tensor) -> torch.Tensor:
        remember(t)
        return t

    handles = []
    for stage in getattr(model, "layers", []):
        if getattr(stage, "grad_checkpointing", False):
            for blk in stage.blocks:
                handles.append(blk.register_forward_pre_hook(lambda mod, args: remember(args[0])))
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        del out
    finally:
        for h in handles:
            h.remove()
    return sum(storages.values())


def step_peak_memory(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Peak tensor memory of one forward+backward, by category (``PARAM``, ``GRAD``, ``ACT``, ``TEMP``, ``Total``).

    Uses PyTorch's ``MemTracker`` (a dispatch mode that follows every tensor storage's lifetime), so the numbers
    are the allocator-independent bytes of live tensors at the step's peak, on any device. Process RSS is no
    substitute on CPU: glibc keeps freed pages, so the peak RSS of a step mostly reflects the allocator's history.
    """
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(model, x)
    with tracker:
        model(x).float().logsumexp(-1).mean().backward()
    model.zero_grad(set_to_none=True)
    snap = tracker.get_tracker_snapshot("peak")
    by_device = next(iter(snap.values()))
    return {str(k).split(".")[-1]: int(v) for k, v in by_device.items()}


# ---------------------------------------------------------------------------------------------------- driver
def machine_info() -> dict[str, object]:
    """The machine a benchmark ran on: CPU model and flags that matter, threads, library versions, GPU."""
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name") and cpu in ("", platform.machine()):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    info: dict[str, object] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "avx2"}),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    for lib in ("timm", "transformers"):
        try:
            info[lib] = __import__(lib).__version__
        except ImportError:
            info[lib] = None
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def candidate_peak_mb(c: Candidate, x: torch.Tensor, backward: bool) -> float | None:
    """Peak MiB of live tensors over one forward (no grad) or one training step of a candidate (MemTracker)."""
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:  # pragma: no cover
        return None
    c.model.train(backward)
    try:
        tracker = MemTracker()
        tracker.track_external(c.model)
        with tracker:
            make_step(c, x, backward)()
        by_device = next(iter(tracker.get_tracker_snapshot("peak").values()))
        total = next(int(v) for k, v in by_device.items() if str(k).endswith("Total"))
        return total / 2**20
    except Exception as e:  # a compiled candidate may not run under the tracker's dispatch mode
        _logger.warning("no peak memory for %s: %s", c.label, e)
        return None
    finally:
        c.model.eval()
        for p in c.model.parameters():
            p.grad = None


@dataclass
class SpeedReport:
    """What :func:`compare_speed` measured; ``tables`` are Markdown, one per mode (forward, forward+backward)."""

    header: str
    differences: dict[str, float]
    rows: dict[str, list[dict]]
    tables: dict[str, str]
    settings: dict[str, object] = field(default_factory=dict)
    machine: dict[str, object] = field(default_factory=dict)
    peak_mem_mb: dict[str, float | None] = field(default_factory=dict)

    def markdown(self) -> str:
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in self.differences.items() if k != "ours")
        parts = [self.header, f"Max |logits - ours| with shared weights: {diffs or 'n/a'}."]
        if any(v is not None for v in self.peak_mem_mb.values()):
            what = "training step" if "forward+backward" in self.rows else "forward"
            parts.append(f"Peak tensor memory of one {what} (MiB): " + ", ".join(
                f"{k} {v:,.0f}" for k, v in self.peak_mem_mb.items() if v is not None) + ".")
        return "\n\n".join(parts + list(self.tables.values()))

    def records(self) -> list[dict]:
        """One record per candidate: ``name``, ``forward_median_s``, ``train_step_median_s``, ``peak_mem_mb``,
        IQRs and ratios to ours, the settings and the machine."""
        out = []
        fwd = {r["label"]: r for r in self.rows.get("forward", [])}
        bwd = {r["label"]: r for r in self.rows.get("forward+backward", [])}
        for label in fwd:
            f, b = fwd[label], bwd.get(label)
            out.append({
                "name": label,
                "forward_median_s": f["median_s"],
                "forward_iqr_s": list(f["iqr_s"]),
                "forward_time_vs_ours": f["time_vs_ours"],
                "train_step_median_s": b["median_s"] if b else None,
                "train_step_iqr_s": list(b["iqr_s"]) if b else None,
                "train_step_time_vs_ours": b["time_vs_ours"] if b else None,
                "peak_mem_mb": self.peak_mem_mb.get(label),
                "max_abs_logit_diff_vs_ours": self.differences.get(label),
                "settings": self.settings,
                "machine": self.machine,
            })
        return out


def write_json(records: list[dict], path: str | os.PathLike) -> None:
    """Write benchmark records as a JSON list, atomically (temporary file, then rename)."""
    from focalnet.weights.export import atomic_write

    def w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=2)
            fh.write("\n")

    atomic_write(path, w)


def compare_speed(
    name: str = "focalnet_tiny_srf",
    batch: int = 8,
    size: int = 224,
    backward: bool = False,
    compare: Sequence[str] = ("timm", "hf"),
    variants: Sequence[str] = (),
    threads: int | None = None,
    rounds: int = 10,
    warmup: int = 2,
    progress: Callable[[int], None] | None = None,
    on_table: Callable[[str], None] | None = None,
    memory: bool = False,
) -> SpeedReport:
    """Time our model against its peers at one batch size and resolution, forward and optionally forward+backward.

    ``threads`` sets ``torch.set_num_threads`` for the run (the machine's default otherwise). ``on_table`` gets
    each Markdown table as soon as it is measured (long runs on a busy machine then leave partial results).
    ``memory`` adds each candidate's peak tensor memory (of a training step with ``backward``, else of a forward).
    """
    if threads:
        torch.set_num_threads(threads)
    cands = build_candidates(name, compare=compare, variants=variants)
    x = torch.randn(batch, 3, size, size)
    diffs = output_differences(cands, x)
    _logger.info("max |logits - ours|: %s", diffs)
    modes = {"forward": False, **({"forward+backward": True} if backward else {})}
    rows, tables = {}, {}
    for mode, bwd in modes.items():
        steps = {}
        for c in cands:
            if bwd and c.inference_only:
                continue
            c.model.train(bwd)  # drop path is 0 and there is no dropout: train mode changes no numbers
            steps[c.label] = make_step(c, x, bwd)
        results = time_interleaved(steps, rounds=rounds, warmup=warmup, batch=batch, progress=progress)
        for c in cands:
            c.model.eval()
        rows[mode] = summarize(results)
        tables[mode] = format_table(rows[mode], title=f"{mode}, batch {batch}, {size}x{size}")
        if on_table is not None:
            on_table(tables[mode])
    peaks: dict[str, float | None] = {}
    if memory:
        for c in cands:
            peaks[c.label] = candidate_peak_mb(c, x, backward and not c.inference_only)
    header = (f"{name}, CPU, {torch.get_num_threads()} threads, torch {torch.__version__}; "
              f"{rounds} interleaved rounds after {warmup} warm-up rounds; medians.")
    settings = {"model": name, "batch": batch, "size": size, "backward": backward, "compare": list(compare),
                "variants": list(variants), "threads": torch.get_num_threads(), "rounds": rounds, "warmup": warmup,
                "dtype": "float32 weights; bf16 only under the candidates' autocast"}
    return SpeedReport(header, diffs, rows, tables, settings, machine_info(), peaks)
