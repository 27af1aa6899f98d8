"""A trained run as a graph other programs run without rnnlab: ONNX or torch.export's ``.pt2``.

``rnnlab export RUN_DIR --format onnx|pt2`` writes the model's forward pass in evaluation mode,
with the number of time steps, the batch and every other size of a sentence dynamic (the layers
run their time loop as one ``scan``: :mod:`rnnlab.engines.scan`), and beside it a JSON file that
says what goes in and comes out:

    {"task": ..., "format": ..., "graph": FILE,
     "inputs":  [{"name", "dtype", "shape": ["T", "B"], "meaning"}, ...],
     "outputs": [{"name", "dtype", "shape": [...], "meaning"}, ...],
     ... the task's vocabulary, label names, case rule, ...}

Each task's graph takes exactly the tensors its ``rnnlab predict`` builds from a line of input
(:data:`SPECS`): a program that builds them the same way (from the JSON's vocabulary) gets the
same predictions.
"""
from __future__ import annotations

import contextlib
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from .recipe import LoadedRun, load_run

FORMATS = ("onnx", "pt2")


@dataclass
class Port:
    """One input or output of the graph: its name, dtype, shape by named sizes, and meaning."""
    name: str
    dtype: str
    shape: Tuple[str, ...]
    meaning: str

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "meaning": self.meaning}


@dataclass
class ExportSpec:
    """What a task exports: ``module`` (forward(*inputs) -> tuple of outputs, evaluation mode),
    example ``inputs`` in forward's order (every size > 1 and the sizes told apart, so that
    none is fixed at export), the ports, and the task's facts for the JSON (``info``)."""
    module: nn.Module
    inputs: Dict[str, torch.Tensor]
    input_ports: List[Port]
    output_ports: List[Port]
    info: Dict[str, Any] = field(default_factory=dict)

    def dynamic_shapes(self) -> Dict[str, Dict[int, Any]]:
        """Each input's sizes as torch.export dimensions, one per named size (shared by name)."""
        dims: Dict[str, Any] = {}
        out = {}
        for port in self.input_ports:
            out[port.name] = {i: dims.setdefault(s, torch.export.Dim(s, min=1))
                              for i, s in enumerate(port.shape) if not s.isdigit()}
        return out


class Outputs(nn.Module):
    """``model``'s forward with its inputs by position and its outputs as a flat tuple."""

    def __init__(self, model: nn.Module, call: Callable):
        super().__init__()
        self.model, self.call = model, call

    def forward(self, *inputs):
        return self.call(self.model, *inputs)


# ---------------------------------------------------------------------- the tasks
def _words_example(n: int) -> List[List[str]]:
    """Two sentences of 5 and 3 placeholder words, 4 distinct words of 3 characters: every size
    apart (T = 5, B = 2, U = 4, S = 3), so that export ties none to another."""
    words = ["wd0", "wd1", "wd2", "wd3"]
    return [[words[i] for i in (0, 1, 0, 2, 1)], [words[i] for i in (3, 0, 1)]][:n]


def _states(layer, prefix: str = "") -> Tuple[List[Port], List[Port], Dict[str, torch.Tensor]]:
    """A layer's initial-state inputs and final-state outputs, and zero examples (B = 2)."""
    cell = layer.cells[0]
    L = layer.num_layers * (2 if layer.bidirectional else 1)
    ins, outs, zeros = [], [], {}
    for n, s in zip(cell.state_names, cell.state_sizes):
        shape = (str(L), "B", str(s))
        ins.append(Port(prefix + n, "float32", shape, f"state {n!r} before the first step "
                        "(zeros to start; a previous call's final state to go on)"))
        outs.append(Port(f"{prefix}{n}_n", "float32", shape, f"state {n!r} after the last step"))
        zeros[prefix + n] = torch.zeros(L, 2, s)
    return ins, outs, zeros


def _lm(run: LoadedRun) -> ExportSpec:
    model, vocab = run.model, run.assets
    if hasattr(model, "rnn"):
        s_in, s_out, zeros = _states(model.rnn)
    else:  # the NPLM: its state is the window's last n - 1 words
        shape = (str(model.config.context - 1), "B")
        s_in = [Port("window", "int64", shape, "each stream's last n - 1 symbols before the first "
                     "step (to start: 'boundary' everywhere)")]
        s_out = [Port("window_n", "int64", shape, "the last n - 1 symbols after the last step")]
        zeros = {"window": model.initial_state(2)}

    def call(m, tokens, *state):
        logits, final = m(tokens, state[0] if len(state) == 1 else tuple(state))
        return (logits, *((final,) if torch.is_tensor(final) else final))

    tokens = torch.tensor([[1, 2], [2, 1], [1, 1]], dtype=torch.long)                 # (T=3, B=2)
    ins = [Port("tokens", "int64", ("T", "B"), "symbol indices into 'vocabulary'")] + s_in
    outs = [Port("logits", "float32", ("T", "B", str(len(vocab))),
                 "unnormalised log-probabilities of the next symbol at each step")] + s_out
    info = {"vocabulary": vocab.symbols, "level": vocab.level,
            "unknown": 0, "boundary": model.config.boundary_id}
    return ExportSpec(Outputs(model, call), {"tokens": tokens, **zeros}, ins, outs, info)


def _sentence_inputs(spell: bool, word_name: str, batch: Dict[str, torch.Tensor]) -> List[Port]:
    ports = [Port(word_name, "int64", ("T", "B"), "word indices into 'vocabulary' (0: unknown, "
                  "and the padding past a sentence's end)"),
             Port("lengths", "int64", ("B",), "each sentence's number of words")]
    if spell:
        ports += [Port("chars", "int64", ("S", "U"), "each distinct word of the batch spelled as "
                       "indices into 'characters' (0: unknown, and the padding)"),
                  Port("char_lengths", "int64", ("U",), "their lengths"),
                  Port("spelling", "int64", ("T", "B"), "for each word, its column of chars")]
    return ports


class _Spoken(nn.Module):
    """A speech run's model on waveforms: samples (B, N) at the run's rate (zeros past each one's
    end), lengths (B,) in samples -> the model's outputs on their normalised log-mel frames, the
    features computed in the graph as :mod:`rnnlab.data.log_mel` computes them."""

    def __init__(self, model: nn.Module, assets, frames_as: str):
        super().__init__()
        from ..data.log_mel import mel_filterbank
        self.model, self.frames_as = model, frames_as
        self.L, self.S, self.n_fft = assets.settings.framing(assets.rate)
        self.register_buffer("filterbank", mel_filterbank(assets.bands, self.n_fft, assets.rate))
        self.register_buffer("mean", assets.normalisation.mean.clone())
        self.register_buffer("std", assets.normalisation.std.clone())

    def forward(self, *inputs):  # (samples, lengths)
        from ..data.log_mel import frame_count, frames_log_mel
        samples, lengths = inputs
        x = nn.functional.pad(samples, (0, self.n_fft + self.S))         # every frame's last samples
        frames = (frames_log_mel(x, self.L, self.S, self.n_fft, self.filterbank) - self.mean) / self.std
        frames = frames.transpose(0, 1)                                   # (T, B, M), T >= each's
        return (self.model(**{self.frames_as: frames, "lengths": frame_count(lengths, self.L, self.S)}),)


def _speech(run: LoadedRun, frames_as: str, output: Port) -> ExportSpec:
    """A classifier or CTC model of a run on WAV recordings, from waveforms (:class:`_Spoken`)."""
    a = run.assets
    ins = [Port("samples", "float32", ("B", "N"), f"each recording's samples at {a.rate} Hz as "
                "floats in [-1, 1) (16-bit PCM / 32768), zeros past its end"),
           Port("lengths", "int64", ("B",), "each recording's number of samples")]
    L, S, _ = a.settings.framing(a.rate)
    info = {"labels": a.labels, "rate": a.rate, "frame_samples": L, "hop_samples": S}
    samples = torch.randn(2, 900, generator=torch.Generator().manual_seed(0)) * 0.1
    return ExportSpec(_Spoken(run.model, a, frames_as), {"samples": samples, "lengths": torch.tensor([900, 500])},
                      ins, [output], info)


def _classify(run: LoadedRun) -> ExportSpec:
    from .classification import ClassifiedExample
    from .speech_input import SpeechAssets
    assets, model = run.assets, run.model
    if isinstance(assets, SpeechAssets):
        return _speech(run, "frames", Port("logits", "float32", ("B", str(len(assets.labels))),
                                           "unnormalised log-probabilities of each label of 'labels'"))
    spell = model.config.char_hidden_size > 0
    examples = [ClassifiedExample(w, assets.words(w)) for w in _words_example(2)]
    batch = assets.batch(examples, spell=spell)
    outs = [Port("logits", "float32", ("B", str(len(assets.classes))),
                 "unnormalised log-probabilities of each class of 'classes'")]
    info = {"vocabulary": assets.vocab.symbols, "lowercase": assets.lowercase, "unknown": 0,
            "classes": list(assets.classes)}
    if spell:
        info["characters"] = assets.characters.chars
    return ExportSpec(Outputs(model, lambda m, *a: (m(*a),)), batch,
                      _sentence_inputs(spell, "tokens", batch), outs, info)


def _tag(run: LoadedRun) -> ExportSpec:
    vocab, model = run.assets, run.model
    spell = model.config.char_hidden_size > 0
    batch = vocab.batch(_words_example(2))
    if not spell:
        batch = {k: batch[k] for k in ("words", "lengths")}
    outs = [Port("logits", "float32", ("T", "B", str(len(vocab.tags))),
                 "unnormalised log-probabilities of each tag of 'tags', per word")]
    info = {"vocabulary": vocab.words, "lowercase": vocab.lowercase, "unknown": 0,
            "tags": list(vocab.tags), "tagset": vocab.tagset}
    if spell:
        info["characters"] = vocab.chars
    return ExportSpec(Outputs(model, lambda m, *a: (m(*a),)), batch,
                      _sentence_inputs(spell, "words", batch), outs, info)


def _ctc(run: LoadedRun) -> ExportSpec:
    from .ctc import BLANK
    from .speech_input import SpeechAssets
    if isinstance(run.assets, SpeechAssets):
        spec = _speech(run, "x", Port("log_probs", "float32", ("T", "B", str(len(run.assets.labels) + 1)),
                                      "log-probabilities of each label per frame, T enough for the "
                                      "longest (a recording of n samples has 1 + ceil(max(0, n - "
                                      "frame_samples) / hop_samples) frames); decode by collapsing "
                                      "repeats and dropping the blank"))
        spec.info.update(labels=["<blank>"] + run.assets.labels, blank=BLANK)
        return spec
    F, C = run.assets["features"], run.assets["classes"]
    x = torch.zeros(5, 2, F)
    lengths = torch.tensor([5, 3])
    ins = [Port("x", "float32", ("T", "B", str(F)), "the frames, F features each"),
           Port("lengths", "int64", ("B",), "each sequence's number of frames")]
    outs = [Port("log_probs", "float32", ("T", "B", str(C)),
                 "log-probabilities of each label per frame; decode by collapsing repeats and "
                 "dropping the blank")]
    info = {"labels": ["<blank>"] + [str(d) for d in range(C - 1)], "blank": BLANK}  # class 1 + d: digit d
    return ExportSpec(Outputs(run.model, lambda m, *a: (m(*a),)), {"x": x, "lengths": lengths},
                      ins, outs, info)


def _music(run: LoadedRun) -> ExportSpec:
    K = run.assets.keys
    s_in, s_out, zeros = _states(run.model.rnn)

    def call(m, inputs, lengths, *state):
        logits, final = m(inputs, lengths, state[0] if len(state) == 1 else tuple(state))
        return (logits, *((final,) if torch.is_tensor(final) else final))

    ins = [Port("inputs", "float32", ("T", "B", str(K)), "x_t = the piano roll r_{t-1} (keys "
                "down: 1), x_0 = 0"),
           Port("lengths", "int64", ("B",), "each piece's number of steps")] + s_in
    outs = [Port("logits", "float32", ("T", "B", str(K)),
                 "log-odds of each key being down at each step")] + s_out
    info = {"lowest_note": run.assets.lowest_note, "keys": K}
    return ExportSpec(Outputs(run.model, call), {"inputs": torch.zeros(5, 2, K),
                                                 "lengths": torch.tensor([5, 3]), **zeros},
                      ins, outs, info)


def _forecast(run: LoadedRun) -> ExportSpec:
    a = run.assets
    L, F, C, H = a.lookback, len(a.columns), a.targets, a.horizon
    ins = [Port("past", "float32", (str(L), "B", str(F)), "the last L rows of each series, "
                "standardised: (value - mean) / std per column of 'columns'")]
    outs = [Port("forecast", "float32", (str(H), "B", str(C)), "the next H values of the target "
                 "columns (the first C of 'columns'), standardised: value = forecast * std + mean")]
    info = {"columns": a.columns, "targets": C, "mean": a.scaler.mean.tolist(),
            "std": a.scaler.std.tolist(), "lookback": L, "horizon": H}
    if getattr(run.model.config, "scale", "linear") == "log":
        info["scale"] = ("log: the model reads log(past + mean / std) of each target; a value at "
                         "or below 0 in the data's units gives NaN")
    past = torch.zeros(L, 2, F)
    return ExportSpec(Outputs(run.model, lambda m, x: (m(x),)), {"past": past}, ins, outs, info)


def _adding(run: LoadedRun) -> ExportSpec:
    ins = [Port("x", "float32", ("T", "B", "2"), "each step's (value, marker) pair"),
           Port("lengths", "int64", ("B",), "each sequence's number of steps")]
    outs = [Port("y", "float32", ("B",), "the predicted sum of the marked values")]
    x = torch.zeros(5, 2, 2)
    return ExportSpec(Outputs(run.model, lambda m, *a: (m(*a),)), {"x": x, "lengths": torch.tensor([5, 3])},
                      ins, outs)


def _copy(run: LoadedRun) -> ExportSpec:
    from ..data import long_memory as gen
    C = run.model.config.classes
    ins = [Port("tokens", "int64", ("T", "B"), "symbols 0..9 (0 blank, 1..8 data, 9 the delimiter)")]
    outs = [Port("logits", "float32", ("T", "B", str(C)), "unnormalised log-probabilities of each "
                 "class per step (0 blank, k the data symbol k)")]
    tokens = torch.tensor([[1, 2], [2, 1], [0, 0], [9, 9], [0, 0]])                   # (T=5, B=2)
    return ExportSpec(Outputs(run.model, lambda m, t: (m(t),)), {"tokens": tokens}, ins, outs,
                      {"symbols": gen.COPY_SYMBOLS})


class _WordCosines(nn.Module):
    """(words (B, K), signs (B, K)) -> the cosine of sum_k signs_k v_k / |v_k| with every word's
    vector (B, N), in float64 as ``rnnlab predict`` ranks them."""

    def __init__(self, vectors: torch.Tensor):
        super().__init__()
        self.register_buffer("unit", nn.functional.normalize(vectors.detach().double(), dim=1))  # (N, D)

    def forward(self, *inputs):  # (words, signs)
        words, signs = inputs
        q = (self.unit[words] * signs.double().unsqueeze(-1)).sum(1)                 # (B, D)
        return (nn.functional.normalize(q, dim=1) @ self.unit.t(),)                  # (B, N)


def _word2vec(run: LoadedRun) -> ExportSpec:
    vocab, N = run.assets.vocab, run.model.projection.shape[0]
    ins = [Port("words", "int64", ("B", "K"), "each query's words, indices into 'vocabulary' "
                "(a query 'a - b + c' is [a, b, c]; a shorter query padded with any index)"),
           Port("signs", "float32", ("B", "K"), "each word's sign in its query (+1, -1; 0: padding)")]
    outs = [Port("cosine", "float64", ("B", str(N)), "the cosine of the query (the signed sum of its "
                 "words' unit vectors) with each word's vector; the neighbours are the highest, "
                 "the query's own words and 'unseen' left out")]
    info = {"vocabulary": vocab.symbols, "unseen": run.assets.unseen()}
    example = {"words": torch.tensor([[1, 2, 3], [2, 0, 0]]), "signs": torch.tensor([[1., -1., 1.], [1., 0., 0.]])}
    return ExportSpec(_WordCosines(run.model.projection), example, ins, outs, info)


def _tree_ports(what: str, vocabulary: str, roots: bool) -> List[Port]:
    """The inputs of a tree network's graph: its B trees as N numbered nodes."""
    ports = [Port("labels", "int64", ("N",), f"each node's label, an index into '{vocabulary}' "
                  f"({what}); node n (numbered from 1) at [n - 1]"),
             Port("children", "int64", ("N", "2"), "each node's children by number (0: none)"),
             Port("levels", "int64", ("L", "M"), "the nodes by number in the order they are composed, "
                  "a row at a time (0 pads a row): row l the nodes of height l (leaves 0), or one node a "
                  "row, every child before its parent (as postorder)")]
    if roots:
        ports.append(Port("roots", "int64", ("B",), "each tree's root by number"))
    return ports


def _chain_ports(tokens: str) -> List[Port]:
    return [Port("tokens", "int64", ("T", "B"), tokens), Port("lengths", "int64", ("B",),
                                                              "each sequence's number of tokens")]


#: three trees as numbered nodes: ((1 2) 3 ((4 5) 6) 7 8) 9, the roots 9, 3, 6, a level a row
#: (N = 9, L = 4, M = 5, B = 3: every size apart, so that export ties none to another)
_NODES = {"labels": torch.tensor([0, 0, 2, 0, 0, 3, 1, 0, 1]),
          "children": torch.tensor([[0, 0], [0, 0], [1, 2], [0, 0], [0, 0], [4, 5], [3, 6], [0, 0], [7, 8]]),
          "levels": torch.tensor([[1, 2, 4, 5, 8], [3, 6, 0, 0, 0], [7, 0, 0, 0, 0], [9, 0, 0, 0, 0]]),
          "roots": torch.tensor([9, 3, 6])}
_CHAIN = {"tokens": torch.tensor([[1, 2], [2, 1], [1, 1], [2, 2], [1, 2]]), "lengths": torch.tensor([5, 3])}


def _tree(run: LoadedRun) -> ExportSpec:
    from ..recursive import Nodes
    a, C = run.assets, run.model.config.classes
    info = {"vocabulary": a.words, "lowercase": a.lowercase, "unknown": 0, "phrase": 1, "classes": C,
            "binary": a.binary, "plain_words": "rnnlab predict reads a line of words as a balanced "
            "binary tree: the words halved, the left half the larger (n - n // 2 words), down to one"}
    if not run.model.config.is_tree:
        return ExportSpec(Outputs(run.model, lambda m, *t: (m(*t),)), _CHAIN,
                          _chain_ports("the leaves' words, indices into 'vocabulary'"),
                          [Port("logits", "float32", ("B", str(C)), "unnormalised log-probabilities "
                                "of each label of the sentence")], info)
    outs = [Port("logits", "float32", ("N", str(C)), "unnormalised log-probabilities of each label "
                 "of every node (a tree's label: its root's)")]
    nodes = {k: _NODES[k] for k in ("labels", "children", "levels")}
    return ExportSpec(Outputs(run.model, lambda m, *t: (m(Nodes(*t)),)), nodes,
                      _tree_ports("a leaf: its word; every other node: 1, '<phrase>'", "vocabulary", False),
                      outs, info)


def _expressions(run: LoadedRun) -> ExportSpec:
    from ..data import expressions as ex
    from ..recursive import Nodes
    outs = [Port("logits", "float32", ("B", str(run.model.config.classes)),
                 "unnormalised log-probabilities of each value 0..9")]
    info = {"symbols": list(ex.SYMBOLS), "form": run.data.sequence}
    if not run.model.config.is_tree:
        return ExportSpec(Outputs(run.model, lambda m, *t: (m(*t),)), _CHAIN,
                          _chain_ports("the expression's symbols in 'form' order, indices into 'symbols'"),
                          outs, info)
    return ExportSpec(Outputs(run.model, lambda m, *t: (m(Nodes(*t)),)), _NODES,
                      _tree_ports("a leaf: its digit; every other node: its operator", "symbols", True),
                      outs, info)


def _bars(run: LoadedRun) -> ExportSpec:
    from .bar_images import SIZES
    ins = [Port("images", "float32", ("B", "H", "W", str(SIZES["channels"])), "the images' pixel "
                "values, any height and width (background 0, bars 1)")]
    outs = [Port("logits", "float32", ("B", str(SIZES["classes"])), "unnormalised log-probabilities "
                 "of each label of 'labels' (softmax: the probability of each)")]
    images = torch.zeros(2, 5, 4, SIZES["channels"])
    return ExportSpec(Outputs(run.model, lambda m, x: (m(x),)), {"images": images}, ins, outs,
                      {"labels": ["none", run.data.bar]})


def _sequence_copy(run: LoadedRun) -> ExportSpec:
    bits = run.assets["bits"]
    ins = [Port("x", "float32", ("T", "B", str(bits + 1)), "the L vectors of bits, each with a 0 "
                "appended, then the delimiter (0s, then 1), then L rows of 0s: T = 2 L + 1")]
    outs = [Port("logits", "float32", ("T", "B", str(bits)), "log-odds of each bit at each step; the "
                 "copy is the last L steps' (bit 1 where > 0)")]
    x = torch.zeros(5, 2, bits + 1)
    return ExportSpec(Outputs(run.model, lambda m, x: (m(x),)), {"x": x}, ins, outs, {"bits": bits})


class _Encoder(nn.Module):
    """Seq2Seq.encode with the decoder's initial state as a flat tuple of its fields."""

    def __init__(self, model, fields):
        super().__init__()
        self.model, self.fields = model, fields

    def forward(self, *inputs):  # (src (S, B), lengths (B,))
        state = self.model.encode(*inputs)
        return (*state.hidden, *(getattr(state, f) for f in self.fields))


class _DecoderStep(nn.Module):
    """Seq2Seq.step from the flat fields: (tokens, *hidden, *fields) -> (log_probs, *hidden)."""

    def __init__(self, model, states, fields):
        super().__init__()
        self.model, self.states, self.fields = model, states, fields

    def forward(self, *inputs):  # (tokens (B,), *hidden, *fields)
        from ..models.seq2seq import DecoderState
        tokens, flat = inputs[0], inputs[1:]
        state = DecoderState(tuple(flat[:self.states]), **dict(zip(self.fields, flat[self.states:])))
        log_probs, new = self.model.step(tokens, state)
        return (log_probs, *new.hidden)


def _encoder_decoder(model, encoder_inputs: Dict[str, torch.Tensor], encoder_ports: List[Port],
                     vocabulary_size: int, context: str) -> Tuple[ExportSpec, ExportSpec]:
    """The encoder and decoder-step graphs of a model with ``encode(*inputs) -> DecoderState``
    and ``step(tokens, state)`` (translation, captioning); ``context`` says what the state's
    field c is."""
    cell = model.decoder.cells[0]
    state = model.encode(*encoder_inputs.values())
    fields = [f for f in ("context", "memory", "keys", "mask") if getattr(state, f) is not None]
    L = str(model.config.layers)
    hidden = [Port(n, "float32", (L, "B", str(s)), f"the decoder's state {n!r}")
              for n, s in zip(cell.state_names, cell.state_sizes)]
    meaning = {"context": ("B", "C"), "memory": ("S", "B", "C"), "keys": ("S", "B", "A"),
               "mask": ("S", "B")}
    about = {"context": context, "memory": "the encoder's annotation h_j of each source word",
             "keys": "U h_j + b_U, attention's keys", "mask": "True at the real source words"}
    extra = [Port(f, "bool" if f == "mask" else "float32",
                  tuple(str(getattr(state, f).shape[i]) if d in "CA" else d for i, d in enumerate(meaning[f])),
                  about[f]) for f in fields]
    encoder = ExportSpec(_Encoder(model, fields), encoder_inputs, encoder_ports, hidden + extra)
    example = dict(zip([p.name for p in hidden + extra], (*state.hidden, *(getattr(state, f) for f in fields))))
    decoder = ExportSpec(_DecoderStep(model, len(hidden), fields), {"tokens": torch.tensor([1, 2]), **example},
                         [Port("tokens", "int64", ("B",), "the previous word (the first step: "
                               "'eos'), an index into the target vocabulary")] + hidden + extra,
                         [Port("log_probs", "float32", ("B", str(vocabulary_size)), "log P(next word)")] +
                         [Port(p.name + "_n", p.dtype, p.shape, p.meaning + " after the step")
                          for p in hidden])
    return encoder, decoder


#: how a program uses the two graphs of an encoder-decoder run
_USAGE = ("the encoder's outputs are the decoder's inputs after 'tokens'; feed the decoder eos, then "
          "its own choice, with the state it returned (the other inputs unchanged), until it gives eos")


def _translate(run: LoadedRun) -> Dict[str, ExportSpec]:
    from ..data.vocabulary import EOS
    vocabs = run.assets
    src, lengths = torch.tensor([[1, 2], [2, 1], [1, 3], [3, 3], [1, 3]]), torch.tensor([5, 3])  # (S=5, B=2)
    ports = [Port("src", "int64", ("S", "B"), "source word indices into 'source_vocabulary' (0: "
                  "unknown; padding past a sentence's end: any index)"),
             Port("lengths", "int64", ("B",), "each sentence's number of words")]
    encoder, decoder = _encoder_decoder(run.model, {"src": src, "lengths": lengths}, ports, len(vocabs.target),
                                        "c, the source sentence's summary the decoder reads at every step")
    info = {"source_vocabulary": vocabs.source.symbols, "target_vocabulary": vocabs.target.symbols,
            "unknown": 0, "eos": vocabs.target.index[EOS], "tokenized": run.data.tokenized,
            "max_length": "2 * S + 10 words (eos included), as rnnlab predict", "usage": _USAGE}
    return {"encoder": encoder, "decoder": decoder, "info": info}


def _caption(run: LoadedRun) -> Dict[str, ExportSpec]:
    from ..data.vocabulary import EOS
    a = run.assets
    if a.features:
        ports = [Port("features", "float32", ("B", str(a.features)), "each image's feature vector, "
                      "as the run's features.npy held them")]
        images = torch.zeros(2, a.features)
    else:
        ports = [Port("images", "float32", ("B", "3", str(a.height), str(a.width)), "RGB images, each "
                      "8-bit value divided by 255 (so in [0, 1]), channels first")]
        images = torch.rand(2, 3, a.height, a.width, generator=torch.Generator().manual_seed(0))
    encoder, decoder = _encoder_decoder(run.model, {ports[0].name: images}, ports, len(a.vocab),
                                        "v, the image's features the decoder reads at every step")
    info = {"vocabulary": a.vocab.symbols, "unknown": 0, "eos": a.vocab.index[EOS],
            "image_height": a.height, "image_width": a.width, "features": a.features,
            "max_length": "20 words (eos included), as rnnlab predict", "usage": _USAGE}
    return {"encoder": encoder, "decoder": decoder, "info": info}


#: task name -> what it exports (one graph, or a dict of named graphs and their shared "info")
SPECS: Dict[str, Callable[[LoadedRun], Any]] = {"lm": _lm, "classify": _classify, "tag": _tag,
                                                "ctc": _ctc, "music": _music, "forecast": _forecast,
                                                "translate": _translate, "caption": _caption,
                                                "adding": _adding, "copy": _copy, "word2vec": _word2vec,
                                                "tree": _tree, "expressions": _expressions,
                                                "bars": _bars, "sequence-copy": _sequence_copy}


# ---------------------------------------------------------------------- the files
def export_spec(run: LoadedRun):
    """The run's :class:`ExportSpec` (or, for a task of several graphs, a dict of them by name
    and their shared ``"info"``), its model in evaluation mode; a ConfigError for a task without
    one in :data:`SPECS`."""
    spec = SPECS.get(run.recipe.name)
    if spec is None:
        raise ConfigError(f"rnnlab export covers the tasks {', '.join(SPECS)}; this run is task "
                          f"{run.recipe.name!r}")
    run.model.eval()
    return spec(run)


@contextlib.contextmanager
def _quiet_exporter():
    """Without the lines torch's ONNX exporter prints about itself (a deprecation inside its
    pytree, "torchvision is not installed. Skipping torchvision::nms", ...): errors still show."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def _convert(spec: ExportSpec, fmt: str, run_dir):
    """The graph of one spec in memory: torch.export's program, or the ONNX program."""
    args = tuple(spec.inputs.values())
    # (torch.export consults dynamo's cache of the code that runs a scan: the entry of an earlier
    # export with a static size there (a forecaster's lookback) adds a guard against that size to
    # this export's dynamic one, "Constraints violated (T)". A model compiled in this process
    # compiles again on its next call.)
    torch._dynamo.reset_code_caches()
    with torch.no_grad():
        # (forward(*inputs): one varargs parameter, its shapes one tuple)
        program = torch.export.export(spec.module, args,
                                      dynamic_shapes=(tuple(spec.dynamic_shapes().values()),))
    if fmt == "pt2":
        return program
    try:  # (no_grad: with grad on, torch's type-promotion pass re-traces each scan through
        # autograd and fails on the SymInt sizes autograd saves, "'SymInt' object has no
        # attribute 'unsqueeze'")
        with torch.no_grad(), _quiet_exporter():
            return torch.onnx.export(program, args, input_names=list(spec.inputs),
                                     output_names=[p.name for p in spec.output_ports],
                                     dynamo=True, verbose=False)
    except Exception as e:  # torch's exporter: long reports; the user gets one line
        reason = (str(e).strip().splitlines() or [""])[0][:160]
        raise ConfigError(f"{run_dir}: torch's ONNX exporter could not convert this model "
                          f"({type(e).__name__}: {reason}); --format pt2 writes it") from None


#: the largest difference :func:`check` allows between the graph's outputs and the model's, as a
#: fraction of the largest output (float32 arithmetic in another order)
CHECK_TOLERANCE = 1e-4


def check(spec: ExportSpec, graph, fmt: str) -> Optional[float]:
    """Run the graph (torch.export's program; ONNX Runtime on the ONNX file) on the spec's
    example inputs, its floating-point ones drawn at random (N(0, 0.5^2)): the largest difference
    from the model's own outputs, relative to their largest magnitude; None where ONNX Runtime is
    not installed."""
    g = torch.Generator().manual_seed(0)
    args = tuple(torch.randn(a.shape, generator=g, dtype=a.dtype) * 0.5 if a.is_floating_point() else a
                 for a in spec.inputs.values())
    with torch.no_grad():
        want = spec.module(*args)
        if fmt == "pt2":
            got = graph.module()(*args)
        else:
            try:
                import onnxruntime
            except ImportError:
                return None
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3                              # errors only
            session = onnxruntime.InferenceSession(graph.model_proto.SerializeToString(), options,
                                                   providers=["CPUExecutionProvider"])
            feed = dict(zip(spec.inputs, (a.numpy() for a in args)))
            got = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})
    worst = 0.0
    for g, w in zip(got, want):
        g, w = torch.as_tensor(g).double(), w.double()
        worst = max(worst, float((g - w).abs().max() / (1 + w.abs().max())) if w.numel() else 0.0)
    return worst


def _described(json_path: Path, fmt: str) -> List[str]:
    """The graph files of another format than ``fmt`` that the JSON at ``json_path`` describes
    and that are there ([] if none, or no readable JSON)."""
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(meta, dict) or meta.get("format") in (fmt, None):
        return []
    graphs = meta.get("graphs")
    names = [g.get("graph") for g in graphs.values()] if isinstance(graphs, dict) else [meta.get("graph")]
    return [str(json_path.with_name(n)) for n in names if isinstance(n, str) and json_path.with_name(n).exists()]


def export_run(run_dir, fmt: str = "onnx", out: Optional[str] = None) -> Tuple[List[Path], Path]:
    """Write the run's graph (``out``, a file or a folder; default RUN_DIR/model.onnx or model.pt2) and its JSON
    (the graph's name with ``.json``); returns the graph files and the JSON's path. A task of several graphs (translation:
    ``encoder``, ``decoder``) writes each as ``<name>-<graph>.<format>`` beside one JSON, whose
    ``graphs`` says each one's file, inputs and outputs. Nothing is written unless every graph
    converts, and nothing replaces a JSON that describes a graph of the other format."""
    check_choice("format", fmt, FORMATS)
    run = load_run(run_dir)
    specs = export_spec(run)
    path = Path(out) if out else Path(run_dir)
    if path.is_dir():  # (a folder: the default name in it)
        path = path / f"model.{fmt}"
    json_path = path.with_suffix(".json")
    other = _described(json_path, fmt)
    if other:
        raise ConfigError(f"{json_path} describes {', '.join(other)}, which the {fmt} graph's JSON would "
                          f"replace; give another --out, e.g. {path.with_name(f'{path.stem}-{fmt}{path.suffix}')}")
    single = isinstance(specs, ExportSpec)
    info = specs.info if single else specs.pop("info", {})
    parts = {"": specs} if single else specs
    graphs = {name: _convert(spec, fmt, run_dir) for name, spec in parts.items()}
    checked = [check(parts[name], graph, fmt) for name, graph in graphs.items()]
    if any(c is not None and c > CHECK_TOLERANCE for c in checked):
        raise ConfigError(f"{run_dir}: the {fmt} graph's outputs differ from the model's by "
                          f"{max(c for c in checked if c is not None):.2g} of their size on an example; "
                          f"nothing written")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta: Dict[str, Any] = {"task": run.recipe.name, "format": fmt}
    if not single:
        meta["graphs"] = {}
    files = []
    for name, graph in graphs.items():
        file = path if single else path.with_name(f"{path.stem}-{name}{path.suffix}")
        if fmt == "pt2":
            torch.export.save(graph, str(file))
        else:
            graph.save(str(file))
        files.append(file)
        ports = {"inputs": [p.to_json() for p in parts[name].input_ports],
                 "outputs": [p.to_json() for p in parts[name].output_ports]}
        if single:
            meta.update(graph=file.name, **ports)
        else:
            meta["graphs"][name] = {"graph": file.name, **ports}
    meta.update(info)
    if None not in checked:
        meta["checked"] = (f"the graph's outputs equal the model's on an example, within "
                           f"{max(checked):.1g} of their size")
    json_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return files, json_path
