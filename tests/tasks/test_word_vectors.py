"""CBOW and skip-gram with negative sampling (rnnlab.embeddings, --task word2vec): windows, the
objective and its hand-written gradient, the noise distribution, learning on a corpus with two
clear word clusters, PCA, and the command-line round trip."""
import json
import math
from pathlib import Path

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data import Vocabulary
from rnnlab.embeddings import (group_precision, keep_probabilities, negative_sampling_loss,
                               neighbour_overlap, neighbours, noise_distribution, pca_2d,
                               query_neighbours)
from rnnlab.embeddings.batches import make_batch, plan_epoch
from rnnlab.embeddings.negative_sampling import NegativeSamplingLoss, draw_negatives
from rnnlab.embeddings.windows import context_window, skipgram_pairs, words_and_sentences
from rnnlab.errors import DataError

PTB = Path(__file__).resolve().parents[3] / "shared" / "data" / "ptb"


# ------------------------------------------------------------------------------ windows
def toy_stream():
    vocab = Vocabulary.build("a b c d e\nf g\n", "word")
    ids = vocab.encode("a b c d e\nf g\n")
    return vocab, *words_and_sentences(ids, vocab)


def test_eos_is_dropped_and_sentences_are_numbered():
    vocab, words, sentence = toy_stream()
    assert [vocab.symbols[i] for i in words] == list("abcdefg")
    assert sentence.tolist() == [0, 0, 0, 0, 0, 1, 1]


def test_skipgram_pairs_follow_radius_and_sentence():
    vocab, words, sentence = toy_stream()
    centres = torch.arange(7)
    radius = torch.tensor([2, 1, 2, 3, 1, 2, 2])
    contexts, mask = context_window(words, sentence, centres, radius, window=3)
    w, c = skipgram_pairs(words[centres], contexts, mask)
    got = sorted((vocab.symbols[a], vocab.symbols[b]) for a, b in zip(w.tolist(), c.tolist()))
    expected = [("a", "b"), ("a", "c"),                       # a: radius 2, nothing on the left
                ("b", "a"), ("b", "c"),
                ("c", "a"), ("c", "b"), ("c", "d"), ("c", "e"),
                ("d", "a"), ("d", "b"), ("d", "c"), ("d", "e"),   # radius 3 stops at the line end
                ("e", "d"),
                ("f", "g"), ("g", "f")]                       # never across the line end
    assert got == sorted(expected)


def test_cbow_windows_and_lone_words():
    vocab = Vocabulary.build("a b c\nd\n", "word")
    words, sentence = words_and_sentences(vocab.encode("a b c\nd\n"), vocab)
    noise = noise_distribution(torch.ones(len(vocab)))
    b = make_batch("cbow", words, sentence, torch.arange(4), torch.full((4,), 1), 1, noise, 3,
                   torch.Generator().manual_seed(0))
    # d is alone in its line: no window; b's window is {a, c}
    assert [vocab.symbols[i] for i in b.centres] == ["a", "b", "c"]
    ctx = [sorted(vocab.symbols[i] for i, m in zip(row, mrow) if m)
           for row, mrow in zip(b.contexts.tolist(), b.mask.tolist())]
    assert ctx == [["b"], ["a", "c"], ["b"]] and b.negatives.shape == (3, 3)


def test_dynamic_window_is_uniform_and_plan_is_seeded():
    words = torch.zeros(20000, dtype=torch.long)
    sentence = torch.zeros(20000, dtype=torch.long)
    keep = torch.ones(1, dtype=torch.double)
    p = plan_epoch(words, sentence, keep, 4, seed=3, epoch=1)
    share = torch.bincount(p.radius, minlength=5)[1:].double() / 20000
    assert torch.allclose(share, torch.full((4,), 0.25, dtype=torch.float64), atol=0.015)
    q = plan_epoch(words, sentence, keep, 4, seed=3, epoch=1)
    assert torch.equal(p.radius, q.radius) and torch.equal(p.order, q.order)
    assert not torch.equal(p.order, plan_epoch(words, sentence, keep, 4, seed=3, epoch=2).order)


# ------------------------------------------------------------------------------ the objective
def direct_loss(h, u_pos, u_neg):
    """-log sigma(u_o . h) - sum_k log sigma(-u_k . h), written out."""
    s_pos = (u_pos * h).sum(-1)
    s_neg = torch.einsum("pkd,pd->pk", u_neg, h)
    return -torch.log(torch.sigmoid(s_pos)) - torch.log(torch.sigmoid(-s_neg)).sum(-1)


def test_loss_and_gradient_equal_autograd_of_the_formula():
    g = torch.Generator().manual_seed(1)
    P, K, D = 7, 4, 5
    h, u_pos, u_neg = (torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)
                       for s in ((P, D), (P, D), (P, K, D)))
    w = torch.randn(P, generator=g, dtype=torch.float64)
    ours = negative_sampling_loss(h, u_pos, u_neg)
    ref = direct_loss(h, u_pos, u_neg)
    assert torch.allclose(ours, ref, atol=1e-12)
    g_ours = torch.autograd.grad((ours * w).sum(), (h, u_pos, u_neg))
    g_ref = torch.autograd.grad((ref * w).sum(), (h, u_pos, u_neg))
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.autograd.gradcheck(NegativeSamplingLoss.apply, (h, u_pos, u_neg))


def test_loss_is_finite_where_the_direct_formula_overflows():
    h = torch.tensor([[60.0]], dtype=torch.float64)
    loss = negative_sampling_loss(h, -h, h.unsqueeze(1))        # s_+ = -3600, s_1 = 3600
    assert loss.item() == pytest.approx(7200.0)


def test_noise_distribution_is_unigram_to_three_quarters():
    counts = torch.tensor([0, 1, 16, 81, 0, 256])
    p = noise_distribution(counts)
    expected = torch.tensor([0, 1, 8, 27, 0, 64], dtype=torch.float64) / 100
    assert torch.allclose(p, expected, atol=1e-15)
    draws = draw_negatives(p, (200, 500), torch.Generator().manual_seed(0))
    freq = torch.bincount(draws.flatten(), minlength=6).double() / draws.numel()
    assert freq[0] == 0 and freq[4] == 0
    assert torch.allclose(freq, expected, atol=0.004)


def test_subsampling_keeps_rare_words_and_thins_frequent_ones():
    counts = torch.tensor([1, 10, 989])                # f = 0.001, 0.01, 0.989
    keep = keep_probabilities(counts, 1e-2)
    assert keep[0] == 1 and keep[1] == pytest.approx(1.0) and keep[2] == pytest.approx(math.sqrt(0.01 / 0.989))
    assert torch.equal(keep_probabilities(counts, 0), torch.ones(3, dtype=torch.float64))


# ------------------------------------------------------------------------------ learning
def two_cluster_text(lines=300, seed=0):
    """Lines of 6 words drawn from one of two clusters of 5 words each: words of a cluster share
    their contexts, words of different clusters never meet."""
    g = torch.Generator().manual_seed(seed)
    clusters = [[f"a{i}" for i in range(5)], [f"b{i}" for i in range(5)]]
    out = []
    for n in range(lines):
        words = clusters[n % 2]
        out.append(" ".join(words[int(i)] for i in torch.randint(0, 5, (6,), generator=g)))
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def cluster_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("clusters")
    (d / "train.txt").write_text(two_cluster_text())
    (d / "valid.txt").write_text(two_cluster_text(20, seed=1))
    (d / "test.txt").write_text(two_cluster_text(20, seed=2))
    return d


TINY = dict(embed_size=8, window=2, negatives=3, subsample=0.0, batch_size=64, lr=0.05,
            epochs=8, progress=False, threads=1)


@pytest.mark.parametrize("method", ["skipgram", "cbow"])
def test_training_puts_same_cluster_words_nearest(method, cluster_corpus, tmp_path):
    s = rnnlab.train(task="word2vec", data=str(cluster_corpus), out=str(tmp_path / method),
                     method=method, say=lambda m: None, **TINY)
    # half the noise words share the cluster of the true word and cannot be told from it: the
    # best rank accuracy is 1/2 + 1/2 * 1/2 = 0.75, chance 0.5
    assert s["test"]["rank_accuracy"] > 0.7
    assert s["test"]["loss"] < 0.8 * 4 * math.log(2)          # untrained: (K + 1) log 2
    run = rnnlab.tasks.recipe.load_run(s["run_dir"])
    vocab, vectors = run.assets.vocab, run.model.projection
    for word in [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]:
        near = [w for w, _ in neighbours(vectors, vocab, word, 4)]
        assert all(w[0] == word[0] for w in near), (word, near)
    groups = {"a": [f"a{i}" for i in range(5)], "b": [f"b{i}" for i in range(5)]}
    assert group_precision(vectors, vocab, groups, k=4)["all"] == 1.0


def test_training_is_deterministic(cluster_corpus, tmp_path):
    runs = [rnnlab.train(task="word2vec", data=str(cluster_corpus), out=str(tmp_path / str(i)),
                         say=lambda m: None, **{**TINY, "epochs": 2}) for i in range(2)]
    weights = [rnnlab.tasks.recipe.load_run(s["run_dir"]).model.state_dict() for s in runs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert runs[0]["test"] == runs[1]["test"]


def test_resumed_run_equals_the_uninterrupted_one(cluster_corpus, tmp_path):
    cfg = {**TINY, "epochs": 2, "schedule": "none"}
    whole = rnnlab.train(task="word2vec", data=str(cluster_corpus), out=str(tmp_path / "whole"),
                         say=lambda m: None, **cfg)
    rnnlab.train(task="word2vec", data=str(cluster_corpus), out=str(tmp_path / "cut"),
                 say=lambda m: None, **{**cfg, "max_steps": 7})
    resumed = rnnlab.train(resume=str(tmp_path / "cut"), max_steps=0, say=lambda m: None)
    assert resumed["steps"] == whole["steps"] > 7 and resumed["test"] == whole["test"]


# ------------------------------------------------------------------------------ reading vectors
def test_pca_recovers_a_planar_layout_up_to_sign():
    g = torch.Generator().manual_seed(0)
    layout = torch.randn(12, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.0])
    layout = layout - layout.mean(0)
    basis, _ = torch.linalg.qr(torch.randn(6, 2, generator=g, dtype=torch.float64))   # (6, 2)
    points = layout @ basis.T + torch.randn(6, generator=g, dtype=torch.float64)       # (12, 6)
    coords, share = pca_2d(points)
    # principal axes of the layout itself: recovered coordinates are its rotation onto them
    _, _, vh = torch.linalg.svd(layout)
    expected = layout @ vh.T
    for k in range(2):
        sign = 1.0 if torch.dot(coords[:, k], expected[:, k]) > 0 else -1.0
        assert torch.allclose(coords[:, k], sign * expected[:, k], atol=1e-10)
    assert share.sum().item() == pytest.approx(1.0) and share[0] > share[1]
    dist = torch.cdist(coords, coords)
    assert torch.allclose(dist, torch.cdist(layout, layout), atol=1e-10)


def test_neighbours_arithmetic_and_overlap():
    vocab = Vocabulary(["<unk>", "<eos>", "king", "queen", "man", "woman"], "word")
    v = torch.tensor([[0.0, 0, 1], [0, 0, -1], [1, 1, 0], [1, -1, 0], [0, 1, 0.1], [0, -1, 0.1]])
    assert neighbours(v, vocab, "king", 1)[0][0] == "man"
    assert query_neighbours(v, vocab, "king - man + woman", 1)[0][0] == "queen"
    assert neighbour_overlap(v, v, [2, 3, 4, 5], k=2) == 1.0
    swapped = v[[0, 1, 2, 3, 5, 4]]                           # man and woman trade places
    assert neighbour_overlap(v, swapped, [2, 3], k=1) == 0.0
    with pytest.raises(DataError, match="'prince' is not in the vocabulary"):
        query_neighbours(v, vocab, "prince", 1)
    for bad in ("king +", "king + - man", "+", "  "):
        with pytest.raises(DataError, match="expected a word or 'a - b \\+ c'"):
            query_neighbours(v, vocab, bad, 1)
    assert query_neighbours(v, vocab, "man woman", 1)[0][0] == "<unk>"        # along (0, 0, 1)
    assert [w for w, _ in query_neighbours(v, vocab, "man woman", 3, exclude=[0])][2] == "<eos>"


# ------------------------------------------------------------------------------ command line
def test_command_line_round_trip(cluster_corpus, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--task", "word2vec", "--data", str(cluster_corpus), "--out", str(out),
            "--method", "cbow", "--embed-size", "8", "--window", "2", "--subsample", "0",
            "--batch-size", "64", "--lr", "0.05", "--epochs", "2", "--threads", "1", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "negative-sampling loss" in text and "rank accuracy" in text
    assert main(["evaluate", str(out), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    summary = json.loads((out / "summary.json").read_text())
    assert figures["loss"] == summary["test"]["loss"]
    assert figures["predictions"] == summary["test"]["predictions"] > 0
    inp = tmp_path / "words.txt"
    inp.write_text("a1\n\nb2 - b1 + a1\n")
    assert main(["predict", str(out), "--input", str(inp), "--neighbours", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[1] == ""
    assert lines[0].startswith("a1: ") and len(lines[0].split(", ")) == 3
    inp.write_text("a1\nzebra\n")
    assert main(["predict", str(out), "--input", str(inp)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rnnlab: error: line 2: 'zebra' is not in the vocabulary (12 words)"]
    assert main(["train", "--task", "word2vec", "--data", str(cluster_corpus), "--method", "glove",
                 "--out", str(tmp_path / "bad")]) != 0
    assert "method takes one of 'skipgram', 'cbow'" in capsys.readouterr().err


@pytest.mark.skipif(not PTB.exists(), reason=f"Penn Treebank not found at {PTB}")
def test_ptb_vocabulary_is_the_language_models():
    from rnnlab.tasks.language_modelling import LanguageModelling, TextDataConfig
    from rnnlab.tasks.word_vectors import WordVectorsDataConfig, WordVectorTraining
    from rnnlab.training.config import TrainConfig
    job = WordVectorTraining.from_text(WordVectorsDataConfig(data=str(PTB)), TrainConfig())
    lm = LanguageModelling.from_text(TextDataConfig(data=str(PTB), level="word"), TrainConfig())
    assert job.assets.vocab.symbols == lm.vocab.symbols and len(job.assets.vocab) == 10000
    assert int(job.assets.counts.sum()) == 887521 and job.assets.counts[1] == 0   # no <eos>
    assert group_precision(torch.randn(10000, 50), job.assets.vocab)["all"] < 0.02
