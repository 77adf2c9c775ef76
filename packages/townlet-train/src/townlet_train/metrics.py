"""Metrics: one SQLite row per finished episode per slot, and TensorBoard scalars.

SQLite runs in WAL mode so that a reader (a notebook, `sqlite3 metrics.db`) can query a run
while it trains.
"""

from __future__ import annotations

import json
import sqlite3
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
    final_meters TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS affordance_visits (
    agent_steps INTEGER NOT NULL, affordance TEXT NOT NULL, visits INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS affordance_transitions (
    agent_steps INTEGER NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL, count INTEGER NOT NULL
);
"""


class Metrics:
    def __init__(self, run_dir: Path, meter_names: list[str], tensorboard: bool):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(run_dir / "metrics.db")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self.meter_names = meter_names
        self.writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def episodes(self, agent_steps: int, rows: dict[str, torch.Tensor]) -> None:
        """Write one row per ended episode; `rows` holds aligned per-episode tensors."""
        if rows["slot"].numel() == 0:
            return
        cols = {k: v.cpu().tolist() for k, v in rows.items()}
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
            )
            for i in range(len(cols["slot"]))
        ]
        self.db.executemany(
            "INSERT INTO episodes (agent_steps, slot, steps_survived, terminated, total_reward, "
            "extrinsic_reward, intrinsic_reward, curriculum_stage, difficulty, epsilon, final_meters) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            records,
        )

    def affordances(
        self, agent_steps: int, names: list[str], visits: torch.Tensor, moves: torch.Tensor
    ) -> None:
        v, t = visits.cpu().tolist(), moves.cpu().tolist()
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

    def scalars(self, agent_steps: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, agent_steps)

    def commit(self) -> None:
        self.db.commit()
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self.commit()
        self.db.close()
        if self.writer is not None:
            self.writer.close()
