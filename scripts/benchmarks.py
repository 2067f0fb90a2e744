"""Run every benchmark of the project and write ``reports/benchmarks.md`` (``make bench``).

Each benchmark runs as its own ``python -m bot bench ...`` process; its JSON lines, exit status and
duration go into the report, with the date and the machine. A benchmark that fails is reported and
the others still run; the exit status is 1 when any failed.

Environment:
  BENCH_SKIP_NLU=1          leave out the NLU benchmark (trains the model from scratch, about 2 minutes)
  BENCH_ANN_SIZES=...       catalog sizes for `bench ann` (default: its own, up to 1,000,000)
  BENCH_LOAD_SHOPPERS=50    simulated shoppers for `bench load`
  BENCH_LOAD_MINUTES=5      minutes for `bench load`
  BENCH_ONLY=load,ann       run only these (names as in the report)
  BENCH_REPORT=path         where to write the report (default reports/benchmarks.md)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEARCH_DEV = ROOT.parent / "shared" / "datasets" / "search-dev"


def benchmarks() -> list[tuple[str, list[str], str]]:
    """(name, arguments after ``python -m bot bench``, why it is skipped or "")."""
    env = os.environ
    ann = ["ann"] + (["--sizes", env["BENCH_ANN_SIZES"]] if env.get("BENCH_ANN_SIZES") else [])
    found = SEARCH_DEV.exists()
    return [
        ("search", ["search"],
         "" if found else f"{SEARCH_DEV} is missing (the shared datasets live next to the checkout)"),
        ("ann", ann, ""),
        ("escalation", ["escalation"], ""),
        ("recommend", ["recommend"], ""),
        ("nlu", ["nlu", "--calibrate"],
         "BENCH_SKIP_NLU is set" if env.get("BENCH_SKIP_NLU", "").lower() not in ("", "0", "no", "false") else ""),
        ("load", ["load", "--shoppers", env.get("BENCH_LOAD_SHOPPERS", "50"),
                  "--minutes", env.get("BENCH_LOAD_MINUTES", "5")], ""),
    ]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with_model = Path("/proc/cpuinfo")
    if with_model.exists():
        names = [line.split(":", 1)[1].strip() for line in with_model.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        memory = f", {kb / 1024 / 1024:.1f} GiB memory"
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu}){memory}, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return out + (" (with uncommitted changes)" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_one(args: list[str]) -> tuple[int, list[dict], str, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "bot", "bench", *args], cwd=ROOT, capture_output=True, text=True)
    rows = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                rows.append(json.loads(line))
    return proc.returncode, rows, proc.stderr[-2000:], time.monotonic() - start


def main() -> int:
    only = {n.strip() for n in os.environ.get("BENCH_ONLY", "").split(",") if n.strip()}
    report = Path(os.environ.get("BENCH_REPORT", ROOT / "reports" / "benchmarks.md"))
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sections, failed = [], []
    for name, args, skip in benchmarks():
        if only and name not in only:
            continue
        command = "python -m bot bench " + shlex.join(args)
        if skip:
            print(f"== {name}: skipped ({skip})", flush=True)
            sections.append(f"## {name}\n\n`{command}`: skipped ({skip}).\n")
            continue
        print(f"== {name}: {command}", flush=True)
        code, rows, stderr, seconds = run_one(args)
        for row in rows:
            print(json.dumps(row), flush=True)
        body = "\n".join(json.dumps(row) for row in rows) or "(no JSON output)"
        status = "ok" if code == 0 else f"FAILED (exit status {code})"
        text = f"## {name}\n\n`{command}`: {status}, {seconds:.0f} s\n\n```json\n{body}\n```\n"
        if code != 0:
            failed.append(name)
            text += f"\nLast output on stderr:\n\n```\n{stderr.strip()}\n```\n"
            print(f"   {name} failed (exit status {code}):\n{stderr.strip()[-800:]}", file=sys.stderr, flush=True)
        sections.append(text)
    header = (f"# Benchmarks\n\nWritten by `make bench` (scripts/benchmarks.py) on {started:%Y-%m-%d %H:%M} UTC.\n\n"
              f"- Machine: {machine()}\n- Commit: {commit()}\n"
              f"- Failed: {', '.join(failed) if failed else 'none'}\n\n")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(header + "\n".join(sections))
    print(f"report written to {report}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
