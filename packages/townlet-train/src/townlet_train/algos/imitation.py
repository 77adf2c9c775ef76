"""Imitation: the update that behaviour cloning (run/bc.py, from a dataset) and DAgger
(dagger.py) both make: masked cross-entropy toward a teacher's labels.

Plain BC learns only the states the teacher visits; the student's own mistakes take it to
states the teacher never showed, and its errors compound (a study measured 220 of L1's 500
steps). DAgger (Ross et al. 2011) lets the student act and has the teacher label every state
the student visits: with probability beta (annealed to 0) the teacher's action is executed
instead, so early data stays near good trajectories. The teacher is `ScriptedPolicy`, which
reads the Town's true state; on L2/L3 it is privileged (it sees what the student's window
hides), which DAgger allows: only the labels come from it.

Both minimise masked cross-entropy: illegal actions get probability 0, so the student never
spends capacity on them and greedy acting picks among legal actions only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from townlet_train.models import masked_logits


def masked_cross_entropy(
    logits: torch.Tensor, mask: torch.Tensor, label: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy of the teacher's labels under the masked softmax, label accuracy)."""
    masked = masked_logits(logits, mask)
    loss = F.cross_entropy(masked, label)
    accuracy = (masked.argmax(dim=-1) == label).float().mean()
    return loss, accuracy


def descend(
    optimizer: torch.optim.Optimizer,
    logits: torch.Tensor,
    batch: dict[str, torch.Tensor],
    grad_clip: float,
    extra: torch.Tensor | None = None,
) -> dict[str, float]:
    """One step of masked cross-entropy of `logits` [B, A] toward the labels (plus an `extra`
    loss, if any) on the optimizer's parameters; shared by BC, DAgger and recurrent DAgger
    (whose logits come from unrolled windows)."""
    loss, accuracy = masked_cross_entropy(logits, batch["mask"], batch["label"])
    optimizer.zero_grad(set_to_none=True)
    (loss if extra is None else loss + extra).backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return {"loss": float(loss.detach()), "accuracy": float(accuracy), "grad_norm": float(grad_norm)}


def clone_step(
    network: nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], grad_clip: float
) -> dict[str, float]:
    return descend(optimizer, network(batch["obs"]), batch, grad_clip)
