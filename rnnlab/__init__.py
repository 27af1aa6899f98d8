"""rnnlab: recurrent neural networks from the textbook, on PyTorch."""
__version__ = "0.1.0"

from . import errors
from .cells import (DeepTransitionCell, GRUCell, LeakyRNNCell, LSTMCell, OutputFeedbackCell,
                    RecurrentCell, ResidualRNNCell, RNNCell)
from .layers import (DeepTransitionRNN, GRU, GridRNN, LeakyRNN, LSTM, OutputFeedbackRNN,
                     OutputRecurrentRNN, RNN, RecurrentLayer, ResidualRNN)
from .api import evaluate, predict, sample, train

__all__ = ["DeepTransitionCell", "DeepTransitionRNN", "GRU", "GRUCell", "GridRNN", "LeakyRNN",
           "LeakyRNNCell", "LSTM", "LSTMCell", "OutputFeedbackCell", "OutputFeedbackRNN",
           "OutputRecurrentRNN", "RNN", "RNNCell",
           "RecurrentCell", "RecurrentLayer", "ResidualRNN", "ResidualRNNCell", "__version__", "errors",
           "evaluate", "predict", "sample", "train"]
