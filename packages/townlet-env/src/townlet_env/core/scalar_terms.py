"""The social layer's reward terms for the scalar engine (`core.social_step`'s, for one town).

Split from `scalar_social` to keep each module short; the same operations as the core's, in
the same order, each float32 operation rounded by the `_ROUND` buffer.
"""

from __future__ import annotations

from townlet_env.core.scalar_base import _ROUND


def reward_terms(
    weights: tuple[float | None, float | None, bool],
    clip: tuple[float, float],
    living: list[bool],
    chat_reward: list[float],
    reward: list[float],
) -> dict[str, list[float]]:
    """The declared terms of each living agent (0 for the others), and in `reward` (which holds
    the needs formula) their sum, clipped: summed term by term, as torch sums them. `weights`:
    the needs weight, the survival bonus (None where not declared) and whether chat is a term."""
    r = _ROUND
    low, high = clip
    needs, survival, chat = weights
    terms: dict[str, list[float]] = {}
    if needs is not None:
        terms["needs"] = []
    if survival is not None:
        terms["survival"] = []
    if chat:
        terms["chat"] = []
    for i, alive in enumerate(living):
        if not alive:
            for values in terms.values():
                values.append(0.0)
            reward[i] = 0.0
            continue
        total = 0.0
        if needs is not None:
            r[0] = needs * reward[i]
            value = r[0]
            terms["needs"].append(value)
            total = value
        if survival is not None:
            terms["survival"].append(survival)
            r[0] = total + survival
            total = r[0]
        if chat:
            value = chat_reward[i]
            terms["chat"].append(value)
            r[0] = total + value
            total = r[0]
        reward[i] = low if total < low else high if total > high else total
    return terms
