"""One record per released checkpoint: where it lives, what it classifies, how to preprocess for it."""

from __future__ import annotations

from dataclasses import dataclass, field

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WeightsRecord:
    """A released checkpoint of a registered variant.

    ``urls`` are tried in order (the first is the preferred, currently reachable location of the file in
    ``layout``); ``mirrors`` are further ``(url, layout)`` copies tried after them (Hugging Face / timm re-uploads
    in their own key layouts, converted on load); ``dead_urls`` keeps the historical links that no longer answer.
    ``available`` is False for checkpoints with no known live copy. ``sha256`` pins the file of ``urls`` when
    known; ``mirror_sha256`` pins a mirror's own file (mirrors in another layout hold different bytes).
    ``label_set`` is ``"imagenet-1k"`` or ``"imagenet-22k"`` (21,842
    logits whose first 1,000 are the 1K classes in standard order, spec §4.4). URLs of the form
    ``hf://owner/repo/path/in/repo`` are fetched with ``huggingface_hub``.
    """

    variant: str
    tag: str
    urls: tuple[str, ...]
    file_name: str
    num_classes: int
    label_set: str
    input_size: int
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    top1: float | None = None
    layout: str = "original"  # layout of the file: original | timm | hf | focalnet
    sha256: str | None = None
    available: bool = True
    license: str = "MIT"
    notes: str = ""
    mirrors: tuple[tuple[str, str], ...] = ()
    dead_urls: tuple[str, ...] = ()
    mirror_sha256: dict[str, str] = field(default_factory=dict)  # url -> SHA-256 of that mirror's own file
    extra: dict = field(default_factory=dict)

    def sha256_for(self, url: str) -> str | None:
        """The SHA-256 to verify the file at ``url`` against: the record's for ``urls``, a mirror's own, or None."""
        if url in self.mirror_sha256:
            return self.mirror_sha256[url]
        return self.sha256 if url in self.urls else None

    @property
    def name(self) -> str:
        return f"{self.variant}.{self.tag}"

    @property
    def sources(self) -> list[tuple[str, str]]:
        """Every live location to try, in order, as ``(url, layout)``."""
        if not self.available:
            return []
        return [(u, self.layout) for u in self.urls] + list(self.mirrors)

    @property
    def hf_hub_ids(self) -> list[str]:
        """Hugging Face hub repos holding a copy (from the ``hf://owner/repo/...`` sources), in order."""
        return [u[len("hf://") :].split("/", 2)[0] + "/" + u[len("hf://") :].split("/", 2)[1]
                for u, _ in ([(u, self.layout) for u in self.urls] + list(self.mirrors)) if u.startswith("hf://")]

    def pretrained_cfg(self, in_chans: int = 3, stride: int = 32) -> dict:
        """timm's ``pretrained_cfg`` dict for these weights (what ``timm.data.resolve_data_config`` reads)."""
        hub = self.hf_hub_ids
        ft = self.variant.startswith("focal_transformer")
        return {
            "architecture": self.variant,
            "tag": self.tag,
            "url": self.urls[0] if self.urls else "",
            "hf_hub_id": hub[0] if hub else None,
            "file": self.file_name,
            "input_size": (in_chans, self.input_size, self.input_size),
            "fixed_input_size": False,
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
            "crop_mode": "center",
            "mean": tuple(self.mean),
            "std": tuple(self.std),
            "num_classes": self.num_classes,
            "label_set": self.label_set,
            "pool_size": (self.input_size // stride, self.input_size // stride),
            "first_conv": "patch_embed.proj",
            "classifier": "head",
            "license": self.license.lower(),
            "origin_url": "https://github.com/microsoft/" + ("Focal-Transformer" if ft else "FocalNet"),
            "paper_ids": "arXiv:2107.00641" if ft else "arXiv:2203.11926",
            "sha256": self.sha256,
            "available": self.status == "available",
            "notes": self.notes,
        }

    @property
    def status(self) -> str:
        """``available`` (a live copy is known) or ``dead`` (only dead links are known)."""
        return "available" if self.available and (self.urls or self.mirrors) else "dead"


_WEIGHTS: dict[str, WeightsRecord] = {}
_DEFAULT: dict[str, str] = {}


def register_weights(record: WeightsRecord, default: bool = False) -> WeightsRecord:
    if record.name in _WEIGHTS:
        raise ValueError(f"weights {record.name!r} already registered")
    _WEIGHTS[record.name] = record
    if default or record.variant not in _DEFAULT:
        _DEFAULT[record.variant] = record.name
    return record


def _ensure_loaded() -> None:
    import focalnet.models  # noqa: F401  (variants and their weights records register on import)


def list_weights(variant: str | None = None) -> list[WeightsRecord]:
    _ensure_loaded()
    return [r for r in _WEIGHTS.values() if variant is None or r.variant == variant]


def get_weights(name: str) -> WeightsRecord:
    """``"focalnet_tiny_srf"`` (its default weights) or ``"focalnet_tiny_srf.ms_in1k"`` (a tag)."""
    _ensure_loaded()
    if name in _WEIGHTS:
        return _WEIGHTS[name]
    if name in _DEFAULT:
        return _WEIGHTS[_DEFAULT[name]]
    raise KeyError(f"no released weights named {name!r}; see focalnet.list_weights()")


def weights_status(variant: str) -> str:
    """``available`` / ``dead`` / ``none``: whether released weights of ``variant`` can be downloaded today."""
    records = list_weights(variant)
    if not records:
        return "none"
    return "available" if any(r.status == "available" for r in records) else "dead"
