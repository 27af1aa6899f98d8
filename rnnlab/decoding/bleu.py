"""Corpus BLEU of decoded text against one reference per output, computed by sacrebleu.

BLEU = BP * exp(sum_n 1/4 log p_n), p_n the clipped n-gram precisions (n = 1..4) over the whole
corpus, BP = min(1, exp(1 - r / c)) the brevity penalty (r reference words, c output words).
Text that is already tokenized (words separated by spaces, as in Multi30k's tok/ files) is scored
as it stands (sacrebleu's ``tokenize="none"``); raw text is tokenized by sacrebleu's standard
``13a`` tokenizer first.
"""
from __future__ import annotations

from typing import Sequence


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], tokenized: bool = False) -> float:
    """BLEU on the 0-100 scale of ``hypotheses[i]`` against ``references[i]``."""
    if len(hypotheses) != len(references):
        raise ValueError(f"BLEU needs one reference per output: {len(hypotheses)} outputs, "
                         f"{len(references)} references")
    from sacrebleu.metrics import BLEU
    # force: tokenized text is what "none" expects; sacrebleu would warn about it otherwise
    metric = BLEU(tokenize="none", force=True) if tokenized else BLEU(tokenize="13a")
    return float(metric.corpus_score(list(hypotheses), [list(references)]).score)
