"""Every released FocalNet classification checkpoint, with today's download locations (spec §3.3).

Where the files are (checked against the spec, November 2026):

* T/S/B srf/lrf (IN-1K, 224) and L/XL fl3/fl4 (IN-22K, 384, 21,842 classes): GitHub release ``v1.0.0`` of
  microsoft/FocalNet, original layout (``{'model': state_dict}``). The ``model_urls`` in the authors' code point at
  an Azure blob that no longer answers; those links are kept as ``dead_urls``.
* Mirrors: Hugging Face ``microsoft/focalnet-*`` (transformers layout, ``pytorch_model.bin``) for T/S/B and the
  first-party L mirrors ``microsoft/focalnet-large-lrf-fl3`` / ``-fl4`` (which also hold the original L-fl4 file),
  and timm's ``timm/focalnet_*.ms_in1k`` / ``.ms_in22k`` (timm layout, ``model.safetensors``) for all but the
  isotropic models. Both are converted on load (:mod:`focalnet.weights.convert`). Every mirror name here appears
  in timm's ``default_cfgs`` or in transformers' FocalNet conversion script; no other name is listed.
* **normalize_modulator (L/XL-fl4).** We build both with the modulator divided by ``focal_level + 1``, following
  the authors' L-fl4 classification YAML and their FocalNet-DINO code (L and XL). timm and Hugging Face build them
  *without* it, so the same file gives different outputs there (logits differ by ~1.5). Loading fl4 weights from a
  timm/HF layout with no config stating the flag warns; a Hugging Face folder's ``config.json`` that states it is
  followed; ``focalnet convert --to hf`` writes it. ``create_model(..., normalize_modulator=False)`` gives the
  timm/HF reading.
* **Preprocessing.** The authors evaluated T/S/B at 224 with bicubic resize to 256 and a 0.875 centre crop (our
  records). The hub's own ``microsoft/focalnet-*`` preprocessors use *bilinear* 256 -> 224 (BitImageProcessor);
  timm's configs use crop 0.9. H-fl3/fl4: crop 0.9 from timm's config, the only source for those files.
* H fl3/fl4 (IN-22K, 224): the authors' links are dead; timm's re-uploads are the only first-party-derived copies
  (timm's config declares the H-fl4 file headless, ``num_classes=0``). A third-party upload of the original files
  exists on the Hugging Face hub (``xiuqhou/FocalNet``); we do not download it automatically (no pinned hash, no
  provenance) -- load it explicitly with ``load_weights(model, "hf://xiuqhou/FocalNet/<file>")`` if you trust it.
* T/S/B isotropic (IN-1K, 224): only the dead blob links exist, so these records say ``available=False``.

SHA-256: the only hash found in a public source is the L-fl4 original file's (the Hugging Face LFS pointer of
``microsoft/focalnet-large-lrf-fl4``, quoted in the FocalNet-DINO spec); it pins both copies of that file. For
every other file and mirror no published hash could be found (the hub is unreachable from here and no public page
we could search quotes its LFS pointers), so none is invented: ``sha256``/``mirror_sha256`` stay empty and the
record's notes say so. The download code always checks that a file reads and loads strictly into the model, and a
``mirror_sha256`` entry is verified on every use once one is known. Top-1 values are the README's (IN-1K val, 224,
centre crop 0.875).
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
_NO_SHA = "SHA-256: no published hash found for these files; verified by a strict load instead."
_FL4_NOTE = (
    " normalize_modulator: built WITH it (authors' YAML / FocalNet-DINO); timm and Hugging Face build this file "
    "without it, so outputs differ there (logits by ~1.5). normalize_modulator=False gives their reading."
)
# first-party Hugging Face mirrors of the L models (transformers layout), from transformers' conversion script
_HF_L = {"focalnet_large_fl3": "microsoft/focalnet-large-lrf-fl3",
         "focalnet_large_fl4": "microsoft/focalnet-large-lrf-fl4"}
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
            notes="IN-1K, 300 epochs at 224 (authors' recipe, evaluated bicubic, crop 0.875); timm's card uses crop "
            "0.9 and the hub's microsoft/focalnet-* preprocessor bilinear 256->224. " + _NO_SHA,
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
            mirrors=((((f"hf://{_HF_L[_v]}/pytorch_model.bin", "hf"),) if _v in _HF_L else ())
                     + (_timm(_v, "ms_in22k"),)),
            dead_urls=(_BLOB + _file,),
            notes=_22K_NOTE + " Resolution 384 per the file name and timm's config."
            + (_FL4_NOTE if _v.endswith("fl4") else "")
            + (" SHA-256 from the hub's LFS pointer (both copies of the original file); mirrors in other layouts: "
               "no published hash found." if _v in _SHA256 else " " + _NO_SHA),
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
            + ". A third-party copy of the original file (xiuqhou/FocalNet) is not fetched automatically. Crop 0.9 "
            "from timm's config (the only source). " + _NO_SHA,
        )
    )

from . import dino_records  # noqa: E402,F401  (the released FocalNet-DINO detectors)
