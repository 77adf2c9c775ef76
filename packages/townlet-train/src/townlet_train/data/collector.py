"""The collector: the vector env stepped with a learner's actions, one transition per slot.

A transition is what every learner's buffer takes (`Learner.store`): the observation acted on
and its action mask, the action, the reward (with RND's annealed novelty bonus, which really
enters the learning target), terminated / truncated / done, the observation that followed
(`next_obs`: the final one of an ended episode, not the next life's first) and its mask, and the
env's `final_obs` / `final_mask` as it gave them. The memory state each window starts from is
kept by the learner's buffer (`sequences.WindowReplay`, `rollout.Rollout`), which reads it from
the learner's carried state (`policy.Carried.before`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from townlet_env import TownletVectorEnv


@dataclass
class Collected:
    transition: dict[str, torch.Tensor]  # what the learner stores
    extrinsic: torch.Tensor  # [N] the env's reward
    intrinsic: torch.Tensor  # [N] the novelty bonus added to it (zeros without RND)
    obs: torch.Tensor  # what each slot acts on next (the next life's first, where one ended)
    info: dict[str, Any]


class Collector:
    def __init__(self, env: TownletVectorEnv, rnd: Any = None):
        self.env, self.rnd = env, rnd

    def step(
        self, obs: torch.Tensor, info: dict[str, Any], action: torch.Tensor, agent_steps: int
    ) -> Collected:
        """Step every slot with `action` (chosen from `obs`)."""
        next_obs_env, reward, terminated, truncated, next_info = self.env.step(action)
        done = next_info["_final_obs"]
        next_obs = torch.where(done[:, None], next_info["final_obs"], next_obs_env)
        next_mask = torch.where(done[:, None], next_info["final_action_mask"], next_info["action_mask"])
        intrinsic = torch.zeros_like(reward)
        if self.rnd is not None:
            intrinsic = self.rnd.weight(agent_steps) * self.rnd.intrinsic(next_obs)
        transition = {
            "obs": obs,
            "action": action,
            "reward": reward + intrinsic,
            "terminated": terminated,
            "truncated": truncated,
            "done": done,
            "next_obs": next_obs,
            "next_mask": next_mask,
            "mask": info["action_mask"],
            "final_obs": next_info["final_obs"],
            "final_mask": next_info["final_action_mask"],
        }
        return Collected(transition, reward, intrinsic, next_obs_env, next_info)
