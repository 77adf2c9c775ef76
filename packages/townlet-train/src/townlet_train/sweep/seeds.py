"""`townlet-train seeds CONFIG --seeds 0-9`: one config over many seeds, in parallel on Ray, and
one aggregate of the greedy survival of their final policies.

OUT/seed<N>/ is seed N's run directory and OUT/seed<N>.json its result; the aggregate goes to
OUT/seeds.json, OUT/seeds.md and OUT/curves.png. Started again with the same arguments, the
command reuses every seed whose result exists and runs the others (see worker.py for a run that
a kill interrupted).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from townlet_env.config import ConfigError
from townlet_train.config import TrainConfig, load_config
from townlet_train.sweep import outputs, stats
from townlet_train.sweep.engine import Engine
from townlet_train.sweep.lock import sweep_lock
from townlet_train.sweep.worker import CURVE_BINS

OUTPUTS = ("seeds.json", "seeds.md", "curves.png")
MAX_SEEDS = 10_000


def parse_seeds(text: str) -> list[int]:
    """'0-9', '3', '0,2,5-7' -> the seeds, in order, each once."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            first, dash, last = part.strip().partition("-")
            low, high = int(first), int(last if dash else first)
            if high < low or high - low >= MAX_SEEDS:
                raise ValueError
            seeds += [s for s in range(low, high + 1) if s not in seeds]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected seeds such as 0-9, 3 or 0,2,5-7") from None
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"--seeds {text!r}: at most {MAX_SEEDS} seeds")
    return seeds


def seed_configs(path: Path | None, seeds: list[int], overrides: dict[str, Any]) -> list[TrainConfig]:
    return [load_config(path, seed=s, metrics__progress=False, **overrides) for s in seeds]


def job(cfg: TrainConfig, run_dir: Path, result: Path, episodes: int, eval_seed: int) -> dict[str, Any]:
    return {
        "config": cfg.model_dump(mode="json"),
        "run_dir": str(run_dir.resolve()),
        "result": str(result.resolve()),
        "episodes": episodes,
        "eval_seed": eval_seed,
    }


def check_settings(out: Path, settings: dict[str, Any], what: str) -> None:
    """OUT keeps what it was started with; starting it again with anything else is refused."""
    path = out / f"{what}-settings.json"
    if path.is_file():
        recorded = json.loads(path.read_text())
        changed = sorted(k for k in set(recorded) | set(settings) if recorded.get(k) != settings.get(k))
        if changed:
            raise ConfigError(
                f"{out} holds a {what} run with other settings ({', '.join(changed)} differ): "
                "give the same arguments to continue it, or another --out"
            )
        return
    outputs.write_json(path, settings, force=False)


def run_seeds(args: Any) -> int:
    from townlet_train.config_files import find_config

    seeds = parse_seeds(args.seeds)
    source = find_config(args.config)
    overrides = {"total_steps": args.total_steps, "env__num_envs": args.num_envs, "device": args.device}
    configs = seed_configs(source, seeds, overrides)
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    out: Path = args.out or Path("runs") / "seeds" / Path(str(args.config)).stem
    outputs.check_outputs([out / name for name in OUTPUTS], args.force)
    out.mkdir(parents=True, exist_ok=True)
    with sweep_lock(out):
        settings = {"config": configs[0].model_dump(mode="json") | {"seed": None}, "seeds": seeds}
        check_settings(out, settings | {"episodes": args.episodes, "eval_seed": args.eval_seed}, "seeds")
        engine = Engine(args.address, args.cpus, args.startup_timeout)
        try:
            results = _run(engine, configs, out, args)
        finally:
            engine.close()
        report = summarise(str(args.config), configs[0], results, args)
        write(out, report, args.force)
    agg = report["aggregate"]
    print(
        f"{len(results) - report['failed']} of {len(results)} seeds: greedy survival mean "
        f"{outputs.fmt(agg['mean'])} {outputs.interval(agg['mean_ci95'])}, IQM {outputs.fmt(agg['iqm'])}; "
        f"wrote {out / 'seeds.json'}, {out / 'seeds.md'}, {out / 'curves.png'}"
    )
    return 0 if not report["failed"] else 1


def _run(engine: Engine, configs: list[TrainConfig], out: Path, args: Any) -> list[dict[str, Any]]:
    refs = {}
    for cfg in configs:
        name = f"seed{cfg.seed}"
        spec = job(cfg, out / name, out / f"{name}.json", args.episodes, args.eval_seed)
        refs[engine.submit(spec)] = cfg.seed
    results: dict[int, dict[str, Any]] = {}
    watch = outputs.Watch()
    cpus = engine.cpus()
    try:
        while len(results) < len(configs):
            for ref, result in engine.finished([r for r in refs if refs[r] not in results], timeout=1.0):
                results[refs[ref]] = {"seed": refs[ref], **result}
            pending = len(configs) - len(results)
            failed = sum(1 for r in results.values() if "error" in r)
            done = [r["mean_survival"] for r in results.values() if "error" not in r]
            best = f"; mean so far {sum(done) / len(done):.1f}" if done else ""
            watch.show(
                f"seeds: {len(results) - failed} done, {min(pending, cpus)} running, "
                f"{max(0, pending - cpus)} queued, {failed} failed of {len(configs)}{best}"
            )
    finally:  # an error line after the progress line, not on it
        watch.close()
    return [results[cfg.seed] for cfg in configs]


def summarise(label: str, cfg: TrainConfig, results: list[dict[str, Any]], args: Any) -> dict[str, Any]:
    good = [r for r in results if "error" not in r]
    curves = [r["curve"] for r in good]
    return {
        "format": 1,
        "command": "seeds",
        "config": label,
        "level": cfg.level,
        "algorithm": cfg.algorithm.kind,
        "total_steps": cfg.total_steps,
        "episodes": args.episodes,
        "eval_seed": args.eval_seed,
        "seeds": [{k: v for k, v in r.items() if k != "reused"} for r in results],
        "failed": len(results) - len(good),
        "aggregate": stats.aggregate([r["mean_survival"] for r in good]),
        "curve": {"steps": bin_ends(cfg.total_steps), **stats.curve_band(curves)},
        "machine": machine(),
    }


def bin_ends(total_steps: int) -> list[int]:
    return [round(total_steps * (i + 1) / CURVE_BINS) for i in range(CURVE_BINS)]


def machine() -> dict[str, Any]:
    return {"torch": torch.__version__, "threads_per_task": 1, "cpu": platform.machine(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "pid": os.getpid()}  # fmt: skip


def write(out: Path, report: dict[str, Any], force: bool) -> None:
    outputs.write_json(out / "seeds.json", report, force)
    outputs.write_text(out / "seeds.md", markdown(report), force)
    outputs.write_figure(out / "curves.png", lambda: plot(report), force)


def markdown(report: dict[str, Any]) -> str:
    agg = report["aggregate"]
    lines = [
        f"# {report['config']} over {len(report['seeds'])} seeds",
        "",
        f"Greedy survival of each seed's final policy: {report['episodes']} episodes at difficulty 1.0 "
        f"(towns of seed {report['eval_seed']}), after {report['total_steps']:,} agent-steps of "
        f"{report['algorithm']} on {report['level']}. Intervals: 95 % percentile bootstrap over seeds.",
        "",
        "| level | seeds | mean [95 % CI] | IQM [95 % CI] | min-max |",
        "|---|---|---|---|---|",
        f"| {report['level']} | {agg['n']} | {outputs.fmt(agg['mean'])} {outputs.interval(agg['mean_ci95'])} "
        f"| {outputs.fmt(agg['iqm'])} {outputs.interval(agg['iqm_ci95'])} "
        f"| {outputs.fmt(agg.get('min'))}-{outputs.fmt(agg.get('max'))} |",
        "",
        "| seed | mean survival | median | agent-steps | train s | node |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["seeds"]:
        if "error" in r:
            lines.append(f"| {r['seed']} | failed: {r['error']} | | | | |")
            continue
        node = (r.get("node_id") or "-")[:8]
        lines.append(
            f"| {r['seed']} | {r['mean_survival']:.2f} | {r['median_survival']:.0f} | {r['agent_steps']:,} "
            f"| {r['train_seconds']:.0f} | {node} |"
        )
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 4))
    steps, band = report["curve"]["steps"], report["curve"]
    for r in report["seeds"]:
        if "curve" in r:
            ax.plot(*_points(steps, r["curve"]), color="tab:blue", alpha=0.25, linewidth=0.8)
    xs, mean = _points(steps, band["mean"])
    ax.plot(xs, mean, color="tab:blue", label="mean over seeds")
    xs_band, low = _points(steps, band["low"])
    _, high = _points(steps, band["high"])
    ax.fill_between(xs_band, low, high, color="tab:blue", alpha=0.2, label="95 % CI of the mean")
    ax.set_xlabel("agent-steps")
    ax.set_ylabel("training survival (steps)")
    ax.set_title(f"{report['config']}: {len(report['seeds'])} seeds")
    ax.legend(loc="lower right")
    return figure


def _points(steps: list[int], values: list[float | None]) -> tuple[list[int], list[float]]:
    pairs = [(s, v) for s, v in zip(steps, values, strict=False) if v is not None]
    return [s for s, _ in pairs], [v for _, v in pairs]
