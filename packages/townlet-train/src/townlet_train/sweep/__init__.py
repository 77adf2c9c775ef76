"""Many seeds and hyperparameter sweeps, on Ray with Optuna (the `sweep` extra:
`pip install 'townlet-train[sweep]'`); see docs/sweeps.md.

- `seeds.py`: `townlet-train seeds CONFIG --seeds 0-9` and its aggregate;
- `study.py`: `townlet-train sweep CONFIG --space SPACE.yaml --trials N --seeds K`, Optuna's
  sampler and pruner over trials asked in batches;
- `space.py`: the search-space file; `stats.py`: mean, IQM and bootstrap intervals;
- `engine.py`: Ray (local or a cluster) and the board the running tasks report to;
- `worker.py`: one seed of one config, in a Ray task; `outputs.py`, `lock.py`: files and progress;
- `commands.py`: the two subcommands of `townlet-train`.
"""
