"""Training checkpoints: everything needed to continue, written atomically, read back with ``weights_only=True``.

A checkpoint is a dict of state dicts and plain Python / tensor data only (RNG states are converted to tensors and
lists), so it is read without unpickling arbitrary objects. It is written to a temporary file in the same
directory, flushed and fsync'ed, then renamed over the final name with ``os.replace``: a crash or a full disk
while saving leaves the previous checkpoint intact and never a half-written file under a checkpoint's name.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from focalnet.errors import FocalnetError

_logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointSaveError",
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "find_latest",
    "list_checkpoints",
    "capture_rng",
    "restore_rng",
    "prune_checkpoints",
    "clean_stale_temp_files",
    "best_path",
]

FORMAT_VERSION = 1
_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")


class CheckpointSaveError(FocalnetError, OSError):
    """A checkpoint could not be written; the previous one is untouched."""


# ---------------------------------------------------------------------------------------------- RNG
def capture_rng() -> dict[str, Any]:
    """All RNG states as tensors / lists (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            _logger.warning("not restoring CUDA RNG states: saved for %d devices, %d present", len(cuda),
                            torch.cuda.device_count())


# ---------------------------------------------------------------------------------------------- files
def _write(obj: Any, fh) -> None:
    """The one place bytes are written (tests replace it to simulate a full disk)."""
    torch.save(obj, fh)


_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_TEMP = re.compile(r"^\..+\.tmp-(\d+)$")


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: torch's zip writer turns a failed ``write`` into a RuntimeError whose context
    is the real ``OSError(ENOSPC)``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Atomically write ``state`` to ``path`` (temp file + fsync + ``os.replace``).

    Any failure (a full disk, which torch reports as a ``RuntimeError`` from its zip writer, a permission or
    quota error, an unpicklable object, an interrupt) deletes the temporary file and leaves every existing
    checkpoint untouched; exceptions become :class:`CheckpointSaveError` ("disk full while saving ...; previous
    checkpoint kept: ..."), interrupts are re-raised after the clean-up.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            _write(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if not isinstance(e, Exception):  # KeyboardInterrupt / SystemExit: cleaned up, now let it through
            raise
        previous = find_latest(path.parent)
        kept = f"previous checkpoint kept: {previous}" if previous else "no previous checkpoint"
        cause = _os_error_in(e)
        code = cause.errno if cause is not None else None
        if code in _FULL:
            msg = f"disk full while saving {path}; {kept}. Free some space and resume with --resume auto"
        else:
            reason = f"{cause.strerror or cause}" if cause is not None else f"{type(e).__name__}: {e}"
            msg = f"could not save {path} ({reason}); {kept}"
        raise CheckpointSaveError(code or errno.EIO, msg) from e
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def clean_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the ``.NAME.tmp-PID`` files that writers killed mid-save left in ``directory``; return them.

    A file is stale when its writer's process no longer exists, or is this process (called at start-up, before
    this process saves anything, so a matching PID is a recycled one). Files of live writers are left alone.
    """
    d = Path(directory)
    if not d.is_dir():
        return []
    removed = []
    for p in d.iterdir():
        m = _TEMP.match(p.name)
        if not m or not p.is_file():
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and _pid_alive(pid):
            continue
        try:
            size = p.stat().st_size
            p.unlink()
        except OSError as e:
            _logger.warning("could not delete the stale temporary file %s: %s", p, e)
            continue
        removed.append(p)
        _logger.info("deleted %s (%.1f MB), left by a run killed while saving (pid %d)", p, size / 1e6, pid)
    return removed


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``; corrupt files raise ``CheckpointError``."""
    from focalnet.weights.loading import CheckpointError, load_state_dict_file

    ckpt = load_state_dict_file(path, map_location=map_location)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path} is not a focalnet training checkpoint (no 'model' entry)")
    return ckpt


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """``checkpoint-<step>.pt`` files in ``directory``, oldest first (by step)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def find_latest(directory: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(directory)
    return ckpts[-1] if ckpts else None


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    return Path(directory) / f"checkpoint-{step:08d}.pt"


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (``keep <= 0`` keeps all)."""
    if keep <= 0:
        return
    for p in list_checkpoints(directory)[:-keep]:
        try:
            p.unlink()
        except OSError as e:
            _logger.warning("could not delete old checkpoint %s: %s", p, e)


def best_path(directory: str | os.PathLike) -> Path:
    """Where the best checkpoint so far is kept (never pruned)."""
    return Path(directory) / "best.pt"
