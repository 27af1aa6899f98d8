"""CTC: the loss against torch's ctc_loss and gradcheck, the decoders against brute force, the
label error rate, the generated digits and ``--task ctc`` end to end."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import rnnlab
from rnnlab.ctc import (collapse, ctc_loss, edit_distance, greedy_decode, label_error_rate,
                        prefix_beam_search, prefix_beam_search_one)
from rnnlab.data import ctc_digits as gen
from rnnlab.errors import ConfigError, DataError

D = torch.float64


def random_case(seed, T=12, B=5, C=5, S=4):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, B, C, generator=g, dtype=D)
    targets = torch.randint(1, C, (B, S), generator=g)
    targets[0, :3] = 2                                          # repeated labels: 2 2 2 needs 5 steps
    target_lengths = torch.tensor([3, S, 0, 2, 1][:B])
    # sequence 3 at its minimal feasible length (2 different labels: 2 steps; equal: 3)
    minimal = 2 + int(targets[3, 0] == targets[3, 1])
    input_lengths = torch.tensor([T, T - 2, 4, minimal, 1][:B])
    return logits, targets, input_lengths, target_lengths


# ------------------------------------------------------------------------------ the loss
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_loss_and_gradient_equal_torch(seed, reduction):
    logits, targets, il, tl = random_case(seed)
    ours_in = logits.clone().requires_grad_()
    theirs_in = logits.clone().requires_grad_()
    ours = ctc_loss(ours_in.log_softmax(-1), targets, il, tl, reduction=reduction)
    theirs = F.ctc_loss(theirs_in.log_softmax(-1), targets, il, tl, reduction=reduction)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    w = torch.linspace(0.5, 1.5, ours.numel(), dtype=D).view_as(ours)
    (ours * w).sum().backward()
    (theirs * w).sum().backward()
    torch.testing.assert_close(ours_in.grad, theirs_in.grad, rtol=1e-9, atol=1e-10)


def test_concatenated_targets_equal_padded():
    logits, targets, il, tl = random_case(3)
    lp = logits.log_softmax(-1)
    flat = torch.cat([targets[b, :n] for b, n in enumerate(tl.tolist())])
    torch.testing.assert_close(ctc_loss(lp, flat, il, tl, reduction="none"),
                               ctc_loss(lp, targets, il, tl, reduction="none"))
    torch.testing.assert_close(ctc_loss(lp, flat, il, tl, reduction="none"),
                               F.ctc_loss(lp, flat, il, tl, reduction="none"))


def test_gradcheck_log_probs_and_logits():
    """The hand-written backward is the exact gradient with respect to any log_probs (not only
    normalised ones), and through log_softmax."""
    logits, targets, il, tl = random_case(4, T=7, B=4, C=4, S=3)
    il = torch.tensor([7, 6, 4, 3])
    x = logits.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda z: ctc_loss(z, targets, il, tl, reduction="none"), (x,))
    assert torch.autograd.gradcheck(lambda z: ctc_loss(z.log_softmax(-1), targets, il, tl), (x,))


def test_gradient_is_minus_posterior_occupancy():
    """dDiv/dlog y_t(k) = -gamma_t(k): at every real step the occupancies sum to 1 over k."""
    logits, targets, il, tl = random_case(5)
    lp = logits.log_softmax(-1).requires_grad_()
    ctc_loss(lp, targets, il, tl, reduction="sum").backward()
    gamma = -lp.grad                                                        # (T, B, C)
    assert (gamma >= -1e-12).all()
    for b, n in enumerate(il.tolist()):
        torch.testing.assert_close(gamma[:n, b].sum(-1), torch.ones(n, dtype=D))
        assert bool((gamma[n:, b] == 0).all())


def test_brute_force_likelihood():
    """P(l | x) is the sum over every alignment that reads l."""
    g = torch.Generator().manual_seed(6)
    T, C = 5, 3
    lp = torch.randn(T, 1, C, generator=g, dtype=D).log_softmax(-1)
    for labels in ([1], [1, 1], [1, 2], [2, 1, 2], []):
        total = sum(math.exp(sum(lp[t, 0, k] for t, k in enumerate(path)))
                    for path in itertools.product(range(C), repeat=T) if collapse(path) == labels)
        div = ctc_loss(lp, torch.tensor([labels or [1]]), [T], [len(labels)], reduction="sum")
        assert math.isclose(float(div), -math.log(total), rel_tol=1e-10)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_infeasible_target_like_torch(zero_infinity):
    logits = torch.randn(4, 2, 4, dtype=D, generator=torch.Generator().manual_seed(7))
    targets = torch.tensor([[1, 1, 2], [1, 2, 3]])
    il, tl = torch.tensor([3, 4]), torch.tensor([3, 3])                   # 1 1 2 needs 4 steps
    ours_in, theirs_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = ctc_loss(ours_in.log_softmax(-1), targets, il, tl, reduction="none", zero_infinity=zero_infinity)
    theirs = F.ctc_loss(theirs_in.log_softmax(-1), targets, il, tl, reduction="none",
                        zero_infinity=zero_infinity)
    torch.testing.assert_close(ours, theirs)
    assert math.isinf(float(ours[0].detach())) != zero_infinity
    if zero_infinity:
        ours.sum().backward()
        theirs.sum().backward()
        torch.testing.assert_close(ours_in.grad, theirs_in.grad)
        assert ours_in.grad[:, 0].abs().max() == 0 and ours_in.grad[:, 1].abs().max() > 0


def test_bad_arguments_are_config_errors():
    lp = torch.randn(4, 1, 3).log_softmax(-1)
    with pytest.raises(ConfigError, match="blank"):
        ctc_loss(lp, torch.tensor([[0, 1]]), [4], [2])                     # the blank as a label
    with pytest.raises(ConfigError, match="0..2"):
        ctc_loss(lp, torch.tensor([[3]]), [4], [1])
    with pytest.raises(ConfigError, match="input_lengths"):
        ctc_loss(lp, torch.tensor([[1]]), [5], [1])
    with pytest.raises(ConfigError, match="reduction"):
        ctc_loss(lp, torch.tensor([[1]]), [4], [1], reduction="avg")


# ------------------------------------------------------------------------------ decoding
def clean_posteriors(alignments, C, sharp=0.9):
    """log_probs (T, B, C) putting ``sharp`` on each alignment's symbol and the rest spread."""
    T = max(len(a) for a in alignments)
    y = torch.full((T, len(alignments), C), (1 - sharp) / (C - 1), dtype=D)
    for b, a in enumerate(alignments):
        for t, k in enumerate(a):
            y[t, b] = (1 - sharp) / (C - 1)
            y[t, b, k] = sharp
    return y.log(), torch.tensor([len(a) for a in alignments])


def test_compiled_model_with_the_loss_equals_eager_and_compiles_once():
    """A training step of a recurrent model and ``ctc_loss`` under torch.compile: the loss runs
    outside the graph (its checks read values; its recursions, unrolled, were compiled again for
    every T, seconds each), so new lengths compile nothing; loss and gradients equal eager's."""
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    torch._dynamo.reset()
    counters.clear()
    rnn, out = rnnlab.LSTM(4, 8), torch.nn.Linear(8, 6)

    def step(x, targets, input_lengths, target_lengths):
        log_probs = out(rnn(x)[0]).log_softmax(-1)                          # (T, B, C)
        return ctc_loss(log_probs, targets, input_lengths, target_lengths)

    compiled = torch.compile(step)
    params = [*rnn.parameters(), *out.parameters()]
    for n, T in enumerate([12, 15, 9, 20, 11]):
        if n == 2:
            warm = counters["stats"]["unique_graphs"]
        x, targets = torch.randn(T, 3, 4), torch.randint(1, 6, (3, 4))
        args = (x, targets, torch.tensor([T, T - 1, T - 3]), torch.tensor([4, 3, 2]))
        got, want = compiled(*args), step(*args)
        torch.testing.assert_close(got, want)
        for a, b in zip(torch.autograd.grad(got, params), torch.autograd.grad(want, params)):
            torch.testing.assert_close(a, b)
    assert counters["stats"]["unique_graphs"] == warm


def test_decoders_recover_labels_of_clean_inputs():
    alignments = [[0, 3, 3, 0, 1, 1, 0, 1, 0], [2, 2, 2, 2], [0, 0, 0], [4, 0, 4, 1, 2, 2, 0, 3, 3]]
    labels = [[3, 1, 1], [2], [], [4, 4, 1, 2, 3]]
    lp, lengths = clean_posteriors(alignments, C=5)
    assert greedy_decode(lp, lengths) == labels
    assert prefix_beam_search(lp, lengths, beam=4) == labels
    assert prefix_beam_search(lp, lengths, beam=1) == labels


def brute_force_labellings(lp):
    """{labelling: P(labelling | x)} for lp (T, C), every alignment enumerated."""
    T, C = lp.shape
    out = {}
    for path in itertools.product(range(C), repeat=T):
        key = tuple(collapse(path))
        out[key] = out.get(key, 0.0) + math.exp(sum(float(lp[t, k]) for t, k in enumerate(path)))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_prefix_beam_search_finds_the_most_probable_labelling(seed):
    g = torch.Generator().manual_seed(100 + seed)
    T, C = 5, 3
    lp = (1.5 * torch.randn(T, C, generator=g, dtype=D)).log_softmax(-1)
    table = brute_force_labellings(lp)
    labelling, log_p = prefix_beam_search_one(lp, beam=10_000)
    best = max(table.values())
    assert math.isclose(table[tuple(labelling)], best, rel_tol=1e-12)
    assert math.isclose(log_p, math.log(best), rel_tol=1e-10)
    greedy = greedy_decode(lp.unsqueeze(1))[0]
    assert table[tuple(labelling)] >= table[tuple(greedy)]


def test_prefix_beam_search_never_worse_than_greedy():
    """In labelling probability P(l | x) (by the CTC loss), over random inputs, beam width 4."""
    g = torch.Generator().manual_seed(8)
    T, B, C = 10, 40, 4
    lp = (2 * torch.randn(T, B, C, generator=g, dtype=D)).log_softmax(-1)
    lengths = torch.full((B,), T)

    def log_p(labellings):
        S = max(max(len(l) for l in labellings), 1)
        targets = torch.tensor([l + [1] * (S - len(l)) for l in labellings])
        return -ctc_loss(lp, targets, lengths, [len(l) for l in labellings], reduction="none")

    greedy, beam = greedy_decode(lp, lengths), prefix_beam_search(lp, lengths, beam=4)
    assert (log_p(beam) >= log_p(greedy) - 1e-12).all()
    assert (log_p(beam) > log_p(greedy) + 1e-6).any()               # and sometimes better


# ------------------------------------------------------------------------------ label error rate
def test_edit_distance_and_label_error_rate():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], [1, 2]) == 2 and edit_distance([1, 2, 3], []) == 3
    assert edit_distance([1, 2, 3], [1, 3]) == 1 and edit_distance([3, 1], [1, 3]) == 2
    assert label_error_rate([[1, 2], [5]], [[1, 2, 3], [4]]) == pytest.approx(2 / 4)
    assert label_error_rate([[1, 2, 3]], [[1, 2, 3]]) == 0


# ------------------------------------------------------------------------------ generated digits
def test_rendering_is_seeded_and_keeps_equal_digits_apart():
    r = gen.Rendering(features=4, min_duration=2, max_duration=2, gap_probability=0.0, max_gap=1, noise=0.0)
    protos = gen.prototypes(4, torch.Generator().manual_seed(0))
    x = gen.render([3, 3, 5], protos, r, torch.Generator().manual_seed(1))
    silent = (x.abs().sum(-1) == 0).tolist()
    body = list(silent)
    while body and body[0]:
        body.pop(0)
    while body and body[-1]:
        body.pop()
    assert body == [False, False, True, False, False, False, False]    # 3 3, a gap, 3 3, no gap, 5 5
    a = gen.render([1, 2], protos, gen.Rendering(), torch.Generator().manual_seed(2))
    b = gen.render([1, 2], protos, gen.Rendering(), torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="max_duration"):
        gen.Rendering(min_duration=3, max_duration=2).check()


# ------------------------------------------------------------------------------ the task
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ctc") / "run"
    summary = rnnlab.train(task="ctc", out=str(out), train_sequences=96, valid_sequences=16,
                           test_sequences=40, max_digits=3, hidden_size=12, batch_size=16,
                           epochs=1, threads=1, progress=False)
    return summary


def test_task_trains_evaluates_and_predicts(tiny_run):
    run_dir = tiny_run["run_dir"]
    assert 0 <= tiny_run["test"]["label_error_rate"]
    greedy = rnnlab.evaluate(run_dir, length_edges=[8])
    assert greedy["loss"] == pytest.approx(tiny_run["test"]["loss"], rel=1e-5)
    assert greedy["label_error_rate"] == pytest.approx(tiny_run["test"]["label_error_rate"])
    n = greedy["sequences_T1-8"] + greedy.get("sequences_T9+", 0)
    assert n == greedy["sequences"] == 40
    beam = rnnlab.evaluate(run_dir, beam=3)
    assert beam["beam"] == 3 and beam["loss"] == greedy["loss"]
    out = rnnlab.predict(run_dir, ["1,2,3,4,5,6,7,8;0 0 0 0 0 0 0 0", ""])
    assert out[1] == "" and set(out[0]) <= set("0123456789")
    rendered = rnnlab.predict(run_dir, ["314", "7"], render=True, beam=2)
    assert len(rendered) == 2 and all(set(o) <= set("0123456789") for o in rendered)
    with pytest.raises(DataError, match="line 1: frame 2: expected 8 numbers"):
        rnnlab.predict(run_dir, ["1,2,3,4,5,6,7,8;1,2"])
    with pytest.raises(DataError, match="digit string"):
        rnnlab.predict(run_dir, ["3x4"], render=True)
    with pytest.raises(ConfigError, match="reads no --data"):
        rnnlab.evaluate(run_dir, data="x.txt")
