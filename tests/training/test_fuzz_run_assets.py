"""Fuzzing what the other readers' fuzz tests leave out: the files every task keeps in its run
directory (class lists, vocabularies, normalisation statistics, the piano-roll range, the run
config), the inputs ``predict`` parses (past values, chord primers), expression files, image
files, and the target side of parallel text. Random bytes, random corruptions of valid files and valid JSON of the wrong shape may only
end in rnnlab's documented errors (RnnlabError), never in another exception."""
import json
import math
import shutil

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fuzzing import EDITS, corrupt

import rnnlab
from rnnlab.data.expressions import read_expressions
from rnnlab.data.parallel import read_parallel
from rnnlab.data.scenes import read_image
from rnnlab.errors import RnnlabError
from rnnlab.tasks.recipe import load_run

FUZZ = settings(max_examples=12, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

#: tiny runs of the tasks whose run directories hold files of their own
SMALL = dict(hidden_size=4, max_steps=1, epochs=0, threads=1, progress=False, sample_length=0,
             say=lambda s: None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    (root / "s.txt").write_text("".join(f"{i % 2} {'good' if i % 2 else 'bad'} film\n" for i in range(20)))
    rows = "\n".join(f"d{t},{20 + 5 * math.sin(t / 3):.4f},{math.cos(t):.4f}" for t in range(80))
    (root / "s.csv").write_text("date,load,temp\n" + rows + "\n")
    tokens = [f"{k}\t{w}\t{w}\t{t}\t_\t_\t0\tdep\t_\t_" for k, (w, t) in
              enumerate([("the", "DET"), ("dog", "NOUN"), ("runs", "VERB")], 1)]
    (root / "t.conllu").write_text(("\n".join(tokens) + "\n\n") * 6)
    (root / "par").mkdir()
    for split in ("train", "val", "test"):
        (root / "par" / f"{split}.en").write_text("a man runs\ntwo dogs\n")
        (root / "par" / f"{split}.de").write_text("ein mann läuft\nzwei hunde\n")
    (root / "m.json").write_text(json.dumps({"train": [[[60 + k % 3] for k in range(6)]] * 4,
                                             "valid": [[[60], [62]]], "test": [[[61], [60]]]}))
    made = {
        "classify": dict(task="classify", data=str(root / "s.txt"), embed_size=4, min_count=1,
                         char_embed_size=0, batch_size=4),
        "tag": dict(task="tag", data=str(root / "t.conllu"), embed_size=4, char_embed_size=4,
                    char_hidden_size=4, batch_size=2),
        "translate": dict(task="translate", data=str(root / "par"), tokenized=False, min_count=1,
                          embed_size=4, batch_size=2),
        "forecast": dict(task="forecast", data=str(root / "s.csv"), targets=["load"], lookback=6,
                         horizons=[2], batch_size=4),
        "music": dict(task="music", data=str(root / "m.json"), batch_size=2),
    }
    for name, task_settings in made.items():
        rnnlab.train(out=str(root / name), **task_settings, **SMALL)
    return root


#: run -> its JSON files that loading the run reads
ASSETS = [("classify", "classes.json"), ("classify", "vocab.json"), ("classify", "words.json"),
          ("classify", "config.json"), ("tag", "vocab.json"), ("tag", "config.json"),
          ("translate", "source_vocab.json"), ("translate", "target_vocab.json"),
          ("forecast", "normalisation.json"), ("forecast", "linear_ar.json"),
          ("forecast", "config.json"), ("music", "piano_roll.json"), ("music", "config.json")]
IDS = [f"{run} {name}" for run, name in ASSETS]

#: any JSON value
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats()
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12)


def _only_documented_errors(call):
    try:
        call()
    except RnnlabError:
        pass


def _copy(runs, tmp_path_factory, run):
    work = tmp_path_factory.mktemp("case") / run
    shutil.copytree(runs / run, work)
    return work


def _places(obj, path=()):
    """Every (path) to a value inside a JSON document, the document itself first."""
    yield path
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield from _places(v, path + (k,))


def _replace(obj, path, value):
    if not path:
        return value
    inner = obj
    for k in path[:-1]:
        inner = inner[k]
    inner[path[-1]] = value
    return obj


@pytest.mark.parametrize("run, name", ASSETS, ids=IDS)
@FUZZ
@given(edits=EDITS)
def test_corrupted_run_assets(runs, tmp_path_factory, run, name, edits):
    work = _copy(runs, tmp_path_factory, run)
    (work / name).write_bytes(corrupt((runs / run / name).read_bytes(), edits))
    _only_documented_errors(lambda: load_run(work))


@pytest.mark.parametrize("run, name", ASSETS, ids=IDS)
@FUZZ
@given(where=st.integers(0, 1 << 16), value=JSON)
def test_run_assets_of_the_wrong_shape(runs, tmp_path_factory, run, name, where, value):
    """Valid JSON with one value anywhere in the document replaced by any other JSON value."""
    doc = json.loads((runs / run / name).read_text())
    places = list(_places(doc))
    doc = _replace(doc, places[where % len(places)], value)
    work = _copy(runs, tmp_path_factory, run)
    (work / name).write_text(json.dumps(doc))
    _only_documented_errors(lambda: load_run(work))


LINES = st.lists(st.text(alphabet=st.sampled_from("0123456789.,-e nafi\t"), max_size=40), max_size=4)


@FUZZ
@given(lines=LINES)
def test_forecast_predict_input(runs, lines):
    _only_documented_errors(lambda: rnnlab.predict(runs / "forecast", lines))


@FUZZ
@given(lines=st.lists(st.text(alphabet=st.sampled_from("0123456789 -\t#x"), max_size=20), max_size=5))
def test_music_primer(runs, lines):
    _only_documented_errors(lambda: rnnlab.predict(runs / "music", lines, length=2, output=""))


EXPRESSIONS = b"# values mod 10\n(3 + 4) * 2 = 4\n7 - (2 * 5)\n\n((1 + 2) + (3 * 4)) = 5\n"


@FUZZ
@given(edits=EDITS)
def test_corrupted_expression_files(tmp_path_factory, edits):
    path = tmp_path_factory.mktemp("fuzz") / "e.txt"
    path.write_bytes(corrupt(EXPRESSIONS, edits))
    _only_documented_errors(lambda: read_expressions(path))


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_expression_and_image_files(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "f"
    path.write_bytes(data)
    _only_documented_errors(lambda: read_expressions(path))
    _only_documented_errors(lambda: read_image(path, 8, 8))


@FUZZ
@given(edits=EDITS)
def test_corrupted_png_images(tmp_path_factory, edits):
    import numpy as np
    from PIL import Image
    folder = tmp_path_factory.mktemp("fuzz")
    Image.fromarray(np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)).save(folder / "ok.png")
    path = folder / "bad.png"
    path.write_bytes(corrupt((folder / "ok.png").read_bytes(), edits))
    _only_documented_errors(lambda: read_image(path, 8, 8))


@FUZZ
@given(edits=EDITS)
def test_corrupted_target_side_of_parallel_text(tmp_path_factory, edits):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "x.en").write_bytes(b"a dog\ntwo cats\nthe man runs\n")
    (folder / "x.de").write_bytes(corrupt("ein hund\nzwei katzen\nder mann läuft\n".encode(), edits))
    _only_documented_errors(lambda: read_parallel(folder / "x.en", folder / "x.de"))
