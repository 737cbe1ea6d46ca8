"""What a flow run shares with the team: the records it wrote, committed; a model it put in use, registered; both
pushed (pipeline/team/).

A failed push is a warning, never a failed run: everything stays committed locally, and the next run's push
sends what is still missing.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import DRIFT_HISTORY
from pipeline.errors import PipelineError
from pipeline.team.git import commit_files, current_branch
from pipeline.team.publish import publish
from pipeline.team.registry import committed_outputs, register_in_use, state_files


def relative(root: Path, path: Path) -> str:
    return str(path.resolve().relative_to(root))


@task(cache_policy=NO_CACHE)
def register_model_in_use(workspace: str, note: str, records: list[str]) -> str | None:
    """Commit the model in use's state with `records` (a decision, the drift history it adopted) and register it as
    the next version in prod, `note` saying why. Returns the version (None when it could not be registered)."""
    root, logger = Path(workspace), get_run_logger()
    paths = [*state_files(root), *(relative(root, root / record) for record in records), str(DRIFT_HISTORY)]
    try:
        version = register_in_use(root, paths, f"Model in use: {note}", note)
    except PipelineError as error:
        logger.warning("the model in use is not registered: %s", error)
        return None
    if version is None:
        logger.warning("the model in use is not registered: HEAD is detached, so a commit would be on no branch")
    else:
        logger.info("registered the model in use as model@%s, stage prod (gto show)", version)
    return version


@task(cache_policy=NO_CACHE)
def commit_records(workspace: str, records: list[str], message: str, with_lock: bool = False) -> bool:
    """Commit the records a run wrote (a drift check's history line, a refused candidate's decision); `with_lock`:
    with dvc.lock and the outputs git carries, for a run that reran stages in the workspace (the monitor's
    live and report_index), so that the commit's lock matches its records and a clone reruns nothing."""
    root, logger = Path(workspace), get_run_logger()
    if current_branch(root) is None:
        logger.warning("records not committed (they stay in the workspace): HEAD is detached")
        return False
    paths = [relative(root, root / record) for record in records]
    if with_lock:
        paths += ["dvc.lock", *committed_outputs(root)]
    try:
        return commit_files(root, paths, message)
    except PipelineError as error:
        logger.warning("records not committed (they stay in the workspace): %s", error)
        return False


@task(cache_policy=NO_CACHE)
def share_results(workspace: str) -> bool:
    """Push to the team's remotes, those configured; False, with a warning, when a push failed."""
    logger = get_run_logger()
    try:
        publish(Path(workspace), logger.info)
    except PipelineError as error:
        logger.warning("not pushed, everything is kept locally and the next run pushes it: %s", error)
        return False
    return True
