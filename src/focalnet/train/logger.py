"""Run logging: the console (``logging``), ``metrics.jsonl`` + ``metrics.csv``, TensorBoard when installed, and a
training-curve PNG. Only the main process writes."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

_logger = logging.getLogger(__name__)

__all__ = ["MetricLogger", "plot_curves"]

CSV_FIELDS = ["split", "epoch", "step", "loss", "top1", "top5", "lr", "images_per_s", "time_s"]


class MetricLogger:
    """Appends one record per call to JSONL and CSV (fixed columns), and to TensorBoard if available."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.csv = self.run_dir / "metrics.csv"
        self.tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except (ImportError, ModuleNotFoundError):
                _logger.debug("tensorboard is not installed; logging to JSONL/CSV only")

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.jsonl, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        new = not self.csv.exists()
        with open(self.csv, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(record)
        if self.tb is not None:
            for k, v in record.items():
                if k not in ("split", "epoch", "step") and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(f"{record.get('split', 'train')}/{k}", v, record.get("step", 0))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()

    def read(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        return [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]


def plot_curves(records: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Training loss per step and validation top-1 per epoch, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("split") == "train"]
    val = [r for r in records if r.get("split") == "val"]
    if not train and not val:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    if train:
        a.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    a.set_xlabel("optimizer step")
    a.set_ylabel("training loss")
    a.grid(alpha=0.3)
    if val:
        b.plot([r["epoch"] + 1 for r in val], [r["top1"] for r in val], "o-", label="top-1")
        b.plot([r["epoch"] + 1 for r in val], [r["top5"] for r in val], "s--", label="top-5", alpha=0.6)
        b.legend(loc="lower right")
    b.set_xlabel("epoch")
    b.set_ylabel("validation accuracy (%)")
    b.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
