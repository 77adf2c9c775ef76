"""Imitation of the scripted teacher: datasets verified by their manifest, behaviour cloning,
and DAgger (the student learns the teacher's actions on the states it visits itself)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from townlet_env import TownletVectorEnv
from townlet_env.policies.scripted import ScriptedPolicy
from townlet_train import cli
from townlet_train.algos.dagger import Dagger
from townlet_train.algos.imitation import masked_cross_entropy
from townlet_train.dataset import DatasetError, capture, load_dataset
from townlet_train.evaluate import evaluate
from townlet_train.policy import ModelPolicy, greedy, load_policy
from townlet_train.trainers import make_trainer

from .helpers import tiny_config

DAGGER = {"kind": "dagger", "beta_steps": 4096, "learning_starts": 256, "batch_size": 256}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "ds"
    capture("L0_minimal", "scripted", 512, out, seed=1, num_envs=16, shard_steps=8)
    return out


def copy_of(dataset: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(dataset, tmp_path / "copy"))


def test_capture_writes_shards_and_a_manifest_that_loads(dataset: Path) -> None:
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["policy"] == "scripted" and manifest["agent_steps"] == 512
    assert len(manifest["shards"]) == 4 and all(len(s["sha256"]) == 64 for s in manifest["shards"])
    data, _ = load_dataset(dataset, level="L0_minimal")
    assert data["obs"].shape[0] == data["action"].shape[0] == 512
    assert data["mask"][torch.arange(512), data["action"]].all(), "the teacher only takes legal actions"


def test_changed_shard_is_refused(dataset: Path, tmp_path: Path) -> None:
    copy = copy_of(dataset, tmp_path)
    shard = copy / "shard_00002.npz"
    raw = bytearray(shard.read_bytes())
    raw[-100] ^= 1
    shard.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"shard_00002\.npz: SHA-256 differs"):
        load_dataset(copy)


def test_missing_shard_is_refused(dataset: Path, tmp_path: Path) -> None:
    copy = copy_of(dataset, tmp_path)
    (copy / "shard_00001.npz").unlink()
    with pytest.raises(DatasetError, match="shard missing"):
        load_dataset(copy)


def test_other_level_or_version_is_refused(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="captured on level 'L0_minimal', not on 'L1_full_observability'"):
        load_dataset(dataset, level="L1_full_observability")
    copy = copy_of(dataset, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["level_hash"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="another version of level"):
        load_dataset(copy)


def test_cli_refuses_a_tampered_dataset_with_one_error_line(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = copy_of(dataset, tmp_path)
    (copy / "shard_00000.npz").write_bytes(b"not a shard")
    assert cli.main(["bc", "--dataset", str(copy), "--run-dir", str(tmp_path / "bc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "SHA-256" in err[0]


def test_bc_checkpoint_plays_in_eval(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "bc"
    assert cli.main(["bc", "--dataset", str(dataset), "--run-dir", str(run), "--updates", "30"]) == 0
    path = next((run / "checkpoints").glob("step_*.pt"))
    policy, cfg = load_policy(path)
    assert policy.select is greedy and cfg.algorithm.kind == "bc"
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", str(path), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2


def test_masked_cross_entropy_ignores_illegal_actions() -> None:
    """The illegal action (the largest logit) gets probability 0: the loss is that of a fair coin
    between the two legal ones, no gradient reaches the illegal logit, and the accuracy counts
    the best legal action (the first of the tie), not the illegal one."""
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 3.0, -9.0]], requires_grad=True)
    mask = torch.tensor([[False, True, True], [True, True, False]])
    loss, accuracy = masked_cross_entropy(logits, mask, torch.tensor([1, 0]))
    coin = -torch.log(torch.tensor(0.5)).item()
    right = -torch.log_softmax(torch.tensor([0.0, 3.0]), 0)[0].item()
    assert loss.item() == pytest.approx((coin + right) / 2, abs=1e-6)
    assert accuracy.item() == 0.5  # row 0: label 1 is the first legal best; row 1: 1 beats label 0
    loss.backward()
    assert logits.grad is not None and logits.grad[0, 0] == 0 and logits.grad[1, 2] == 0
    assert logits.grad[0, 1] != 0 and logits.grad[1, 0] != 0


def test_dagger_student_matches_the_teacher_on_the_states_it_visits(tmp_path: Path) -> None:
    cfg = tiny_config(
        total_steps=8192, algorithm={**DAGGER, "updates_per_step": 1.0}, network__hidden=[64, 64]
    )
    trainer = make_trainer(cfg, tmp_path / "run")
    assert isinstance(trainer.agent, Dagger)
    trainer.run()
    # the student alone (beta 0) on fresh episodes; the teacher labels what it sees
    env = TownletVectorEnv("L0_minimal", 16)
    obs, info = env.reset(seed=99)
    student, teacher = ModelPolicy(trainer.agent.online), ScriptedPolicy(env.town)
    agree = total = 0
    for _ in range(150):
        action, _ = student.act(obs, info["action_mask"], ())
        agree += int((action == teacher(obs, info)).sum())
        total += action.numel()
        obs, _, _, _, info = env.step(action)
    # measured 71% after these 8k agent-steps (a uniform choice among the ~5 legal actions: ~20%)
    assert agree / total > 0.6, f"the student agreed with the teacher on {agree / total:.0%} of its states"
    assert evaluate("L0_minimal", "learned", 4, agent=student)["mean_survival"] > 0


@pytest.mark.parametrize("anneal_lr", [False, True])
def test_dagger_resume_matches_an_uninterrupted_run(tmp_path: Path, anneal_lr: bool) -> None:
    from townlet_train.run.checkpoint import load_checkpoint

    from .helpers import short_level
    from .test_resume import resumed_beside_whole

    cfg = tiny_config(
        level=str(short_level(tmp_path, max_steps=40)),
        total_steps=1536,
        algorithm={**DAGGER, "anneal_lr": anneal_lr},
        checkpoint__include_replay=True,
        checkpoint__every_steps=512,
    )
    final = resumed_beside_whole(cfg, tmp_path, 1024, 1536)
    for key, value in final[0]["network"].items():
        assert torch.equal(final[1]["network"][key], value), key
    assert final[0]["counters"] == final[1]["counters"]
    middle = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_000000001024.pt")
    rates = [f["optimizer"]["param_groups"][0]["lr"] for f in (middle, *final)]
    # annealed, the rate at a step is lr x the fraction of the run left (0 at its last update)
    assert rates == (pytest.approx([1e-3 * 512 / 1536, 0.0, 0.0]) if anneal_lr else [1e-3] * 3)


def test_cli_trains_and_resumes_dagger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from .helpers import config_file

    cfg = config_file(tmp_path / "dagger.yaml", algorithm=DAGGER)
    run = tmp_path / "run"
    assert cli.main(["train", "--config", str(cfg), "--total-steps", "512", "--run-dir", str(run)]) == 0
    assert cli.main(["train", "--resume", str(run), "--total-steps", "1024", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "at 512 agent-steps" in out and json.loads(out.strip().splitlines()[-1])["agent_steps"] == 1024


def test_cli_capture_writes_a_dataset_and_refuses_to_overwrite_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    argv = ["capture", "--level", "L0_minimal", "--agent-steps", "64", "--num-envs", "8", "--out", str(out)]
    assert cli.main(argv) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["agent_steps"] == 64 and line["policy"] == "scripted"
    assert load_dataset(out)[0]["action"].shape[0] == 64
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already holds a dataset" in err


def test_dagger_runs_on_a_partially_observed_level(tmp_path: Path) -> None:
    """The teacher reads the Town's true state; the student sees only its window."""
    from .helpers import short_level

    level = short_level(tmp_path, max_steps=40, base="L2_partial_observability")
    cfg = tiny_config(level=str(level), total_steps=512, algorithm={**DAGGER, "learning_starts": 10**6})
    trainer = make_trainer(cfg, tmp_path / "r")
    agent = trainer.agent
    assert isinstance(agent, Dagger) and agent.teacher.town is trainer.env.town
    labels: list[torch.Tensor] = []
    seen: list[torch.Tensor] = []
    teach = agent.label

    def label(obs: torch.Tensor, info: dict) -> torch.Tensor:
        seen.append(obs.clone())
        labels.append(teach(obs, info))
        return labels[-1]

    agent.label = label  # type: ignore[method-assign]
    assert trainer.run()["agent_steps"] == 512
    replay = trainer.agent.replay
    # the student stored what it saw: its window, and an `affordances` field left at zero ...
    layout = trainer.env.level.layout
    stored = replay.obs[:512]
    assert torch.equal(stored, torch.cat(seen)) and not stored[:, layout["affordances"].slice].any()
    assert stored[:, layout["window"].slice].any()
    # ... with the labels of the teacher, who read the whole town
    assert torch.equal(replay.label[:512], torch.cat(labels))
