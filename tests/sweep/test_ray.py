"""`seeds` and `sweep` on a real Ray: a local one, a killed and resumed sweep, and a two-node
cluster on this machine. Slow (Ray starts, several tiny runs train); CI runs them."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")
pytest.importorskip("optuna")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# A tiny DAgger run on L0_minimal whose seeds end differently (about 25 s on a busy core).
TINY = """\
level: L0_minimal
seed: 0
device: cpu
total_steps: 8192
env: {num_envs: 32, agents_per_town: 1}
network: {kind: mlp, hidden: [32, 32], field_embed: 16}
algorithm: {kind: dagger, beta_steps: 2048, capacity: 4096, lr: 0.003, batch_size: 128,
            updates_per_step: 1.0, learning_starts: 256}
curriculum: {kind: static, difficulty: 1.0}
checkpoint: {every_steps: 2048, keep: 2, include_replay: true}
metrics: {tensorboard: false, progress: false}
"""
# capacity 100 is below learning_starts 256: the trials that draw it fail validation
SPACE = """\
algorithm.lr: {low: 1.0e-3, high: 1.0e-2, log: true}
algorithm.capacity: {choices: [100, 4096]}
"""
SWEEP = ["--trials", "4", "--seeds", "2", "--batch", "2", "--episodes", "16", "--prune-episodes", "16"]
SWEEP += ["--sampler-seed", "3"]  # its random startup draws capacity 4096, 4096, 4096, then 100


def env() -> dict[str, str]:
    paths = [str(ROOT / "packages" / p / "src") for p in ("townlet-env", "townlet-train")]
    extra = os.environ.get("PYTHONPATH")
    found = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, *([extra] if extra else [])])}
    return found | {"OMP_NUM_THREADS": "1"}  # one thread per run


def townlet_train(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "townlet_train.cli", *args]
    return subprocess.run(command, env=environ or env(), capture_output=True, text=True, timeout=600)


def files(tmp: Path) -> tuple[Path, Path]:
    (tmp / "tiny.yaml").write_text(TINY)
    (tmp / "space.yaml").write_text(SPACE)
    return tmp / "tiny.yaml", tmp / "space.yaml"


def table(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "sweep.json").read_text())["trials"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A sweep that is never killed: 4 trials x 2 seeds on a local Ray of 2 CPUs."""
    tmp = tmp_path_factory.mktemp("reference")
    config, space = files(tmp)
    started = time.monotonic()
    done = townlet_train(
        "sweep", str(config), "--space", str(space), *SWEEP, "--cpus", "2", "--out", str(tmp / "out")
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "out", time.monotonic() - started


def test_a_sweep_runs_its_trials_and_writes_a_best_config_that_trains(
    reference: tuple[Path, float], tmp_path: Path
) -> None:
    out, seconds = reference
    assert seconds < 180, f"the 4 x 2 sweep took {seconds:.0f} s"
    rows = table(out)
    assert [r["trial"] for r in rows] == [0, 1, 2, 3]
    failed = [r for r in rows if r["state"] == "fail"]
    finished = [r for r in rows if r["state"] in ("complete", "pruned")]
    assert failed and finished
    for r in failed:  # a config that fails validation: recorded with its one-line reason
        assert r["values"]["algorithm.capacity"] == 100
        assert r["error"].startswith("algorithm.capacity 100 is below algorithm.learning_starts 256")
    for r in finished:
        assert r["values"]["algorithm.capacity"] == 4096
    complete = [r for r in rows if r["state"] == "complete"]
    assert complete
    for r in complete:
        assert len(r["per_seed"]) == 2 and r["score"] == pytest.approx(sum(r["per_seed"]) / 2)
        assert r["mean_ci95"][0] <= r["score"] <= r["mean_ci95"][1]
    for name in ("sweep.md", "best.yaml", "history.png", "parallel_coordinates.png"):
        assert (out / name).is_file(), name
    # the best config is a runnable config: it loads and trains
    best = out / "best.yaml"
    done = townlet_train(
        "train",
        "--config",
        str(best),
        "--total-steps",
        "512",
        "--run-dir",
        str(tmp_path / "b"),
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # outputs are not replaced without --force
    config, space = files(tmp_path)
    again = townlet_train("sweep", str(config), "--space", str(space), *SWEEP, "--out", str(out))
    assert again.returncode == 2 and again.stderr.strip().endswith("exists; give --force to replace it")


def finished_trials(journal: Path) -> int:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if not journal.is_file():
        return 0
    storage = JournalStorage(JournalFileBackend(str(journal)))
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if not names:
        return 0
    study = optuna.load_study(study_name=names[0], storage=storage)
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def test_a_sweep_killed_and_started_again_does_not_rerun_finished_trials(
    reference: tuple[Path, float], tmp_path: Path
) -> None:
    config, space = files(tmp_path)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "townlet_train.cli", "sweep", str(config), "--space", str(space), *SWEEP]
    command += ["--cpus", "2", "--out", str(out)]
    # its own session: the SIGKILL takes the driver and the local Ray it started, as a crash would
    proc = subprocess.Popen(
        command, env=env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        while (
            finished_trials(out / "study.journal") < 2 and proc.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.5)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    told = finished_trials(out / "study.journal")
    assert 2 <= told < 4
    before = {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/seed*.json")}
    done = townlet_train(
        "sweep", str(config), "--space", str(space), *SWEEP, "--cpus", "2", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # the seeds that had finished were not trained or evaluated again
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())
    assert table(out) == table(reference[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cluster_env() -> dict[str, str]:
    """Token authentication with a token of the test's own, for the nodes and every driver: a
    cluster's servers listen on all interfaces, and the test reads and writes nothing in ~/.ray."""
    return env() | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def node_command(temp: str, head_port: int, head: bool) -> list[str]:
    """`ray start` for a node of one CPU; every port that has a fixed default is a free one, since
    another Ray may run on this machine and both nodes share it (as Ray's cluster_utils does)."""
    ray = str(Path(sys.executable).with_name("ray"))
    command = [ray, "start", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--block"]
    command += ["--object-store-memory", "100000000", "--disable-usage-stats"]
    command += ["--dashboard-agent-listen-port", str(free_port())]
    if not head:  # it finds the head's temp dir through the head; one log monitor per machine is enough
        return [*command, "--address", f"127.0.0.1:{head_port}", "--include-log-monitor", "false"]
    command += ["--head", "--port", str(head_port), "--temp-dir", temp, "--include-dashboard", "false"]
    return [*command, "--dashboard-port", str(free_port()), "--ray-client-server-port", str(free_port())]


def session_members(sessions: set[int]) -> list[int]:
    """The live processes of these sessions: a node's --block process, its servers, and the workers
    its raylet started (which are in process groups of their own, but not in sessions of their own)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, session, ...
        if fields[0] != "Z" and int(fields[3]) in sessions:
            found.append(int(entry.name))
    return found


def stop(nodes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every process of the nodes' sessions, SIGKILL to what is left after 15 s (a head
    takes longer than that to stop on a busy machine). Only these processes: `ray stop` would end
    every Ray on the machine."""
    sessions = {node.pid for node in nodes}
    deadline = time.monotonic() + 15
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_members(sessions):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        while session_members(sessions) and time.monotonic() < deadline:
            time.sleep(0.2)
        deadline = time.monotonic() + 10
    for node in nodes:
        node.wait(timeout=10)


@pytest.fixture
def cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A head and a worker node of one CPU each on this machine, stopped after the test however it
    ends; yields the head's address and the environment a driver joins with."""
    environ = cluster_env()
    port = free_port()
    # a short temp dir: Ray's unix sockets live there, and their paths are limited to 107 bytes
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        for head in (True, False):
            # each node in a session of its own, so that it can be stopped as a whole
            with open(Path(temp) / f"node{len(nodes)}.log", "wb") as log:
                command = node_command(temp, port, head)
                nodes.append(
                    subprocess.Popen(command, env=environ, start_new_session=True, stdout=log, stderr=log)
                )
            try:
                wait_for_nodes(f"127.0.0.1:{port}", len(nodes), environ, nodes)
            except AssertionError as failed:  # with what the nodes said
                raise AssertionError(f"{failed}\n{node_logs(temp)}") from None
        yield f"127.0.0.1:{port}", environ
    finally:
        stop(nodes)
        shutil.rmtree(temp, ignore_errors=True)
        assert not session_members({node.pid for node in nodes}), "a node process outlived the test"


def node_logs(temp: str) -> str:
    """The end of each node's output and of the errors its raylet logged (session_latest/logs)."""
    paths = sorted(Path(temp).glob("node*.log")) + sorted(Path(temp).glob("session_latest/logs/raylet*.err"))
    return "\n".join(f"{p.name}: {p.read_text(errors='replace')[-1500:]}" for p in paths)


def wait_for_nodes(
    address: str, n: int, environ: dict[str, str], nodes: list[subprocess.Popen[bytes]] | None = None
) -> list[str]:
    """The ids of the cluster's live nodes once there are `n`; fails at once if a node process ended."""
    script = (
        "import ray; ray.init(address=%r, logging_level='ERROR'); "
        "print(' '.join(x['NodeID'] for x in ray.nodes() if x['Alive']))"
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for node in nodes or []:
            if node.poll() is not None:
                raise AssertionError(f"`{' '.join(map(str, node.args))}` ended with {node.returncode}")
        done = subprocess.run(
            [sys.executable, "-c", script % address], env=environ, capture_output=True, text=True, timeout=120
        )
        ids = done.stdout.split()
        if done.returncode == 0 and len(ids) >= n:
            return ids
        time.sleep(1)
    raise AssertionError(f"the cluster at {address} did not reach {n} nodes")


@pytest.mark.skipif(sys.platform != "linux", reason="Ray runs clusters of several nodes on Linux only")
def test_a_sweep_on_a_two_node_cluster_runs_trials_on_both(
    cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, environ = cluster
    config, _ = files(tmp_path)
    (tmp_path / "lr.yaml").write_text("algorithm.lr: {low: 1.0e-3, high: 1.0e-2, log: true}\n")
    out = tmp_path / "out"
    args = ["--trials", "2", "--seeds", "1", "--batch", "2", "--episodes", "16", "--pruner", "none"]
    args += ["--total-steps", "2048", "--address", address, "--out", str(out)]
    done = townlet_train("sweep", str(config), "--space", str(tmp_path / "lr.yaml"), *args, environ=environ)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    where = [seed["node_id"] for trial in runs.values() for seed in trial]
    # one CPU per node and two trials at once: Ray put one on each node
    assert len(where) == 2 and set(where) == set(wait_for_nodes(address, 2, environ))


def test_seeds_gives_the_figures_of_single_runs(tmp_path: Path) -> None:
    config, _ = files(tmp_path)
    out = tmp_path / "seeds"
    done = townlet_train(
        "seeds", str(config), "--seeds", "0-3", "--episodes", "16", "--cpus", "2", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "seeds.json").read_text())
    per_seed = {r["seed"]: (r["mean_survival"], r["mean_reward"]) for r in report["seeds"]}
    assert len(set(per_seed.values())) > 1  # the seeds learn differently, so the comparison means something
    for seed in range(4):
        run = tmp_path / f"single{seed}"
        trained = townlet_train(
            "train", "--config", str(config), "--seed", str(seed), "--run-dir", str(run), "--no-progress"
        )
        assert trained.returncode == 0, trained.stderr[-2000:]
        ev = townlet_train("eval", "--checkpoint", str(run), "--episodes", "16", "--json")
        assert ev.returncode == 0, ev.stderr[-2000:]
        result = json.loads(ev.stdout)
        assert (result["mean_survival"], result["mean_reward"]) == per_seed[seed]
    assert report["aggregate"]["mean"] == pytest.approx(sum(v[0] for v in per_seed.values()) / 4)
    assert (out / "seeds.md").is_file() and (out / "curves.png").is_file()


# Ray's workers are Python processes running default_worker.py: this one dies as it starts, as a
# worker does whose environment cannot import what it needs, and Ray starts another, for ever
DYING_WORKER = """\
import os, sys
if any(arg.endswith("default_worker.py") for arg in sys.argv):
    os._exit(3)
"""


def dying_workers(tmp: Path) -> dict[str, str]:
    """The environment of a command whose Ray workers die at startup, with a 5 s startup timeout."""
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(DYING_WORKER)
    found = env()
    found["PYTHONPATH"] = os.pathsep.join([str(site), found["PYTHONPATH"]])
    return found | {"TOWNLET_RAY_STARTUP_TIMEOUT": "5"}


def one_error(stderr: str) -> str:
    """The one `error:` line, the last one (Ray prints its warnings before), with no traceback."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr and [x for x in lines if x.startswith("error:")] == lines[-1:], stderr
    return lines[-1]


def test_seeds_stops_when_no_worker_starts(tmp_path: Path) -> None:
    config, _ = files(tmp_path)
    out = tmp_path / "seeds"
    args = ["seeds", str(config), "--seeds", "0-1", "--episodes", "4", "--cpus", "1", "--out", str(out)]
    started = time.monotonic()
    done = townlet_train(*args, environ=dying_workers(tmp_path))
    assert done.returncode == 2, done.stderr[-3000:]
    assert time.monotonic() - started < 120
    error = one_error(done.stderr)
    assert error.startswith("error: no seed started within 5 s on the local Ray"), error
    assert "its workers did not start" in error
    logs = re.search(r"errors in (\S+) \(", error)
    assert logs and (Path(logs[1]) / "raylet.out").is_file(), error  # this Ray's own logs
    assert not (out / "seeds.json").exists() and not list(out.glob("seed[0-9]*.json"))


def test_a_sweep_that_could_not_start_leaves_its_trials_to_resume(tmp_path: Path) -> None:
    """The trials asked before the timeout stay in the study as asked and not told: what a killed
    sweep leaves, and what the test above shows a rerun resumes."""
    config, _ = files(tmp_path)
    (tmp_path / "lr.yaml").write_text("algorithm.lr: {low: 1.0e-3, high: 1.0e-2, log: true}\n")
    out = tmp_path / "out"
    args = ["sweep", str(config), "--space", str(tmp_path / "lr.yaml"), "--trials", "2", "--seeds", "1"]
    args += ["--episodes", "4", "--pruner", "none", "--cpus", "1", "--out", str(out)]
    failed = townlet_train(*args, environ=dying_workers(tmp_path))
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert one_error(failed.stderr).startswith("error: no seed started within 5 s"), failed.stderr
    assert not (out / "sweep.json").exists() and not list(out.glob("trials/*/seed*.json"))
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    study = optuna.load_study(study_name="townlet-out", storage=storage)
    asked = study.get_trials(deepcopy=False)
    assert [t.number for t in asked] == [0] and asked[0].state.name == "RUNNING"
    assert "algorithm.lr" in asked[0].params
