#!/usr/bin/env python3
"""How long `bertpipe lineage runs` takes from a cold process, and what reading the metrics costs.

    .venv/bin/python benchmarks/bench_lineage.py --metadata_path outputs/metadata.sqlite [--repeats 5]

Each repeat is a fresh interpreter, as a user's command is, started without the Makefile's
variables (the console script sets its own). Printed: the median wall time of
  1. `bertpipe lineage runs` (the console script's path: metrics read from TFMA's files
     without TensorFlow or TFMA),
  2. the same query with the metrics read by TFMA's own loader (tfma.load_eval_result,
     which imports TensorFlow) - what the command cost before,
and their ratio. Needs a store with at least one evaluated run (e.g. after `make run`).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LIGHT = """
import sys
from pipeline.entry_point import main
sys.exit(main(["lineage", "runs", "--metadata_path", sys.argv[1]]))
"""
# The query with TFMA's loader as the metrics reader (the pre-change path), same rendering.
WITH_TFMA = """
import sys
from pipeline import quiet
quiet.apply()
from components.evaluator.names import METRIC_NAMES
from components.lineage import queries, render, store

def tfma_reader(uri):
    import tensorflow_model_analysis as tfma
    result = tfma.load_eval_result(uri)
    [overall] = [m for key, m in result.slicing_metrics if key == ()]
    return {n: v["doubleValue"] for by_sub in overall.values() for ms in by_sub.values()
            for n, v in ms.items() if n in METRIC_NAMES}

snapshot = store.read_snapshot(store.connect(store.sqlite_connection_config(sys.argv[1]), sys.argv[1]),
                               "bert-pretraining", sys.argv[1])
rows = queries.runs(snapshot, metrics_reader=tfma_reader)
assert any(r["metrics"] for r in rows), rows
"""


def _time(code: str, metadata_path: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")}
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, metadata_path], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metadata_path", required=True, help="SQLite ML-metadata store of a local run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not os.path.exists(args.metadata_path):
        parser.error(f"--metadata_path {args.metadata_path} does not exist (run `make run` first)")
    light = statistics.median(_time(LIGHT, args.metadata_path) for _ in range(args.repeats))
    heavy = statistics.median(_time(WITH_TFMA, args.metadata_path) for _ in range(args.repeats))
    print(f"bertpipe lineage runs, cold process, median of {args.repeats}:")
    print(f"  metrics read from the files (no TensorFlow):  {light:6.2f} s")
    print(f"  metrics read with TFMA's loader (imports TF): {heavy:6.2f} s")
    print(f"  ratio: {heavy / light:.1f}x")


if __name__ == "__main__":
    main()
