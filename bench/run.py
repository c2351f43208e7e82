"""One entry point for every benchmark: ``python bench/run.py NAME [ARGS...]``.

Each benchmark is ``bench/<NAME>.py`` with a ``run(argv: list[str]) -> dict`` function that
measures its candidates side by side in one run and returns its figures, ``ratio`` first.
This script prints them and ends with the line ``NAME: ratio=X.XX key=value ...``.
Performance goals live here, never in timed unit tests.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if p.stem not in ("run", "__init__") and not p.stem.startswith("_"))


def format_result(name: str, result: dict) -> str:
    def fmt(value):
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    ordered = ["ratio"] + [key for key in result if key != "ratio"]
    return f"{name}: " + " ".join(f"{key}={fmt(result[key])}" for key in ordered if key in result)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python bench/run.py NAME [ARGS...]\nbenchmarks: {', '.join(available())}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    path = BENCH_DIR / f"{name}.py"
    if not path.is_file():
        print(f"unknown benchmark {name!r}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH_DIR))
    spec.loader.exec_module(module)
    result = module.run(rest)
    print(format_result(name, result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
