"""The fault suite's report as a Markdown table (for docs/RELIABILITY.md).

.venv/bin/python -m tests.faults.report faults-report.jsonl
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson


def table(rows: list[dict[str, object]]) -> str:
    head = "| scenario | guarantee | records | results | missing | duplicates | dead letters |"
    lines = [head + " reproduce |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        env = "PACKFLOW_FAULTS=full " if r["full"] else ""
        command = f'`{env}.venv/bin/pytest "{r["test"]}"`'
        lines.append(
            f"| {r['scenario']} | {r['guarantee']} | {r['records']:,} | {r['results']:,} "
            f"| {r['missing']} | {r['duplicates']:,} | {r['dead_letters']:,} | {command} |"
        )
    return "\n".join(lines)


def main(path: str) -> None:
    rows = [orjson.loads(line) for line in Path(path).read_bytes().splitlines() if line]
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    form = "full" if all(r["full"] for r in rows) else "short"
    print(f"Fault suite ({form} form), {when}, commit {commit}:\n")
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "faults-report.jsonl")
