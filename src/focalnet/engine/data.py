"""Task-agnostic data plumbing of the engine: the global batch sampler and per-sample seeding.

Determinism is what makes a resumed or distributed run reproduce a single uninterrupted one: the order of samples
depends only on ``(seed, epoch)`` (:class:`GlobalBatchSampler`) and the randomness of loading one sample
(augmentation of any kind: crops, flips, scale jitter) only on ``(seed, epoch, index)`` (:class:`SeededDataset`),
never on the number of processes, loader workers, or where a run was interrupted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from focalnet.errors import FocalnetError

__all__ = ["DataError", "SeededDataset", "GlobalBatchSampler", "move_to"]


class DataError(FocalnetError, ValueError):
    """A data set is empty, mislaid or inconsistent; the message says which folder or file."""


class SeededDataset(Dataset):
    """Loads ``base[i]`` (then ``transform(sample)`` if given) with the Python, NumPy and torch RNGs seeded from
    ``(seed, epoch, i)``; the caller's RNG states are restored afterwards, so model-side randomness (drop path,
    dropout, mixup) in the training loop is not disturbed when loading happens in the main process."""

    def __init__(self, base: Dataset, seed: int = 0, transform: Callable[[Any], Any] | None = None) -> None:
        self.base, self.seed, self.transform, self.epoch = base, seed, transform, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:  # datasets' own attributes (classes, categories, ...) stay visible
        if name == "base" or name.startswith("__"):  # never forward protocols (Subset probes __getitems__)
            raise AttributeError(name)
        return getattr(self.base, name)

    def __getitem__(self, i: int):
        s = (self.seed * 1_000_003 + self.epoch * 10_007 + int(i)) % (2**31)
        py, npy, th = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)
            sample = self.base[i]
            return self.transform(sample) if self.transform is not None else sample
        finally:
            random.setstate(py)
            np.random.set_state(npy)
            torch.set_rng_state(th)


class GlobalBatchSampler(Sampler[list[int]]):
    """Yields this process's micro-batches so that every optimizer step sees the same *global* batch whatever
    the number of processes or accumulation steps.

    Per epoch, the indices are permuted with a generator seeded by ``seed + epoch``; consecutive blocks of
    ``batch_size * world_size * accum_steps`` indices form one optimizer step; micro-step ``m`` of rank ``r`` gets
    the ``(m * world_size + r)``-th slice of ``batch_size``. The incomplete last step is dropped (as the original
    did with ``drop_last=True``). ``start`` skips micro-batches already consumed before a mid-epoch resume.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        world_size: int = 1,
        rank: int = 0,
        accum_steps: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        self.n, self.batch_size, self.world_size, self.rank = n, batch_size, world_size, rank
        self.accum_steps, self.seed, self.shuffle = accum_steps, seed, shuffle
        self.epoch, self.start = 0, 0
        self.global_batch = batch_size * world_size * accum_steps
        if n < self.global_batch:
            raise DataError(
                f"the training set has {n} samples, fewer than one global batch of {self.global_batch} "
                f"(batch size {batch_size} x {world_size} processes x {accum_steps} accumulation steps)"
            )

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.global_batch

    def __len__(self) -> int:
        return self.steps_per_epoch * self.accum_steps - self.start

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        b = self.batch_size
        for m in range(self.start, self.steps_per_epoch * self.accum_steps):
            step, micro = divmod(m, self.accum_steps)
            off = step * self.global_batch + (micro * self.world_size + self.rank) * b
            yield order[off : off + b]


def move_to(obj: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Tensors anywhere in nested lists / tuples / dicts moved to ``device`` (4-D float tensors made channels-last
    on request)."""
    if isinstance(obj, torch.Tensor):
        t = obj.to(device, non_blocking=True)
        if channels_last and t.ndim == 4 and t.is_floating_point():
            t = t.contiguous(memory_format=torch.channels_last)
        return t
    if isinstance(obj, dict):
        return {k: move_to(v, device, channels_last) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device, channels_last) for v in obj)
    return obj
