"""What a training run tells the code around it while it runs.

`Trainer.run(total_steps, callbacks=[...])` calls every callback's hooks in order: `after_step`
once per env step (with the latest learner statistics) and `after_evaluation` after each
evaluation of the evaluation callback (`evaluation.every_steps`). Subclass `Callback` and
override the hooks you need; a hook that raises stops the run as any other error does, after
the run's last checkpoint is unchanged (a sweep's pruner stops a trial this way).
"""

from __future__ import annotations

from typing import Any


class Callback:
    def after_step(self, trainer: Any, stats: dict[str, float]) -> None:
        """Once per env step; `trainer.counters["agent_steps"]` says how far the run is."""

    def after_evaluation(self, trainer: Any, result: dict[str, Any]) -> None:
        """After each greedy evaluation; `result` is `townlet_train.evaluate.evaluate`'s dict
        (`mean_survival`, ...)."""
