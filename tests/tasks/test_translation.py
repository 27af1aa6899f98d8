"""Translation: the parallel reader, the encoder-decoder's four contexts, greedy and beam search, and
``--task translate`` end to end on a toy corpus."""
import itertools
import json
import math
import os
from pathlib import Path

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data.parallel import (pair_paths, parallel_files, read_parallel, read_parallel_splits,
                                  tokenize_like_tok, untokenize_entities)
from rnnlab.decoding.search import beam_search, greedy, length_normalised
from rnnlab.errors import ConfigError, DataError
from rnnlab.models.seq2seq import (AdditiveAttention, Seq2Seq, Seq2SeqConfig, sampling_probability)
from rnnlab.tasks.examples import pad
from rnnlab.decoding.bleu import corpus_bleu as bleu
from rnnlab.tasks.translation import translate

DATA = Path(os.environ.get("RNNLAB_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def write(path: Path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text, encoding=encoding))
    return path


# ------------------------------------------------------------------ the reader
def test_reader_parses_pairs_skips_lines_blank_in_both_and_strips_crlf(tmp_path):
    s = write(tmp_path / "a.en", "a man runs .\r\n\r\ntwo  dogs\n")
    t = write(tmp_path / "a.de", "ein mann läuft .\r\n \r\nzwei hunde\n")
    pairs = read_parallel(s, t)
    assert [(p.source, p.target, p.line) for p in pairs] == [
        (["a", "man", "runs", "."], ["ein", "mann", "läuft", "."], 1),
        (["two", "dogs"], ["zwei", "hunde"], 3)]


def test_reader_refuses_files_of_different_line_counts(tmp_path):
    s = write(tmp_path / "x.en", "a\nb\nc\n")
    t = write(tmp_path / "x.de", "a\nb\n")
    with pytest.raises(DataError) as e:
        read_parallel(s, t)
    assert str(e.value) == (f"{s} has 3 lines and {t} has 2; expected aligned files, one sentence "
                            f"per line in each")


def test_reader_names_the_line_blank_on_one_side(tmp_path):
    s = write(tmp_path / "x.en", "a b\nc d\ne f\n")
    t = write(tmp_path / "x.de", "a b\nc d\n  \n")
    with pytest.raises(DataError, match=rf"^{t}:3: expected a sentence \(the translation of {s}:3\), "
                                        r"found an empty line$"):
        read_parallel(s, t)


def test_reader_names_the_line_of_bytes_not_in_the_encoding(tmp_path):
    s = write(tmp_path / "x.en", "a\nb\nc\n")
    t = write(tmp_path / "x.de", "a\nb\nM\xfcnchen\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"^{t}:3: bytes that are not valid utf-8"):
        read_parallel(s, t)
    assert [p.target for p in read_parallel(s, t, encoding="latin-1")][-1] == ["München"]


def test_folder_splits_by_name_and_language_and_tok_subfolder(tmp_path):
    for name in ("train", "val", "test_2016_flickr"):
        for lang in ("en", "de"):
            write(tmp_path / f"{name}.{lang}", f"{name} {lang}\n")
            write(tmp_path / "tok" / f"{name}.lc.norm.tok.{lang}", f"tok {name} {lang}\n")
    write(tmp_path / "README.md", "not data\n")
    raw = read_parallel_splits(tmp_path, "en", "de")
    assert {k: (v[0].source, v[0].target) for k, v in raw.items()} == {
        "train": (["train", "en"], ["train", "de"]), "valid": (["val", "en"], ["val", "de"]),
        "test": (["test_2016_flickr", "en"], ["test_2016_flickr", "de"])}
    tok = parallel_files(tmp_path, "de", "en", tokenized=True)            # either direction
    assert tok["test"] == (tmp_path / "tok" / "test_2016_flickr.lc.norm.tok.de",
                           tmp_path / "tok" / "test_2016_flickr.lc.norm.tok.en")
    assert pair_paths(tmp_path / "val", "en", "de") == (tmp_path / "val.en", tmp_path / "val.de")
    assert pair_paths(tmp_path, "en", "de", split="valid") == (tmp_path / "val.en", tmp_path / "val.de")


def test_folder_errors_name_what_is_missing(tmp_path):
    write(tmp_path / "train.en", "a\n")
    with pytest.raises(DataError, match=r"expected the de file aligned with train.en \(train split, "
                                        r"en\), found none ending in .de"):
        parallel_files(tmp_path, "en", "de")
    write(tmp_path / "train.de", "a\n")
    with pytest.raises(DataError, match=r"expected a tok/ subfolder .* turn tokenized off"):
        parallel_files(tmp_path, "en", "de", tokenized=True)
    with pytest.raises(DataError, match=r"expected a test pair of files"):
        pair_paths(tmp_path, "en", "de")
    with pytest.raises(DataError, match=r"prefix of two files .*nope.en and .*nope.de"):
        pair_paths(tmp_path / "nope", "en", "de")
    write(tmp_path / "test.en", "a\n"), write(tmp_path / "test.de", "a\n")
    write(tmp_path / "test_2017.en", "a\n")
    with pytest.raises(DataError, match=r"two en files for the test split: test.en and test_2017.en"):
        parallel_files(tmp_path, "en", "de")


def test_input_is_tokenized_as_the_tok_files():
    assert tokenize_like_tok('A kid\'s "toy", 1,000 dogs & cats.') == \
        ["a", "kid", "&apos;s", "&quot;", "toy", "&quot;", ",", "1,000", "dogs", "&amp;", "cats", "."]
    assert untokenize_entities(["ein", "&quot;", "kind", "&apos;s", "&amp;"]) == 'ein " kind \'s &'


def test_input_tokenization_matches_multi30k_tok_files():
    folder = DATA / "multi30k_en_de"
    if not folder.exists():
        pytest.skip(f"Multi30k not found at {folder}")
    for lang in ("en", "de"):
        raw = (folder / f"test_2016_flickr.{lang}").read_text(encoding="utf-8").splitlines()
        tok = (folder / "tok" / f"test_2016_flickr.lc.norm.tok.{lang}").read_text(encoding="utf-8").splitlines()
        same = sum(tokenize_like_tok(r) == t.split() for r, t in zip(raw, tok))
        assert same >= 0.99 * len(raw), (lang, same)


# ------------------------------------------------------------------ the model
def small_model(context, cell="gru", bidirectional=True, vocab=(11, 13), **kw):
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(source_vocab=vocab[0], target_vocab=vocab[1], context=context, cell=cell,
                        embed_size=6, hidden_size=8, bidirectional=bidirectional, dropout=0.0, **kw)
    return Seq2Seq(cfg).double().eval()


def batch_of(lengths, vocab=11, seed=1):
    g = torch.Generator().manual_seed(seed)
    return pad([torch.randint(2, vocab, (n,), generator=g) for n in lengths], 1)


def test_attention_weights_sum_to_one_and_are_zero_on_padding():
    torch.manual_seed(0)
    att = AdditiveAttention(5, 7, 4).double()
    memory = torch.randn(6, 3, 7, dtype=torch.float64)                   # (S, B, C)
    lengths = torch.tensor([6, 2, 4])
    mask = torch.arange(6)[:, None] < lengths[None, :]
    context, alpha = att(torch.randn(3, 5, dtype=torch.float64), memory, att.keys(memory), mask)
    assert torch.allclose(alpha.sum(0), torch.ones(3, dtype=torch.float64))
    assert torch.all(alpha[~mask] == 0) and torch.all(alpha[mask] > 0)
    assert torch.allclose(context, (alpha.unsqueeze(-1) * memory).sum(0))


def test_attention_of_the_model_ignores_padded_positions():
    model = small_model("attention")
    src, lengths = batch_of([5, 2, 3])
    state = model.encode(src, lengths)
    _, alpha = model.attention(state.hidden[0][-1], state.memory, state.keys, state.mask)
    assert torch.allclose(alpha.sum(0), torch.ones(3, dtype=torch.float64))
    assert alpha[2:, 1].abs().sum() == 0 and alpha[3:, 2].abs().sum() == 0


@pytest.mark.parametrize("context", ["init", "input", "both", "attention"])
def test_teacher_forced_logits_equal_step_by_step_decoding(context):
    model = small_model(context, cell="lstm")
    src, lengths = batch_of([4, 6, 1])
    y_in = torch.randint(0, 13, (5, 3))
    logits = model(src, lengths, y_in)                                    # (T, B, V)
    state = model.encode(src, lengths)
    for t in range(5):
        log_probs, state = model.step(y_in[t], state)
        assert torch.allclose(log_probs, torch.log_softmax(logits[t], -1), atol=1e-10)


def test_context_init_copies_the_final_state_and_input_starts_from_zero():
    model = small_model("init", cell="lstm", bidirectional=False)
    assert model.bridge is None                                           # sizes agree: c itself
    src, lengths = batch_of([4, 2])
    x = model.source_embedding(src)
    _, (h, c) = model.encoder(x, lengths=lengths)
    state = model.encode(src, lengths)
    assert torch.equal(state.hidden[0], h) and torch.equal(state.hidden[1], c)
    bi = small_model("both", cell="lstm")                                 # 2H -> H: tanh(W c + b)
    out, (h, _) = bi.encoder(bi.source_embedding(src), lengths=lengths)
    c = torch.cat([h[0], h[1]], -1)                                       # [h_S^fwd ; h_1^bwd]
    assert torch.allclose(c[1], torch.cat([out[1, 1, :8], out[0, 1, 8:]]))
    state = bi.encode(src, lengths)
    assert torch.allclose(state.hidden[0][0], torch.tanh(bi.bridge[0](c)))
    assert torch.equal(state.context, c)
    zero = small_model("input", cell="lstm").encode(src, lengths)
    assert all(torch.all(s == 0) for s in zero.hidden) and zero.context.abs().sum() > 0


def test_scheduled_sampling_at_rate_one_feeds_the_models_own_predictions():
    model = small_model("both")
    src, lengths = batch_of([3, 5])
    y_in = torch.randint(0, 13, (6, 2))
    logits = model(src, lengths, y_in, sampling_rate=1.0)
    state, tokens = model.encode(src, lengths), y_in[0]
    for t in range(6):
        log_probs, state = model.step(tokens, state)
        assert torch.allclose(log_probs, torch.log_softmax(logits[t], -1), atol=1e-10)
        tokens = log_probs.argmax(-1)
    assert sampling_probability(0.25, 4, 1.0) == 0.0625 and sampling_probability(0.25, 4, 9.0) == 0.25
    assert sampling_probability(0.3, 0, 0.0) == 0.3


@pytest.mark.parametrize("context", ["input", "attention"])
def test_padding_does_not_change_a_sentences_translation(context):
    model = small_model(context)
    alone, _ = batch_of([3], seed=5)
    others, _ = batch_of([7, 1, 9], seed=6)
    sentences = [alone[:, 0]] + list(others.T)
    together = translate(model, [sentences[0], *[s[:n] for s, n in zip(sentences[1:], (7, 1, 9))]],
                         eos=1, beam_size=3)
    assert together[0] == translate(model, [sentences[0]], eos=1, beam_size=3)[0]
    src, lengths = pad([sentences[0], others[:, 2]], 1)                   # padded to 9 steps
    s_alone = model.encode(alone, torch.tensor([3]))
    s_both = model.encode(src, lengths)
    tokens = torch.tensor([1, 1])
    for t in range(4):
        lp_alone, s_alone = model.step(tokens[:1], s_alone)
        lp_both, s_both = model.step(tokens, s_both)
        assert torch.allclose(lp_alone[0], lp_both[0], atol=1e-12)
        tokens = lp_both.argmax(-1)


# ------------------------------------------------------------------ the searches
class ToyDecoder:
    """A tiny random recurrent decoder for the searches: h' = tanh(E[y] + W h), log softmax(O h')."""

    def __init__(self, V=4, H=5, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.E = torch.randn(V, H, generator=g, dtype=torch.float64)
        self.W = torch.randn(H, H, generator=g, dtype=torch.float64)
        self.O = 2 * torch.randn(V, H, generator=g, dtype=torch.float64)
        self.calls = 0

    def step(self, tokens, h):
        self.calls += 1
        h = torch.tanh(self.E[tokens] + h @ self.W.T)
        return torch.log_softmax(h @ self.O.T, -1), h

    def reorder(self, h, index):
        return h.index_select(0, index)


def brute_force(decoder, h0, bos, eos, max_len, alpha):
    """(score, tokens) of the best of every possible output, each scored from its own steps."""
    V = decoder.E.shape[0]
    best = (-math.inf, None)
    for n in range(1, max_len + 1):
        for seq in itertools.product(range(V), repeat=n):
            if eos in seq[:-1] or (n < max_len and seq[-1] != eos):
                continue
            h, tok, lp = h0, bos, 0.0
            for w in seq:
                log_probs, h = decoder.step(torch.tensor([tok]), h)
                lp += float(log_probs[0, w])
                tok = w
            score = length_normalised(lp, n, alpha)
            toks = list(seq[:-1]) if seq[-1] == eos else list(seq)
            best = max(best, (score, toks), key=lambda x: x[0])
    return best


@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.6])
def test_beam_search_finds_the_best_sequence_found_by_enumeration(alpha):
    dec = ToyDecoder(V=4, seed=3)
    h0 = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    max_lens = [3, 2, 4]
    hyps = beam_search(dec, h0, bos=0, eos=0, max_len=max_lens, batch=3, beam_size=4 ** 4,
                       length_penalty=alpha)
    for b in range(3):
        score, tokens = brute_force(dec, h0[b:b + 1], 0, 0, max_lens[b], alpha)
        assert hyps[b].tokens == tokens and hyps[b].score == pytest.approx(score, abs=1e-9)


def test_beam_of_one_is_greedy_and_greedy_scores_its_own_output():
    dec = ToyDecoder(V=6, seed=4)
    h0 = torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lens = [1, 2, 3, 5, 8, 13, 4, 6]
    g = greedy(dec, h0, 1, 0, lens, 8, length_penalty=0.7)
    b = beam_search(dec, h0, 1, 0, lens, 8, beam_size=1, length_penalty=0.7)
    assert [h.tokens for h in g] == [h.tokens for h in b]
    assert [h.score for h in g] == pytest.approx([h.score for h in b], abs=1e-12)
    for i, h in enumerate(g):                                             # by hand, one input alone
        assert len(h.tokens) <= lens[i]
        state, tok, lp, n = h0[i:i + 1], 1, 0.0, 0
        for w in h.tokens + ([0] if len(h.tokens) < lens[i] else []):
            log_probs, state = dec.step(torch.tensor([tok]), state)
            assert w == int(log_probs.argmax())
            lp, tok, n = lp + float(log_probs[0, w]), w, n + 1
        assert h.log_prob == pytest.approx(lp, abs=1e-12)
        assert h.score == pytest.approx(lp / n ** 0.7, abs=1e-12)


def test_beam_of_one_is_greedy_on_the_translation_model():
    model = small_model("attention", cell="lstm")
    src, lengths = batch_of([4, 7, 2, 5])
    sources = [src[:n, i] for i, n in enumerate(lengths.tolist())]
    greedy_out = translate(model, sources, eos=1, beam_size=1, max_length=9)
    assert translate(model, sources, eos=1, beam_size=1, max_length=9) == greedy_out
    state = model.encode(src, lengths)
    beam_out = beam_search(model, state, 1, 1, 9, 4, beam_size=1)
    assert [h.tokens for h in beam_out] == [greedy_out[i] for i in range(4)]


class ScriptedDecoder:
    """P(next | prefix) from a table (eos = 0): a peaked model whose unlikely early endings fill a
    small beam's finished list before the likely sentence [1, 2] ends."""
    TABLE = {(): [0.05, 0.90, 0.05], (1,): [0.05, 0.05, 0.90], (1, 2): [0.95, 0.025, 0.025]}
    OTHER = [0.4, 0.3, 0.3]

    def step(self, tokens, prefixes):
        prefixes = [() if p is None else p + (int(t),) for p, t in zip(prefixes, tokens)]
        probs = torch.tensor([self.TABLE.get(p, self.OTHER) for p in prefixes], dtype=torch.float64)
        return probs.log(), prefixes

    def reorder(self, prefixes, index):
        return [prefixes[i] for i in index.tolist()]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_does_not_stop_at_early_unlikely_endings(alpha):
    hyps = beam_search(ScriptedDecoder(), [None], 0, 0, max_len=6, batch=1, beam_size=2,
                       length_penalty=alpha)
    assert hyps[0].tokens == [1, 2]
    assert hyps[0].log_prob == pytest.approx(math.log(0.9 * 0.9 * 0.95))


def test_bleu_is_sacrebleus_corpus_bleu():
    refs = ["ein mann läuft über die straße .", "zwei hunde spielen im schnee ."]
    assert bleu(refs, refs, tokenized=True) == pytest.approx(100.0)
    hyp = ["ein mann läuft über eine straße .", "zwei hunde spielen im schnee ."]
    # 1-4 gram precisions 12/13, 9/11, 6/9, 4/7, brevity penalty 1 (by hand)
    expected = 100 * math.exp((math.log(12 / 13) + math.log(9 / 11) + math.log(6 / 9) + math.log(4 / 7)) / 4)
    assert bleu(hyp, refs, tokenized=True) == pytest.approx(expected, abs=1e-9)


# ------------------------------------------------------------------ the task end to end
PAIRS = [("a man runs", "ein mann läuft"), ("a dog runs", "ein hund läuft"),
         ("two men sit", "zwei männer sitzen"), ("a woman sings", "eine frau singt"),
         ("the dog sleeps", "der hund schläft"), ("two dogs run", "zwei hunde laufen"),
         ("a man sings loudly", "ein mann singt laut"), ("the woman runs", "die frau läuft"),
         ("a child plays outside", "ein kind spielt draußen"), ("two women sit", "zwei frauen sitzen")]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    for split in ("train", "val", "test"):
        write(folder / f"{split}.en", "".join(s + "\n" for s, _ in PAIRS))
        write(folder / f"{split}.de", "".join(t + "\n" for _, t in PAIRS))
    return folder


def train_toy(folder, out, context, **settings):
    """50 full-batch updates, validated once: 1 to 3 s on one thread."""
    return rnnlab.train(task="translate", data=str(folder), tokenized=False, min_count=1,
                        context=context, cell="gru", embed_size=16, hidden_size=32, dropout=0.0,
                        batch_size=len(PAIRS), lr=0.03, epochs=50, validate_every=50, threads=1,
                        progress=False, out=str(out), force=True, say=lambda message: None,
                        **settings)


@pytest.fixture(scope="module")
def toy_runs(toy, tmp_path_factory):
    """A run of each context; "both" learns with scheduled sampling (epsilon rising to 0.5)."""
    root = tmp_path_factory.mktemp("runs")
    extra = {"both": {"sampling_rate": 0.5, "sampling_ramp": 25}}
    return {c: train_toy(toy, root / c, c, **extra.get(c, {}))
            for c in ("init", "input", "both", "attention")}


@pytest.mark.slow_cases
@pytest.mark.parametrize("context", ["init", "input", "both", "attention"])
def test_each_context_memorises_a_toy_corpus(toy_runs, toy, context):
    summary = toy_runs[context]
    assert summary["test"]["greedy_bleu"] > 99.9
    result = rnnlab.evaluate(summary["run_dir"], data=str(toy), beam_size=3)
    assert result["bleu"] > 99.9 and result["loss"] < 0.2 and result["sentences"] == len(PAIRS)
    assert rnnlab.predict(summary["run_dir"], ["a man runs", "", "two dogs run"]) == \
        ["ein mann läuft", "", "zwei hunde laufen"]


def test_scheduled_sampling_rate_rises_over_the_ramp(toy):
    from rnnlab.tasks.translation import RECIPE
    data, mcfg, train = RECIPE.configs({"data": str(toy), "tokenized": False, "min_count": 1,
                                        "batch_size": 5, "sampling_rate": 0.4, "sampling_ramp": 2,
                                        "embed_size": 8, "hidden_size": 8}, "test")
    task = RECIPE.prepare(data, train)
    model = RECIPE.build_model(task.assets, mcfg)
    assert task.num_batches(0) == 2
    task.train_step(model, 1, 1)                   # 1.5 epochs done of a 2-epoch ramp
    assert task.sampling == pytest.approx(0.3)
    task.train_step(model, 3, 0)
    assert task.sampling == pytest.approx(0.4)


def test_evaluate_json_and_predict_from_the_command_line(toy_runs, toy, tmp_path, capsys):
    run = toy_runs["attention"]["run_dir"]
    assert main(["evaluate", run, "--data", str(toy / "val"), "--json", "--beam-size", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bleu"] > 99.9 and result["beam_size"] == 2 and set(result) >= {"bleu", "loss"}
    lines = write(tmp_path / "in.txt", "a woman sings\nthe dog sleeps\n")
    assert main(["predict", run, "--input", str(lines), "--beam-size", "1"]) == 0
    assert capsys.readouterr().out == "eine frau singt\nder hund schläft\n"


def test_settings_and_data_errors_are_one_clear_line(toy, tmp_path, capsys):
    with pytest.raises(ConfigError, match="task translate needs --data"):
        rnnlab.train(task="translate", progress=False)
    with pytest.raises(ConfigError, match=r"context takes one of 'init', 'input', 'both', "
                                          r"'attention'; got 'attn'"):
        train_toy(toy, tmp_path / "r", "attn")
    code = main(["train", "--task", "translate", "--data", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "expected a tok/ subfolder" in err[0]


def test_teacher_forced_inputs_outputs_and_loss_per_word():
    from rnnlab.tasks.teacher_forcing import IGNORE, decoder_sequences, word_loss
    y_in, y_out, lengths = decoder_sequences([torch.tensor([5, 6]), torch.tensor([7])], eos=1)
    assert y_in.tolist() == [[1, 1], [5, 7], [6, 1]]
    assert y_out.tolist() == [[5, 7], [6, 1], [1, IGNORE]] and lengths.tolist() == [3, 2]
    logits = torch.randn(3, 2, 9, dtype=torch.float64)
    loss = word_loss(logits, y_out)
    words = [(0, 0, 5), (1, 0, 6), (2, 0, 1), (0, 1, 7), (1, 1, 1)]      # (t, b, word): 5 words
    expected = -sum(logits[t, b].log_softmax(-1)[w] for t, b, w in words) / 5
    assert loss.count == 5 and float(loss.objective) == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_compiled_attention_model_equals_eager_and_compiles_once(rate):
    """torch.compile of the attention model (teacher forced, and scheduled sampling at rate 1):
    its decoder's time loop runs outside the graph, so new target lengths compile nothing
    (unrolled, each length compiled again for seconds); outputs and gradients equal eager's."""
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    torch._dynamo.reset()
    counters.clear()
    model = Seq2Seq(Seq2SeqConfig(source_vocab=12, target_vocab=14, embed_size=6, hidden_size=8, dropout=0.0))
    compiled = torch.compile(model)
    for n, (S, T) in enumerate([(5, 6), (7, 9), (6, 4), (8, 11), (5, 3)]):
        if n == 2:
            warm = counters["stats"]["unique_graphs"]
        src, tgt = torch.randint(1, 12, (S, 3)), torch.randint(1, 14, (T, 3))
        lengths = torch.tensor([S, S - 1, 2])
        outs = []
        for m in (compiled, model):
            y = m(src, lengths, tgt, sampling_rate=rate)
            outs.append((y, torch.autograd.grad(y.square().sum(), list(model.parameters()))))
        torch.testing.assert_close(outs[0][0], outs[1][0])
        for a, b in zip(outs[0][1], outs[1][1]):
            torch.testing.assert_close(a, b)
    assert counters["stats"]["unique_graphs"] == warm
    # one target word: its first step reads the reference, sampling or not
    torch.testing.assert_close(model(src, lengths, tgt[:1], sampling_rate=rate), model(src, lengths, tgt[:1]))
