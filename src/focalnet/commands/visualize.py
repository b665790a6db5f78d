"""``focalnet visualize``: modulation, gating, kernel, ERF and attention maps of images as PNG figures + ``.npz``.

    focalnet visualize cat.jpg photos/ clip.mp4 --model focalnet_tiny_lrf --weights focalnet_tiny_lrf.pth --out maps/

Inputs may be image files (any size; grayscale, RGBA, palette and 16-bit are converted), folders of images and
videos. For every image it writes ``NAME_input.png``, ``NAME_modulation.png`` (modulator norm and overlay per
chosen block), ``NAME_gates.png`` (raw gates per focal level + global) and ``NAME_maps.npz`` (every raw map), plus
``kernels.png`` once per run; ``--erf`` adds receptive fields, ``--animate`` one GIF/MP4 over all inputs. For a
Focal Transformer it writes the attention of ``--query`` instead. Without ``--weights`` the network is random and
the maps show nothing learned: the command says so and every figure is stamped.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from focalnet.errors import one_line

_logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders of images, or videos")
    parser.add_argument("--model", default="focalnet_tiny_srf", help="registered model name (see `focalnet models`)")
    parser.add_argument("--weights", default=None, help="checkpoint file (original/timm/HF/ours); none = random")
    parser.add_argument("--checkpoint", default=None, metavar="RUN.pt",
                        help="a detection/segmentation checkpoint (focalnet train of such a recipe, or a file holding "
                        "a FocalNet backbone): show the maps of the backbone inside it; --model is then not used")
    parser.add_argument("--compare-vit", nargs="?", const="vit_small_patch16_224", default=None, metavar="TIMM_VIT",
                        help="also write NAME_vs_vit.png: the FocalNet modulation map beside a timm ViT's attention "
                        "(last-layer CLS attention and attention rollout) for the same image; default "
                        "vit_small_patch16_224 with random weights unless --vit-weights is given")
    parser.add_argument("--vit-weights", default=None, help="weights file for --compare-vit (timm state dict)")
    parser.add_argument(
        "--stages", nargs="+", default=None, metavar="S[.B]",
        help="blocks to show, numbered from 1 as in the figure titles: 'S' = last block of stage S, 'S.B' = block B "
        "of stage S (e.g. '4' or '3.6'; -1 = the last); default: the last block of every stage (isotropic models, "
        "which have one stage: every quarter of the depth, e.g. '1.4 1.8 1.12')",
    )
    parser.add_argument("--size", type=int, default=224, help="resize the shorter side to this (0 = keep size)")
    parser.add_argument("--max-side", type=int, default=None, help="cap on the longer side (default 4 x --size)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--erf", nargs="?", const="modulator", choices=("modulator", "features"), default=None,
                        help="also the gradient ERF of the centre token: of each chosen block's modulator (default) "
                        "or of the stage output ('features')")
    parser.add_argument("--query", nargs=2, type=float, default=(0.5, 0.5), metavar=("Y", "X"),
                        help="Focal Transformer: query location as fractions of height/width (default centre)")
    parser.add_argument("--head", type=int, default=None, help="Focal Transformer: one head (default: mean)")
    parser.add_argument("--animate", default=None, metavar="FILE", help="also write an animated .gif or .mp4")
    parser.add_argument("--fps", type=float, default=4.0, help="frames per second of --animate")
    parser.add_argument("--every", type=int, default=1, help="use every N-th frame of videos")
    parser.add_argument("--max-frames", type=int, default=None, help="at most this many frames per video")
    parser.add_argument("--no-figures", action="store_true",
                        help="write no per-image PNG/npz and no kernels.png, only the --animate file")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")


# ------------------------------------------------------------------------------------------------ inputs
def _expand_inputs(paths: list[str], every: int, max_frames: int | None) -> tuple[list, int | None]:
    """(name, loader) pairs for every frame; and the total when it is known cheaply (for the progress bar)."""
    from focalnet.viz.sequence import IMAGE_SUFFIXES, VIDEO_SUFFIXES, count_frames, iter_frames

    items: list[tuple[str, Callable]] = []
    total: int | None = 0
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                _logger.warning("%s: no images in this folder", p)
            items += [(f.stem, (lambda f=f: f)) for f in files]
            total = None if total is None else total + len(files)
        elif (p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()  # a FIFO or device goes to the image reader,
              and (p.suffix.lower() != ".gif" or (count_frames(p) or 1) > 1)):  # which refuses it without blocking
            n = count_frames(p)
            if n is not None:
                n = -(-n // every)
                n = min(n, max_frames) if max_frames else n
            total = None if (total is None or n is None) else total + n
            items.append((p.stem, (lambda p=p: iter_frames(p, max_frames=max_frames, every=every)), "video"))
        else:
            items.append((p.stem, (lambda p=p: p)))
            total = None if total is None else total + 1
    return items, total


def _iter_items(items: list) -> Iterator[tuple[str, object]]:
    seen: dict[str, int] = {}
    for entry in items:
        stem, loader = entry[0], entry[1]
        if len(entry) == 3:  # a video: one item per frame
            for i, frame in enumerate(loader()):
                yield _unique(f"{stem}_f{i:05d}", seen), frame
        else:
            yield _unique(stem, seen), loader()


def _unique(name: str, seen: dict[str, int]) -> str:
    if name in seen:
        seen[name] += 1
        return f"{name}_{seen[name]}"
    seen[name] = 0
    return name


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, path)
        os.chmod(path, 0o644)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------------ per image
def _focalnet_outputs(model, name: str, source, args, which, out: Path, weights: str | None) -> np.ndarray:
    from focalnet.viz import compute_maps, prepare_image
    from focalnet.viz.erf import effective_receptive_field
    from focalnet.viz.figures import gates_figure, heatmap_figure, modulation_figure, save_figure
    from focalnet.viz.sequence import maps_frame

    size = args.size or None
    prepared = prepare_image(source, size=size, stride=model.stride, max_side=args.max_side)
    maps = compute_maps(model, prepared, which=which, weights=weights, device=args.device)
    if args.erf:
        H, W = prepared.size
        heat, points = {}, []
        x = prepared.tensor.to(args.device)
        for b in maps.blocks:
            erf, centre = effective_receptive_field(model, x, stage=b.stage, block=b.block, target=args.erf)
            where = f"stage {b.stage + 1}" + (f", block {b.block + 1}" if args.erf == "modulator" else "")
            heat[f"ERF of the centre {args.erf}, {where} (log)"] = erf[:H, :W].cpu().numpy()
            points.append(centre)
            maps.extra[f"erf_{args.erf}/{b.key}"] = erf.cpu().numpy()
        if not args.no_figures:
            fig = heatmap_figure(maps.image, heat, point=points, meaningful=maps.meaningful, log=True,
                                 title=f"effective receptive field: |d {args.erf}(centre token) / d pixel|")
            save_figure(fig, out / f"{name}_erf.png")
    if not args.no_figures:
        from PIL import Image

        Image.fromarray(maps.image).save(out / f"{name}_input.png")
        save_figure(modulation_figure(maps, title=f"{args.model}: modulator L2 norm"), out / f"{name}_modulation.png")
        save_figure(gates_figure(maps), out / f"{name}_gates.png")
        _save_npz(out / f"{name}_maps.npz", maps.to_npz_dict())
    if getattr(args, "_vit", None) is not None and not args.no_figures:
        _compare_vit(model, name, source, args, out, weights)
    return maps_frame(maps) if args.animate else maps.image


def _compare_vit(model, name: str, source, args, out: Path, weights: str | None) -> None:
    """NAME_vs_vit.png: FocalNet's last-stage modulation beside the ViT's CLS attention and rollout, same image."""
    import torch

    from focalnet.viz import RANDOM_WEIGHTS_NOTE, compute_maps, prepare_image, upsample_to_image
    from focalnet.viz.figures import heatmap_figure, save_figure
    from focalnet.viz.vit import vit_attention

    vit = args._vit
    side = int(vit.patch_embed.img_size[0])
    prepared = prepare_image(source, size=side, square=True)  # one square picture for both networks
    fmaps = compute_maps(model, prepared, which=[(len(model.layers) - 1, -1)], weights=weights, device=args.device)
    att = vit_attention(vit, prepared.tensor.to(args.device))
    H, W = prepared.size
    up = {k: upsample_to_image(torch.from_numpy(getattr(att, k)), att.patch, (H, W)).numpy()
          for k in ("cls", "rollout")}
    b = fmaps.blocks[0]
    random_parts = [p for p, r in (("FocalNet", weights is None), ("ViT", args.vit_weights is None)) if r]
    note = f"random weights ({' and '.join(random_parts)}) - maps are not meaningful" if random_parts else ""
    heat = {
        f"FocalNet: |modulator|, stage {b.stage + 1} block {b.block + 1}": b.modulator_norm_up,
        f"{args.compare_vit}: last-layer CLS attention": up["cls"],
        f"{args.compare_vit}: attention rollout": up["rollout"],
    }
    fig = heatmap_figure(prepared.display, heat, meaningful=not random_parts, note=note or RANDOM_WEIGHTS_NOTE,
                         title=f"{args.model} modulation vs. {args.compare_vit} attention, same {H}x{W} image")
    save_figure(fig, out / f"{name}_vs_vit.png")


def _attention_outputs(model, name: str, source, args, which, out: Path, weights: str | None) -> np.ndarray:
    from focalnet.models.registry import get_spec
    from focalnet.viz import prepare_image
    from focalnet.viz.attention import attention_map
    from focalnet.viz.figures import heatmap_figure, overlay, save_figure

    img_size = getattr(model, "img_size", None) or get_spec(args.model).img_size
    img_size = img_size[0] if isinstance(img_size, (tuple, list)) else img_size
    prepared = prepare_image(source, size=int(img_size), square=True)  # v1 accepts only its training size
    x = prepared.tensor.to(args.device)
    heat, arrays, points = {}, {"image": prepared.display, "weights": np.array(weights or "random")}, []
    for pair in which:
        att = attention_map(model, x, which=pair, query=tuple(args.query), head=args.head, image_size=prepared.size)
        heat[f"attention, stage {pair[0] + 1} block {pair[1] + 1}"] = att.image
        arrays[f"attention/{att.block}"] = att.grid
        arrays[f"attention_up/{att.block}"] = att.image
        points.append(att.query_pixel)
    if not args.no_figures:
        fig = heatmap_figure(prepared.display, heat, point=points, meaningful=weights is not None,
                             title=f"{args.model}: attention of the query (+) over fine and pooled keys")
        save_figure(fig, out / f"{name}_attention.png")
        _save_npz(out / f"{name}_maps.npz", arrays)
    if args.animate:
        return np.concatenate([prepared.display] + [overlay(prepared.display, m) for m in heat.values()], axis=1)
    return prepared.display


def _check_args(args: argparse.Namespace) -> None:
    """Every numeric option in range, and --animate / --out writable, before any model is built."""
    from focalnet.errors import UsageError

    problems = []
    if not (args.fps > 0 and args.fps == args.fps and args.fps != float("inf")):
        problems.append(f"--fps must be a positive number of frames per second, got {args.fps:g}")
    if args.every < 1:
        problems.append(f"--every must be >= 1, got {args.every}")
    if args.no_figures and not args.animate:
        problems.append("--no-figures without --animate would write nothing; add --animate FILE")
    if args.size < 0:
        problems.append(f"--size must be >= 0 (0 keeps the image size), got {args.size}")
    if args.max_side is not None and args.max_side < 1:
        problems.append(f"--max-side must be >= 1, got {args.max_side}")
    if args.max_frames is not None and args.max_frames < 1:
        problems.append(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.head is not None and args.head < 0:
        problems.append(f"--head must be >= 0, got {args.head}")
    if not all(0.0 <= q <= 1.0 for q in args.query):
        problems.append(f"--query Y X are fractions of the height and width in [0, 1], got {args.query}")
    if args.animate is not None and Path(args.animate).suffix.lower() not in (".gif", ".mp4"):
        problems.append(f"--animate {args.animate}: the file must end in .gif or .mp4")
    if args.animate is not None and Path(args.animate).is_dir():
        problems.append(f"--animate {args.animate} is a folder; give a .gif or .mp4 file name")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        problems.append(f"--out {args.out} is a file; give a folder")
    if not problems:
        from focalnet.engine.distributed import resolve_device

        resolve_device(args.device)  # a ConfigError (exit 2) for a device that is not there
    if problems:
        raise UsageError("; ".join(problems))


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import focalnet
    from focalnet.viz import RANDOM_WEIGHTS_NOTE, focal_kernels, resolve_blocks
    from focalnet.viz.attention import has_attention
    from focalnet.viz.figures import kernels_figure, save_figure
    from focalnet.viz.sequence import write_animation
    from focalnet.weights.loading import check_finite

    _check_args(args)
    if args.checkpoint and args.weights:
        print("focalnet visualize: give either --weights (a classifier) or --checkpoint (a dense model), not both",
              file=sys.stderr)
        return 2
    weights = None
    if args.checkpoint:
        from focalnet.viz.dense import backbone_from_checkpoint

        try:
            dense = backbone_from_checkpoint(args.checkpoint, device=args.device)
        except ValueError as e:
            print(f"focalnet visualize: --checkpoint: {one_line(e)}", file=sys.stderr)
            return 1  # missing, damaged or without a FocalNet: a runtime error, as for --weights
        model, weights = dense.model, str(args.checkpoint)
        args.model = dense.description
        print(f"maps of the {dense.description} (keys under {dense.prefix!r})")
    else:
        try:
            model = focalnet.create_model(args.model, device=args.device)
        except KeyError as e:
            print(f"focalnet visualize: {e.args[0]}", file=sys.stderr)
            return 2
    if args.weights:
        try:
            focalnet.load_weights(model, args.weights)
            check_finite(model, args.weights)
        except (OSError, ValueError) as e:  # missing, damaged, refused (pickled code), broken (NaN), not fitting
            print(f"focalnet visualize: cannot load --weights: {one_line(e)}", file=sys.stderr)
            return 1
        weights = str(args.weights)
    elif not args.checkpoint:
        print(f"WARNING: no --weights given: {args.model} has {RANDOM_WEIGHTS_NOTE}; they show the architecture, "
              "not what a trained network attends to. Figures are stamped accordingly.", file=sys.stderr)
    model.eval()
    attention = has_attention(model) and not hasattr(model, "forward_modulation")
    args._vit = None
    if args.compare_vit:
        if attention:
            print("focalnet visualize: --compare-vit needs a FocalNet (modulation maps), not a Focal Transformer",
                  file=sys.stderr)
            return 2
        from focalnet.viz.vit import create_vit

        try:
            args._vit = create_vit(args.compare_vit, args.vit_weights, args.device)
        except (RuntimeError, ValueError, OSError, KeyError) as e:
            print(f"focalnet visualize: --compare-vit {args.compare_vit}: {one_line(e)}", file=sys.stderr)
            return 2
    try:
        which = resolve_blocks(model, args.stages or ([(-1, -1)] if attention else None))
    except ValueError as e:
        print(f"focalnet visualize: --stages: {one_line(e)}", file=sys.stderr)
        return 2

    out = Path(args.out)
    if not args.no_figures:
        out.mkdir(parents=True, exist_ok=True)
    if not attention and not args.no_figures:
        save_figure(kernels_figure(focal_kernels(model), meaningful=weights is not None, title=(
            f"{args.model}: depthwise focal kernels (mean over channels), last block of each stage")),
            out / "kernels.png")

    items, total = _expand_inputs(args.images, args.every, args.max_frames)
    frames, names, failed, done = [], [], [], 0
    handler = _attention_outputs if attention else _focalnet_outputs
    with tqdm(total=total, unit="img", desc="visualize", disable=None, file=sys.stderr) as bar:
        try:
            for name, source in _iter_items(items):
                try:
                    frame = handler(model, name, source, args, which, out, weights)
                    if args.animate:
                        frames.append(frame)
                        names.append(name)
                    done += 1
                except (OSError, ValueError) as e:
                    failed.append(f"{name}: {e}")
                    _logger.error("%s: %s", name, e)
                bar.update(1)
        except (OSError, ValueError) as e:  # an unreadable video or folder
            failed.append(str(e))
            _logger.error("%s", e)
    note = "" if weights else f"  [{RANDOM_WEIGHTS_NOTE}]"
    if args.animate and frames:
        try:
            write_animation(frames, args.animate, fps=args.fps, captions=names)
            print(f"animation: {args.animate} ({len(frames)} frames, {1000.0 / args.fps:.0f} ms each){note}")
        except (OSError, ValueError, RuntimeError) as e:
            failed.append(f"--animate: {e}")
    if args.no_figures:
        print(f"computed maps of {done} image(s); --no-figures: no per-image files written")
    else:
        print(f"wrote maps of {done} image(s) to {out}{note}")
    for f in failed:
        print(f"failed: {one_line(f)}", file=sys.stderr)
    if failed:
        print(f"focalnet visualize: error: {len(failed)} input(s) failed, {done} image(s) done", file=sys.stderr)
        return 1
    if done == 0:
        print("focalnet visualize: error: no images found in the inputs", file=sys.stderr)
        return 1
    return 0
