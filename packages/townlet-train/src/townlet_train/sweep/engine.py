"""Ray, the engine that runs the seeds: a local Ray on this machine by default (`--cpus`), or an
existing cluster (`--address`). Each seed of each trial is one Ray task of one CPU; Ray places
it on a node with a free CPU. The board is a small Ray actor through which the tasks report their
greedy evaluations and learn that their trial was pruned, and through which the driver learns
that a task has started: a Ray whose workers cannot start (a temp dir it refuses, a worker that
dies at import) or that has no free CPU for them keeps the tasks pending forever, so the command
gives up once none has started within the startup timeout."""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

EXTRA = "pip install 'townlet-train[sweep]'"
STARTUP_TIMEOUT = 120.0  # seconds for the first task to start: a worker starts in a few


class StartupTimeout(Exception):
    """No task started within the startup timeout (one line: what was waited for, what to check)."""


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


def startup_timeout(given: float | None) -> float:
    """--startup-timeout, else TOWNLET_RAY_STARTUP_TIMEOUT, else STARTUP_TIMEOUT (seconds)."""
    if given is not None:
        where, value = f"--startup-timeout {given:g}", given
    else:
        text = os.environ.get("TOWNLET_RAY_STARTUP_TIMEOUT", "").strip()
        if not text:
            return STARTUP_TIMEOUT
        where = f"TOWNLET_RAY_STARTUP_TIMEOUT={text!r}"
        try:
            value = float(text)
        except ValueError:
            value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{where}: expected a number of seconds > 0")
    return value


class Engine:
    """Ray for the length of a command; `close()` shuts down what this process started."""

    def __init__(self, address: str | None, cpus: int | None, startup: float = STARTUP_TIMEOUT):
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
            # Ray holds the first driver's connection (with the GIL) until a worker has started;
            # without that wait, ray.init returns and the startup timeout below sees a Ray whose
            # workers never start
            options |= {"_system_config": {"prestart_worker_first_driver": False}}
            try:
                ray.init(num_cpus=cpus, object_store_memory=100 * 1024 * 1024, **options)
            except ValueError as exc:  # "temp_dir must not be child directory of virtualenv root"
                first = (str(exc).strip().splitlines() or [""])[0]
                where = ray_temp_dir()
                raise ValueError(
                    f"Ray refused to start in {where}: {first} (TOWNLET_RAY_TMPDIR chooses the directory)"
                ) from None
        self.ray, self.address, self.startup = ray, address, startup
        self.task = ray.remote(num_cpus=1, max_retries=0)(_run_seed)
        self.board: Any = ray.remote(num_cpus=0)(Board).remote()
        self.deadline: float | None = None  # set by the first submit
        self.started = False  # a task has started (the board says so, or one has ended)
        self.probe: Any = None  # the board's answer on the way

    def cpus(self) -> int:
        return int(self.ray.cluster_resources().get("CPU", 1))

    def submit(self, job: dict[str, Any]) -> Any:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.startup
        return self.task.remote(job, self.board)

    def finished(self, refs: list[Any], timeout: float) -> Iterator[tuple[Any, dict[str, Any]]]:
        """The tasks that ended within `timeout` seconds, with their results (a lost worker: an
        error). Raises StartupTimeout once the startup timeout has passed with no task started."""
        if not refs:
            return
        done, _ = self.ray.wait(refs, num_returns=len(refs), timeout=timeout)
        self.started = self.started or bool(done)
        self.check_started()
        for ref in done:
            try:
                yield ref, self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:  # the worker died: out of memory, a crash
                text = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                yield ref, {"error": f"{type(exc).__name__}: {text[:300]}"}

    def check_started(self) -> None:
        """Ask the board, without waiting for it (it needs a worker too), whether a task started."""
        if self.started or self.deadline is None:
            return
        if self.probe is None:
            self.probe = self.board.started.remote()
        ready, _ = self.ray.wait([self.probe], timeout=0)
        if ready:
            self.started, self.probe = bool(self.ray.get(self.probe)), None
        if not self.started and time.monotonic() > self.deadline:
            raise StartupTimeout(self.no_start())

    def no_start(self) -> str:
        free = self.ray.available_resources().get("CPU", 0)
        total = self.ray.cluster_resources().get("CPU", 0)
        waited = f"no seed started within {self.startup:g} s"
        more = "--startup-timeout or TOWNLET_RAY_STARTUP_TIMEOUT waits longer"
        if self.address is not None:
            return (
                f"{waited} on the Ray cluster at {self.address} ({free:g} of {total:g} CPUs free): "
                "check that its nodes have free CPUs (`ray status`) and that their workers start "
                f"(each node's session_latest/logs under its --temp-dir); {more}"
            )
        # this Ray's own session (session_latest may be another local Ray's)
        node: Any = getattr(self.ray._private.worker, "_global_node", None)
        latest = os.path.join(ray_temp_dir(), "session_latest", "logs")
        logs = node.get_logs_dir_path() if node is not None else latest
        return (
            f"{waited} on the local Ray ({free:g} of {total:g} CPUs free): its workers did not start; see "
            f"the raylet's and workers' errors in {logs} (TOWNLET_RAY_TMPDIR, the environment's "
            f"PYTHONPATH); {more}"
        )

    def reports(self) -> list[tuple[int, int, int, float]]:
        if not self.started:  # the board may not run yet, and no task has reported
            return []
        return list(self.ray.get(self.board.drain.remote()))

    def prune(self, trial: int) -> None:
        self.ray.get(self.board.prune.remote(trial))

    def close(self) -> None:
        self.ray.shutdown()


def _run_seed(job: dict[str, Any], board: Any) -> dict[str, Any]:
    from townlet_train.sweep.worker import run_seed

    board.start.remote()  # not awaited: the run does not wait for the board
    return run_seed(job)


class Board:
    """Evaluations reported by running tasks, and the trials pruned so far (a Ray actor)."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, int, int, float]] = []
        self.pruned: set[int] = set()
        self.tasks = 0

    def start(self) -> None:
        """A task has started."""
        self.tasks += 1

    def started(self) -> int:
        return self.tasks

    def report(self, trial: int, seed: int, steps: int, value: float) -> bool:
        """Record one evaluation; True if the trial was pruned (the task then stops)."""
        self.pending.append((trial, seed, steps, value))
        return trial in self.pruned

    def drain(self) -> list[tuple[int, int, int, float]]:
        out, self.pending = self.pending, []
        return out

    def prune(self, trial: int) -> None:
        self.pruned.add(trial)
