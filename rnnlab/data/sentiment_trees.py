r"""Sentences as binary trees with a label on every node, in the bracketed form of the Stanford
Sentiment Treebank: ``(3 (2 The) (4 fine))``, one tree per line.

A node is ``(LABEL WORD)`` (a leaf: one word) or ``(LABEL CHILD ...)`` (a phrase: one or more
bracketed children, at most ``arity``); LABEL is a whole number 0 .. classes - 1 (SST: 0 very
negative .. 4 very positive). Words hold no brackets (the treebank writes ``-LRB-``) and are
separated by spaces or tabs only: every other character, U+0085 and U+2028 included, belongs to
its word, as lines are split at ``\n`` only (:mod:`rnnlab.data.lines`).

A tree is kept as a :class:`LabelledTree`: two :class:`~rnnlab.recursive.tree.Tree` of one shape,
``words`` (a leaf's label its word, a phrase's the empty string ``PHRASE``) and ``labels`` (every
node's class as text, ``"0"`` .. ``"4"``), so that both number their nodes alike in a
:class:`~rnnlab.recursive.tree.TreeBatch`.

A plain sentence (no brackets) becomes a balanced binary tree over its words
(:func:`balanced_tree`): the words halved, the left half the larger, down to single words.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..errors import DataError
from ..recursive.tree import Tree, postorder
from .corpus import read_text, split_files
from .lines import split_lines

#: the word of a phrase (an internal node), which has none
PHRASE = ""
#: characters that separate words and brackets (no other whitespace does)
SEPARATORS = " \t"


class LabelledTree(NamedTuple):
    """One sentence: its tree of words and the same tree of labels (module docstring)."""
    words: Tree
    labels: Tree

    @property
    def leaves(self) -> List[str]:
        """The words, left to right."""
        return [n.label for n in postorder(self.words) if n.is_leaf]

    @property
    def root(self) -> int:
        return int(self.labels.label)


def _tokens(line: str) -> List[Tuple[str, int]]:
    """(token, column from 1): '(' and ')' alone, words between separators."""
    out, i, n = [], 0, len(line)
    while i < n:
        ch = line[i]
        if ch in SEPARATORS:
            i += 1
        elif ch in "()":
            out.append((ch, i + 1))
            i += 1
        else:
            j = i
            while j < n and line[j] not in SEPARATORS and line[j] not in "()":
                j += 1
            out.append((line[i:j], i + 1))
            i = j
    return out


def parse_tree(line: str, where: str, classes: int = 5, arity: int = 2) -> LabelledTree:
    """The tree of one bracketed line; a DataError naming ``where`` and the column otherwise
    (unbalanced brackets, a missing or out-of-range label, a leaf of two words, too many children).
    Iterative: no depth limit."""
    tokens = _tokens(line)
    if not tokens:
        raise DataError(f"{where}: expected a bracketed tree such as (3 (2 The) (4 fine)), found an "
                        f"empty line")
    # each open node: [label, column, word or None, children (words, labels) pairs]
    stack: List[list] = []
    done: Optional[LabelledTree] = None
    i = 0
    while i < len(tokens):
        token, col = tokens[i]
        if done is not None:
            what = "')'" if token == ")" else repr(token)
            raise DataError(f"{where}: expected the end of the line after the tree closed, found "
                            f"{what} at column {col} (unbalanced brackets)")
        if token == "(":
            label = tokens[i + 1] if i + 1 < len(tokens) else None
            if label is None or label[0] in "()" or not label[0].isdigit() or not label[0].isascii():
                found = "the end of the line" if label is None else f"{label[0]!r} at column {label[1]}"
                raise DataError(f"{where}: expected a label 0-{classes - 1} after '(' at column {col}, "
                                f"found {found}")
            if int(label[0]) >= classes:
                raise DataError(f"{where}: expected a label 0-{classes - 1}, found {label[0]} at "
                                f"column {label[1]}")
            stack.append([str(int(label[0])), col, None, []])
            i += 2
            continue
        if not stack:
            what = "')'" if token == ")" else repr(token)
            raise DataError(f"{where}: expected '(' opening a tree, found {what} at column {col}"
                            f"{' (unbalanced brackets)' if token == ')' else ''}")
        node = stack[-1]
        if token == ")":
            label, opened, word, children = stack.pop()
            if word is None and not children:
                raise DataError(f"{where}: expected a word or subtrees in the node opened at column "
                                f"{opened}, found ')' at column {col}")
            if word is not None:
                pair = (Tree(word), Tree(label))
            else:
                pair = (Tree(PHRASE, tuple(c[0] for c in children)), Tree(label, tuple(c[1] for c in children)))
            if stack:
                parent = stack[-1]
                if parent[2] is not None:
                    raise DataError(f"{where}: expected a leaf of one word or a phrase of subtrees in "
                                    f"the node opened at column {parent[1]}, found both")
                if len(parent[3]) == arity:
                    raise DataError(f"{where}: expected at most {arity} children in the node opened "
                                    f"at column {parent[1]}, found more")
                parent[3].append(pair)
            else:
                done = LabelledTree(*pair)
        else:
            if node[2] is not None:
                raise DataError(f"{where}: expected one word in the leaf opened at column {node[1]}, "
                                f"found {token!r} at column {col} after {node[2]!r}")
            if node[3]:
                raise DataError(f"{where}: expected a leaf of one word or a phrase of subtrees in the "
                                f"node opened at column {node[1]}, found both")
            node[2] = token
        i += 1
    if stack:
        raise DataError(f"{where}: expected ')' closing the node opened at column {stack[-1][1]}, "
                        f"found the end of the line (unbalanced brackets)")
    return done


def tree_text(tree: LabelledTree) -> str:
    """The bracketed text of ``tree``, as the treebank writes it (:func:`parse_tree` reads it back)."""
    parts: List[str] = []
    stack: List[object] = [(tree.words, tree.labels)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        words, labels = item
        if words.is_leaf:
            parts.append(f"({labels.label} {words.label})")
            continue
        parts.append(f"({labels.label}")
        stack.append(")")
        for pair in reversed(list(zip(words.children, labels.children))):
            stack.append(pair)
            stack.append(" ")
    return "".join(parts)


def balanced_tree(words: Sequence[str], label: str = "0") -> Tree:
    """A balanced binary tree over ``words`` (at least one), every node labelled ``label`` at its
    leaves and ``PHRASE`` above: the words halved (the left half the larger), down to single words."""
    if not words:
        raise DataError("expected at least one word to build a tree of, found none")
    level = [Tree(w) for w in words]

    def build(lo: int, hi: int) -> Tree:       # depth log2(n): recursion is shallow
        if hi - lo == 1:
            return level[lo]
        mid = lo + (hi - lo + 1) // 2
        return Tree(PHRASE, (build(lo, mid), build(mid, hi)))
    return build(0, len(level))


def label_tree(words: Tree, label: str) -> Tree:
    """A tree of the shape of ``words`` with every node labelled ``label``."""
    built: Dict[int, Tree] = {}
    for node in postorder(words):
        built[id(node)] = Tree(label, tuple(built[id(c)] for c in node.children))
    return built[id(words)]


def is_bracketed(line: str) -> bool:
    """Whether a line is a bracketed tree (its first character, past separators, is '(')."""
    return line.lstrip(SEPARATORS).startswith("(")


def read_trees(path, classes: int = 5, arity: int = 2, encoding: str = "utf-8") -> List[LabelledTree]:
    """The trees of a file, one per line (blank lines skipped); a DataError naming the file and
    line of the first malformed one, or a file without trees."""
    lines = split_lines(read_text(path, encoding))
    trees = [parse_tree(line, f"{path}:{n}", classes, arity)
             for n, line in enumerate(lines, 1) if line.strip(SEPARATORS + "\r")]
    if not trees:
        raise DataError(f"{path}: expected bracketed trees, one per line, found none")
    return trees


def read_tree_splits(path, classes: int = 5, arity: int = 2,
                     encoding: str = "utf-8") -> Dict[str, List[LabelledTree]]:
    """{"train", "valid"?, "test"?}: a folder's files named by split (SST: train.txt, dev.txt,
    test.txt), or one file (train)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"expected a folder of bracketed trees (train, dev, test files) at {p}; "
                        f"nothing is there")
    if p.is_dir():
        return {k: read_trees(f, classes, arity, encoding) for k, f in split_files(p).items()}
    return {"train": read_trees(p, classes, arity, encoding)}
