"""Part-of-speech tagging (--task tag): the CoNLL-U reader, the vocabulary, the tagger, the commands."""
import json
import os
from pathlib import Path

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data.conllu import UPOS_TAGS, conllu_files, parse_conllu, read_conllu
from rnnlab.errors import CheckpointError, ConfigError, DataError
from rnnlab.models.tagger import Tagger, TaggerConfig
from rnnlab.tasks.tagging import TaggingDataConfig, TaggingVocabulary, read_splits

DATA = Path(os.environ.get("RNNLAB_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def token(i, form, upos="NOUN", xpos="NN"):
    return f"{i}\t{form}\t{form.lower()}\t{upos}\t{xpos}\t_\t0\troot\t_\t_"


# ------------------------------------------------------------------------------------ reader
SAMPLE = "\n".join([
    "# newdoc id = d1",                                  # 1
    "# sent_id = 1",                                     # 2
    "# text = I don't know.",                            # 3
    token(1, "I", "PRON", "PRP"),                        # 4
    "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_",                # 5  multiword token: skipped
    token(2, "do", "AUX", "VBP"),                        # 6
    token(3, "n't", "PART", "RB"),                       # 7
    token(4, "know", "VERB", "VB"),                      # 8
    "4.1\tknows\tknow\tVERB\tVBZ\t_\t_\t_\t0:root\t_",   # 9  empty node: skipped
    token(5, ".", "PUNCT", "."),                         # 10
    "",                                                  # 11
    "",                                                  # 12 a second blank line is allowed
    "# sent_id = 2",                                     # 13
    token(1, "Go", "VERB", "_"),                         # 14 XPOS may be "_"
    token(2, "!", "PUNCT", "."),                         # 15 (no blank line at the end)
]) + "\n"


def test_reader_skips_comments_multiword_tokens_and_empty_nodes():
    s = parse_conllu(SAMPLE, "f.conllu")
    assert [x.words for x in s] == [["I", "do", "n't", "know", "."], ["Go", "!"]]
    assert [x.upos for x in s] == [["PRON", "AUX", "PART", "VERB", "PUNCT"], ["VERB", "PUNCT"]]
    assert [x.xpos for x in s] == [["PRP", "VBP", "RB", "VB", "."], ["_", "."]]
    assert [x.lines for x in s] == [[4, 6, 7, 8, 10], [14, 15]]
    assert s[1].tags("upos") == ["VERB", "PUNCT"] and s[1].tags("xpos") == ["_", "."]


def test_reader_takes_windows_line_ends_and_a_byte_order_mark():
    s = parse_conllu("\ufeff" + SAMPLE.replace("\n", "\r\n"), "f.conllu")
    assert [x.words for x in s] == [["I", "do", "n't", "know", "."], ["Go", "!"]]
    assert s[1].lines == [14, 15]


def with_line(n, line):
    """SAMPLE with its line ``n`` replaced by ``line``."""
    lines = SAMPLE.split("\n")
    lines[n - 1] = line
    return "\n".join(lines)


@pytest.mark.parametrize("text, where, expected", [
    (with_line(6, "2\tdo\tdo\tAUX\tVBP\t_\t0\troot\t_"), "f.conllu:6:",
     "expected 10 tab-separated columns (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC), found 9"),
    (with_line(6, "2 do do AUX VBP _ 0 root _ _"), "f.conllu:6:", "expected 10 tab-separated columns"),
    (with_line(4, token("one", "I")), "f.conllu:4:", "expected an ID (a whole number, \"N-M\" or \"N.K\") "
     "in column 1, found 'one'"),
    (with_line(7, token(4, "n't")), "f.conllu:7:", "expected word ID 3 (IDs count 1, 2, 3, ... in each "
     "sentence), found 4"),
    (with_line(14, token(0, "Go")), "f.conllu:14:", "expected word ID 1"),
    (with_line(8, token(4, "know", "VRB")), "f.conllu:8:", "expected a universal POS tag in column 4 "
     "(UPOS), one of ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X, "
     "found 'VRB'"),
    (with_line(8, token(4, "know", "")), "f.conllu:8:", "UPOS), one of ADJ", ),
    (with_line(8, token(4, "know", "_")), "f.conllu:8:", "found '_'"),
    (with_line(8, token(4, "")), "f.conllu:8:", "expected a word form in column 2 (FORM), found nothing"),
    (with_line(8, token(4, "know", "VERB", "")), "f.conllu:8:", "expected a tag or \"_\" in column 5 (XPOS)"),
    (with_line(5, "3-4\tdon't\t_\t_\t_\t_\t_\t_\t_\t_"), "f.conllu:5:",
     "expected a multiword token range starting at ID 2 (\"2-M\" with M > 2), found '3-4'"),
    (with_line(5, "2-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_"), "f.conllu:5:", "found '2-2'"),
    (with_line(9, "3.1\tx\t_\tX\t_\t_\t_\t_\t_\t_"), "f.conllu:9:",
     "expected an empty node after word 4 (\"4.K\"), found '3.1'"),
    (with_line(9, "# a comment inside the sentence"), "f.conllu:9:", "expected a token line (10 "
     "tab-separated columns) or an empty line closing the sentence, found the comment"),
    (with_line(11, "  "), "f.conllu:11:", "expected an empty line between sentences, found whitespace"),
    (SAMPLE.split(token(1, "Go", "VERB", "_"))[0], "f.conllu:14:", "expected a word line (ID 1) in the "
     "sentence begun at line 13, found the end of the sentence"),
    (SAMPLE.replace("2-3\tdon't", "2-5\tdon't").replace(token(5, ".", "PUNCT", ".") + "\n", ""),
     "f.conllu:10:", "expected words up to ID 5 (the last multiword token's range), found the end of "
     "the sentence after ID 4"),
])
def test_malformed_lines_name_file_line_expected_and_found(text, where, expected):
    with pytest.raises(DataError) as e:
        parse_conllu(text, "f.conllu")
    message = str(e.value)
    assert message.startswith(where) and expected in message, message
    assert "\n" not in message


def test_encoding_errors_name_the_line(tmp_path):
    f = tmp_path / "bad.conllu"
    f.write_bytes(SAMPLE.encode("utf-8").replace(b"know\tknow", b"kn\xffow\tknow", 1))
    with pytest.raises(DataError, match=r"bad\.conllu:8: bytes that are not valid utf-8"):
        read_conllu(f)
    assert read_conllu(f, "latin-1")[0].words[3] == "kn\xffow"


def test_empty_missing_and_wordless_files(tmp_path):
    (tmp_path / "empty.conllu").write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        read_conllu(tmp_path / "empty.conllu")
    (tmp_path / "comments.conllu").write_text("# just a comment\n")
    with pytest.raises(DataError, match=r"comments\.conllu:2: expected a word line"):
        read_conllu(tmp_path / "comments.conllu")
    with pytest.raises(DataError, match="nothing is there"):
        read_conllu(tmp_path / "absent.conllu")


def test_folder_files_by_split_ignore_other_files(tmp_path):
    for name in ("en_x-ud-train.conllu", "en_x-ud-dev.conllu", "en_x-ud-test.conllu",
                 "en_x-ud-train.txt", "README.md", "stats.conllu"):
        (tmp_path / name).write_text(SAMPLE)
    assert {k: v.name for k, v in conllu_files(tmp_path).items()} == {
        "train": "en_x-ud-train.conllu", "valid": "en_x-ud-dev.conllu", "test": "en_x-ud-test.conllu"}
    (tmp_path / "en_x-ud-train.conllu").unlink()
    with pytest.raises(DataError, match="expected a training file .*found .conllu files: "
                                        "en_x-ud-dev.conllu, en_x-ud-test.conllu, stats.conllu"):
        conllu_files(tmp_path)


def test_one_file_is_cut_into_train_valid_test(tmp_path):
    f = tmp_path / "all.conllu"
    f.write_text("".join(f"{token(1, f'w{i}')}\n\n" for i in range(20)))
    splits = read_splits(TaggingDataConfig(str(f), valid_fraction=0.1, test_fraction=0.25).check())
    assert [s.words[0] for s in splits["test"]] == [f"w{i}" for i in range(15, 20)]
    assert [s.words[0] for s in splits["valid"]] == [f"w{i}" for i in range(13, 15)]   # 10% of 15
    assert [s.words[0] for s in splits["train"]] == [f"w{i}" for i in range(13)]


def test_ud_english_ewt_counts():
    folder = DATA / "ud_english_ewt"
    if not folder.is_dir():
        pytest.skip(f"UD English EWT not found at {folder}")
    dev = read_conllu(folder / "en_ewt-ud-dev.conllu")
    assert (len(dev), sum(len(s) for s in dev)) == (2001, 25147)      # SOURCE.md's counts
    assert dev[0].words == ["From", "the", "AP", "comes", "this", "story", ":"]
    assert dev[0].upos == ["ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT"]


# -------------------------------------------------------------------------------- vocabulary
def test_vocabulary_orders_words_by_count_and_keeps_upos_fixed():
    s = parse_conllu(SAMPLE + "\n" + "\n".join([token(1, "Go", "VERB", "VB"), token(2, "go", "VERB", "VB"),
                                                token(3, "!", "PUNCT", ".")]) + "\n", "f.conllu")
    v = TaggingVocabulary.build(s, "upos")
    assert v.words == ["<unk>", "!", "Go", ".", "I", "do", "go", "know", "n't"]
    assert v.counts == [0, 2, 2, 1, 1, 1, 1, 1, 1]
    assert v.tags == list(UPOS_TAGS) and len(v.tags) == 17
    assert v.word_ids(["Go", "GO", "know"]).tolist() == [2, 0, 7]
    low = TaggingVocabulary.build(s, "upos", lowercase=True, min_count=2)
    assert low.words == ["<unk>", "go", "!"] and low.word_ids(["GO", "know"]).tolist() == [1, 0]
    assert v.chars[0] == "<unk>" and set(v.chars[1:]) == set("!GI.dgoknwt'")


def test_xpos_tags_come_from_training_and_unknown_ones_are_refused():
    train = parse_conllu(token(1, "dogs", "NOUN", "NNS") + "\n" + token(2, "bark", "VERB", "VBP"), "t.conllu")
    v = TaggingVocabulary.build(train, "xpos")
    assert v.tags == ["NNS", "VBP"]
    ex = v.encode(train)[0]
    assert ex.tag_ids.tolist() == [0, 1] and ex.word_ids.tolist() == [2, 1]   # equal counts: word order
    other = parse_conllu(token(1, "dogs", "NOUN", "NNS") + "\n" + token(2, "barked", "VERB", "VBD"),
                         "o.conllu")
    with pytest.raises(DataError, match=r"o\.conllu:2: expected an XPOS tag of the training data "
                                        r"\(NNS VBP\), found 'VBD'"):
        v.encode(other)
    with pytest.raises(DataError, match=r"f\.conllu:14: expected an XPOS tag in column 5"):
        TaggingVocabulary.build(parse_conllu(SAMPLE, "f.conllu"), "xpos")


def test_batch_spells_each_distinct_word_once():
    v = TaggingVocabulary.build(parse_conllu(SAMPLE, "f.conllu"), "upos")
    b = v.batch([["Go", "!", "Go"], ["!"]])
    assert b["words"].tolist() == [[v.word_index["Go"], v.word_index["!"]], [v.word_index["!"], 0],
                                   [v.word_index["Go"], 0]]
    assert b["lengths"].tolist() == [3, 1]
    assert b["spelling"].tolist() == [[0, 1], [1, 0], [0, 0]]          # Go -> 0, ! -> 1
    assert b["char_lengths"].tolist() == [2, 1]
    assert b["chars"][:, 0].tolist() == [v.char_index["G"], v.char_index["o"]]
    assert b["chars"][0, 1] == v.char_index["!"]
    assert v.spelling("Gz").tolist() == [v.char_index["G"], 0]         # unknown character -> <unk>


def test_vocabulary_round_trips_and_refuses_corrupt_files(tmp_path):
    v = TaggingVocabulary.build(parse_conllu(SAMPLE, "f.conllu"), "upos", lowercase=True)
    v.save(tmp_path / "vocab.json")
    w = TaggingVocabulary.load(tmp_path / "vocab.json")
    assert (w.words, w.counts, w.chars, w.tags, w.tagset, w.lowercase) == \
        (v.words, v.counts, v.chars, v.tags, "upos", True)
    obj = v.to_json()
    obj["counts"] = obj["counts"][:-1]
    (tmp_path / "vocab.json").write_text(json.dumps(obj))
    with pytest.raises(CheckpointError, match="vocab.json: expected a tagger vocabulary"):
        TaggingVocabulary.load(tmp_path / "vocab.json")


# ------------------------------------------------------------------------------------- model
def tiny_tagger(cell="lstm", **kw):
    config = TaggerConfig(vocab_size=12, char_vocab_size=9, num_tags=5, embed_size=6, char_embed_size=4,
                          char_hidden_size=3, hidden_size=7, cell=cell, **kw)
    return Tagger(config, word_counts=[0] + [1] * 11)


def random_sentence(n, g):
    words = torch.randint(1, 12, (n,), generator=g)
    spellings = [torch.randint(1, 9, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g)
                 for _ in range(n)]
    return words, spellings


def run_batch(model, sentences):
    """The model on a padded batch of sentences, each word spelled separately (no sharing)."""
    from rnnlab.tasks.examples import pad
    words, lengths = pad([w for w, _ in sentences])                                   # (T, B)
    spell = [s for _, sp in sentences for s in sp]
    chars, char_lengths = pad(spell)
    spelling = torch.zeros_like(words)
    k = 0
    for b, (w, _) in enumerate(sentences):
        spelling[:len(w), b] = torch.arange(k, k + len(w))
        k += len(w)
    return model(words, lengths, chars, char_lengths, spelling)                       # (T, B, K)


@pytest.mark.parametrize("cell, engine", [("lstm", "auto"), ("lstm", "bptt"), ("gru", "auto")])
def test_padding_does_not_change_a_sentences_tags(cell, engine):
    model = tiny_tagger(cell, engine=engine, layers=2).eval()
    g = torch.Generator().manual_seed(1)
    sentences = [random_sentence(n, g) for n in (3, 7, 1, 5)]
    together = run_batch(model, sentences)
    for b, s in enumerate(sentences):
        alone = run_batch(model, [s])
        n = len(s[0])
        torch.testing.assert_close(together[:n, b], alone[:, 0], atol=1e-5, rtol=1e-5)
    # and a word's spelling decides its features: change one character, that word's input changes
    words, spellings = sentences[0]
    changed = [spellings[0], spellings[1].clone(), spellings[2]]
    changed[1][0] = 8 if changed[1][0] != 8 else 7
    assert not torch.allclose(run_batch(model, [(words, changed)]), run_batch(model, [sentences[0]]))


def test_word_dropout_replaces_a_word_seen_k_times_with_probability_alpha_over_alpha_plus_k():
    config = TaggerConfig(vocab_size=4, char_vocab_size=3, num_tags=2, embed_size=4, char_hidden_size=0,
                          hidden_size=4, dropout=0.0, word_dropout=1.0)
    model = Tagger(config, word_counts=[0, 1, 3, 1000])
    assert model.unk_probability.tolist() == pytest.approx([0.0, 0.5, 0.25, 1 / 1001])
    seen = []
    model.embedding.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    words = torch.tensor([1, 2] * 4000).view(-1, 1)                                 # (T, 1)
    model.train()
    model(words, torch.tensor([len(words)]))
    kept = seen[-1][:, 0]
    assert (kept[0::2] == 0).float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert (kept[1::2] == 0).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert set(kept.tolist()) <= {0, 1, 2}
    model.eval()
    model(words, torch.tensor([len(words)]))
    assert torch.equal(seen[-1], words)                                               # never at test time


def test_config_refuses_bad_sizes():
    with pytest.raises(ConfigError, match="num_tags must be a positive whole number"):
        TaggerConfig(vocab_size=3, char_vocab_size=3, num_tags=0).check()
    with pytest.raises(ConfigError, match="cell takes one of"):
        TaggerConfig(vocab_size=3, char_vocab_size=3, num_tags=2, cell="lstn").check()
    with pytest.raises(ConfigError, match="char_hidden_size must be a whole number >= 0"):
        TaggerConfig(vocab_size=3, char_vocab_size=3, num_tags=2, char_hidden_size=-1).check()
    with pytest.raises(ConfigError, match="needs --data"):
        TaggingDataConfig().check()


# ------------------------------------------------------------------------------- end to end
PATTERNS = [  # a toy grammar in which "run", "fly" and "saw" change tag with their neighbours
    ("the dog saw the run", "DET NOUN VERB DET NOUN"),
    ("dogs run .", "NOUN VERB PUNCT"),
    ("birds fly fast", "NOUN VERB ADV"),
    ("a fly saw the dog", "DET NOUN VERB DET NOUN"),
    ("I saw a saw .", "PRON VERB DET NOUN PUNCT"),
    ("the run was fast .", "DET NOUN AUX ADJ PUNCT"),
    ("they run and fly", "PRON VERB CCONJ VERB"),
    ("a big dog", "DET ADJ NOUN"),
]


def write_treebank(path, pairs):
    blocks = []
    for i, (text, tags) in enumerate(pairs, 1):
        lines = [f"# sent_id = {i}", f"# text = {text}"]
        lines += [token(k, w, t, "_") for k, (w, t) in enumerate(zip(text.split(), tags.split()), 1)]
        blocks.append("\n".join(lines) + "\n")
    path.write_text("\n".join(blocks) + "\n")


def test_train_evaluate_predict_on_a_tiny_treebank(tmp_path, capsys):
    folder = tmp_path / "bank"
    folder.mkdir()
    write_treebank(folder / "toy-train.conllu", PATTERNS * 3)
    write_treebank(folder / "toy-dev.conllu", PATTERNS)
    write_treebank(folder / "toy-test.conllu", PATTERNS[::-1])
    s = rnnlab.train(task="tag", data=str(folder), out=str(tmp_path / "run"), embed_size=16,
                     char_embed_size=8, char_hidden_size=8, hidden_size=24, dropout=0.0, word_dropout=0.0,
                     batch_size=4, lr=0.02, epochs=12, schedule="none", threads=1, progress=False)
    assert s["test"]["accuracy"] == 1.0 and s["valid"]["accuracy"] == 1.0
    run = s["run_dir"]
    result = rnnlab.evaluate(run)
    assert result["accuracy"] == 1.0 and result["words"] == 33
    assert result["loss"] == pytest.approx(s["test"]["loss"], rel=1e-5) and result["loss"] < 0.5
    one = tmp_path / "one.conllu"
    write_treebank(one, PATTERNS[4:5])
    assert rnnlab.evaluate(run, data=str(one))["words"] == 5
    assert rnnlab.predict(run, ["I saw a saw .", "", "they run"]) == \
        ["I/PRON saw/VERB a/DET saw/NOUN ./PUNCT", "", "they/PRON run/VERB"]
    capsys.readouterr()
    assert main(["evaluate", run, "--data", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["accuracy"] == 1.0 and out["words"] == 33 and set(out) == {"accuracy", "loss", "words"}
    (tmp_path / "in.txt").write_text("the dog saw the run\n")
    assert main(["predict", run, "--input", str(tmp_path / "in.txt")]) == 0
    assert capsys.readouterr().out == "the/DET dog/NOUN saw/VERB the/DET run/NOUN\n"
    bad = tmp_path / "bad.conllu"
    bad.write_text(token(1, "dog") + "\n" + token(3, "runs", "VERB") + "\n")
    with pytest.raises(DataError, match=r"bad\.conllu:2: expected word ID 2"):
        rnnlab.evaluate(run, data=str(bad))
