"""`evaluate(..., details=True)`: what the policy did, counted from the episodes it played."""

from __future__ import annotations

import pytest

from townlet_train.evaluate import evaluate


def test_details_count_every_action_and_every_death_on_l0() -> None:
    """Random play on L0_minimal always dies of energy (the Bed money runs out long before 1000
    steps), so every episode is a death with energy at zero."""
    result = evaluate("L0_minimal", "random", 16, details=True, seed=3)
    assert result["deaths"] == 16
    assert result["deaths_with_meter_at_zero"] == {"energy": 16}
    assert result["mean_meters_at_death"]["energy"] == 0.0
    assert sum(result["action_share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert set(result["uses_per_episode"]) == {"Bed"}
    # A Bed use costs 0.05 of the 0.25 starting money: at most 5 uses per life.
    assert 0 < result["uses_per_episode"]["Bed"] <= 5


def test_details_tell_the_scripted_policy_from_resting() -> None:
    scripted = evaluate("L1_full_observability", "scripted", 16, details=True, seed=5)
    random = evaluate("L1_full_observability", "random", 16, details=True, seed=5)
    assert scripted["deaths"] < random["deaths"] == 16
    # the scripted policy sleeps and works; random play barely uses anything
    assert scripted["uses_per_episode"]["LuxuryBed"] + scripted["uses_per_episode"]["Bed"] > 3
    assert scripted["uses_per_episode"]["Labor"] + scripted["uses_per_episode"]["Job"] > 1
    assert scripted["action_share"]["REST"] > random["action_share"]["REST"]
    # random agents die with a terminal meter at zero
    assert sum(random["deaths_with_meter_at_zero"].values()) >= 16


def test_without_details_the_result_is_the_summary_only() -> None:
    result = evaluate("L0_minimal", "random", 2, seed=3)
    assert "action_share" not in result and "deaths" not in result
