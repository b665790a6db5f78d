"""Focal Transformer v1: focal self-attention (Yang, Li, Zhang, Dai, Xiao, Yuan & Gao, NeurIPS 2021,
arXiv:2107.00641), the paper's model as released in microsoft/Focal-Transformer ``classification/focal_transformer.py``.

Each 7x7 query window attends, in one softmax, to three groups of keys (spec §2):

* its own 49 tokens (Swin's relative-position table),
* 132 "rolled" surrounding tokens: four cyclic rolls of the key map by +-``expand_size``, 33 slots of each kept
  (120 unique tokens of the 13x13 ring plus 12 duplicates, wrapped around the map borders, never masked),
  with a dense learned bias per (query, slot),
* the fw x fw neighbourhood of pooled window tokens (a learned ``Linear(49, 1)`` per block pools each window),
  zero-padded at the border and masked there with -100, with a relative bias table.

Parameter and buffer names are those of the authors' checkpoints (buffers included), so their state dicts load
strictly. There are two implementations of the attention with identical outputs (``attn_impl``):

* ``"faithful"`` follows the original operations: four ``torch.roll`` of K and V, window partitions,
  ``index_select`` of the 132 valid slots, ``Unfold`` of the pooled K/V, sliced bias adds, softmax, matmul.
* ``"fast"`` (default) gathers every key of every window with one ``index_select`` from a head-major K/V buffer,
  using index tables derived by applying the *same* rolls/partitions/unfold to a map of token indices (so the
  key sets agree by construction), builds one additive bias (tables + -100 padding mask) and makes one
  ``scaled_dot_product_attention`` call. No rolled copies of the map, no unfolded copies, no sliced adds.

Deliberate deviations from the original code (none changes a number at the construction size):

* Any input size. The original asserts ``H == W == img_size``. Here the parameter set is fixed at construction by
  ``img_size`` exactly as in the original (which blocks expand, the window size of blocks whose stage map is not
  larger than a window, the pooling/bias sizes); at run time each block pads its map right/bottom with zeros to a
  multiple of its window, as the original does inside every block, so the network computes what the original
  module structure computes on that input. Stride-32 rule: inputs need sides >= 32.
* Tokens stay channels-last ``(B, H, W, C)``; the forward pass is stateless (the original stores ``H, W`` and
  input resolutions on the modules; attention maps come from :meth:`FocalTransformer.forward_attention`).
* In the fast path ``qkv`` runs once on the concatenation of fine and pooled tokens (the original calls it twice,
  also computing the unused q of pooled tokens, which is kept so FLOPs match) and pooled keys are gathered by
  index instead of unfolded; the index tables are memoised per map size (a pure function of sizes).
* The fc pooling is an ``einsum`` over the window view instead of partition + transpose + ``Linear``; same sum.
* ``use_layerscale=False`` skips the original's multiplication by 1.0.
* Unsupported original options raise instead of being ignored: ``use_shift=True``, ``ape=True``,
  ``use_pre_norm=True``, ``patch_norm=False``. ``expand_stages`` is accepted and, as in the original, unused
  (expansion is controlled by ``expand_sizes`` and ``expand_layer``).
* :meth:`forward_intermediates` serves dense prediction (strides 4/8/16/32) with the input padded right/bottom;
  there is no official detection backbone, so this follows FocalNet's/Swin's.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from focalnet.layers import DropPath, Mlp

from .base import HierarchicalClassifier, Stage
from .base import init_weights_original as _init_weights
from .focalnet import PatchEmbed
from .registry import ModelSpec, register_model

__all__ = [
    "FocalTransformer",
    "FocalTransformerBlock",
    "FocalWindowAttention",
    "FocalAttentionMaps",
    "describe_checkpoint",
    "check_focal_transformer_state_dict",
]

_logger = logging.getLogger(__name__)

_MASK_VALUE = -100.0  # the original's additive mask for zero-padded pooled slots (not -inf)
ATTN_IMPLS = ("fast", "faithful")


# ---------------------------------------------------------------------------------------------------- helpers
def _window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws, ws, C), windows row-major per image (Swin order)."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws, ws, C)


def _window_reverse(windows: torch.Tensor, ws: int, H: int, W: int) -> torch.Tensor:
    """(B * nW, ws, ws, C) -> (B, H, W, C)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


def _relative_position_index(q_size: int, k_size: int) -> torch.Tensor:
    """Index of a (q_size+k_size-1)^2 table for every (query cell, key cell) pair of two square grids.

    ``(qh - kh + k - 1) * (q + k - 1) + (qw - kw + k - 1)``; with ``q == k`` this is Swin's in-window index.
    """
    aq, ak = torch.arange(q_size, device="cpu"), torch.arange(k_size, device="cpu")  # CPU even in meta builds
    cq = torch.stack(torch.meshgrid(aq, aq, indexing="ij")).flatten(1)
    ck = torch.stack(torch.meshgrid(ak, ak, indexing="ij")).flatten(1)
    rel = (cq[:, :, None] - ck[:, None, :]).permute(1, 2, 0) + (k_size - 1)  # (q*q, k*k, 2)
    return rel[..., 0] * (q_size + k_size - 1) + rel[..., 1]


def _rolled_valid_slots(ws: int, e: int) -> torch.Tensor:
    """Which of the 4 * ws^2 slots of the (tl, tr, bl, br) rolled windows are kept: 4 ws^2 - 4 (ws-e)^2 of them."""
    masks = torch.ones(4, ws, ws, device="cpu")  # nonzero() needs real data, also in meta-device builds
    masks[0, :-e, :-e] = 0  # rolled towards the top-left: keep what came from the right/bottom border strips
    masks[1, :-e, e:] = 0
    masks[2, e:, :-e] = 0
    masks[3, e:, e:] = 0
    return masks.flatten().nonzero().view(-1)


def _on_default_device(t: torch.Tensor) -> torch.Tensor:
    """Index tables are computed on the CPU; buffers follow the build device (e.g. ``create_model(device=...)``)."""
    return t.to(torch.get_default_device())


def _unfold_geometry(focal_window: int, level: int) -> tuple[int, int]:
    """(kernel, stride) of the original ``nn.Unfold`` over the pooled map of coarse level ``level``."""
    stride = 2**level
    return 2 * (focal_window // 2) + 2**level + (2**level - 1), stride


@dataclass
class _PooledKeys:
    """Where the keys of one coarse level come from, for mapping attention back onto the token grid."""

    index: torch.Tensor  # (nW, n) flat index into the (Ph, Pw) pooled map, -1 for zero-padded (masked) slots
    pooled_size: tuple[int, int]
    cell: int  # side of the square of fine tokens one pooled token summarises
    offset: tuple[int, int]  # fine-grid (row, col) of the top-left pooled cell (negative when the map was padded)


@dataclass
class FocalAttentionMaps:
    """The attention one focal self-attention block computed.

    ``attn``: softmax weights ``(B, nW, heads, ws*ws, N_keys)``, keys ordered ``[ws^2 window | rolled | pooled
    level 0 | ...]`` exactly as in the original; ``grid_size``: (H, W) of the stage's token map (unpadded);
    ``window_size``; ``padded_size``: the map after padding to multiples of the window; ``fine_index``: flat
    position in the padded map of each window / rolled key ``(nW, n_fine)``; ``pooled``: the coarse levels.
    """

    attn: torch.Tensor
    grid_size: tuple[int, int]
    window_size: int
    padded_size: tuple[int, int]
    fine_index: torch.Tensor
    pooled: list[_PooledKeys]

    def query_map(self, y: int, x: int, head: int | None = None) -> torch.Tensor:
        """Attention of query token ``(y, x)`` mapped onto the stage's token grid: ``(B, H, W)``.

        Window and rolled keys land on their true (wrapped) token positions, duplicates summed; a pooled key's
        weight is spread uniformly over the ``cell x cell`` tokens it pools. Mass on zero-padded tokens or on
        masked pooled slots has no place on the grid and is dropped, so each map sums to at most 1.
        ``head=None`` averages the heads.
        """
        H, W = self.grid_size
        if not (0 <= y < H and 0 <= x < W):
            raise IndexError(f"query ({y}, {x}) is outside the {H}x{W} token grid")
        ws = self.window_size
        Hp, Wp = self.padded_size
        w = (y // ws) * (Wp // ws) + x // ws
        a = self.attn[:, w, :, (y % ws) * ws + x % ws]  # (B, heads, N)
        a = a.mean(1) if head is None else a[:, head]
        B = a.shape[0]
        n_fine = self.fine_index.shape[1]
        out = a.new_zeros(B, Hp * Wp)
        out.index_add_(1, self.fine_index[w], a[:, :n_fine])
        out = out.view(B, Hp, Wp)
        start = n_fine
        for lvl in self.pooled:
            idx = lvl.index[w]
            n = idx.shape[0]
            Ph, Pw = lvl.pooled_size
            valid = idx >= 0
            pooled = a.new_zeros(B, Ph * Pw)
            pooled.index_add_(1, idx[valid], a[:, start : start + n][:, valid])
            cell = lvl.cell
            spread = pooled.view(B, Ph, Pw).repeat_interleave(cell, 1).repeat_interleave(cell, 2) / cell**2
            # place the (Ph*cell, Pw*cell) map at its offset on the padded grid, clipping what falls outside
            top, left = lvl.offset
            r0, c0 = max(top, 0), max(left, 0)
            r1, c1 = min(top + Ph * cell, Hp), min(left + Pw * cell, Wp)
            if r1 > r0 and c1 > c0:
                out[:, r0:r1, c0:c1] += spread[:, r0 - top : r1 - top, c0 - left : c1 - left]
            start += n
        return out[:, :H, :W]


@dataclass(frozen=True)
class _KeyTables:
    """Index tables of the fast path for one padded map size.

    ``index`` (nW, N): row of each key in the K/V source ``[fine tokens (Hp*Wp) | pooled level 0 | ... | zero]``;
    ``mask`` (nW, N): the additive padding mask (0 or -100); ``fine`` (nW, n_fine): flat padded-map position of
    each window/rolled key; ``pooled[k]`` (nW, n_k): index into the level-k pooled map, -1 where zero-padded.
    """

    index: torch.Tensor
    mask: torch.Tensor
    fine: torch.Tensor
    pooled: tuple[torch.Tensor, ...]


def _build_key_tables(
    Hp: int,
    Wp: int,
    ws: int,
    e: int,
    focal_window: int,
    pooled_sizes: tuple[tuple[int, int], ...],
    device,
    rolled_slots: torch.Tensor | None,
    unfold_slots: Sequence[torch.Tensor | None],
) -> _KeyTables:
    """Apply the faithful path's own rolls, window partition, slot selection and ``Unfold`` to maps of *token
    indices*, so the fast path gathers exactly the faithful path's keys, in the same order."""
    ids = torch.arange(Hp * Wp, device=device).view(1, Hp, Wp, 1)
    fine = [_window_partition(ids, ws).flatten(1)]
    if e > 0:
        rolled = [_window_partition(torch.roll(ids, s, (1, 2)), ws).flatten(1) for s in _rolls(e)]
        fine.append(torch.cat(rolled, 1)[:, rolled_slots])
    fine = torch.cat(fine, 1)
    index, mask, pooled = [fine], [torch.zeros(fine.shape, device=device)], []
    start = Hp * Wp
    total = start + sum(ph * pw for ph, pw in pooled_sizes)  # the zero row
    for k, (Ph, Pw) in enumerate(pooled_sizes):
        kernel, stride = _unfold_geometry(focal_window, k)
        grid = torch.arange(1, Ph * Pw + 1, device=device, dtype=torch.float64).view(1, 1, Ph, Pw)
        cols = F.unfold(grid, kernel, padding=kernel // 2, stride=stride)[0].t()  # (L, kernel^2), 0 = padding
        idx = cols.round().long() - 1
        if k > 0:
            idx = idx[:, unfold_slots[k]]
        pooled.append(idx)
        pad = idx < 0
        index.append(torch.where(pad, total, idx + start))
        mask.append(pad.float() * _MASK_VALUE)
        start += Ph * Pw
    return _KeyTables(torch.cat(index, 1), torch.cat(mask, 1), fine, tuple(pooled))


@functools.lru_cache(maxsize=32)  # ~6 MB per entry at detection sizes
def _cached_key_tables(
    Hp: int, Wp: int, ws: int, e: int, focal_window: int, pooled_sizes: tuple[tuple[int, int], ...], device: str
) -> _KeyTables:
    # Built outside inference mode: the tables are reused by later autograd forwards (index_select saves them).
    with torch.inference_mode(False), torch.no_grad():
        unfold_slots = [None] + [_unfold_valid_slots(focal_window, k).to(device) for k in range(1, len(pooled_sizes))]
        rolled = _rolled_valid_slots(ws, e).to(device) if e > 0 else None
        return _build_key_tables(Hp, Wp, ws, e, focal_window, pooled_sizes, device, rolled, unfold_slots)


def _unfold_valid_slots(focal_window: int, k: int) -> torch.Tensor:
    """Slots of the level-k (k > 0) unfold kernel that the original keeps (its ``valid_ind_unfold_k``)."""
    kernel, _ = _unfold_geometry(focal_window, k)
    keep = torch.zeros(kernel, kernel, device="cpu")
    keep[2**k - 1 :, 2**k - 1 :] = 1
    return keep.flatten().nonzero().view(-1)


# ---------------------------------------------------------------------------------------------------- attention
class FocalWindowAttention(nn.Module):
    """Focal self-attention of one block (v1). Names follow the original ``WindowAttention``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        expand_size: int,
        focal_level: int,
        focal_window: int,
        pool_method: str,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        ws = window_size
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = ws
        self.expand_size = expand_size
        self.focal_level = focal_level
        self.focal_window = focal_window
        self.pool_method = pool_method
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.attn_impl = "fast"
        self.use_rolled = expand_size > 0 and focal_level > 0
        self.num_pooled_levels = focal_level - 1 if (pool_method != "none" and focal_level > 1) else 0

        # Creation order = the original's, so state-dict keys come out in the same order.
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))  # zero init
        self.register_buffer("relative_position_index", _on_default_device(_relative_position_index(ws, ws)))
        if self.use_rolled:
            n_rolled = 4 * ws * ws - 4 * (ws - expand_size) ** 2
            self.relative_position_bias_table_to_neighbors = nn.Parameter(torch.zeros(1, num_heads, ws * ws, n_rolled))
            nn.init.trunc_normal_(self.relative_position_bias_table_to_neighbors, std=0.02)
            self.register_buffer("valid_ind_rolled", _on_default_device(_rolled_valid_slots(ws, expand_size)))
        if self.num_pooled_levels:
            self.relative_position_bias_table_to_windows = nn.ParameterList()
            for k in range(self.num_pooled_levels):
                region = focal_window + 2**k - 1  # the fw x fw (or larger, k > 0) neighbourhood of pooled tokens
                table = nn.Parameter(torch.zeros(num_heads, (ws + region - 1) ** 2))
                nn.init.trunc_normal_(table, std=0.02)
                self.relative_position_bias_table_to_windows.append(table)
                index_k = _relative_position_index(ws, region)
                self.register_buffer(f"relative_position_index_{k}", _on_default_device(index_k))
                if k > 0:
                    slots = _unfold_valid_slots(focal_window, k)
                    self.register_buffer(f"valid_ind_unfold_{k}", _on_default_device(slots))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    # -------------------------------------------------------------- shared pieces
    def _key_tables(self, Hp: int, Wp: int, pooled_sizes: tuple[tuple[int, int], ...], device) -> _KeyTables:
        """Where every key of every window comes from (see :func:`_build_key_tables`), memoised in eager mode.

        Eager calls share a process-wide cache keyed on sizes only (the slot buffers are fixed functions of
        ``window_size``, ``expand_size`` and ``focal_window``; a test checks they equal the loaded buffers). Under
        ``torch.compile`` the tables are traced from the module's buffers instead.
        """
        e = self.expand_size if self.use_rolled else 0
        if torch.compiler.is_compiling():
            unfold_slots = [getattr(self, f"valid_ind_unfold_{k}", None) for k in range(len(pooled_sizes))]
            rolled = self.valid_ind_rolled if self.use_rolled else None
            return _build_key_tables(Hp, Wp, self.window_size, e, self.focal_window, pooled_sizes, device, rolled,
                                     unfold_slots)
        return _cached_key_tables(Hp, Wp, self.window_size, e, self.focal_window, pooled_sizes, str(device))

    def _bias(self) -> torch.Tensor:
        """(heads, ws^2, N) additive bias of all key groups, in key order (without the padding mask)."""
        ws2 = self.window_size**2
        h = self.num_heads
        parts = [self.relative_position_bias_table[self.relative_position_index.view(-1)].view(ws2, ws2, h)]
        parts[0] = parts[0].permute(2, 0, 1)
        if self.use_rolled:
            parts.append(self.relative_position_bias_table_to_neighbors[0])
        for k in range(self.num_pooled_levels):
            index = getattr(self, f"relative_position_index_{k}")
            parts.append(self.relative_position_bias_table_to_windows[k][:, index.view(-1)].view(h, ws2, -1))
        return torch.cat(parts, -1)

    # -------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, pooled: Sequence[torch.Tensor], return_attn: bool = False):
        """``x``: padded window map (B, Hp, Wp, C); ``pooled[k]``: level-k pooled map (B, Ph, Pw, C).

        Returns (B, Hp, Wp, C), plus ``(attn (B, nW, heads, ws^2, N), fine_index, pooled_index list)`` when
        ``return_attn``.
        """
        if self.attn_impl == "faithful" and not return_attn:
            return self._forward_faithful(x, pooled)
        return self._forward_fast(x, pooled, return_attn)

    def _forward_fast(self, x: torch.Tensor, pooled: Sequence[torch.Tensor], return_attn: bool = False):
        B, Hp, Wp, C = x.shape
        ws, h = self.window_size, self.num_heads
        d = C // h
        nWh, nWw = Hp // ws, Wp // ws
        nW = nWh * nWw
        dev = x.device

        # One qkv over fine and pooled tokens (the q of pooled tokens is computed and unused, as in the original).
        tokens = torch.cat([x.reshape(B, Hp * Wp, C)] + [p.reshape(B, -1, C) for p in pooled], 1)
        qkv = self.qkv(tokens)  # (B, S, 3C)
        q = qkv[:, : Hp * Wp, :C].reshape(B, nWh, ws, nWw, ws, h, d)
        q = q.permute(0, 5, 1, 3, 2, 4, 6).reshape(B, h * nW, ws * ws, d)  # head-major windows
        # Head-major K/V source with one zero row at the end (the unfold's zero padding): (2, B, h, S + 1, d).
        S = tokens.shape[1]
        kv = qkv.new_empty(2, B, h, S + 1, d)
        kv[:, :, :, S].zero_()
        kv[:, :, :, :S] = qkv[..., C:].reshape(B, S, 2, h, d).permute(2, 0, 3, 1, 4)

        tables = self._key_tables(Hp, Wp, tuple((p.shape[1], p.shape[2]) for p in pooled), dev)
        N = tables.index.shape[1]
        kv = kv.view(2 * B * h, S + 1, d).index_select(1, tables.index.view(-1)).view(2, B, h * nW, N, d)
        k, v = kv[0], kv[1]

        bias = self._bias()  # (h, ws^2, N)
        bias = bias.unsqueeze(1) + tables.mask.to(bias.dtype)[None, :, None, :]  # (h, nW, ws^2, N) with -100s
        bias = bias.view(1, h * nW, ws * ws, N)

        # SDPA (flash kernel on CPU) whenever the bias needs no gradient. With a trainable bias PyTorch falls back
        # to its math path, which also saves a scaled copy of K; the explicit form saves only q, K/V and the weights.
        if return_attn or (bias.requires_grad and torch.is_grad_enabled()):
            attn = torch.matmul(q * self.scale, k.transpose(-2, -1)) + bias
            attn = attn.softmax(-1)
            out = torch.matmul(self.attn_drop(attn), v)
        else:
            attn = None
            drop = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop, scale=self.scale)
        out = out.view(B, h, nWh, nWw, ws, ws, d).permute(0, 2, 4, 3, 5, 1, 6).reshape(B, Hp, Wp, C)
        out = self.proj_drop(self.proj(out))
        if return_attn:
            attn = attn.view(B, h, nW, ws * ws, N).transpose(1, 2)
            return out, (attn, tables.fine, list(tables.pooled))
        return out

    def _forward_faithful(self, x: torch.Tensor, pooled: Sequence[torch.Tensor]) -> torch.Tensor:
        """The original operations, step by step (reference for tests and benchmarks)."""
        B, Hp, Wp, C = x.shape
        ws, h = self.window_size, self.num_heads
        d = C // h
        ws2 = ws * ws
        q, k, v = self.qkv(x).view(B, Hp, Wp, 3, C).unbind(3)

        def windows(t: torch.Tensor) -> torch.Tensor:  # (B, Hp, Wp, C) -> (B*nW, h, ws^2, d)
            return _window_partition(t, ws).reshape(-1, ws2, h, d).transpose(1, 2)

        q_w = windows(q)
        keys, values = [windows(k)], [windows(v)]
        if self.use_rolled:
            for t, out in ((k, keys), (v, values)):
                rolled = torch.cat([windows(torch.roll(t, s, (1, 2))) for s in _rolls(self.expand_size)], 2)
                out.append(rolled[:, :, self.valid_ind_rolled])  # 132 slots, duplicates and wrap-around kept
        masks = []
        for lvl, p in enumerate(pooled):
            Ph, Pw = p.shape[1:3]
            kernel, stride = _unfold_geometry(self.focal_window, lvl)
            ones = p.new_ones(1, 1, Ph, Pw)
            valid = F.unfold(ones, kernel, padding=kernel // 2, stride=stride)[0].t()  # (L, kernel^2)
            kp, vp = self.qkv(p).view(B, Ph, Pw, 3, C).permute(3, 0, 4, 1, 2)[1:]  # each (B, C, Ph, Pw)
            for t, out in ((kp, keys), (vp, values)):
                cols = F.unfold(t, kernel, padding=kernel // 2, stride=stride)  # (B, C*kernel^2, L)
                cols = cols.view(B, C, kernel, kernel, -1).permute(0, 4, 2, 3, 1).reshape(-1, kernel * kernel, h, d)
                cols = cols.transpose(1, 2)
                if lvl > 0:
                    cols = cols[:, :, getattr(self, f"valid_ind_unfold_{lvl}")]
                out.append(cols)
            if lvl > 0:
                valid = valid[:, getattr(self, f"valid_ind_unfold_{lvl}")]
            masks.append(torch.zeros_like(valid).masked_fill(valid == 0, _MASK_VALUE))
        k_all, v_all = torch.cat(keys, 2), torch.cat(values, 2)
        attn = (q_w * self.scale) @ k_all.transpose(-2, -1)  # (B*nW, h, ws^2, N)

        rpb = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(ws2, ws2, h)
        attn[:, :, :, :ws2] = attn[:, :, :, :ws2] + rpb.permute(2, 0, 1).unsqueeze(0)
        offset = ws2
        if self.use_rolled:
            b = self.relative_position_bias_table_to_neighbors  # (1, h, ws^2, n_rolled)
            n = b.shape[-1]
            attn[:, :, :, offset : offset + n] = attn[:, :, :, offset : offset + n] + b
            offset += n
        nW = masks[0].shape[0] if masks else 1
        for lvl, m in enumerate(masks):
            n = m.shape[1]
            index = getattr(self, f"relative_position_index_{lvl}")
            b = self.relative_position_bias_table_to_windows[lvl][:, index.view(-1)].view(h, ws2, n)
            sl = attn[:, :, :, offset : offset + n] + b.unsqueeze(0)
            sl = sl.view(B, nW, h, ws2, n) + m[None, :, None, None, :]
            attn[:, :, :, offset : offset + n] = sl.view(-1, h, ws2, n)
            offset += n
        attn = self.attn_drop(attn.softmax(-1))
        out = (attn @ v_all).transpose(1, 2).reshape(-1, ws2, C)
        out = self.proj_drop(self.proj(out))
        return _window_reverse(out.view(-1, ws, ws, C), ws, Hp, Wp)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, heads={self.num_heads}, window={self.window_size}, expand={self.expand_size}, "
            f"focal_level={self.focal_level}, focal_window={self.focal_window}, impl={self.attn_impl}"
        )


def _rolls(e: int) -> tuple[tuple[int, int], ...]:  # the (tl, tr, bl, br) shifts of the original
    return ((-e, -e), (-e, e), (e, -e), (e, e))


# ---------------------------------------------------------------------------------------------------- block
class FocalTransformerBlock(nn.Module):
    """Pre-norm block: focal self-attention then MLP, each with a residual (optional layer scale)."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        window_size: int = 7,
        expand_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        pool_method: str = "none",
        focal_level: int = 1,
        focal_window: int = 1,
        use_layerscale: bool = False,
        layerscale_value: float = 1e-4,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)  # construction resolution: fixes the parameter set
        if min(input_resolution) <= window_size:
            # The original: a map no larger than a window is one window, without expansion.
            expand_size = 0
            window_size = min(input_resolution)
        self.window_size = window_size
        self.expand_size = expand_size
        self.focal_level = focal_level
        self.pool_method = pool_method

        self.pool_layers = nn.ModuleList()
        n_pooled = focal_level - 1 if pool_method != "none" else 0
        for k in range(n_pooled):
            g = window_size // 2**k
            if pool_method == "fc":
                self.pool_layers.append(nn.Linear(g * g, 1))  # re-initialised by the model's init, as originally
            elif pool_method == "conv":
                self.pool_layers.append(nn.Conv2d(dim, dim, kernel_size=g, stride=g, groups=dim))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = FocalWindowAttention(
            dim,
            num_heads,
            window_size,
            expand_size,
            focal_level,
            focal_window,
            pool_method,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            attn_drop=attn_drop,
            proj_drop=drop,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.use_layerscale = use_layerscale
        if use_layerscale:
            self.gamma_1 = nn.Parameter(layerscale_value * torch.ones(dim))
            self.gamma_2 = nn.Parameter(layerscale_value * torch.ones(dim))

    def _pool(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, tuple[int, int], int]:
        """Level-k pooled map of the padded map ``x`` (B, Hp, Wp, C): (B, Ph, Pw, C), its fine-grid offset, cell."""
        B, Hp, Wp, C = x.shape
        ws = self.window_size
        g = ws // 2**k
        offset = []
        for dim, size in ((1, Hp), (2, Wp)):
            target = math.ceil(size / ws) * 2**k * g
            if size > target:  # trim centred
                lo = (size - target) // 2
                x = x.narrow(dim, lo, target)
                offset.append(lo)
            elif size < target:  # zero-pad centred
                lo = (target - size) // 2
                pad = [0, 0, 0, 0, 0, 0]
                pad[2 * (3 - dim)], pad[2 * (3 - dim) + 1] = lo, target - size - lo
                x = F.pad(x, pad)
                offset.append(-lo)
            else:
                offset.append(0)
        Ph, Pw = x.shape[1] // g, x.shape[2] // g
        cells = x.reshape(B, Ph, g, Pw, g, C)
        if self.pool_method == "fc":
            lin = self.pool_layers[k]
            pooled = torch.einsum("bhiwjc,ij->bhwc", cells, lin.weight.view(g, g)) + lin.bias
        elif self.pool_method == "mean":
            pooled = cells.mean((2, 4))
        elif self.pool_method == "max":
            pooled = cells.amax((2, 4))
        else:  # conv
            pooled = self.pool_layers[k](x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return pooled, (offset[0], offset[1]), g

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        """``x``: (B, H, W, C) -> (B, H, W, C) [, FocalAttentionMaps]."""
        if return_attn:
            out, maps = _focal_attention(self, x, True)
        else:
            out, maps = _focal_attention(self, x), None
        if self.use_layerscale:
            x = x + self.drop_path(self.gamma_1 * out)
            x = x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))
        else:  # skip multiplying whole maps by 1.0
            x = x + self.drop_path(out)
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return (x, maps) if return_attn else x


def _focal_attention(block: FocalTransformerBlock, x: torch.Tensor, return_attn: bool = False):
    """A block's attention branch: norm1, pad to the window, pooled keys, focal attention, crop.

    A free function registered with ``torch.fx.wrap``: its padding and window geometry depend on the input size,
    so FX (``torchvision.models.feature_extraction``) records it as one call instead of tracing into it.
    """
    B, H, W, C = x.shape
    ws = block.window_size
    y = block.norm1(x)
    ph, pw = (-H) % ws, (-W) % ws
    if ph or pw:  # padded after the norm: exact zero tokens, never masked (as in the original)
        y = F.pad(y, (0, 0, 0, pw, 0, ph))
    levels = [block._pool(y, k) for k in range(block.attn.num_pooled_levels)]
    out = block.attn(y, [p for p, _, _ in levels], return_attn=return_attn)
    maps = None
    if return_attn:
        out, (attn, fine, pooled_index) = out
        maps = FocalAttentionMaps(
            attn=attn,
            grid_size=(H, W),
            window_size=ws,
            padded_size=(H + ph, W + pw),
            fine_index=fine,
            pooled=[
                _PooledKeys(idx, (p.shape[1], p.shape[2]), cell, off)
                for idx, (p, off, cell) in zip(pooled_index, levels, strict=True)
            ],
        )
    if ph or pw:
        out = out[:, :H, :W]
    return (out, maps) if return_attn else out


torch.fx.wrap("_focal_attention")


FocalTransformerStage = Stage  # blocks at one resolution, then the strided-conv downsampling (see base.Stage)


# ---------------------------------------------------------------------------------------------------- model
def _per_stage(value, n: int, name: str) -> list:
    if isinstance(value, (int, float)):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} entries but the network has {n} stages")
    return value


class FocalTransformer(HierarchicalClassifier):
    """Focal Transformer v1 classifier; keyword arguments and defaults are the original constructor's.

    ``img_size`` fixes the parameter set (see the module docstring); the network runs at any input size whose
    sides are at least 32. ``attn_impl`` selects the ``"fast"`` (default) or ``"faithful"`` attention, which give
    the same outputs; change it later with :meth:`set_attn_impl`.
    """

    family_label = "Focal Transformer"
    # The original's rule: no decay on any relative-position table either (the fc-pool weights are decayed).
    no_decay_keywords = (".gamma_", "relative_position_bias_table")
    dense_requires_min_size = True

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        ape: bool = False,
        patch_norm: bool = True,
        use_checkpoint: bool = False,
        use_shift: bool = False,
        focal_stages: Sequence[int] = (0, 1, 2, 3),
        focal_levels: int | Sequence[int] = (1, 1, 1, 1),
        focal_windows: int | Sequence[int] = (7, 5, 3, 1),
        focal_pool: str = "fc",
        expand_stages: Sequence[int] = (0, 1, 2, 3),
        expand_sizes: int | Sequence[int] = (3, 3, 3, 3),
        expand_layer: str = "all",
        use_conv_embed: bool = False,
        use_layerscale: bool = False,
        layerscale_value: float = 1e-4,
        use_pre_norm: bool = False,
        attn_impl: str = "fast",
    ) -> None:
        super().__init__()
        for flag, name in ((use_shift, "use_shift"), (ape, "ape"), (use_pre_norm, "use_pre_norm")):
            if flag:
                raise NotImplementedError(f"{name}=True is not supported (no released Focal Transformer uses it)")
        if not patch_norm:
            raise NotImplementedError("patch_norm=False is not supported (every released model uses it)")
        if focal_pool not in ("fc", "conv", "mean", "max", "none"):
            raise ValueError(f"focal_pool must be one of fc, conv, mean, max, none; got {focal_pool!r}")
        expand_factor = {"all": -1, "even": 0, "odd": 1}.get(expand_layer)
        if expand_factor is None:
            raise ValueError(f"expand_layer must be 'all', 'even' or 'odd', got {expand_layer!r}")
        depths = list(depths)
        n = len(depths)
        num_heads = _per_stage(num_heads, n, "num_heads")
        focal_levels = _per_stage(focal_levels, n, "focal_levels")
        focal_windows = _per_stage(focal_windows, n, "focal_windows")
        expand_sizes = _per_stage(expand_sizes, n, "expand_sizes")
        img_hw = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        res = (img_hw[0] // patch_size, img_hw[1] // patch_size)
        if min(res) // 2 ** (n - 1) < 1:
            raise ValueError(
                f"img_size {img_size} is too small for {n} stages at patch size {patch_size}: "
                f"the last stage would be empty (need at least {patch_size * 2 ** (n - 1)})"
            )
        embed_dims = [embed_dim * 2**i for i in range(n)]
        for i in range(n):
            if focal_levels[i] < 1:
                raise ValueError(f"focal_levels[{i}] must be >= 1, got {focal_levels[i]}")
            pooling = focal_pool != "none" and i in focal_stages and focal_levels[i] > 1
            if pooling and focal_windows[i] % 2 == 0:
                raise ValueError(f"focal_windows[{i}]={focal_windows[i]} must be odd (the pooled region is centred)")
            if not 0 <= expand_sizes[i] <= window_size:
                raise ValueError(f"expand_sizes[{i}]={expand_sizes[i]} must lie in [0, window_size={window_size}]")

        self.img_size = img_hw
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.depths = depths
        self.num_heads = num_heads
        self.window_size = window_size
        self.focal_levels = focal_levels
        self.focal_windows = focal_windows
        self.expand_sizes = expand_sizes
        self.use_conv_embed = use_conv_embed
        self.num_features = embed_dims[-1]
        self.drop_rate = drop_rate
        self.stride = patch_size * 2 ** (n - 1)

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dims[0], use_conv_embed=use_conv_embed, is_stem=True)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        for i in range(n):
            stage_res = (res[0] // 2**i, res[1] // 2**i)
            blocks = [
                FocalTransformerBlock(
                    embed_dims[i],
                    stage_res,
                    num_heads[i],
                    window_size=window_size,
                    expand_size=0 if j % 2 == expand_factor else expand_sizes[i],
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=dpr[sum(depths[:i]) + j],
                    pool_method=focal_pool if i in focal_stages else "none",
                    focal_level=focal_levels[i],
                    focal_window=focal_windows[i],
                    use_layerscale=use_layerscale,
                    layerscale_value=layerscale_value,
                )
                for j in range(depths[i])
            ]
            down = (
                PatchEmbed(2, embed_dims[i], embed_dims[i + 1], use_conv_embed=use_conv_embed, is_stem=False)
                if i < n - 1
                else None
            )
            self.layers.append(FocalTransformerStage(blocks, down))
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.feature_info = self._feature_info()
        # The original's model-level init; it also overwrites the fc-pool layers' 1/49 fill (spec §1, "Gotcha").
        self.apply(_init_weights)
        self.set_grad_checkpointing(use_checkpoint)
        self.set_attn_impl(attn_impl)

    # ------------------------------------------------------------------ utilities
    def set_attn_impl(self, impl: str) -> None:
        """``"fast"`` (gathered keys + one SDPA call) or ``"faithful"`` (the original operations)."""
        if impl not in ATTN_IMPLS:
            raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {impl!r}")
        self.attn_impl = impl
        for m in self.modules():
            if isinstance(m, FocalWindowAttention):
                m.attn_impl = impl

    # ------------------------------------------------------------------ attention maps
    def attention_names(self) -> list[str]:
        """Paths of every block, e.g. ``layers.3.blocks.1``, in forward order."""
        return self.block_paths()

    def forward_attention(self, x: torch.Tensor, which=None) -> tuple[torch.Tensor, dict[str, FocalAttentionMaps]]:
        """Classify ``x`` and return the attention weights of the chosen blocks.

        ``which``: ``None`` for every block, or paths (``"layers.3.blocks.1"``) and/or ``(stage, block)`` pairs such
        as ``(-1, -1)``. Returns ``(logits, {path: FocalAttentionMaps})``. Nothing is stored on the model.
        """
        chosen = self._resolve_blocks(which, aliases=(".attn",))
        return self._forward_collecting(x, chosen, "", lambda blk, t: blk(t, return_attn=True))


# ---------------------------------------------------------------------------------------------------- checkpoints
def describe_checkpoint(sd: Mapping[str, torch.Tensor]) -> dict:
    """What a Focal Transformer v1 state dict was built as: dims, depths, heads, stem, and which blocks expand."""
    depths: dict[int, int] = {}
    for k in sd:
        parts = k.split(".")
        if len(parts) > 3 and parts[0] == "layers" and parts[2] == "blocks":
            i, j = int(parts[1]), int(parts[3])
            depths[i] = max(depths.get(i, 0), j + 1)
    n = max(depths) + 1 if depths else 0
    info = {
        "depths": [depths.get(i, 0) for i in range(n)],
        "embed_dim": sd["patch_embed.proj.weight"].shape[0] if "patch_embed.proj.weight" in sd else None,
        "use_conv_embed": (sd["patch_embed.proj.weight"].shape[-1] == 7) if "patch_embed.proj.weight" in sd else None,
        "num_heads": [],
        "expanding_blocks": [],
        "num_classes": sd["head.weight"].shape[0] if "head.weight" in sd else 0,
    }
    for i in range(n):
        t = sd.get(f"layers.{i}.blocks.0.attn.relative_position_bias_table")
        info["num_heads"].append(t.shape[1] if t is not None else None)
        for j in range(depths.get(i, 0)):
            if f"layers.{i}.blocks.{j}.attn.relative_position_bias_table_to_neighbors" in sd:
                info["expanding_blocks"].append(f"layers.{i}.blocks.{j}")
    return info


def check_focal_transformer_state_dict(
    model: FocalTransformer, sd: Mapping[str, torch.Tensor], ignore_head: bool = False
) -> None:
    """Raise a ``CheckpointError`` that says *why* ``sd`` does not fit ``model`` (variant, stem, resolution).

    ``ignore_head`` leaves classifier differences to the caller (``load_weights(..., drop_head=True)``).
    """
    from focalnet.weights.loading import CheckpointError

    def body(d: Mapping[str, torch.Tensor]) -> dict[str, tuple]:
        return {k: tuple(v.shape) for k, v in d.items() if not (ignore_head and k.startswith("head."))}

    own, theirs_shapes = body(model.state_dict()), body(sd)
    if own == theirs_shapes:
        return
    if "patch_embed.proj.weight" not in sd or not any(".attn.relative_position_bias_table" in k for k in sd):
        raise CheckpointError(
            "checkpoint is not a Focal Transformer (v1) state dict: no patch_embed.proj / attention bias tables"
        )
    if any(".attn.coord2rpb_all." in k or ".attn.topk_cloest_indice_" in k for k in sd):
        raise CheckpointError(
            "checkpoint is a Focal-fast (focal_transformer_v2) model; only the paper's v1 attention is implemented"
        )
    mine, theirs = describe_checkpoint(model.state_dict()), describe_checkpoint(sd)
    problems = []
    for key in ("embed_dim", "depths", "num_heads", "use_conv_embed"):
        if mine[key] != theirs[key]:
            problems.append(f"{key}: checkpoint {theirs[key]} vs model {mine[key]}")
    if not problems:
        extra = sorted(set(theirs["expanding_blocks"]) - set(mine["expanding_blocks"]))
        lacking = sorted(set(mine["expanding_blocks"]) - set(theirs["expanding_blocks"]))
        if extra:
            problems.append(
                f"the checkpoint has rolled-key bias tables (relative_position_bias_table_to_neighbors) in "
                f"{', '.join(extra)}: it was built for a larger resolution, where those stages are larger than one "
                f"{model.window_size}x{model.window_size} window; build the model with that img_size "
                f"(this model was built for {model.img_size[0]}x{model.img_size[1]})"
            )
        if lacking:
            problems.append(
                f"the checkpoint has no relative_position_bias_table_to_neighbors in {', '.join(lacking)}: it was "
                f"built for a resolution where those stages are <= {model.window_size}x{model.window_size} tokens "
                f"(e.g. 224 for stage 4), but this model was built for {model.img_size[0]}x{model.img_size[1]}; "
                "build it with the checkpoint's img_size (it still runs at any input size)"
            )
    if not problems and not ignore_head and mine["num_classes"] != theirs["num_classes"]:
        problems.append(
            f"classifier: checkpoint has {theirs['num_classes']} classes, model {mine['num_classes']} "
            "(use drop_head=True to fine-tune with another head)"
        )
    if not problems:
        missing = [k for k in own if k not in theirs_shapes]
        unexpected = [k for k in theirs_shapes if k not in own]
        shapes = [f"{k} {theirs_shapes[k]} vs {own[k]}" for k in own if theirs_shapes.get(k, own[k]) != own[k]]
        problems.append(f"missing {missing[:5]}, unexpected {unexpected[:5]}, mis-shaped {shapes[:5]}")
    raise CheckpointError("checkpoint does not fit this FocalTransformer: " + "; ".join(problems))


def to_canonical_focal_transformer(model: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original layout *is* ours (buffers included); only check the fit so mismatches get a specific error."""
    if isinstance(model, FocalTransformer):
        check_focal_transformer_state_dict(model, sd, ignore_head=True)
    return sd


def identify_focal_transformer(sd: Mapping[str, torch.Tensor]) -> str | None:
    """The registered variant a v1 state dict was built as (head aside, built for 224), or ``None``."""
    if "patch_embed.proj.weight" not in sd or not any(".attn.relative_position_bias_table" in k for k in sd):
        return None
    theirs = describe_checkpoint(sd)
    for name in _FT_VARIANTS:
        with torch.device("meta"):  # shapes only
            mine = describe_checkpoint(FocalTransformer(**_BASE, **_FT_VARIANTS[name][0], num_classes=0).state_dict())
        if all(mine[k] == theirs[k] for k in ("embed_dim", "depths", "num_heads", "use_conv_embed",
                                              "expanding_blocks")):
            return name
    return None


def _register_weights_hooks() -> None:
    """Plug into the weights package: strict loads get specific errors, error messages name the variant."""
    try:
        from focalnet.weights.convert import register_converter
        from focalnet.weights.identify import register_identifier
    except ImportError:  # optional hooks: without them load_weights still loads the original layout strictly
        return
    register_converter("FocalTransformer", to_canonical_focal_transformer)
    register_identifier(identify_focal_transformer)


# ---------------------------------------------------------------------------------------------------- variants
_SRC = "microsoft/Focal-Transformer classification/focal_transformer.py + configs (spec §4); params measured there"
_BASE = dict(
    patch_size=4,
    window_size=7,
    mlp_ratio=4.0,
    qkv_bias=True,
    focal_pool="fc",
    focal_stages=[0, 1, 2, 3],
    focal_levels=[2, 2, 2, 2],
    focal_windows=[7, 5, 3, 1],
    expand_sizes=[3, 3, 3, 3],
    expand_layer="all",
    img_size=224,
)
_URL = "https://projects4jw.blob.core.windows.net/model/focal-transformer/imagenet1k/"

_FT_VARIANTS = {
    # name: (kwargs, params @1000 classes, published GMACs, README top-1, checkpoint file)
    "focal_transformer_tiny": (dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], drop_path_rate=0.2),
                               28_880_380, 4.9, 82.2, "focal-tiny-is224-ws7.pth"),
    "focal_transformer_small": (dict(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24],
                                     drop_path_rate=0.3), 51_141_940, 9.4, 83.6, "focal-small-is224-ws7.pth"),
    "focal_transformer_base": (dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
                                    drop_path_rate=0.5), 89_815_400, 16.4, 84.0, "focal-base-is224-ws7.pth"),
    "focal_transformer_tiny_conv": (dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                                         use_conv_embed=True, drop_path_rate=0.2),
                                    30_825_244, 5.2, 82.7, "focal-tiny-useconv-is224-ws7.pth"),
    "focal_transformer_small_conv": (dict(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24],
                                          use_conv_embed=True, drop_path_rate=0.3),
                                     53_086_804, 9.7, 83.8, "focal-small-useconv-is224-ws7.pth"),
    "focal_transformer_base_conv": (dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
                                         use_conv_embed=True, drop_path_rate=0.5),
                                    93_268_712, 16.8, 84.2, "focal-base-useconv-is224-ws7.pth"),
}

for _name, (_kw, _params, _gmacs, _top1, _file) in _FT_VARIANTS.items():
    register_model(
        ModelSpec(
            name=_name,
            family="focal_transformer",
            builder=FocalTransformer,
            kwargs={**_BASE, **_kw},
            num_classes=1000,
            img_size=224,
            params=_params,
            gmacs=_gmacs,
            top1=_top1,
            source=_SRC,
            notes="released checkpoint links are dead (issues #8, #20, #24, #27)",
            extra={"checkpoint_file": _file},
        )
    )


def _register_weights() -> None:
    from focalnet.weights.records import WeightsRecord, register_weights

    for name, (_kw, _params, _gmacs, top1, file) in _FT_VARIANTS.items():
        register_weights(
            WeightsRecord(
                variant=name,
                tag="ms_in1k",
                urls=(),
                dead_urls=(_URL + file,),
                file_name=file,
                num_classes=1000,
                label_set="imagenet-1k",
                input_size=224,
                top1=top1,
                layout="original",
                available=False,
                notes=(
                    "the authors' Azure blob link is dead (ResourceNotFound / PublicAccessNotPermitted, issues #8, "
                    "#20, #24, #27) and no official mirror is known; a local copy of the file loads with "
                    "focalnet.load_weights(model, path)"
                ),
            )
        )


_register_weights()
_register_weights_hooks()
