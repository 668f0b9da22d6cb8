"""Wall time of the README's main job (`harness run` on the default spec), per suite and per cell.

Runs `harness run` in a fresh temporary store (so nothing is reused) and prints a table of
the recorded wall time of every cell, the sum per suite, and the end-to-end time of the
command. The target: the whole default run in <= 10 minutes on 2 CPU cores.

    python benchmarks/main_run.py [--keep DIR] [-- extra harness run flags]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep", help="Use this folder for the store and leaderboards (kept afterwards).")
    p.add_argument("extra", nargs="*", help="Extra flags for `harness run` (after --).")
    args = p.parse_args()
    from tabulate import tabulate

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        cmd = [sys.executable, "-m", "harness.cli", "run", "--no-progress", "--output-dir", str(root / "results"),
               "--leaderboard-dir", str(root / "leaderboards"), *args.extra]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        rows, per_suite = [], defaultdict(float)
        for path in sorted((root / "results" / "records").glob("*/*.json")):
            rec = json.loads(path.read_text())
            cell = rec["cell"]
            w = rec["provenance"]["wall_time_s"]
            per_suite[cell["suite"]] += w
            rows.append([cell["suite"], rec["label"], cell["model"], cell["seed"], rec["status"], f"{w:.1f}"])
    print(tabulate(rows, headers=["suite", "row", "model", "seed", "status", "cell wall s"]))
    print()
    print(tabulate([[s, f"{t:.1f}"] for s, t in sorted(per_suite.items())] + [["(command end to end)", f"{wall:.1f}"]],
                   headers=["suite", "wall s"]))
    verdict = "within" if wall <= 600 else "OVER"
    print(f"\nmain job: {wall / 60:.1f} min end to end ({verdict} the 10-minute target); exit code {proc.returncode}")
    if proc.returncode not in (0, 1):
        print(proc.stderr[-2000:], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
