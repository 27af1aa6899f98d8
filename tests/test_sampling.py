"""Sampling: temperature, top-k, top-p, greedy decoding, seeds."""
import pytest
import torch

from rnnlab.decoding import filter_logits, generate, sample_next
from rnnlab.errors import ConfigError
from rnnlab.models import LanguageModel, LanguageModelConfig


def _model():
    torch.manual_seed(1)
    m = LanguageModel(LanguageModelConfig(vocab_size=23, hidden_size=16, init_range=1.0))
    return m


def test_temperature_near_zero_is_greedy():
    m = _model()
    greedy = generate(m, [1, 2, 3], 60, temperature=0)
    for seed in range(3):
        assert generate(m, [1, 2, 3], 60, temperature=1e-4, seed=seed) == greedy


def test_greedy_follows_the_argmax():
    m = _model()
    out = generate(m, [4], 10, temperature=0)
    with torch.no_grad():
        logits, _ = m(torch.tensor([[4] + out]).t())             # (T, 1, N)
    assert logits[:-1, 0].argmax(-1).tolist() == out


def test_top_k_never_leaves_the_top_k():
    torch.manual_seed(0)
    logits = torch.randn(200, 50)
    allowed = torch.topk(logits, 5, dim=-1).indices
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        s = sample_next(logits, temperature=2.0, top_k=5, generator=g)
        assert (allowed == s[:, None]).any(-1).all()


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.05, 0.3, 0.15]]))
    kept = torch.isfinite(filter_logits(logits, top_p=0.8))
    assert kept.tolist() == [[True, False, True, False]]         # 0.5 + 0.3 reaches 0.8
    kept = torch.isfinite(filter_logits(logits, top_p=0.81))
    assert kept.tolist() == [[True, False, True, True]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.1))
    assert kept.tolist() == [[True, False, False, False]]        # the most probable always stays


def test_sampling_distribution_matches_softmax():
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(logits.expand(4000, 3), 1.0, generator=g) for _ in range(5)])
    freq = torch.bincount(draws.flatten(), minlength=3).double() / draws.numel()
    torch.testing.assert_close(freq, torch.softmax(logits[0].double(), 0), atol=0.01, rtol=0)


def test_seed_reproduces_and_differs():
    m = _model()
    a = generate(m, [1], 40, temperature=1.0, seed=5)
    assert a == generate(m, [1], 40, temperature=1.0, seed=5)
    assert a != generate(m, [1], 40, temperature=1.0, seed=6)


def test_streams_each_symbol():
    seen = []
    out = generate(_model(), [1], 12, seed=0, on_symbol=seen.append)
    assert seen == out and len(out) == 12


@pytest.mark.parametrize("kw, match", [({"temperature": -1}, "temperature"),
                                        ({"temperature": float("nan")}, "temperature"),
                                        ({"top_k": 0}, "top_k"), ({"top_p": 0}, "top_p"),
                                        ({"top_p": 1.5}, "top_p")])
def test_bad_settings(kw, match):
    with pytest.raises(ConfigError, match=match):
        generate(_model(), [1], 3, **kw)
