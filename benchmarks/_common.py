"""Shared by the benchmark scripts: where the data sets are; training recorded runs in child
processes, resumably; writing the report."""
from __future__ import annotations

import os
import sys
from pathlib import Path

DATA = Path(os.environ.get("RNNLAB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """A file or folder of the shared data sets; exits with a message if it is absent."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        sys.exit(f"benchmark data not found at {p}; set RNNLAB_DATA to the folder holding it")
    return p


def train_run(args, run_dir: Path):
    """``rnnlab train ARGS --out RUN_DIR --force`` in a child process on one thread; returns
    (its summary.json, wall seconds, the command). Exits with the child's error if it fails."""
    import json
    import subprocess
    import time
    cmd = [sys.executable, "-m", "rnnlab", "train", *args, "--out", str(run_dir), "--force"]
    t0 = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads((Path(run_dir) / "summary.json").read_text()), time.time() - t0, cmd


def train_recorded(out: Path, specs: list, key, train, jobs: int, say) -> list:
    """Train every spec whose record is not yet in OUT/results.jsonl, ``jobs`` at a time (0: none,
    only report), appending each record as it finishes, so that an interrupted benchmark resumes.
    ``key(spec)`` and ``key(record)`` name a run; ``train(spec)`` returns its record; ``say(record)``
    is the line printed for it. Returns the records of ``specs`` in their order."""
    import json
    from concurrent.futures import ThreadPoolExecutor
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.jsonl"
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done[key(r)] = r
    todo = [s for s in specs if key(s) not in done] if jobs else []
    print(f"{len(done)} runs recorded, {len(todo)} to train", flush=True)

    def work(spec):
        r = train(spec)
        with open(path, "a") as f:
            f.write(json.dumps(r) + "\n")
        print(say(r), flush=True)
        return r

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        for r in pool.map(work, todo):
            done[key(r)] = r
    return [done[key(s)] for s in specs if key(s) in done]


def write_report(out: Path, table: str, results=None) -> str:
    """OUT/table.md (and OUT/report.json of ``results``); returns the table."""
    import json
    (out / "table.md").write_text(table + "\n")
    if results is not None:
        with open(out / "report.json", "w") as f:
            json.dump(results, f, indent=1)
    return table
