"""Fuzzing the readers of the tasks' data: random bytes and random corruptions of valid files may
only end in a DataError (or another documented RnnlabError) that names the file, never in another
exception."""
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fuzzing import EDITS, corrupt
from rnnlab.data.conllu import read_conllu
from rnnlab.data.labelled import read_labelled
from rnnlab.data.midi import midi_bytes, piece_notes, read_midi
from rnnlab.data.music import read_music
from rnnlab.data.parallel import read_parallel
from rnnlab.data.scenes import generate_set, read_scene_set, save_scene_set
from rnnlab.data.series import read_series
from rnnlab.errors import RnnlabError

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

CONLLU = ("# sent_id = 1\n# text = I don't know.\n"
          "1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_\n"
          "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
          "2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_\n"
          "3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_\n"
          "4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_\n"
          "4.1\tit\tit\tPRON\tPRP\t_\t_\t_\t4:obj\t_\n"
          "5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_\n\n").encode()
MUSIC = b'{"train": [[[60, 64, 67], [], [62, 65]]], "valid": [[[59]]], "test": [[[60, 72]]]}'


def _pair(folder, data: bytes):
    """Parallel files: the data as the source side, a valid target side of as many lines."""
    (folder / "x.en").write_bytes(data)
    (folder / "x.de").write_bytes(b"ein hund\n" * max(1, data.count(b"\n")))
    return read_parallel(folder / "x.en", folder / "x.de")


def _midi(path):
    return read_midi(path.read_bytes(), str(path))


#: name -> (file name, valid contents, reader of a path)
READERS = {
    "labelled": ("s.txt", b"1 a fine film\n0 dull , dull , dull\n", read_labelled),
    "labelled-tsv": ("s.tsv", b"sentence\tlabel\na fine film\t1\ndull\t0\n", read_labelled),
    "conllu": ("t.conllu", CONLLU, read_conllu),
    "parallel": ("x.en", b"a dog\ntwo cats\n", lambda p: _pair(p.parent, p.read_bytes())),
    "series": ("s.csv", b"date,a,OT\n2016-07-01,1.5,2\n2016-07-02,1.25,3\n2016-07-03,1,4\n",
               lambda p: read_series(p, targets=["OT"], features=["a"])),
    "music-json": ("m.json", MUSIC, read_music),
    "music-chords": ("m.txt", b"60 64 67\n-\n62 65\n\n59 62\n", read_music),
    "midi": ("m.mid", midi_bytes(piece_notes([[60, 64], [], [62]])), _midi),
}


def _only_documented_errors(read, path):
    try:
        read(path)
    except RnnlabError as e:
        assert path.name in str(e) or "x.de" in str(e), f"the error names no file: {e}"


@pytest.mark.parametrize("name", sorted(READERS))
def test_valid_files_read(name, tmp_path):
    file_name, data, read = READERS[name]
    (tmp_path / file_name).write_bytes(data)
    assert read(tmp_path / file_name)


@pytest.mark.parametrize("name", sorted(READERS))
@FUZZ
@given(edits=EDITS)
def test_corrupted_files(name, tmp_path_factory, edits):
    file_name, data, read = READERS[name]
    path = tmp_path_factory.mktemp("fuzz") / file_name
    path.write_bytes(corrupt(data, edits))
    _only_documented_errors(read, path)


@pytest.mark.parametrize("name", sorted(READERS))
@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes(name, tmp_path_factory, data):
    file_name, _, read = READERS[name]
    path = tmp_path_factory.mktemp("fuzz") / file_name
    path.write_bytes(data)
    _only_documented_errors(read, path)


@FUZZ
@given(edits=EDITS)
def test_corrupted_scene_sets(tmp_path_factory, edits):
    folder = tmp_path_factory.mktemp("scenes")
    save_scene_set(generate_set(range(3)), folder / "ok.npz")
    path = folder / "bad.npz"
    path.write_bytes(corrupt((folder / "ok.npz").read_bytes(), edits))
    _only_documented_errors(read_scene_set, path)
