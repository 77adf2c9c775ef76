"""The evaluation callback (the earlier Townlet's promotion gate; SB3's `EvalCallback`): every
`evaluation.every_steps` agent-steps, the learned policy plays `evaluation.episodes` greedy
episodes at full difficulty on the same towns (`evaluation.seed`); the result goes to metrics.db
(table `evaluations`), TensorBoard (`eval/...`) and the progress line, and the best so far is
saved as `checkpoints/best.pt` beside the newest checkpoints (`townlet-train eval --checkpoint
RUN_DIR/best`).

It never touches the run's own random streams (it plays its own env, and the torch RNG is put
back), so a run with evaluations learns exactly what the same run without them learns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from townlet_train.config import EvaluationSettings
from townlet_train.run import checkpoint as ckpt


class Evaluation:
    def __init__(self, settings: EvaluationSettings):
        self.settings = settings
        self.next = settings.every_steps  # agent-step of the next evaluation
        self.best: float | None = None  # the best mean survival so far
        self.last: float | None = None

    def due(self, agent_steps: int) -> bool:
        return self.settings.every_steps > 0 and agent_steps >= self.next

    def run(self, trainer: Any, metrics: Any) -> dict[str, Any]:
        """Evaluate now; save best.pt if this is the best so far."""
        from townlet_train.evaluate import evaluate
        from townlet_train.policy import ModelPolicy

        s, steps = self.settings, trainer.counters["agent_steps"]
        while self.next <= steps:
            self.next += s.every_steps
        rng = torch.get_rng_state()
        try:
            policy = ModelPolicy(trainer.learner.online)
            result = evaluate(
                trainer.cfg.level,
                "learned",
                s.episodes,
                1.0,
                seed=s.seed,
                device=trainer.device,
                agent=policy,
            )
        finally:
            torch.set_rng_state(rng)
        metrics.evaluation(steps, result)
        self.last = float(result["mean_survival"])
        if self.best is None or self.last > self.best:
            self.best = self.last
            self.save_best(trainer)
        return result

    def save_best(self, trainer: Any) -> Path:
        directory = trainer.run_dir / "checkpoints"
        payload = {**trainer.state_dict(), "best_eval": self.best}
        return ckpt.save_checkpoint(payload, directory, "best", trainer.cfg.checkpoint.keep)

    def state_dict(self) -> dict[str, Any]:
        return {"next": self.next, "best": self.best, "last": self.last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next, self.best, self.last = int(state["next"]), state["best"], state["last"]
