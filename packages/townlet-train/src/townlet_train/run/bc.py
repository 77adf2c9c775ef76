"""Behaviour cloning's run: masked cross-entropy (algos/imitation.py) on a verified dataset
(`townlet-train capture`), no env loop; one checkpoint that `townlet-train eval` plays and PPO
can start from (`init_from`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from townlet_env import TownletVectorEnv
from townlet_train.algos.imitation import clone_step
from townlet_train.config import BCSettings, load_config
from townlet_train.dataset import load_dataset
from townlet_train.models import ActorCritic, build_network
from townlet_train.run import checkpoint as ckpt
from townlet_train.run.loop import resolve_device, write_resolved_config


def train_bc(
    dataset: Path, run_dir: Path, updates: int | None = None, seed: int = 0, device: str = "cpu"
) -> dict[str, Any]:
    """Behaviour cloning: masked cross-entropy on a verified dataset; writes one checkpoint that
    `townlet-train eval` plays (and that PPO can start from with `init_from`)."""
    data, manifest = load_dataset(dataset)
    algorithm = {"kind": "bc", "dataset": str(dataset), **({"updates": updates} if updates else {})}
    cfg = load_config(
        None,
        level=manifest["level_source"],
        seed=seed,
        device=device,
        algorithm=algorithm,
        network__kind="mlp",
    )
    settings = cfg.algorithm
    assert isinstance(settings, BCSettings)
    dev = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = torch.Generator(device=dev).manual_seed(cfg.seed + 1)
    env = TownletVectorEnv(cfg.level, 1, agents_per_town=1)
    net = cfg.network
    network = build_network(
        net.kind, env.observation_layout, env.level.n_actions, net.hidden, net.field_embed, 0, "bc"
    ).to(dev)
    assert isinstance(network, ActorCritic)
    optimizer = torch.optim.Adam(network.actor_parameters(), lr=settings.lr, fused=True)
    samples = {"obs": data["obs"].to(dev), "mask": data["mask"].to(dev), "label": data["action"].to(dev)}
    rows = samples["label"].shape[0]
    stats: dict[str, float] = {}
    for _ in range(settings.updates):
        index = torch.randint(0, rows, (settings.batch_size,), generator=rng, device=dev)
        stats = clone_step(network, optimizer, {k: v[index] for k, v in samples.items()}, settings.grad_clip)
    write_resolved_config(cfg, run_dir)
    payload = {
        "level": env.level.name,
        "level_hash": env.level.content_hash,
        "algorithm": "bc",
        "config": cfg.model_dump(mode="json"),
        "timestamp": time.time(),
        "device": dev.type,
        "counters": {"updates": settings.updates, "samples": rows},
        "dataset": {
            "path": str(dataset),
            "policy": manifest["policy"],
            "agent_steps": manifest["agent_steps"],
        },
        "network": network.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    path = ckpt.save_checkpoint(payload, run_dir / "checkpoints", f"step_{settings.updates:012d}", keep=3)
    return {"checkpoint": str(path), "updates": settings.updates, "samples": rows, **stats}
