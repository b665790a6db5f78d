"""Download released checkpoints into a local cache and load them into a model.

* The cache is ``$FOCALNET_CACHE`` or ``~/.cache/focalnet``. A file is downloaded once: bytes go to a temporary
  file beside the target and are moved into place with ``os.replace`` only when complete and verified, so an
  interrupted download never leaves a half file under the real name.
* ``http(s)://`` URLs use the standard library; ``hf://owner/repo/path`` uses ``huggingface_hub`` (its own cache
  under ``<cache>/hf``, token and offline handling). Local paths and ``file://`` URLs are used in place.
* A known SHA-256 is checked on every use; otherwise the file is only trusted after it reads as a weights-only
  checkpoint and loads strictly into the model (``load_pretrained``).
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
from pathlib import Path

import torch
from torch import nn

from focalnet.errors import FocalnetError

from .loading import CheckpointError, load_state_dict_file, load_weights, unwrap_state_dict
from .records import WeightsRecord, get_weights, list_weights

__all__ = ["DownloadError", "default_cache_dir", "download", "load_pretrained"]

_logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


class DownloadError(FocalnetError, RuntimeError):
    """A checkpoint could not be fetched; the message says from where and what to do instead."""


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


def _download_hf(url: str, cache: Path, sha256: str | None) -> Path:
    parts = url[len("hf://") :].split("/")
    if len(parts) < 3:
        raise DownloadError(f"hf:// URLs look like hf://owner/repo/path/in/repo, got {url!r}")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as e:
        raise DownloadError(f"{url} needs huggingface_hub: pip install 'focalnet[weights]'") from e
    try:
        path = Path(hf_hub_download(repo_id, filename, cache_dir=str(cache / "hf")))
    except LocalEntryNotFoundError as e:
        raise DownloadError(
            f"cannot fetch {filename} from the Hugging Face hub repo {repo_id} (offline, or the hub is unreachable, "
            f"and no cached copy): {e}"
        ) from e
    except (EntryNotFoundError, HfHubHTTPError) as e:
        raise DownloadError(f"the Hugging Face hub refused {repo_id}/{filename}: {str(e).splitlines()[0]}") from e
    _check_hash(path, sha256, url)
    return path


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
) -> Path:
    """Fetch ``url`` into the cache (once) and return the local path.

    ``sha256`` (full hex digest or a prefix of it) is verified after the download and on every cache hit. With
    ``verify`` the new file must also read as a weights-only checkpoint before it enters the cache. Errors (HTTP
    status, unreachable host, hash mismatch, short read) raise :class:`DownloadError`, an unreadable file
    :class:`CheckpointError`; neither leaves a partial file behind.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if url.startswith("hf://"):
        return _download_hf(url, cache, sha256)
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else url).expanduser()
        if not path.is_file():
            from focalnet.errors import InputNotFoundError

            raise InputNotFoundError(f"checkpoint not found: {path}")
        _check_hash(path, sha256, url)
        return path
    if parsed.scheme not in ("http", "https"):
        raise DownloadError(f"unsupported URL scheme in {url!r} (use http(s)://, hf:// or a local path)")

    name = file_name or Path(urllib.parse.unquote(parsed.path)).name or "checkpoint"
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / name
    if dest.is_file():
        try:
            _check_hash(dest, sha256, url)
            _logger.debug("using cached %s", dest)
            return dest
        except DownloadError:
            _logger.warning("cached %s does not match its SHA-256; downloading it again", dest)

    _logger.info("downloading %s to %s", url, dest)
    request = urllib.request.Request(url, headers={"User-Agent": "focalnet (python urllib)"})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=cache)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(request, timeout=60)
            except urllib.error.HTTPError as e:
                raise DownloadError(
                    f"HTTP {e.code} {e.reason} for {url}; the link may be dead (see focalnet.list_weights() for "
                    "mirrors), or download the file yourself and pass its path"
                ) from e
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                reason = getattr(e, "reason", e)
                raise DownloadError(
                    f"cannot reach {parsed.netloc} for {url} ({reason}); are you offline? Put the file at {dest} "
                    "(or set FOCALNET_CACHE), or pass a local path instead"
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


def _load_file_into(model: nn.Module, path: Path, label_set: str | None, source: str) -> nn.Module:
    from .convert import to_canonical

    sd = to_canonical(model, unwrap_state_dict(load_state_dict_file(path)))
    sd = _fit_head(model, sd, label_set, source)
    return load_weights(model, sd, strict=True)


def _set_cfg_for_file(model: nn.Module, name: str, source: str) -> None:
    """pretrained=PATH: the variant's record gives the preprocessing; the file and class count are the file's."""
    try:
        rec = get_weights(name)
    except KeyError:
        return
    if not hasattr(model, "in_chans"):
        return
    cfg = rec.pretrained_cfg(in_chans=model.in_chans, stride=getattr(model, "stride", 32))
    cfg.update(tag=None, url=source if "://" in source else "", file=source, hf_hub_id=None, sha256=None,
               num_classes=getattr(model, "num_classes", cfg["num_classes"]))
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
        path = download(target, cache_dir=cache_dir, progress=progress)
        _load_file_into(model, path, None, target)
        _set_cfg_for_file(model, name, target)
        return model

    record = target
    if record.status != "available":
        dead = ", ".join(record.dead_urls) or "none recorded"
        raise DownloadError(
            f"no live copy of {record.name} is known: the published link(s) are dead ({dead}) and no mirror exists. "
            "If you have the file, pass it: create_model(name, pretrained='/path/to/file.pth')"
        )
    failures = []
    for url, layout in record.sources:
        path = None
        sha = record.sha256 if url in record.urls else None
        try:
            path = download(url, cache_dir=cache_dir, sha256=sha, progress=progress, file_name=None)
            _load_file_into(model, path, record.label_set, f"{record.name} ({layout} layout, {url})")
        except (DownloadError, FileNotFoundError) as e:
            _logger.warning("%s", e)
            failures.append(f"{url}: {e}")
            continue
        except CheckpointError as e:
            # A file that does not read or does not fit is reported, not silently skipped past: it is a real defect.
            raise CheckpointError(f"{record.name} from {url} ({path}): {e}") from e
        model.pretrained_cfg = record
        return model
    raise DownloadError(f"could not fetch {record.name} from any source:\n  " + "\n  ".join(failures))
