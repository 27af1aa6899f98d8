r"""Trees, and many trees batched level by level.

A :class:`Tree` is a label and an ordered tuple of children: a leaf carries a token (a digit, a
word), an internal node an operator or a constituent label. Its *height* is the number of
compositions on the longest path from a leaf to it: 0 for a leaf, 1 + the largest height of its
children otherwise.

**Level batching.** A recursive network computes a node from its children, so the nodes of one
height depend only on nodes of smaller heights. :class:`TreeBatch` numbers the nodes of B trees
level by level (all leaves first, then every node of height 1, then height 2, ...), so that the
nodes of one level are one contiguous block, and records for each node the numbers of its
children. A network then makes ONE batched composition per level, however many trees there are:

    for level l = 0 .. L:                                  (L = the tallest tree's height)
        children = states[child numbers of level l]        gather   (M_l, N, H)
        new      = compose(x[level l], children)           compose  (M_l, H)
        states   = [states; new]                           scatter: the level's block is next

Number 0 is no node: a zero state that stands for a missing child (every child slot of a leaf,
the second slot of a unary node), so no masking is needed.

Shapes of a batch of B trees with N nodes in all, at most ``arity`` (N_c) children per node:
``labels`` (N + 1,) int64 (entry 0 unused), ``levels`` a list of :class:`Level` whose
``children`` is (M_l, N_c) int64, ``roots`` (B,), ``heights`` (B,).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Mapping, NamedTuple, Optional, Sequence, Tuple

import torch

from ..errors import DataError


@dataclass(frozen=True)
class Tree:
    """A node: ``label`` and its ordered ``children`` (none for a leaf). ``height`` and ``size``
    (the number of nodes) are computed once, without recursion."""
    label: str
    children: Tuple["Tree", ...] = ()
    height: int = field(init=False, compare=False, repr=False)
    size: int = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "children", tuple(self.children))
        for child in self.children:
            if not isinstance(child, Tree):
                raise TypeError(f"a Tree's children are Trees, found {type(child).__name__}")
        object.__setattr__(self, "height", 1 + max((c.height for c in self.children), default=-1))
        object.__setattr__(self, "size", 1 + sum(c.size for c in self.children))

    @property
    def is_leaf(self) -> bool:
        return not self.children


def postorder(tree: Tree) -> List[Tree]:
    """The nodes of ``tree``, every node after its children (left to right), without recursion."""
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    return out[::-1]


class Level(NamedTuple):
    """One level of a :class:`TreeBatch`: nodes ``start .. end - 1`` all have height ``height``;
    ``children`` (M, N_c) holds the numbers of their children (0: no child)."""
    height: int
    start: int
    end: int
    children: torch.Tensor


class Nodes(NamedTuple):
    """B trees as tensors, for a graph (export) whose loop over levels stays one construct: nodes
    numbered 1 .. N, ``labels`` (N,) int64 the label index of node n at [n - 1], ``children``
    (N, N_c) int64 the numbers of its children (0: none), ``levels`` (L, M) int64 the nodes in
    the order they are composed, a row at a time (0 pads a row; every node once, each row's
    children in earlier rows: TreeBatch's levels, or (N, 1) a node a row in postorder), ``roots``
    (B,) each tree's root number (or None)."""
    labels: torch.Tensor
    children: torch.Tensor
    levels: torch.Tensor
    roots: Optional[torch.Tensor] = None

    @property
    def arity(self) -> int:
        return self.children.shape[1]


@dataclass
class TreeBatch:
    """B trees with their nodes numbered level by level (module docstring)."""
    labels: torch.Tensor               # (N + 1,) int64, the label index of node n at [n]
    levels: List[Level]
    roots: torch.Tensor                # (B,) the number of each tree's root
    heights: torch.Tensor              # (B,) each tree's height
    arity: int

    @classmethod
    def from_trees(cls, trees: Sequence[Tree], index: Mapping[str, int], arity: int = 2) -> "TreeBatch":
        """Number the nodes of ``trees`` level by level; ``index`` maps a label to its index.

        A label ``index`` does not know, or a node with more than ``arity`` children, is a
        DataError naming it.
        """
        if not trees:
            raise DataError("expected at least one tree to batch, found none")
        # each node occurrence goes to the bucket of its height, as (height, place in the bucket)
        labels_at: List[List[int]] = []            # labels_at[h]: label indices of the height-h nodes
        children_at: List[List[list]] = []         # children_at[h]: their children's (height, place)
        root_refs = []
        for tree in trees:
            refs: List[Tuple[int, int]] = []       # the nodes done, whose parent is not yet
            for node in postorder(tree):           # children, left to right, before their parent
                k = len(node.children)
                if k > arity:
                    raise DataError(f"expected at most {arity} children per node, found {k} "
                                    f"under {node.label!r}")
                if node.label not in index:
                    raise DataError(f"expected a label among {', '.join(map(repr, index))}; "
                                    f"found {node.label!r}")
                h = node.height
                while len(labels_at) <= h:
                    labels_at.append([])
                    children_at.append([])
                kids = refs[len(refs) - k:] if k else []
                del refs[len(refs) - k:]
                refs.append((h, len(labels_at[h])))
                labels_at[h].append(index[node.label])
                children_at[h].append(kids)
            root_refs.append(refs[0])
        offset, levels = [], []
        for h, bucket in enumerate(labels_at):     # number the nodes level by level, from 1
            offset.append(1 + sum(len(b) for b in labels_at[:h]))
            rows = [[offset[ch] + ci for ch, ci in kids] + [0] * (arity - len(kids))
                    for kids in children_at[h]]
            levels.append(Level(h, offset[h], offset[h] + len(bucket),
                                torch.tensor(rows, dtype=torch.int64).view(len(bucket), arity)))
        labels = torch.tensor([0] + [i for bucket in labels_at for i in bucket], dtype=torch.int64)
        return cls(labels, levels, torch.tensor([offset[h] + i for h, i in root_refs]),
                   torch.tensor([t.height for t in trees]), arity)

    @property
    def num_nodes(self) -> int:
        return len(self.labels) - 1

    def nodes(self, width: int = 32) -> "Nodes":
        """The same trees as :class:`Nodes`, each level's nodes in rows of at most ``width``
        (a graph computes every row as wide as the widest: docs/export.md)."""
        rows = [torch.arange(start, min(start + width, lv.end))
                for lv in self.levels for start in range(lv.start, lv.end, width)]
        levels = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)              # (L, M)
        return Nodes(self.labels[1:], torch.cat([lv.children for lv in self.levels]), levels, self.roots)

    def to(self, device) -> "TreeBatch":
        return TreeBatch(self.labels.to(device),
                         [Level(lv.height, lv.start, lv.end, lv.children.to(device)) for lv in self.levels],
                         self.roots.to(device), self.heights.to(device), self.arity)
