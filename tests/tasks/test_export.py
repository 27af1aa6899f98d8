"""Every layer exports with a dynamic number of time steps and batch size: torch.export's program
and ONNX Runtime on the ONNX file equal the eager layer (its own engine, ``auto``) within 1e-5 at
lengths and batch sizes beyond the one seen at export; and ``rnnlab export`` of a run of each
task gives, through ONNX Runtime fed from the JSON alone, what ``rnnlab predict`` prints."""
import json
import warnings

import pytest
import torch

import rnnlab

from rnnlab.cli import main

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install rnnlab[export])")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install rnnlab[export])")

I, H = 5, 6
#: (name, layer class, options): every cell and its options, each run with lengths
CASES = [
    ("lstm", rnnlab.LSTM, {}),
    ("lstm-peephole-diagonal", rnnlab.LSTM, {"peephole": "diagonal"}),
    ("lstm-peephole-full", rnnlab.LSTM, {"peephole": "full"}),
    ("lstm-peephole-candidate", rnnlab.LSTM, {"peephole": "diagonal", "peephole_candidate": True}),
    ("lstm-peephole-full-candidate", rnnlab.LSTM, {"peephole": "full", "peephole_candidate": True}),
    ("lstm-no-forget-gate", rnnlab.LSTM, {"forget_gate": False}),
    ("lstm-layer-norm", rnnlab.LSTM, {"layer_norm": True}),
    ("lstm-regularized-eval", rnnlab.LSTM, {"zoneout": 0.3, "recurrent_dropout": 0.2, "weight_drop": 0.2}),
    ("lstm-skip-steps", rnnlab.LSTM, {"skip_steps": 2}),
    ("gru", rnnlab.GRU, {}),
    ("gru-reset-before", rnnlab.GRU, {"reset_after": False}),
    ("rnn", rnnlab.RNN, {}),
    ("leaky-learned", rnnlab.LeakyRNN, {"leak_mode": "learned", "leak_shape": "unit"}),
    ("residual-gated", rnnlab.ResidualRNN, {"gated": True}),
    ("deep-transition", rnnlab.DeepTransitionRNN, {"depth": 2}),
    ("output-feedback", rnnlab.OutputFeedbackRNN, {"output_size": 3}),
    ("lstm-2-layers-bidirectional", rnnlab.LSTM, {"num_layers": 2, "bidirectional": True}),
    ("gru-2-layers-bidirectional", rnnlab.GRU, {"num_layers": 2, "bidirectional": True}),
]
#: (T, B) checked: T = 5, B = 3 as at export, T = 2 and 9 and B = 4 not seen there
SIZES = [(5, 3), (2, 3), (9, 3), (5, 4), (2, 4), (9, 4)]


class Flat(torch.nn.Module):
    """A layer's (output, h_n) as a flat tuple, with lengths or without."""

    def __init__(self, layer, with_lengths=True):
        super().__init__()
        self.layer, self.with_lengths = layer, with_lengths

    def forward(self, x, lengths=None):
        out, final = self.layer(x, lengths=lengths)
        return (out, *((final,) if torch.is_tensor(final) else final))


def inputs(T, B, seed, lengths=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, I, generator=g)
    if not lengths:
        return (x,)
    lens = torch.randint(1, T + 1, (B,), generator=g)
    lens[0] = T
    return x, lens


def exported(module, lengths, tmp_path, onnx_too=True):
    """torch.export's program of ``module`` (T and B dynamic) and an ONNX Runtime session of it
    (None without ``onnx_too``)."""
    T, B = torch.export.Dim("T", min=1), torch.export.Dim("B", min=1)
    args = inputs(5, 3, 0, lengths)
    shapes = ({0: T, 1: B}, {0: B}) if lengths else ({0: T, 1: B},)
    with torch.no_grad():
        program = torch.export.export(module, args, dynamic_shapes=shapes)
    if not onnx_too:
        return program, None
    # (under no_grad: with grad on, the exporter's type-promotion pass re-traces scan through
    # autograd, whose saved sizes are SymInts it cannot stack, docs/export.md)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        onnx = torch.onnx.export(program, args, dynamo=True, verbose=False)
    path = tmp_path / "layer.onnx"
    onnx.save(str(path))
    return program, onnxruntime.InferenceSession(str(path))


def check_equal(module, program, session, lengths=True):
    for k, (T, B) in enumerate(SIZES):
        args = inputs(T, B, k + 1, lengths)
        with torch.no_grad():
            want = module(*args)
            got = program.module()(*args)
        assert len(got) == len(want)
        for w, g in zip(want, got):
            assert g.shape == w.shape
            torch.testing.assert_close(g, w, atol=1e-5, rtol=0)
        if session is None:
            continue
        names = [i.name for i in session.get_inputs()]
        ort = session.run(None, dict(zip(names, (a.numpy() for a in args))))
        assert len(ort) == len(want)
        for w, o in zip(want, ort):
            assert o.shape == tuple(w.shape)
            torch.testing.assert_close(torch.from_numpy(o), w, atol=1e-5, rtol=0)


@pytest.mark.slow_cases
@pytest.mark.parametrize("name, cls, options", CASES, ids=[c[0] for c in CASES])
def test_layer_exports_with_dynamic_time_and_batch(name, cls, options, tmp_path):
    torch.manual_seed(0)
    layer = cls(I, H, **options).eval()
    with torch.no_grad():  # parameters away from their initial values (zeros, ones)
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    module = Flat(layer)
    program, session = exported(module, True, tmp_path)
    check_equal(module, program, session)


@pytest.mark.slow
def test_a_layer_without_lengths_exports(tmp_path):
    module = Flat(rnnlab.RNN(I, H, num_layers=2).eval())
    program, session = exported(module, False, tmp_path)
    check_equal(module, program, session, lengths=False)


@pytest.mark.slow
def test_onnx_time_loop_is_one_scan_node(tmp_path):
    """The time loop is a graph construct (ONNX Scan or Loop), not T unrolled steps."""
    import onnx
    _, session = exported(Flat(rnnlab.RNN(I, H).eval()), True, tmp_path)
    model = onnx.load(str(tmp_path / "layer.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ("Scan" in ops or "Loop" in ops), ops
    assert ops.count("Tanh") == 0  # the step's activation lives inside the loop's body only


def test_jit_trace_runs_the_loop_engine():
    layer = rnnlab.LSTM(I, H, peephole="diagonal").eval()
    x = inputs(5, 3, 0, False)[0]
    traced = torch.jit.trace(Flat(layer), (x,))
    with torch.no_grad():
        for a, b in zip(traced(x), Flat(layer)(x)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------ rnnlab export
def _session(run, tmp_path, capfd):
    """``rnnlab export`` as a user runs it (its own process: what it prints is what a terminal
    shows), then ONNX Runtime on the file it wrote."""
    import subprocess
    import sys
    out = tmp_path / "exported" / "model.onnx"
    done = subprocess.run([sys.executable, "-m", "rnnlab", "export", str(run), "--format", "onnx", "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "wrote" in done.stdout, done.stderr
    assert done.stderr == ""  # (torch's exporter printed a deprecation and its lines about torchvision)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["graph"] == "model.onnx"
    session = onnxruntime.InferenceSession(str(out))
    assert [i.name for i in session.get_inputs()] == [p["name"] for p in meta["inputs"]]
    assert [o.name for o in session.get_outputs()] == [p["name"] for p in meta["outputs"]]
    return session, meta


def _ids(words, meta):
    index = {w: i for i, w in enumerate(meta["vocabulary"])}
    return [index.get(w.lower() if meta["lowercase"] else w, meta["unknown"]) for w in words]


def _softmax(v):
    import numpy as np
    e = np.exp(v - v.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.slow
def test_export_of_a_classifier_predicts_what_rnnlab_predict_prints(tmp_path, capfd):
    import numpy as np
    from test_classification import SMALL, _toy
    data = _toy(tmp_path / "toy")
    run = tmp_path / "run"
    rnnlab.train(task="classify", data=str(data), out=str(run), **dict(SMALL, epochs=2, cell="lstm"))
    session, meta = _session(run, tmp_path, capfd)
    assert meta["task"] == "classify" and meta["classes"] == ["0", "1"]
    lines = ["this good film", "a bad actor was the plot", "unseen words here ok"]
    want = rnnlab.predict(run, lines)
    got = []
    for line in lines:
        ids = np.array(_ids(line.split(), meta), dtype=np.int64)[:, None]          # (T, 1)
        logits = session.run(None, {"tokens": ids, "lengths": np.array([len(ids)])})[0]
        p = _softmax(logits[0])
        k = int(p.argmax())
        got.append(f"{meta['classes'][k]}\t{float(p[k]):.4f}")
    assert got == want


@pytest.mark.slow
def test_export_of_a_tagger_with_characters_predicts_what_rnnlab_predict_prints(tmp_path, capfd):
    import numpy as np
    from test_tagging import PATTERNS, write_treebank
    folder = tmp_path / "bank"
    folder.mkdir()
    for split in ("train", "dev", "test"):
        write_treebank(folder / f"toy-{split}.conllu", PATTERNS)
    run = tmp_path / "run"
    rnnlab.train(task="tag", data=str(folder), out=str(run), embed_size=8, char_embed_size=4,
                 char_hidden_size=4, hidden_size=8, batch_size=4, epochs=1, threads=1, progress=False, cell="gru")
    session, meta = _session(run, tmp_path, capfd)
    chars = {c: i for i, c in enumerate(meta["characters"])}
    lines = ["the dog runs fast", "they fly", "a big unseen dog ."]
    want = rnnlab.predict(run, lines)
    got = []
    for line in lines:
        words = line.split()
        distinct = list(dict.fromkeys(words))
        S = max(len(w) for w in distinct)
        spelled = np.array([[chars.get(w[s], 0) if s < len(w) else 0 for w in distinct]
                            for s in range(S)], dtype=np.int64)                       # (S, U)
        feed = {"words": np.array(_ids(words, meta), dtype=np.int64)[:, None],
                "lengths": np.array([len(words)]), "chars": spelled,
                "char_lengths": np.array([len(w) for w in distinct]),
                "spelling": np.array([distinct.index(w) for w in words], dtype=np.int64)[:, None]}
        logits = session.run(None, feed)[0]                                           # (T, 1, K)
        got.append(" ".join(f"{w}/{meta['tags'][k]}" for w, k in zip(words, logits[:, 0].argmax(-1))))
    assert got == want


@pytest.mark.slow
def test_export_of_a_language_model_continues_as_rnnlab_predict_greedily(tmp_path, capfd):
    import numpy as np
    from cli.test_lm_cli import FAST, TEXT  # (tests/ is on the path: conftest)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    run = tmp_path / "run"
    assert main(["train", "--data", str(corpus), "--out", str(run), *FAST, "--cell", "lstm"]) == 0
    capfd.readouterr()
    session, meta = _session(run, tmp_path, capfd)
    prime, length = "class C1", 12
    want = rnnlab.predict(run, [prime], length=length, beam_size=1)[0]
    index = {c: i for i, c in enumerate(meta["vocabulary"])}
    state = {p["name"]: np.zeros([1 if s == "B" else int(s) for s in p["shape"]], dtype=np.float32)
             for p in meta["inputs"][1:]}
    tokens = np.array([index[c] for c in prime], dtype=np.int64)[:, None]             # (T, 1)
    text = prime
    for _ in range(length):
        logits, *final = session.run(None, {"tokens": tokens, **state})
        last = logits[-1, 0].copy()
        last[meta["unknown"]] = -np.inf                                                 # never <unk>
        k = int(last.argmax())
        text += meta["vocabulary"][k]
        state = dict(zip(state, final))
        tokens = np.array([[k]], dtype=np.int64)
    assert text.replace("\n", " ") == want


@pytest.mark.slow
def test_export_pt2_loads_and_runs(tmp_path, capfd):
    from test_classification import SMALL, _toy
    data = _toy(tmp_path / "toy")
    run = tmp_path / "run"
    rnnlab.train(task="classify", data=str(data), out=str(run), **dict(SMALL, epochs=1))
    (tmp_path / "folder").mkdir()  # --out a folder: model.pt2 and model.json in it
    assert main(["export", str(run), "--format", "pt2", "--out", str(tmp_path / "folder")]) == 0
    meta = json.loads((tmp_path / "folder" / "model.json").read_text())
    program = torch.export.load(str(tmp_path / "folder" / "model.pt2"))
    tokens = torch.tensor(_ids("good film of the plot and actor".split(), meta))[:, None].repeat(1, 3)
    lengths = torch.tensor([7, 3, 1])
    loaded = rnnlab.tasks.recipe.load_run(run).model.eval()
    with torch.no_grad():
        torch.testing.assert_close(program.module()(tokens, lengths)[0], loaded(tokens, lengths),
                                   atol=1e-5, rtol=0)


@pytest.mark.slow
def test_export_does_not_replace_the_json_of_a_graph_of_the_other_format(tmp_path, capfd):
    """ONNX, then pt2 into the same folder: the second would replace model.json, which describes
    model.onnx; it is refused in one line, nothing written, and written under the name it names."""
    from test_classification import SMALL, _toy
    run = tmp_path / "run"
    rnnlab.train(task="classify", data=str(_toy(tmp_path / "toy")), out=str(run), **dict(SMALL, epochs=1))
    assert main(["export", str(run), "--format", "onnx"]) == 0
    before = (run / "model.json").read_text()
    capfd.readouterr()
    assert main(["export", str(run), "--format", "pt2"]) == 2
    err = capfd.readouterr().err
    assert "model.onnx" in err and len(err.strip().splitlines()) == 1
    assert (run / "model.json").read_text() == before and not (run / "model.pt2").exists()
    other = err.strip().rsplit("e.g. ", 1)[1]
    assert main(["export", str(run), "--format", "pt2", "--out", other]) == 0
    assert json.loads((run / "model-pt2.json").read_text())["graph"] == "model-pt2.pt2"
    assert json.loads((run / "model.json").read_text())["graph"] == "model.onnx"
    assert main(["export", str(run), "--format", "onnx"]) == 0  # (its own format: replaced)


def test_every_task_exports():
    from rnnlab.tasks import TASKS
    from rnnlab.tasks.export import SPECS
    assert set(SPECS) == set(TASKS)


def test_export_of_no_run_is_one_line(tmp_path, capfd):
    assert main(["export", str(tmp_path / "absent")]) == 2
    err = capfd.readouterr().err
    assert err.startswith("rnnlab: error:") and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_checks_the_graph_against_the_model(fmt, tmp_path, capfd, monkeypatch):
    """A graph whose outputs are not the model's (here: the model's outputs shifted after
    conversion, as an exporter that miscompiles silently would leave them) is refused in one
    line, nothing written; a faithful one is written with the check's figure in the JSON."""
    import rnnlab.tasks.export as export
    from test_classification import SMALL, _toy
    run = tmp_path / "run"
    rnnlab.train(task="classify", data=str(_toy(tmp_path / "toy")), out=str(run), **dict(SMALL, epochs=1))
    assert main(["export", str(run), "--format", fmt]) == 0
    assert "the graph's outputs equal the model's on an example" in capfd.readouterr().out
    meta = json.loads((run / "model.json").read_text())
    assert float(meta["checked"].rsplit("within ", 1)[1].split()[0]) < 1e-5
    (run / f"model.{fmt}").unlink()
    (run / "model.json").unlink()
    convert = export._convert

    def miscompiled(spec, fmt, run_dir):
        graph = convert(spec, fmt, run_dir)
        model = spec.module
        spec.module = lambda *a: tuple(y + 0.5 for y in model(*a))
        return graph
    monkeypatch.setattr(export, "_convert", miscompiled)
    assert main(["export", str(run), "--format", fmt]) == 2
    err = capfd.readouterr().err
    assert "differ from the model's" in err and len(err.strip().splitlines()) == 1
    assert not (run / f"model.{fmt}").exists() and not (run / "model.json").exists()


@pytest.mark.slow
def test_onnx_export_torch_cannot_convert_fails_in_one_line(tmp_path, capfd, monkeypatch):
    from test_classification import SMALL, _toy
    run = tmp_path / "run"
    rnnlab.train(task="classify", data=str(_toy(tmp_path / "toy")), out=str(run),
                 **dict(SMALL, epochs=1, cell="lstm"))

    def refuse(*args, **kwargs):  # torch's exporter failing on some operator, with its long report
        raise RuntimeError("a report\nof many lines")
    monkeypatch.setattr(torch.onnx, "export", refuse)
    assert main(["export", str(run), "--format", "onnx"]) == 2
    err = capfd.readouterr().err
    assert err.startswith("rnnlab: error:") and "--format pt2" in err and len(err.strip().splitlines()) == 1
    assert not (run / "model.onnx").exists() and not (run / "model.json").exists()
