"""The adapters: thin views of a `Town` for the APIs RL libraries speak.

- `TownletVectorEnv` (vector_env.py): a Gymnasium vector env with torch tensors in and out;
- `TownletEnv`, `TorchToNumpy` (gym_env.py): one agent with numpy, and numpy for a vector env;
- `TownletParallelEnv`, `parallel_env`, `env` (pettingzoo_env.py): one town of several agents;
- `SB3VecEnv`, `SuperSuitSB3Fix` (sb3.py, needs the `interop` extra): Stable-Baselines3 glue.

None of them sequences the core itself: stepping, autoreset, saving and rendering are `Town`'s.
"""
