"""Evaluation: play K whole episodes at a fixed difficulty with a learned, scripted or random
policy, and report survival and reward. Learned policies act greedily (no exploration)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch

from townlet_env import TownletVectorEnv
from townlet_env.core import compile_level
from townlet_env.core.town import default_agents_per_town
from townlet_env.files import check_output
from townlet_env.policies import Policy, RandomPolicy, ScriptedAgent
from townlet_env.recording import Recorder
from townlet_train.config import TrainConfig
from townlet_train.policy import load_network, policy_for_network

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
    """The greedy network of a checkpoint of any algorithm (see `policy.load_network`)."""
    return load_network(path, device)


def make_policy(
    policy: str, env: TownletVectorEnv, network: torch.nn.Module | None, rng: torch.Generator
) -> Policy:
    if policy == "learned":
        if network is None:
            raise ValueError("policy 'learned' needs a network (pass --checkpoint)")
        return policy_for_network(network)
    if policy == "scripted":
        return ScriptedAgent(env.town)
    return RandomPolicy(rng)


def check_level_fits(level: str, trained_on: str, path: Path) -> None:
    """A learned policy plays another level only where that level has the same observation layout
    and actions (L1, L2 and L3 share theirs); anything else is refused before it is played."""
    if level == trained_on:
        return
    asked, own = compile_level(level), compile_level(trained_on)
    fields = [[(f.name, f.offset, f.size) for f in lv.layout.fields] for lv in (asked, own)]
    if fields[0] != fields[1] or asked.action_names != own.action_names:
        raise ValueError(
            f"--level {level}: its observations ({asked.layout.size} floats) and actions "
            f"({asked.n_actions}) do not fit the network of {path}, trained on {trained_on} "
            f"({own.layout.size} floats, {own.n_actions} actions); leave out --level to play that one"
        )


def checkpoint_tag(path: Path | str) -> str:
    """`<stem>-<first 8 hex of its SHA-256>`: names a recording after the checkpoint it played,
    so that step_000000200000.pt of two runs never write the same file."""
    path = Path(path)
    digest = path.with_name(path.name + ".sha256").read_text(errors="replace").split()
    return f"{path.stem}-{digest[0][:8] if digest else 'unsigned'}"


def evaluate(
    level: str,
    policy: str,
    episodes: int,
    difficulty: float = 1.0,
    network: torch.nn.Module | None = None,
    seed: int = 12345,
    device: torch.device | str = "cpu",
    details: bool = False,
    record: Path | str | None = None,
    agent: Policy | None = None,
    record_tag: str = "",
    force: bool = False,
) -> dict[str, Any]:
    """Each slot plays exactly one episode; `episodes` slots run side by side. With `details`,
    also what the policy did (see `Tally`). With `record` (a directory), the whole batch is
    written there as one recording (see docs/recording.md), named in the result. A learned policy
    is either `agent` (any `Policy`, e.g. from `load_policy`) or a greedy `network`. The
    recording's name carries `record_tag` (see `checkpoint_tag`), so that two checkpoints never
    share one; an existing file is replaced only with `force`, and the write is atomic."""
    if policy not in POLICIES:
        raise ValueError(f"policy '{policy}' is not one of {', '.join(POLICIES)}")
    if policy == "learned" and network is None and agent is None:
        raise ValueError("policy 'learned' needs a network (pass --checkpoint)")
    per_town = default_agents_per_town(compile_level(level))
    if episodes % per_town:
        fits = max(per_town, episodes // per_town * per_town)
        raise ValueError(
            f"--episodes {episodes}: {level} has {per_town} agents a town and each agent plays one "
            f"episode, so give a multiple of {per_town} (e.g. {fits} or {fits + per_town})"
        )
    env = TownletVectorEnv(level, episodes, device=device)
    target = None
    if record is not None:
        tag = f"-{record_tag}" if record_tag else ""
        target = Path(record) / f"{env.level.name}-{policy}{tag}-seed{seed}-{episodes}ep.townlet"
        check_output(target, force)  # before the evaluation, not after it
    env.set_difficulty(difficulty)
    obs, info = env.reset(seed=seed)
    recorder = Recorder(env.town, seed=seed, policy=policy) if record is not None else None
    rng = torch.Generator(device=env.device).manual_seed(seed)
    actor = agent if agent is not None else make_policy(policy, env, network, rng)
    state = actor.initial_state(episodes, env.device)
    finished = torch.zeros(episodes, dtype=torch.bool, device=env.device)
    survival = torch.zeros(episodes, dtype=torch.long, device=env.device)
    total_reward = torch.zeros(episodes, device=env.device)
    tally = Tally(env) if details else None
    social = env.level.social is not None
    chats = torch.zeros(episodes, device=env.device)
    trust_sum, trust_ticks = 0.0, 0
    economy = env.level.economy is not None
    work = {key: torch.zeros(episodes, device=env.device) for key in ("wage", "on_time", "late", "absent")}
    exits = torch.zeros(episodes, dtype=torch.long, device=env.device)
    while not bool(finished.all()):
        action, state = actor.act(obs, info["action_mask"], state)
        if tally is not None:
            tally.step(action, info, ~finished)
        obs, reward, terminated, truncated, info = env.step(action)
        if recorder is not None:
            recorder.record(action)
        total_reward += reward * ~finished
        if social:  # the episode's successful chats, and its ties to town-mates tick by tick
            chats += info["chat_success"] * ~finished
            playing = ~finished
            trust_sum += float(info["trust"][playing].sum()) / max(env.agents_per_town - 1, 1)
            trust_ticks += int(playing.sum())
        if economy:  # wages and shift arrivals of the episode, and why it ended
            playing = ~finished
            work["wage"] += info["wage"] * playing
            for key in ("on_time", "late"):
                work[key] += info[f"arrived_{key}"] * playing
            work["absent"] += info["absent"] * playing
            exits = torch.where(playing & terminated, info["exit_reason"], exits)
        done = (terminated | truncated) & ~finished
        survival = torch.where(done, info["final_episode_step"], survival)
        finished |= done
        if tally is not None:
            tally.ended(done & terminated, info)
        if bool(done.any()):
            state = actor.reset(state, done)
    values = survival.float().cpu().tolist()
    extra = tally.summary(episodes) if tally is not None else {}
    if recorder is not None and target is not None:
        extra["recording"] = str(recorder.save(target, force))
    if social:
        extra["chats_per_episode"] = float(chats.mean())
        extra["mean_trust"] = trust_sum / max(trust_ticks, 1)
    if economy:
        shifts = float((work["on_time"] + work["late"] + work["absent"]).sum())
        names = env.exit_reasons
        extra["wages_per_episode"] = float(work["wage"].mean())
        extra["on_time_rate"] = float(work["on_time"].sum()) / max(shifts, 1.0)
        extra["evictions"] = int((exits >= names.index("evicted_broke")).sum())
        extra["exits"] = {names[c]: int((exits == c).sum()) for c in range(1, len(names))}
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
