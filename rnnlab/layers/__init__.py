from .deep_transition import DeepTransitionRNN
from .extra import LeakyRNN, ResidualRNN
from .output_feedback import OutputFeedbackRNN
from .recurrent_layer import RecurrentLayer
from .standard import GRU, LSTM, RNN

__all__ = ["LAYERS", "RecurrentLayer", "DeepTransitionRNN", "GRU", "LeakyRNN", "LSTM", "OutputFeedbackRNN",
           "ResidualRNN", "RNN"]

#: the layers a model can be built from, by the name used in configs and on the command line
LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN, "leaky": LeakyRNN, "residual": ResidualRNN,
          "deep_transition": DeepTransitionRNN}
