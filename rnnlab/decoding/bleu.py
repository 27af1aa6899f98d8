"""Corpus BLEU of decoded text against the references of each output, computed by sacrebleu.

BLEU = BP * exp(sum_n 1/4 log p_n), p_n the clipped n-gram precisions (n = 1..4) over the whole
corpus, BP = min(1, exp(1 - r / c)) the brevity penalty (r reference words, c output words).
Text that is already tokenized (words separated by spaces, as in Multi30k's tok/ files) is scored
as it stands (sacrebleu's ``tokenize="none"``); raw text is tokenized by sacrebleu's standard
``13a`` tokenizer first. With several references per output, p_n clips each n-gram's count by its
largest count in any one reference, and r is the reference length closest to c (sacrebleu's
multi-reference BLEU; outputs may have different numbers of references).
"""
from __future__ import annotations

from typing import Sequence, Union


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Union[str, Sequence[str]]],
                tokenized: bool = False) -> float:
    """BLEU on the 0-100 scale of ``hypotheses[i]`` against ``references[i]``: one string, or a
    sequence of the output's references."""
    if len(hypotheses) != len(references):
        raise ValueError(f"BLEU needs one reference per output: {len(hypotheses)} outputs, "
                         f"{len(references)} references")
    from sacrebleu.metrics import BLEU
    # force: tokenized text is what "none" expects; sacrebleu would warn about it otherwise
    metric = BLEU(tokenize="none", force=True) if tokenized else BLEU(tokenize="13a")
    if all(isinstance(r, str) for r in references):
        return float(metric.corpus_score(list(hypotheses), [list(references)]).score)
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    if any(not r for r in refs):
        raise ValueError("BLEU needs at least one reference for every output")
    K = max(len(r) for r in refs)      # sacrebleu's streams, a missing reference None
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(K)]
    return float(metric.corpus_score(list(hypotheses), streams).score)
