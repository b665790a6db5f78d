"""Download released checkpoints into a local cache and load them into a model.

* The cache is ``$FOCALNET_CACHE`` or ``~/.cache/focalnet``. A file is downloaded once: bytes go to a temporary
  file beside the target and are moved into place with ``os.replace`` only when complete and verified, so an
  interrupted download never leaves a half file under the real name.
* ``hf://owner/repo/path`` uses ``huggingface_hub`` and the **standard Hugging Face cache** (``$HF_HUB_CACHE`` /
  ``$HF_HOME/hub`` / ``~/.cache/huggingface/hub``), so weights a timm or transformers user already downloaded
  (``timm/focalnet_*``, ``microsoft/focalnet-*``) are reused, offline too. ``http(s)://`` URLs (the GitHub release)
  use the standard library with a connect/read timeout and a length check (``torch.hub.download_url_to_file`` has
  neither); local paths and ``file://`` URLs are used in place.
* ``HF_HUB_OFFLINE=1`` is honoured for every source: nothing touches the network, cached copies are used, and a
  missing one is one clear error. Without it, a source whose host cannot be reached marks the network as down
  for the rest of the call, so an offline machine fails in seconds, not after every mirror timed out.
* :func:`fetch_record` tries the cached copies of every source first (no network), then downloads in order; a
  source whose file does not verify or does not load falls through to the next, and a bad cached file is deleted
  (ours) or downloaded again (the HF cache), never reused.
* A known SHA-256 (a record's own, or a mirror's) is checked on every use; otherwise the file is only trusted
  after it reads as a weights-only checkpoint and loads strictly into the model (``load_pretrained``).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from focalnet.errors import FocalnetError, InputNotFoundError, one_line

from .loading import CheckpointError, load_state_dict_file, load_weights, unwrap_state_dict
from .records import WeightsRecord, get_weights, list_weights

__all__ = ["DownloadError", "NetworkError", "default_cache_dir", "download", "fetch_record", "hf_cache_dir",
           "is_offline", "load_pretrained"]

_logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


class DownloadError(FocalnetError, RuntimeError):
    """A checkpoint could not be fetched; the message says from where and what to do instead."""


class NetworkError(DownloadError):
    """The host could not be reached (offline, DNS, refused, timed out) -- as opposed to a refusal or a bad file."""


_OFFLINE_HINT = (
    "offline? set HF_HUB_OFFLINE=1 to use cached copies only (no network attempts), or pass a local file "
    "(create_model(name, pretrained='/path/to/file.pth'), focalnet predict --weights FILE)"
)
_TIMEOUT = 15  # seconds, per connect / read; an unreachable host fails fast instead of hanging


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` (read at call time, as huggingface_hub's own flag is fixed at its import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hf_cache_dir() -> Path:
    """The standard Hugging Face hub cache that timm and transformers share."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def default_cache_dir() -> Path:
    """``$FOCALNET_CACHE`` if set, else ``~/.cache/focalnet``."""
    env = os.environ.get("FOCALNET_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "focalnet"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_hash(path: Path, sha256: str | None, url: str) -> None:
    if sha256 is None:
        return
    digest = _sha256(path)
    if not digest.startswith(sha256.lower()):
        raise DownloadError(f"SHA-256 mismatch for {url}: expected {sha256}, got {digest} ({path})")


def _progress_bar(total: int | None, name: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)


def _hf_parts(url: str) -> tuple[str, str]:
    parts = url[len("hf://") :].split("/")
    if len(parts) < 3 or not all(parts):
        raise DownloadError(f"hf:// URLs look like hf://owner/repo/path/in/repo, got {url!r}")
    return "/".join(parts[:2]), "/".join(parts[2:])


def _download_hf(url: str, sha256: str | None, local_only: bool = False, force: bool = False) -> Path:
    repo_id, filename = _hf_parts(url)
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as e:
        raise DownloadError(f"{url} needs huggingface_hub: pip install 'focalnet[weights]'") from e
    local_only = local_only or is_offline()
    try:
        path = Path(hf_hub_download(repo_id, filename, cache_dir=str(hf_cache_dir()), local_files_only=local_only,
                                    force_download=force and not local_only, etag_timeout=_TIMEOUT))
    except LocalEntryNotFoundError as e:
        if local_only:
            raise DownloadError(
                f"no cached copy of {repo_id}/{filename} in the Hugging Face cache ({hf_cache_dir()})"
                + (" and HF_HUB_OFFLINE is set" if is_offline() else "")
            ) from e
        raise NetworkError(
            f"cannot fetch {filename} from the Hugging Face hub repo {repo_id} (offline, or the hub is unreachable, "
            f"and no cached copy); {_OFFLINE_HINT}"
        ) from e
    except (EntryNotFoundError, HfHubHTTPError) as e:
        raise DownloadError(f"the Hugging Face hub refused {repo_id}/{filename}: {str(e).splitlines()[0]}") from e
    except OSError as e:  # httpx / socket errors that huggingface_hub lets through
        raise NetworkError(f"cannot reach the Hugging Face hub for {repo_id}/{filename} ({e}); {_OFFLINE_HINT}") from e
    _check_hash(path, sha256, url)
    return path


def cached_copy(url: str, cache_dir: str | os.PathLike | None = None, file_name: str | None = None) -> Path | None:
    """The local file ``download(url)`` would return without touching the network, or ``None``."""
    if url.startswith("hf://"):
        try:
            return _download_hf(url, None, local_only=True)
        except DownloadError:
            return None
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else url).expanduser()
        return path if path.is_file() else None
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    dest = cache / (file_name or Path(urllib.parse.unquote(parsed.path)).name or "checkpoint")
    return dest if dest.is_file() else None


def _forget(url: str, path: Path) -> None:
    """Drop a bad cached file so it is never reused (HF cache entries are re-downloaded with force instead)."""
    if url.startswith("hf://"):
        return
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https") and path.is_file():
        _logger.warning("deleting the bad cached file %s", path)
        path.unlink()


def _verify_readable(path: Path, url: str) -> None:
    """Check that a downloaded checkpoint parses (cheaply: memory-mapped, tensors are not read)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        if head == b"PK":  # zip-based torch.save: weights-only unpickling of the index, data memory-mapped
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        else:
            load_state_dict_file(path)
    except CheckpointError as e:
        raise CheckpointError(f"downloaded {url} but it is not a usable checkpoint: {e}") from e
    except Exception as e:  # torch raises several types for damaged archives
        raise CheckpointError(f"downloaded {url} but it is corrupt or truncated and cannot be read ({e})") from e


def download(
    url: str,
    cache_dir: str | os.PathLike | None = None,
    sha256: str | None = None,
    progress: bool = True,
    file_name: str | None = None,
    verify: bool = True,
    local_only: bool = False,
    force: bool = False,
) -> Path:
    """Fetch ``url`` into the cache (once) and return the local path.

    ``local_only`` (or ``HF_HUB_OFFLINE=1``) never touches the network: a cached copy or an error. ``force``
    downloads again even if a copy is cached (used when the cached one proved bad).

    ``sha256`` (full hex digest or a prefix of it) is verified after the download and on every cache hit. With
    ``verify`` the new file must also read as a weights-only checkpoint before it enters the cache. Errors (HTTP
    status, unreachable host, hash mismatch, short read) raise :class:`DownloadError`, an unreadable file
    :class:`CheckpointError`; neither leaves a partial file behind.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if url.startswith("hf://"):
        return _download_hf(url, sha256, local_only=local_only, force=force)
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else url).expanduser()
        if not path.is_file():
            raise InputNotFoundError(f"checkpoint not found: {path}")
        _check_hash(path, sha256, url)
        return path
    if parsed.scheme not in ("http", "https"):
        raise DownloadError(f"unsupported URL scheme in {url!r} (use http(s)://, hf:// or a local path)")

    name = file_name or Path(urllib.parse.unquote(parsed.path)).name or "checkpoint"
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / name
    if dest.is_file() and not force:
        try:
            _check_hash(dest, sha256, url)
            _logger.debug("using cached %s", dest)
            return dest
        except DownloadError:
            _logger.warning("cached %s does not match its SHA-256; deleting it and downloading it again", dest)
            dest.unlink()
    if local_only or is_offline():
        raise DownloadError(f"no cached copy of {url} at {dest}" + (" and HF_HUB_OFFLINE is set" if is_offline()
                                                                    else ""))

    _logger.info("downloading %s to %s", url, dest)
    request = urllib.request.Request(url, headers={"User-Agent": "focalnet (python urllib)"})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=cache)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(request, timeout=_TIMEOUT)
            except urllib.error.HTTPError as e:
                raise DownloadError(
                    f"HTTP {e.code} {e.reason} for {url}; the link may be dead (see focalnet.list_weights() for "
                    "mirrors), or download the file yourself and pass its path"
                ) from e
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                reason = getattr(e, "reason", e)
                raise NetworkError(
                    f"cannot reach {parsed.netloc} for {url} ({reason}); {_OFFLINE_HINT}; a file put at {dest} "
                    "(FOCALNET_CACHE) is used as the cached copy"
                ) from e
            with response:
                total = response.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                bar = _progress_bar(total, name, progress)
                try:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
                    raise DownloadError(f"download of {url} broke off after {received} bytes ({e})") from e
                finally:
                    if bar is not None:
                        bar.close()
        if total is not None and received != total:
            raise DownloadError(f"download of {url} is truncated: got {received} of {total} bytes")
        if received == 0:
            raise DownloadError(f"{url} returned an empty file")
        if sha256 is not None and not digest.hexdigest().startswith(sha256.lower()):
            raise DownloadError(f"SHA-256 mismatch for {url}: expected {sha256}, got {digest.hexdigest()}")
        if verify:
            _verify_readable(tmp, url)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


# ---------------------------------------------------------------------------------------------------- loading
def _resolve(name: str, pretrained: bool | str) -> WeightsRecord | str:
    """A weights record (``True``, a tag, or a full record name) or a path/URL to load instead."""
    if pretrained is True:
        return get_weights(name)
    if not isinstance(pretrained, str) or not pretrained:
        raise TypeError(f"pretrained must be True, a weights tag, a path or an URL, got {pretrained!r}")
    for candidate in (f"{name}.{pretrained}", pretrained):
        try:
            return get_weights(candidate)
        except KeyError:
            continue
    if "://" in pretrained or Path(pretrained).expanduser().exists():
        return pretrained
    tags = ", ".join(r.tag for r in list_weights(name)) or "none"
    raise FileNotFoundError(
        f"pretrained={pretrained!r} is neither a weights tag of {name} (tags: {tags}) nor an existing file or URL"
    )


def _fit_head(model: nn.Module, sd: dict[str, torch.Tensor], label_set: str | None, source: str) -> dict:
    """Make the checkpoint's classifier fit the model's class count (22K -> 1K keeps logits[:1000])."""
    own = model.state_dict()
    own_head = {k: v for k, v in own.items() if k.startswith("head.")}
    ck_head = {k: v for k, v in sd.items() if k.startswith("head.")}
    body = {k: v for k, v in sd.items() if not k.startswith("head.")}
    if not own_head:
        if ck_head:
            _logger.info("model has no classifier; dropping the checkpoint's head")
        return body
    want = own_head["head.weight"].shape[0]
    if not ck_head:
        _logger.warning("%s has no classifier; the model's %d-class head stays randomly initialised", source, want)
        return {**body, **own_head}
    have = ck_head["head.weight"].shape[0]
    if have == want:
        return sd
    if want == 1000 and have >= 1000 and (label_set == "imagenet-22k" or have == 21842):
        _logger.info(
            "%s: keeping the first 1000 of %d head rows (the IN-1K classes in standard order; class 850 "
            "'teddy bear' was never trained in 22K)",
            source,
            have,
        )
        return {**body, **{k: v[:1000] for k, v in ck_head.items()}}
    _logger.warning(
        "%s has a %d-class head but the model wants %d classes: dropping the checkpoint's head (the new head is "
        "randomly initialised; fine-tune it)",
        source,
        have,
        want,
    )
    return {**body, **own_head}


def _load_file_into(model: nn.Module, path: Path, label_set: str | None, source: str,
                    flag_stated: bool = False) -> nn.Module:
    from .convert import detect_layout, to_canonical

    raw = unwrap_state_dict(load_state_dict_file(path))
    if not flag_stated and type(model).__name__ == "FocalNet":
        try:
            foreign = detect_layout(raw) in ("timm", "hf")
        except CheckpointError:
            foreign = False
        if foreign:
            from .hf import warn_unstated_normalize_modulator

            warn_unstated_normalize_modulator(model, source)
    sd = to_canonical(model, raw)
    sd = _fit_head(model, sd, label_set, source)
    return load_weights(model, sd, strict=True)


def _set_cfg_for_file(model: nn.Module, name: str, source: str, preprocess: dict | None = None) -> None:
    """pretrained=PATH: the variant's record gives the preprocessing (unless a folder's preprocessor_config.json
    does: ``preprocess``); the file and class count are the file's."""
    try:
        rec = get_weights(name)
    except KeyError:
        return
    if not hasattr(model, "in_chans"):
        return
    cfg = rec.pretrained_cfg(in_chans=model.in_chans, stride=getattr(model, "stride", 32))
    cfg.update(tag=None, url=source if "://" in source else "", file=source, hf_hub_id=None, sha256=None,
               num_classes=getattr(model, "num_classes", cfg["num_classes"]))
    if preprocess is not None:
        size = int(preprocess["input_size"])
        cfg.update(input_size=(model.in_chans, size, size), interpolation=preprocess["interpolation"],
                   crop_pct=float(preprocess["crop_pct"]), mean=tuple(preprocess["mean"]), std=tuple(preprocess["std"]))
    model.pretrained_cfg = cfg


def load_pretrained(
    model: nn.Module,
    name: str,
    pretrained: bool | str = True,
    num_classes: int | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> nn.Module:
    """Load released weights of variant ``name`` into ``model`` (which ``create_model`` just built).

    ``pretrained``: ``True`` (the variant's default record), a tag such as ``"ms_in22k"``, a full record name, or a
    local path / URL. Sources are tried in order (release URL, then mirrors); each file is converted from its
    layout and loaded strictly. When the model's class count (``num_classes``) differs from the checkpoint's, a
    22K head keeps its first 1000 rows for a 1000-class model (spec §4.4); any other mismatch drops the head with a
    warning. The chosen record is kept on ``model.pretrained_cfg`` for preprocessing (input size, crop, mean/std).
    """
    target = _resolve(name, pretrained)
    if num_classes is not None and getattr(model, "num_classes", num_classes) != num_classes:
        raise ValueError(f"num_classes={num_classes} but the model was built with {model.num_classes} classes")
    if isinstance(target, str):
        from .hf import is_hf_dir, read_hf_dir

        hf_dir = None
        if "://" not in target and Path(target).expanduser().is_dir():
            if not is_hf_dir(target):
                raise InputNotFoundError(f"{target} is a folder without model.safetensors or pytorch_model.bin")
            hf_dir = read_hf_dir(target)
            path = hf_dir.weights_file
        else:
            path = download(target, cache_dir=cache_dir, progress=progress)
        _load_file_into(model, path, None, target, flag_stated=hf_dir is not None and hf_dir.says_normalize_modulator)
        _set_cfg_for_file(model, name, target, hf_dir.preprocess if hf_dir is not None else None)
        return model

    record = target
    if record.status != "available":
        dead = ", ".join(record.dead_urls) or "none recorded"
        raise DownloadError(
            f"no live copy of {record.name} is known: the published link(s) are dead ({dead}) and no mirror exists. "
            "If you have the file, pass it: create_model(name, pretrained='/path/to/file.pth')"
        )

    def check(path: Path, url: str, layout: str) -> None:
        _load_file_into(model, path, record.label_set, f"{record.name} ({layout} layout, {url})")

    fetch_record(record, check, cache_dir=cache_dir, progress=progress)
    model.pretrained_cfg = record
    return model


def fetch_record(
    record: WeightsRecord,
    check: Callable[[Path, str, str], None] | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[Path, str, str]:
    """A verified local copy of ``record``'s file: ``(path, url, layout)``.

    Cached copies of every source are tried first (no network: a timm/HF user's cache counts), then the sources
    are downloaded in order. ``check(path, url, layout)`` (e.g. a strict load into the model) must pass; a source
    whose file fails the hash, does not read or does not pass ``check`` falls through to the next one, and a bad
    cached file is never reused. With ``HF_HUB_OFFLINE=1`` only cached copies are used. Raises
    :class:`DownloadError` naming every source tried and how to get going offline.
    """
    if record.status != "available":
        dead = ", ".join(record.dead_urls) or "none recorded"
        raise DownloadError(
            f"no live copy of {record.name} is known: the published link(s) are dead ({dead}) and no mirror exists. "
            "If you have the file, pass it: create_model(name, pretrained='/path/to/file.pth')"
        )

    def attempt(url: str, layout: str, path: Path) -> None:
        _check_hash(path, record.sha256_for(url), url)
        try:
            if check is not None:
                check(path, url, layout)
            else:
                _verify_readable(path, url)
        except CheckpointError:
            raise
        except (ValueError, RuntimeError, KeyError) as e:  # a load that fails in another way is a bad file too
            raise CheckpointError(str(e)) from e

    failures: list[str] = []
    bad_cached: set[str] = set()
    for url, layout in record.sources:  # pass 1: what is already on this machine
        path = cached_copy(url, cache_dir)
        if path is None:
            continue
        try:
            attempt(url, layout, path)
            _logger.info("using the cached copy of %s: %s", record.name, path)
            return path, url, layout
        except (DownloadError, CheckpointError) as e:
            _logger.warning("cached %s is bad (%s); it will not be reused", path, one_line(e))
            failures.append(f"{url} (cached): {one_line(e)}")
            bad_cached.add(url)
            _forget(url, path)
    if is_offline():
        raise DownloadError(
            f"HF_HUB_OFFLINE is set and no usable cached copy of {record.name} exists (looked in {hf_cache_dir()} and "
            f"{Path(cache_dir) if cache_dir else default_cache_dir()}); unset HF_HUB_OFFLINE to download it, or pass "
            "a local file (create_model(name, pretrained='/path/to/file.pth'), focalnet predict --weights FILE)"
        )
    network_down = False
    for url, layout in record.sources:  # pass 2: download, falling through on any failure
        if network_down and not url.startswith("file:"):
            continue
        path = None
        try:
            path = download(url, cache_dir=cache_dir, sha256=record.sha256_for(url), progress=progress,
                            force=url in bad_cached)
            attempt(url, layout, path)
            return path, url, layout
        except NetworkError as e:
            network_down = True
            failures.append(f"{url}: {one_line(e)}")
        except (DownloadError, CheckpointError, FileNotFoundError) as e:
            _logger.warning("%s: %s; trying the next source", url, one_line(e))
            failures.append(f"{url}: {one_line(e)}")
            if path is not None:
                _forget(url, path)
    hint = f"; {_OFFLINE_HINT}" if network_down and not any(_OFFLINE_HINT in f for f in failures) else ""
    raise (NetworkError if network_down else DownloadError)(
        f"could not fetch {record.name} from any of its {len(record.sources)} sources: " + " | ".join(failures) + hint
    )
