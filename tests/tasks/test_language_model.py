"""The language model: its equations, inputs, tied weights, and evaluation."""
import math

import pytest
import torch
from torch.nn import functional as F

from rnnlab.errors import ConfigError
from rnnlab.models import LanguageModel, LanguageModelConfig
from rnnlab.tasks.language_modelling import evaluate_ids


def test_forward_is_projection_cells_softmax():
    torch.manual_seed(0)
    m = LanguageModel(LanguageModelConfig(vocab_size=9, embed_size=4, hidden_size=5, layers=1)).double()
    tokens = torch.randint(0, 9, (6, 2))
    logits, (h, c) = m(tokens)
    cell = torch.nn.LSTM(4, 5).double()
    cell.load_state_dict({k[4:]: v for k, v in m.state_dict().items() if k.startswith("rnn.")})
    out, _ = cell(m.embedding.weight[tokens])
    torch.testing.assert_close(logits, out @ m.decoder.weight.t() + m.decoder.bias)


def test_one_hot_input_equals_its_projection():
    """One-hot vectors into W_ih are the embedding whose rows are W_ih's columns (P w = W_ih w)."""
    torch.manual_seed(0)
    onehot = LanguageModel(LanguageModelConfig(vocab_size=7, input="onehot", hidden_size=5)).double()
    emb = LanguageModel(LanguageModelConfig(vocab_size=7, embed_size=7, hidden_size=5)).double()
    emb.load_state_dict({**onehot.state_dict(), "embedding.weight": torch.eye(7, dtype=torch.float64)})
    tokens = torch.randint(0, 7, (5, 3))
    torch.testing.assert_close(onehot(tokens)[0], emb(tokens)[0])


def test_tied_weights_share_one_tensor():
    m = LanguageModel(LanguageModelConfig(vocab_size=7, hidden_size=8, tie_weights=True))
    assert m.decoder.weight is m.embedding.weight
    with pytest.raises(ConfigError, match="embed_size == hidden_size"):
        LanguageModel(LanguageModelConfig(vocab_size=7, hidden_size=8, embed_size=4, tie_weights=True))
    with pytest.raises(ConfigError, match="input='embedding'"):
        LanguageModel(LanguageModelConfig(vocab_size=7, hidden_size=8, input="onehot", tie_weights=True))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "leaky", "residual", "deep_transition"])
def test_every_cell_builds_and_learns_a_gradient(cell):
    m = LanguageModel(LanguageModelConfig(vocab_size=7, hidden_size=8, cell=cell, layers=2))
    logits, _ = m(torch.randint(0, 7, (4, 2)))
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_evaluation_is_one_continuous_read():
    torch.manual_seed(0)
    m = LanguageModel(LanguageModelConfig(vocab_size=9, hidden_size=6)).double()
    ids = torch.randint(0, 9, (301,))
    with torch.no_grad():
        logits, _ = m(ids[:-1, None])
        want = F.cross_entropy(logits[:, 0], ids[1:], reduction="mean").item()
    got = evaluate_ids(m, ids, 1, "char")
    assert got["loss"] == pytest.approx(want, rel=1e-10)
    assert got["perplexity"] == pytest.approx(math.exp(want))
    assert got["bits_per_char"] == pytest.approx(want / math.log(2))
