"""`--observe`: the observer attached to a training run shows training figures and can hold it."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest

from townlet_env.observer.server import ServerThread

from .conftest import ADMIN, TIMEOUT, Client

pytest.importorskip("townlet_train", reason="townlet-train is not installed")


# a tiny feed-forward run on L0_minimal (as tests/train/helpers.py's TINY): 40 env steps of 16 slots
TINY = {
    "level": "L0_minimal",
    "seed": 0,
    "device": "cpu",
    "total_steps": 16 * 40,
    "env__num_envs": 16,
    "network__hidden": [32],
    "network__field_embed": 8,
    "algorithm__batch_size": 32,
    "algorithm__learning_starts": 64,
    "algorithm__replay__kind": "uniform",
    "algorithm__replay__capacity": 2048,
    "metrics__progress": False,
    "metrics__tensorboard": False,
}


def test_a_training_run_is_watched_paused_and_stepped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from websockets.sync.client import connect

    from townlet_train.config import CONFIG_DIR, load_config
    from townlet_train.run.loop import Trainer
    from townlet_train.run.observe import Observer

    monkeypatch.setenv("TOWNLET_ADMIN_TOKEN", ADMIN)
    trainer = Trainer(load_config(CONFIG_DIR / "recipes" / "L0_minimal_dqn.yaml", **TINY), tmp_path / "run")
    observer = Observer(trainer, 0, paused=True)
    trainer.observer = observer
    result: dict = {}
    training = threading.Thread(target=lambda: result.update(trainer.run()), daemon=True)
    training.start()
    try:
        url = f"ws://127.0.0.1:{observer.server.port}/ws"
        with connect(url, open_timeout=TIMEOUT, max_size=None) as ws:
            client = Client(ws)
            client.send({"type": "auth", "token": ADMIN})
            hello = client.recv()
            assert hello["source"] == "trainer" and "speed" not in hello["commands"]
            first = client.until("tick")
            assert first["tick"] == 1 and first["paused"] and first["training"]["agent_steps"] == 16
            assert trainer.counters["env_steps"] == 1  # held by the pause
            assert client.command("speed", value=5)["type"] == "error"
            client.command("step", n=30)
            tick = client.until("tick", lambda m: m["tick"] == 31)
            assert tick["training"]["agent_steps"] == 31 * 16 and tick["training"]["loss"] is not None
            actions = [agent["action"] for town in tick["towns"] for agent in town["agents"]]
            assert actions and all(isinstance(a, int) for a in actions)  # the trainer's own choices
            assert trainer.counters["env_steps"] == 31
            client.command("resume")
            training.join(TIMEOUT)
        assert not training.is_alive() and result["agent_steps"] == 16 * 40
    finally:
        observer.close()
        training.join(TIMEOUT)
    lines = (tmp_path / "run" / "observer-audit.jsonl").read_text().splitlines()
    assert len(lines) == 3 and '"speed"' in lines[0]


def test_serve_thread_reports_a_port_in_use() -> None:
    from townlet_env.core import Town
    from townlet_env.observer.server import create_app
    from townlet_env.observer.source import LiveSource, random_policy

    town = Town("L0_minimal", 1)
    first = ServerThread(create_app(LiveSource(town, random_policy(0)))).start()
    try:
        with pytest.raises(ValueError, match=r"cannot listen on 127\.0\.0\.1:\d+: .*in use"):
            ServerThread(create_app(LiveSource(town, random_policy(0))), port=first.port).start()
    finally:
        first.stop()


def test_train_observe_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from townlet_train import cli

    argv = ["train", "--level", "L0_minimal", "--total-steps", "32", "--num-envs", "16", "--device", "cpu"]
    argv += ["--no-progress", "--observe", "0", "--run-dir", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"observing at http://127\.0\.0\.1:\d+/ \(audit log .*observer-audit\.jsonl\)", out), out


def test_train_observe_on_a_port_in_use_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from townlet_train import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["train", "--level", "L0_minimal", "--total-steps", "32", "--observe", str(port)]
        assert cli.main([*argv, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot listen on 127.0.0.1:") and "\n" not in err
    assert not (tmp_path / "run").exists()  # refused before a run directory was made


def test_ctrl_c_ends_a_paused_run_with_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run holds in the main thread (paused by an admin); SIGINT still stops it cleanly."""
    import os
    import signal

    from townlet_train.config import CONFIG_DIR, load_config
    from townlet_train.run.loop import Trainer
    from townlet_train.run.observe import Observer

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach only the main thread")
    monkeypatch.setenv("TOWNLET_ADMIN_TOKEN", ADMIN)
    trainer = Trainer(load_config(CONFIG_DIR / "recipes" / "L0_minimal_dqn.yaml", **TINY), tmp_path / "run")
    observer = Observer(trainer, 0, paused=True)
    trainer.observer = observer

    def interrupt_once_paused() -> None:
        # the source publishes its first tick only once the run has installed its handlers
        while observer.source._last_text is None:
            threading.Event().wait(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    poker = threading.Thread(target=interrupt_once_paused, daemon=True)
    poker.start()
    try:
        result = trainer.run()
    finally:
        observer.close()
        poker.join(TIMEOUT)
    assert result["interrupted"] == "SIGINT" and result["agent_steps"] == 16
    assert Path(result["checkpoint"]).is_file()


def test_an_observed_run_hands_the_step_s_ends_and_exit_reasons_to_the_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On an economy level an eviction is an `exit` with its reason, not an inferred death: the
    trainer's observer passes the step's terminated flags and exit reason codes to its source,
    which turns them into events."""
    import asyncio
    from types import SimpleNamespace

    import torch

    from townlet_env.core import Town
    from townlet_env.observer.source import TrainerSource
    from townlet_train.run import observe
    from townlet_train.run.observe import Observer

    monkeypatch.setattr(observe, "figures", lambda trainer, stats: {})  # no training figures here
    town = Town("L5_town", 6, 6)
    town.reset(seed=0)
    source = TrainerSource(town)
    source.hub.subscribe(asyncio.new_event_loop())  # someone watches: frames go out
    observer = Observer.__new__(Observer)  # the wiring only: no server
    observer.source = source
    evicted = town.level.economy.exit_reasons.index(
        next(n for n in town.level.economy.exit_reasons if "evict" in n)
    )
    codes = torch.tensor([0, evicted, 0, 0, 0, 0])
    trainer = SimpleNamespace(
        last_action=torch.zeros(6, dtype=torch.long),
        last_terminated=codes > 0,
        info={"exit_reason": codes},
    )
    source.interval = 0.0  # a frame after every step
    observer.after_step(SimpleNamespace(**{**vars(trainer), "last_terminated": None, "info": {}}), {})
    observer.after_step(trainer, {})
    reason = town.level.economy.exit_reasons[evicted]
    happened = [e for e in source._recent if e.get("slot") == 1]
    assert {"kind": "exit", "tick": 2, "town": 0, "slot": 1, "reason": reason} in happened
