"""The fast inference path: ``focalnet.Predictor`` wraps a classifier for throughput, with an exact switch.

``Predictor(model)`` picks, once, how to run the model:

* **precision** ``"auto"``: bfloat16 autocast where the hardware has bf16 natively (a CUDA device of compute
  capability >= 8.0; a CPU with AVX512-BF16 or AMX-BF16), else fp32 (with our fused CPU inference kernels, which
  agree with the plain ops to float rounding, ~1e-7).
* **exact** ``True`` is the switch back: plain eager fp32, the fused kernels off, no compile, the numbers the
  golden parity tests pin (``Predictor.exact(model)``).
* **channels_last**: the input batch is handed over in channels-last memory, so the stem convolution reads it
  without a layout conversion (FocalNet keeps channels-last tokens throughout).
* **compile** ``"auto"``: ``torch.compile`` on CUDA, and on CPU only when the caller says enough images will pass
  (``expected_images >= compile_min_images``): compiling costs tens of seconds on a small CPU, which pays only
  over thousands of images. Inductor's on-disk FX graph cache stays on, so a second process starts in seconds.

The model itself is never modified in place (no dtype cast, no fusion of its parameters): ``Predictor.model`` is
the module you passed, in eval mode. Logits come back as fp32 whatever the compute precision.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Predictor", "PredictorSettings", "cpu_has_native_bf16", "native_bf16"]

_logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True if this CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16), from /proc/cpuinfo's flags."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 natively (so bf16 is faster, not an emulation)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


@dataclass(frozen=True)
class PredictorSettings:
    """What a :class:`Predictor` decided; ``exact`` means plain fp32 eager, the golden-parity numerics."""

    device: str
    precision: str
    channels_last: bool
    compiled: bool
    exact: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _set_fused(model: nn.Module, enabled: bool) -> None:
    for m in model.modules():
        if hasattr(m, "fused_inference"):
            m.fused_inference = enabled


class Predictor:
    """Fast (or, with ``exact=True``, exact) inference for a FocalNet-style classifier.

    ``Predictor(model)(images)`` returns fp32 logits for an ``(B, C, H, W)`` batch. ``predictor.settings`` says
    what was chosen. ``Predictor.exact(model)`` is shorthand for ``exact=True``.
    """

    def __init__(
        self,
        model: nn.Module,
        precision: str = "auto",
        channels_last: bool = True,
        compile: bool | str = "auto",
        device: str | torch.device | None = None,
        expected_images: int | None = None,
        compile_min_images: int = 5000,
        exact: bool = False,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if compile not in (True, False, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
        if device is None:
            ref = next(iter(model.parameters()), None)
            device = ref.device if ref is not None else torch.device("cpu")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if exact:
            precision, channels_last, compile = "fp32", False, False
        if precision == "auto":
            precision = "bf16" if native_bf16(self.device) else "fp32"
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 inference is for CUDA devices; use bf16 or fp32 on the CPU")
        self.precision = precision
        self.channels_last = bool(channels_last)
        self._fused = not exact
        if compile == "auto":
            compile = self.device.type == "cuda" or (
                expected_images is not None and expected_images >= compile_min_images
            )
        self._forward = self.model
        if compile:
            self._forward = self._compiled()
        self.settings = PredictorSettings(str(self.device), precision, self.channels_last, bool(compile), exact)
        _logger.info("predictor: %s", self.settings)

    @classmethod
    def exact(cls, model: nn.Module, device: str | torch.device | None = None) -> Predictor:
        """Plain fp32 eager: the reference numerics, nothing fused, nothing compiled."""
        return cls(model, device=device, exact=True)

    def _compiled(self):
        try:
            import torch._inductor.config as inductor_config

            inductor_config.fx_graph_cache = True  # on-disk cache: the next process skips code generation
        except Exception:  # pragma: no cover - inductor is part of every torch we support
            pass
        os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
        return torch.compile(self.model, dynamic=False)

    @contextlib.contextmanager
    def _precision_context(self) -> Iterator[None]:
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            with torch.autocast(self.device.type, dtype=dtype):
                yield
        else:
            yield

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Move a batch to the device in the chosen memory layout."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # Set on every call (a few microseconds): two predictors, one exact, may share a model.
        _set_fused(self.model, self._fused)
        x = self.prepare(x)
        with self._precision_context():
            return self._forward(x).float()

    def as_module(self) -> nn.Module:
        """An ``nn.Module`` whose forward is this predictor (for code that expects a model, e.g. an eval loop)."""
        return _PredictorModule(self)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax over the classes (fp32)."""
        return self(x).softmax(-1)

    def __repr__(self) -> str:
        s = self.settings
        return (f"Predictor({type(self.model).__name__}, device={s.device}, precision={s.precision}, "
                f"channels_last={s.channels_last}, compiled={s.compiled}, exact={s.exact})")


class _PredictorModule(nn.Module):
    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        self.predictor = predictor
        self.inner = predictor.model  # registered, so .to()/.eval()/parameters() reach the model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(x)
