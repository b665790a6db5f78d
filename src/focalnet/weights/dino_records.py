"""The released FocalNet-DINO detectors (FocalNet-L fl4 backbone, 5 scales), with today's download locations.

The authors' Azure blob links are dead; Microsoft re-uploaded both files to the Hugging Face hub. Each file carries
its training config (``args``), from which :func:`focalnet.det.dino.weights.load_released_dino` builds the
structure. Labels: the head has 91 slots indexed by COCO category id (80 used, names in
:data:`focalnet.det.dino.weights.COCO_CATEGORY_NAMES`); the Objects365 model's head follows the file's ``args``.
Evaluation size of the released COCO model: short side 1200, long side at most 2000 (``extra``).
"""

from __future__ import annotations

from .records import WeightsRecord, register_weights

_BLOB = "https://projects4jw.blob.core.windows.net/focalnet/release/detection/"
_VARIANT = "dino_focalnet_large_fl4_5scale"

register_weights(
    WeightsRecord(
        variant=_VARIANT,
        tag="o365_coco",
        urls=("hf://microsoft/focalnet-large-fl4-dino-o365-cocoft/focalnet_large_fl4_o365_finetuned_on_coco.pth",),
        file_name="focalnet_large_fl4_o365_finetuned_on_coco.pth",
        num_classes=91,
        label_set="coco-91",
        input_size=1200,
        crop_pct=1.0,
        interpolation="bilinear",
        layout="dino-original",
        dead_urls=(_BLOB + "focalnet_large_fl4_o365_finetuned_on_coco.pth",),
        notes="Objects365 pre-trained, COCO fine-tuned; 63.5 box AP on COCO minival without test-time augmentation "
              "(evaluated at short side 1200, max 2000). ~2.7 GB with its optimizer state.",
        extra={"task": "detection", "box_ap": 63.5, "eval_short_side": 1200, "eval_max_size": 2000,
               "structure": "5-scale, focalnet_L_384_22k_fl4"},
    ),
    default=True,
)
register_weights(
    WeightsRecord(
        variant=_VARIANT,
        tag="o365",
        urls=("hf://microsoft/focalnet-large-fl4-dino-o365/focalnet_large_fl4_pretrained_on_o365.pth",),
        file_name="focalnet_large_fl4_pretrained_on_o365.pth",
        num_classes=0,  # the Objects365 head size is read from the file's args
        label_set="objects365",
        input_size=1200,
        crop_pct=1.0,
        interpolation="bilinear",
        layout="dino-original",
        dead_urls=(_BLOB + "focalnet_large_fl4_pretrained_on_o365.pth",),
        notes="Objects365 pre-trained detector (the initialisation of the COCO fine-tuning); no COCO head.",
        extra={"task": "detection", "eval_short_side": 1200, "eval_max_size": 2000,
               "structure": "5-scale, focalnet_L_384_22k_fl4"},
    )
)
