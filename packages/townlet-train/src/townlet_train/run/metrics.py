"""Metrics: one SQLite row per finished episode per slot, and TensorBoard scalars.

SQLite runs in WAL mode so that a reader (a notebook, `sqlite3 metrics.db`) can query a run
while it trains. The database follows the checkpoints: rows are committed before each save, and
a run that continues from a checkpoint first removes the rows written after it (`rewind`), so a
crash and `--resume` leave exactly the rows of an uninterrupted run. A UNIQUE key on
(agent_steps, slot) - one episode end per slot per env step - makes a duplicate an error.
Every SQLite failure (a corrupt, locked or read-only file, a full disk) is a `MetricsError`
naming the file.

Each episode row also records `wall_seconds`: the seconds of training when it ended, counted from
the start of the run (a resumed run continues from the last row it kept), so that curves can be
drawn against wall-clock time as well as agent-steps. Databases written before the column
existed gain it, empty (NULL) in their old rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import torch

SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_steps INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    steps_survived INTEGER NOT NULL,
    terminated INTEGER NOT NULL,
    total_reward REAL NOT NULL,
    extrinsic_reward REAL NOT NULL,
    intrinsic_reward REAL NOT NULL,
    curriculum_stage INTEGER NOT NULL,
    difficulty REAL NOT NULL,
    epsilon REAL NOT NULL,
    final_meters TEXT NOT NULL,
    wall_seconds REAL
);
CREATE TABLE IF NOT EXISTS affordance_visits (
    agent_steps INTEGER NOT NULL, affordance TEXT NOT NULL, visits INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS affordance_transitions (
    agent_steps INTEGER NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL, count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    agent_steps INTEGER NOT NULL, episodes INTEGER NOT NULL, difficulty REAL NOT NULL,
    mean_survival REAL NOT NULL, median_survival REAL NOT NULL, mean_reward REAL NOT NULL
);
"""
UNIQUE_EPISODES = "CREATE UNIQUE INDEX IF NOT EXISTS episode_end ON episodes (agent_steps, slot)"
# Databases written before the key existed may hold the duplicates of a crash and resume; the
# newest copy is the one the checkpoints continue from.
DROP_DUPLICATES = (
    "DELETE FROM episodes WHERE id NOT IN (SELECT MAX(id) FROM episodes GROUP BY agent_steps, slot)"
)
TABLES = ("episodes", "affordance_visits", "affordance_transitions", "evaluations")
# How long a write waits for a lock that another program (a reader mid-transaction, a sqlite3
# shell) holds, before giving up with an error.
BUSY_TIMEOUT_S = 10.0


class MetricsError(OSError):
    """metrics.db cannot be opened or written."""


class Metrics:
    def __init__(self, run_dir: Path, meter_names: list[str], tensorboard: bool, resume_step: int = 0):
        """`resume_step`: the agent-step the run continues from; TensorBoard hides the events
        an interrupted run logged after it."""
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "metrics.db"
        self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        try:
            with self._errors():
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.executescript(SCHEMA)
                self._add_wall_seconds()
                self._unique_episodes()
        except BaseException:
            self.db.close()
            raise
        self.meter_names = meter_names
        self.clock, self.clock_offset = time.monotonic(), 0.0  # see `wall_seconds`
        self.writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_step + 1 if resume_step else None
            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            hint = {
                "database is locked": "another program holds it; close that program, then --resume",
                "file is not a database": "the file is damaged; move it away to resume without its rows",
            }.get(str(exc), "then --resume: the checkpoints are intact")
            raise MetricsError(f"{self.path}: {exc} ({hint})") from None

    def _add_wall_seconds(self) -> None:
        columns = [row[1] for row in self.db.execute("PRAGMA table_info(episodes)")]
        if "wall_seconds" not in columns:  # a database from before the column
            self.db.execute("ALTER TABLE episodes ADD COLUMN wall_seconds REAL")

    def wall_seconds(self) -> float:
        """Seconds of training so far: this process's, plus those of the rows kept by `rewind`."""
        return self.clock_offset + time.monotonic() - self.clock

    def _unique_episodes(self) -> None:
        try:
            self.db.execute(UNIQUE_EPISODES)
        except sqlite3.IntegrityError:
            self.db.execute(DROP_DUPLICATES)
            self.db.execute(UNIQUE_EPISODES)
        self.db.commit()

    def rewind(self, agent_steps: int) -> int:
        """Delete the rows written after `agent_steps` (by a run that went on past the checkpoint
        this one continues from, then died); returns how many episode rows went."""
        with self._errors():
            removed = 0
            for table in TABLES:
                cursor = self.db.execute(f"DELETE FROM {table} WHERE agent_steps > ?", (agent_steps,))
                removed += cursor.rowcount if table == "episodes" else 0
            self.db.commit()
            kept = self.db.execute("SELECT MAX(wall_seconds) FROM episodes").fetchone()[0]
        self.clock, self.clock_offset = time.monotonic(), float(kept or 0.0)
        return removed

    def episodes(self, agent_steps: int, rows: dict[str, torch.Tensor]) -> None:
        """Write one row per ended episode; `rows` holds aligned per-episode tensors."""
        if rows["slot"].numel() == 0:
            return
        cols = {k: v.cpu().tolist() for k, v in rows.items()}
        wall = self.wall_seconds()
        records = [
            (
                agent_steps,
                cols["slot"][i],
                cols["steps"][i],
                int(cols["terminated"][i]),
                cols["total"][i],
                cols["extrinsic"][i],
                cols["intrinsic"][i],
                cols["stage"][i],
                cols["difficulty"][i],
                cols["epsilon"][i],
                json.dumps(dict(zip(self.meter_names, cols["meters"][i], strict=True))),
                wall,
            )
            for i in range(len(cols["slot"]))
        ]
        with self._errors():
            self.db.executemany(
                "INSERT INTO episodes (agent_steps, slot, steps_survived, terminated, total_reward, "
                "extrinsic_reward, intrinsic_reward, curriculum_stage, difficulty, epsilon, final_meters, "
                "wall_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                records,
            )

    def affordances(
        self, agent_steps: int, names: list[str], visits: torch.Tensor, moves: torch.Tensor
    ) -> None:
        v, t = visits.cpu().tolist(), moves.cpu().tolist()
        with self._errors():
            # the counts so far, as of this step: writing a step again replaces its rows
            for table in ("affordance_visits", "affordance_transitions"):
                self.db.execute(f"DELETE FROM {table} WHERE agent_steps = ?", (agent_steps,))
            self.db.executemany(
                "INSERT INTO affordance_visits VALUES (?, ?, ?)",
                [(agent_steps, names[a], v[a]) for a in range(len(names)) if v[a]],
            )
            self.db.executemany(
                "INSERT INTO affordance_transitions VALUES (?, ?, ?, ?)",
                [
                    (agent_steps, names[a], names[b], t[a][b])
                    for a in range(len(names))
                    for b in range(len(names))
                    if t[a][b]
                ],
            )

    def evaluation(self, agent_steps: int, result: dict[str, Any]) -> None:
        """One row of the evaluation callback (run/evaluation.py), and its TensorBoard scalars."""
        keys = ("episodes", "difficulty", "mean_survival", "median_survival", "mean_reward")
        with self._errors():
            self.db.execute(
                "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?)",
                (agent_steps, *(result[k] for k in keys)),
            )
        self.scalars(agent_steps, {f"eval/{k}": float(result[k]) for k in keys[2:]})

    def scalars(self, agent_steps: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, agent_steps)

    def commit(self) -> None:
        with self._errors():
            self.db.commit()
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.db.close()
            if self.writer is not None:
                self.writer.close()

    def abandon(self) -> None:
        """Close after a failure: keep what can be kept, and raise nothing over the first error
        (rows past the last checkpoint are removed on resume anyway)."""
        with suppress(MetricsError):
            self.close()
