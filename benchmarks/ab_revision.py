"""A/B env throughput: this tree against an earlier git revision, measured alternately in one run.

    python -m benchmarks.ab_revision --base 000d213                  # L1 and L3 at 64 and 4096 slots
    python -m benchmarks.ab_revision --base HEAD~3 --cases L1_full_observability:4096:nocopy:cpu
    python -m benchmarks.ab_revision --base e962780 --cases L5_town:4098:nocopy:cpu --threads 1 --cpu-time

For a refactor that should not change speed, a table of figures from another day says little on a
shared machine; two trees timed in alternation, in fresh processes with the same settings, say
whether this one is slower. Each case runs `--rounds` times per tree (order alternating), each run
a warm-up and `--steps` timed steps of random legal actions; the medians and their ratio (this
tree / base) are printed and written to `benchmarks/results/ab_revision.json`.

The base revision's `packages/townlet-env` is exported with `git archive` into a temporary
directory, so the working tree is never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "ab_revision.json"
DEFAULT_CASES = [
    "L1_full_observability:64:copy:cpu",
    "L1_full_observability:64:nocopy:cpu",
    "L1_full_observability:4096:copy:cpu",
    "L1_full_observability:4096:nocopy:cpu",
    "L3_temporal_mechanics:4096:nocopy:cpu",
]
# The child times the public API only, so the same code measures both trees.
CHILD = r"""
import sys, time, torch
level, slots, copy, device, steps, threads = sys.argv[1:7]
torch.set_num_threads(int(threads))
from townlet_env import TownletVectorEnv
slots, steps = int(slots), int(steps)
env = TownletVectorEnv(level, slots, device=device, copy=copy == "copy")
_, info = env.reset(seed=0)
gen = torch.Generator(device=device).manual_seed(0)
def run(n):
    global info
    for _ in range(n):
        mask = info["action_mask"]
        actions = torch.rand(mask.shape, generator=gen, device=device).masked_fill(~mask, -1).argmax(1)
        info = env.step(actions)[4]
    if device == "cuda":
        torch.cuda.synchronize()
run(max(5, steps // 10))
start, cpu = time.perf_counter(), time.process_time()
run(steps)
print(slots * steps / (time.perf_counter() - start), slots * steps / (time.process_time() - cpu))
"""


def export(revision: str, into: Path) -> Path:
    archive = into / "base.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision, "packages/townlet-env"], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "packages" / "townlet-env" / "src"


def measure(source: Path, case: str, steps: int, threads: int, cpu_time: bool = False) -> float:
    """Agent-steps per second of one fresh process, or per CPU-second of it with `cpu_time`."""
    level, slots, copy, device = case.split(":")
    env = dict(os.environ, PYTHONPATH=str(source))
    argv = [sys.executable, "-c", CHILD, level, slots, copy, device, str(steps), str(threads)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    wall, cpu = done.stdout.split()[-2:]
    return float(cpu if cpu_time else wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--cases", nargs="*", default=DEFAULT_CASES, help="level:slots:copy|nocopy:device")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each timed process")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="agent-steps per CPU-second of each process (steadier on a busy machine with 1 thread)",
    )
    args = parser.parse_args()
    here = ROOT / "packages" / "townlet-env" / "src"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = export(args.base, Path(tmp))
        print(f"{'case':<45} {'base':>12} {'this tree':>12} {'ratio':>7}")
        for case in args.cases:
            runs: dict[str, list[float]] = {"base": [], "this": []}
            for r in range(args.rounds):
                order = (("base", base), ("this", here)) if r % 2 == 0 else (("this", here), ("base", base))
                for name, source in order:
                    runs[name].append(measure(source, case, args.steps, args.threads, args.cpu_time))
            row = {
                "case": case,
                "base_median": statistics.median(runs["base"]),
                "this_median": statistics.median(runs["this"]),
                "runs": runs,
            }
            row["ratio"] = row["this_median"] / row["base_median"]
            base_speed, this_speed = row["base_median"], row["this_median"]
            print(f"{case:<45} {base_speed:>12,.0f} {this_speed:>12,.0f} {row['ratio']:>7.3f}")
            rows.append(row)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "base": args.base,
                "head": head.stdout.strip(),
                "machine": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
                "rounds": args.rounds,
                "steps": args.steps,
                "threads": args.threads,
                "per": "CPU-second" if args.cpu_time else "second",
                "cases": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
