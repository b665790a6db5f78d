"""Tensor API for modulation, gating and kernel maps (definitions: spec §8, the authors' ``visualize.ipynb``).

* Modulator map: ``h(ctx_all)`` of a block, *before* it multiplies the query, reduced to one value per location by
  the L2 norm over channels (``torch.linalg.vector_norm(modulator, dim=1)``), upsampled bilinearly to the image.
* Gating maps: the raw gate logits, one map per focal level plus the global level (no sigmoid/softmax, as in the
  original).
* Kernels: each focal level's depthwise kernel averaged over channels, ``weight.mean(0)`` -> ``(k, k)``.

Everything comes from :meth:`focalnet.FocalNet.forward_modulation`, so the model is never modified.
Preprocessing follows the notebook: resize the shorter side (bicubic, no crop, so maps are not square), ImageNet
mean/std. Any image size and mode (grayscale, RGBA, palette, 16-bit) is accepted; images smaller than the network
stride are padded and the padding is cropped off the maps again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # PIL is imported lazily: the viz extra is optional for the core package
    from PIL import Image

_logger = logging.getLogger(__name__)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RANDOM_WEIGHTS_NOTE",
    "BlockMaps",
    "ImageMaps",
    "PreparedImage",
    "load_image",
    "prepare_image",
    "modulator_norm",
    "upsample_to_image",
    "modulation_maps",
    "resolve_blocks",
    "compute_maps",
    "focal_kernels",
    "default_blocks",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_WEIGHTS_NOTE = "random weights - maps are not meaningful"
_warned_random = False  # warn once per process, not once per frame


# ------------------------------------------------------------------------------------------------- images
def load_image(source) -> Image.Image:
    """Read ``source`` (a path, a PIL image or an array) as an 8-bit RGB PIL image.

    Transparent images are composited on white (their hidden colour under alpha 0 is arbitrary), grayscale and
    palette images are expanded, 16-bit and float images are rescaled to 0..255.
    """
    from PIL import Image

    if isinstance(source, (str, os.PathLike)):  # the package's one file reader (EXIF, FIFOs, bombs, damage)
        from focalnet.data.images import load_rgb

        return load_rgb(source)
    if isinstance(source, Image.Image):
        img = source
    else:
        img = _array_to_pil(np.asarray(source))
    return _to_rgb(img)


def _array_to_pil(a: np.ndarray):
    from PIL import Image

    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"expected an image array (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        hi = 1.0 if a.max(initial=0) <= 1.0 else (255.0 if a.max(initial=0) <= 255 else float(a.max()))
        a = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(a)


def _to_rgb(img):
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return _array_to_pil(np.asarray(img)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


@dataclass
class PreparedImage:
    """A network input and the picture it shows.

    ``tensor`` is ``(1, 3, H, W)``, normalised and possibly padded right/bottom; ``display`` is the resized image
    ``(h, w, 3)`` uint8 without padding, the canvas the maps are drawn on; ``(h, w) <= (H, W)``.
    """

    tensor: torch.Tensor
    display: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.display.shape[0], self.display.shape[1]


def prepare_image(
    image, size: int | None = 224, stride: int = 32, max_side: int | None = None, square: bool = False
) -> PreparedImage:
    """Resize like the notebook's ``Resize(size)`` (shorter side, bicubic, no crop) and normalise.

    ``size=None`` keeps the original size. ``max_side`` (default ``4 * size``) bounds the longer side so a very
    long panorama does not explode the token grid. ``square=True`` resizes to ``size x size`` (for models that
    accept only their training resolution, like the Focal Transformer). Sides below ``stride`` are zero-padded
    (zero = the mean colour after normalisation).
    """
    from PIL import Image

    img = load_image(image)
    w, h = img.size
    if square:
        if size is None:
            raise ValueError("square=True needs a size")
        nh = nw = int(size)
    elif size is not None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        scale = size / min(h, w)
        limit = max_side or 4 * size
        scale = min(scale, limit / max(h, w))
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    else:
        nh, nw = h, w
    if (nh, nw) != (h, w):
        img = img.resize((nw, nh), Image.BICUBIC)
    display = np.asarray(img, dtype=np.uint8).copy()
    x = torch.from_numpy(display).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    x = ((x - mean) / std).unsqueeze(0)
    ph, pw = max(0, stride - nh), max(0, stride - nw)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return PreparedImage(tensor=x.contiguous(), display=display)


# ------------------------------------------------------------------------------------------------- maps
def modulator_norm(modulator: torch.Tensor) -> torch.Tensor:
    """Per-location L2 norm over channels: ``(B, C, h, w) -> (B, h, w)`` (the notebook's ``torch.norm(M, dim=1)``)."""
    return torch.linalg.vector_norm(modulator, dim=1)


def upsample_to_image(maps: torch.Tensor, reduction: int, out_size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly upsample token maps ``(B, K, h, w)`` (or ``(h, w)``) onto an ``out_size`` image.

    A token at stride ``reduction`` covers a ``reduction``-pixel square, so the maps are first resized to
    ``(h * reduction, w * reduction)`` (pixel-centre aligned, the notebook's ``Upsample(mode="bilinear")``), then
    the few pixels the strided convs left uncovered are filled from the edge (or overhang is cropped). Bilinear
    rather than nearest avoids the blocky look (upstream issue #6).
    """
    squeeze = maps.ndim == 2
    m = maps[None, None] if squeeze else maps
    if m.ndim != 4:
        raise ValueError(f"expected (B, K, h, w) or (h, w) maps, got shape {tuple(maps.shape)}")
    H, W = out_size
    th, tw = m.shape[-2] * reduction, m.shape[-1] * reduction
    m = F.interpolate(m.float(), size=(th, tw), mode="bilinear", align_corners=False)
    m = m[..., : min(H, th), : min(W, tw)]
    ph, pw = H - m.shape[-2], W - m.shape[-1]
    if ph or pw:
        m = F.pad(m, (0, pw, 0, ph), mode="replicate")
    return m[0, 0] if squeeze else m


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Run in eval mode (no drop path / dropout) and put the model back as it was."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def resolve_blocks(model: nn.Module, which) -> list[tuple[int, int]]:
    """Normalise ``which`` to 0-based ``(stage, block)`` pairs with non-negative indices.

    Accepts three spellings:

    * ``(stage, block)`` tuples: 0-based Python indices, negatives count from the end (``(-1, -1)`` = last block);
    * module paths ``"layers.3.blocks.1.modulation"`` (0-based, as in the state dict);
    * the user-facing shorthand ``"S"`` (last block of stage ``S``) and ``"S.B"`` (block ``B`` of stage ``S``),
      **1-based** like every figure title (``"4"`` = stage 4 of 4; ``"-1"`` = the last stage). This is what
      ``focalnet visualize --stages`` takes.
    """
    if which is None:
        return default_blocks(model)
    if isinstance(which, (str, tuple)):
        which = [which]
    n = len(model.layers)
    out = []
    for w in which:
        one_based = False
        if isinstance(w, str):
            w, one_based = _parse_block(w), not w.strip().startswith("layers.")
        stage, block = (int(v) for v in w)
        if one_based:
            if stage == 0 or block == 0:
                raise ValueError(f"stages and blocks are numbered from 1, as in the figure titles; got {_fmt_block(w)}")
            stage, block = (stage - 1 if stage > 0 else stage), (block - 1 if block > 0 else block)
        if not -n <= stage < n:
            shown = stage + 1 if one_based and stage >= 0 else stage
            raise ValueError(f"stage {shown} does not exist: the model has {n} stage(s), numbered 1..{n}")
        stage %= n
        depth = len(model.layers[stage].blocks)
        if not -depth <= block < depth:
            shown = block + 1 if one_based and block >= 0 else block
            raise ValueError(
                f"block {shown} does not exist in stage {stage + 1}, which has {depth} block(s), numbered 1..{depth}"
            )
        pair = (stage, block % depth)
        if pair not in out:
            out.append(pair)
    return out


def _fmt_block(w) -> str:
    return ".".join(str(v) for v in w) if w[1] != -1 else str(w[0])


def _parse_block(text: str) -> tuple[int, int]:
    """``"S"``/``"S.B"`` (1-based) or ``"layers.S.blocks.B[.modulation]"`` (0-based) as two integers."""
    t = text.strip()
    if t.startswith("layers."):
        m = re.fullmatch(r"layers\.(-?\d+)(?:\.blocks\.(-?\d+))?(?:\.\w+)*", t)
        if not m:
            raise ValueError(f"cannot read block {text!r}; use a module path like 'layers.3.blocks.1'")
        return int(m.group(1)), int(m.group(2)) if m.group(2) is not None else -1
    parts = t.split(".")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) not in (1, 2):
        raise ValueError(f"cannot read block {text!r}; use 'STAGE' or 'STAGE.BLOCK' (1-based), e.g. '4' or '1.2'")
    return nums[0], nums[1] if len(nums) == 2 else -1


def default_blocks(model: nn.Module) -> list[tuple[int, int]]:
    """The last block of every stage; for a single-stage (isotropic) model every quarter of its depth.

    This matches the README animations: base-lrf stages 2/3/4, base-iso blocks 4/8/12.
    """
    if len(model.layers) > 1:
        return [(s, len(stage.blocks) - 1) for s, stage in enumerate(model.layers)]
    depth = len(model.layers[0].blocks)
    picks = sorted({max(0, round(depth * q / 4) - 1) for q in (1, 2, 3, 4)})
    return [(0, b) for b in picks]


def _reduction(model: nn.Module, stage: int) -> int:
    info = getattr(model, "feature_info", None)
    if info:
        return int(info[stage]["reduction"])
    return int(model.patch_size * 2**stage)


def modulation_maps(model: nn.Module, x: torch.Tensor, which=None) -> tuple[torch.Tensor, dict]:
    """``model.forward_modulation`` in eval mode without gradients: ``(logits, {path: ModulationMaps})``."""
    pairs = resolve_blocks(model, which)
    with _eval_mode(model), torch.no_grad():
        return model.forward_modulation(x, which=pairs)


@dataclass
class BlockMaps:
    """The maps of one block for one image.

    ``modulator_norm`` ``(h, w)`` and ``gates`` ``(L+1, h, w)`` are on the block's token grid; the ``*_up``
    versions are bilinearly upsampled onto the displayed image ``(H, W)``. Gate ``L`` is the global level.
    """

    name: str
    stage: int
    block: int
    reduction: int
    modulator_norm: np.ndarray
    gates: np.ndarray
    modulator_norm_up: np.ndarray
    gates_up: np.ndarray

    @property
    def focal_level(self) -> int:
        return self.gates.shape[0] - 1

    @property
    def key(self) -> str:
        return f"layers.{self.stage}.blocks.{self.block}"


@dataclass
class ImageMaps:
    """All maps computed for one image (see :func:`compute_maps`)."""

    image: np.ndarray
    blocks: list[BlockMaps]
    logits: np.ndarray
    weights: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def meaningful(self) -> bool:
        return self.weights is not None

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        """Flat arrays for ``np.savez``: ``image``, ``logits``, ``modulator_norm/<block>``, ``gates/<block>``..."""
        out = {"image": self.image, "logits": self.logits, "weights": np.array(self.weights or "random")}
        for b in self.blocks:
            out[f"modulator_norm/{b.key}"] = b.modulator_norm
            out[f"modulator_norm_up/{b.key}"] = b.modulator_norm_up
            out[f"gates/{b.key}"] = b.gates
            out[f"gates_up/{b.key}"] = b.gates_up
        for k, v in self.extra.items():
            out[k] = np.asarray(v)
        return out


def compute_maps(
    model: nn.Module,
    image,
    which=None,
    size: int | None = 224,
    max_side: int | None = None,
    weights: str | None = None,
    device: str | torch.device | None = None,
) -> ImageMaps:
    """Modulator-norm and gate maps of the chosen blocks for one image.

    ``image``: anything :func:`load_image` reads, or a :class:`PreparedImage`. ``which``: blocks as in
    :func:`resolve_blocks` (default: the last block of every stage). ``weights`` names the loaded weights for the
    record; ``None`` means random weights, and a warning is logged because such maps show nothing learned.
    """
    global _warned_random
    if weights is None and not _warned_random:
        _logger.warning("computing maps with %s (load trained weights to see what a network learned)",
                        RANDOM_WEIGHTS_NOTE)
        _warned_random = True
    prepared = image if isinstance(image, PreparedImage) else prepare_image(
        image, size=size, stride=int(getattr(model, "stride", 32)), max_side=max_side
    )
    pairs = resolve_blocks(model, which)
    if device is None:
        device = next(model.parameters()).device
    logits, maps = modulation_maps(model, prepared.tensor.to(device), which=pairs)
    H, W = prepared.size
    blocks = []
    for stage, block in pairs:
        name = f"layers.{stage}.blocks.{block}.modulation"
        mm = maps[name]
        r = _reduction(model, stage)
        norm = modulator_norm(mm.modulator.float())[:1]  # (1, h, w)
        gates = mm.gates.float()[:1]  # (1, L+1, h, w)
        blocks.append(
            BlockMaps(
                name=name,
                stage=stage,
                block=block,
                reduction=r,
                modulator_norm=norm[0].cpu().numpy(),
                gates=gates[0].cpu().numpy(),
                modulator_norm_up=upsample_to_image(norm[:, None], r, (H, W))[0, 0].cpu().numpy(),
                gates_up=upsample_to_image(gates, r, (H, W))[0].cpu().numpy(),
            )
        )
    return ImageMaps(image=prepared.display, blocks=blocks, logits=logits[0].float().cpu().numpy(), weights=weights)


def focal_kernels(
    model: nn.Module, block: int = -1, stages: Sequence[int] | None = None
) -> dict[int, list[np.ndarray]]:
    """Each stage's depthwise focal kernels averaged over channels: ``{stage: [(k_l, k_l) for each level]}``.

    ``block`` picks the block within each stage (the notebook used the last). The kernel of level ``l`` has side
    ``focal_window + 2*l``, so later levels see wider context; trained networks learn wider kernels in later
    stages (the paper's Fig. 6).
    """
    n = len(model.layers)
    out: dict[int, list[np.ndarray]] = {}
    for s in range(n) if stages is None else [s % n for s in stages]:
        blocks = model.layers[s].blocks
        mod = blocks[block % len(blocks)].modulation
        out[s] = [layer[0].weight.detach().float().mean(0)[0].cpu().numpy() for layer in mod.focal_layers]
    return out
