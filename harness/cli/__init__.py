"""The `harness` command line: a thin Typer layer over the service layer (`harness.service`). Heavy modules are
imported inside the commands, so that `harness --help` starts fast. One module per group of verbs; every
`HarnessError` ends as one message and its fix on stderr, with the error's exit code; Ctrl-C as `interrupted`,
exit 130."""

from __future__ import annotations

import sys

# The verbs register themselves on `app` in this order, which is the order of `harness --help`.
from harness.cli import submission, evaluate, board, runs, gate, data, competition, server  # noqa: F401, I001  isort: skip
from harness.cli.render import app
from harness.errors import HarnessError


def main() -> None:
    try:
        app()
    except HarnessError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  fix: {exc.hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # outside a verb; Typer ends a verb's Ctrl-C as exit 130, silently
        print("interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except SystemExit as exc:
        if exc.code == INTERRUPTED:
            print("interrupted", file=sys.stderr)
        raise


INTERRUPTED = 130  # 128 + SIGINT, as shells report a process that Ctrl-C stopped


if __name__ == "__main__":
    main()
