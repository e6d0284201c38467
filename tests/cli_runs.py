"""The CLI run in-process through click's CliRunner, as the e2e and integration tests use it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from search.cli import main


def run(*args: str) -> tuple[int, str, str]:
    """``anyshot ARGS``: (exit code, stdout, stderr); exceptions propagate as tracebacks."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def json_lines(stdout: str) -> list[dict]:
    """One JSON object per line of a command's ``--json`` output."""
    return [json.loads(line) for line in stdout.strip().splitlines()]
