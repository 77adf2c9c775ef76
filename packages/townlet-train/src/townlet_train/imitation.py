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

from townlet_env import TownletVectorEnv
from townlet_env.policies.scripted import ScriptedPolicy
from townlet_train.cloning import clone_step
from townlet_train.config import DaggerSettings, EpsilonSettings
from townlet_train.exploration import EpsilonGreedy
from townlet_train.loop import Trainer
from townlet_train.models import (
    ActorCritic,
    MapStudent,
    Model,
    PolicyModel,
    RecurrentActorCritic,
    build_network,
    masked_argmax,
    masked_logits,
    policy_network,
)
from townlet_train.policy import Carried
from townlet_train.recurrent_imitation import RecurrentDaggerAgent, affordance_positions


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
    online: Model
    actor: Carried

    def logits(self, obs: torch.Tensor) -> torch.Tensor: ...

    @property
    def labelled(self) -> int: ...

    def update(self, batch_size: int, rng: torch.Generator) -> dict[str, float]: ...


class DaggerAgent:
    """The student network, its optimizer and the buffer of labelled states it learns from.

    A feed-forward student stores its observations; the map student (`network.kind: map`)
    stores the observations its map has filled (the memory's output, which has no parameters)
    and learns its feed-forward head from them, so learning is the same for both."""

    def __init__(self, network: Model, settings: DaggerSettings, num_envs: int, obs_dim: int, n_actions: int):
        device = next(network.parameters()).device
        self.online, self.settings = network, settings
        learned = network.policy if isinstance(network, MapStudent) else network
        assert isinstance(learned, PolicyModel)
        self.learned = learned
        self.optimizer = torch.optim.Adam(self.learned.actor_parameters(), lr=settings.lr, fused=True)
        inputs = network.inputs if isinstance(network, MapStudent) else obs_dim
        self.replay = LabelBuffer(settings.capacity, inputs, n_actions, device)
        self.actor = Carried(network, num_envs, device)
        self.inputs = torch.zeros(num_envs, inputs, device=device)  # what the head read this step
        self.labels: torch.Tensor | None = None  # the teacher's actions for the step being taken
        self.updates = 0

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        logits, memory = self.actor.step(obs)
        self.inputs = memory if isinstance(self.online, MapStudent) else obs
        return logits

    @property
    def labelled(self) -> int:
        """Labelled states stored."""
        return len(self.replay)

    def store(self, step: dict[str, torch.Tensor]) -> None:
        assert self.labels is not None, "act() labels each state before it is stored"
        self.replay.add(self.inputs, step["mask"], self.labels)
        self.actor.end(step["done"])

    def update(self, batch_size: int, rng: torch.Generator) -> dict[str, float]:
        batch = self.replay.sample(batch_size, rng)
        stats = clone_step(self.learned, self.optimizer, batch, self.settings.grad_clip)
        self.updates += 1
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {
            "network": self.online.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            **self.actor.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.online.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self.actor.load_state_dict(state)


class DaggerTrainer(Trainer):
    """The DQN trainer's loop, episode accounting, metrics, checkpoints and resume, with DAgger's
    acting (student, or teacher with probability beta) and learning (labels of visited states).
    The per-slot beta is an `EpsilonGreedy` schedule, so metrics' `epsilon` column holds beta.

    The student is feed-forward, the map student (`network.kind: map`; with `teacher_knows:
    student_map` the teacher reads the same map) or recurrent (`network.kind: lstm`, which
    learns from windows: recurrent_imitation.py)."""

    agent: Student

    def _build_agent(self) -> Any:
        cfg = self.cfg
        settings = cfg.algorithm
        assert isinstance(settings, DaggerSettings)
        self.settings = settings
        net, env = cfg.network, self.env
        network = policy_network(net, env, self.n_actions, "dagger").to(self.device)
        self.teacher = ScriptedPolicy(env.town)
        self.recurrent = network.recurrent
        self.batch = self.transitions_per_update = settings.batch_size
        n = cfg.env.num_envs
        if isinstance(network, RecurrentActorCritic):
            n_affordances = env.level.n_affordances
            return RecurrentDaggerAgent(network, settings, n, self.obs_dim, self.n_actions, n_affordances)
        if isinstance(network, MapStudent) and env.level.layout.encoding != "partial":
            raise ValueError(
                f"network.kind 'map' maps a partial view (levels L2_partial_observability, "
                f"L3_temporal_mechanics); level '{env.level.name}' shows the whole town: use mlp"
            )
        return DaggerAgent(network, settings, n, self.obs_dim, self.n_actions)

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
        entropy = torch.distributions.Categorical(logits=logits, validate_args=False).entropy()
        if isinstance(self.agent, RecurrentDaggerAgent):
            self.agent.where = affordance_positions(self.env.town)
        return torch.where(follow, teacher, student), entropy

    def label(self) -> torch.Tensor:
        """The teacher's actions for the current observations (after the student has seen them)."""
        if self.settings.teacher_knows == "town":
            return self.teacher(self.obs, self.info)
        student = self.agent.online
        assert isinstance(student, MapStudent)
        state = self.agent.actor.state  # the map after this step's observation
        knowledge = student.memory.knowledge(self.obs, state, self.env.level.aff_channel)
        return self.teacher(self.obs, self.info, knowledge)

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
