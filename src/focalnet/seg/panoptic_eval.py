"""Panoptic quality (PQ/SQ/RQ, all / things / stuff) and COCO mask AP, on maintained implementations.

* **PQ** (Kirillov et al., 2019), counted as panopticapi's ``pq_compute`` does (see
  :class:`PanopticQualityMeter`; cross-checked in the tests against torchmetrics' ``PanopticQuality`` and a
  hand-computed case). Per category ``PQ = sum IoU(TP) / (TP + FP/2 + FN/2)``, ``SQ = sum IoU(TP) / TP``,
  ``RQ = TP / (TP + FP/2 + FN/2)``; the reported values average over the categories that occur
  (``TP + FP + FN > 0``) in all / thing / stuff classes.
* **mask AP**: pycocotools' ``COCOeval`` with ``iouType="segm"`` (AP, AP50, AP75, APs/m/l, in percent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .panoptic import Category

__all__ = ["PanopticQualityMeter", "MaskAPMeter", "panoptic_pairs"]


def panoptic_pairs(segmentation: torch.Tensor, segments_info: list[dict],
                   categories: Sequence[Category]) -> torch.Tensor:
    """HF's panoptic output (segment ids, 0 = unassigned; ``label_id`` = contiguous class) -> (H, W, 2) int64
    ``(category_id, segment id)`` pairs; unassigned pixels get category -1 (void)."""
    out = torch.full((*segmentation.shape, 2), -1, dtype=torch.int64)
    out[..., 1] = 0
    for s in segments_info:
        m = segmentation == s["id"]
        out[m, 0] = categories[s["label_id"]].id
        out[m, 1] = s["id"]
    return out


class PanopticQualityMeter:
    """Accumulates panopticapi's PQ counts over images; :meth:`compute` gives PQ/SQ/RQ (percent) for all /
    things / stuff and per class.

    The counting follows ``panopticapi.evaluation.pq_compute_single_core`` rule for rule: a ground-truth and a
    predicted segment of the same category match when ``IoU > 0.5``, where the union leaves out the predicted
    segment's pixels on ground-truth void; every unmatched ground-truth segment is a false negative; an
    unmatched predicted segment is a false positive unless more than half of it lies on void. torchmetrics'
    ``PanopticQuality`` departs from this in one rule (it also drops ground-truth segments that the prediction
    leaves mostly *unassigned*, so an empty prediction scores NaN instead of 0), which is why the counting is
    ours; the tests check both against a hand-computed case and against each other where the rule does not
    apply. Crowd regions are void here (the readers drop them), slightly more lenient than panopticapi, which
    only excuses a prediction's overlap with a crowd region of its own category."""

    def __init__(self, categories: Sequence[Category]) -> None:
        self.categories = list(categories)
        self.known = {c.id for c in self.categories}
        self.stats = {c.id: [0.0, 0, 0, 0] for c in self.categories}  # iou sum, tp, fp, fn

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred``/``target``: (H, W, 2) or (B, H, W, 2) ``(category_id, instance)`` pairs; category -1 = void
        (unassigned in a prediction). For stuff categories the instance number is ignored (one segment each)."""
        if pred.shape != target.shape:
            raise ValueError(f"panoptic prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        if pred.ndim == 3:
            pred, target = pred[None], target[None]
        for p, t in zip(pred, target):
            self._update_one(p.reshape(-1, 2).cpu().numpy(), t.reshape(-1, 2).cpu().numpy())

    def _segments(self, pairs: np.ndarray, what: str) -> tuple[np.ndarray, dict[int, int]]:
        cat = pairs[:, 0]
        void = cat < 0
        bad = set(np.unique(cat[~void]).tolist()) - self.known
        if bad:
            raise ValueError(f"{what} has category ids {sorted(bad)[:10]} outside the data set's categories")
        stuff = np.isin(cat, [c.id for c in self.categories if not c.isthing])
        inst = np.where(stuff, 0, pairs[:, 1])
        _, seg = np.unique(np.stack([cat, inst], 1), axis=0, return_inverse=True)
        seg = seg.reshape(-1) + 1
        seg[void] = 0  # segment 0 = void
        cats = {int(s): int(c) for s, c in zip(seg[~void], cat[~void])}
        return seg, cats

    def _update_one(self, pred: np.ndarray, target: np.ndarray) -> None:
        ps, pcat = self._segments(pred, "prediction")
        gs, gcat = self._segments(target, "ground truth")
        n = int(ps.max()) + 1
        joint = gs.astype(np.int64) * n + ps
        codes, counts = np.unique(joint, return_counts=True)
        inter = {(int(c // n), int(c % n)): int(k) for c, k in zip(codes, counts)}
        p_area = np.bincount(ps, minlength=n)
        g_area = np.bincount(gs)
        matched_p, matched_g = set(), set()
        for (g, p), k in inter.items():
            if g == 0 or p == 0 or gcat[g] != pcat[p]:
                continue
            union = p_area[p] + g_area[g] - k - inter.get((0, p), 0)
            iou = k / union
            if iou > 0.5:
                matched_p.add(p)
                matched_g.add(g)
                st = self.stats[gcat[g]]
                st[0] += iou
                st[1] += 1
        for g, c in gcat.items():
            if g not in matched_g:
                self.stats[c][3] += 1
        for p, c in pcat.items():
            if p not in matched_p and inter.get((0, p), 0) / p_area[p] <= 0.5:
                self.stats[c][2] += 1

    def counts(self) -> dict[int, tuple[float, int, int, int]]:
        """category id -> (IoU sum, TP, FP, FN)."""
        return {c: (float(v[0]), int(v[1]), int(v[2]), int(v[3])) for c, v in self.stats.items()}

    def compute(self) -> dict:
        counts = self.counts()
        per_class, groups = {}, {"": [], "_th": [], "_st": []}
        for c in self.categories:
            iou, tp, fp, fn = counts[c.id]
            if tp + fp + fn == 0:
                continue  # panopticapi averages over the categories that occur
            denom = tp + 0.5 * fp + 0.5 * fn
            pq, sq, rq = iou / denom, (iou / tp if tp else 0.0), tp / denom
            per_class[c.name] = {"PQ": 100 * pq, "SQ": 100 * sq, "RQ": 100 * rq}
            groups[""].append((pq, sq, rq))
            groups["_th" if c.isthing else "_st"].append((pq, sq, rq))
        out: dict = {}
        for suffix, vals in groups.items():
            for j, name in enumerate(("PQ", "SQ", "RQ")):
                out[name + suffix] = 100 * float(np.mean([v[j] for v in vals])) if vals else math.nan
        out["per_class"] = per_class
        return out


class MaskAPMeter:
    """COCO mask AP through pycocotools from ground-truth masks and scored predicted masks per image."""

    def __init__(self, categories: Sequence[Category]) -> None:
        self.categories = [c for c in categories if c.isthing] or list(categories)
        self._thing_index = {c.id for c in self.categories}
        self.cat_ids = [c.id for c in categories]
        self.images: list[dict] = []
        self.gts: list[dict] = []
        self.dts: list[dict] = []

    @staticmethod
    def _rle(mask: np.ndarray) -> dict:
        from pycocotools import mask as mask_util

        rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        return rle

    def update(self, image_id: int, gt_masks: np.ndarray | torch.Tensor, gt_labels: Sequence[int],
               pred_masks: np.ndarray | torch.Tensor, pred_labels: Sequence[int], pred_scores: Sequence[float]) -> None:
        """Masks (N, H, W) bool; labels are contiguous class indices (only thing classes are scored)."""
        gt_masks, pred_masks = np.asarray(gt_masks, bool), np.asarray(pred_masks, bool)
        h, w = gt_masks.shape[1:] if gt_masks.ndim == 3 and len(gt_masks) else pred_masks.shape[1:]
        iid = len(self.images) + 1  # our own ids: the data set's may repeat across splits
        self.images.append({"id": iid, "height": int(h), "width": int(w), "source_id": image_id})
        for m, lab in zip(gt_masks, gt_labels):
            cid = self.cat_ids[int(lab)]
            if cid in self._thing_index and m.any():
                self.gts.append({"id": len(self.gts) + 1, "image_id": iid, "category_id": cid, "iscrowd": 0,
                                 "segmentation": self._rle(m), "area": int(m.sum()),
                                 "bbox": _bbox(m)})
        for m, lab, sc in zip(pred_masks, pred_labels, pred_scores):
            cid = self.cat_ids[int(lab)]
            if cid in self._thing_index and m.any():
                self.dts.append({"image_id": iid, "category_id": cid, "segmentation": self._rle(m),
                                 "score": float(sc)})

    def compute(self) -> dict:
        """``AP, AP50, AP75, APs, APm, APl`` in percent (NaN without any ground-truth thing)."""
        keys = ("AP", "AP50", "AP75", "APs", "APm", "APl")
        if not self.gts:
            return {k: math.nan for k in keys}
        import contextlib
        import io

        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        gt = COCO()
        gt.dataset = {"images": self.images, "annotations": self.gts,
                      "categories": [{"id": c.id, "name": c.name} for c in self.categories]}
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints; our library logs
            gt.createIndex()
            if not self.dts:
                return dict.fromkeys(keys, 0.0)
            dt = gt.loadRes(self.dts)
            ev = COCOeval(gt, dt, iouType="segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return {k: 100 * float(v) if v >= 0 else math.nan for k, v in zip(keys, ev.stats[:6])}


def _bbox(m: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(m)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def _resize_for_test(img: torch.Tensor, short_side: int | None, max_size: int) -> torch.Tensor:
    if not short_side:
        return img
    h, w = img.shape[-2:]
    f = min(short_side / min(h, w), max_size / max(h, w))
    if abs(f - 1) < 1e-6:
        return img
    size = (max(1, round(h * f)), max(1, round(w * f)))
    return torch.nn.functional.interpolate(img[None], size=size, mode="bilinear", align_corners=False,
                                           antialias=f < 1)[0]


@torch.no_grad()
def evaluate_mask2former(model, dataset, device: torch.device, metrics: Sequence[str], mean: Sequence[float],
                         std: Sequence[float], test_short_side: int | None = None, test_max_size: int = 2048,
                         indices: Sequence[int] | None = None, progress: bool = False) -> dict:
    """Run ``model`` (a :class:`~focalnet.seg.mask2former.Mask2FormerSegmentor`) over ``dataset`` (raw
    :class:`~focalnet.seg.panoptic.Sample` items) one image at a time and measure ``metrics`` among ``PQ``
    (needs panoptic ground truth), ``mIoU`` and ``AP``. Images are resized to ``test_short_side`` (none: as they
    are), predictions are made at the original size. Returns the counts' results as a flat-ish dict; with
    ``indices`` only those images are used (for sharding)."""
    from .metrics import ConfusionMatrix

    cats = list(dataset.categories)
    want = set(metrics)
    tasks = [t for t, m in (("panoptic", "PQ"), ("semantic", "mIoU"), ("instance", "AP")) if m in want]
    pq = PanopticQualityMeter(cats) if "PQ" in want else None
    cm = ConfusionMatrix(len(cats)) if "mIoU" in want else None
    ap = MaskAPMeter(cats) if "AP" in want else None
    mean_t = torch.tensor(mean, device=device).view(3, 1, 1)
    std_t = torch.tensor(std, device=device).view(3, 1, 1)
    idx = list(range(len(dataset))) if indices is None else list(indices)
    if progress:
        from tqdm.auto import tqdm

        idx = tqdm(idx, desc="evaluate", leave=False)
    for i in idx:
        s = dataset.load(i)
        img = torch.from_numpy(np.array(s.image)).permute(2, 0, 1).to(device).float()
        x = (_resize_for_test(img, test_short_side, test_max_size) - mean_t) / std_t
        r = model.predict(x[None], tasks=tasks, target_sizes=[s.image.shape[:2]])[0]
        if pq is not None:
            if s.panoptic is None:
                raise ValueError("PQ needs panoptic ground truth; this data set has none")
            p = r["panoptic"]
            pq.update(panoptic_pairs(p["segmentation"], p["segments_info"], cats), torch.from_numpy(s.panoptic))
        if cm is not None:
            if s.semantic is None:
                raise ValueError("mIoU needs semantic ground truth; this data set has none")
            cm.update(r["semantic"], torch.from_numpy(s.semantic))
        if ap is not None:
            inst = r["instance"]
            ap.update(s.image_id, s.masks, s.labels.tolist(), inst["masks"].numpy(), inst["labels"].tolist(),
                      inst["scores"].tolist())
    out: dict = {}
    if pq is not None:
        out.update(pq.compute())
    if cm is not None:
        sem = cm.compute([c.name for c in cats])
        out.update({"mIoU": sem["mIoU"], "aAcc": sem["aAcc"], "mAcc": sem["mAcc"], "IoU": sem["IoU"]})
    if ap is not None:
        out.update(ap.compute())
    out["images"] = len(idx)
    return out
