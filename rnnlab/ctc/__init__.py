"""Connectionist temporal classification: the loss of order-synchronous, time-asynchronous outputs
(:mod:`rnnlab.ctc.loss`), its decoders (:mod:`rnnlab.ctc.decoding`) and the label error rate
(:mod:`rnnlab.ctc.label_error_rate`)."""
from .decoding import collapse, decode, greedy_decode, prefix_beam_search, prefix_beam_search_one
from .label_error_rate import edit_distance, label_error_rate, label_errors
from .loss import ctc_loss

__all__ = ["collapse", "ctc_loss", "decode", "edit_distance", "greedy_decode", "label_error_rate",
           "label_errors", "prefix_beam_search", "prefix_beam_search_one"]
