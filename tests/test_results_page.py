"""The generated blocks of docs/results.md and docs/performance.md show exactly the figures
recorded in the benchmark JSON files."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.{name}")


def test_results_page_matches_the_recorded_results() -> None:
    module = load("results_page")
    results = json.loads(module.RESULTS.read_text())
    reference = json.loads(module.REFERENCE_RESULTS.read_text())
    page = module.PAGE.read_text()
    assert module.REFERENCE_BEGIN in page
    assert module.render(page, results, reference) == page, "run: python -m benchmarks.results_page"
    lr = load("learning_results")
    assert results["format"] == lr.FORMAT
    for level, entry in results["levels"].items():
        for name, recipe in entry["recipes"].items():
            assert recipe["summary"] == lr.summary(recipe), f"{level} {name}: summary is stale"
            runs = recipe["seeds"].values()
            assert all(run["learned"]["difficulty"] == 1.0 for run in runs)
            row = f"| {level} | {name}"
            assert row in page, f"docs/results.md lacks {row}"
            assert f"**{recipe['summary']['mean']:.0f}**" in page[page.index(row) :].split("\n", 1)[0]
    for run in reference["runs"].values():  # every recorded reference run has its row
        learned = run["eval"]["learned"]["mean_survival"]
        assert f"| {run['level']} | {run['timesteps'] / 1e6:.1f} M |" in page
        assert f"**{learned:.0f}** / " in page


def test_performance_page_matches_the_recorded_throughput() -> None:
    module = load("performance_page")
    env = json.loads(module.ENV_RESULTS.read_text())
    train = json.loads(module.TRAIN_RESULTS.read_text())
    profile = json.loads(module.PROFILE_RESULTS.read_text())
    page = module.PAGE.read_text()
    assert module.render(page, env, train, profile) == page, "run: python -m benchmarks.performance_page"
    for level in env["runs"]["cpu"]["levels"]:
        assert level in page


def test_results_page_quotes_the_social_baselines() -> None:
    results = json.loads((ROOT / "benchmarks" / "results" / "social_baselines.json").read_text())
    page = (ROOT / "docs" / "results.md").read_text()
    section = page[page.index("## L4_social") :]
    for name, p in results["policies"].items():
        label = name.replace("learned_", "learned, ")  # learned_dagger: "learned, dagger"
        row = (
            f"| {label} | {p['mean_survival']:.0f} | {p['median_survival']:.0f} | {p['mean_reward']:.1f} | "
            f"{p['chats_per_episode']:.1f} | {p['mean_trust']:.3f} |"
        )
        assert row in section, f"docs/results.md lacks: {row}"


def test_results_page_quotes_the_economy_baselines() -> None:
    results = json.loads((ROOT / "benchmarks" / "results" / "economy_baselines.json").read_text())
    page = (ROOT / "docs" / "results.md").read_text()
    section = page[page.index("## L5_town") : page.index("## Reference learners")]
    assert set(results["policies"]) == {"random", "scripted", "learned_dagger"}
    for name, p in results["policies"].items():
        label = name.replace("learned_", "learned, ")
        exits = ", ".join(f"{reason} {count:g}" for reason, count in p["exits"].items() if count)
        row = (
            f"| {label} | {p['mean_survival']:.1f} | {p['median_survival']:.0f} | {p['mean_reward']:.1f} | "
            f"{p['wages_per_episode']:.2f} | {p['on_time_rate']:.2f} | {p['evictions']:g} | {exits} | "
            f"{p['chats_per_episode']:.1f} | {p['mean_trust']:.3f} |"
        )
        assert row in section, f"docs/results.md lacks: {row}"
    runs = results["policies"]["learned_dagger"]["runs"]
    assert [run["seed"] for run in runs] == [0, 1, 2]
    assert ", ".join(f"{run['mean_survival']:.1f}" for run in runs[:2]) in section


def test_performance_page_quotes_the_social_throughput() -> None:
    results = json.loads((ROOT / "benchmarks" / "results" / "social_throughput.json").read_text())
    page = (ROOT / "docs" / "performance.md").read_text()
    section = page[page.index("## L4_social") :]
    for run in results["runs"].values():
        l4 = run["levels"]["L4_social"]
        figure = f"{l4['reused_buffers']['agent_steps_per_s'] / 1e6:.2f} M / "
        assert figure in section, f"docs/performance.md lacks the L4 figure {figure}"


def test_performance_page_quotes_the_door_throughput() -> None:
    """The doors block (gym.make, PettingZoo, the vector env) is what `door_throughput --page`
    writes from the committed JSON, figure for figure."""
    module = load("door_throughput")
    results = json.loads(module.RESULTS.read_text())
    page = module.PAGE.read_text()
    assert page.count(module.BEGIN) == 1 and page.count(module.END) == 1
    block = page.split(module.BEGIN, 1)[1].split(module.END, 1)[0]
    expected = "\n" + "\n".join(module.render(results)) + "\n"
    assert block == expected, "run: python -m benchmarks.door_throughput --page"
    for level, v in results["gym_make"].items():  # and the render quotes every door of the JSON
        row = f"| `gym.make` | {level} | {module.k(v['rate'])} | {module.k(v['cpu_rate'])} | "
        assert row + f"{v['ratio_to_cartpole']:.2f} |" in block, f"docs/performance.md lacks {row}"
    for case, v in results["pettingzoo"].items():
        level, agents = case.split(" x")
        row = f"| `parallel_env`, {agents} agents | {level} | {module.k(v['parallel']['rate'])} agent-steps |"
        assert row in block, f"docs/performance.md lacks {row}"
