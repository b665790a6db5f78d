"""Shared test fixtures: the golden files in ../shared, deterministic CPU settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _find_shared() -> Path | None:
    env = os.environ.get("FOCALNET_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared", REPO / "shared"]
    for c in candidates:
        if (c / "golden").is_dir():
            return c
    return None


SHARED = _find_shared()
GOLDEN = SHARED / "golden" if SHARED else None


def golden_files(sub: str) -> list[Path]:
    if GOLDEN is None:
        return []
    return sorted((GOLDEN / sub).glob("*.pt"))


def load_golden(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def require_golden(sub: str) -> list[Path]:
    files = golden_files(sub)
    if not files:
        pytest.skip(f"golden fixtures not found (looked for ../shared/golden/{sub} beside the repo)")
    return files


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def pytest_configure(config):
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
