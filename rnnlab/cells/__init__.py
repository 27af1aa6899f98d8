from .cell import RecurrentCell
from .gru_cell import GRUCell
from .lstm_cell import LSTMCell
from .rnn_cell import RNNCell

__all__ = ["RecurrentCell", "GRUCell", "LSTMCell", "RNNCell"]
