"""rnnlab: recurrent neural networks from the textbook, on PyTorch."""
from .cells import LSTMCell, RecurrentCell, RNNCell
from .layers import LSTM, RNN, RecurrentLayer

__version__ = "0.1.0"

__all__ = ["LSTM", "LSTMCell", "RNN", "RNNCell", "RecurrentCell", "RecurrentLayer", "__version__"]
