"""`make bench`: run every benchmark, then print one table from bench/results/*.json.

Each benchmark is its own process (``python -m bench.<name>``) so one that fails or runs out
of memory does not take the others with it; its rows are read back from the JSON it wrote.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BENCHES = ["clean", "dedup", "langfilter", "pii", "screen", "tokenizer", "trainer_cpu",
           "trainer_quality", "scaling"]


def rows_of(data) -> list[dict]:
    if isinstance(data, list):
        return data
    return list(data.get("rows", []))


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def main(argv: list[str]) -> int:
    names = argv or BENCHES
    failed = []
    for name in names:
        if not (Path(__file__).parent / f"{name}.py").exists():
            print(f"[bench] {name}: not present, skipped", flush=True)
            continue
        print(f"[bench] {name} ...", flush=True)
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", f"bench.{name}"])
        print(f"[bench] {name}: exit {proc.returncode} in {time.time() - t0:.0f}s", flush=True)
        if proc.returncode != 0:
            failed.append(name)
    header = ("benchmark", "row", "figure", "baseline", "ratio", "target", "met")
    table = []
    for path in sorted(RESULTS.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        for row in rows_of(data):
            met = row.get("met")
            table.append((path.stem, str(row.get("name", "")),
                          f"{fmt(row.get('figure'))} {row.get('unit') or ''}".strip(),
                          fmt(row.get("baseline")), fmt(row.get("ratio")),
                          str(row.get("target") or "-"),
                          "yes" if met is True else "NO" if met is False else "-"))
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h)
              for i, h in enumerate(header)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
