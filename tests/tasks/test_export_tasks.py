"""``rnnlab export`` of a run of the tasks beyond lm/classify/tag (test_export.py): the CTC model,
the music model, the forecaster, and the encoder and decoder step of the translation and
captioning models. Each test trains a tiny run, exports it to ONNX, feeds ONNX Runtime what
``rnnlab predict`` reads (built from the JSON beside the graph, with numpy only) and gets the
same predictions."""
import json

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.cli import main

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install rnnlab[export])")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install rnnlab[export])")

pytestmark = pytest.mark.slow


def _export(run, tmp_path, capsys):
    """Export ``run`` to ONNX through the command line: the JSON and the out path."""
    out = tmp_path / "exported" / "model.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    return json.loads(out.with_suffix(".json").read_text()), out


def _session(path, ports):
    """An ONNX Runtime session whose inputs and outputs are the JSON's ports, in order."""
    session = onnxruntime.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == [p["name"] for p in ports["inputs"]]
    assert [o.name for o in session.get_outputs()] == [p["name"] for p in ports["outputs"]]
    return session


def _encoder_decoder(out, meta):
    """The two sessions of a translation or captioning export, and a greedy decoder over them:
    ``greedy(encoder_inputs, steps, vocabulary)`` -> the words, as rnnlab predict's beam size 1."""
    graphs = meta["graphs"]
    encoder = _session(out.parent / graphs["encoder"]["graph"], graphs["encoder"])
    decoder = _session(out.parent / graphs["decoder"]["graph"], graphs["decoder"])
    fields = [p["name"] for p in graphs["encoder"]["outputs"]]
    n_hidden = len(graphs["decoder"]["outputs"]) - 1

    def greedy(inputs, steps, vocabulary):
        state = dict(zip(fields, encoder.run(None, inputs)))
        token, words = meta["eos"], []
        for _ in range(steps):
            log_probs, *hidden = decoder.run(None, {"tokens": np.array([token]), **state})
            token = int(log_probs[0].argmax())
            if token == meta["eos"]:
                break
            words.append(vocabulary[token])
            state.update(zip(fields[:n_hidden], hidden))
        return " ".join(words)
    return encoder, decoder, greedy


def test_ctc_export_decodes_what_rnnlab_predict_prints(tmp_path, capsys):
    from rnnlab.data import ctc_digits as gen
    from rnnlab.tasks.ctc import prototypes
    from rnnlab.tasks.recipe import load_run
    run = tmp_path / "run"
    rnnlab.train(task="ctc", out=str(run), train_sequences=256, valid_sequences=16, test_sequences=16,
                 max_digits=3, hidden_size=16, batch_size=16, epochs=4, threads=1, progress=False)
    meta, out = _export(run, tmp_path, capsys)
    session = _session(out, meta)
    assert meta["task"] == "ctc" and meta["labels"][meta["blank"]] == "<blank>"
    loaded = load_run(run)
    protos = prototypes(loaded.data)
    lines = []
    for k, digits in enumerate([[3, 1, 4], [7], [2, 2, 9], [5, 0]]):
        x = gen.render(digits, protos, loaded.data.rendering(), torch.Generator().manual_seed(k))
        lines.append(";".join(",".join(f"{v:.5f}" for v in frame) for frame in x.tolist()))
    want = rnnlab.predict(run, lines)
    got = []
    model = loaded.model.eval()
    for line in lines:
        frames = np.array([[float(v) for v in f.split(",")] for f in line.split(";")], dtype=np.float32)
        log_probs = session.run(None, {"x": frames[:, None], "lengths": np.array([len(frames)])})[0]
        with torch.no_grad():  # (a tiny run may decode nothing yet: its log-probabilities too)
            eager = model(torch.from_numpy(frames)[:, None], torch.tensor([len(frames)]))
        torch.testing.assert_close(torch.from_numpy(log_probs), eager, atol=1e-5, rtol=0)
        best = log_probs[:, 0].argmax(-1)                                   # (T,) greedy path
        labels = [int(k) for j, k in enumerate(best) if k != meta["blank"] and (j == 0 or k != best[j - 1])]
        got.append("".join(meta["labels"][k] for k in labels))
    assert got == want


def test_music_export_continues_as_rnnlab_predict_at_temperature_zero(tmp_path, capsys):
    from test_music import SMALL, _toy
    run = tmp_path / "run"
    rnnlab.train(task="music", data=str(_toy(tmp_path / "toy.json")), out=str(run), sample_length=0,
                 **dict(SMALL, epochs=8))
    meta, out = _export(run, tmp_path, capsys)
    session = _session(out, meta)
    K, low = meta["keys"], meta["lowest_note"]
    primer = [[60, 64, 67], [62, 65, 69], [64, 67, 71]]
    want = rnnlab.predict(run, [" ".join(map(str, c)) for c in primer], length=6, temperature=0,
                          output="")
    roll = np.zeros((len(primer) + 1, K), dtype=np.float32)                # the primer, then x_0 = 0
    for t, chord in enumerate(primer):
        roll[t, [n - low for n in chord]] = 1
    inputs = np.concatenate([np.zeros((1, K), np.float32), roll[:-1]])[:, None]  # x_t = r_{t-1}
    state = {p["name"]: np.zeros([1 if s == "B" else int(s) for s in p["shape"]], np.float32)
             for p in meta["inputs"][2:]}
    got = []
    for _ in range(6):
        logits, *final = session.run(None, {"inputs": inputs, "lengths": np.array([len(inputs)]), **state})
        step = logits[-1, 0] > 0                                            # temperature 0
        got.append(" ".join(str(low + k) for k in np.flatnonzero(step)) or "-")
        inputs, state = step.astype(np.float32)[None, None], dict(zip(state, final))
    assert got == want


@pytest.mark.parametrize("settings", [dict(hidden_size=12, highway=False, epochs=2, batch_size=16, lr=1e-2),
                                      dict(hidden_size=8, epochs=1, batch_size=16, scale="log"),
                                      dict(model="esn")], ids=["rnn", "log-scale", "esn"])
def test_forecast_export_forecasts_what_rnnlab_predict_prints(settings, tmp_path, capsys):
    import math
    from test_forecasting import sine_csv
    run = tmp_path / "run"
    rnnlab.train(task="forecast", data=str(sine_csv(tmp_path)), targets=["load"], lookback=16,
                 horizons=[4, 8], **settings, threads=1, progress=False, out=str(run), say=lambda m: None)
    meta, out = _export(run, tmp_path, capsys)
    session = _session(out, meta)
    assert meta["columns"] == ["load"] and meta["horizon"] == 8
    lines = [",".join(f"{20 + 5 * math.sin(2 * math.pi * (t + s) / 16):.5f}" for t in range(24))
             for s in (0, 3, 7)]
    want = [[float(v) for v in line.split(",")] for line in rnnlab.predict(run, lines)]
    mean, std, L, C = np.array(meta["mean"]), np.array(meta["std"]), meta["lookback"], meta["targets"]
    past = np.stack([(np.array([float(v) for v in line.split(",")])[-L:, None] - mean) / std
                     for line in lines], axis=1).astype(np.float32)           # (L, B, F)
    forecast = session.run(None, {"past": past})[0].astype(np.float64)       # (H, B, C)
    got = forecast * std[:C] + mean[:C]
    np.testing.assert_allclose(got[:, :, 0].T, np.array(want), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("context,settings", [("attention", {}), ("both", {}), ("init", {}),
                                              ("input", dict(layers=2))])
def test_translation_export_translates_greedily_as_rnnlab_predict(context, settings, tmp_path, capsys):
    from test_translation import PAIRS, train_toy, write
    folder = tmp_path / "toy"
    folder.mkdir()
    for split in ("train", "val", "test"):
        write(folder / f"{split}.en", "".join(s + "\n" for s, _ in PAIRS))
        write(folder / f"{split}.de", "".join(t + "\n" for _, t in PAIRS))
    run = tmp_path / "run"
    train_toy(folder, run, context, **settings)
    meta, out = _export(run, tmp_path, capsys)
    assert set(meta["graphs"]) == {"encoder", "decoder"}
    _, _, greedy = _encoder_decoder(out, meta)
    source = {w: i for i, w in enumerate(meta["source_vocabulary"])}
    lines = ["a man runs", "two dogs run", "the woman sings loudly", "a unseenword plays"]
    want = rnnlab.predict(run, lines, beam_size=1)
    got = []
    for line in lines:
        src = np.array([source.get(w, meta["unknown"]) for w in line.split()], dtype=np.int64)[:, None]
        got.append(greedy({"src": src, "lengths": np.array([len(src)])}, 2 * len(src) + 10,
                          meta["target_vocabulary"]))
    assert got == want
    assert want[0] == "ein mann läuft"                                         # the run learned


@pytest.mark.parametrize("context", ["both", "first"])
def test_caption_export_captions_greedily_as_rnnlab_predict(context, tmp_path, capsys):
    from PIL import Image
    from test_captioning import SMALL
    from rnnlab.data import scenes as gen
    run = tmp_path / "run"
    rnnlab.train(task="caption", out=str(run), **dict(SMALL, context=context))
    meta, out = _export(run, tmp_path, capsys)
    _, _, greedy = _encoder_decoder(out, meta)
    gen.write_pngs(gen.generate_set([gen.TEST_OFFSET + i for i in range(6)]), tmp_path / "png", "x")
    paths = sorted(str(p) for p in (tmp_path / "png").glob("x-*.png"))
    want = rnnlab.predict(run, paths)
    got = []
    for path in paths:
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0        # (H, W, 3)
        assert pixels.shape == (meta["image_height"], meta["image_width"], 3)
        got.append(greedy({"images": pixels.transpose(2, 0, 1)[None]}, 20, meta["vocabulary"]))
    assert got == want
    assert all(len(c.split()) >= 3 for c in want)                              # the run learned to caption


def test_caption_export_of_a_run_on_feature_vectors(tmp_path, capsys):
    """A captioner that reads feature vectors (features.npy) exports with a 'features' input; the
    encoder and a decoder step equal the model's own."""
    from data.test_caption_files import TINY
    from rnnlab.tasks.recipe import load_run
    root, rng = tmp_path / "feat", np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        (root / split).mkdir(parents=True)
        np.save(root / split / "features.npy", rng.normal(size=(n, 5)).astype(np.float32))
        (root / split / "features.txt").write_text("".join(f"img{i}.jpg\n" for i in range(n)))
        (root / split / "captions.tsv").write_text("".join(f"img{i}.jpg\ta {'cat' if i % 2 else 'dog'}\n"
                                                           for i in range(n)))
    rnnlab.train(task="caption", data=str(root), out=str(tmp_path / "run"), **TINY)
    meta, out = _export(tmp_path / "run", tmp_path, capsys)
    assert meta["features"] == 5 and meta["graphs"]["encoder"]["inputs"][0]["shape"] == ["B", "5"]
    encoder, decoder, _ = _encoder_decoder(out, meta)
    features = rng.normal(size=(3, 5)).astype(np.float32)
    fields = [p["name"] for p in meta["graphs"]["encoder"]["outputs"]]
    got = dict(zip(fields, encoder.run(None, {"features": features})))
    model = load_run(tmp_path / "run").model.eval()
    with torch.no_grad():
        state = model.encode(torch.from_numpy(features))
        log_probs, _ = model.step(torch.full((3,), meta["eos"]), state)
    for name, want in zip(fields, (*state.hidden, state.context)):
        np.testing.assert_allclose(got[name], want.numpy(), rtol=1e-5, atol=1e-6)
    step = decoder.run(None, {"tokens": np.full(3, meta["eos"]), **got})
    np.testing.assert_allclose(step[0], log_probs.numpy(), rtol=1e-5, atol=1e-5)


QUICK = dict(max_steps=5, epochs=0, threads=1, progress=False, say=lambda m: None)


def _softmax(z):
    p = np.exp(z - z.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def test_adding_and_copy_exports_answer_as_rnnlab_predict(tmp_path, capsys):
    run = tmp_path / "adding"
    rnnlab.train(task="adding", cell="gru", length=6, train_sequences=40, valid_sequences=10,
                 test_sequences=10, hidden_size=4, batch_size=10, out=str(run), **QUICK)
    meta, out = _export(run, tmp_path, capsys)
    session = _session(out, meta)
    lines = ["0.5,0,0.25,1,0.1,0,0.9,1", "0.3,1,0.2,1", "0.7,1"]
    pairs = [np.array([float(v) for v in line.split(",")], np.float32).reshape(-1, 2) for line in lines]
    x = np.zeros((4, 3, 2), np.float32)                                     # one batch, padded
    for b, p in enumerate(pairs):
        x[:len(p), b] = p
    y = session.run(None, {"x": x, "lengths": np.array([len(p) for p in pairs])})[0]
    assert [f"{float(v):.6g}" for v in y] == rnnlab.predict(run, lines)

    run = tmp_path / "copy"
    rnnlab.train(task="copy", length=5, train_sequences=100, valid_sequences=10, test_sequences=10,
                 hidden_size=8, batch_size=20, out=str(run), **QUICK)
    meta, out = _export(run, tmp_path / "c", capsys)
    session = _session(out, meta)
    lines = ["1,2,3,0,0,0,9,0,0,0", "4,4,0,9,0,0"]
    got = [",".join(str(k) for k in session.run(None, {"tokens": np.array([[int(s)] for s in line.split(",")])})[0]
                    [:, 0].argmax(-1)) for line in lines]
    assert got == rnnlab.predict(run, lines) and meta["symbols"] == 10


def test_word2vec_export_ranks_neighbours_as_rnnlab_predict(tmp_path, capsys):
    from test_word_vectors import TINY, two_cluster_text
    (tmp_path / "text.txt").write_text(two_cluster_text())
    run = tmp_path / "run"
    rnnlab.train(task="word2vec", data=str(tmp_path / "text.txt"), out=str(run), say=lambda m: None, **TINY)
    meta, out = _export(run, tmp_path, capsys)
    session = _session(out, meta)
    index = {w: i for i, w in enumerate(meta["vocabulary"])}
    lines = ["a0", "b3", "a1 - a2 + b4"]
    want = rnnlab.predict(run, lines, neighbours=3)
    got = []
    for line in lines:
        terms = [(-1.0 if line.split()[k - 1] == "-" else 1.0, w) for k, w in enumerate(line.split()) if w not in "+-"]
        words = np.array([[index[w] for _, w in terms]])
        cosine = session.run(None, {"words": words, "signs": np.array([[s for s, _ in terms]], np.float32)})[0][0]
        cosine[list(words[0]) + meta["unseen"]] = -np.inf
        top = np.argsort(-cosine, kind="stable")[:3]
        got.append(f"{line}: " + ", ".join(f"{meta['vocabulary'][k]} {cosine[k]:.3f}" for k in top))
    assert got == want


def _bracketed(line, labels_of):
    """A bracketed tree '(3 (2 a) (3 good))' as numbered nodes in postorder: (labels (N,),
    children (N, 2), the root's number); ``labels_of(word or None)`` gives a node's label index."""
    tokens = line.replace("(", " ( ").replace(")", " ) ").split()
    labels, children, at = [], [], 0

    def node():
        nonlocal at
        at += 2                                                # "(" and the node's label
        kids, word = [], None
        while tokens[at] != ")":
            if tokens[at] == "(":
                kids.append(node())
            else:
                word, at = tokens[at], at + 1
        at += 1
        labels.append(labels_of(word))
        children.append(kids + [0] * (2 - len(kids)))
        return len(labels)
    root = node()
    return np.array(labels), np.array(children), root


@pytest.mark.parametrize("architecture", ["treelstm", "recursive", "chain"])
def test_tree_export_labels_the_root_as_rnnlab_predict(architecture, tmp_path, capsys):
    from test_trees_task import tree_folder
    run = tmp_path / "run"
    rnnlab.train(task="tree", data=str(tree_folder(tmp_path)), architecture=architecture, hidden_size=8,
                 embed_size=6, out=str(run), **dict(QUICK, max_steps=10))
    meta, out = _export(run, tmp_path, capsys)
    session = _session(out, meta)
    index = {w: i for i, w in enumerate(meta["vocabulary"])}
    word = lambda w: index.get(w.lower() if meta["lowercase"] else w, meta["unknown"])
    lines = ["(3 (2 a) (3 good))", "(1 (2 The) (1 (2 film) (1 (2 was) (0 dull))))", "(2 unseen)",
             "a good fun film of the year"]

    def balanced(words):  # the JSON's plain_words: halved, the left half the larger
        half = len(words) - len(words) // 2
        return f"(0 {words[0]})" if len(words) == 1 else f"(0 {balanced(words[:half])} {balanced(words[half:])})"
    got = []
    for line in lines:
        bracketed = line if line.startswith("(") else balanced(line.split())
        labels, children, root = _bracketed(bracketed, lambda w: 1 if w is None else word(w))
        if architecture == "chain":
            leaves = labels[(children == 0).all(1)][:, None]
            logits = session.run(None, {"tokens": leaves, "lengths": np.array([len(leaves)])})[0][0]
        else:
            levels = np.arange(1, len(labels) + 1)[:, None]                 # a node a row, postorder
            logits = session.run(None, {"labels": labels, "children": children, "levels": levels})[0][root - 1]
        p = _softmax(logits)
        got.append(f"{int(p.argmax())}\t{p.max():.4f}")
    assert got == rnnlab.predict(run, lines)


@pytest.mark.parametrize("architecture", ["treelstm", "chain"])
def test_expressions_export_evaluates_as_rnnlab_predict(architecture, tmp_path, capsys):
    from rnnlab.data import expressions as ex
    from rnnlab.recursive import postorder
    run = tmp_path / "run"
    rnnlab.train(task="expressions", architecture=architecture, cell="lstm", hidden_size=8, out=str(run), **QUICK)
    meta, out = _export(run, tmp_path, capsys)
    session = _session(out, meta)
    index = {s: i for i, s in enumerate(meta["symbols"])}
    lines = ["3 + 4 * 2", "((3+4)*2)", "7", "1 - 2 - 3 * 4 + 5"]
    trees = [ex.parse_line(line, "line")[0] for line in lines]
    if architecture == "chain":
        got = [session.run(None, {"tokens": np.array([[index[s]] for s in ex.tokens(t, meta["form"])]),
                                  "lengths": np.array([len(ex.tokens(t, meta["form"]))])})[0][0] for t in trees]
    else:  # all four trees in one call, numbered in postorder, composed a height at a time
        labels, children, roots, number, height = [], [], [], {}, []
        for t in trees:
            for n in postorder(t):
                labels.append(index[n.label])
                kids = [number[id(c)] for c in n.children]
                children.append(kids + [0] * (2 - len(kids)))
                height.append(1 + max((height[k - 1] for k in kids), default=-1))
                number[id(n)] = len(labels)
            roots.append(len(labels))
        rows = [[n + 1 for n, h in enumerate(height) if h == level] for level in range(max(height) + 1)]
        levels = np.array([row + [0] * (max(map(len, rows)) - len(row)) for row in rows])   # (L, M)
        got = session.run(None, {"labels": np.array(labels), "children": np.array(children),
                                 "levels": levels, "roots": np.array(roots)})[0]
    assert [str(int(np.argmax(z))) for z in got] == rnnlab.predict(run, lines)


@pytest.mark.parametrize("architecture", ["grid", "raster"])
def test_bars_export_reads_images_of_any_size_as_rnnlab_predict(architecture, tmp_path, capsys):
    run = tmp_path / "run"
    rnnlab.train(task="bars", architecture=architecture, size=8, train_images=64, valid_images=16,
                 test_images=16, out=str(run), **QUICK)
    meta, out = _export(run, tmp_path, capsys)
    session = _session(out, meta)
    lines = ["0,1,0;0,1,0;0,1,0", "0,0,0,0;1,1,1,1;0,0,0,0;0,0.5,0,0;0,0,0,0", "1,0;0,0;0.3,0.2;0,0;1,1"]
    got = []
    for line in lines:
        image = np.array([[float(v) for v in row.split(",")] for row in line.split(";")], np.float32)
        p = _softmax(session.run(None, {"images": image[None, :, :, None]})[0][0])
        got.append(f"{meta['labels'][int(p.argmax())]}\t{p[1]:.4f}")
    assert got == rnnlab.predict(run, lines)


@pytest.mark.parametrize("model", ["ntm", "gru"])
def test_sequence_copy_export_copies_as_rnnlab_predict(model, tmp_path, capsys):
    run = tmp_path / "run"
    rnnlab.train(task="sequence-copy", model=model, hidden_size=16, memory_size=16, out=str(run), **QUICK)
    meta, out = _export(run, tmp_path, capsys)
    session = _session(out, meta)
    bits = meta["bits"]
    lines = ["10110010 01100001", "11111111 00000000 10101010 01010101 11001100"]
    got = []
    for line in lines:
        vectors = np.array([[float(c) for c in w] for w in line.split()], np.float32)   # (L, bits)
        L = len(vectors)
        x = np.zeros((2 * L + 1, 1, bits + 1), np.float32)
        x[:L, 0, :bits], x[L, 0, bits] = vectors, 1.0                       # the delimiter
        logits = session.run(None, {"x": x})[0][L + 1:, 0]
        got.append(" ".join("".join("1" if v > 0 else "0" for v in row) for row in logits))
    assert got == rnnlab.predict(run, lines)


def test_nplm_export_continues_as_rnnlab_predict_greedily(tmp_path, capsys):
    """The feedforward language model's graph carries its window of the last n - 1 symbols."""
    from cli.test_lm_cli import FAST, TEXT
    (tmp_path / "corpus.txt").write_text(TEXT)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "corpus.txt"), "--out", str(run), *FAST,
                 "--architecture", "nplm"]) == 0
    capsys.readouterr()
    meta, out = _export(run, tmp_path, capsys)
    session = _session(out, meta)
    prime, length = "class C1", 12
    index = {c: i for i, c in enumerate(meta["vocabulary"])}
    window = np.full([int(meta["inputs"][1]["shape"][0]), 1], meta["boundary"])   # (n - 1, 1)
    tokens, text = np.array([[index[c]] for c in prime]), prime
    for _ in range(length):
        logits, window = session.run(None, {"tokens": tokens, "window": window})
        last = logits[-1, 0].copy()
        last[meta["unknown"]] = -np.inf                                     # never <unk>
        k = int(last.argmax())
        text, tokens = text + meta["vocabulary"][k], np.array([[k]])
    assert text.replace("\n", " ") == rnnlab.predict(run, [prime], length=length, beam_size=1)[0]


@pytest.mark.parametrize("task", ["classify", "ctc"])
def test_speech_exports_take_waveforms_and_predict_as_rnnlab_predict(task, tmp_path, capsys):
    """A run on WAV recordings exports from samples: the log-mel features are computed in the
    graph. A batch of recordings of different lengths, zero-padded, gives each its prediction."""
    from test_speech import joined_folder, spoken_folder
    from rnnlab.data.wav import read_wav
    folder = (spoken_folder if task == "classify" else joined_folder)(tmp_path / "rec")
    run = tmp_path / "run"
    rnnlab.train(task=task, data=str(folder), out=str(run), hidden_size=16, **dict(QUICK, max_steps=30))
    meta, out = _export(run, tmp_path, capsys)
    session = _session(out, meta)
    wavs = sorted(str(p) for p in folder.glob("*.wav"))[::7][:6]
    waves = [read_wav(w)[0].numpy() for w in wavs]
    assert len({len(x) for x in waves}) > 1 and meta["rate"] == read_wav(wavs[0])[1]
    samples = np.zeros((len(waves), max(map(len, waves))), np.float32)
    for b, x in enumerate(waves):
        samples[b, :len(x)] = x
    lengths = np.array([len(x) for x in waves])
    got = session.run(None, {"samples": samples, "lengths": lengths})[0]
    want = rnnlab.predict(run, wavs)
    if task == "classify":
        p = _softmax(got)
        assert [f"{meta['labels'][k]}\t{p[b, k]:.4f}" for b, k in enumerate(p.argmax(1))] == want
    else:
        frames = 1 + -(-np.maximum(0, lengths - meta["frame_samples"]) // meta["hop_samples"])
        symbols = meta["labels"][1:]
        joiner = "" if all(len(s) == 1 for s in symbols) else " "
        decoded = []
        for b, T in enumerate(frames):
            best = got[:T, b].argmax(-1)                                     # (T,) greedy path
            decoded.append(joiner.join(meta["labels"][k] for j, k in enumerate(best)
                                       if k != meta["blank"] and (j == 0 or k != best[j - 1])))
        assert decoded == want
