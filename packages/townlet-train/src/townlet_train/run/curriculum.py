"""The adversarial curriculum (docs/training.md), per agent slot, driving `set_difficulty`.

Five stages with drain multipliers 0.2, 0.5, 0.8, 1.0, 1.0. Over the slot's last `window`
episodes: advance when survival (episode length / max steps) > 0.7 and the policy's action
entropy < 0.5; retreat when survival < 0.3; stay otherwise; at least `min_episodes` episodes
between two moves. Survival is recorded from the ended episode's own length before anything is
reset (an earlier implementation read it after the reset and never advanced).
"""

from __future__ import annotations

import torch

from townlet_train.config import CurriculumSettings


class Curriculum:
    def __init__(self, settings: CurriculumSettings, num_envs: int, max_steps: int, device: torch.device):
        self.settings = settings
        self.max_steps = max_steps
        self.multipliers = torch.tensor(settings.stages, dtype=torch.float32, device=device)
        w = settings.window
        self.stage = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.survival = torch.zeros(num_envs, w, device=device)  # ring of recent episodes
        self.entropy = torch.zeros(num_envs, w, device=device)
        self.filled = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.since_move = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.cursor = torch.zeros(num_envs, dtype=torch.long, device=device)

    @property
    def adversarial(self) -> bool:
        return self.settings.kind == "adversarial"

    def difficulty(self) -> torch.Tensor:
        if not self.adversarial:
            return torch.full_like(self.stage, self.settings.difficulty, dtype=torch.float32)
        return self.multipliers[self.stage]

    def record(
        self, ended: torch.Tensor, episode_length: torch.Tensor, entropy: torch.Tensor
    ) -> torch.Tensor:
        """Record ended episodes (length and mean action entropy) and move stages.

        Returns [N] stage change (-1, 0, +1)."""
        s = self.settings
        rows = ended.nonzero().flatten()
        change = torch.zeros_like(self.stage)
        if rows.numel() == 0 or not self.adversarial:
            return change
        col = self.cursor[rows]
        self.survival[rows, col] = episode_length[rows].float() / self.max_steps
        self.entropy[rows, col] = entropy[rows]
        self.cursor[rows] = (col + 1) % s.window
        self.filled[rows] = (self.filled[rows] + 1).clamp(max=s.window)
        self.since_move[rows] += 1

        ready = ended & (self.filled >= s.window) & (self.since_move >= s.min_episodes)
        survival = self.survival.mean(dim=1)
        entropy_mean = self.entropy.mean(dim=1)
        top = len(s.stages) - 1
        advance = (
            ready & (survival > s.advance_survival) & (entropy_mean < s.advance_entropy) & (self.stage < top)
        )
        retreat = ready & (survival < s.retreat_survival) & (self.stage > 0)
        change = advance.long() - retreat.long()
        moved = change != 0
        self.stage = self.stage + change
        self.since_move = torch.where(moved, 0, self.since_move)
        # the next decision judges episodes played at the new stage only: without this, with
        # min_episodes < window, the old stage's window could move a slot twice in a row
        self.filled = torch.where(moved, 0, self.filled)
        return change

    def state_dict(self) -> dict[str, torch.Tensor]:
        keys = ("stage", "survival", "entropy", "filled", "since_move", "cursor")
        return {k: getattr(self, k).clone() for k in keys}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            getattr(self, key).copy_(value)
