"""Runs one measurement of a benchmark in a fresh Python process and reads its JSON result."""
import json
import os
import subprocess
import sys
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_json(script: str, args: List[str]) -> Optional[dict]:
    """`python script *args` with the project on PYTHONPATH and TensorFlow's logs off: the last
    line it prints, parsed as JSON; None, with the end of its stderr printed, if it failed."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=env)
    if proc.returncode:
        print(proc.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])
