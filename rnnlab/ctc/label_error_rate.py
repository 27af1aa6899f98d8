r"""The label error rate of decoded labellings: the edit distance to the true labelling, summed
over the sequences and divided by the number of true labels,

    LER = sum_n ED(l^_n, l_n) / sum_n |l_n|,

where ED(a, b), the Levenshtein distance, is the least number of insertions, deletions and
substitutions that turn a into b:

    D(i, 0) = i,   D(0, j) = j,
    D(i, j) = min(D(i-1, j) + 1, D(i, j-1) + 1, D(i-1, j-1) + [a_i != b_j]),   ED = D(|a|, |b|).

It can exceed 1 when the decoder inserts many labels.
"""
from __future__ import annotations

from typing import Sequence, Tuple


def edit_distance(a: Sequence, b: Sequence) -> int:
    """The Levenshtein distance between the sequences ``a`` and ``b`` (module docstring)."""
    previous = list(range(len(b) + 1))                                     # D(i - 1, .)
    for i, x in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
        previous = current
    return previous[-1]


def label_errors(decoded: Sequence[Sequence], targets: Sequence[Sequence]) -> Tuple[int, int]:
    """(summed edit distance, number of true labels): the two sums of the LER."""
    if len(decoded) != len(targets):
        raise ValueError(f"{len(decoded)} decoded labellings for {len(targets)} targets")
    return (sum(edit_distance(d, t) for d, t in zip(decoded, targets)),
            sum(len(t) for t in targets))


def label_error_rate(decoded: Sequence[Sequence], targets: Sequence[Sequence]) -> float:
    """LER (module docstring); 0 when there are no true labels and nothing was decoded."""
    errors, total = label_errors(decoded, targets)
    return errors / total if total else float(errors > 0)
