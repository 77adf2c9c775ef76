"""The training run, top to bottom: collect (act, step, store), learn, then the callbacks
(observer, the caller's, evaluation), the report (metrics, TensorBoard, progress) and the
checkpoint schedule. One loop for every algorithm: what differs is the learner (algos/).

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
from townlet_train.algos import make_learner
from townlet_train.algos.base import Diverged, LearnContext, Learner
from townlet_train.config import TrainConfig
from townlet_train.data.collector import Collector
from townlet_train.exploration import RND
from townlet_train.run import checkpoint as ckpt
from townlet_train.run.accounting import Episodes
from townlet_train.run.callbacks import Callback
from townlet_train.run.curriculum import Curriculum
from townlet_train.run.evaluation import Evaluation
from townlet_train.run.interrupts import StopRequests
from townlet_train.run.metrics import Metrics
from townlet_train.run.progress import Progress
from townlet_train.run.runlock import run_lock
from townlet_train.run.schedule import CheckpointSchedule


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device (use --device cpu)")
    return torch.device(name)


class DivergedError(ValueError):
    """A loss, a statistic or a learned weight became NaN or inf: the run stops before saving it."""


class Trainer:
    observer: Any = None  # townlet_train.run.observe.Observer with --observe: sees every env step
    last_action: torch.Tensor | None = None
    last_terminated: torch.Tensor | None = None  # the last step's, per slot: an observer's deaths
    callbacks: list[Callback]

    def __init__(self, cfg: TrainConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, run_dir
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.rng = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        # copy=False: the buffers copy every observation they keep, and read obs_t only until the
        # step after it, within the env's lifetime for reused observation buffers.
        self.env = TownletVectorEnv(
            cfg.level, cfg.env.num_envs, cfg.env.agents_per_town, device=self.device, copy=False
        )
        env, n = self.env, cfg.env.num_envs
        self.obs_dim, self.n_actions = env.level.layout.size, env.level.n_actions
        self.learner: Learner = make_learner(cfg, env, self.device)
        self.rnd = (
            RND(self.obs_dim, cfg.exploration.rnd).to(self.device) if cfg.exploration.rnd.enabled else None
        )
        self.collector = Collector(env, self.rnd)
        self.curriculum = Curriculum(cfg.curriculum, n, env.level.max_steps, self.device)
        self.evaluation = Evaluation(cfg.evaluation)
        self.counters = {"agent_steps": 0, "env_steps": 0, "episodes": 0}
        self.counters["next_checkpoint"] = cfg.checkpoint.every_episodes
        self.logged_bucket = 0  # updates // log_every_updates at the last TensorBoard write
        self.last_commit = time.monotonic()
        self.episodes = Episodes(env, n, self.device)
        self.env.set_difficulty(self.curriculum.difficulty())
        self.obs, self.info = self.env.reset(seed=cfg.seed)

    @property
    def agent(self) -> Any:
        """The learner (its older name, which tests and benchmarks read)."""
        return self.learner

    @property
    def recurrent(self) -> bool:
        """Whether the model carries a memory state: the one place the run asks."""
        return self.learner.online.recurrent

    # --- one env step and the learning it owes --------------------------------------------------

    def act(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return self.learner.act(self.obs, self.info, self.counters["agent_steps"], self.rng)
        except Diverged as exc:
            self._diverged(str(exc))
            raise

    def collect(self, metrics: Metrics) -> None:
        action, entropy = self.act()
        self.last_action = action  # what an observer shows as each agent's last action
        aff_before = self.info["affordance_at"]
        got = self.collector.step(self.obs, self.info, action, self.counters["agent_steps"])
        self.learner.store(got.transition)
        self.episodes.affordances(aff_before, action, got.info["invalid_action"])
        self.episodes.step(got.extrinsic, got.intrinsic, entropy)
        self.counters["agent_steps"] += self.cfg.env.num_envs
        self.counters["env_steps"] += 1
        done = got.transition["done"]
        self.last_terminated = got.transition["terminated"]
        if bool(done.any()):
            steps = self.counters["agent_steps"]
            self.counters["episodes"] += self.episodes.end(
                steps,
                done,
                got.transition["terminated"],
                got.info,
                self.curriculum,
                self.learner.explore(steps),
                metrics,
            )
        self.obs, self.info = got.obs, got.info

    def run_left(self) -> float:
        """The fraction of `total_steps` still to run, in [0, 1]: a linear anneal's weight. Read
        from the step count, so a resumed run anneals exactly as an uninterrupted one."""
        return max(0.0, 1.0 - self.counters["agent_steps"] / self.cfg.total_steps)

    def learn(self) -> dict[str, float]:
        ctx = LearnContext(self.counters["agent_steps"], self.run_left(), self.rng, self.rnd, self.obs)
        return self.learner.learn(ctx)

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
            "update_debt": self.learner.debt,
            **self.learner.state_dict(),
            "curriculum": self.curriculum.state_dict(),
            "env": self.env.state_dict(),
            **self.episodes.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "trainer": self.rng.get_state()},
            "evaluation": self.evaluation.state_dict(),
        }
        if self.rnd is not None:
            payload["rnd"] = {
                "modules": self.rnd.state_dict(),
                "optimizer": self.rnd.optimizer.state_dict(),
                "std": self.rnd.reward_std.state_dict(),
            }
        if self.cfg.checkpoint.include_replay and self.learner.replay is not None:
            payload["replay"] = self.learner.replay.state_dict()
        return payload

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        if payload.get("device", "cpu") != self.device.type:
            raise ckpt.CheckpointError(
                f"checkpoint was written on device '{payload.get('device')}' and its RNG states only fit "
                f"that device; resume with --device {payload.get('device')} (this run: {self.device.type})"
            )
        self.learner.load_state_dict(payload)
        self.curriculum.load_state_dict(payload["curriculum"])
        self.env.load_state_dict(payload["env"])
        self.episodes.load_state_dict(payload)
        torch.set_rng_state(payload["rng"]["torch"])
        self.rng.set_state(payload["rng"]["trainer"])
        self.counters = {key: int(value) for key, value in payload["counters"].items()}
        self.learner.debt = float(payload["update_debt"])
        if "evaluation" in payload:  # checkpoints before the evaluation callback have none
            self.evaluation.load_state_dict(payload["evaluation"])
        if self.rnd is not None and "rnd" in payload:
            self.rnd.load_state_dict(payload["rnd"]["modules"])
            self.rnd.optimizer.load_state_dict(payload["rnd"]["optimizer"])
            self.rnd.reward_std.load_state_dict(payload["rnd"]["std"])
        if "replay" in payload and self.learner.replay is not None:
            self.learner.replay.load_state_dict(payload["replay"])
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
            self._callbacks(metrics, stats)
            self._report(metrics, progress, fresh, stats)
            saved = self._checkpoint(metrics, schedule) if schedule.due(self.counters) else None
        return saved or self._checkpoint(metrics, schedule), stats

    def _callbacks(self, metrics: Metrics, stats: dict[str, float]) -> None:
        if self.observer is not None:
            self.observer.after_step(self, stats)
        for callback in self.callbacks:
            callback.after_step(self, stats)
        if self.evaluation.due(self.counters["agent_steps"]):
            result = self.evaluation.run(self, metrics)
            for callback in self.callbacks:
                callback.after_evaluation(self, result)

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
        steps, names = self.counters["agent_steps"], list(self.env.affordance_names)
        metrics.affordances(steps, names, self.episodes.visits, self.episodes.moves)
        metrics.commit()
        path = self.save()
        schedule.saved()
        return path

    def summary(self) -> dict[str, Any]:
        recent = self.episodes.recent_survival
        return {
            "agent_steps": self.counters["agent_steps"],
            "episodes": self.counters["episodes"],
            "mean_survival": sum(recent) / len(recent) if recent else math.nan,
            "mean_stage": float(self.curriculum.stage.float().mean()),
            **self.learner.schedule(self.counters["agent_steps"]),
            **({"eval": self.evaluation.last} if self.cfg.evaluation.every_steps else {}),
        }

    def _report(
        self, metrics: Metrics, progress: Progress, fresh: dict[str, float], stats: dict[str, float]
    ) -> None:
        """TensorBoard once each time the update count passes a multiple of log_every_updates
        (several updates can happen in one env step); episode rows to disk every few seconds."""
        steps = self.counters["agent_steps"]
        bucket = self.learner.updates // self.cfg.metrics.log_every_updates
        if fresh and bucket > self.logged_bucket:
            self.logged_bucket = bucket
            summary = self.summary()
            metrics.scalars(steps, {f"train/{k}": v for k, v in stats.items()})
            metrics.scalars(
                steps,
                {
                    **{f"explore/{k}": summary[k] for k in self.learner.schedule(steps)},
                    "episode/mean_survival": summary["mean_survival"],
                    "curriculum/mean_stage": summary["mean_stage"],
                    "explore/intrinsic_per_step": float(self.episodes.running["intrinsic"].mean()),
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
