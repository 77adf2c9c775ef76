"""The training loop, top to bottom: act, step, store, learn, account for ended episodes.

Everything is batched over the env's agent slots and stays on the device; the only host
syncs are the episode bookkeeping (how many ended) and the learner's scalar statistics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from townlet_env import TownletVectorEnv
from townlet_train import checkpoint as ckpt
from townlet_train.config import TrainConfig
from townlet_train.curriculum import Curriculum
from townlet_train.exploration import RND, EpsilonGreedy
from townlet_train.interrupts import StopRequests
from townlet_train.learner import FeedForwardDQN
from townlet_train.metrics import Metrics
from townlet_train.models import RecurrentQNetwork, build_network, masked_argmax
from townlet_train.progress import Progress
from townlet_train.recurrent import RecurrentDQN
from townlet_train.run.callbacks import Callback
from townlet_train.run.evaluation import Evaluation
from townlet_train.runlock import run_lock
from townlet_train.schedule import CheckpointSchedule


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device (use --device cpu)")
    return torch.device(name)


def policy_entropy(mask: torch.Tensor, epsilon: float | torch.Tensor) -> torch.Tensor:
    """[N] entropy (nats) of the masked epsilon-greedy policy that actually picks the actions.

    With L legal actions the greedy one has probability 1 - eps + eps / L and each other one
    eps / L. This is the curriculum's confidence signal: it falls below 0.5 once the agent
    mostly follows its greedy choice (eps below about 0.1 with 5-8 legal actions).
    """
    legal = mask.sum(dim=1).float()
    p_other = epsilon / legal
    p_greedy = 1.0 - epsilon + p_other
    entropy = -(p_greedy * p_greedy.log() + (legal - 1) * torch.xlogy(p_other, p_other))
    return torch.where(legal > 1, entropy, 0.0)


class DivergedError(ValueError):
    """A loss, a statistic or a learned weight became NaN or inf: the run stops before saving it."""


def replay_of(agent: Any) -> Any:
    """The agent's replay of past experience, whose state `checkpoint.include_replay` saves; None
    for PPO, whose rollout (its only buffer) every checkpoint holds anyway. Every trainer reads
    the replay through here, so an agent without one can never break a save or a resume."""
    return getattr(agent, "replay", None)


class Trainer:
    observer: Any = None  # townlet_train.observe.Observer with --observe: sees every env step
    last_action: torch.Tensor | None = None

    def __init__(self, cfg: TrainConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, run_dir
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.rng = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        # copy=False: the replay copies every observation it keeps, and reads obs_t only until the
        # step after it, within the env's lifetime for reused observation buffers.
        self.env = TownletVectorEnv(
            cfg.level, cfg.env.num_envs, cfg.env.agents_per_town, device=self.device, copy=False
        )
        env, n = self.env, cfg.env.num_envs
        self.obs_dim, self.n_actions = env.level.layout.size, env.level.n_actions
        self.agent: Any = self._build_agent()
        self.explorer: Any = self._build_explorer()
        self.rnd = (
            RND(self.obs_dim, cfg.exploration.rnd).to(self.device) if cfg.exploration.rnd.enabled else None
        )
        self.curriculum = Curriculum(cfg.curriculum, n, env.level.max_steps, self.device)
        self.evaluation = Evaluation(cfg.evaluation)
        self.counters = {"agent_steps": 0, "env_steps": 0, "episodes": 0}
        self.counters["next_checkpoint"] = cfg.checkpoint.every_episodes
        self.update_debt = 0.0  # fractional gradient updates owed (see replay_ratio)
        self.logged_bucket = 0  # updates // log_every_updates at the last TensorBoard write
        self.last_commit = time.monotonic()
        self.recent_survival: list[int] = []  # lengths of the last 200 ended episodes
        zeros = lambda: torch.zeros(n, device=self.device)  # noqa: E731
        self.episode = {"extrinsic": zeros(), "intrinsic": zeros(), "entropy": zeros()}
        n_aff = env.level.n_affordances
        self.visits = torch.zeros(n_aff, dtype=torch.long, device=self.device)
        self.moves = torch.zeros(n_aff, n_aff, dtype=torch.long, device=self.device)
        self.last_affordance = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self.env.set_difficulty(self.curriculum.difficulty())
        self.obs, self.info = self.env.reset(seed=cfg.seed)

    def _build_agent(self) -> Any:
        """The learner and its memory; the DAgger and PPO trainers override this and `act`/`learn`."""
        cfg, env, n = self.cfg, self.env, self.cfg.env.num_envs
        net = cfg.network
        network = build_network(
            net.kind, env.observation_layout, self.n_actions, net.hidden, net.field_embed, net.lstm_hidden
        ).to(self.device)
        self.recurrent = isinstance(network, RecurrentQNetwork)
        if isinstance(network, RecurrentQNetwork):
            window = cfg.replay.burn_in + cfg.replay.sequence_length + cfg.dqn.n_step
            if window > env.level.max_steps:
                raise ValueError(
                    f"replay window burn_in + sequence_length + n_step = {window} exceeds the level's "
                    f"max_steps {env.level.max_steps}: a window could then hold two truncations"
                )
            # windows per update, so that one update learns about batch_size transitions
            self.batch = max(1, cfg.dqn.batch_size // cfg.replay.sequence_length)
            self.transitions_per_update = self.batch * cfg.replay.sequence_length
            return RecurrentDQN(cfg, network, n, self.obs_dim, self.n_actions, self.device)
        self.batch = self.transitions_per_update = cfg.dqn.batch_size
        return FeedForwardDQN(cfg, network, n, self.obs_dim, self.n_actions, self.device)

    def _build_explorer(self) -> Any:
        return EpsilonGreedy(self.cfg.exploration.epsilon, self.cfg.env.num_envs, self.device)

    # --- one env step -------------------------------------------------------------------------

    def act(self) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.info["action_mask"]
        q = self.agent.q_values(self.obs)
        epsilon = self.explorer.per_slot(self.counters["agent_steps"])
        action = self.explorer.select(masked_argmax(q, mask), mask, epsilon, self.rng)
        return action, policy_entropy(mask, epsilon)

    def collect(self, metrics: Metrics) -> None:
        action, entropy = self.act()
        self.last_action = action  # what an observer shows as each agent's last action
        aff_before = self.info["affordance_at"]
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = info["_final_obs"]
        next_obs = torch.where(done[:, None], info["final_obs"], obs)
        next_mask = torch.where(done[:, None], info["final_action_mask"], info["action_mask"])
        intrinsic = torch.zeros_like(reward)
        if self.rnd is not None:
            intrinsic = self.rnd.weight(self.counters["agent_steps"]) * self.rnd.intrinsic(next_obs)
        stored = reward + intrinsic  # the annealed bonus really enters the learning target
        self.agent.store(
            {
                "obs": self.obs,
                "action": action,
                "reward": stored,
                "terminated": terminated,
                "truncated": truncated,
                "done": done,
                "next_obs": next_obs,
                "next_mask": next_mask,
                "mask": self.info["action_mask"],
                "final_obs": info["final_obs"],
                "final_mask": info["final_action_mask"],
            }
        )
        self._count_affordances(aff_before, action, info["invalid_action"])
        self.episode["extrinsic"] += reward
        self.episode["intrinsic"] += intrinsic
        self.episode["entropy"] += entropy
        self.counters["agent_steps"] += self.cfg.env.num_envs
        self.counters["env_steps"] += 1
        if bool(done.any()):
            self._end_episodes(done, terminated, info, metrics)
        self.obs, self.info = obs, info

    def _count_affordances(self, aff: torch.Tensor, action: torch.Tensor, invalid: torch.Tensor) -> None:
        used = (action == self.env.level.interact_action) & ~invalid & (aff >= 0)
        self.visits += torch.bincount(aff[used], minlength=self.visits.numel())
        came_from = self.last_affordance[used]
        known = came_from >= 0
        n_aff = self.visits.numel()
        flat = came_from[known] * n_aff + aff[used][known]
        self.moves += torch.bincount(flat, minlength=n_aff * n_aff).view(n_aff, n_aff)
        self.last_affordance[used] = aff[used]

    def _end_episodes(
        self, done: torch.Tensor, terminated: torch.Tensor, info: dict, metrics: Metrics
    ) -> None:
        length = info["final_episode_step"]
        entropy = self.episode["entropy"] / length.clamp(min=1)
        difficulty = self.curriculum.difficulty()
        stage = self.curriculum.stage.clone()
        if self.curriculum.record(done, length, entropy).any():
            self.env.set_difficulty(self.curriculum.difficulty())
        rows = done.nonzero().flatten()
        ext, intr = self.episode["extrinsic"][rows], self.episode["intrinsic"][rows]
        metrics.episodes(
            self.counters["agent_steps"],
            {
                "slot": rows,
                "steps": length[rows],
                "terminated": terminated[rows],
                "total": ext + intr,
                "extrinsic": ext,
                "intrinsic": intr,
                "stage": stage[rows],
                "difficulty": difficulty[rows],
                "epsilon": self.explorer.per_slot(self.counters["agent_steps"])[rows],
                "meters": info["final_obs"][rows][:, self._meter_slice],
            },
        )
        self.recent_survival = (self.recent_survival + length[rows].tolist())[-200:]
        for value in self.episode.values():
            value[rows] = 0.0
        self.last_affordance[rows] = -1
        self.counters["episodes"] += rows.numel()

    @property
    def _meter_slice(self) -> slice:
        offset, size = next((o, s) for name, o, s in self.env.observation_layout if name == "meters")
        return slice(offset, offset + size)

    # --- learning -----------------------------------------------------------------------------

    def run_left(self) -> float:
        """The fraction of `total_steps` still to run, in [0, 1]: a linear anneal's weight. Read
        from the step count, so a resumed run anneals exactly as an uninterrupted one."""
        return max(0.0, 1.0 - self.counters["agent_steps"] / self.cfg.total_steps)

    def learn(self) -> dict[str, float]:
        cfg = self.cfg.dqn
        if self.counters["agent_steps"] < cfg.learning_starts or not self.agent.ready():
            return {}
        self.update_debt += cfg.replay_ratio * self.cfg.env.num_envs / self.transitions_per_update
        stats: dict[str, float] = {}
        while self.update_debt >= 1.0:
            self.update_debt -= 1.0
            stats, seen = self.agent.update(self.batch, self.rng, self.counters["agent_steps"])
            if self.rnd is not None:
                stats["rnd_loss"] = self.rnd.learn(seen)
        return stats

    # --- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "level": self.env.level.name,
            "level_hash": self.env.level.content_hash,
            "algorithm": self.cfg.algorithm.kind,
            "config": self.cfg.model_dump(mode="json"),
            "timestamp": time.time(),
            "device": self.device.type,
            "counters": dict(self.counters),
            "update_debt": self.update_debt,
            **self.agent.state_dict(),
            "curriculum": self.curriculum.state_dict(),
            "env": self.env.state_dict(),
            "episode": {k: v.clone() for k, v in self.episode.items()},
            "affordances": {"visits": self.visits, "moves": self.moves, "last": self.last_affordance},
            "rng": {"torch": torch.get_rng_state(), "trainer": self.rng.get_state()},
            "recent_survival": list(self.recent_survival),
            "evaluation": self.evaluation.state_dict(),
        }
        if self.rnd is not None:
            payload["rnd"] = {
                "modules": self.rnd.state_dict(),
                "optimizer": self.rnd.optimizer.state_dict(),
                "std": self.rnd.reward_std.state_dict(),
            }
        replay = replay_of(self.agent)
        if self.cfg.checkpoint.include_replay and replay is not None:
            payload["replay"] = replay.state_dict()
        return payload

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        if payload.get("device", "cpu") != self.device.type:
            raise ckpt.CheckpointError(
                f"checkpoint was written on device '{payload.get('device')}' and its RNG states only fit "
                f"that device; resume with --device {payload.get('device')} (this run: {self.device.type})"
            )
        self.agent.load_state_dict(payload)
        self.curriculum.load_state_dict(payload["curriculum"])
        self.env.load_state_dict(payload["env"])
        for key, value in payload["episode"].items():
            self.episode[key].copy_(value)
        self.visits.copy_(payload["affordances"]["visits"])
        self.moves.copy_(payload["affordances"]["moves"])
        self.last_affordance.copy_(payload["affordances"]["last"])
        torch.set_rng_state(payload["rng"]["torch"])
        self.rng.set_state(payload["rng"]["trainer"])
        self.counters = {key: int(value) for key, value in payload["counters"].items()}
        self.update_debt = float(payload["update_debt"])
        self.recent_survival = list(payload["recent_survival"])
        if "evaluation" in payload:  # checkpoints before the evaluation callback have none
            self.evaluation.load_state_dict(payload["evaluation"])
        if self.rnd is not None and "rnd" in payload:
            self.rnd.load_state_dict(payload["rnd"]["modules"])
            self.rnd.optimizer.load_state_dict(payload["rnd"]["optimizer"])
            self.rnd.reward_std.load_state_dict(payload["rnd"]["std"])
        replay = replay_of(self.agent)
        if "replay" in payload and replay is not None:
            replay.load_state_dict(payload["replay"])
        self.obs, self.info = self.env.observe()

    def save(self) -> Path:
        name = f"step_{self.counters['agent_steps']:012d}"
        directory = self.run_dir / "checkpoints"
        payload = self.state_dict()
        bad = ckpt.non_finite_tensors({part: payload.get(part) for part in ckpt.LEARNED_PARTS})
        if bad:
            self._diverged(f"{len(bad)} learned tensors hold NaN or inf (first: {', '.join(bad[:3])})")
        try:
            return ckpt.save_checkpoint(payload, directory, name, self.cfg.checkpoint.keep)
        except OSError as exc:  # a full disk says "No space left on device", but not where
            exc.filename = exc.filename or str(directory / f"{name}.pt")
            raise

    # --- the whole run ------------------------------------------------------------------------

    def run(self, total_steps: int | None = None, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
        """Train to `total_steps` agent-steps, or until SIGINT or SIGTERM; either way the last act is
        a checkpoint. The result of a stopped run names the signal under "interrupted".
        `callbacks` see every env step and evaluation (townlet_train.run.callbacks)."""
        total = total_steps or self.cfg.total_steps
        self.callbacks = list(callbacks)
        with run_lock(self.run_dir), StopRequests() as stop:
            ckpt.remove_stale_temporaries(self.run_dir / "checkpoints")
            metrics = self._open_metrics()
            progress = Progress(enabled=self.cfg.metrics.progress, total=total)
            try:
                path, stats = self._train(total, metrics, progress, stop)
            except BaseException:
                progress.close()
                metrics.abandon()
                raise
            progress.close()
            metrics.close()
        result = {"checkpoint": str(path), **self.summary(), **stats}
        return result if stop.name is None else {**result, "interrupted": stop.name}

    def _train(
        self, total: int, metrics: Metrics, progress: Progress, stop: StopRequests
    ) -> tuple[Path, dict[str, float]]:
        schedule = CheckpointSchedule(self.cfg.checkpoint, self.cfg.env.num_envs)
        stats: dict[str, float] = {}
        saved: Path | None = None  # a checkpoint of the current step, if one was written
        while self.counters["agent_steps"] < total and stop.received is None:
            self.collect(metrics)
            fresh = self.learn()
            if any(not math.isfinite(value) for value in fresh.values()):
                bad = ", ".join(f"{k} {v}" for k, v in fresh.items() if not math.isfinite(v))
                self._diverged(f"the update's statistics are not finite ({bad})")
            stats = fresh or stats
            if self.observer is not None:
                self.observer.after_step(self, stats)
            for callback in self.callbacks:
                callback.after_step(self, stats)
            if self.evaluation.due(self.counters["agent_steps"]):
                result = self.evaluation.run(self, metrics)
                for callback in self.callbacks:
                    callback.after_evaluation(self, result)
            self._report(metrics, progress, fresh, stats)
            saved = self._checkpoint(metrics, schedule) if schedule.due(self.counters) else None
        return saved or self._checkpoint(metrics, schedule), stats

    def _diverged(self, what: str) -> None:
        """Stop the run: a checkpoint of diverged weights would only resume into garbage."""
        latest = ckpt.latest_checkpoint(self.run_dir / "checkpoints")
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written"
        raise DivergedError(
            f"training diverged at agent-step {self.counters['agent_steps']:,}: {what}; nothing saved "
            f"after it ({kept}); lower the learning rate or grad_clip and start again"
        )

    def _open_metrics(self) -> Metrics:
        """metrics.db as of this trainer's agent-step: a run continuing from a checkpoint first
        drops the rows that the interrupted run wrote after it, which it is about to write again."""
        steps = self.counters["agent_steps"]
        metrics = Metrics(
            self.run_dir, list(self.env.meter_names), self.cfg.metrics.tensorboard, resume_step=steps
        )
        try:
            removed = metrics.rewind(steps)
        except BaseException:
            metrics.abandon()
            raise
        if removed:
            print(f"{metrics.path}: removed {removed} episode rows written after agent-step {steps:,}")
        return metrics

    def _checkpoint(self, metrics: Metrics, schedule: CheckpointSchedule) -> Path:
        # Rows first: a resume keeps the rows up to its checkpoint and deletes the rest, so a
        # checkpoint must never be ahead of what metrics.db has committed.
        schedule.advance(self.counters)
        metrics.affordances(
            self.counters["agent_steps"], list(self.env.affordance_names), self.visits, self.moves
        )
        metrics.commit()
        path = self.save()
        schedule.saved()
        return path

    def summary(self) -> dict[str, Any]:
        recent = self.recent_survival
        return {
            "agent_steps": self.counters["agent_steps"],
            "episodes": self.counters["episodes"],
            "mean_survival": sum(recent) / len(recent) if recent else math.nan,
            "mean_stage": float(self.curriculum.stage.float().mean()),
            "epsilon": self.explorer.epsilon(self.counters["agent_steps"]),
            **({"eval": self.evaluation.last} if self.cfg.evaluation.every_steps else {}),
        }

    def _report(
        self, metrics: Metrics, progress: Progress, fresh: dict[str, float], stats: dict[str, float]
    ) -> None:
        """TensorBoard once each time the update count passes a multiple of log_every_updates
        (several updates can happen in one env step); episode rows to disk every few seconds."""
        steps = self.counters["agent_steps"]
        bucket = self.agent.updates // self.cfg.metrics.log_every_updates
        if fresh and bucket > self.logged_bucket:
            self.logged_bucket = bucket
            summary = self.summary()
            metrics.scalars(steps, {f"train/{k}": v for k, v in stats.items()})
            metrics.scalars(
                steps,
                {
                    "explore/epsilon": summary["epsilon"],
                    "episode/mean_survival": summary["mean_survival"],
                    "curriculum/mean_stage": summary["mean_stage"],
                    "explore/intrinsic_per_step": float(self.episode["intrinsic"].mean()),
                    **{
                        f"meters/{name}": float(v)
                        for name, v in zip(self.env.meter_names, self.env.state.meters.mean(0), strict=False)
                    },
                },
            )
        progress.update(steps, self.summary(), stats)
        now = time.monotonic()
        if now - self.last_commit > 5.0:  # readers of metrics.db (WAL) see rows while training
            self.last_commit = now
            metrics.commit()


def write_resolved_config(cfg: TrainConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
