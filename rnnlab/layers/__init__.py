from .deep_transition import DeepTransitionRNN
from .dropout import Dropout
from .extra import LeakyRNN, ResidualRNN
from .grid_rnn import GridRNN
from .output_feedback import OutputFeedbackRNN
from .output_recurrent import OutputRecurrentRNN
from .recurrent_layer import RecurrentLayer
from .standard import GRU, LSTM, RNN

__all__ = ["LAYERS", "RecurrentLayer", "DeepTransitionRNN", "Dropout", "GRU", "GridRNN", "LeakyRNN", "LSTM", "OutputFeedbackRNN",
           "OutputRecurrentRNN",
           "ResidualRNN", "RNN"]

#: the layers a model can be built from, by the name used in configs and on the command line
LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN, "leaky": LeakyRNN, "residual": ResidualRNN,
          "deep_transition": DeepTransitionRNN}
