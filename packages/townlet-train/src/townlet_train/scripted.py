"""A scripted baseline: walk to the affordance that best serves the most urgent need.

Rules, for every slot at once: find the need meter furthest below its target; if money is
short, the need is money (work). Among affordances that are open now and affordable, pick the
one whose full use raises that meter most (nearest on ties); walk there and INTERACT. In
multi-tick levels, keep interacting until the use completes. With no urgent need, rest.
"""

from __future__ import annotations

import torch

from townlet_env.core import Town, hour_of_day

URGENT = 0.5  # a need below this is worth walking for
MONEY_LOW = 0.2  # below this, go to work first


class ScriptedPolicy:
    """Acts for every slot of a `Town` (a vector env's is `env.town`), reading its true state."""

    def __init__(self, town: Town):
        self.town = town
        level = town.level
        self.level = level
        names = list(level.meter_names)
        self.money = names.index("money") if "money" in names else -1
        # meters an agent wants high: all but money, which is only a means
        self.needs = torch.tensor([i for i in range(len(names)) if i != self.money], device=town.device)
        self.gain = level.aff_instant_delta  # [A, M] what one full use changes
        self.names = list(level.action_names)

    def __call__(self, obs: torch.Tensor, info: dict) -> torch.Tensor:
        level, state = self.level, self.town.state
        mask = info["action_mask"]
        meters = state.meters
        n = meters.shape[0]
        need_levels = meters[:, self.needs]
        most_urgent = self.needs[need_levels.argmin(dim=1)]  # [N] meter index
        urgent = need_levels.min(dim=1).values < URGENT
        target_meter = most_urgent
        if self.money >= 0:
            broke = meters[:, self.money] < MONEY_LOW
            target_meter = torch.where(broke, self.money, most_urgent)
            urgent = urgent | broke

        # affordances usable now: open at this hour and affordable
        usable = (meters[:, None, :] >= level.aff_required[None]).all(dim=2)  # [N, A]
        if level.day_cycle:
            usable &= level.aff_open[:, hour_of_day(state)].T
        gain = self.gain[:, target_meter].T  # [N, A]
        pos = state.affordance_position[state.town]  # [N, A, 2]
        dist = (pos - state.position[:, None, :]).abs().sum(dim=2).float()
        score = torch.where(usable & (gain > 0), gain - 1e-3 * dist, float("-inf"))
        choice = score.argmax(dim=1)
        has_choice = torch.isfinite(score.max(dim=1).values) & urgent
        target = pos[torch.arange(n, device=pos.device), choice]  # [N, 2]

        action = self._step_towards(target, mask)
        interact = level.interact_action
        at_target = (target == state.position).all(dim=1)
        continuing = state.progress > 0  # finish a multi-tick use once started
        wants_interact = (has_choice & at_target) | continuing
        if interact >= 0:
            action = torch.where(wants_interact & mask[:, interact], interact, action)
        idle = ~has_choice & ~continuing
        rest = self.names.index("REST") if "REST" in self.names else level.wait_action
        action = torch.where(idle, rest, action)
        return torch.where(mask.gather(1, action[:, None]).squeeze(1), action, level.wait_action)

    def _step_towards(self, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Greedy move along the longer axis first; the other axis if that is blocked."""
        level, pos = self.level, self.town.state.position
        dx, dy = (target - pos).unbind(dim=1)
        by_delta = {tuple(level.move_delta[a].tolist()): int(a) for a in level.move_actions}
        wait = level.wait_action
        x_move = torch.where(dx > 0, by_delta.get((1, 0), wait), by_delta.get((-1, 0), wait))
        y_move = torch.where(dy > 0, by_delta.get((0, 1), wait), by_delta.get((0, -1), wait))
        x_move = torch.where(dx == 0, wait, x_move)
        y_move = torch.where(dy == 0, wait, y_move)
        first = torch.where(dx.abs() >= dy.abs(), x_move, y_move)
        second = torch.where(dx.abs() >= dy.abs(), y_move, x_move)
        legal = lambda a: mask.gather(1, a[:, None]).squeeze(1)  # noqa: E731
        return torch.where(legal(first) & (first != wait), first, second)
