"""What a FocalNet looks at: modulation, gating, kernel, receptive-field and attention maps.

The tensor API (:mod:`focalnet.viz.maps`) calls the models' explicit ``forward_modulation`` /
``forward_attention`` passes, so nothing is stored on any module. :mod:`focalnet.viz.figures` turns the maps into
matplotlib (Agg) figures, :mod:`focalnet.viz.sequence` into animated GIF/MP4, :mod:`focalnet.viz.erf` computes
gradient-based effective receptive fields and :mod:`focalnet.viz.attention` maps Focal Transformer attention back
onto the image. The definitions follow the authors' ``visualize.ipynb`` (spec §8); see ``docs/visualization.md``.

Maps from randomly initialised weights show the architecture, not what a trained network learned: every entry
point says so when no weights were loaded.
"""

from .maps import (
    RANDOM_WEIGHTS_NOTE,
    BlockMaps,
    ImageMaps,
    PreparedImage,
    compute_maps,
    focal_kernels,
    load_image,
    modulation_maps,
    modulator_norm,
    prepare_image,
    resolve_blocks,
    upsample_to_image,
)

__all__ = [
    "RANDOM_WEIGHTS_NOTE",
    "BlockMaps",
    "ImageMaps",
    "PreparedImage",
    "compute_maps",
    "focal_kernels",
    "load_image",
    "modulation_maps",
    "modulator_norm",
    "prepare_image",
    "resolve_blocks",
    "upsample_to_image",
]
