"""Batches of supervised examples: right-padded to the longest in the batch, in length-grouped batches.

Padding goes on the right whatever the tokenizer's ``padding_side``, with the pad id (the end id
where the tokenizer has no pad token); padded positions are masked out of attention and labels, so
real end tokens keep their loss. Length grouping: a seeded shuffle, then within each window of
``batch_size * window`` examples, batches of similar lengths, served in a shuffled order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lightning_rectlaw.hf.encoding import Encoded


@dataclass(frozen=True)
class SFTCollator:
    """Collate :class:`Encoded` examples into a Hugging Face style dict batch.

    ``train_on_prompt``: a decoder-only model's labels cover every token, the prompt's too (the
    validation collator never sets it: validation scores the response only).
    """

    pad_id: int
    train_on_prompt: bool = False

    def __call__(self, examples: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        ids, attention = _pad([e.input_ids for e in examples], self.pad_id)
        if examples[0].labels is not None:  # encoder-decoder: the decoder's targets
            labels, _ = _pad([e.labels for e in examples], -100)
        else:
            masks, _ = _pad([e.loss_mask for e in examples], 0)
            scored = attention.bool() if self.train_on_prompt else masks.bool()
            labels = ids.masked_fill(~scored, -100)
        return {
            "input_ids": ids,
            "attention_mask": attention,
            "labels": labels,
            "num_bytes": torch.tensor([e.num_bytes for e in examples], dtype=torch.long),
        }


def _pad(rows: Sequence[Sequence[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows padded on the right to the longest, and the mask of real positions."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return out, mask


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of indices of similar lengths, in a seeded order that changes each epoch.

    Args:
        lengths: each example's length (the padding it would cause is what grouping saves).
        batch_size: examples per batch; drop_last: drop a last, smaller batch (default False).
        seed: seed of the shuffles; the ``n``-th pass over the data uses ``(seed, n)``.
        window: batches per window of examples sorted by length (default 50); larger windows pad
            less and mix lengths less.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        drop_last: bool = False,
        window: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be at least 1, got {batch_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.seed, self.drop_last, self.window = (
            int(batch_size),
            int(seed),
            drop_last,
            window,
        )
        self.epoch = 0

    def for_subset(self, indices: Sequence[int], seed: int | None = None) -> LengthGroupedBatchSampler:
        """The same grouping over ``indices`` (positions 0..n-1 of a ``Subset`` of them)."""
        lengths = self.lengths[np.asarray(indices, dtype=np.int64)]
        return LengthGroupedBatchSampler(
            lengths, self.batch_size, self.seed if seed is None else seed, self.drop_last, self.window
        )

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        order = rng.permutation(len(self.lengths))
        span = self.batch_size * self.window
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        for i in rng.permutation(len(batches)):
            yield batches[i].tolist()

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def validation_loader(
    data: Dataset,
    batch_size: int,
    collate: Callable | None = None,
    lengths: Sequence[int] | None = None,
    **kw,
) -> DataLoader:
    """A validation loader that scores each example once. Under DDP each rank gets its own share
    with no example repeated (Lightning's default sampler repeats some to even out the ranks,
    which would count them twice in summed metrics such as ``val_bpb``); on one device, batches
    of similar ``lengths`` when given (less padding; sums do not depend on the order)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

        sampler = UnrepeatedDistributedSampler(data, shuffle=False)
        return DataLoader(data, batch_size=batch_size, sampler=sampler, collate_fn=collate, **kw)
    if lengths is None:
        return DataLoader(data, batch_size=batch_size, collate_fn=collate, **kw)
    order = np.argsort(np.asarray(lengths), kind="stable").tolist()
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return DataLoader(data, batch_sampler=batches, collate_fn=collate, **kw)
