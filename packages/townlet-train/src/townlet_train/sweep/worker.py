"""One seed of one config, as a Ray task runs it: train in an ordinary run directory, then a
greedy evaluation of the final checkpoint, exactly as `townlet-train train --seed S --run-dir D`
followed by `townlet-train eval --checkpoint D --episodes E --seed EVAL_SEED` would give.

A seed whose result file exists is done and is not run again. A run directory left by a
killed sweep is resumed from its newest checkpoint when the config saves the replay buffer
(`checkpoint.include_replay`: the resume is then exact), and otherwise trained again from the
start (a resume without the buffer learns something else), so a killed and restarted sweep gives
the figures of one that was never killed. Any failure comes back as a one-line `error`, never as
an exception, so that Ray does not retry it and the sweep goes on.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from townlet_train.config import TrainConfig
from townlet_train.run.callbacks import Callback

CURVE_BINS = 20


class Pruned(Exception):
    """Raised from a callback: the sweep's pruner stopped this trial."""


class Reporter(Callback):
    """Sends each greedy evaluation to the sweep's board and stops the run once the trial is pruned."""

    def __init__(self, board: Any, trial: int, seed: int):
        self.board, self.trial, self.seed = board, trial, seed

    def send(self, steps: int, value: float) -> None:
        import ray

        if ray.get(self.board.report.remote(self.trial, self.seed, steps, value)):
            raise Pruned(f"trial {self.trial} pruned")

    def after_evaluation(self, trainer: Any, result: dict[str, Any]) -> None:
        self.send(int(trainer.counters["agent_steps"]), float(result["mean_survival"]))


def run_seed(job: dict[str, Any]) -> dict[str, Any]:
    """job: config (a resolved config dict), run_dir, result (the JSON file written when done),
    episodes, eval_seed, and for a sweep's trial: board, trial."""
    torch.set_num_threads(1)  # one core per task, and figures that do not depend on the cores
    result_path = Path(job["result"])
    if result_path.is_file():
        return {**json.loads(result_path.read_text()), "reused": True}
    started = time.perf_counter()
    try:
        cfg = TrainConfig.model_validate(job["config"])
        run_dir = Path(job["run_dir"])
        trainer = _trainer(cfg, run_dir)
        callbacks = []
        if job.get("board") is not None:
            reporter = Reporter(job["board"], job["trial"], cfg.seed)
            for steps, value in _evaluations(run_dir, trainer.counters["agent_steps"]):
                reporter.send(steps, value)  # those of a resumed run, sent again
            callbacks.append(reporter)
        summary = trainer.run(cfg.total_steps, callbacks=callbacks)
        if "interrupted" in summary:
            return _failure(f"stopped by {summary['interrupted']}", started)
        result = _evaluate(cfg, Path(summary["checkpoint"]), job, trainer.device)
    except Pruned:
        return {"pruned": True, "seconds": time.perf_counter() - started, **_where()}
    except Exception as exc:
        return _failure(_one_line(exc), started)
    result.update(
        seed=cfg.seed,
        run_dir=str(run_dir),
        agent_steps=int(trainer.counters["agent_steps"]),
        train_seconds=round(time.perf_counter() - started, 1),
        curve=_curve(run_dir, cfg.total_steps),
        evaluations=_evaluations(run_dir, None),
        **_where(),
    )
    _write_json(result_path, result)
    return result


def _trainer(cfg: TrainConfig, run_dir: Path) -> Any:
    from townlet_train.trainers import make_trainer

    started = (run_dir / "config.yaml").is_file()
    if started and cfg.checkpoint.include_replay and any((run_dir / "checkpoints").glob("step_*.pt")):
        from townlet_train.run.resume import resume

        return resume(cfg, run_dir, lambda: make_trainer(cfg, run_dir)).trainer
    if run_dir.exists():  # a run this sweep started and could not resume exactly: start it again
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return make_trainer(cfg, run_dir)


def _evaluate(cfg: TrainConfig, checkpoint: Path, job: dict[str, Any], device: Any) -> dict[str, Any]:
    from townlet_train.evaluate import evaluate
    from townlet_train.policy import load_policy

    policy, _ = load_policy(checkpoint, device)
    ev = evaluate(
        cfg.level, "learned", job["episodes"], 1.0, seed=job["eval_seed"], device=device, agent=policy
    )
    keep = ("mean_survival", "median_survival", "mean_reward", "max_steps", "episodes")
    return {key: ev[key] for key in keep} | {"checkpoint": str(checkpoint)}


def _curve(run_dir: Path, total_steps: int) -> list[float | None]:
    """Mean training survival per bin of agent-steps (CURVE_BINS equal bins up to total_steps)."""
    sums = [0.0] * CURVE_BINS
    counts = [0] * CURVE_BINS
    for steps, survived in _rows(run_dir, "SELECT agent_steps, steps_survived FROM episodes"):
        i = min(CURVE_BINS - 1, int(steps * CURVE_BINS / max(total_steps, 1)))
        sums[i] += survived
        counts[i] += 1
    return [s / n if n else None for s, n in zip(sums, counts, strict=True)]


def _evaluations(run_dir: Path, upto: int | None) -> list[tuple[int, float]]:
    rows = _rows(run_dir, "SELECT agent_steps, mean_survival FROM evaluations ORDER BY agent_steps")
    return [(int(s), float(v)) for s, v in rows if upto is None or s <= upto]


def _rows(run_dir: Path, query: str) -> list[tuple[Any, ...]]:
    db = run_dir / "metrics.db"
    if not db.is_file():
        return []
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return connection.execute(query).fetchall()
    except sqlite3.OperationalError:  # no such table yet
        return []
    finally:
        connection.close()


def _where() -> dict[str, Any]:
    """Where this ran, as Ray knows it (the node's id) and as the machine does."""
    node = None
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    return {"node_id": node, "hostname": socket.gethostname()}


def _failure(reason: str, started: float) -> dict[str, Any]:
    return {"error": reason, "seconds": round(time.perf_counter() - started, 1), **_where()}


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
    return text[:400]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from townlet_env.files import atomic_output

    with atomic_output(path, force=True) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
