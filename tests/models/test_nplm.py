"""The neural probabilistic language model (Bengio et al. 2003): its equation, its window across
seams, its gradients, and its place in the language-model task, API and command line."""
import json
import math

import pytest
import torch
from torch.func import functional_call
from torch.nn import functional as F

import rnnlab
from rnnlab.cli import main
from rnnlab.data import Vocabulary
from rnnlab.errors import ConfigError
from rnnlab.models import LanguageModel, LanguageModelConfig
from rnnlab.models.nplm import NPLM
from rnnlab.tasks import language_modelling
from rnnlab.tasks.language_modelling import LanguageModelling, build_model, evaluate_ids
from rnnlab.training.config import TrainConfig

LINES = " the cat sat on the mat \n a dog sat on a log \n the dog saw the cat \n"


def nplm(N=11, m=3, h=5, n=3, direct=False, boundary=2, seed=0):
    torch.manual_seed(seed)
    cfg = LanguageModelConfig(vocab_size=N, architecture="nplm", context=n, embed_size=m,
                              hidden_size=h, direct=direct, boundary_id=boundary)
    model = NPLM(cfg).double().eval()
    with torch.no_grad():                      # no zero biases: every term of the formula counts
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def paper_logits(model, tokens, history):
    """y_t = b + W x_t + U tanh(d + H x_t), x_t = [C(w_{t-n+1}); ...; C(w_t)], one step and one
    stream at a time; ``history[b]`` lists the words stream b read before ``tokens``."""
    c = model.config
    n, h = c.context, c.hidden_size
    C, H, d = model.embedding.weight, model.hidden.weight, model.hidden.bias
    U, b = model.decoder.weight[:, :h], model.decoder.bias
    W = model.decoder.weight[:, h:] if c.direct else None
    T, B = tokens.shape
    out = torch.empty(T, B, c.vocab_size, dtype=C.dtype)
    for s in range(B):
        words = [c.boundary_id] * n + list(history[s]) + tokens[:, s].tolist()
        for t in range(T):
            i = n + len(history[s]) + t                       # w_t's place in ``words``
            x = torch.cat([C[w] for w in words[i - n + 1:i + 1]])
            y = b + U @ torch.tanh(d + H @ x)
            out[t, s] = y + W @ x if W is not None else y
    return out


@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("n", [1, 3])
def test_logits_are_the_papers_formula(direct, n):
    model = nplm(n=n, direct=direct)
    tokens = torch.randint(0, 11, (7, 3))
    logits, state = model(tokens)
    torch.testing.assert_close(logits, paper_logits(model, tokens, [[], [], []]))
    torch.testing.assert_close(state, tokens[tokens.shape[0] - (n - 1):])   # the last n-1 words


@pytest.mark.parametrize("cut", [1, 2, 5])
def test_reading_in_two_pieces_with_the_state_is_reading_at_once(cut):
    """Across a TBPTT seam the window reads the true previous words, also when the first piece
    is shorter than the window."""
    model = nplm(n=4, direct=True)
    tokens = torch.randint(0, 11, (8, 2))
    whole, _ = model(tokens)
    first, state = model(tokens[:cut])
    second, _ = model(tokens[cut:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    history = [tokens[:cut, s].tolist() for s in range(2)]
    torch.testing.assert_close(second, paper_logits(model, tokens[cut:], history))


def test_gradients_match_finite_differences():
    model = nplm(N=6, m=2, h=3, n=3, direct=True)
    tokens = torch.randint(0, 6, (4, 2))
    state = torch.randint(0, 6, (2, 2))
    names = [k for k, _ in model.named_parameters()]

    def logits(*params):
        return functional_call(model, dict(zip(names, params)), (tokens, state))[0]

    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    assert torch.autograd.gradcheck(logits, params)


def test_dropout_only_in_training():
    cfg = LanguageModelConfig(vocab_size=9, architecture="nplm", context=2, hidden_size=6,
                              embed_size=4, dropout=0.5)
    model = NPLM(cfg)
    tokens = torch.randint(0, 9, (5, 2))
    model.eval()
    torch.testing.assert_close(model(tokens)[0], model(tokens)[0])
    model.train()
    torch.manual_seed(1)
    a = model(tokens)[0]
    torch.manual_seed(2)
    assert not torch.allclose(a, model(tokens)[0])


def test_evaluation_is_one_continuous_read_across_chunks(monkeypatch):
    model = nplm(n=3, direct=True)
    ids = torch.randint(0, 11, (60,))
    with torch.no_grad():
        logits = paper_logits(model, ids[:-1, None], [[]])
        want = F.cross_entropy(logits[:, 0], ids[1:]).item()
    monkeypatch.setattr(language_modelling, "EVAL_CHUNK", 7 * 11)     # chunks of 7 steps
    got = evaluate_ids(model, ids, 1, "word")
    assert got["loss"] == pytest.approx(want, rel=1e-10)
    assert got["perplexity"] == pytest.approx(math.exp(want))


def test_training_windows_predict_every_word_once_from_its_true_window():
    """Summed over an epoch's truncated-BPTT windows (k2 > k1: seams inside windows), the loss is
    that of reading each training stream at once."""
    model = nplm(n=3, direct=False)
    ids = torch.randint(0, 11, (2 * 23,))
    task = LanguageModelling(Vocabulary(["<unk>", "<eos>"] + [f"w{i}" for i in range(9)], "word"),
                             {"train": ids, "valid": ids[:0], "test": ids[:0]},
                             TrainConfig(batch_size=2, tbptt=(4, 6)))
    task.start_epoch(0)
    total, count = 0.0, 0
    for i in range(task.num_batches(0)):
        _, loss_sum, n = task.train_step(model, 0, i)
        total, count = total + float(loss_sum), count + n
    rows = task.rows                                                   # (R, B)
    logits = paper_logits(model, rows[:-1], [[], []])
    want = F.cross_entropy(logits.reshape(-1, 11), rows[1:].reshape(-1), reduction="sum").item()
    assert count == rows[1:].numel() and total == pytest.approx(want, rel=1e-10)


def test_settings_of_the_other_architecture_are_refused():
    base = dict(vocab_size=9, hidden_size=6)
    for bad, match in [(dict(architecture="nplm", cell="gru"), "cell is a setting of architecture 'recurrent'"),
                       (dict(architecture="nplm", layers=2), "layers is a setting"),
                       (dict(architecture="nplm", input="onehot"), "input is a setting"),
                       (dict(architecture="nplm", tie_weights=True), "tie_weights is a setting"),
                       (dict(context=3), "context is a setting of architecture 'nplm'"),
                       (dict(direct=True), "direct is a setting of architecture 'nplm'"),
                       (dict(architecture="nplm", context=0), "context must be a positive"),
                       (dict(architecture="mlp"), "architecture takes one of")]:
        with pytest.raises(ConfigError, match=match):
            LanguageModelConfig(**base, **bad).check()
    with pytest.raises(ConfigError, match="build it with rnnlab.models.nplm.NPLM"):
        LanguageModel(LanguageModelConfig(**base, architecture="nplm"))
    with pytest.raises(ConfigError, match="NPLM needs architecture 'nplm'"):
        NPLM(LanguageModelConfig(**base))
    with pytest.raises(ConfigError, match=r"shape \(2, 3\); got \(2, 2\)"):
        nplm(n=3)(torch.zeros(4, 3, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long))


def test_the_window_is_padded_with_the_vocabularys_boundary():
    words = Vocabulary.build(LINES, "word")
    chars = Vocabulary.build(LINES, "char")
    cfg = dict(architecture="nplm", context=2, hidden_size=4)
    assert build_model(words, LanguageModelConfig(**cfg)).config.boundary_id == words.index["<eos>"] == 1
    assert build_model(chars, LanguageModelConfig(**cfg)).config.boundary_id == chars.index["\n"]
    assert build_model(Vocabulary.build("abab", "char"), LanguageModelConfig(**cfg)).config.boundary_id == 0


@pytest.fixture
def word_data(tmp_path):
    data = tmp_path / "ptb"
    data.mkdir()
    (data / "ptb.train.txt").write_text(LINES * 60)
    (data / "ptb.valid.txt").write_text(LINES)
    (data / "ptb.test.txt").write_text(" the dog sat on the mat \n a cat saw a dog \n")
    return data


def test_train_evaluate_sample_predict_resume(word_data, tmp_path):
    out = tmp_path / "run"
    settings = dict(data=str(word_data), level="word", architecture="nplm", context=3, direct=True,
                    embed_size=8, hidden_size=16, batch_size=4, tbptt=(8, 8), lr=1e-2,
                    max_steps=40, epochs=0, progress=False, threads=1, checkpoint_every=20)
    s = rnnlab.train(out=str(out), sample_length=12, **settings)
    vocab = Vocabulary.load(out / "vocab.json")
    assert s["test"]["perplexity"] < len(vocab) / 2              # it learned the tiny language
    assert rnnlab.evaluate(str(out))["loss"] == pytest.approx(s["test"]["loss"], rel=1e-6)
    assert len(s["sample"].split()) + s["sample"].count("\n") == 12        # words and <eos>
    run = rnnlab.tasks.recipe.load_run(out)
    assert isinstance(run.model, NPLM) and run.model.config.context == 3

    greedy = rnnlab.sample(str(out), prime="the cat", length=6, temperature=0)
    ids = vocab.encode_symbols("the cat".split())
    with torch.no_grad():                      # the same greedy choice from the whole text read at once
        for _ in range(6):
            logits, _ = run.model(torch.tensor(ids)[:, None])
            ids.append(int(logits[-1, 0].argmax()))
    assert greedy.split() == [vocab.symbols[i] for i in ids if vocab.symbols[i] != "<eos>"]
    assert rnnlab.predict(str(out), ["the dog"], length=5, seed=3) == \
        rnnlab.predict(str(out), ["the dog"], length=5, seed=3)

    r = rnnlab.train(resume=str(out), max_steps=60, sample_length=0)
    assert r["steps"] == 60


def test_command_line_run(word_data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(word_data), "--level", "word", "--architecture", "nplm",
            "--context", "2", "--embed-size", "8", "--hidden-size", "16", "--dropout", "0.1",
            "--batch-size", "4", "--tbptt", "8", "--max-steps", "12", "--epochs", "0",
            "--threads", "1", "--no-progress", "--sample-length", "5", "--out", str(out)]
    assert main(argv) == 0
    assert "test loss" in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())["model"]
    assert (saved["architecture"], saved["context"], saved["direct"], saved["boundary_id"]) == ("nplm", 2, False, 1)
    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == 12

    assert main(argv[:-1] + [str(tmp_path / "bad"), "--cell", "gru"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cell is a setting of architecture 'recurrent'" in err[0], err


def test_a_recurrent_run_saved_before_the_nplm_still_loads(word_data, tmp_path):
    out = tmp_path / "run"
    s = rnnlab.train(out=str(out), data=str(word_data), level="word", hidden_size=8, embed_size=4,
                     batch_size=4, tbptt=(8, 8), max_steps=5, epochs=0, progress=False, threads=1,
                     sample_length=0)
    cfg = json.loads((out / "config.json").read_text())
    for name in ("architecture", "context", "direct", "boundary_id"):
        del cfg["model"][name]
    (out / "config.json").write_text(json.dumps(cfg))
    assert isinstance(rnnlab.tasks.recipe.load_run(out).model, LanguageModel)
    assert rnnlab.evaluate(str(out))["loss"] == pytest.approx(s["test"]["loss"], rel=1e-6)


def test_run_directory_is_named_after_the_architecture():
    from rnnlab.tasks.language_modelling import RECIPE, TextDataConfig
    assert RECIPE.run_name(TextDataConfig(level="word"), LanguageModelConfig(architecture="nplm")) == "lm-word-nplm"
    assert RECIPE.run_name(TextDataConfig(), LanguageModelConfig(cell="gru")) == "lm-char-gru"
