#!/usr/bin/env python3
"""Runs the `run:` steps of GitHub workflow jobs in order, as GitHub's runner does: each in
`bash --noprofile --norc -eo pipefail`, with the workflow's, the job's and the step's `env:`, and
GITHUB_STEP_SUMMARY set; `uses:` steps are reported, not run (the caller provides what they
would: a checkout and Python). Used by .ci/check-like-github.

    python .ci/workflow_steps.py WORKFLOW JOB [JOB ...] [--expr 'job.services.mariadb.ports[3306]=33306']

A `${{ ... }}` expression must be given with --expr, or be made of `github.event.*`, `vars.*`
and `secrets.*` operands, which are empty when not given (as on GitHub for a scheduled run and
an unset variable); any other stops the run, so nothing is run with a guessed value.
Exit status: the first failing step's.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _substitute(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        expression = match.group(1).replace('"', "'")
        if expression in values:
            return values[expression]
        # `a || b || 'default'` as a scheduled run sees it: the first given operand, else the literal.
        for operand in (o.strip() for o in expression.split("||")):
            if operand in values and values[operand]:
                return values[operand]
            if operand.startswith("'") and operand.endswith("'"):
                return operand[1:-1]
            if not operand.startswith(("github.event.", "vars.", "secrets.")):
                break
        else:
            return ""
        raise SystemExit(f"workflow_steps: no value for the expression ${{{{ {match.group(1)} }}}}; give --expr")
    return EXPRESSION.sub(one, str(text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow")
    parser.add_argument("jobs", nargs="+")
    parser.add_argument("--expr", action="append", default=[], metavar="EXPRESSION=VALUE")
    args = parser.parse_args()
    values = dict(item.split("=", 1) for item in args.expr)
    values = {k.replace('"', "'"): v for k, v in values.items()}
    with open(args.workflow, encoding="utf-8") as f:
        workflow = yaml.safe_load(f)
    summary = tempfile.NamedTemporaryFile(prefix="step-summary-", suffix=".md", delete=False).name
    for job_name in args.jobs:
        job = workflow["jobs"][job_name]
        env = dict(os.environ)
        for scope in (workflow.get("env") or {}, job.get("env") or {}):
            env.update({k: _substitute(v, values) for k, v in scope.items()})
        env["GITHUB_STEP_SUMMARY"] = summary
        failed = None
        for step in job["steps"]:
            name = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
            if "uses" in step:
                print(f"== {job_name}: {name}: provided by the caller (not run)", flush=True)
                continue
            if failed is not None and "always()" not in str(step.get("if", "")):
                continue
            print(f"== {job_name}: {name}", flush=True)
            step_env = dict(env, **{k: _substitute(v, values) for k, v in (step.get("env") or {}).items()})
            status = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                                     _substitute(step["run"], values)], env=step_env).returncode
            if status and failed is None:
                print(f"== {job_name}: step '{name}' failed with exit code {status}", flush=True)
                failed = status
        if failed is not None:
            return failed
        print(f"== {job_name}: all steps passed", flush=True)
    print(f"== step summary ({summary}):\n{open(summary).read()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
