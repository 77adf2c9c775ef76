"""Townlet's trainer: the DQN family on `TownletVectorEnv`, with the `townlet-train` command."""

__version__ = "0.1.0"
