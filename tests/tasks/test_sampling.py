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


# ------------------------------------------------------------------ generation controls
from itertools import product                                            # noqa: E402

from rnnlab.data import Vocabulary                                       # noqa: E402
from rnnlab.decoding.search import continue_text                         # noqa: E402
from rnnlab.tasks.language_modelling import sample_model                 # noqa: E402


def _log_prob(m, prime, cont):
    """log P(cont | prime) under the model m."""
    with torch.no_grad():
        logits, _ = m(torch.tensor([prime + cont]).t())                  # (T, 1, N)
    lp = torch.log_softmax(logits[len(prime) - 1:-1, 0].double(), -1)     # (len(cont), N)
    return float(lp.gather(1, torch.tensor(cont)[:, None]).sum())


def _unk_loving_model(vocab_size):
    """A model whose <unk> (index 0) logit is huge whatever it reads."""
    m = LanguageModel(LanguageModelConfig(vocab_size=vocab_size, hidden_size=8))
    with torch.no_grad():
        m.decoder.bias[0] = 50.0
    return m


def test_banned_symbol_is_never_drawn():
    m = _unk_loving_model(6)
    assert set(generate(m, [1], 30, temperature=1.0, seed=0)) == {0}   # unbanned, it is all there is
    for temperature in (0.0, 1.0, 5.0):
        out = generate(m, [1], 200, temperature=temperature, seed=0, banned=[0])
        assert len(out) == 200 and 0 not in out
    assert 0 not in generate(m, [1], 50, top_k=1, seed=0, banned=[0])


def test_on_symbol_returning_true_ends_generation():
    m = _model()
    full = generate(m, [1], 30, seed=3)
    seen = []
    out = generate(m, [1], 30, seed=3, on_symbol=lambda i: seen.append(i) or len(seen) == 7)
    assert out == seen == full[:7]


@pytest.mark.parametrize("prime", [[4], [1, 2, 3], [22, 0, 9, 9]])
def test_beam_of_one_is_greedy(prime):
    m = _model()
    greedy = generate(m, prime, 40, temperature=0)
    best = continue_text(m, prime, 40, beam_size=1)
    assert best.tokens == greedy
    assert best.log_prob == pytest.approx(_log_prob(m, prime, greedy), rel=1e-6)
    eos = greedy[5]                                        # ends where greedy first draws it
    cut = greedy[:greedy.index(eos) + 1]
    assert continue_text(m, prime, 40, beam_size=1, eos=eos).tokens == cut
    banned = generate(m, prime, 40, temperature=0, banned=[eos, 0])
    assert continue_text(m, prime, 40, beam_size=1, banned=[eos, 0]).tokens == banned


def test_exhaustive_beam_finds_the_most_probable_continuation():
    torch.manual_seed(3)
    m = LanguageModel(LanguageModelConfig(vocab_size=5, hidden_size=8, init_range=2.0))
    prime, length = [1, 2], 3
    every = {seq: _log_prob(m, prime, list(seq)) for seq in product(range(5), repeat=length)}
    best_seq = max(every, key=every.get)
    greedy = generate(m, prime, length, temperature=0)
    for k in (2, 5, 25):                                   # 25 = 5^2 prefixes: exhaustive
        beam = continue_text(m, prime, length, beam_size=k)
        assert beam.log_prob == pytest.approx(every[tuple(beam.tokens)], rel=1e-6)
        assert every[tuple(beam.tokens)] >= every[tuple(greedy)]
    assert tuple(beam.tokens) == best_seq
    assert every[best_seq] > every[tuple(greedy)]           # this model: the beam beats greedy


def test_sample_model_never_writes_unk_unless_allowed():
    vocab = Vocabulary(["<unk>", "a", "b", "\n"], "char")
    m = _unk_loving_model(4)
    for kw in ({}, {"temperature": 0.0}, {"beam_size": 3}, {"top_k": 1}):
        text = sample_model(m, vocab, "ab", 60, seed=0, **kw)
        assert len(text) == 62 and "\ufffd" not in text, kw
    assert sample_model(m, vocab, "ab", 10, seed=0, allow_unk=True) == "ab" + "\ufffd" * 10


def test_sample_model_stops_at_text_or_end_symbol():
    m = _model()
    chars = Vocabulary(["<unk>"] + list("abcdefghijklmnopqrst\n "), "char")
    full = sample_model(m, chars, "ab", 300, seed=1)
    stop = full[10:12]                                     # two characters it does generate
    cut = sample_model(m, chars, "ab", 300, seed=1, stop=stop)
    assert cut == full[:full.index(stop, 2) + 2]
    end = sample_model(m, chars, "", 300, seed=1, stop="<eos>")          # a newline, for characters
    assert end.endswith("\n") and end.count("\n") == 1
    words = Vocabulary(["<unk>", "<eos>"] + [f"w{i}" for i in range(21)], "word")
    line = sample_model(m, words, "w3", 300, seed=2, stop="<eos>")
    assert line.endswith("\n") and line.count("\n") == 1 and line.startswith("w3 ")
    assert sample_model(m, words, "w3", 300, seed=2, stop="w5").endswith(" w5")
    beam = sample_model(m, words, "w3", 300, beam_size=2, stop="<eos>")
    assert beam.endswith("\n") and beam.count("\n") == 1
    with pytest.raises(ConfigError, match="beam search stops at one symbol of the vocabulary"):
        sample_model(m, words, "w3", 30, beam_size=2, stop="w5 w6")
    with pytest.raises(ConfigError, match="top_k and top_p apply to sampling only"):
        sample_model(m, words, "w3", 30, beam_size=2, top_k=3)
