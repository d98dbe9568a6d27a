"""benchmarks/RESULTS.md is exactly what benchmarks/render.py makes of benchmarks/results.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def test_results_md_is_rendered_from_results_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # render.py imports its sibling _common
    spec = importlib.util.spec_from_file_location("bench_render", BENCHMARKS / "render.py")
    assert spec is not None
    assert spec.loader is not None
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    data = json.loads((BENCHMARKS / "results.json").read_text())
    assert render.render(data) == (BENCHMARKS / "RESULTS.md").read_text()
