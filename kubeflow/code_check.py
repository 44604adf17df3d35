"""The image is the commit: every task's container checks its code against the spec's first.

`bertpipe compile` records the code version of the checkout it compiles (the Trainer's
custom_config, the data steps' code_version parameter) and Vertex AI's cache keys on it. If
the image was built from other code, the spec would claim code the containers do not run. So
the compiled spec wraps each task's container command:

    python -m kubeflow.code_check --code_version '{"source_hash": ..., ...}' -- python -m tfx...

At container start this module computes the image's own code version (pipeline/code_version.py:
the hash of the sources installed in the image, the commit from BERTPIPE_GIT_COMMIT) and, when
the source hashes differ, exits 1 with one line naming both; otherwise it runs the command it
wraps (its `python` replaced by this interpreter, so `bertpipe run-spec` runs it with the
venv's). The source hash, not the commit, is the identity: the CI workflow reuses an image for
commits that change no code (docs, tests), and then the commits differ while the code is the
same; both are printed.

The training job a VertexBertTrainer launches is not wrapped (TFX's training client sets its
command); its replicas check the same in BertTrainerExecutor (components/trainer/component.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from components.code_identity import mismatch

ENTRY_MODULE = "kubeflow.code_check"


def wrap_commands(job: dict, code_version: dict) -> int:
    """Wraps every container executor's command of a compiled PipelineJob dict (in place) in
    the check; returns how many it wrapped. Importers and resolvers (run by Vertex AI itself,
    not in the image) are left alone."""
    expected = json.dumps({k: code_version.get(k) for k in ("package_version", "git_commit", "source_hash")},
                          sort_keys=True)
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    wrapped = 0
    for executor in executors.values():
        container = executor.get("container")
        if not container or not container.get("command"):
            continue
        if container["command"][:3] == ["python", "-m", ENTRY_MODULE]:
            continue
        container["command"] = ["python", "-m", ENTRY_MODULE, "--code_version", expected, "--",
                                *container["command"]]
        wrapped += 1
    return wrapped


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print(f"{ENTRY_MODULE}: usage: --code_version JSON -- COMMAND...", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog=ENTRY_MODULE)
    parser.add_argument("--code_version", required=True, help="the spec's code version (JSON)")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        print(f"{ENTRY_MODULE}: no command after --", file=sys.stderr)
        return 2
    from pipeline import code_version  # pylint: disable=import-outside-toplevel  # light: hashing only

    problem = mismatch(json.loads(args.code_version), code_version.current().to_dict())
    if problem:
        print(f"{ENTRY_MODULE}: {problem}", file=sys.stderr, flush=True)
        return 1
    if os.path.basename(command[0]) in ("python", "python3"):
        command[0] = sys.executable
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
