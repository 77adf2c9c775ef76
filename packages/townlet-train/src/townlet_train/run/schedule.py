"""When the trainer saves: at whichever of three limits comes first.

`every_steps` and `every_episodes` fall on multiples of their period, so they land at the same
points in a resumed run as in an uninterrupted one. `every_seconds` counts from the end of the
last save of any kind; it is what bounds the training a crash can lose, whatever the speed of
the machine, and it changes nothing but when the files are written (a save does not touch the
training state).
"""

from __future__ import annotations

from time import monotonic

from townlet_train.config import CheckpointSettings


class CheckpointSchedule:
    def __init__(self, settings: CheckpointSettings, steps_per_env_step: int):
        self.settings = settings
        self.steps_per_env_step = steps_per_env_step
        self.last_save = monotonic()

    def due(self, counters: dict[str, int]) -> bool:
        """After an env step: has it crossed a period, or has enough time passed?"""
        every, steps = self.settings.every_steps, counters["agent_steps"]
        crossed_steps = (steps - self.steps_per_env_step) // every < steps // every
        crossed_episodes = counters["episodes"] >= counters["next_checkpoint"]
        late = monotonic() - self.last_save >= self.settings.every_seconds
        return crossed_steps or crossed_episodes or late

    def advance(self, counters: dict[str, int]) -> None:
        """Before a save, so that the checkpoint holds the next episode target: one target per
        save however many multiples of `every_episodes` this step's episodes crossed."""
        every = self.settings.every_episodes
        if counters["episodes"] >= counters["next_checkpoint"]:
            counters["next_checkpoint"] = (counters["episodes"] // every + 1) * every

    def saved(self) -> None:
        self.last_save = monotonic()
