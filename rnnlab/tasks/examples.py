"""The trainer protocol for tasks over independent examples: sentences, sentence pairs, windows of
a series, scenes, chorales.

Each epoch the training examples are shuffled by a generator seeded from (seed, epoch), cut into
pools of ``POOL`` batches, sorted by length within a pool (so a batch holds sequences of similar
length and little padding) and split into batches whose order is shuffled again. The order is a
function of (seed, epoch) alone, so a resumed run sees exactly the batches the uninterrupted one
would have: nothing needs to be carried across updates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..training.config import TrainConfig
from ..training.distributed import shard

#: batches sorted together by length
POOL = 50


@dataclass
class BatchLoss:
    """What a task computes for a batch: the tensor to backpropagate, the summed loss (a float),
    how many predictions it covers, and additive counts for the metrics."""
    objective: torch.Tensor
    loss_sum: float
    count: int
    stats: Dict[str, float] = field(default_factory=dict)


def pad(sequences: Sequence[torch.Tensor], value=0) -> Tuple[torch.Tensor, torch.Tensor]:
    """B tensors (T_b, ...) -> (T, B, ...) padded with ``value``, and (B,) int64 lengths."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    T = int(lengths.max()) if len(sequences) else 0
    first = sequences[0]
    out = first.new_full((T, len(sequences)) + tuple(first.shape[1:]), value)    # (T, B, ...)
    for b, s in enumerate(sequences):
        out[:len(s), b] = s
    return out, lengths


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> List[List[int]]:
    """Indices of the examples of each batch of an epoch (see the module docstring)."""
    n = len(lengths)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    batches: List[List[int]] = []
    pool = POOL * batch_size
    for start in range(0, n, pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    shuffled = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in shuffled]


def eval_batches(lengths: Sequence[int], batch_size: int) -> List[List[int]]:
    """Every example once, in batches of similar length (order does not change the sums)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class ExampleTask:
    """Base of the tasks over independent examples (trainer protocol in docs/training.md).

    Subclasses set ``self.splits`` ({"train", "valid", "test"} -> lists of examples), ``self.assets``
    and implement ``length``, ``batch_loss`` and ``metrics``.
    """

    def __init__(self, splits: Dict[str, List[Any]], config: TrainConfig, assets=None):
        self.splits = {s: list(splits.get(s) or []) for s in ("train", "valid", "test")}
        self.config = config
        self.assets = assets
        self._lengths: Dict[str, List[int]] = {}
        self._batches: Optional[List[List[int]]] = None
        self._epoch = None

    # what a task defines ------------------------------------------------------
    def length(self, example) -> int:
        return 1

    def batch_loss(self, model, examples: List[Any], train: bool) -> BatchLoss:
        raise NotImplementedError(f"{type(self).__name__} defines no batch_loss()")

    def metrics(self, loss_sum: float, count: int, stats: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        return {"loss": loss_sum / max(count, 1)}

    # trainer protocol -----------------------------------------------------------
    def lengths(self, split: str) -> List[int]:
        if split not in self._lengths:
            self._lengths[split] = [self.length(e) for e in self.splits[split]]
        return self._lengths[split]

    def batches(self, epoch: int) -> List[List[int]]:
        if self._epoch != epoch:
            self._batches = epoch_batches(self.lengths("train"), self.config.batch_size,
                                          self.config.seed, epoch)
            self._epoch = epoch
        return self._batches

    def num_batches(self, epoch: int) -> int:
        return len(self.batches(epoch))

    def start_epoch(self, epoch: int) -> None:
        self.batches(epoch)

    def train_step(self, model, epoch: int, index: int):
        """Batch ``index`` of the epoch; under distributed training this process's part of it
        (a process left with no example computes on one and weights it zero, so that every
        process runs the same collectives)."""
        batch = self.batches(epoch)[index]
        mine = shard(batch)
        examples = [self.splits["train"][i] for i in (mine or batch[:1])]
        out = self.batch_loss(model, examples, train=True)
        if not mine:
            return out.objective * 0.0, torch.tensor(0.0), 0
        return out.objective, torch.tensor(out.loss_sum), out.count

    @torch.no_grad()
    def evaluate(self, model, split: str) -> Optional[Dict[str, float]]:
        return self.evaluate_examples(model, self.splits.get(split) or [])

    @torch.no_grad()
    def evaluate_examples(self, model, examples: List[Any]) -> Optional[Dict[str, float]]:
        """The task's metrics over ``examples`` (None if there are none), the model in eval mode."""
        if not examples:
            return None
        was_training = model.training
        model.eval()
        try:
            total, count, stats = 0.0, 0, {}
            lengths = [self.length(e) for e in examples]
            for idx in eval_batches(lengths, self.eval_batch_size()):
                out = self.batch_loss(model, [examples[i] for i in idx], train=False)
                total += float(out.loss_sum)
                count += out.count
                for k, v in out.stats.items():
                    stats[k] = stats.get(k, 0) + v
            return self.metrics(total, count, stats)
        finally:
            model.train(was_training)

    def eval_batch_size(self) -> int:
        """Examples per evaluation batch: the training batch size, unless set larger."""
        return max(self.config.batch_size, self.config.eval_batch_size)

    def carry(self) -> Dict[str, torch.Tensor]:
        return {}

    def load_carry(self, tensors: Dict[str, torch.Tensor]) -> None:
        pass
