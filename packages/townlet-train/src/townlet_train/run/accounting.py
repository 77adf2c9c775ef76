"""What the run keeps about the episodes it plays: per-slot running returns and policy entropy,
the lengths of the last 200 ended episodes, and the affordances used (visits and moves from one
to the next), with the episode rows and the curriculum's view of each ended episode."""

from __future__ import annotations

from typing import Any

import torch

from townlet_train.run.curriculum import Curriculum
from townlet_train.run.metrics import Metrics


class Episodes:
    def __init__(self, env: Any, n: int, device: torch.device):
        self.env = env
        zeros = lambda: torch.zeros(n, device=device)  # noqa: E731
        self.running = {"extrinsic": zeros(), "intrinsic": zeros(), "entropy": zeros()}
        self.recent_survival: list[int] = []  # lengths of the last 200 ended episodes
        n_aff = env.level.n_affordances
        self.visits = torch.zeros(n_aff, dtype=torch.long, device=device)
        self.moves = torch.zeros(n_aff, n_aff, dtype=torch.long, device=device)
        self.last_affordance = torch.full((n,), -1, dtype=torch.long, device=device)
        offset, size = next((o, s) for name, o, s in env.observation_layout if name == "meters")
        self.meters = slice(offset, offset + size)

    def step(self, extrinsic: torch.Tensor, intrinsic: torch.Tensor, entropy: torch.Tensor) -> None:
        self.running["extrinsic"] += extrinsic
        self.running["intrinsic"] += intrinsic
        self.running["entropy"] += entropy

    def affordances(self, aff: torch.Tensor, action: torch.Tensor, invalid: torch.Tensor) -> None:
        used = (action == self.env.level.interact_action) & ~invalid & (aff >= 0)
        self.visits += torch.bincount(aff[used], minlength=self.visits.numel())
        came_from = self.last_affordance[used]
        known = came_from >= 0
        n_aff = self.visits.numel()
        flat = came_from[known] * n_aff + aff[used][known]
        self.moves += torch.bincount(flat, minlength=n_aff * n_aff).view(n_aff, n_aff)
        self.last_affordance[used] = aff[used]

    def end(
        self,
        agent_steps: int,
        done: torch.Tensor,
        terminated: torch.Tensor,
        info: dict,
        curriculum: Curriculum,
        explore: torch.Tensor,
        metrics: Metrics,
    ) -> int:
        """Account for the episodes that ended this step; returns how many."""
        length = info["final_episode_step"]
        entropy = self.running["entropy"] / length.clamp(min=1)
        difficulty = curriculum.difficulty()
        stage = curriculum.stage.clone()
        if curriculum.record(done, length, entropy).any():
            self.env.set_difficulty(curriculum.difficulty())
        rows = done.nonzero().flatten()
        ext, intr = self.running["extrinsic"][rows], self.running["intrinsic"][rows]
        metrics.episodes(
            agent_steps,
            {
                "slot": rows,
                "steps": length[rows],
                "terminated": terminated[rows],
                "total": ext + intr,
                "extrinsic": ext,
                "intrinsic": intr,
                "stage": stage[rows],
                "difficulty": difficulty[rows],
                "epsilon": explore[rows],
                "meters": info["final_obs"][rows][:, self.meters],
            },
        )
        self.recent_survival = (self.recent_survival + length[rows].tolist())[-200:]
        for value in self.running.values():
            value[rows] = 0.0
        self.last_affordance[rows] = -1
        return rows.numel()

    def state_dict(self) -> dict[str, Any]:
        return {
            "episode": {k: v.clone() for k, v in self.running.items()},
            "affordances": {"visits": self.visits, "moves": self.moves, "last": self.last_affordance},
            "recent_survival": list(self.recent_survival),
        }

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        for key, value in payload["episode"].items():
            self.running[key].copy_(value)
        self.visits.copy_(payload["affordances"]["visits"])
        self.moves.copy_(payload["affordances"]["moves"])
        self.last_affordance.copy_(payload["affordances"]["last"])
        self.recent_survival = list(payload["recent_survival"])
