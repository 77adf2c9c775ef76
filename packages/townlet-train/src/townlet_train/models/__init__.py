"""The trainer's models: field encoders, a pluggable `Memory` (none, LSTM, GRU, the map) and one
`Model` shape (encoder -> memory -> heads) for Q-values or policy and value."""

from townlet_train.models.encoders import FieldEncoder, Layout, WindowSummary
from townlet_train.models.memory import (
    GRUMemory,
    LSTMMemory,
    Memory,
    NoMemory,
    State,
    is_init_of,
    reset_ended,
    restored,
    rows_of,
)
from townlet_train.models.networks import (
    ActorCritic,
    MapStudent,
    Model,
    PolicyModel,
    QNetwork,
    RecurrentActorCritic,
    RecurrentQNetwork,
    build_network,
    field_shapes,
    masked_argmax,
    masked_logits,
    policy_network,
)

__all__ = [
    "ActorCritic",
    "FieldEncoder",
    "GRUMemory",
    "LSTMMemory",
    "Layout",
    "MapStudent",
    "Memory",
    "Model",
    "NoMemory",
    "PolicyModel",
    "QNetwork",
    "RecurrentActorCritic",
    "RecurrentQNetwork",
    "State",
    "WindowSummary",
    "build_network",
    "field_shapes",
    "is_init_of",
    "masked_argmax",
    "masked_logits",
    "policy_network",
    "reset_ended",
    "restored",
    "rows_of",
]
