"""Policies that need no training: the policy protocol every actor speaks, the scripted baseline
(the teacher of townlet-train's students) and uniform random play. They read only a `Town`."""

from townlet_env.policies.protocol import Policy, RandomPolicy, ScriptedAgent, Stateless
from townlet_env.policies.scripted import Knowledge, ScriptedPolicy

__all__ = ["Knowledge", "Policy", "RandomPolicy", "ScriptedAgent", "ScriptedPolicy", "Stateless"]
