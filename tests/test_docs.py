"""The documentation is executable and its numbers come from the code.

* Every ```python block of README.md and docs/*.md runs: the blocks of one file in order, in
  one shared namespace, in a temporary working directory. A block whose info string is
  `python no-run` is skipped (keep that for things such as GPU-only snippets). Shell and
  console blocks are not run here.
* Relative links between the pages resolve.
* The generated tables (meters, affordances, levels, observation layouts) match the built-in
  packs row for row, and the config reference names every field of every pack model.
  `python tests/test_docs.py` prints the current tables, to paste into the pages after a
  change to a pack.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
DOCS = [p for p in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))) if p.is_file()]

OPEN_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")


@dataclass(frozen=True)
class Block:
    language: str
    flags: tuple[str, ...]
    line: int  # 1-based line of the first line of code
    code: str


def fenced_blocks(text: str) -> list[Block]:
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = OPEN_FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence = match["fence"]
        words = match["info"].split()
        start = i + 1
        i = start
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while i < len(lines) and not close.match(lines[i]):
            i += 1
        language = words[0].lower() if words else ""
        blocks.append(Block(language, tuple(words[1:]), start + 1, "\n".join(lines[start:i]) + "\n"))
        i += 1
    return blocks


def python_blocks(path: Path) -> list[Block]:
    return [b for b in fenced_blocks(path.read_text()) if b.language == "python"]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


DOCS_WITH_PYTHON = [p for p in DOCS if python_blocks(p)]


def test_docs_exist() -> None:
    names = {rel(p) for p in DOCS}
    for page in (
        "README.md",
        "docs/index.md",
        "docs/meters.md",
        "docs/cascades.md",
        "docs/affordances.md",
        "docs/levels.md",
        "docs/observations.md",
        "docs/vector-env.md",
        "docs/config-reference.md",
        "docs/cli.md",
    ):
        assert page in names, f"{page} is missing"


@pytest.mark.parametrize("doc", DOCS_WITH_PYTHON, ids=rel)
def test_python_examples_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    for block in python_blocks(doc):
        if "no-run" in block.flags:
            continue
        # Pad with blank lines so that a traceback's line numbers are the markdown file's.
        source = "\n" * (block.line - 1) + block.code
        code = compile(source, str(doc), "exec")
        try:
            exec(code, namespace)
        except Exception as exc:
            pytest.fail(
                f"{rel(doc)}: the example starting at line {block.line} raised "
                f"{type(exc).__name__}: {exc}\n\n{block.code}"
            )


LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_relative_links_resolve(doc: Path) -> None:
    text = doc.read_text()
    # links inside code blocks are examples, not links
    text = re.sub(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1\s*$", "", text, flags=re.M | re.S)
    broken = []
    for match in LINK.finditer(text):
        target = match["target"]
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if not (doc.parent / path).exists():
            broken.append(target)
    assert not broken, f"{rel(doc)} links to missing files: {broken}"


# --- tables that must match the packs ----------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:g}"


def _deltas(deltas: dict[str, float], signed: bool = True) -> str:
    if not deltas:
        return "-"
    fmt = "{} {:+g}" if signed else "{} {:g}"
    return ", ".join(fmt.format(name, value) for name, value in deltas.items())


def meter_rows(level: str = "L1_full_observability") -> list[str]:
    from townlet_env import load_level

    rows = []
    for m in load_level(level).meters.meters:
        rows.append(f"| {m.name} | {_num(m.initial)} | {_num(m.drain)} | {'yes' if m.terminal else 'no'} |")
    return rows


def affordance_rows(level: str = "L1_full_observability") -> list[str]:
    from townlet_env import compile_level

    compiled = compile_level(level)
    rows = []
    for a, spec in enumerate(compiled.config.affordances.affordances):
        hours = "always" if spec.hours == "always" else f"{spec.hours[0]}-{spec.hours[1]}"
        cost = _deltas(spec.cost, signed=False) if spec.cost else "free"
        total = {
            name: value
            for name, value in zip(compiled.meter_names, compiled.aff_instant_delta[a].tolist(), strict=True)
            if abs(value) > 1e-9
        }
        instant = ", ".join(f"{name} {value:+.4g}" for name, value in total.items())
        rows.append(
            f"| {spec.name} | {hours} | {spec.ticks} | {cost} | {_deltas(spec.effects)} | "
            f"{_deltas(spec.completion)} | {instant} |"
        )
    return rows


def level_rows() -> list[str]:
    from townlet_env import builtin_levels, compile_level

    rows = []
    for name in builtin_levels():
        lv = compile_level(name)
        cfg = lv.config
        rows.append(
            f"| `{name}` | {lv.width}x{lv.height} | {lv.n_meters} | {lv.n_affordances} | {lv.n_actions} | "
            f"{'24 ticks' if lv.day_cycle else 'no'} | {cfg.world.interaction.replace('_', '-')} | "
            f"{lv.layout.encoding} | {lv.layout.size} | {lv.max_steps} |"
        )
    return rows


def layout_rows(level: str) -> list[str]:
    from townlet_env import compile_level

    layout = compile_level(level).layout
    return [f"| `{f.name}` | {f.offset} | {f.size} | {list(f.shape)} |" for f in layout.fields]


def _assert_rows(page: str, rows: list[str]) -> None:
    text = (ROOT / page).read_text()
    missing = [row for row in rows if row not in text]
    assert not missing, (
        f"{page} is out of date with the packs; these rows are missing "
        "(run `python tests/test_docs.py` for the current tables):\n" + "\n".join(missing)
    )


def test_meter_table_matches_pack() -> None:
    _assert_rows("docs/meters.md", meter_rows())


def test_affordance_table_matches_pack() -> None:
    _assert_rows("docs/affordances.md", affordance_rows())


def test_level_table_matches_packs() -> None:
    _assert_rows("docs/levels.md", level_rows())


@pytest.mark.parametrize(
    "level", ["L0_minimal", "L0_5_dual_resource", "L1_full_observability", "L4_social", "L5_town"]
)
def test_observation_layout_table_matches_code(level: str) -> None:
    _assert_rows("docs/observations.md", layout_rows(level))


def test_l1_family_shares_one_layout() -> None:
    # observations.md documents one table for L1-L3
    from townlet_env import compile_level

    layouts = {compile_level(n).layout.fields for n in ("L1_full_observability", "L2_partial_observability")}
    layouts.add(compile_level("L3_temporal_mechanics").layout.fields)
    assert len(layouts) == 1


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and every model nested in its fields (lists, unions, Annotated)."""
    found: list[type[BaseModel]] = [model]

    def walk(tp: object) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp not in found:
                found.append(tp)
                for field in tp.model_fields.values():
                    walk(field.annotation)
            return
        for arg in typing.get_args(tp):
            walk(arg)

    for field in model.model_fields.values():
        walk(field.annotation)
    return found


def test_config_reference_names_every_field() -> None:
    from townlet_env.config.loader import OPTIONAL_PACK_FILES
    from townlet_env.config.schema import PACK_FILES

    text = (ROOT / "docs/config-reference.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)
    missing = []
    for file, model in {**PACK_FILES, **OPTIONAL_PACK_FILES}.items():
        section = next((s for s in sections if s.startswith(f"`{file}`")), None)
        if section is None:
            missing.append(f"section ## `{file}`")
            continue
        for sub in _models(model):
            for name in sub.model_fields:
                if not re.search(rf"^\| `{re.escape(name)}` \|", section, flags=re.M):
                    missing.append(f"{file}: {sub.__name__}.{name}")
    assert not missing, "docs/config-reference.md does not document: " + ", ".join(missing)


if __name__ == "__main__":
    print("docs/meters.md (L1-L3):", *meter_rows(), sep="\n")
    print("\ndocs/affordances.md (L1-L3):", *affordance_rows(), sep="\n")
    print("\ndocs/levels.md:", *level_rows(), sep="\n")
    for lvl in ("L0_minimal", "L0_5_dual_resource", "L1_full_observability", "L4_social"):
        print(f"\ndocs/observations.md ({lvl}):", *layout_rows(lvl), sep="\n")
