r"""Reading word vectors: nearest neighbours, vector arithmetic, a 2-D PCA picture, and two checks
that need no outside data.

- Cosine similarity: cos(a, b) = a . b / (|a| |b|); the neighbours of a word are the words of
  highest cosine with it (the word itself excluded).
- Arithmetic: the query ``a - b + c`` is the vector v_a - v_b + v_c of the unit-length vectors;
  its neighbours exclude a, b and c.
- PCA to 2-D: X (n, D) centred, X_c = X - 1 mean(X); the SVD X_c = U S V^T; the coordinates
  X_c V_{:, :2}, each axis signed so that its largest loading is positive. The share of variance
  an axis shows is s_k^2 / sum_j s_j^2.
- Group precision@k: for word lists of one kind (months, days of the week, numbers, ...), the mean
  over the listed words of the share of their k nearest neighbours (in the whole vocabulary) that
  are in their own list. Random vectors score about (|g| - 1) / (N - 1), far below 0.01.
- Neighbour overlap@k between two embeddings of the same vocabulary: the mean over words of
  |N_k^A(w) & N_k^B(w)| / k.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch.nn import functional as F

from ..data.vocabulary import Vocabulary
from ..errors import DataError

#: word lists of one kind each, as the Penn Treebank writes them (lower case; ``may`` is left out
#: of the months, being mostly the verb); the pictures and the group precision use them
PTB_GROUPS: Dict[str, Tuple[str, ...]] = {
    "numbers": ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    "months": ("january", "february", "march", "april", "june", "july", "august", "september",
               "october", "november", "december"),
    "days": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    "amounts": ("hundred", "thousand", "million", "billion", "trillion"),
    "companies": ("inc.", "corp.", "co.", "ltd.", "company", "companies", "firm", "bank"),
    "price moves": ("rose", "fell", "gained", "dropped", "declined", "increased", "jumped",
                    "climbed", "slipped"),
    "pronouns": ("he", "she", "they", "we", "i", "it"),
    "currencies": ("dollar", "yen", "mark", "pound"),
}

#: words whose neighbours the benchmark and the docs print
QUERY_WORDS = ("monday", "june", "three", "billion", "inc.", "rose", "she", "yen", "stocks", "said")


def unit_rows(vectors: torch.Tensor) -> torch.Tensor:
    """(N, D) the rows scaled to unit length, in float64 (zero rows stay zero)."""
    return F.normalize(vectors.detach().double(), dim=1)


def word_ids(vocab: Vocabulary, words: Sequence[str], where: str = "query") -> List[int]:
    """The indices of ``words``; a DataError naming the first unknown word."""
    out = []
    for w in words:
        if w not in vocab.index:
            raise DataError(f"{where}: {w!r} is not in the vocabulary ({len(vocab)} words)")
        out.append(vocab.index[w])
    return out


def nearest(vectors: torch.Tensor, query: torch.Tensor, k: int,
            exclude: Sequence[int] = ()) -> List[Tuple[int, float]]:
    """The k rows of highest cosine with ``query`` (D,), as (index, cosine), best first."""
    unit = unit_rows(vectors)                                              # (N, D)
    q = F.normalize(query.detach().double(), dim=0)                        # (D,)
    cos = unit @ q                                                         # (N,)
    if len(exclude):
        cos[torch.tensor(list(exclude))] = -float("inf")
    k = min(k, int(torch.isfinite(cos).sum()))
    top = torch.topk(cos, k)
    return [(int(i), float(c)) for c, i in zip(top.values, top.indices)]


def neighbours(vectors: torch.Tensor, vocab: Vocabulary, word: str, k: int = 10,
               exclude: Sequence[int] = ()) -> List[Tuple[str, float]]:
    """The k nearest words of ``word`` by cosine, as (word, cosine); ``exclude``: indices never
    listed (e.g. words the training text never showed)."""
    i = word_ids(vocab, [word])[0]
    return [(vocab.symbols[j], c) for j, c in nearest(vectors, vectors[i], k, exclude=[i, *exclude])]


def parse_query(line: str, where: str = "query") -> List[Tuple[int, str]]:
    """``a - b + c`` (or one word) as [(+1, a), (-1, b), (+1, c)]; words side by side add up."""
    terms, sign, pending = [], 1, False
    for token in line.split():
        if token in ("+", "-"):
            if pending:
                break
            sign, pending = (1 if token == "+" else -1), True
            continue
        terms.append((sign, token))
        sign, pending = 1, False
    else:
        if terms and not pending:
            return terms
    raise DataError(f"{where}: expected a word or 'a - b + c', found {line!r}")


def query_neighbours(vectors: torch.Tensor, vocab: Vocabulary, line: str, k: int = 10,
                     where: str = "query", exclude: Sequence[int] = ()) -> List[Tuple[str, float]]:
    """The k nearest words of a query line (a word, or arithmetic ``a - b + c`` of unit vectors),
    the query's own words and ``exclude`` left out."""
    terms = parse_query(line, where)
    ids = word_ids(vocab, [w for _, w in terms], where)
    unit = unit_rows(vectors)
    q = sum(s * unit[i] for (s, _), i in zip(terms, ids))                  # (D,)
    return [(vocab.symbols[j], c) for j, c in nearest(vectors, q, k, exclude=[*ids, *exclude])]


def pca_2d(points: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(n, 2) coordinates of (n, D) points on their two principal axes, and (2,) the share of the
    variance each axis shows (module docstring)."""
    X = points.detach().double()
    Xc = X - X.mean(0, keepdim=True)                                       # (n, D) centred
    _, S, Vh = torch.linalg.svd(Xc, full_matrices=False)                   # Vh (r, D)
    axes = Vh[:2]                                                          # (2, D)
    signs = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))  # (2, 1)
    axes = axes * torch.where(signs == 0, torch.ones_like(signs), signs)
    share = S[:2] ** 2 / (S ** 2).sum().clamp(min=1e-300)
    coords = Xc @ axes.T                                                   # (n, 2)
    if coords.shape[1] < 2:                                                # one point, or D = 1
        coords = torch.cat([coords, coords.new_zeros(len(X), 2 - coords.shape[1])], 1)
        share = torch.cat([share, share.new_zeros(2 - share.numel())])
    return coords, share


def present_groups(vocab: Vocabulary, groups: Mapping[str, Sequence[str]] = PTB_GROUPS,
                   min_size: int = 2) -> Dict[str, List[str]]:
    """The words of each group found in the vocabulary; groups with fewer than ``min_size``
    left out."""
    found = {name: [w for w in words if w in vocab.index] for name, words in groups.items()}
    return {name: words for name, words in found.items() if len(words) >= min_size}


def group_precision(vectors: torch.Tensor, vocab: Vocabulary,
                    groups: Optional[Mapping[str, Sequence[str]]] = None, k: int = 5) -> Dict[str, float]:
    """Group precision@k of each group present (module docstring) and their mean over all the
    listed words (``"all"``); empty when no group is present."""
    groups = present_groups(vocab, PTB_GROUPS if groups is None else groups)
    unit = unit_rows(vectors)
    out, hits, total = {}, 0.0, 0
    for name, words in groups.items():
        ids = word_ids(vocab, words)
        members = torch.zeros(len(vocab), dtype=torch.bool)
        members[torch.tensor(ids)] = True
        cos = unit[ids] @ unit.T                                           # (g, N)
        cos[torch.arange(len(ids)), torch.tensor(ids)] = -float("inf")
        top = torch.topk(cos, min(k, len(vocab) - 1), dim=1).indices       # (g, k)
        share = members[top].double().mean(1)                              # (g,)
        out[name] = float(share.mean())
        hits += float(share.sum())
        total += len(ids)
    if total:
        out["all"] = hits / total
    return out


def neighbour_overlap(a: torch.Tensor, b: torch.Tensor, ids: Sequence[int], k: int = 10) -> float:
    """Neighbour overlap@k of two (N, D_a), (N, D_b) embeddings of one vocabulary over the words
    ``ids`` (module docstring)."""
    ids_t = torch.tensor(list(ids))
    sets = []
    for vectors in (a, b):
        unit = unit_rows(vectors)
        cos = unit[ids_t] @ unit.T                                         # (n, N)
        cos[torch.arange(len(ids_t)), ids_t] = -float("inf")
        sets.append(torch.topk(cos, k, dim=1).indices)                     # (n, k)
    same = (sets[0].unsqueeze(2) == sets[1].unsqueeze(1)).any(2)           # (n, k)
    return float(same.double().mean())
