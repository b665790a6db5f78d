"""Every released FocalNet classification checkpoint, with today's download locations (spec §3.3).

Where the files are (checked against the spec, November 2026):

* T/S/B srf/lrf (IN-1K, 224) and L/XL fl3/fl4 (IN-22K, 384, 21,842 classes): GitHub release ``v1.0.0`` of
  microsoft/FocalNet, original layout (``{'model': state_dict}``). The ``model_urls`` in the authors' code point at
  an Azure blob that no longer answers; those links are kept as ``dead_urls``.
* Mirrors: Hugging Face ``microsoft/focalnet-*`` (transformers layout, ``pytorch_model.bin``) for T/S/B, and
  timm's ``timm/focalnet_*.ms_in1k`` / ``.ms_in22k`` (timm layout, ``model.safetensors``) for all but the isotropic
  models. Both are converted on load (:mod:`focalnet.weights.convert`).
* H fl3/fl4 (IN-22K, 224): the authors' links are dead; timm's re-uploads are the only first-party-derived copies
  (timm's config declares the H-fl4 file headless, ``num_classes=0``). A third-party upload of the original files
  exists on the Hugging Face hub (``xiuqhou/FocalNet``); we do not download it automatically (no pinned hash, no
  provenance) -- load it explicitly with ``load_weights(model, "hf://xiuqhou/FocalNet/<file>")`` if you trust it.
* T/S/B isotropic (IN-1K, 224): only the dead blob links exist, so these records say ``available=False``.

No SHA-256 is pinned: none is published and the files could not be fetched from this machine. The download code
always checks that a file reads and loads strictly into the model; pass ``sha256=`` to :func:`focalnet.weights.hub.
download` to pin one. Top-1 values are the README's (IN-1K val, 224, centre crop 0.875).
"""

from __future__ import annotations

from .records import WeightsRecord, register_weights

_GH = "https://github.com/microsoft/FocalNet/releases/download/v1.0.0/"
_BLOB = "https://projects4jw.blob.core.windows.net/focalnet/release/classification/"

# variant: (original file, HF repo, top-1)
_IN1K = {
    "focalnet_tiny_srf": ("focalnet_tiny_srf.pth", "microsoft/focalnet-tiny", 82.1),
    "focalnet_tiny_lrf": ("focalnet_tiny_lrf.pth", "microsoft/focalnet-tiny-lrf", 82.3),
    "focalnet_small_srf": ("focalnet_small_srf.pth", "microsoft/focalnet-small", 83.4),
    "focalnet_small_lrf": ("focalnet_small_lrf.pth", "microsoft/focalnet-small-lrf", 83.5),
    "focalnet_base_srf": ("focalnet_base_srf.pth", "microsoft/focalnet-base", 83.7),
    "focalnet_base_lrf": ("focalnet_base_lrf.pth", "microsoft/focalnet-base-lrf", 83.9),
}
_ISO = {
    "focalnet_tiny_iso": ("focalnet_tiny_iso_16.pth", 74.1),
    "focalnet_small_iso": ("focalnet_small_iso_16.pth", 80.9),
    "focalnet_base_iso": ("focalnet_base_iso_16.pth", 82.4),
}
_IN22K_384 = {
    "focalnet_large_fl3": "focalnet_large_lrf_384.pth",
    "focalnet_large_fl4": "focalnet_large_lrf_384_fl4.pth",
    "focalnet_xlarge_fl3": "focalnet_xlarge_lrf_384.pth",
    "focalnet_xlarge_fl4": "focalnet_xlarge_lrf_384_fl4.pth",
}
_IN22K_224 = {
    "focalnet_huge_fl3": "focalnet_huge_lrf_224.pth",
    "focalnet_huge_fl4": "focalnet_huge_lrf_224_fl4.pth",
}
_22K_NOTE = (
    "IN-22K pretrained, 21,842 logits; logits[:1000] are the IN-1K classes in standard order (index 850 never "
    "trained), so create_model(..., num_classes=1000, pretrained=True) keeps those rows. No 22K->1K fine-tuned "
    "weights were released."
)


def _timm(variant: str, tag: str) -> tuple[str, str]:
    return (f"hf://timm/{variant}.{tag}/model.safetensors", "timm")


for _v, (_file, _hf, _top1) in _IN1K.items():
    register_weights(
        WeightsRecord(
            variant=_v,
            tag="ms_in1k",
            urls=(_GH + _file,),
            file_name=_file,
            num_classes=1000,
            label_set="imagenet-1k",
            input_size=224,
            crop_pct=0.875,
            top1=_top1,
            layout="original",
            mirrors=((f"hf://{_hf}/pytorch_model.bin", "hf"), _timm(_v, "ms_in1k")),
            dead_urls=(_BLOB + _file,),
            notes="IN-1K, 300 epochs at 224 (authors' recipe); timm's card uses crop_pct 0.9, the authors' eval 0.875",
        )
    )

for _v, (_file, _top1) in _ISO.items():
    register_weights(
        WeightsRecord(
            variant=_v,
            tag="ms_in1k",
            urls=(),
            file_name=_file,
            num_classes=1000,
            label_set="imagenet-1k",
            input_size=224,
            crop_pct=0.875,
            top1=_top1,
            layout="original",
            available=False,
            dead_urls=(_BLOB + _file,),
            notes="only the dead Azure blob link was ever published; no mirror is known (timm/HF have no iso models)",
        )
    )

# The L-fl4 file is also mirrored, byte for byte, on the Hugging Face hub (the FocalNet-DINO backbone init);
# its SHA-256 is published there (spec "FocalNet-DINO", 478,697,063 bytes).
_HF_SAME_FILE = {"focalnet_large_fl4": "hf://microsoft/focalnet-large-lrf-fl4/focalnet_large_lrf_384_fl4.pth"}
_SHA256 = {"focalnet_large_fl4": "4d14fe47c7d7138e911be356ff8170d316d2918af7c504c914c2f88ffb16465b"}

for _v, _file in _IN22K_384.items():
    register_weights(
        WeightsRecord(
            variant=_v,
            tag="ms_in22k",
            urls=(_GH + _file,) + ((_HF_SAME_FILE[_v],) if _v in _HF_SAME_FILE else ()),
            sha256=_SHA256.get(_v),
            file_name=_file,
            num_classes=21842,
            label_set="imagenet-22k",
            input_size=384,
            crop_pct=1.0,
            layout="original",
            mirrors=(_timm(_v, "ms_in22k"),),
            dead_urls=(_BLOB + _file,),
            notes=_22K_NOTE + " Resolution 384 per the file name and timm's config.",
        )
    )

for _v, _file in _IN22K_224.items():
    headless = _v == "focalnet_huge_fl4"
    register_weights(
        WeightsRecord(
            variant=_v,
            tag="ms_in22k",
            urls=(),
            file_name=_file,
            num_classes=0 if headless else 21842,
            label_set="imagenet-22k",
            input_size=224,
            crop_pct=0.9,  # timm's config for these files (the only source: the authors' eval setting is unknown)
            layout="timm",
            mirrors=(_timm(_v, "ms_in22k"),),
            dead_urls=(_BLOB + _file,),
            notes=_22K_NOTE
            + " The authors' link is dead; served from timm's re-upload"
            + (" (declared headless by timm: the classifier stays randomly initialised)" if headless else "")
            + ". A third-party copy of the original file (xiuqhou/FocalNet) is not fetched automatically.",
        )
    )

from . import dino_records  # noqa: E402,F401  (the released FocalNet-DINO detectors)
