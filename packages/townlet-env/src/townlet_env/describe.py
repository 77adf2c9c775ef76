"""What `townlet-env inspect` shows: every rule of a compiled level, as data and as text.

`describe_level` gathers it as plain JSON-ready data (`inspect --json` prints that); the text
view, `render_description`, renders the same data, so the two cannot disagree.
"""

from __future__ import annotations

from typing import Any

from townlet_env.core import CompiledLevel


def describe_level(level: CompiledLevel) -> dict[str, Any]:
    """Everything `inspect` shows, as plain JSON-ready data (the text view renders this too)."""
    cfg = level.config
    per_use = level.aff_instant_delta.cpu().tolist()
    affordances = []
    for a, aff in enumerate(cfg.affordances.affordances):
        entry = aff.model_dump(mode="json")
        # What one INTERACT does in an instant level: ticks x (effects - cost) + completion.
        entry["per_use"] = {m: round(v, 6) for m, v in zip(level.meter_names, per_use[a], strict=True) if v}
        affordances.append(entry)
    reward = cfg.reward.reward.model_dump(mode="json")
    reward["formula"] = reward_formula(reward)
    layout = level.layout
    return {
        "name": level.name,
        "source": str(cfg.source),
        "hash": level.content_hash,
        "meters": [m.model_dump(mode="json") for m in cfg.meters.meters],
        "modulations": [m.model_dump(mode="json") for m in cfg.cascades.modulations],
        "cascade_groups": [g.model_dump(mode="json") for g in cfg.cascades.groups],
        "affordances": affordances,
        "actions": [{"index": i, **a.model_dump(mode="json")} for i, a in enumerate(cfg.actions.actions)],
        "world": cfg.world.model_dump(mode="json"),
        "reward": reward,
        "observation": {
            "encoding": layout.encoding,
            "views": cfg.observation.views,
            "window": layout.window,
            "other_agents": layout.other_agents,
            "affordance_channels": list(layout.channels),
        },
        "observation_size": layout.size,
        "observation_layout": [
            {"name": f.name, "offset": f.offset, "size": f.size, "shape": list(f.shape), "doc": f.doc}
            for f in layout.fields
        ],
        **({"social": cfg.social.model_dump(mode="json")} if cfg.social is not None else {}),
    }


def reward_formula(reward: dict[str, Any]) -> str:
    kind = reward["kind"]
    if kind == "product":
        text = " x ".join(reward["meters"])
    elif kind == "weighted_sum":
        centre = reward["centre"]
        terms = [
            f"{w:g} ({m} - {centre:g})" if centre else f"{w:g} {m}" for m, w in reward["weights"].items()
        ]
        text = " + ".join(([f"{reward['base']:g}"] if reward["base"] else []) + terms)
    else:
        bonus = " x ".join(reward["bonus_meters"]) or "1"
        text = (
            f"{reward['base']:g} + {reward['bonus']:g} x {bonus}"
            if reward["bonus"]
            else f"{reward['base']:g}"
        )
    clip = reward.get("clip")
    return text + (f", clipped to [{clip[0]:g}, {clip[1]:g}]" if clip else "") + " per tick while alive"


def _deltas(deltas: dict[str, float], sign: bool = True) -> str:
    return ", ".join(f"{m} {v:+g}" if sign else f"{m} {v:g}" for m, v in deltas.items()) or "-"


def _table(header: list[str], rows: list[list[Any]], indent: str = "  ") -> list[str]:
    if not rows:
        return [f"{indent}none"]
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _hours(hours: Any, day_cycle: bool) -> str:
    if hours == "always":
        return "always"
    open_, close = hours
    text = f"{open_}-{close}" + (f" ({open_:02d}:00-{close % 24:02d}:00)" if close > 24 else "")
    return text if day_cycle else f"{text} (no day cycle: always open)"


def render_description(info: dict[str, Any]) -> str:
    world = info["world"]
    out = [f"level {info['name']}  hash {info['hash'][:12]}", f"source {info['source']}", ""]

    out.append(f"meters ({len(info['meters'])}): drain per tick is multiplied by the difficulty")
    rows = [
        [m["name"], f"{m['initial']:g}", f"{m['drain']:g}", "yes" if m["terminal"] else ""]
        for m in info["meters"]
    ]
    out += [*_table(["name", "initial", "drain", "terminal"], rows), ""]

    out.append("modulations: target -= base * (offset + scale * (1 - source)) every tick")
    rows = [
        [f"{q['source']} -> {q['target']}", f"{q['base']:g}", f"{q['offset']:g}", f"{q['scale']:g}"]
        for q in info["modulations"]
    ]
    out += [*_table(["source -> target", "base", "offset", "scale"], rows), ""]

    out.append("cascades: when source < threshold, target -= strength * (threshold - source) / threshold")
    rows = [
        [g["name"], f"{c['source']} -> {c['target']}", f"{c['strength']:g}", f"{c['threshold']:g}"]
        for g in info["cascade_groups"]
        for c in g["cascades"]
    ]
    out += [*_table(["group", "source -> target", "strength", "threshold"], rows), ""]

    mode = "multi-tick: each INTERACT pays one tick" if world["interaction"] == "multi_tick" else "instant"
    out.append(
        f"affordances ({len(info['affordances'])}): cost and effects per tick, completion once ({mode})"
    )
    for a in info["affordances"]:
        out += [
            f"  {a['name']:<12} hours {_hours(a['hours'], world['day_cycle'])}, {a['ticks']} ticks",
            f"  {'':<12} cost/tick     {_deltas(a['cost'], sign=False)}",
            f"  {'':<12} effects/tick  {_deltas(a['effects'])}",
            f"  {'':<12} completion    {_deltas(a['completion'])}",
            f"  {'':<12} one full use  {_deltas(a['per_use'])}",
        ]
    out.append("")

    out.append(f"actions ({len(info['actions'])})")
    rows = [
        [a["index"], a["name"], a["kind"], a["delta"] or "", _deltas(a["effects"]) if a["effects"] else ""]
        for a in info["actions"]
    ]
    out += [*_table(["#", "name", "kind", "delta", "effects"], rows), ""]

    walls = ", ".join(f"[{x}, {y}]" for x, y in world["walls"]) or "none"
    out += [
        "world",
        f"  size {world['width']}x{world['height']}, max_steps {world['max_steps']}, "
        f"day cycle {'24 ticks' if world['day_cycle'] else 'none'}, interaction {world['interaction']}",
        f"  walls {walls}",
        "",
        f"reward ({info['reward']['kind']})",
        f"  {info['reward']['formula']}",
        "",
    ]
    if "social" in info:  # docs/social.md
        social = info["social"]
        terms = {k: v for k, v in social["reward"].items() if k != "clip" and v is not None}
        out += [
            f"social: towns of {social['population']}, chat fills '{social['meter']}'",
            f"  reward = clip({' + '.join(terms)}, {social['reward']['clip']}): {terms}",
            f"  chat {social['chat']}",
            f"  queue {social['queue']}",
            f"  personality {social['personality']}",
            f"  decay per tick {social['relationships']['decay']}",
            "",
        ]

    obs = info["observation"]
    out.append(
        f"observation: {info['observation_size']} floats, fills the '{obs['encoding']}' view "
        f"(layout reserves: {', '.join(obs['views'])}), window {obs['window']}, "
        f"{obs['other_agents']} other agents, {len(obs['affordance_channels'])} affordance channels"
    )
    rows = [
        [f["name"], f["offset"], f["size"], "x".join(map(str, f["shape"])), f["doc"]]
        for f in info["observation_layout"]
    ]
    out += _table(["field", "offset", "size", "shape", "doc"], rows)
    out.append(f"  channels: {', '.join(obs['affordance_channels'])}")
    return "\n".join(out)
