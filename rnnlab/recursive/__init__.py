"""Recursive (tree-structured) networks (Goodfellow et al. 10.6): trees, level-by-level batching,
the plain recursive composition and the N-ary Tree-LSTM."""
from .cells import COMPOSITIONS, RecursiveCell, TreeLSTMCell
from .network import TreeNetwork
from .tree import Level, Nodes, Tree, TreeBatch, postorder

__all__ = ["COMPOSITIONS", "Level", "Nodes", "RecursiveCell", "Tree", "TreeBatch", "TreeLSTMCell",
           "TreeNetwork", "postorder"]
