"""Run logging: ``metrics.jsonl`` + ``metrics.csv``, TensorBoard ``events.*`` in the run folder when installed, and
``curves.png``. Only the main process writes.

On resume, :meth:`MetricLogger.truncate` drops the records logged after the checkpoint's step (they were written
by the killed run and are about to be produced again), so no row is ever duplicated; TensorBoard events past that
step are purged the same way (``purge_step``).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

_logger = logging.getLogger(__name__)

__all__ = ["MetricLogger", "plot_curves", "flatten_metrics", "write_json"]

BASE_FIELDS = ["split", "epoch", "step", "loss"]
TAIL_FIELDS = ["lr", "images_per_s", "time_s"]


def _json_safe(obj: Any) -> Any:
    """NaN/inf (e.g. COCO's AP of an empty size range) become ``null``: strict JSON readers refuse ``NaN``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Atomically write ``obj`` as strict JSON (refusing a folder as the target); ``-`` prints it to stdout."""
    text = json.dumps(_json_safe(obj), indent=2, default=str, allow_nan=False)
    if str(path) == "-":
        print(text)
        return Path("-")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name for the JSON output")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def flatten_metrics(d: dict[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"bbox": {"mAP": 0.3}}`` -> ``{"bbox.mAP": 0.3}`` (numbers and strings only)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_metrics(v, f"{prefix}{k}{sep}", sep))
        elif isinstance(v, (int, float, str)) or v is None:
            out[prefix + k] = v
    return out


class MetricLogger:
    """Appends one record per call to JSONL and CSV (fixed columns: ``split, epoch, step, loss``, the task's
    metric columns, ``lr, images_per_s, time_s``), and to TensorBoard if available."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True,
                 metric_fields: list[str] | tuple[str, ...] = (), resume_step: int | None = None) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.csv = self.run_dir / "metrics.csv"
        self.fields = [*BASE_FIELDS, *[f for f in metric_fields if f not in BASE_FIELDS + TAIL_FIELDS], *TAIL_FIELDS]
        self.tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            self.truncate(resume_step)
        elif self.jsonl.exists() or self.csv.exists():  # a fresh start in an old run folder: start the logs afresh
            self.truncate(-1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir), purge_step=(resume_step + 1) if resume_step else None)
            except (ImportError, ModuleNotFoundError):
                _logger.debug("tensorboard is not installed; logging to JSONL/CSV only")

    def truncate(self, step: int) -> None:
        """Keep only the records with ``step <= step`` (in both files; atomically)."""
        keep = [r for r in self.read() if int(r.get("step", 0)) <= step] if step >= 0 else []
        for path, text in ((self.jsonl, "".join(json.dumps(r) + "\n" for r in keep)), (self.csv, None)):
            if not path.exists() and not keep:
                continue
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            if text is None:
                with open(tmp, "w", newline="") as fh:
                    if keep:
                        w = csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore")
                        w.writeheader()
                        for r in keep:
                            w.writerow(flatten_metrics(r))
            else:
                tmp.write_text(text)
            os.replace(tmp, path)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.jsonl, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        flat = flatten_metrics(record)
        new = not self.csv.exists() or self.csv.stat().st_size == 0
        with open(self.csv, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(flat)
        if self.tb is not None:
            for k, v in flat.items():
                if k not in ("split", "epoch", "step") and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(f"{record.get('split', 'train')}/{k}", v, record.get("step", 0))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()

    def read(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        out = []
        for line in self.jsonl.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill mid-write
                continue
        return out


def plot_curves(records: list[dict[str, Any]], path: str | Path, metric: str | None = None,
                title: str = "") -> Path | None:
    """Training loss per step and the validation ``metric`` (a flattened key such as ``top1`` or ``bbox.mAP``)
    per evaluation, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("split") == "train"]
    val = [flatten_metrics(r) for r in records if r.get("split") == "val"]
    if not train and not val:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    if train:
        a.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    a.set_xlabel("optimizer step")
    a.set_ylabel("training loss")
    a.grid(alpha=0.3)
    pts = [(r["step"], r[metric]) for r in val if metric and isinstance(r.get(metric), (int, float))]
    if pts:
        b.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=metric)
        b.legend(loc="lower right")
    b.set_xlabel("optimizer step")
    b.set_ylabel(f"validation {metric or ''}".strip())
    b.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
