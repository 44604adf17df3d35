"""The `bertpipe` console script: quiet the libraries, then run the CLI.

A module of its own because pipeline/cli.py imports ML-metadata (and with it gRPC) at the top:
the quieting must come before that import, and importing the CLI module must not change the
environment of whoever imports it (tests, notebooks).
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from pipeline import quiet


def main(argv: Optional[Sequence[str]] = None) -> int:
    quiet.apply()
    from pipeline import cli  # pylint: disable=import-outside-toplevel  # after the quieting, on purpose

    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
