"""`torch.compile` of the batched tick, against eager: one candidate of issue 22, measured.

    python -m benchmarks.compile_tick   # -> benchmarks/results/compile_tick.json

Compiles (inductor, CPU, `dynamic=False`) one L1 tick at 4096 slots from a steady-state state:
`core.step`, the observation into a reused buffer and the action mask, as one function (the
autoreset, whose shapes change every step, is left out). Times it against the same function run
eagerly, in CPU time of one thread, and records how long compiling took. Needs a C++ compiler.
"""

import json
import statistics
import time
from pathlib import Path

import torch

from townlet_env import TownletVectorEnv
from townlet_env.core import action_mask, affordance_at, observe, step

torch.set_num_threads(1)
env = TownletVectorEnv("L1_full_observability", 4096, copy=False)
_, info = env.reset(seed=0)
gen = torch.Generator().manual_seed(0)
for _ in range(50):
    a = torch.rand(info["action_mask"].shape, generator=gen).masked_fill_(~info["action_mask"], -1).argmax(1)
    _, _, _, _, info = env.step(a)
lv, state, mask = env.level, env.state, info["action_mask"]
actions = torch.rand(mask.shape, generator=gen).masked_fill_(~mask, -1).argmax(1)
buf = torch.zeros(4096, lv.layout.size)


def tick_and_observe(
    meters, position, alive, progress, life_steps, difficulty, clock, aff_pos, cells, actions, mask, buf
):
    s = state.replace(
        meters=meters,
        position=position,
        alive=alive,
        progress=progress,
        life_steps=life_steps,
        difficulty=difficulty,
        clock=clock,
        affordance_position=aff_pos,
        cells=cells,
    )
    new, res = step(lv, s, actions, mask)
    aff = affordance_at(lv, new)
    obs = observe(lv, new, aff, out=buf)
    m = action_mask(lv, new, aff)
    return new.meters, new.position, res.reward, res.terminated, obs, m


args = (
    state.meters,
    state.position,
    state.alive,
    state.progress,
    state.life_steps,
    state.difficulty,
    state.clock,
    state.affordance_position,
    state.cells,
    actions,
    mask,
    buf,
)


def timeit(fn, n=30):
    fn(*args)
    rates = []
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(n):
            fn(*args)
        rates.append((time.process_time() - t0) / n)
    return statistics.median(rates)


eager = timeit(tick_and_observe)
t0 = time.time()
try:
    compiled = torch.compile(tick_and_observe, dynamic=False)
    compiled(*args)
    compile_s = time.time() - t0
    comp = timeit(compiled)
    err = None
except Exception as e:
    compile_s, comp, err = time.time() - t0, None, repr(e)[:500]
out = {
    "eager_ms": eager * 1e3,
    "compiled_ms": None if comp is None else comp * 1e3,
    "compile_s": compile_s,
    "error": err,
    "note": "L1, 4096 slots, tick + observe into a buffer + mask, CPU time of 1 thread",
}
print(json.dumps(out))
out["torch"] = torch.__version__
path = Path(__file__).resolve().parent / "results" / "compile_tick.json"
path.write_text(json.dumps(out, indent=1))
