"""`townlet-train sweep`: Optuna's sampler and pruner over trials that Ray runs, each trial being
K seeds of one set of config values, scored by the mean greedy survival of its seeds.

Trials are asked in batches of `--batch` and told when their whole batch has ended, in the
order of their numbers. So a trial's values depend only on the trials of the batches before
it (and on the sampler seed and the trial's number: each ask gets a sampler seeded with both),
and the pruner (Optuna's median pruner reads COMPLETE trials only) compares a running trial with
the same trials, whichever finishes first. The study lives in Optuna storage (a journal file by
default): a sweep killed and started again finds there the trials told, the trials asked and not
told (run again with their values; their seeds that finished are reused) and the intermediate
values reported, and goes on to the same table as a sweep that was never killed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from townlet_env.config import ConfigError
from townlet_train.sweep import outputs, report
from townlet_train.sweep.engine import Engine
from townlet_train.sweep.lock import sweep_lock
from townlet_train.sweep.seeds import job
from townlet_train.sweep.space import Param, load_space, trial_config

FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def run_sweep(args: Any) -> int:
    from townlet_train.config import load_config
    from townlet_train.config_files import find_config

    for flag in ("trials", "seeds", "episodes", "prune_episodes"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.batch is not None and args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")
    source = find_config(args.config)
    overrides = {"total_steps": args.total_steps, "env__num_envs": args.num_envs, "device": args.device}
    base = load_config(source, **overrides)
    params = load_space(args.space, base)
    out: Path = args.out or Path("runs") / "sweeps" / Path(str(args.config)).stem
    outputs.check_outputs([out / name for name in report.OUTPUTS], args.force)
    prune_every = 0
    if args.pruner != "none":
        prune_every = args.prune_every or max(1, base.total_steps // 5)
    with sweep_lock(out):
        engine = Engine(args.address, args.cpus, args.startup_timeout)
        try:
            settings = {
                "config": base.model_dump(mode="json"),
                "space": {p.key: p.spec.model_dump(exclude_defaults=True) for p in params},
                "seeds": args.seeds,
                "sampler": args.sampler,
                "sampler_seed": args.sampler_seed,
                "startup_trials": args.startup_trials,
                "pruner": args.pruner,
                "prune_every": prune_every,
                "prune_episodes": args.prune_episodes,
                "episodes": args.episodes,
                "eval_seed": args.eval_seed,
                "batch": args.batch or max(1, math.ceil(engine.cpus() / args.seeds)),
            }
            study = open_study(out, args.storage, settings)
            sweep = Sweep(study, engine, params, source, overrides, out, settings)
            sweep.run(args.trials)
        finally:
            engine.close()
        written = report.write(study, params, source, overrides, out, args.force)
    print(report.summary_line(study, written))
    return 0


def open_study(out: Path, storage: str | None, settings: dict[str, Any]) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        backend: Any = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    elif storage.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "mysql"):
        backend = optuna.storages.RDBStorage(storage)
    else:
        raise ValueError(f"--storage {storage}: expected a database URL (sqlite:///..., postgresql://...)")
    study = optuna.create_study(
        storage=backend, study_name=f"townlet-{out.resolve().name}", direction="maximize", load_if_exists=True
    )
    recorded = study.user_attrs.get("settings")
    if recorded is None:
        study.set_user_attr("settings", settings)
    elif recorded != settings:
        changed = sorted(k for k in set(recorded) | set(settings) if recorded.get(k) != settings.get(k))
        raise ConfigError(
            f"{out} holds a sweep with other settings ({', '.join(changed)} differ): give the same "
            "arguments to continue it (--trials may grow), or another --out"
        )
    return study


def sampler(settings: dict[str, Any], number: int) -> Any:
    """A sampler for the ask of trial `number`, seeded with the sweep's seed and the number, so
    that its values do not depend on how many asks this process made before."""
    import optuna

    seed = (settings["sampler_seed"] * 1_000_003 + number) % (1 << 32)
    if settings["sampler"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings["startup_trials"])


class Sweep:
    def __init__(
        self,
        study: Any,
        engine: Engine,
        params: list[Param],
        source: Path | None,
        overrides: dict[str, Any],
        out: Path,
        settings: dict[str, Any],
    ):
        import optuna

        self.study, self.engine, self.params, self.source = study, engine, params, source
        self.overrides, self.out, self.settings = overrides, out, settings
        self.pruner = optuna.pruners.MedianPruner(n_startup_trials=1) if settings["prune_every"] else None
        self.watch = outputs.Watch()
        self.total = 0

    def run(self, trials: int) -> None:
        self.total = trials
        size = self.settings["batch"]
        try:
            for first in range(0, trials, size):
                self.batch(list(range(first, min(first + size, trials))))
        finally:  # an error line after the progress line, not on it
            self.watch.close()

    def batch(self, numbers: list[int]) -> None:
        import optuna

        frozen = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        todo = [n for n in numbers if n not in frozen or frozen[n].state.name not in FINISHED]
        if not todo:
            return
        live = {n: self.ask(n, frozen.get(n)) for n in todo}  # every ask before any run
        outcome = self.run_seeds(live)
        for n in todo:  # told together, in order: the next batch sees all of them or none
            trial, result = live[n], outcome[n]
            if "error" in result:
                trial.set_user_attr("error", result["error"])
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            elif result.get("pruned_at") is not None:
                trial.set_user_attr("pruned_at", result["pruned_at"])
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                trial.set_user_attr("seeds", result["seeds"])
                self.study.tell(trial, result["value"])
            self.show()

    def ask(self, number: int, existing: Any) -> Any:
        """Trial `number`: asked now, or the one a killed sweep asked and did not tell."""
        import optuna

        if existing is not None:
            return optuna.trial.Trial(self.study, existing._trial_id)
        self.study.sampler = sampler(self.settings, number)
        trial = self.study.ask(fixed_distributions={p.key: p.distribution() for p in self.params})
        if trial.number != number:  # only one sweep writes a study (OUT/.lock)
            raise RuntimeError(f"asked trial {number}, the study made {trial.number}")
        return trial

    def values(self, trial: Any) -> dict[str, Any]:
        return {p.key: p.decode(trial.params[p.key]) for p in self.params}

    def run_seeds(self, live: dict[int, Any]) -> dict[int, dict[str, Any]]:
        """Run every seed of the batch's trials on Ray; prune from their evaluations."""
        from townlet_train.sweep.worker import _one_line

        outcome: dict[int, dict[str, Any]] = {}
        refs: dict[Any, tuple[int, int]] = {}
        k = self.settings["seeds"]
        for n, trial in live.items():
            try:
                configs = [self.config(trial, seed) for seed in range(k)]
            except ConfigError as exc:  # without the file's name and the list of overrides
                outcome[n] = {
                    "error": re.sub(r"^.*?\(with overrides: [^)]*\): (\(top level\): )?", "", _one_line(exc))
                }
                continue
            if self.pruner is not None and self.should_prune(trial):
                outcome[n] = {"pruned_at": trial.storage.get_trial(trial._trial_id).last_step}
                continue
            for seed, cfg in enumerate(configs):
                where = self.out / "trials" / f"{n:04d}"
                spec = job(cfg, where / f"seed{seed}", where / f"seed{seed}.json", **self.evaluation())
                refs[self.engine.submit(spec | {"board": self.engine.board, "trial": n})] = (n, seed)
        seeds: dict[int, dict[int, dict[str, Any]]] = {n: {} for n in live}
        evals: dict[int, dict[int, dict[int, float]]] = {n: {} for n in live}
        while len(refs) > sum(len(s) for s in seeds.values()):
            waiting = [r for r, (n, s) in refs.items() if s not in seeds[n]]
            for ref, result in self.engine.finished(waiting, timeout=0.5):
                n, seed = refs[ref]
                seeds[n][seed] = result
                if "error" in result and n not in outcome:
                    outcome[n] = {"error": f"seed {seed}: {result['error']}"}
                    self.engine.prune(n)  # stop its other seeds
            for n, seed, steps, value in self.engine.reports():
                evals[n].setdefault(steps, {})[seed] = value
            for n, trial in live.items():
                if n not in outcome and self.pruner is not None:
                    self.report(n, trial, evals[n], outcome)
            self.show(running=len(live) - len(outcome))
        for n in live:
            if n not in outcome:
                results = [seeds[n][s] for s in range(k)]
                value = sum(r["mean_survival"] for r in results) / k
                outcome[n] = {"value": value, "seeds": [_brief(r) for r in results]}
        return outcome

    def report(self, n: int, trial: Any, evals: dict[int, dict[int, float]], outcome: dict) -> None:
        """Report each evaluation step that every seed has reached; prune if the pruner says so."""
        k = self.settings["seeds"]
        known = trial.storage.get_trial(trial._trial_id).intermediate_values
        for steps in sorted(evals):
            if len(evals[steps]) < k or steps in known:
                continue
            trial.report(sum(evals[steps].values()) / k, steps)
            if self.should_prune(trial):
                outcome[n] = {"pruned_at": steps}
                self.engine.prune(n)
                return

    def should_prune(self, trial: Any) -> bool:
        frozen = trial.storage.get_trial(trial._trial_id)
        return self.pruner is not None and bool(self.pruner.prune(self.study, frozen))

    def config(self, trial: Any, seed: int) -> Any:
        extra: dict[str, Any] = {"seed": seed, "metrics__progress": False}
        if self.settings["prune_every"]:
            extra |= {
                "evaluation__every_steps": self.settings["prune_every"],
                "evaluation__episodes": self.settings["prune_episodes"],
            }
        return trial_config(self.source, self.values(trial), **self.overrides, **extra)

    def evaluation(self) -> dict[str, Any]:
        return {"episodes": self.settings["episodes"], "eval_seed": self.settings["eval_seed"]}

    def show(self, running: int = 0) -> None:
        counts = {state: 0 for state in FINISHED}
        best = None
        for t in self.study.get_trials(deepcopy=False):
            if t.state.name in counts:
                counts[t.state.name] += 1
            if t.state.name == "COMPLETE" and (best is None or t.value > best.value):
                best = t
        top = f"; best {best.value:.1f} (trial {best.number})" if best is not None else ""
        self.watch.show(
            f"trials: {counts['COMPLETE']} done, {running} running, {counts['PRUNED']} pruned, "
            f"{counts['FAIL']} failed of {self.total}{top}"
        )


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    keep = ("seed", "mean_survival", "median_survival", "agent_steps", "train_seconds", "node_id", "hostname")
    return {key: result.get(key) for key in keep}
