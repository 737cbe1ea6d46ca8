"""What every entry point in pipeline/stages/ and pipeline/commands/ shares: parse paths, run, turn failures into one
line and exit 1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.process_guard import end_with_starters


def run_command(
    name: str,
    configure: Callable[[argparse.ArgumentParser], None],
    work: Callable[[argparse.Namespace], None],
    argv: list[str] | None = None,
) -> None:
    """Run the stage or command `name`'s `work` with arguments from `configure`, exiting non-zero with a one-line
    reason."""
    parser = argparse.ArgumentParser(prog=program_name(name))
    parser.add_argument(
        "--params", default=Path("params.yaml"), type=Path, help="the params file (default: %(default)s)"
    )
    configure(parser)
    arguments = parser.parse_args(argv)
    end_with_starters(name)  # a killed `dvc repro` or flow run takes its stages with it
    try:
        work(arguments)
    except PipelineError as error:
        _exit(name, str(error))
    except OSError as error:
        # File-system failures name their file; that is the useful part for the user.
        where = f"{error.filename}: " if error.filename else ""
        _exit(name, f"{where}{error.strerror or error}")


def program_name(name: str) -> str:
    """How the user started it, for its usage line: `python -m <module>`, or an installed script's name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.startswith("pipeline."):
        return f"python -m {spec.name}"
    return Path(sys.argv[0]).name or name


def _exit(stage: str, message: str) -> None:
    print(f"{stage}: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(1)
