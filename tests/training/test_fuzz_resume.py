"""Resuming from a checkpoint whose trainer or optimizer record is damaged: hypothesis rewrites the
JSON records of a real checkpoint (values of every kind in place of counters, keys dropped, the
records replaced whole); the only failure allowed is rnnlab's documented error, and a record that
is accepted resumes the run."""
import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

import rnnlab
from rnnlab.errors import RnnlabError

TEXT = "".join(f"x = {i} * y + {i % 5}\n" for i in range(200))

json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6)
                           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz-resume")
    (base / "c.txt").write_text(TEXT)
    rnnlab.train(data=str(base / "c.txt"), out=str(base / "run"), hidden_size=8, embed_size=4,
                 batch_size=2, tbptt=(10, 10), max_steps=2, epochs=0, sample_length=0,
                 progress=False, threads=1, say=lambda s: None)
    with safe_open(str(base / "run" / "checkpoint.safetensors"), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return base / "run", meta, tensors


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=st.sampled_from(["trainer", "optimizer"]),
       edit=st.sampled_from(["value", "drop", "whole"]), key_index=st.integers(0, 40),
       value=json_values)
def test_damaged_records_are_refused_in_one_error(run, tmp_path_factory, record, edit, key_index, value):
    source, meta, tensors = run
    work = tmp_path_factory.mktemp("case") / "run"
    shutil.copytree(source, work)
    doc = json.loads(meta[record])
    keys = sorted(doc) if isinstance(doc, dict) and doc else [None]
    key = keys[key_index % len(keys)]
    if edit == "whole" or key is None:
        doc = value
    elif edit == "drop":
        del doc[key]
    else:
        doc[key] = value
    save_file(tensors, str(work / "checkpoint.safetensors"), metadata={**meta, record: json.dumps(doc)})
    try:
        rnnlab.train(resume=str(work), max_steps=3, say=lambda s: None)
    except RnnlabError as e:
        assert "\n" not in str(e)
