"""`python -m convcli` and the `convcli` command: the CLI, where a Ctrl-C while it is still
loading ends as one during a run does (one line, exit 130, no traceback)."""

import sys


def run() -> None:
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    main(prog_name="convcli")


if __name__ == "__main__":
    run()
