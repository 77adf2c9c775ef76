"""Evaluation: play K whole episodes at a fixed difficulty with a learned, scripted or random
policy, and report survival and reward. Learned policies act greedily (no exploration)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from townlet_env import TownletVectorEnv
from townlet_train.checkpoint import CheckpointError, load_checkpoint
from townlet_train.config import TrainConfig
from townlet_train.networks import build_network, masked_argmax
from townlet_train.scripted import ScriptedPolicy

POLICIES = ("learned", "scripted", "random")


class Tally:
    """What the evaluated policy did: its actions, the affordances it used, how its agents died."""

    def __init__(self, env: TownletVectorEnv):
        level = env.level
        self.level = level
        self.actions = torch.zeros(level.n_actions, dtype=torch.long, device=env.device)
        self.uses = torch.zeros(level.n_affordances, dtype=torch.long, device=env.device)
        self.meters_slice = level.layout["meters"].slice
        self.death_meters: list[torch.Tensor] = []

    def step(self, action: torch.Tensor, info: dict, playing: torch.Tensor) -> None:
        """Before the step: `info` is the one the action was chosen from."""
        self.actions += torch.bincount(action[playing], minlength=self.actions.numel())
        aff = info["affordance_at"]
        used = playing & (action == self.level.interact_action) & (aff >= 0)
        self.uses += torch.bincount(aff[used], minlength=self.uses.numel())

    def ended(self, died: torch.Tensor, info: dict) -> None:
        if bool(died.any()):
            self.death_meters.append(info["final_obs"][died][:, self.meters_slice])

    def summary(self, episodes: int) -> dict[str, Any]:
        level, total = self.level, max(1, int(self.actions.sum()))
        empty = torch.zeros(0, level.n_meters, device=self.actions.device)
        deaths = torch.cat(self.death_meters) if self.death_meters else empty
        at_zero = (deaths[:, level.terminal_index] <= 0).sum(dim=0)
        return {
            "action_share": {
                name: round(int(n) / total, 4)
                for name, n in zip(level.action_names, self.actions, strict=True)
            },
            "uses_per_episode": {
                name: round(int(n) / episodes, 3)
                for name, n in zip(level.affordance_names, self.uses, strict=True)
            },
            "deaths": deaths.shape[0],
            "deaths_with_meter_at_zero": {
                level.meter_names[i]: int(n)
                for i, n in zip(level.terminal_index.tolist(), at_zero, strict=True)
            },
            "mean_meters_at_death": {
                name: round(float(v), 3) for name, v in zip(level.meter_names, deaths.mean(0), strict=True)
            }
            if deaths.shape[0]
            else {},
        }


def load_policy_network(path: Path, device: torch.device) -> tuple[torch.nn.Module, TrainConfig]:
    """The greedy network of a checkpoint; every way the file can be unusable is a CheckpointError."""
    payload = load_checkpoint(path)
    try:
        cfg = TrainConfig.model_validate(payload.get("config"))
    except ValidationError as exc:
        raise CheckpointError(
            f"{path}: its training config is not valid for this trainer ({exc.error_count()} problems, "
            f"first: {'.'.join(map(str, exc.errors()[0]['loc']))}: {exc.errors()[0]['msg']})"
        ) from None
    env = TownletVectorEnv(cfg.level, 1, agents_per_town=1)
    if env.level.content_hash != payload.get("level_hash"):
        raise CheckpointError(
            f"{path}: trained on a different version of level '{cfg.level}' (level hash differs)"
        )
    net = cfg.network
    network = build_network(
        net.kind, env.observation_layout, env.level.n_actions, net.hidden, net.field_embed, net.lstm_hidden
    )
    try:
        network.load_state_dict(payload["network"])
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path}: network weights do not fit its config ({first})") from None
    return network.to(device).eval(), cfg


def evaluate(
    level: str,
    policy: str,
    episodes: int,
    difficulty: float = 1.0,
    network: torch.nn.Module | None = None,
    seed: int = 12345,
    device: torch.device | str = "cpu",
    details: bool = False,
) -> dict[str, Any]:
    """Each slot plays exactly one episode; `episodes` slots run side by side. With `details`,
    also what the policy did (see `Tally`)."""
    if policy not in POLICIES:
        raise ValueError(f"policy '{policy}' is not one of {', '.join(POLICIES)}")
    if policy == "learned" and network is None:
        raise ValueError("policy 'learned' needs a network (pass --checkpoint)")
    env = TownletVectorEnv(level, episodes, device=device)
    env.set_difficulty(difficulty)
    obs, info = env.reset(seed=seed)
    rng = torch.Generator(device=env.device).manual_seed(seed)
    scripted = ScriptedPolicy(env.town) if policy == "scripted" else None
    recurrent = bool(getattr(network, "recurrent", False))
    hidden = network.initial_state(episodes, env.device) if recurrent else None  # type: ignore[union-attr,operator]
    finished = torch.zeros(episodes, dtype=torch.bool, device=env.device)
    survival = torch.zeros(episodes, dtype=torch.long, device=env.device)
    total_reward = torch.zeros(episodes, device=env.device)
    tally = Tally(env) if details else None
    social = env.level.social is not None
    chats = torch.zeros(episodes, device=env.device)
    trust_sum, trust_ticks = 0.0, 0
    while not bool(finished.all()):
        mask = info["action_mask"]
        with torch.no_grad():
            if policy == "learned" and recurrent:
                q, hidden = network(obs[:, None], hidden)  # type: ignore[misc]
                action = masked_argmax(q[:, 0], mask)
            elif policy == "learned":
                action = masked_argmax(network(obs), mask)  # type: ignore[misc]
            elif scripted is not None:
                action = scripted(obs, info)
            else:
                action = (
                    torch.rand(mask.shape, generator=rng, device=env.device).masked_fill(~mask, -1).argmax(1)
                )
        if tally is not None:
            tally.step(action, info, ~finished)
        obs, reward, terminated, truncated, info = env.step(action)
        total_reward += reward * ~finished
        if social:  # the episode's successful chats, and its ties to town-mates tick by tick
            chats += info["chat_success"] * ~finished
            playing = ~finished
            trust_sum += float(info["trust"][playing].sum()) / max(env.agents_per_town - 1, 1)
            trust_ticks += int(playing.sum())
        done = (terminated | truncated) & ~finished
        survival = torch.where(done, info["final_episode_step"], survival)
        finished |= done
        if tally is not None:
            tally.ended(done & terminated, info)
        if recurrent and bool(done.any()):
            keep = (~done).float()[None, :, None]
            hidden = (hidden[0] * keep, hidden[1] * keep)  # type: ignore[index]
    values = survival.float().cpu().tolist()
    extra = tally.summary(episodes) if tally is not None else {}
    if social:
        extra["chats_per_episode"] = float(chats.mean())
        extra["mean_trust"] = trust_sum / max(trust_ticks, 1)
    return {
        "policy": policy,
        "level": level,
        "episodes": episodes,
        "difficulty": difficulty,
        "mean_survival": statistics.fmean(values),
        "median_survival": statistics.median(values),
        "mean_reward": float(total_reward.mean()),
        "max_steps": env.level.max_steps,
        **extra,
    }
