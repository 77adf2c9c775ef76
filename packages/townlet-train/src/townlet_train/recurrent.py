"""Recurrent DQN (R2D2-style) for the partial-observation levels.

Windows of `burn_in + sequence_length + n_step` consecutive steps of one slot go into replay,
together with the actor's LSTM state at the window's start. Learning replays a window from that
stored state: the burn-in steps only warm the LSTM (no gradient), the next `sequence_length`
steps are learned, and the last `n_step` steps only feed the n-step targets.

Episode boundaries inside a window are masked, never crossed: the LSTM state is zeroed before
the first step of a new life (as the actor does), and an n-step return stops at the step where
its episode ended. A termination does not bootstrap; a truncation bootstraps from the episode's
final observation, fed through the LSTM state the episode had reached. (An earlier
implementation treated the last step of every sequence as terminal and had no burn-in.)
"""

from __future__ import annotations

import torch

from townlet_train.config import TrainConfig
from townlet_train.learner import DQNLearner
from townlet_train.networks import RecurrentQNetwork, masked_argmax

STEP_KEYS = (
    "obs",
    "action",
    "reward",
    "terminated",
    "truncated",
    "mask",
    "h",
    "c",
    "final_obs",
    "final_mask",
)


class SequenceCollector:
    """The last L steps of every slot in a ring; every `stride` steps, emits one window per slot."""

    def __init__(
        self,
        length: int,
        stride: int,
        num_envs: int,
        obs_dim: int,
        n_actions: int,
        hidden: int,
        device: torch.device,
    ):
        self.length, self.stride = length, stride

        def z(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(length, num_envs, *shape, dtype=dtype, device=device)

        self.buf = {
            "obs": z(obs_dim),
            "action": z(dtype=torch.long),
            "reward": z(),
            "terminated": z(dtype=torch.bool),
            "truncated": z(dtype=torch.bool),
            "mask": z(n_actions, dtype=torch.bool),
            "h": z(hidden),
            "c": z(hidden),
            "final_obs": z(obs_dim),
            "final_mask": z(n_actions, dtype=torch.bool),
        }
        self.steps = 0  # steps written so far

    def push(self, step: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        head = self.steps % self.length
        for key in STEP_KEYS:
            self.buf[key][head] = step[key]
        self.steps += 1
        if self.steps < self.length or (self.steps - self.length) % self.stride:
            return None
        order = (head + 1 + torch.arange(self.length, device=self.buf["obs"].device)) % self.length
        window = {key: self.buf[key][order].transpose(0, 1) for key in STEP_KEYS}  # [N, L, ...]
        # keep only what learning needs: the start state, and one final obs (the truncation's)
        truncated = window["truncated"]
        position = truncated.float().argmax(dim=1)  # at most one truncation fits in a window
        rows = torch.arange(truncated.shape[0], device=truncated.device)
        window["final_obs"] = window["final_obs"][rows, position]
        window["final_mask"] = window["final_mask"][rows, position]
        window["h"], window["c"] = window["h"][:, 0], window["c"][:, 0]
        return window

    def state_dict(self) -> dict:
        return {"buf": self.buf, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        for key in STEP_KEYS:
            self.buf[key].copy_(state["buf"][key])
        self.steps = int(state["steps"])


class SequenceReplay:
    """Uniform replay of whole windows."""

    def __init__(self, capacity: int, device: torch.device):
        self.capacity, self.device = capacity, device
        self.store: dict[str, torch.Tensor] = {}
        self.cursor = self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, window: dict[str, torch.Tensor]) -> None:
        count = min(next(iter(window.values())).shape[0], self.capacity)
        if not self.store:
            self.store = {
                k: torch.zeros(self.capacity, *v.shape[1:], dtype=v.dtype, device=self.device)
                for k, v in window.items()
            }
        rows = (self.cursor + torch.arange(count, device=self.device)) % self.capacity
        for key, value in window.items():
            self.store[key][rows] = value[-count:]
        self.cursor = (self.cursor + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        rows = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return {k: v[rows] for k, v in self.store.items()}

    def state_dict(self) -> dict:
        return {
            "store": {k: v[: self.size] for k, v in self.store.items()},
            "cursor": self.cursor,
            "size": self.size,
        }

    def load_state_dict(self, state: dict) -> None:
        self.cursor, self.size = int(state["cursor"]), int(state["size"])
        saved = state["store"]
        self.store = {
            k: torch.zeros(self.capacity, *v.shape[1:], dtype=v.dtype, device=self.device)
            for k, v in saved.items()
        }
        for key, value in saved.items():
            self.store[key][: self.size] = value


def unroll(
    net: RecurrentQNetwork, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor, reset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the LSTM over [B, T] steps from state (h, c) [B, H], zeroing a row's state before
    the steps where `reset` is true.

    Returns q [B, T, A], the hidden state after each step [B, T, H], and the cell state after
    each step that ends a segment (the step before a reset, and the last), zeros elsewhere.
    Boundaries are rare, so the LSTM runs over whole segments between the steps where any row
    resets: a few calls per window instead of one per step.
    """
    features = net.pre(net.encoder(obs))
    steps = obs.shape[1]
    cuts = reset[:, 1:].any(dim=0).nonzero().flatten().add(1).tolist()
    outs = []
    cells = torch.zeros(*obs.shape[:2], net.hidden_size, device=obs.device, dtype=features.dtype)
    for start, stop in zip([0, *cuts], [*cuts, steps], strict=True):
        keep = (~reset[:, start]).to(features.dtype)[:, None]
        out, (h1, c1) = net.lstm(features[:, start:stop], ((h * keep)[None], (c * keep)[None]))
        h, c = h1[0], c1[0]
        outs.append(out)
        cells[:, stop - 1] = c
    hidden = torch.cat(outs, dim=1)
    return head(net, hidden), hidden, cells


def head(net: RecurrentQNetwork, h: torch.Tensor) -> torch.Tensor:
    advantage = net.advantage(h)
    return net.value(h) + advantage - advantage.mean(dim=-1, keepdim=True)


def one_step(net: RecurrentQNetwork, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Q of one more observation [B, D] from state (h, c) [B, H]."""
    features = net.pre(net.encoder(obs))[:, None]
    out, _ = net.lstm(features, (h[None].contiguous(), c[None].contiguous()))
    return head(net, out[:, 0])


class RecurrentDQN:
    """Acting with a carried LSTM state per slot, storing windows, and learning from them."""

    def __init__(
        self,
        cfg: TrainConfig,
        network: RecurrentQNetwork,
        num_envs: int,
        obs_dim: int,
        n_actions: int,
        device: torch.device,
    ):
        self.cfg = cfg
        alg, rep = cfg.dqn, cfg.replay
        # the optimizer, loss, clipping and target-network upkeep are the feed-forward learner's
        self.learner = DQNLearner(network, alg)
        self.online: RecurrentQNetwork = network
        self.target: RecurrentQNetwork = self.learner.target  # type: ignore[assignment]
        length = rep.burn_in + rep.sequence_length + alg.n_step
        self.collector = SequenceCollector(
            length, rep.sequence_length, num_envs, obs_dim, n_actions, network.hidden_size, device
        )
        self.replay = SequenceReplay(max(1, rep.capacity // rep.sequence_length), device)
        self.state = network.initial_state(num_envs, device)

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        self.state_before = self.state
        with torch.no_grad():
            q, self.state = self.online(obs[:, None], self.state)
        return q[:, 0]

    def store(self, step: dict[str, torch.Tensor]) -> None:
        h, c = self.state_before
        window = self.collector.push({**step, "h": h[0], "c": c[0]})
        if window is not None:
            self.replay.add(window)
        keep = (~step["done"]).float()[None, :, None]  # a new life starts from a zero state
        self.state = (self.state[0] * keep, self.state[1] * keep)

    def ready(self) -> bool:
        return len(self.replay) >= 1

    def update(
        self, batch_size: int, rng: torch.Generator, agent_steps: int
    ) -> tuple[dict[str, float], torch.Tensor]:
        """One gradient step on `batch_size` windows; returns statistics and sampled observations."""
        batch = self.replay.sample(batch_size, rng)
        td, q = self.td_errors(batch)
        loss = self.learner.loss(td, torch.ones_like(td))
        grad_norm = self.learner.apply(loss)
        stats = {
            "loss": float(loss.detach()),
            "td_error": float(td.detach().abs().mean()),
            "q_mean": float(q.detach().mean()),
            "grad_norm": grad_norm,
        }
        return stats, batch["obs"][:, -1]

    def td_errors(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """TD errors [B, S] of the learned steps of each window, and their Q predictions."""
        alg, rep = self.cfg.dqn, self.cfg.replay
        bi, seq, n, gamma = rep.burn_in, rep.sequence_length, alg.n_step, alg.gamma
        ended = batch["terminated"] | batch["truncated"]
        reset = torch.zeros_like(ended)
        reset[:, 1:] = ended[:, :-1]  # zero the state before the first step of a new life
        h0, c0 = batch["h"], batch["c"]
        with torch.no_grad():
            _, hb, cb = (
                unroll(self.online, batch["obs"][:, :bi], h0, c0, reset[:, :bi])
                if bi
                else (None, h0[:, None], c0[:, None])
            )
            q_tgt, h_tgt, c_tgt = unroll(self.target, batch["obs"], h0, c0, reset)
        q_on, h_on, c_on = unroll(self.online, batch["obs"][:, bi:], hb[:, -1], cb[:, -1], reset[:, bi:])
        learn = torch.arange(bi, bi + seq, device=ended.device)  # window positions learned
        q_pred = q_on[:, :seq].gather(2, batch["action"][:, learn, None]).squeeze(2)

        with torch.no_grad():
            q_sel = q_on.detach()  # online Q at positions bi.. for double-DQN action choice
            ret = torch.zeros_like(q_pred)
            alive = torch.ones_like(q_pred, dtype=torch.bool)  # the n-step window has not ended yet
            discount = torch.zeros_like(q_pred)
            bootstrap = torch.zeros_like(q_pred)
            for k in range(n):
                pos = learn + k
                ret = ret + alive * (gamma**k) * batch["reward"][:, pos]
                term, trunc = batch["terminated"][:, pos] & alive, batch["truncated"][:, pos] & alive
                # truncation: bootstrap from the final obs through the state the episode reached
                discount = torch.where(trunc, gamma ** (k + 1), discount)
                alive = alive & ~term & ~trunc
            pos = learn + n  # windows end n steps after the last learned step
            chooser = q_sel[:, pos - bi] if alg.double else q_tgt[:, pos]
            best = masked_argmax(chooser, batch["mask"][:, pos])
            bootstrap = torch.where(alive, q_tgt[:, pos].gather(2, best[..., None]).squeeze(2), bootstrap)
            discount = torch.where(alive, gamma**n, discount)
            trunc_value = self._truncation_value(batch, h_tgt, c_tgt, h_on, c_on)
            truncated_inside = (discount > 0) & ~alive
            bootstrap = torch.where(truncated_inside, trunc_value[:, None], bootstrap)
            y = ret + discount * bootstrap
        return q_pred - y, q_pred

    def _truncation_value(
        self, batch: dict, h_tgt: torch.Tensor, c_tgt: torch.Tensor, h_on: torch.Tensor, c_on: torch.Tensor
    ) -> torch.Tensor:
        """[B] target value of each window's truncation final obs (0 where there is none)."""
        bi = self.cfg.replay.burn_in
        pos = batch["truncated"].float().argmax(dim=1)
        rows = torch.arange(pos.shape[0], device=pos.device)
        q_t = one_step(self.target, batch["final_obs"], h_tgt[rows, pos], c_tgt[rows, pos])
        if self.cfg.dqn.double:
            on_pos = (pos - bi).clamp(min=0)
            q_c = one_step(self.online, batch["final_obs"], h_on[rows, on_pos], c_on[rows, on_pos])
        else:
            q_c = q_t
        best = masked_argmax(q_c, batch["final_mask"])
        return q_t.gather(1, best[:, None]).squeeze(1) * batch["truncated"].any(dim=1)

    @property
    def updates(self) -> int:
        return self.learner.updates

    def state_dict(self) -> dict:
        return {
            **self.learner.state_dict(),
            "collector": self.collector.state_dict(),
            "actor_state": list(self.state),
        }

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state)
        self.collector.load_state_dict(state["collector"])
        self.state = (state["actor_state"][0].clone(), state["actor_state"][1].clone())
