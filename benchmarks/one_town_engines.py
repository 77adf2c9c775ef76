"""One town, three engines: the scalar engine, the tensor core and the plain-Python reference.

    python -m benchmarks.one_town_engines   # -> benchmarks/results/one_town_engines.json

The candidates of issue 22 for the one-town doors, measured side by side in one process: a tick,
the action mask and the observation of one town, with random legal actions, in agent-steps per
CPU-second of this process (medians of 3 runs; a shared machine inflates CPU time less than
wall time). The scalar engine and the tensor core produce the same numbers bit for bit; the
reference computes in float64 and agrees within 1e-5.
"""

import json
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from townlet_env.core.town import Town
from townlet_env.testing import reference as ref


def scalar_rate(level, k, steps=400):
    t = Town(level, k, k, autoreset=False, scalar=True)
    t.reset_state(0)
    rng = random.Random(0)
    out = np.zeros((k, t.level.layout.size), np.float32)
    e = t.engine
    done = 0
    t0 = time.process_time()
    while done < steps:
        acts = [rng.choice([a for a, ok in enumerate(r) if ok]) for r in e.mask()]
        r = t.step_scalar(acts)
        e.observe(out)
        done += 1
        if any(r.truncated) or not any(e.alive):
            t.reset_state()
            e = t.engine
    return steps * k / (time.process_time() - t0)


def tensor_rate(level, k, steps=100):
    t = Town(level, k, k, autoreset=False)
    now = t.reset(0)
    rng = random.Random(0)
    t0 = time.process_time()
    done = 0
    while done < steps:
        acts = [rng.choice([a for a, ok in enumerate(r) if ok]) for r in now.mask.tolist()]
        now = t.step(torch.tensor(acts))
        now.obs.numpy()
        done += 1
        if bool(now.truncated.any()) or not bool(t.state.alive.any()):
            now = t.reset()
    return steps * k / (time.process_time() - t0)


def ref_rate(level, k, steps=100):
    t = Town(level, k, k, autoreset=False)
    t.reset(0)
    cfg = t.level.config
    s = ref.from_tensor_state(cfg, t.state)
    rng = random.Random(0)
    t0 = time.process_time()
    for _ in range(steps):
        acts = [rng.choice([a for a, ok in enumerate(r) if ok]) for r in ref.ref_action_mask(cfg, s)]
        s, *_ = ref.ref_step(cfg, s, acts)
        ref.ref_observe(cfg, s)
    return steps * k / (time.process_time() - t0)


out = {}
for level, k in (("L1_full_observability", 1), ("L1_full_observability", 8), ("L4_social", 6)):
    rows = {n: [] for n in ("scalar", "tensor", "reference")}
    for _ in range(3):
        rows["scalar"].append(scalar_rate(level, k))
        rows["tensor"].append(tensor_rate(level, k))
        rows["reference"].append(ref_rate(level, k))
    out[f"{level} x{k}"] = {n: statistics.median(v) for n, v in rows.items()}
    print(level, k, {n: f"{statistics.median(v):,.0f}" for n, v in rows.items()}, flush=True)
(Path(__file__).resolve().parent / "results" / "one_town_engines.json").write_text(json.dumps(out, indent=1))
