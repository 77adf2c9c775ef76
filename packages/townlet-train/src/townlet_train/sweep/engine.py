"""Ray, the engine that runs the seeds: a local Ray on this machine by default (`--cpus`), or an
existing cluster (`--address`). Each seed of each trial is one Ray task of one CPU; Ray places
it on a node with a free CPU. The board is a small Ray actor through which the tasks report their
greedy evaluations and learn that their trial was pruned."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

EXTRA = "pip install 'townlet-train[sweep]'"


def require(command: str) -> None:
    """One line saying what to install, when the sweep extra is missing."""
    missing = []
    for module in ("ray", "optuna"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ValueError(f"townlet-train {command} needs {' and '.join(missing)}: {EXTRA}")


def ray_temp_dir() -> str:
    """Where a local Ray keeps its session: Ray's own default (TMPDIR/ray) unless that lies
    inside this Python's virtualenv, where Ray's workers refuse to start ("temp_dir must not be
    child directory of virtualenv root"; nox and tox point TMPDIR there), or is too long for the
    unix sockets Ray makes in it (107 bytes with the session's own names); then /tmp/ray.
    TOWNLET_RAY_TMPDIR overrides both."""
    chosen = os.environ.get("TOWNLET_RAY_TMPDIR")
    if chosen:
        return chosen
    default = os.path.join(os.path.realpath(tempfile.gettempdir()), "ray")
    inside_venv = sys.prefix != sys.base_prefix and default.startswith(os.path.realpath(sys.prefix) + os.sep)
    if inside_venv or len(default) > 40:
        return os.path.join(os.sep, "tmp", "ray")
    return default


class Engine:
    """Ray for the length of a command; `close()` shuts down what this process started."""

    def __init__(self, address: str | None, cpus: int | None):
        import ray

        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address is not None:
            ray.init(address=address, **options)
        else:  # a small object store: the tasks pass only small dicts
            cpus = cpus or os.cpu_count() or 1
            # "local": a Ray of its own, even where RAY_ADDRESS is set or a `ray start` on this
            # machine (running or long gone) left its address in /tmp/ray/ray_current_cluster,
            # which ray.init() with no address would join
            options |= {"address": "local", "include_dashboard": False, "_temp_dir": ray_temp_dir()}
            ray.init(num_cpus=cpus, object_store_memory=100 * 1024 * 1024, **options)
        self.ray = ray
        self.task = ray.remote(num_cpus=1, max_retries=0)(_run_seed)
        self.board: Any = ray.remote(num_cpus=0)(Board).remote()

    def cpus(self) -> int:
        return int(self.ray.cluster_resources().get("CPU", 1))

    def submit(self, job: dict[str, Any]) -> Any:
        return self.task.remote(job)

    def finished(self, refs: list[Any], timeout: float) -> Iterator[tuple[Any, dict[str, Any]]]:
        """The tasks that ended within `timeout` seconds, with their results (a lost worker: an error)."""
        if not refs:
            return
        done, _ = self.ray.wait(refs, num_returns=len(refs), timeout=timeout)
        for ref in done:
            try:
                yield ref, self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:  # the worker died: out of memory, a crash
                text = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                yield ref, {"error": f"{type(exc).__name__}: {text[:300]}"}

    def reports(self) -> list[tuple[int, int, int, float]]:
        return list(self.ray.get(self.board.drain.remote()))

    def prune(self, trial: int) -> None:
        self.ray.get(self.board.prune.remote(trial))

    def close(self) -> None:
        self.ray.shutdown()


def _run_seed(job: dict[str, Any]) -> dict[str, Any]:
    from townlet_train.sweep.worker import run_seed

    return run_seed(job)


class Board:
    """Evaluations reported by running tasks, and the trials pruned so far (a Ray actor)."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, int, int, float]] = []
        self.pruned: set[int] = set()

    def report(self, trial: int, seed: int, steps: int, value: float) -> bool:
        """Record one evaluation; True if the trial was pruned (the task then stops)."""
        self.pending.append((trial, seed, steps, value))
        return trial in self.pruned

    def drain(self) -> list[tuple[int, int, int, float]]:
        out, self.pending = self.pending, []
        return out

    def prune(self, trial: int) -> None:
        self.pruned.add(trial)
