"""What every flow's command line shares: the workspace slot taken first, and one line per known failure.

The slot is taken before the flow starts (the flow's own claim then nests), so the temporary Prefect server a
command-line run starts is one of the run's processes: if the run is killed, the next run ends that server too.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from prefect import get_run_logger
from prefect.exceptions import FailedRun
from prefect.states import Failed

from flows.dvc_stages import StageFailed
from flows.workspace import DEFAULT_WAIT_MINUTES, WORKSPACE, claimed_workspace
from pipeline.errors import PipelineError

Result = TypeVar("Result")
# FailedRun: a flow (or a subflow) that ended in a Failed state whose message is its one line already.
KNOWN_FAILURES = (StageFailed, PipelineError, FailedRun)
# A stage's own `<stage>: error: <reason>` line, and DVC's `ERROR: <reason>`.
STAGE_ERROR = re.compile(r"^(?P<stage>[\w.:/-]+): error: (?P<reason>.*)$")
DVC_ERROR = re.compile(r"^ERROR: (?P<reason>.*)$")


def one_line(program: str, error: Exception) -> str:
    """`<program>: error: <stage>: <reason>`: the failing stage named once, DVC's message kept whole."""
    message = " ".join(str(error).split())
    if isinstance(error, FailedRun):  # a flow's own one line, from one_line_failures
        return message
    if match := STAGE_ERROR.match(message):
        message = f"{match['stage']}: {match['reason']}"
    elif match := DVC_ERROR.match(message):
        message = f"dvc: {match['reason']}"
    return f"{program}: error: {message}"


class KnownFailureFilter(logging.Filter):
    """Drops, on the terminal only, Prefect's records that carry a traceback of a failure already said in one
    line; Prefect's API log still gets them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], KNOWN_FAILURES))


def quiet_known_failures() -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(existing, KnownFailureFilter) for existing in handler.filters
            ):
                handler.addFilter(KnownFailureFilter())


def one_line_failures(program: str) -> Callable[[Callable], Callable]:
    """For a flow function (under `@flow`): a known failure ends the run in a Failed state whose message is its one
    line, the same the command line prints, so `prefect deployment run --watch`, the UI and `prefect flow-run
    inspect` show the reason rather than a traceback."""

    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def run(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except KNOWN_FAILURES as error:
                line = one_line(program, error)
                get_run_logger().error(line)
                return Failed(message=line)

        return run

    return decorate


def add_workspace_options(parser: argparse.ArgumentParser) -> None:
    """The options every flow's command line takes: which repository to run in, and how long to queue for it."""
    parser.add_argument("--workspace", default=str(WORKSPACE), help="the repository to run in (default: this one)")
    parser.add_argument(
        "--wait-minutes",
        type=float,
        default=DEFAULT_WAIT_MINUTES,
        help="how long to wait for a run that is using the workspace (default: %(default)s)",
    )


def run_flow_command(program: str, workspace: str, wait_minutes: float, start: Callable[[], Result]) -> Result:
    """Take the workspace slot, run the flow (`start`), and turn a known failure into one line and exit code 1.

    The line is printed at exit, after a temporary Prefect server has logged its stop: registered before that
    server exists, this exit handler runs after the server's, so the error is the last line on the terminal.
    """
    quiet_known_failures()
    failure: list[str] = []
    atexit.register(lambda: failure and print(failure[0], file=sys.stderr, flush=True))

    def say(line: str) -> None:
        print(f"{program}: {line}", file=sys.stderr, flush=True)

    try:
        with claimed_workspace(Path(workspace), f"{program} (command line)", wait_minutes, say):
            return start()
    except KNOWN_FAILURES as error:
        failure.append(one_line(program, error))
        sys.exit(1)
