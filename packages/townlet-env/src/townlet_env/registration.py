"""Register Townlet with Gymnasium and PettingZoo; `import townlet_env` calls `register_envs()`.

    gym.make("Townlet-v0", level="L0_minimal")                       # TownletEnv, numpy
    gym.make("townlet_env:Townlet-v0")                               # imports townlet_env first
    gym.make_vec("Townlet-v0", num_envs=64, device="cuda")           # TownletVectorEnv, torch
    pettingzoo.make("parallel", "townlet/Townlet-v0", num_agents=4)  # TownletParallelEnv
    pettingzoo.make("aec", "townlet/Townlet-v0", num_agents=4)       # its AEC version

No `max_episode_steps` is registered: the env truncates itself at the level's max_steps (and a
registered value would also be handed to the vector entry point, which has no such argument).
"""

from __future__ import annotations

GYM_ID = "Townlet-v0"
PETTINGZOO_ID = "townlet/Townlet-v0"


def register_envs() -> None:
    """Idempotent: ids already registered are left alone (no "overriding" warnings)."""
    import gymnasium as gym

    if GYM_ID not in gym.registry:
        gym.register(
            id=GYM_ID,
            entry_point="townlet_env.envs.gym_env:TownletEnv",
            vector_entry_point="townlet_env.envs.vector_env:TownletVectorEnv",
        )

    import pettingzoo

    if PETTINGZOO_ID not in pettingzoo.parallel_registry:
        pettingzoo.register(
            "parallel", PETTINGZOO_ID, entry_point="townlet_env.envs.pettingzoo_env:parallel_env"
        )
    if PETTINGZOO_ID not in pettingzoo.aec_registry:
        pettingzoo.register("aec", PETTINGZOO_ID, entry_point="townlet_env.envs.pettingzoo_env:env")


__all__ = ["GYM_ID", "PETTINGZOO_ID", "register_envs"]
