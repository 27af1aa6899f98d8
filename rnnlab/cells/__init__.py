from .cell import RecurrentCell
from .gru_cell import GRUCell
from .leaky_rnn_cell import LeakyRNNCell
from .lstm_cell import LSTMCell
from .residual_rnn_cell import ResidualRNNCell
from .rnn_cell import RNNCell

__all__ = ["RecurrentCell", "GRUCell", "LeakyRNNCell", "LSTMCell", "ResidualRNNCell", "RNNCell"]
