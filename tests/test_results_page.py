"""docs/results.md shows exactly the figures recorded in benchmarks/results/learning.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_results_page_matches_the_recorded_results() -> None:
    spec = importlib.util.spec_from_file_location("results_page", ROOT / "benchmarks" / "results_page.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = json.loads(module.RESULTS.read_text())
    page = module.PAGE.read_text()
    assert module.render(page, results) == page, "run: python benchmarks/results_page.py"
    for level in results["levels"]:
        assert level in page
