"""Env throughput: agent-steps per second of TownletVectorEnv, against two yardsticks.

    python -m benchmarks.env_throughput                       # all levels, CPU (+ CUDA if present)
    python -m benchmarks.env_throughput --levels L1_full_observability --slots 4096 --repeats 3

For each level and slot count: random legal actions drawn on the device (random scores over
the mask, argmax), a warm-up, then `--repeats` timed runs of `--steps` env steps; the median is
reported, once with the default fresh tensors per step (`copy=True`) and once with reused
observation buffers (`copy=False`, what the trainer uses). Alongside:

- the plain-Python reference (`townlet_env.testing.reference`, one tick of one town at a time) in
  agent-steps per second, and Townlet's speed-up over it;
- a bare-tensor floor: the least work a tick of the same shape needs (gather and scatter of
  positions and meters, a drain, every float of an observation of the same size written into a
  reused buffer, a mask), as a proxy for what the hardware allows; Townlet is reported as a
  fraction of it;
- `gym.make("Townlet-v0")` single-agent steps per second (the numpy path of other libraries);
- bytes of simulation state per agent slot.

Writes `benchmarks/results/env_throughput.json`, and `docs/env_throughput.png` with --plot.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

import townlet_env
from townlet_env import TownletVectorEnv, builtin_levels
from townlet_env.testing import reference as ref

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "env_throughput.json"
PLOT = ROOT / "docs" / "env_throughput.png"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_env(
    level: str, slots: int, device: torch.device, steps: int, repeats: int, copy: bool = True
) -> dict[str, Any]:
    env = TownletVectorEnv(level, slots, device=device, copy=copy)
    _, info = env.reset(seed=0)
    gen = torch.Generator(device=device).manual_seed(0)

    def run(n: int) -> None:
        nonlocal info
        for _ in range(n):
            mask = info["action_mask"]
            actions = torch.rand(mask.shape, generator=gen, device=device).masked_fill_(~mask, -1.0).argmax(1)
            _, _, _, _, info = env.step(actions)

    run(max(5, steps // 5))  # warm-up: allocator, caches, first autoresets
    rates = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        run(steps)
        sync(device)
        rates.append(slots * steps / (time.perf_counter() - start))
    state_bytes = sum(t.numel() * t.element_size() for t in env.state.tensors().values())
    return {
        "agent_steps_per_s": statistics.median(rates),
        "runs": rates,
        "state_bytes_per_slot": state_bytes / slots,
    }


def time_floor(level: str, slots: int, device: torch.device, steps: int, repeats: int) -> float:
    """The bare minimum a tick of this shape does, with nothing else."""
    env = TownletVectorEnv(level, 1, agents_per_town=1)  # only its shapes are read
    obs_dim, n_meters, n_actions = env.level.layout.size, env.level.n_meters, env.level.n_actions
    width, height = env.level.width, env.level.height
    gen = torch.Generator(device=device).manual_seed(0)
    pos = torch.randint(0, width, (slots, 2), device=device, generator=gen)
    meters = torch.rand(slots, n_meters, device=device, generator=gen)
    drain = torch.rand(n_meters, device=device, generator=gen) * 0.01
    deltas = torch.tensor([[0, -1], [0, 1], [-1, 0], [1, 0]] + [[0, 0]] * (n_actions - 4), device=device)
    grid = torch.zeros(slots, height * width, device=device)
    mask = torch.ones(slots, n_actions, dtype=torch.bool, device=device)
    obs = torch.zeros(slots, obs_dim, device=device)  # reused: allocation is not part of the floor

    def tick() -> torch.Tensor:
        nonlocal pos, meters
        actions = torch.rand(mask.shape, generator=gen, device=device).argmax(1)
        pos = (pos + deltas[actions]).clamp(0, width - 1)  # gather deltas, move
        cell = pos[:, 1] * width + pos[:, 0]
        meters = (meters - drain).clamp(0, 1)  # drain
        grid.scatter_(1, cell[:, None], 1.0)  # scatter by position
        seen = grid.gather(1, cell[:, None])  # gather by position
        obs.zero_()  # every float of the observation is written once
        obs[:, :n_meters] = meters
        obs[:, n_meters : n_meters + 2] = pos.float()
        obs[:, -1:] = seen
        mask[:, :4] = ((pos[:, None, :] + deltas[None, :4]) >= 0).all(2)  # a mask
        return obs

    for _ in range(max(5, steps // 5)):
        tick()
    rates = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            tick()
        sync(device)
        rates.append(slots * steps / (time.perf_counter() - start))
    return statistics.median(rates)


def time_reference(level: str, agents: int, steps: int) -> float:
    env = TownletVectorEnv(level, agents)
    env.reset(seed=0)
    cfg = env.level.config
    state = ref.from_tensor_state(cfg, env.state)
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        mask = ref.ref_action_mask(cfg, state)
        actions = [
            int(torch.rand(len(m), generator=gen).masked_fill(~torch.tensor(m), -1).argmax()) for m in mask
        ]
        state, *_ = ref.ref_step(cfg, state, actions)
        ref.ref_observe(cfg, state)
    return agents * steps / (time.perf_counter() - start)


def time_gym(level: str, steps: int) -> float:
    env = gym.make("Townlet-v0", level=level)
    env.reset(seed=0)
    rng = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        mask = torch.as_tensor(env.unwrapped.action_masks())
        action = int(torch.rand(mask.shape, generator=rng).masked_fill(~mask.bool(), -1).argmax())
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def machine(device: torch.device) -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return {
        "torch": torch.__version__,
        "townlet_env": townlet_env.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "commit": commit.stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # L4_social runs whole towns of six (slot counts that are multiples of 6): it is measured by
    # benchmarks/social_throughput.py, beside L1
    parser.add_argument("--levels", nargs="*", default=[n for n in builtin_levels() if n != "L4_social"])
    parser.add_argument("--slots", nargs="*", type=int, default=[1, 64, 1024, 4096, 16384])
    parser.add_argument(
        "--devices", nargs="*", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    )
    parser.add_argument("--steps", type=int, default=100, help="env steps per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"runs": {}}
    for name in args.devices:
        device = torch.device(name)
        results["runs"][name] = {"machine": machine(device), "levels": {}}
        for level in args.levels:
            entry: dict[str, Any] = {"slots": {}}
            for slots in args.slots:
                steps = max(10, min(args.steps, args.steps * 4096 // max(slots, 1)))
                townlet = time_env(level, slots, device, steps, args.repeats)
                reused = time_env(level, slots, device, steps, args.repeats, copy=False)
                floor = time_floor(level, slots, device, steps, args.repeats)
                townlet["reused_agent_steps_per_s"] = reused["agent_steps_per_s"]
                townlet["reused_runs"] = reused["runs"]
                townlet["floor_agent_steps_per_s"] = floor
                townlet["fraction_of_floor"] = townlet["agent_steps_per_s"] / floor
                townlet["reused_fraction_of_floor"] = reused["agent_steps_per_s"] / floor
                entry["slots"][str(slots)] = townlet
                print(
                    f"{name:>4} {level:<26} {slots:>6} slots: {townlet['agent_steps_per_s'] / 1e6:8.3f} M/s  "
                    f"reused {reused['agent_steps_per_s'] / 1e6:8.3f} M/s  "
                    f"floor {floor / 1e6:8.3f} M/s  ({townlet['reused_fraction_of_floor']:.0%})  "
                    f"{townlet['state_bytes_per_slot']:.0f} B/slot",
                    flush=True,
                )
            if name == "cpu":
                entry["reference_agent_steps_per_s"] = time_reference(level, 16, 20)
                best = max(
                    max(v["agent_steps_per_s"], v["reused_agent_steps_per_s"])
                    for v in entry["slots"].values()
                )
                entry["speedup_over_reference"] = best / entry["reference_agent_steps_per_s"]
                entry["gym_make_steps_per_s"] = time_gym(level, 500)
                reference, speedup = entry["reference_agent_steps_per_s"], entry["speedup_over_reference"]
                print(
                    f"     reference {reference:,.0f}/s (x{speedup:,.0f}), "
                    f"gym.make {entry['gym_make_steps_per_s']:,.0f} steps/s",
                    flush=True,
                )
            results["runs"][name]["levels"][level] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results)


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for device, run in results["runs"].items():
        for level, entry in run["levels"].items():
            xs = [int(s) for s in entry["slots"]]
            (line,) = ax.plot(
                xs,
                [v["agent_steps_per_s"] for v in entry["slots"].values()],
                marker="o",
                label=f"{level} ({device})",
            )
            ax.plot(
                xs,
                [v["reused_agent_steps_per_s"] for v in entry["slots"].values()],
                marker="^",
                linestyle=":",
                color=line.get_color(),
                label=f"{level}, copy=False ({device})",
            )
        # the floor of the largest observation (L1-L3 share it) is the relevant ceiling
        name = max(run["levels"], key=lambda lv: run["levels"][lv]["slots"]["1"]["state_bytes_per_slot"])
        floor = run["levels"][name]["slots"]
        ax.plot(
            [int(s) for s in floor],
            [v["floor_agent_steps_per_s"] for v in floor.values()],
            "k--",
            label=f"bare-tensor floor, {name} shape ({device})",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("agent slots")
    ax.set_ylabel("agent-steps per second")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=90)


if __name__ == "__main__":
    main()
