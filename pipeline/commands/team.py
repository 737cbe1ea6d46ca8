"""`fashion-team`: the team's DVC remote and model registry (pipeline/team/, docs/team.md).

    fashion-team pull [--if-configured]  fetch everything the pipeline and the pool track from the default DVC
                                         remote (`make pipeline` runs it before `dvc repro`)
    fashion-team push                    send the DVC remote what it lacks, then push the branch and the
                                         registry's tags to the git remote
    fashion-team rollback [--to VERSION] put the version in use before this one (or VERSION) back in use:
                                         params, model and reports, registered as a new assignment to prod
    fashion-team update [--clone DIR]    bring a worker's clone level with the remotes: the branch and the
                                         registry's tags from git, then the data from DVC; prints the clone's
                                         folder (prefect.yaml's pull step runs it before every flow run)

Every failure is one line naming the remote or the file, with a non-zero exit; nothing local is lost.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pipeline.cli import run_command
from pipeline.errors import PipelineError
from pipeline.team.publish import publish
from pipeline.team.registry import roll_back
from pipeline.team.remote import RemoteFailed, default_remote, pull
from pipeline.team.sync import catch_up
from pipeline.workspace_slot import workspace_slot

# A worker's clone: where its flow runs work. The checkout the worker's environment was installed from by default.
CLONE_VARIABLE = "FASHION_MNIST_CLONE"
CHECKOUT = Path(__file__).resolve().parents[2]


def configure(parser: argparse.ArgumentParser) -> None:
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument(
        "--wait-minutes", type=float, default=60.0, help="wait this long for a run holding the workspace"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    pulling = actions.add_parser(
        "pull", parents=[waiting], help="fetch what the default DVC remote has for this commit"
    )
    pulling.add_argument(
        "--if-configured", action="store_true", help="with no default remote, say so and succeed (make pipeline)"
    )
    actions.add_parser(
        "push", parents=[waiting], help="push to the DVC remote, then the branch and the registry's tags to git"
    )
    rolling = actions.add_parser(
        "rollback", parents=[waiting], help="put the previous registered model version back in use"
    )
    rolling.add_argument("--to", metavar="VERSION", help="the version to put back, e.g. v0.0.1 (gto show model)")
    updating = actions.add_parser(
        "update", parents=[waiting], help="bring this clone level with the git and DVC remotes (a worker's pull step)"
    )
    updating.add_argument(
        "--clone",
        type=Path,
        default=Path(os.environ.get(CLONE_VARIABLE, CHECKOUT)),
        help=f"the clone to update (default: ${CLONE_VARIABLE}, else the checkout this command runs from: %(default)s)",
    )


def pull_from_remote(root: Path, if_configured: bool, say) -> None:
    remote = default_remote(root)
    if remote is None:
        if if_configured:
            say("no DVC remote configured: the pipeline builds everything here (docs/team.md sets one up)")
            return
        raise RemoteFailed(f"{root}: no default DVC remote: add one with `dvc remote add -d <name> <url>`")
    started = time.monotonic()
    pull(root, remote)
    say(f"pulled from {remote} in {time.monotonic() - started:.1f} s")


def rollback(root: Path, version: str | None, wait_minutes: float, say) -> None:
    def pull_missing() -> None:
        remote = default_remote(root)
        if remote is None:
            raise RemoteFailed("not in the DVC cache, and there is no DVC remote to pull it from")
        pull(root, remote)

    with workspace_slot(root, "fashion-team rollback", wait_minutes, say):
        restored, replaced = roll_back(root, version, pull_missing)
    say(f"the model in use is {restored} again, in place of {replaced} (gto show model); a running fashion-serve swaps")
    try:
        publish(root, say)
    except PipelineError as error:
        raise PipelineError(f"rolled back here, but not pushed (the next push sends it): {error}") from None


def update(root: Path, wait_minutes: float) -> None:
    """Catch the clone up under its workspace slot (a run of this clone may be working in it); the progress on
    stderr, the clone's folder alone on stdout, for the pull step that moves there next."""

    def say(line: str) -> None:
        print(f"team: {line}", file=sys.stderr, flush=True)

    with workspace_slot(root, "fashion-team update (a flow run's pull step)", wait_minutes, say):
        catch_up(root, say)
    print(root, flush=True)


def main(argv: list[str] | None = None) -> None:
    def say(line: str) -> None:
        print(f"team: {line}", flush=True)

    def work(arguments: argparse.Namespace) -> None:
        root = Path.cwd()
        if arguments.action == "update":
            update(arguments.clone.resolve(), arguments.wait_minutes)
            return
        if arguments.action == "rollback":
            rollback(root, arguments.to, arguments.wait_minutes, say)
            return
        # Not while a flow run changes the workspace: DVC would refuse (its lock), or check out under the run.
        with workspace_slot(root, f"fashion-team {arguments.action}", arguments.wait_minutes, say):
            if arguments.action == "pull":
                pull_from_remote(root, arguments.if_configured, say)
            else:
                publish(root, say)

    run_command("team", configure, work, argv)


if __name__ == "__main__":
    main()
