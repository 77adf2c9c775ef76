"""A scripted baseline: walk to the affordance that best serves the most urgent need.

Rules, for every slot at once: find the need meter furthest below its target; if money is short,
or the use that need calls for would leave it short (unless the need is a terminal meter's), and
the level has a way to earn it safely, the need is money (work). Among affordances that are open
now, affordable and safe (a full use leaves every terminal meter above SAFE, so that Labor never
spends the energy needed to walk to a bed), pick the one whose full use raises that meter most
(nearest on ties); walk there and INTERACT. In multi-tick levels, keep interacting until the use
completes. With no urgent need, rest.

Given a `Knowledge` (what a student with a map knows: `townlet_train/models/map.py`), it chooses only among
the affordances known, and explores (walks to the nearest cell not yet seen) when none of them
serves an urgent need or when nothing is urgent, until the whole grid has been seen: its
actions then depend only on what the student could know.

On an economy level (docs/economy.md) it also keeps its job and reads the market: an employed
agent walks to its workplace in time for its shift and stays there (resting, or chatting) until
the shift ends, unless a need is critical; the prices of the moment decide what it can afford
(a spiked use costs more, and a dearer place scores lower), a place an outage closes is not
usable, and it works for money whenever it holds less than twice the dearest food use now
(or MONEY_LOW, whichever is more). On L0-L4 none of this runs.

On a social level (docs/social.md) it also follows social rules: chat when the social meter is
low or when there is nothing urgent to do, but never with a neighbour it holds as a rival; walk
toward the nearest agent that is not a rival when no one is near and the social meter is the
most urgent need (or nothing is urgent and it is below full); and at a taken affordance keep
INTERACTing, which queues, instead of waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet_env.core import Town, affordance_at, economy, hour_of_day
from townlet_env.core.pairs import Pairs, slot_major
from townlet_env.core.social import chat_partner

URGENT = 0.5  # a need below this is worth walking for
MONEY_LOW = 0.2  # below this, go to work first
SAFE = 0.1  # keep terminal meters above this after a use: about ten steps of walking to a remedy
SOCIAL_LOW = 0.6  # below this, chat before anything but a use in progress
SOCIAL_IDLE = 0.95  # with nothing urgent to do, seek company below this
RIVAL = 0.4  # own rivalry above this: do not chat with or walk to that agent
CRITICAL = 0.35  # economy levels: a vital meter below this is worth missing a shift for
SPIKE_AVERSION = 0.05  # economy levels: score lost per unit of price multiplier above 1


@dataclass(frozen=True)
class Knowledge:
    """What a slot's agent knows of its town: which affordances [N, A], the nearest cell it has
    not seen [N, 2] (x, y), and whether any is left [N]."""

    known: torch.Tensor
    frontier: torch.Tensor
    unexplored: torch.Tensor


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
        self.terminal_gain = self.gain[:, level.terminal_index]  # [A, T]
        self.terminal = torch.zeros(len(names), dtype=torch.bool, device=town.device)
        self.terminal[level.terminal_index] = True
        # where nothing earns money (L0_minimal), being short of it is no reason to stop using
        # what it still buys: chasing money there would idle the agent until it starves
        self.can_earn = self.money >= 0 and bool((self.gain[:, self.money] > 0).any())
        self.names = list(level.action_names)
        vital = [int(i) for i in level.terminal_index] + [i for i, m in enumerate(names) if m == "satiation"]
        self.vital = torch.tensor(sorted(set(vital)), dtype=torch.long, device=town.device)

    def __call__(self, obs: torch.Tensor, info: dict, knowledge: Knowledge | None = None) -> torch.Tensor:
        level, state = self.level, self.town.state
        mask = info["action_mask"]
        meters = state.meters
        n = meters.shape[0]
        need_levels = meters[:, self.needs]
        most_urgent = self.needs[need_levels.argmin(dim=1)]  # [N] meter index
        urgent = need_levels.min(dim=1).values < URGENT
        # affordances usable now: open at this hour, affordable, and safe: a use that leaves a
        # terminal meter (energy after Labor, say) too low to walk to its remedy kills later
        price = None
        if level.economy is not None:  # what things cost now, and what is open
            market = economy.market(level.economy, state, affordance_at(level, state))
            price = state.per_slot(market.price)  # [N, A]
            required = level.aff_required[None] * price[:, :, None]
            usable = (meters[:, None, :] >= required).all(dim=2) & ~state.per_slot(market.closed)
        else:
            usable = (meters[:, None, :] >= level.aff_required[None]).all(dim=2)  # [N, A]
        after = meters[:, None, level.terminal_index] + self.terminal_gain[None]
        usable &= (after > SAFE).all(dim=2)
        if level.day_cycle:
            usable &= level.aff_open[:, hour_of_day(state)].T
        if knowledge is not None:
            usable &= knowledge.known
        pos = state.affordance_position[state.town]  # [N, A, 2]
        dist = (pos - state.position[:, None, :]).abs().sum(dim=2).float()

        def best_for(meter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            gain = self.gain[:, meter].T  # [N, A]
            value = gain - 1e-3 * dist
            if price is not None:  # a spiked place scores lower than an equal one at list price
                value = value - SPIKE_AVERSION * (price - 1.0)
            score = torch.where(usable & (gain > 0), value, float("-inf"))
            return score.argmax(dim=1), torch.isfinite(score.max(dim=1).values)

        choice, found = best_for(most_urgent)
        broke = torch.zeros_like(urgent)
        if self.can_earn:  # short of money: work first, when any work is safe
            work, can_work = best_for(torch.full_like(most_urgent, self.money))
            # and before a use that would leave it short: a visit to the Bar that spends the last
            # of its money and a fifth of its energy leaves it broke and tired, with work too
            # costly and a bed the only way out; a terminal need is never put off
            left = meters[:, self.money] + self.gain[choice, self.money]
            spends_too_much = found & urgent & ~self.terminal[most_urgent] & (left < MONEY_LOW)
            low = MONEY_LOW if price is None else self._money_floor(price)
            broke = ((meters[:, self.money] < low) | spends_too_much) & can_work
            choice, found = torch.where(broke, work, choice), found | broke
            urgent = urgent | broke
        has_choice = found & urgent
        target = pos[torch.arange(n, device=pos.device), choice]  # [N, 2]

        social = level.social is not None
        seek = torch.zeros_like(urgent)
        if level.social is not None:  # lonely or idle, and no one near: go and find company
            company, alone = self._company()
            social_level = meters[:, level.social.meter]
            lonely = (most_urgent == level.social.meter) & urgent & ~broke
            seek = alone & (lonely | (~has_choice & (social_level < SOCIAL_IDLE)))
            target = torch.where(seek[:, None], company, target)
            has_choice = has_choice & ~seek
        continuing = state.progress > 0  # finish a multi-tick use once started
        explore = torch.zeros_like(urgent)
        if knowledge is not None:
            explore = knowledge.unexplored & ~has_choice & ~seek & ~continuing
            target = torch.where(explore[:, None], knowledge.frontier.to(target.dtype), target)
        action = self._step_towards(target, mask)
        interact = level.interact_action
        at_target = (target == state.position).all(dim=1)
        wants_interact = (has_choice & at_target) | continuing
        if social:  # a queued agent keeps its place by INTERACTing rather than waiting idle
            wants_interact = wants_interact | ((state.queue_key >= 0) & has_choice & at_target)
        if interact >= 0:
            action = torch.where(wants_interact & mask[:, interact], interact, action)
        idle = ~has_choice & ~continuing & ~seek & ~explore
        rest = self.names.index("REST") if "REST" in self.names else level.wait_action
        action = torch.where(idle, rest, action)
        walking = torch.zeros_like(idle)
        if level.economy is not None:  # on shift, the workplace comes first
            action, go, at_work = self._work(action, mask, continuing)
            idle, seek = (idle & ~go) | at_work, seek & ~go
            walking = go & ~at_work
        if social:
            # on the way to work no chat holds the agent up; at work it may chat
            action = torch.where(walking, action, self._chat(action, mask, idle | seek, continuing))
        return torch.where(mask.gather(1, action[:, None]).squeeze(1), action, level.wait_action)

    def _money_floor(self, price: torch.Tensor) -> torch.Tensor:
        """[N] economy levels: MONEY_LOW, or twice the dearest full use of a food place at
        today's prices when that is more (food: a use that raises satiation)."""
        level = self.level
        names = list(level.meter_names)
        food = self.gain[:, names.index("satiation")] > 0 if "satiation" in names else self.gain[:, 0] < 0
        spend = (level.aff_required[:, self.money] * level.aff_ticks.float())[None] * price  # [N, A]
        dearest = torch.where(food[None], spend, 0.0).max(dim=1).values
        return torch.clamp(2 * dearest, min=MONEY_LOW)

    def _work(
        self, action: torch.Tensor, mask: torch.Tensor, continuing: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(actions, [N] going to work or there, [N] at work): an employed agent with no vital
        meter (a terminal one, or satiation) below CRITICAL goes to its workplace when its shift
        starts within the walk there, and rests on site until the shift ends; a use already
        started is finished first."""
        level, state = self.level, self.town.state
        tables = level.economy
        assert tables is not None
        employer = state.work[:, economy.EMPLOYER]
        place = tables.place[employer]
        site = state.affordance_position[state.town, place].to(state.position.dtype)
        dist = (site - state.position).abs().sum(dim=1)
        hour = hour_of_day(state)
        until = (tables.shift_start[employer] - hour) % 24
        on_shift = (hour >= tables.shift_start[employer]) & (hour < tables.shift_end[employer])
        go = economy.employed(state) & state.alive & (on_shift | (until <= dist + 1))
        vital = state.meters.index_select(1, self.vital)  # the meters that kill, and hunger
        go &= (vital.min(dim=1).values >= CRITICAL) & ~continuing
        there = (site == state.position).all(dim=1)
        rest = self.names.index("REST") if "REST" in self.names else level.wait_action
        walk = self._step_towards(site, mask)
        return torch.where(go, torch.where(there, rest, walk), action), go, go & there

    def _chat(
        self, action: torch.Tensor, mask: torch.Tensor, idle: torch.Tensor, continuing: torch.Tensor
    ) -> torch.Tensor:
        """CHAT when lonely or idle, with the partner the env would pick, unless it is a rival."""
        level, state = self.level, self.town.state
        assert level.social is not None
        pairs = Pairs(state, affordance_at(level, state), level.max_steps)
        partner, near = slot_major(chat_partner(pairs)), pairs.has_neighbour
        rival = state.rivalry.gather(1, partner[:, None]).squeeze(1) > RIVAL
        lonely = state.meters[:, level.social.meter] < SOCIAL_LOW
        chat = level.social.chat_action
        want = near & ~rival & mask[:, chat] & ~continuing & (lonely | idle)
        return torch.where(want, chat, action)

    def _company(self) -> tuple[torch.Tensor, torch.Tensor]:
        """([N, 2] the nearest living agent of the town that is not a rival, [N] none is adjacent)."""
        state = self.town.state
        k = state.agents_per_town
        pos = state.position.view(-1, k, 2)
        dist = (pos[:, :, None, :] - pos[:, None, :, :]).abs().sum(dim=3).float()
        other = ~torch.eye(k, dtype=torch.bool, device=pos.device)
        ok = other & state.alive.view(-1, k)[:, None, :] & (state.rivalry.view(-1, k, k) <= RIVAL)
        dist = torch.where(ok, dist, float("inf"))
        nearest = dist.argmin(dim=2)  # [T, K]
        target = pos.gather(1, nearest[..., None].expand(-1, -1, 2)).view(-1, 2)
        alone = (dist.min(dim=2).values > 1).flatten() & torch.isfinite(dist.min(dim=2).values).flatten()
        return target, alone

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
