"""Starting points: --init-from a run (tensors by name and shape, word rows by word), --embeddings
from word2vec text or a word2vec run, the word2vec run's vectors.txt, and their one-line errors."""
import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data import Vocabulary
from rnnlab.embeddings.text_format import read_word2vec_text, write_word2vec_text
from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks import get_recipe
from rnnlab.tasks.recipe import load_run
from rnnlab.tasks.starting_points import init_embeddings, init_from

WORDS = "the cat sat on a mat dog ran far away and then slept".split()
TINY = dict(level="word", hidden_size=12, embed_size=6, batch_size=4, tbptt=(8, 8), max_steps=3,
            epochs=0, progress=False, sample_length=0, threads=1)
#: updates that leave the weights where they started (to within 1e-10): the run's start is its end
FROZEN = dict(optimizer="sgd", lr=1e-12, min_lr=0.0, momentum=0.0, schedule="none", clip_norm=0.0)


def _text(words, lines=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return "\n".join(" ".join(words[int(i)] for i in torch.randint(0, len(words), (6,), generator=g))
                     for _ in range(lines)) + "\n"


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpora")
    (d / "a.txt").write_text(_text(WORDS))
    (d / "b.txt").write_text(_text(WORDS[3:] + ["bird", "flew"], seed=1))    # another vocabulary
    return d


@pytest.fixture(scope="module")
def run_a(corpora):
    return rnnlab.train(data=str(corpora / "a.txt"), out=str(corpora / "A"), say=lambda m: None,
                        **TINY)["run_dir"]


def _weights(run_dir):
    return load_run(run_dir).model.state_dict()


def test_init_from_loads_matching_tensors_and_names_the_rest(run_a, corpora):
    said = []
    b = rnnlab.train(data=str(corpora / "a.txt"), out=str(corpora / "B"), init_from=run_a,
                     say=said.append, **{**TINY, **FROZEN, "layers": 2})["run_dir"]
    a, b = _weights(run_a), _weights(b)
    report = [s for s in said if s.startswith("--init-from")]
    assert len(report) == 1
    assert report[0].startswith(f"--init-from {run_a}: 7 of 11 tensors loaded; not loaded: ")
    assert "rnn.weight_ih_l1 (not in that run)" in report[0]
    for name in a:                           # layer 0, the embedding, the output layer
        torch.testing.assert_close(b[name], a[name], atol=1e-8, rtol=0)
    config = (corpora / "B" / "config.json").read_text()
    assert '"start": {' in config and '"init_from"' in config
    from rnnlab.diagnostics.diagnose import load_model
    start = load_model(str(corpora / "B"), initial=True)[2].state_dict()   # rebuilt as it began
    assert all(torch.equal(start[name], a[name]) for name in a)


def test_init_from_maps_word_rows_by_word(run_a, corpora):
    recipe = get_recipe("lm")
    theirs = load_run(run_a)
    vocab = Vocabulary.build((corpora / "b.txt").read_text(), "word")
    assert vocab.symbols != theirs.assets.symbols
    from rnnlab.models import LanguageModelConfig
    model = recipe.build_model(vocab, LanguageModelConfig(hidden_size=12, embed_size=6))
    said = []
    out = init_from(model, recipe, vocab, run_a, say=said.append)
    assert out["by_word"] == {"embedding.weight": 12, "decoder.weight": 12, "decoder.bias": 12}
    assert "embedding.weight 12 of 14 rows" in said[0]           # bird and flew are new
    own, a = model.state_dict(), theirs.model.state_dict()
    for w in WORDS[3:] + ["<unk>", "<eos>"]:
        i, j = vocab.index[w], theirs.assets.index[w]
        for name in ("embedding.weight", "decoder.weight", "decoder.bias"):
            assert torch.equal(own[name][i], a[name][j]), (w, name)
    torch.testing.assert_close(own["rnn.weight_hh_l0"], a["rnn.weight_hh_l0"], atol=0, rtol=0)


def _vector(i, d=6):
    return [round(0.01 * (i + 1) * (k + 1) - 0.1, 4) for k in range(d)]


def test_embeddings_from_word2vec_text_land_in_their_rows(corpora):
    vec = corpora / "vectors.txt"
    listed = {"cat": 0, "Dog": 1, "zebra": 2, "<eos>": 3}          # Dog: a case variant of dog
    vec.write_text(f"{len(listed)} 6\n" + "".join(
        f"{w} {' '.join(map(str, _vector(i)))}\n" for w, i in listed.items()))
    said = []
    run = rnnlab.train(data=str(corpora / "a.txt"), out=str(corpora / "E"), embeddings=str(vec),
                       say=said.append, **{**TINY, **FROZEN})["run_dir"]
    assert f"--embeddings {vec}: 3 of 15 words of embedding.weight found" in said
    loaded = load_run(run)
    emb, vocab = loaded.model.embedding.weight, loaded.assets
    for w, i in (("cat", 0), ("dog", 1), ("<eos>", 3)):
        torch.testing.assert_close(emb[vocab.index[w]], torch.tensor(_vector(i)), atol=1e-8, rtol=0)
    assert not torch.allclose(emb[vocab.index["mat"]], torch.tensor(_vector(0)))


@pytest.mark.parametrize("task", ["classify", "tag", "translate"])
def test_embeddings_reach_every_word_embedding(task, tmp_path):
    from rnnlab.models.classifier import ClassifierConfig
    from rnnlab.models.seq2seq import Seq2SeqConfig
    from rnnlab.models.tagger import TaggerConfig
    from rnnlab.tasks.classification import ClassifierAssets
    from rnnlab.tasks.tagging import TaggingVocabulary
    from rnnlab.tasks.translation import Vocabularies
    words = Vocabulary.build("the cat sat\nthe dog ran\n", "word")
    other = Vocabulary.build("die katze lief\nthe\n", "word")
    recipe = get_recipe(task)
    assets, config = {
        "classify": (ClassifierAssets(words, ["neg", "pos"], lowercase=True),
                     ClassifierConfig(embed_size=6, hidden_size=4, char_hidden_size=0)),
        "tag": (TaggingVocabulary(["<unk>", "the", "cat"], [0, 2, 1], ["<unk>", "a"], ["DET", "NOUN"],
                                  "xpos", False), TaggerConfig(embed_size=6, hidden_size=4, char_hidden_size=4)),
        "translate": (Vocabularies(other, words), Seq2SeqConfig(embed_size=6, hidden_size=4)),
    }[task]
    model = recipe.build_model(assets, config)
    vec = tmp_path / "v.txt"
    write_word2vec_text(vec, ["the", "cat", "katze"], torch.tensor([_vector(0), _vector(1), _vector(2)]))
    found = init_embeddings(model, recipe, assets, str(vec), say=lambda m: None)
    weights = model.state_dict()
    for name, rows in recipe.word_embeddings(assets).items():
        hits = [w for w in rows if w in ("the", "cat", "katze")]
        assert found[name] == len(hits) > 0
        for w in hits:
            v = _vector(["the", "cat", "katze"].index(w))
            torch.testing.assert_close(weights[name][list(rows).index(w)], torch.tensor(v), atol=1e-8, rtol=0)


def test_word2vec_run_writes_vectors_and_starts_a_language_model(corpora, capsys):
    w2v = corpora / "W"
    rnnlab.train(task="word2vec", data=str(corpora / "a.txt"), out=str(w2v), embed_size=6, window=2,
                 negatives=2, batch_size=64, epochs=1, progress=False, threads=1, say=lambda m: None)
    dim, vectors = read_word2vec_text(w2v / "vectors.txt")
    run = load_run(w2v)
    assert dim == 6 and set(vectors) == set(WORDS)                   # <unk>, <eos> never shown
    for w, v in vectors.items():
        assert torch.equal(v, run.model.projection[run.assets.vocab.index[w]])
    out = corpora / "LW"
    args = ["train", "--data", str(corpora / "a.txt"), "--out", str(out), "--level", "word",
            "--hidden-size", "12", "--embed-size", "6", "--batch-size", "4", "--tbptt", "8",
            "--max-steps", "1", "--epochs", "0", "--no-progress", "--sample-length", "0",
            "--threads", "1", "--embeddings", str(w2v)]
    assert main(args) == 0
    assert f"--embeddings {w2v}: 13 of 15 words of embedding.weight found" in capsys.readouterr().out


def test_word2vec_text_reader_refuses_malformed_files(tmp_path):
    p = tmp_path / "v.txt"
    for text, match in [("2 3\na 1 2 3\nb 1 2\n", "line 3: expected a word and 3 numbers, found 2"),
                        ("2 3\na 1 2 3\n", "the header announces 2 vectors, found 1"),
                        ("a 1 x 3\n", "line 1: expected 3 numbers after 'a', found 'x'"),
                        ("a 1 nan 3\n", "line 1: the vector of 'a' holds NaN"),
                        ("", "found no vector")]:
        p.write_text(text)
        with pytest.raises(DataError, match=match):
            read_word2vec_text(p)
    p.write_bytes(b"\x80\x81 binary")
    with pytest.raises(DataError, match="not utf-8 text"):
        read_word2vec_text(p)
    p.write_text("the 1 2\ncat 3 4\n")                              # GloVe: no header
    dim, found = read_word2vec_text(p, {"cat"})
    assert dim == 2 and list(found) == ["cat"] and found["cat"].tolist() == [3.0, 4.0]


def _one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlab: error: "), err
    return err[0]


def test_bad_starting_points_are_one_line_and_write_nothing(run_a, corpora, tmp_path, capsys):
    out = tmp_path / "never"
    base = ["train", "--data", str(corpora / "a.txt"), "--out", str(out), "--level", "word",
            "--embed-size", "6", "--hidden-size", "12", "--batch-size", "4", "--tbptt", "8",
            "--max-steps", "1", "--no-progress", "--threads", "1"]
    bad = tmp_path / "bad.txt"
    bad.write_text("2 6\ncat 1 2 3\n")
    wide = tmp_path / "wide.txt"
    write_word2vec_text(wide, ["cat"], torch.ones(1, 5))
    cases = [(["--init-from", str(corpora / "a.txt")], "--init-from", "expected a run directory"),
             (["--init-from", str(tmp_path)], "--init-from", "config.json"),
             (["--embeddings", str(bad)], "line 2: expected a word and 6 numbers, found 3", ""),
             (["--embeddings", str(wide)], "vectors of 5 numbers; this model's embedding.weight has 6",
              "--embed-size 5"),
             (["--embeddings", str(tmp_path / "missing.txt")], "nothing is there", "")]
    for extra, *needles in cases:
        line = _one_line_error(capsys, base + extra)
        assert all(n in line for n in needles), line
        assert not out.exists()
    line = _one_line_error(capsys, ["train", "--resume", str(run_a), "--init-from", str(run_a)])
    assert "--init-from starts a new run" in line
    with pytest.raises(ConfigError, match="task 'adding' has no word embedding"):
        rnnlab.train(task="adding", embeddings=str(wide), out=str(out), progress=False)
    assert not out.exists()
