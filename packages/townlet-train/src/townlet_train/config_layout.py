"""Configs in the older layout, read as the new one.

Before the learners were split (0.x), the DQN-only sections sat at the top (`replay`,
`exploration.epsilon`), DAgger repeated `sequence_length` / `burn_in`, and a recurrent DQN
asked for `replay.kind: sequence`. Every shipped config, every run directory's config.yaml and
every checkpoint's recorded config written then still loads: `migrate` moves

    replay                      -> algorithm.replay     (dqn; other algorithms never read it)
    replay.sequence_length      -> network.sequence_length   (dqn)
    replay.burn_in              -> network.burn_in            (dqn)
    replay.kind: sequence       -> (dropped: network.kind lstm says it)
    exploration.epsilon         -> algorithm.epsilon    (dqn; dropped for the others)
    algorithm.sequence_length   -> network.sequence_length   (dagger)
    algorithm.burn_in           -> network.burn_in            (dagger)

and says what it moved (`load_config` prints it as one notice line). What cannot be moved is a
`LayoutError` naming the key and what to write instead.
"""

from __future__ import annotations

import copy
from typing import Any

WINDOW = ("sequence_length", "burn_in")


class LayoutError(ValueError):
    """An older key that has no place in the new layout: `key` and what to write instead."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def migrate(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the config in the new layout, one note per moved or dropped key); `data` is not changed."""
    has_replay = isinstance(data.get("replay"), dict) or data.get("replay", 0) is None
    exploration = data.get("exploration")
    has_epsilon = isinstance(exploration, dict) and "epsilon" in exploration
    algorithm = data.get("algorithm")
    has_window = isinstance(algorithm, dict) and any(k in algorithm for k in WINDOW)
    if not (has_replay or has_epsilon or has_window):
        return data, []
    data = copy.deepcopy(data)
    algorithm = data["algorithm"] = _mapping(data.get("algorithm"))
    kind = algorithm.get("kind", "dqn")
    network = data["network"] = _mapping(data.get("network"))
    notes: list[str] = []

    def to_network(source: str, values: dict[str, Any]) -> None:
        for key in WINDOW:
            if key in values:
                network[key] = values.pop(key)
                notes.append(f"{source}.{key} -> network.{key}")

    if has_replay:
        replay = _mapping(data.pop("replay"))
        if kind != "dqn":
            notes.append(f"replay dropped (algorithm.kind {kind} has no replay)")
        else:
            to_network("replay", replay)
            if replay.get("kind") == "sequence":
                if network.get("kind") != "lstm":
                    raise LayoutError(
                        "replay.kind",
                        f"'sequence' replays the windows of network.kind 'lstm', not of "
                        f"'{network.get('kind', 'dueling')}': write algorithm.replay.kind uniform "
                        "or prioritized",
                    )
                del replay["kind"]
                notes.append("replay.kind sequence dropped (network.kind lstm says it)")
            if replay:
                algorithm["replay"] = {**_mapping(algorithm.get("replay")), **replay}
                notes.append("replay -> algorithm.replay")
    if has_epsilon:
        assert isinstance(exploration, dict)
        epsilon = data["exploration"] = dict(exploration)
        moved = epsilon.pop("epsilon")
        if kind == "dqn":
            algorithm["epsilon"] = {**_mapping(algorithm.get("epsilon")), **_mapping(moved)}
            notes.append("exploration.epsilon -> algorithm.epsilon")
        else:
            notes.append(f"exploration.epsilon dropped (algorithm.kind {kind} is not epsilon-greedy)")
    if has_window:
        if kind != "dagger":
            key = next(k for k in WINDOW if k in algorithm)
            raise LayoutError(f"algorithm.{key}", f"write network.{key} (the window of a recurrent memory)")
        to_network("algorithm", algorithm)
    return data, notes
