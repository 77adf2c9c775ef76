"""The names and observation layout every Townlet env exposes, read from its compiled level."""

from __future__ import annotations

from townlet_env.core.level import CompiledLevel


class LevelNames:
    """Mixin for the envs: `level` is the compiled level they run."""

    level: CompiledLevel

    @property
    def meter_names(self) -> list[str]:
        return list(self.level.meter_names)

    @property
    def action_names(self) -> list[str]:
        return list(self.level.action_names)

    @property
    def affordance_names(self) -> list[str]:
        return list(self.level.affordance_names)

    @property
    def observation_layout(self) -> list[tuple[str, int, int]]:
        """(name, offset, size) of every field of an agent's observation vector, in order."""
        return [(f.name, f.offset, f.size) for f in self.level.layout.fields]
