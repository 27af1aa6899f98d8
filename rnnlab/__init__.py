"""rnnlab: recurrent neural networks from the textbook, on PyTorch."""
from .cells import GRUCell, LSTMCell, RecurrentCell, RNNCell
from .layers import GRU, LSTM, RNN, RecurrentLayer

__version__ = "0.1.0"

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell", "RecurrentCell", "RecurrentLayer", "__version__"]
