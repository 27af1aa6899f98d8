"""Per-step loss weights, Div = sum_t w_t Div_t: the weights' rule, the tasks' gradients against
autograd of the weighted formula written out, zero weights silencing their targets, all ones
being the plain loss, bad settings refused, and the command line's round trip."""
import json
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from rnnlab.cli import _extra_values
from rnnlab.data.conllu import TaggedSentence
from rnnlab.errors import ConfigError
from rnnlab.models import LanguageModel, LanguageModelConfig
from rnnlab.models.music_model import MusicModel, MusicModelConfig, start_inputs
from rnnlab.models.tagger import Tagger, TaggerConfig
from rnnlab.tasks import get_recipe
from rnnlab.tasks.examples import pad
from rnnlab.tasks.forecasting import Forecasting
from rnnlab.tasks.language_modelling import LanguageModelling
from rnnlab.tasks.music import MusicModelling
from rnnlab.tasks.tagging import NO_TAG, Tagging, TaggingVocabulary
from rnnlab.tasks.teacher_forcing import IGNORE, word_loss
from rnnlab.training.config import TrainConfig, apply_settings, from_dict, to_dict
from rnnlab.training.step_weights import step_weights, weigh

F64 = torch.float64


def w_of(spec, n):
    """w_1 .. w_n of a list of numbers, written out: the last value repeats."""
    return [float(spec[min(t, len(spec) - 1)]) for t in range(n)]


def grads(model, objective):
    model.zero_grad()
    objective.backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


def assert_same(got, want, rtol=1e-10):
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=rtol, atol=1e-13)


# ------------------------------------------------------------------------------- the rule
def test_the_weights_of_each_form():
    assert step_weights([], 4) is None and step_weights([1, 1.0], 4) is None
    assert step_weights(["0", "0", "1"], 5).flatten().tolist() == [0, 0, 1, 1, 1]
    assert step_weights([2, 0.5], 3).flatten().tolist() == [2, 0.5, 0.5]
    lengths = torch.tensor([4, 2])
    lin = step_weights(["linear"], 4, lengths, torch.zeros((), dtype=F64))
    assert lin.dtype == F64 and lin.T.tolist() == [[0.25, 0.5, 0.75, 1.0], [0.5, 1.0, 0.0, 0.0]]
    assert step_weights("last", 4, lengths).T.tolist() == [[0, 0, 0, 1], [0, 1, 0, 0]]
    assert step_weights("last", 3).flatten().tolist() == [0, 0, 1]


def test_logged_loss_is_the_weighted_mean_over_real_steps():
    div = torch.tensor([[1.0, 2.0], [3.0, 0.0], [5.0, 0.0]], dtype=F64)      # (T, B); b=1 ends at 1
    real = torch.tensor([[True, True], [True, False], [True, False]])
    w = torch.tensor([[0.0], [1.0], [3.0]], dtype=F64)
    weighted, logged = weigh(div, w, real)
    assert float(weighted) == 3 + 15
    assert logged / int(real.sum()) == pytest.approx(18 / 4)                  # sum w Div / sum w
    _, plain = weigh(div, torch.ones(3, 1, dtype=F64), real)
    assert plain == pytest.approx(float(div.sum()))


@pytest.mark.parametrize("spec, message", [
    ([0, 0], "all zero"), (["0"], "all zero"), ([1, -0.5], ">= 0"), (["nan"], "finite"),
    (["inf", 1], "finite"), (["x"], "got 'x'"), (["linear", 2], "alone"), ([True], "got True"),
    ({"a": 1}, "takes numbers"),
])
def test_bad_weights_are_refused_in_one_line(spec, message):
    with pytest.raises(ConfigError, match=message) as e:
        TrainConfig(step_weights=spec).check()
    assert "\n" not in str(e.value)


def test_tasks_without_a_sequence_loss_refuse_weights():
    with pytest.raises(ConfigError, match="'step_weights' is not a setting of --task classify"):
        get_recipe("classify").configs({"step_weights": [0, 1]}, "settings")
    assert "step_weights" not in get_recipe("classify").setting_defaults()
    for task in ("lm", "tag", "music", "forecast", "translate", "caption"):
        assert get_recipe(task).setting_defaults()["step_weights"] == [], task


def test_command_line_round_trip():
    defaults = get_recipe("tag").setting_defaults()
    for tokens, want in ([["0", "0.5", "1"], [0.0, 0.5, 1.0]], [["linear"], ["linear"]],
                         [["LAST"], ["last"]]):
        settings = _extra_values(["--step-weights", *tokens], defaults, "train --task tag")
        train = TrainConfig()
        apply_settings([train], settings, "command line")
        assert train.check().step_weights == want
        saved = json.loads(json.dumps(to_dict(train)))                      # config.json
        assert from_dict(TrainConfig, saved, "config.json").check().step_weights == want
    with pytest.raises(ConfigError, match="all zero"):
        apply_settings([train], _extra_values(["--step-weights", "0"], defaults, "t"), "cli")
        train.check()


# ------------------------------------------------------------------------------- language model
def lm_task(spec, B=3, steps=12):
    torch.manual_seed(3)
    model = LanguageModel(LanguageModelConfig(vocab_size=11, hidden_size=6, embed_size=5, layers=1,
                                              engine="bptt")).double()
    ids = torch.randint(0, 11, (B * (steps + 1),))
    task = LanguageModelling(None, {"train": ids}, TrainConfig(batch_size=B, tbptt=(steps, steps),
                                                                 step_weights=spec))
    return model, task


@pytest.mark.parametrize("spec", [[0.5, 0.0, 2.0], ["linear"], ["last"]])
def test_language_model_gradient_is_that_of_the_weighted_sum(spec):
    model, task = lm_task(spec)
    task.start_epoch(0)
    objective, logged, count = task.train_step(model, 0, 0)
    got = grads(model, objective)
    rows = task.rows                                                          # (13, 3): 12 steps
    T = rows.shape[0] - 1
    logits, _ = model(rows[:-1])
    ce = F.cross_entropy(logits.reshape(-1, 11), rows[1:].reshape(-1), reduction="none").view(T, 3)
    if spec == ["linear"]:
        w = [(t + 1) / T for t in range(T)]
    elif spec == ["last"]:
        w = [0.0] * (T - 1) + [1.0]
    else:
        w = w_of(spec, T)
    direct = sum(w[t] * ce[t].sum() for t in range(T)) / 3                   # sum_t w_t mean_b CE_t
    assert_same(got, grads(model, direct))
    assert count == T * 3
    assert float(logged) / count == pytest.approx(float(direct.detach()) * 3 / (3 * sum(w)), rel=1e-12)


def test_all_ones_is_the_unweighted_loss():
    model, plain = lm_task([])
    _, ones = lm_task([1, 1, 1])
    a, b = plain.train_step(model, 0, 0), ones.train_step(model, 0, 0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    # and the weighted formula with every w_t = 1 is the plain sum, to rounding
    div = torch.rand(7, 3, dtype=F64)
    weighted, logged = weigh(div, torch.ones(7, 1, dtype=F64))
    assert float(weighted) == pytest.approx(float(div.sum()), rel=1e-14) and logged == pytest.approx(float(div.sum()))


# ------------------------------------------------------------------------------- tagging
WORDS = "the cat sat on a mat and the dog ran far away".split()


def tagging(spec, lengths=(5, 2, 7)):
    g = torch.Generator().manual_seed(1)
    upos = ["NOUN", "VERB", "DET", "ADP", "ADJ"]
    sentences = []
    for n in lengths:
        idx = torch.randint(0, len(WORDS), (n,), generator=g).tolist()
        tags = [upos[i] for i in torch.randint(0, 5, (n,), generator=g).tolist()]
        sentences.append(TaggedSentence([WORDS[i] for i in idx], tags, tags))
    vocab = TaggingVocabulary.build(sentences, "upos")
    examples = vocab.encode(sentences)
    task = Tagging({"train": examples}, TrainConfig(step_weights=spec).check(), vocab)
    torch.manual_seed(2)
    model = Tagger(TaggerConfig(vocab_size=len(vocab.words), char_vocab_size=len(vocab.chars),
                                num_tags=len(vocab.tags), embed_size=4, char_embed_size=3,
                                char_hidden_size=3, hidden_size=5, dropout=0.0, word_dropout=0.0,
                                engine="bptt"), vocab.counts).double()
    return task, model, examples


@pytest.mark.parametrize("spec", [[0.0, 1.0, 0.25], ["linear"], ["last"]])
def test_tagging_gradient_is_that_of_the_weighted_sum(spec):
    task, model, examples = tagging(spec)
    out = task.batch_loss(model, examples, train=True)
    got = grads(model, out.objective)
    inputs = task.assets.batch([e.words for e in examples])
    tags, lengths = pad([e.tag_ids for e in examples], NO_TAG)                # (T, B)
    logits = model(**inputs)
    direct = 0.0
    for b, n in enumerate(lengths.tolist()):
        if spec == ["linear"]:
            w = [(t + 1) / n for t in range(n)]
        elif spec == ["last"]:
            w = [0.0] * (n - 1) + [1.0]
        else:
            w = w_of(spec, n)
        for t in range(n):
            direct = direct + w[t] * F.cross_entropy(logits[t, b][None], tags[t, b][None])
    direct = direct / int(lengths.sum())
    assert_same(got, grads(model, direct))
    # evaluation stays unweighted
    plain = Tagging({"train": examples}, TrainConfig().check(), task.assets)
    assert task.batch_loss(model, examples, train=False).loss_sum == \
        pytest.approx(plain.batch_loss(model, examples, train=False).loss_sum, rel=1e-14)


@pytest.mark.parametrize("spec", [[0.0, 0.0, 1.0], ["last"]])
def test_targets_of_zero_weight_steps_do_not_change_the_gradient(spec):
    task, model, examples = tagging(spec)
    before = grads(model, task.batch_loss(model, examples, train=True).objective)
    for e in examples:                                # every tag of weight 0 replaced
        n = len(e.tag_ids)
        silent = range(min(2, n)) if spec != ["last"] else range(n - 1)
        for t in silent:
            e.tag_ids[t] = (int(e.tag_ids[t]) + 1) % len(task.assets.tags)
    after = grads(model, task.batch_loss(model, examples, train=True).objective)
    assert_same(after, before, rtol=1e-13)
    # a weighted step's target does count
    examples[0].tag_ids[-1] = (int(examples[0].tag_ids[-1]) + 1) % len(task.assets.tags)
    changed = grads(model, task.batch_loss(model, examples, train=True).objective)
    assert max(float((a - b).abs().max()) for a, b in zip(changed, before)) > 1e-6


# ------------------------------------------------------------------------------- music, forecast, decoders
def test_music_gradient_is_that_of_the_weighted_sum():
    torch.manual_seed(4)
    model = MusicModel(MusicModelConfig(keys=88, hidden_size=6, dropout=0.0, engine="bptt")).double()
    g = torch.Generator().manual_seed(0)
    pieces = [(torch.rand(n, 88, generator=g) < 0.1).double() for n in (4, 6, 2)]
    spec = [0.0, 2.0, 1.0]
    task = MusicModelling({"train": pieces}, TrainConfig(step_weights=spec).check())
    got = grads(model, task.batch_loss(model, pieces, train=True).objective)
    direct = 0.0
    for p in pieces:
        logits, _ = model(start_inputs(p[:, None]))                           # (n, 1, 88)
        w = w_of(spec, p.shape[0])
        for t in range(p.shape[0]):
            direct = direct + w[t] * F.binary_cross_entropy_with_logits(logits[t, 0], p[t], reduction="sum")
    assert_same(got, grads(model, direct / 12))


@pytest.mark.parametrize("spec", [[0.0, 3.0, 1.0], ["linear"]])
def test_forecast_and_decoder_losses_weigh_each_step(spec):
    T, B, C = 5, 3, 2
    pred = torch.randn(T, B, C, dtype=F64, requires_grad=True)
    sq = (pred - torch.randn(T, B, C, dtype=F64)) ** 2
    out = Forecasting.weighted(SimpleNamespace(config=TrainConfig(step_weights=spec).check()), sq)
    w = [(t + 1) / T for t in range(T)] if spec == ["linear"] else w_of(spec, T)
    direct = sum(w[t] * sq[t].sum() for t in range(T)) / (T * B * C)
    g1, = torch.autograd.grad(out.objective, pred, retain_graph=True)
    g2, = torch.autograd.grad(direct, pred)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=0)
    assert out.count == T * B * C
    # a decoder's words: each sentence's own steps, padding ignored
    logits = torch.randn(4, 2, 6, dtype=F64, requires_grad=True)
    y_out = torch.tensor([[1, 2], [3, 5], [0, IGNORE], [4, IGNORE]])
    got, = torch.autograd.grad(word_loss(logits, y_out, spec).objective, logits)
    direct = 0.0
    for b, n in enumerate((4, 2)):
        w = [(t + 1) / n for t in range(n)] if spec == ["linear"] else w_of(spec, n)
        for t in range(n):
            direct = direct + w[t] * F.cross_entropy(logits[t, b][None], y_out[t, b][None])
    want, = torch.autograd.grad(direct / 6, logits)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    assert word_loss(logits, y_out, []).loss_sum == word_loss(logits, y_out).loss_sum


def test_the_command_line_refuses_bad_weights_in_one_line(tmp_path, capsys):
    from rnnlab.cli import main
    assert main(["train", "--task", "tag", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                 "--step-weights", "1", "-0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "step_weights must be finite and >= 0" in err
    assert not (tmp_path / "run").exists()
