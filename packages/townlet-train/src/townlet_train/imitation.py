"""Imitating the scripted teacher: behaviour cloning from a dataset, and DAgger.

Plain BC learns only the states the teacher visits; the student's own mistakes take it to
states the teacher never showed, and its errors compound (a study measured 220 of L1's 500
steps). DAgger (Ross et al. 2011) lets the student act and has the teacher label every state
the student visits: with probability beta (annealed to 0) the teacher's action is executed
instead, so early data stays near good trajectories. The teacher is `ScriptedPolicy`, which
reads the Town's true state; on L2/L3 it is privileged (it sees what the student's window
hides), which DAgger allows: only the labels come from it.

Both minimise masked cross-entropy: illegal actions get probability 0, so the student never
spends capacity on them and greedy acting picks among legal actions only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from townlet_env import TownletVectorEnv
from townlet_env.policies.scripted import ScriptedPolicy
from townlet_train.config import DaggerSettings, EpsilonSettings
from townlet_train.exploration import EpsilonGreedy
from townlet_train.loop import Trainer
from townlet_train.networks import ActorCritic, build_network, masked_argmax, masked_logits, policy_network


def masked_cross_entropy(
    logits: torch.Tensor, mask: torch.Tensor, label: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy of the teacher's labels under the masked softmax, label accuracy)."""
    masked = masked_logits(logits, mask)
    loss = F.cross_entropy(masked, label)
    accuracy = (masked.argmax(dim=-1) == label).float().mean()
    return loss, accuracy


def descend(
    optimizer: torch.optim.Optimizer,
    logits: torch.Tensor,
    batch: dict[str, torch.Tensor],
    grad_clip: float,
    extra: torch.Tensor | None = None,
) -> dict[str, float]:
    """One step of masked cross-entropy of `logits` [B, A] toward the labels (plus an `extra`
    loss, if any) on the optimizer's parameters; shared by BC, DAgger and recurrent DAgger
    (whose logits come from unrolled windows)."""
    loss, accuracy = masked_cross_entropy(logits, batch["mask"], batch["label"])
    optimizer.zero_grad(set_to_none=True)
    (loss if extra is None else loss + extra).backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return {"loss": float(loss.detach()), "accuracy": float(accuracy), "grad_norm": float(grad_norm)}


def clone_step(
    network: nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], grad_clip: float
) -> dict[str, float]:
    return descend(optimizer, network(batch["obs"]), batch, grad_clip)


class LabelBuffer:
    """A ring of (observation, action mask, teacher action); the oldest labels go first."""

    KEYS = ("obs", "mask", "label")

    def __init__(self, capacity: int, obs_dim: int, n_actions: int, device: torch.device):
        self.capacity = capacity
        self.obs = torch.zeros(capacity, obs_dim, device=device)
        self.mask = torch.zeros(capacity, n_actions, dtype=torch.bool, device=device)
        self.label = torch.zeros(capacity, dtype=torch.long, device=device)
        self.cursor = self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: torch.Tensor, mask: torch.Tensor, label: torch.Tensor) -> None:
        rows = (self.cursor + torch.arange(obs.shape[0], device=obs.device)) % self.capacity
        self.obs[rows], self.mask[rows], self.label[rows] = obs, mask, label
        self.cursor = (self.cursor + obs.shape[0]) % self.capacity
        self.size = min(self.capacity, self.size + obs.shape[0])

    def sample(self, batch: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
        index = torch.randint(0, self.size, (batch,), generator=rng, device=rng.device)
        return {"obs": self.obs[index], "mask": self.mask[index], "label": self.label[index]}

    def state_dict(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k)[: self.size] for k in self.KEYS},
            "cursor": self.cursor,
            "size": self.size,
        }

    def load_state_dict(self, state: dict) -> None:
        self.size, self.cursor = int(state["size"]), int(state["cursor"])
        for key in self.KEYS:
            getattr(self, key)[: self.size] = state[key]


class Student(Protocol):
    """What the DAgger trainer needs of its agent, feed-forward or recurrent."""

    labels: torch.Tensor | None
    updates: int
    optimizer: torch.optim.Optimizer

    def logits(self, obs: torch.Tensor) -> torch.Tensor: ...

    @property
    def labelled(self) -> int: ...

    def update(self, batch_size: int, rng: torch.Generator) -> dict[str, float]: ...


class DaggerAgent:
    """The student network, its optimizer and the buffer of labelled states it learns from."""

    def __init__(self, network: ActorCritic, settings: DaggerSettings, obs_dim: int, n_actions: int):
        device = next(network.parameters()).device
        self.online, self.settings = network, settings
        self.optimizer = torch.optim.Adam(network.actor_parameters(), lr=settings.lr, fused=True)
        self.replay = LabelBuffer(settings.capacity, obs_dim, n_actions, device)
        self.labels: torch.Tensor | None = None  # the teacher's actions for the step being taken
        self.updates = 0

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.online(obs)

    @property
    def labelled(self) -> int:
        """Labelled states stored."""
        return len(self.replay)

    def store(self, step: dict[str, torch.Tensor]) -> None:
        assert self.labels is not None, "act() labels each state before it is stored"
        self.replay.add(step["obs"], step["mask"], self.labels)

    def update(self, batch_size: int, rng: torch.Generator) -> dict[str, float]:
        batch = self.replay.sample(batch_size, rng)
        stats = clone_step(self.online, self.optimizer, batch, self.settings.grad_clip)
        self.updates += 1
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {
            "network": self.online.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict) -> None:
        self.online.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])


class DaggerTrainer(Trainer):
    """The DQN trainer's loop, episode accounting, metrics, checkpoints and resume, with DAgger's
    acting (student, or teacher with probability beta) and learning (labels of visited states).
    The per-slot beta is an `EpsilonGreedy` schedule, so metrics' `epsilon` column holds beta."""

    agent: Student

    def _build_agent(self) -> Any:
        cfg = self.cfg
        settings = cfg.algorithm
        assert isinstance(settings, DaggerSettings)
        self.settings = settings
        net, env = cfg.network, self.env
        network = policy_network(net, env, self.n_actions, "dagger").to(self.device)
        self.teacher = ScriptedPolicy(env.town)
        self.recurrent = bool(getattr(network, "recurrent", False))
        self.batch = self.transitions_per_update = settings.batch_size
        return self._student(network)

    def _student(self, network: nn.Module) -> Any:
        """The agent around the student network; the recurrent trainer makes its own."""
        assert isinstance(network, ActorCritic)
        return DaggerAgent(network, self.settings, self.obs_dim, self.n_actions)

    def _build_explorer(self) -> EpsilonGreedy:
        s = self.settings
        beta = EpsilonSettings(start=s.beta_start, end=s.beta_end, decay_steps=s.beta_steps)
        return EpsilonGreedy(beta, self.cfg.env.num_envs, self.device)

    def act(self) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.info["action_mask"]
        logits = masked_logits(self.agent.logits(self.obs), mask)
        teacher = self.label()
        student = masked_argmax(logits, mask)
        beta = self.explorer.per_slot(self.counters["agent_steps"])
        follow = torch.rand(mask.shape[0], generator=self.rng, device=self.device) < beta
        self.agent.labels = teacher
        entropy = torch.distributions.Categorical(logits=logits).entropy()
        return torch.where(follow, teacher, student), entropy

    def label(self) -> torch.Tensor:
        """The teacher's actions for the current observations (after the student has seen them)."""
        return self.teacher(self.obs, self.info)

    def learn(self) -> dict[str, float]:
        s = self.settings
        if self.agent.labelled < max(s.learning_starts, 1):
            return {}
        self.update_debt += s.updates_per_step
        if s.anneal_lr:
            for group in self.agent.optimizer.param_groups:
                group["lr"] = s.lr * self.run_left()
        stats: dict[str, float] = {}
        while self.update_debt >= 1.0:
            self.update_debt -= 1.0
            stats = self.agent.update(s.batch_size, self.rng)
        return stats


def train_bc(
    dataset: Path, run_dir: Path, updates: int | None = None, seed: int = 0, device: str = "cpu"
) -> dict[str, Any]:
    """Behaviour cloning: masked cross-entropy on a verified dataset; writes one checkpoint that
    `townlet-train eval` plays (and that PPO can start from with `init_from`)."""
    from townlet_train import checkpoint as ckpt
    from townlet_train.config import BCSettings, load_config
    from townlet_train.dataset import load_dataset
    from townlet_train.loop import resolve_device, write_resolved_config

    data, manifest = load_dataset(dataset)
    algorithm = {"kind": "bc", "dataset": str(dataset), **({"updates": updates} if updates else {})}
    cfg = load_config(
        None,
        level=manifest["level_source"],
        seed=seed,
        device=device,
        algorithm=algorithm,
        network__kind="mlp",
    )
    settings = cfg.algorithm
    assert isinstance(settings, BCSettings)
    dev = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = torch.Generator(device=dev).manual_seed(cfg.seed + 1)
    env = TownletVectorEnv(cfg.level, 1, agents_per_town=1)
    net = cfg.network
    network = build_network(
        net.kind, env.observation_layout, env.level.n_actions, net.hidden, net.field_embed, 0, "bc"
    ).to(dev)
    assert isinstance(network, ActorCritic)
    optimizer = torch.optim.Adam(network.actor_parameters(), lr=settings.lr, fused=True)
    samples = {"obs": data["obs"].to(dev), "mask": data["mask"].to(dev), "label": data["action"].to(dev)}
    rows = samples["label"].shape[0]
    stats: dict[str, float] = {}
    for _ in range(settings.updates):
        index = torch.randint(0, rows, (settings.batch_size,), generator=rng, device=dev)
        stats = clone_step(network, optimizer, {k: v[index] for k, v in samples.items()}, settings.grad_clip)
    write_resolved_config(cfg, run_dir)
    payload = {
        "level": env.level.name,
        "level_hash": env.level.content_hash,
        "algorithm": "bc",
        "config": cfg.model_dump(mode="json"),
        "timestamp": time.time(),
        "device": dev.type,
        "counters": {"updates": settings.updates, "samples": rows},
        "dataset": {
            "path": str(dataset),
            "policy": manifest["policy"],
            "agent_steps": manifest["agent_steps"],
        },
        "network": network.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    path = ckpt.save_checkpoint(payload, run_dir / "checkpoints", f"step_{settings.updates:012d}", keep=3)
    return {"checkpoint": str(path), "updates": settings.updates, "samples": rows, **stats}
