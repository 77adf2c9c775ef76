"""What a model remembers between steps, written once: `Memory` and its three kinds.

A memory's state is a tuple of tensors, each [1, N, ...] while acting (nn.LSTM's convention) and
[B, ...] (one row per window) when learning replays stored windows from their first step:

    state = memory.initial_state(n, device)                  # a new life: all zeros
    y, states = memory.unroll(x [B, T, F], state0, is_init [B, T])

`is_init[b, t]` says that step t begins a new life, so the state is zeroed before it; the first
step of a stored window is never one (the actor had already zeroed the state it stored).
`states` holds the state after each step [B, T, ...]: exact after the last step of each life and
of the window (what any learner reads: the state to continue from, or the one a truncated
episode had reached), zero where a kind does not keep it (the LSTM's cell between boundaries).
Acting is T = 1. Every learner, the collector and every learned policy reach the recurrent
state through these functions only (`reset_ended` is the one place where an ended slot's state
is zeroed).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

State = tuple[torch.Tensor, ...]


class Memory(Protocol):
    def initial_state(self, batch: int, device: torch.device) -> State: ...

    def unroll(self, x: torch.Tensor, state0: State, is_init: torch.Tensor) -> tuple[torch.Tensor, State]: ...


def reset_ended(state: State, done: torch.Tensor) -> State:
    """A carried state ([1, N, ...] tensors) with the rows of the slots whose episode ended zeroed:
    a new life starts from nothing."""
    keep = (~done).float()[None, :, None]
    return tuple(part * keep for part in state)


def restored(saved: list[torch.Tensor]) -> State:
    """A carried state as a checkpoint holds it (`list(state)`), as the learner's own tensors."""
    return tuple(part.clone() for part in saved)


def is_init_of(done: torch.Tensor) -> torch.Tensor:
    """[B, T] true at the steps that begin a new life: those right after a step that ended one."""
    init = torch.zeros_like(done)
    init[:, 1:] = done[:, :-1]
    return init


def rows_of(state: State) -> State:
    """A carried state [1, N, ...] as the [N, ...] rows that windows store and `unroll` takes."""
    return tuple(part[0] for part in state)


class NoMemory(nn.Module):
    """Feed-forward: the output is the input, and there is no state."""

    def initial_state(self, batch: int, device: torch.device) -> State:
        return ()

    def unroll(self, x: torch.Tensor, state0: State, is_init: torch.Tensor) -> tuple[torch.Tensor, State]:
        return x, ()


def unroll_rnn(
    rnn: nn.LSTM | nn.GRU, x: torch.Tensor, state0: State, is_init: torch.Tensor
) -> tuple[torch.Tensor, State]:
    """The unroll of a batch-first nn.LSTM or nn.GRU, written once. Boundaries are rare, so the
    RNN runs over whole segments between the steps where any row begins a life: a few calls per
    window instead of one per step. The hidden state is kept after every step; the others (the
    LSTM's cell) after each segment's last step only."""
    lstm = isinstance(rnn, nn.LSTM)
    steps = x.shape[1]
    cuts = is_init[:, 1:].any(dim=0).nonzero().flatten().add(1).tolist() if steps > 1 else []
    outs = []
    tails = [torch.zeros(*x.shape[:2], rnn.hidden_size, device=x.device, dtype=x.dtype) for _ in state0[1:]]
    state = state0
    for start, stop in zip([0, *cuts], [*cuts, steps], strict=True):
        keep = (~is_init[:, start]).to(x.dtype)[:, None]
        kept = tuple((part * keep)[None] for part in state)
        out, new = rnn(x[:, start:stop], kept if lstm else kept[0])
        state = tuple(part[0] for part in (new if lstm else (new,)))
        outs.append(out)
        for tail, part in zip(tails, state[1:], strict=True):
            tail[:, stop - 1] = part
    hidden = torch.cat(outs, dim=1)
    return hidden, (hidden, *tails)


class LSTMMemory(nn.LSTM):
    """An nn.LSTM (batch first; its parameters keep nn.LSTM's names, so checkpoints are as
    before) that unrolls over stored windows, zeroing a row's state before each new life."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size, batch_first=True)

    def initial_state(self, batch: int, device: torch.device) -> State:
        zeros = torch.zeros(1, batch, self.hidden_size, device=device)
        return zeros, zeros.clone()

    def unroll(self, x: torch.Tensor, state0: State, is_init: torch.Tensor) -> tuple[torch.Tensor, State]:
        return unroll_rnn(self, x, state0, is_init)


class GRUMemory(nn.GRU):
    """As `LSTMMemory`, with a GRU (one state tensor)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size, batch_first=True)

    def initial_state(self, batch: int, device: torch.device) -> State:
        return (torch.zeros(1, batch, self.hidden_size, device=device),)

    def unroll(self, x: torch.Tensor, state0: State, is_init: torch.Tensor) -> tuple[torch.Tensor, State]:
        return unroll_rnn(self, x, state0, is_init)
