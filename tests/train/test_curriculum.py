"""The adversarial curriculum, per agent slot: advance, retreat, stay, bounds, the survival it
reads (an earlier implementation read it after the reset and never advanced), the static mode,
and the trainer applying the stage multipliers to the env."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from townlet_env import TownletVectorEnv
from townlet_train.config import CurriculumSettings
from townlet_train.run.curriculum import Curriculum
from townlet_train.run.loop import Trainer
from townlet_train.run.metrics import Metrics

from .helpers import short_level, tiny_config

MAX = 100
STAGES = [0.2, 0.5, 0.8, 1.0, 1.0]


def curriculum(num_envs: int = 4, **settings: object) -> Curriculum:
    s = CurriculumSettings(**{"window": 3, "min_episodes": 3, **settings})
    return Curriculum(s, num_envs, MAX, torch.device("cpu"))


def feed(
    cur: Curriculum, lengths: list[int], entropies: list[float], ended: list[bool] | None = None
) -> list[int]:
    n = len(lengths)
    done = torch.tensor(ended if ended is not None else [True] * n)
    return cur.record(done, torch.tensor(lengths), torch.tensor(entropies)).tolist()


def test_advance_retreat_and_stay_per_slot() -> None:
    cur = curriculum()
    cur.stage[2] = 2  # slot 2 starts higher, so that it can retreat
    # slot 0: survives (80 of 100) and is confident -> advances
    # slot 1: survives but is unsure (entropy 1.0) -> stays
    # slot 2: dies early (10 of 100) -> retreats
    # slot 3: in between (50 of 100) -> stays
    lengths, entropies = [80, 80, 10, 50], [0.1, 1.0, 0.1, 0.1]
    assert feed(cur, lengths, entropies) == [0, 0, 0, 0]
    assert feed(cur, lengths, entropies) == [0, 0, 0, 0]  # not before `window` episodes
    assert feed(cur, lengths, entropies) == [1, 0, -1, 0]
    assert cur.stage.tolist() == [1, 0, 1, 0]
    assert torch.allclose(cur.difficulty(), torch.tensor([STAGES[1], STAGES[0], STAGES[1], STAGES[0]]))


def test_thresholds_are_strict() -> None:
    cur = curriculum(num_envs=3)
    cur.stage[:] = 1
    for _ in range(3):  # exactly 0.7 survival, exactly 0.5 entropy, exactly 0.3 survival
        changes = feed(cur, [70, 90, 30], [0.1, 0.5, 0.1])
    assert changes == [0, 0, 0] and cur.stage.tolist() == [1, 1, 1]


def test_only_ended_slots_are_recorded() -> None:
    cur = curriculum(num_envs=2)
    for _ in range(5):
        feed(cur, [90, 90], [0.0, 0.0], ended=[True, False])
    assert cur.stage.tolist() == [1, 0]
    assert cur.filled.tolist()[1] == 0


def test_min_episodes_between_moves_and_a_fresh_window_after_each_move() -> None:
    cur = curriculum(num_envs=1, window=2, min_episodes=5)
    changes = [feed(cur, [95], [0.0])[0] for _ in range(12)]
    # first move after 5 episodes (window 2 alone would allow 2), then every 5 more
    assert changes == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0]
    # with min_episodes below the window, a move still needs a whole window at the new stage
    cur = curriculum(num_envs=1, window=4, min_episodes=1)
    changes = [feed(cur, [95], [0.0])[0] for _ in range(9)]
    assert changes == [0, 0, 0, 1, 0, 0, 0, 1, 0]
    cur = curriculum(num_envs=1, window=4, min_episodes=1)
    cur.stage[0] = 4
    changes = [feed(cur, [5], [0.0])[0] for _ in range(8)]
    assert changes == [0, 0, 0, -1, 0, 0, 0, -1]


def test_never_past_the_last_stage_or_below_zero() -> None:
    cur = curriculum(num_envs=2, window=1, min_episodes=1)
    for _ in range(20):
        feed(cur, [99, 1], [0.0, 0.0])
    assert cur.stage.tolist() == [len(STAGES) - 1, 0]
    assert torch.allclose(cur.difficulty(), torch.tensor([1.0, 0.2]))


def test_static_curriculum_is_constant() -> None:
    cur = curriculum(kind="static", difficulty=0.6, window=1, min_episodes=1)
    for lengths in ([99] * 4, [1] * 4, [99] * 4):
        assert feed(cur, lengths, [0.0] * 4) == [0, 0, 0, 0]
        assert torch.allclose(cur.difficulty(), torch.full((4,), 0.6))
    assert cur.stage.tolist() == [0, 0, 0, 0]


def test_state_dict_round_trip() -> None:
    cur = curriculum(window=2, min_episodes=2)
    for _ in range(3):
        feed(cur, [90, 10, 50, 80], [0.1] * 4)
    other = curriculum(window=2, min_episodes=2)
    other.load_state_dict(cur.state_dict())
    for key, value in cur.state_dict().items():
        assert torch.equal(getattr(other, key), value), key
    assert feed(cur, [90] * 4, [0.1] * 4) == feed(other, [90] * 4, [0.1] * 4)


def test_survival_is_read_from_the_ended_episode_of_a_real_env(tmp_path: Path) -> None:
    """Regression: survival comes from info['final_episode_step'], not the reset counter."""
    level = short_level(tmp_path, max_steps=150)
    env = TownletVectorEnv(level, 2)
    env.set_difficulty(torch.tensor([0.0, 1.0]))  # slot 0 never starves (truncated at 150); slot 1 dies
    env.reset(seed=0)
    settings = CurriculumSettings(window=1, min_episodes=1)
    cur = Curriculum(settings, 2, env.level.max_steps, env.device)
    cur.stage[1] = 3
    wait = torch.full((2,), env.level.wait_action)
    recorded = []
    for _ in range(150):
        _obs, _reward, terminated, truncated, info = env.step(wait)
        done = terminated | truncated
        if bool(done.any()):
            # what the earlier implementation read: the new episode's counter, 0 after the reset
            assert info["episode_step"][done].tolist() == [0] * int(done.sum())
            length = info["final_episode_step"]
            cur.record(done, length, torch.zeros(2))
            recorded.append((done.tolist(), length.tolist()))
    # slot 1 died of hunger after about 100 ticks (energy 1.0, drain 0.01); slot 0 reached the end
    first_done, first_length = recorded[0]
    assert first_done == [False, True] and first_length[1] in (100, 101)
    assert float(cur.survival[1, 0]) == pytest.approx(first_length[1] / 150)
    assert float(cur.survival[0, 0]) == pytest.approx(1.0)
    assert cur.stage.tolist() == [1, 3]  # slot 0 advanced (1.0 > 0.7); slot 1 stays (0.67)


def test_trainer_applies_stage_multipliers_to_the_env(tmp_path: Path) -> None:
    level = short_level(tmp_path, max_steps=60)
    stages = [0.1, 0.4, 0.7, 1.0]
    cfg = tiny_config(
        level=str(level),
        algorithm__learning_starts=10**9,
        curriculum__stages=stages,
        curriculum__window=1,
        curriculum__min_episodes=1,
        curriculum__advance_survival=0.01,
        curriculum__retreat_survival=0.0,
        curriculum__advance_entropy=100.0,
    )
    trainer = Trainer(cfg, tmp_path / "run")
    calls: list[torch.Tensor] = []
    original = trainer.env.set_difficulty
    trainer.env.set_difficulty = lambda m: (calls.append(torch.as_tensor(m).clone()), original(m))[1]  # type: ignore[method-assign]
    assert torch.allclose(trainer.env.state.difficulty, torch.full((16,), 0.1))  # stage 0 from the start
    metrics = Metrics(tmp_path / "run", trainer.env.meter_names, tensorboard=False)
    try:
        while trainer.counters["episodes"] < 40:  # every ended episode advances its slot
            trainer.collect(metrics)
    finally:
        metrics.close()
    assert calls, "the trainer never called env.set_difficulty"
    stage = trainer.curriculum.stage
    assert int(stage.max()) >= 2
    expected = torch.tensor(stages)[stage]
    assert torch.allclose(calls[-1], expected)
    assert torch.allclose(trainer.env.state.difficulty, expected)
    # survival was recorded from the ended episodes' lengths (none is 0)
    filled = trainer.curriculum.filled > 0
    assert bool((trainer.curriculum.survival[filled] > 0).all())
