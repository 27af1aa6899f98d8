"""rnnlab: recurrent neural networks from the textbook, on PyTorch."""
from .cells import (DeepTransitionCell, GRUCell, LeakyRNNCell, LSTMCell, OutputFeedbackCell,
                    RecurrentCell, ResidualRNNCell, RNNCell)
from .layers import (DeepTransitionRNN, GRU, LeakyRNN, LSTM, OutputFeedbackRNN, RNN, RecurrentLayer,
                     ResidualRNN)

__version__ = "0.1.0"

__all__ = ["DeepTransitionCell", "DeepTransitionRNN", "GRU", "GRUCell", "LeakyRNN", "LeakyRNNCell",
           "LSTM", "LSTMCell", "OutputFeedbackCell", "OutputFeedbackRNN", "RNN", "RNNCell",
           "RecurrentCell", "RecurrentLayer", "ResidualRNN", "ResidualRNNCell", "__version__"]
