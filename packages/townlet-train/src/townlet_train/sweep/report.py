"""A sweep's outputs, all from the study alone: OUT/sweep.json and OUT/sweep.md (every trial: its
values, its state, its seeds' greedy survival, their mean and 95 % bootstrap interval), the best
trial's config as a runnable OUT/best.yaml, and Optuna's plots (optimisation history, parallel
coordinates, parameter importances) as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from townlet_train.sweep import outputs, stats
from townlet_train.sweep.space import Param, trial_config

OUTPUTS = (
    "sweep.json",
    "sweep.md",
    "best.yaml",
    "history.png",
    "parallel_coordinates.png",
    "importances.png",
)
TOP = 5


def rows(study: Any, params: list[Param]) -> list[dict[str, Any]]:
    """One row per trial, in trial order: what a sweep that was never killed gives too."""
    out = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name.lower(),
            "values": {p.key: p.decode(t.params[p.key]) for p in params if p.key in t.params},
        }
        if t.state.name == "COMPLETE":
            per_seed = [s["mean_survival"] for s in t.user_attrs["seeds"]]
            row |= {"score": t.value, "per_seed": per_seed, **_interval(per_seed)}
        elif t.state.name == "PRUNED":
            row |= {"pruned_at": t.user_attrs.get("pruned_at"), "last_value": _last(t)}
        elif t.state.name == "FAIL":
            row |= {"error": t.user_attrs.get("error", "")}
        out.append(row)
    return out


def _interval(values: list[float]) -> dict[str, Any]:
    agg = stats.aggregate(values)
    return {"mean_ci95": agg["mean_ci95"], "iqm": agg["iqm"]}


def _last(trial: Any) -> float | None:
    values = trial.intermediate_values
    return values[max(values)] if values else None


def best_rows(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done = [r for r in table if r["state"] == "complete"]
    return sorted(done, key=lambda r: (-r["score"], r["trial"]))[:TOP]


def write(
    study: Any, params: list[Param], source: Path | None, overrides: dict[str, Any], out: Path, force: bool
) -> list[Path]:
    table = rows(study, params)
    best = best_rows(table)
    settings = study.user_attrs["settings"]
    data = {"format": 1, "command": "sweep", "settings": settings, "trials": table, "best": best}
    data["runs"] = {  # where and how long each seed ran: not part of the table, which never depends on it
        str(t.number): t.user_attrs["seeds"]
        for t in study.get_trials(deepcopy=False)
        if "seeds" in t.user_attrs
    }
    written = [out / "sweep.json", out / "sweep.md"]
    outputs.write_json(out / "sweep.json", data, force)
    notes: list[str] = []
    if best:
        cfg = trial_config(source, best[0]["values"], **overrides)
        head = (
            f"# The best trial of the sweep in {out}: trial {best[0]['trial']}, greedy survival "
            f"{best[0]['score']:.2f} {outputs.interval(best[0]['mean_ci95'])} "
            f"over {settings['seeds']} seeds\n"
            f"# values: {best[0]['values']}\n"
        )
        outputs.write_text(
            out / "best.yaml", head + yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), force
        )
        written.append(out / "best.yaml")
    written += plots(study, params, out, force, notes)
    outputs.write_text(out / "sweep.md", markdown(table, best, settings, notes), force)
    return written


def plots(study: Any, params: list[Param], out: Path, force: bool, notes: list[str]) -> list[Path]:
    from optuna.visualization import matplotlib as vis

    keys = [p.key for p in params]
    drawn = []
    for name, draw in (
        ("history.png", lambda: vis.plot_optimization_history(study)),
        ("parallel_coordinates.png", lambda: vis.plot_parallel_coordinate(study, params=keys)),
        ("importances.png", lambda: vis.plot_param_importances(study)),
    ):
        try:
            outputs.write_figure(out / name, draw, force)
            drawn.append(out / name)
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as exc:  # too few trials
            notes.append(f"{name} not drawn: {(str(exc).splitlines() or [type(exc).__name__])[0]}")
    return drawn


def markdown(
    table: list[dict[str, Any]], best: list[dict[str, Any]], settings: dict[str, Any], notes: list[str]
) -> str:
    seeds = settings["seeds"]
    lines = [
        f"# Sweep: {len(table)} trials x {seeds} seeds",
        "",
        f"Score: the mean over the trial's seeds (0-{seeds - 1}) of the greedy survival of each seed's "
        f"final policy ({settings['episodes']} episodes at difficulty 1.0, towns of seed "
        f"{settings['eval_seed']}). Intervals: 95 % percentile bootstrap over seeds. Sampler "
        f"{settings['sampler']} (seed {settings['sampler_seed']}), batches of {settings['batch']}, pruner "
        f"{settings['pruner']}.",
        "",
        "## Best",
        "",
        "| trial | score [95 % CI] | IQM | values |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['trial']} | {r['score']:.2f} {outputs.interval(r['mean_ci95'])} | {outputs.fmt(r['iqm'])} "
        f"| {_values(r)} |"
        for r in best
    ]
    lines += [
        "",
        "## Every trial",
        "",
        "| trial | state | values | per seed | score [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    for r in table:
        if r["state"] == "complete":
            per_seed = ", ".join(f"{v:.1f}" for v in r["per_seed"])
            result = f"{r['score']:.2f} {outputs.interval(r['mean_ci95'])}"
        elif r["state"] == "pruned":
            at = f"{r['pruned_at']:,}" if r["pruned_at"] is not None else "?"
            per_seed, result = "-", f"pruned at {at} agent-steps ({outputs.fmt(r['last_value'])})"
        else:
            per_seed, result = "-", (r.get("error") or "-").replace("|", "\\|")
        lines.append(f"| {r['trial']} | {r['state']} | {_values(r)} | {per_seed} | {result} |")
    lines += ["", *(f"- {note}" for note in notes)] if notes else []
    return "\n".join(lines) + "\n"


def _values(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["values"].items())


def summary_line(study: Any, written: list[Path]) -> str:
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL"))
    return f"{len(states)} trials ({counts}); wrote {', '.join(str(p) for p in written)}"
