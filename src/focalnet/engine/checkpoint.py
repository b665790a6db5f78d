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
import shutil
import warnings
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
    "is_sharded",
    "save_sharded_checkpoint",
    "load_sharded_into",
]

FORMAT_VERSION = 1
_NAME = re.compile(r"^checkpoint-(\d+)\.(pt|dcp)$")
ENGINE_FILE = "engine.pt"  # inside a sharded checkpoint folder: everything but the model and optimizer tensors


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
        if not m or not (p.is_file() or p.is_dir()):
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and _pid_alive(pid):
            continue
        try:
            if p.is_dir():  # a sharded checkpoint's folder
                size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                shutil.rmtree(p)
            else:
                size = p.stat().st_size
                p.unlink()
        except OSError as e:
            _logger.warning("could not delete the stale temporary file %s: %s", p, e)
            continue
        removed.append(p)
        _logger.info("deleted %s (%.1f MB), left by a run killed while saving (pid %d)", p, size / 1e6, pid)
    return removed


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    tensors: bool = True) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``; corrupt files raise ``CheckpointError``.

    A sharded checkpoint (a ``torch.distributed.checkpoint`` folder) is read in this one process: its engine state
    plus the full model state dict assembled from every rank's shards (``tensors=False``: the engine state only,
    with ``"sharded": True``; :func:`load_sharded_into` then loads model and optimizer, resharded).
    """
    from focalnet.weights.loading import CheckpointError, load_state_dict_file

    if is_sharded(path):
        return _load_sharded(Path(path), tensors)
    ckpt = load_state_dict_file(path, map_location=map_location)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path} is not a focalnet training checkpoint (no 'model' entry)")
    return ckpt


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """``checkpoint-<step>.pt`` files and ``checkpoint-<step>.dcp`` sharded folders in ``directory``, oldest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def find_latest(directory: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(directory)
    return ckpts[-1] if ckpts else None


def checkpoint_path(directory: str | os.PathLike, step: int, sharded: bool = False) -> Path:
    return Path(directory) / f"checkpoint-{step:08d}.{'dcp' if sharded else 'pt'}"


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (``keep <= 0`` keeps all)."""
    if keep <= 0:
        return
    for p in list_checkpoints(directory)[:-keep]:
        try:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        except OSError as e:
            _logger.warning("could not delete old checkpoint %s: %s", p, e)


def best_path(directory: str | os.PathLike, sharded: bool = False) -> Path:
    """Where the best checkpoint so far is kept (never pruned)."""
    return Path(directory) / ("best.dcp" if sharded else "best.pt")


# ---------------------------------------------------------------------------------------------- sharded (DCP)
# A sharded checkpoint is a folder written with ``torch.distributed.checkpoint`` (DCP): ``.metadata`` plus one
# ``__<rank>_0.distcp`` shard file per rank (model and optimizer, each rank its own shards), and ``engine.pt``
# (everything else, written by rank 0 with :func:`save_checkpoint`). DCP reads ``.metadata`` with plain ``pickle``
# and non-tensor entries with ``torch.load(weights_only=False)``; we read both through restricted loaders instead.
def is_sharded(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and (p / ".metadata").is_file()


_META_MODULES = ("torch.distributed.checkpoint.",)
_META_ALLOWED = {("collections", "OrderedDict"), ("torch", "Size"), ("torch.serialization", "_get_layout"),
                 ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "PurePosixPath")}


def _safe_unpickler(fh):
    import pickle

    class _Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if module.startswith(_META_MODULES) or (module, name) in _META_ALLOWED or (
                    module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)):
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a checkpoint's .metadata")

    return _Unpickler(fh)


def _reader(path: Path):
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class _SafeReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any):
            with open(Path(self.path) / ".metadata", "rb") as fh:
                metadata = _safe_unpickler(fh).load()
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return _SafeReader(path)


def _planner(empty: bool = False, keys: set[str] | None = None):
    import io

    from torch.distributed.checkpoint._traverse import set_element
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner, _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.planner import ReadItem

    base = _EmptyStateDictLoadPlanner if empty else DefaultLoadPlanner

    class _SafePlanner(base):
        def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
            obj = torch.load(value, weights_only=True)  # the one change: no arbitrary unpickling
            if self.flatten_state_dict:
                set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
            else:
                self.state_dict[read_item.dest_index.fqn] = obj

    return _SafePlanner(keys=keys) if empty else _SafePlanner()


def _load_sharded(path: Path, tensors: bool) -> dict[str, Any]:
    from focalnet.weights.loading import CheckpointError, load_state_dict_file

    engine = path / ENGINE_FILE
    if not engine.is_file():
        raise CheckpointError(f"{path} is not a focalnet sharded checkpoint (no {ENGINE_FILE})")
    ck = load_state_dict_file(engine, map_location="cpu")
    if not isinstance(ck, dict):
        raise CheckpointError(f"{engine} is not a focalnet training checkpoint")
    ck["sharded"] = True
    if tensors:  # the full model state dict, assembled in this process (no process group needed)
        from torch.distributed.checkpoint.api import CheckpointException  # (a BaseException)
        from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

        sd: dict[str, Any] = {}
        try:
            _load_state_dict(sd, storage_reader=_reader(path), planner=_planner(empty=True, keys={"model"}),
                             no_dist=True)
        except (Exception, CheckpointException) as e:  # a shard missing or cut short, a foreign .metadata
            raise CheckpointError(f"could not read the sharded checkpoint {path}: {e}") from None
        if "model" not in sd:
            raise CheckpointError(f"{path} is not a focalnet training checkpoint (no 'model' entry)")
        ck["model"] = sd["model"]
    return ck


def load_sharded_into(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load a sharded checkpoint's model and optimizer into ``model`` (FSDP2-sharded or plain) and ``optimizer``;
    collective under a process group. DCP reshards: the checkpoint may come from any number of processes."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    from focalnet.weights.loading import CheckpointError

    # templates of this process's shards (the optimizer's moments included: get_optimizer_state_dict creates them)
    state = {"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, optimizer)}
    no_dist = not (dist.is_available() and dist.is_initialized())  # one process: no collectives (and no warning)
    try:
        with warnings.catch_warnings():  # DCP warns that it loads in one process even when told so
            warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
            dcp.load(state, storage_reader=_reader(Path(path)), planner=_planner(), no_dist=no_dist)
    except CheckpointException as e:  # raised on every rank alike
        raise CheckpointError(f"could not read the sharded checkpoint {path}: {e}") from None
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optimizer, state["optimizer"])


def save_sharded_checkpoint(tensors: dict[str, Any], engine_state: dict[str, Any] | None, path: str | os.PathLike,
                            is_main: bool) -> Path:
    """Write a sharded checkpoint atomically; collective (every rank calls it, rank 0 passes ``engine_state``).

    Every rank writes its shards of ``tensors`` with ``torch.distributed.checkpoint.save`` into ``.NAME.tmp-PID``
    (PID of rank 0); rank 0 adds ``engine.pt`` and renames the complete folder into place. A failure removes the
    temporary folder (rank 0) and leaves every existing checkpoint untouched.
    """
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp

    path = Path(path)
    pid = [os.getpid()]
    if dist.is_available() and dist.is_initialized():
        dist.broadcast_object_list(pid, src=0)
    tmp = path.with_name(f".{path.name}.tmp-{pid[0]}")
    from torch.distributed.checkpoint.api import CheckpointException  # (a BaseException)

    try:
        dcp.save(tensors, checkpoint_id=tmp)
        if is_main:
            save_checkpoint(engine_state, tmp / ENGINE_FILE)
            if path.exists():  # the same step saved again (e.g. resumed at the very end): swap the old one out
                old = path.with_name(f".{path.name}.old.tmp-{pid[0]}")
                os.replace(path, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, path)
    except BaseException as e:
        if is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(e, (Exception, CheckpointException)) or isinstance(e, CheckpointSaveError):
            raise
        cause = _os_error_in(e)
        code = cause.errno if cause is not None else None
        previous = find_latest(path.parent)
        kept = f"previous checkpoint kept: {previous}" if previous else "no previous checkpoint"
        what = "disk full" if code in _FULL else f"{type(e).__name__}: {e}"
        raise CheckpointSaveError(code or errno.EIO, f"could not save {path} ({what}); {kept}") from e
    return path


def link_sharded(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of the sharded checkpoint folder ``src`` made of hard links (no second write), swapped
    in atomically; where links are not possible the files are copied."""
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp, copy_function=_link_or_copy)
        if dst.exists():
            old = dst.with_name(f".{dst.name}.old.tmp-{os.getpid()}")
            os.replace(dst, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, dst)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _link_or_copy(a: str, b: str) -> None:
    try:
        os.link(a, b)
    except OSError:
        shutil.copy2(a, b)
