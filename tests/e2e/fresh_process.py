"""``anyshot ARGS`` in a new interpreter, reporting which modules the command imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RUN_COMMAND = """
import json, sys
from search.cli import main
try:
    main(sys.argv[1:], prog_name="anyshot")
except SystemExit as exit:
    code = exit.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def run_fresh(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str, set[str]]:
    """Run ``anyshot ARGS`` in a new interpreter.

    Returns:
        Exit code, stdout, stderr (without the modules line) and the modules imported, each
        package's root included (so that ``{"torch"} & modules`` finds ``torch.nn`` too).
    """
    done = subprocess.run(
        [sys.executable, "-c", RUN_COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env=os.environ | (env or {}),
    )
    *lines, last = done.stderr.rstrip("\n").split("\n")
    outcome = json.loads(last)
    code = outcome["code"] if isinstance(outcome["code"], int) else 1
    modules = set(outcome["modules"])
    return code, done.stdout, "\n".join(lines), modules | {name.split(".")[0] for name in modules}
