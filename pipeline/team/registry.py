"""The registry of model versions, the DVC way: dvc.yaml's `artifacts: model` entry and GTO's git tags.

Each promotion commits the state that became the model in use (params.yaml, dvc.lock, the outputs git carries, the
gate's record, the pool's .dvc files) and registers that commit: `model@vX.Y.Z` (a new version, the gate's decision
as its message) and `model#prod#N` (the stage assignment). So `gto show` names the version in use, `gto history
model` lists when and why each was, and `dvc artifacts get <repo> model --rev vX.Y.Z` fetches any from the remote.
A rollback puts an earlier version's params, dvc.lock and outputs back (DVC checks out the model and reports),
commits that, and assigns the version to prod again.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.errors import PipelineError
from pipeline.team.git import commit_files, current_branch, fetch_tags, git, identity_environment, uncommitted
from pipeline.team.remote import dvc, dvc_reason

ARTIFACT = "model"  # the name under dvc.yaml's artifacts:
STAGE = "prod"  # the stage of the version in use
TAG_PATTERNS = (f"{ARTIFACT}@*", f"{ARTIFACT}#*")  # GTO's version and stage-assignment tags
POOL_RECORDS = "data/pool"  # its .dvc files and .gitignore: the accepted batches a version trained on


class RegistryError(PipelineError):
    """The registry cannot do what was asked; the message says what to do instead."""


@dataclass(frozen=True)
class Assignment:
    number: int  # N of model#prod#N: assignments are numbered in order
    version: str
    commit: str


def committed_outputs(root: Path) -> list[str]:
    """The outputs of dvc.yaml that git carries instead of the DVC cache (`cache: false`): metrics and plot data."""
    committed = []
    for stage in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].values():
        for entry in [*stage.get("outs", []), *stage.get("metrics", [])]:
            if isinstance(entry, dict) and next(iter(entry.values())).get("cache") is False:
                committed.append(next(iter(entry)))
    return committed


def state_files(root: Path) -> list[str]:
    """What names a model in use in git: its params, the lock of the run that made it, the outputs git carries."""
    return ["params.yaml", "dvc.lock", *committed_outputs(root)]


def pool_records(root: Path) -> list[str]:
    """The pool's .dvc files and .gitignore: committed with a version, since its preprocess stage read them."""
    pool = root / POOL_RECORDS
    return sorted(str(path.relative_to(root)) for path in [*pool.glob("*.dvc"), pool / ".gitignore"] if path.exists())


def gto(root: Path, *arguments: str) -> str:
    command = [sys.executable, "-m", "gto.cli", *arguments]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, env=identity_environment(root))
    if result.returncode != 0:
        lines = [line.strip(" ❌") for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        raise RegistryError(f"gto {arguments[0]}: {lines[-1] if lines else f'exit code {result.returncode}'}")
    return result.stdout


def tag_commits(root: Path, pattern: str) -> dict[str, str]:
    listed = git(root, "for-each-ref", "--format=%(refname:short) %(*objectname)%(objectname)", f"refs/tags/{pattern}")
    # An annotated tag prints its commit then its own id; a lightweight one only the commit.
    return {line.split()[0]: line.split()[1][:40] for line in listed.splitlines()}


def registered_versions(root: Path) -> dict[str, str]:
    """Every registered version (`v0.0.2`) and its commit."""
    return {tag.split("@", 1)[1]: commit for tag, commit in tag_commits(root, f"{ARTIFACT}@v*").items()}


def assignments(root: Path) -> list[Assignment]:
    """Every assignment of a version to prod, oldest first."""
    versions = {commit: version for version, commit in registered_versions(root).items()}
    found = []
    for tag, commit in tag_commits(root, f"{ARTIFACT}#{STAGE}#*").items():
        if commit in versions:
            found.append(Assignment(int(tag.rsplit("#", 1)[1]), versions[commit], commit))
    return sorted(found, key=lambda assignment: assignment.number)


def version_commits(root: Path) -> list[str]:
    """The commit of every registered version."""
    return sorted(set(registered_versions(root).values()))


def version_in_use(root: Path) -> str | None:
    found = assignments(root)
    return found[-1].version if found else None


def register_in_use(root: Path, paths: list[str], message: str, note: str) -> str | None:
    """Commit `paths` (the promoted state and its records) with `message`, register the commit as the next version
    and assign it to prod, `note` (the gate's decision) in both tags. Returns the version; None on a detached HEAD,
    where a commit would belong to no branch."""
    if current_branch(root) is None:
        return None
    commit_files(root, [*paths, *pool_records(root)], message)
    fetch_tags(root)
    output = gto(root, "register", ARTIFACT, "HEAD", "--message", note)
    version = output.split(f"'{ARTIFACT}@", 1)[1].split("'", 1)[0]
    gto(root, "assign", ARTIFACT, "--version", version, "--stage", STAGE, "--message", note)
    return version


def rollback_target(root: Path, version: str | None) -> tuple[Assignment, str]:
    """The assignment to put back (`version`, or the one in prod before the version in use) and the version in use."""
    found = assignments(root)
    if not found:
        raise RegistryError(
            f"{root}: no registered model version in this clone (git tags {ARTIFACT}@v…): "
            "fetch them with `git fetch --tags`, or promote a model first"
        )
    in_use = found[-1].version
    if version is None:
        earlier = [assignment for assignment in reversed(found) if assignment.version != in_use]
        if not earlier:
            raise RegistryError(f"{root}: {in_use} is the only version ever in use: there is none to go back to")
        return earlier[0], in_use
    registered = registered_versions(root)
    if version not in registered:
        raise RegistryError(f"{version}: not a registered version of {ARTIFACT} (gto show {ARTIFACT})")
    if version == in_use:
        raise RegistryError(f"{version} is already the version in use")
    return Assignment(0, version, registered[version]), in_use  # a rollback reads its version and commit only


def roll_back(root: Path, version: str | None, pull_missing) -> tuple[str, str]:
    """Make `version` (default: the previous one in use) the model in use again and assign it to prod; returns
    (version put back, version it replaced). `pull_missing()` fetches outputs the cache lacks from the remote."""
    target, in_use = rollback_target(root, version)
    if current_branch(root) is None:
        raise RegistryError(f"{root}: HEAD is detached: check out the branch the versions are registered on")
    in_version = set(git(root, "ls-tree", "-r", "--name-only", target.commit).splitlines())
    paths = [path for path in state_files(root) if path in in_version]
    edited = uncommitted(root, paths)
    if edited:
        raise RegistryError(f"{edited[0]} has uncommitted changes: commit or stash them before rolling back")
    git(root, "checkout", target.commit, "--", *paths)
    check_out_outputs(root, paths, target.version, pull_missing)
    note = f"rolled back from {in_use}"
    try:
        commit_files(root, paths, f"Roll the model in use back to {target.version} ({note})")
    except PipelineError:
        restore_in_use(root, paths)
        raise
    try:
        gto(root, "assign", ARTIFACT, "--version", target.version, "--stage", STAGE, "--message", note, "--force")
    except RegistryError as error:
        raise RegistryError(
            f"{target.version} is in use and committed, but not assigned to {STAGE} ({error}): "
            f"`gto assign {ARTIFACT} --version {target.version} --stage {STAGE} --force` finishes it"
        ) from None
    return target.version, in_use


def check_out_outputs(root: Path, paths: list[str], version: str, pull_missing) -> None:
    """Check out the outputs the restored dvc.lock names, from the cache or else the remote; when neither has them,
    put the version in use back whole and fail."""
    if dvc(root, "checkout", "dvc.yaml").returncode == 0:
        return
    try:
        pull_missing()
        result = dvc(root, "checkout", "dvc.yaml")
        if result.returncode != 0:
            raise RegistryError(f"dvc checkout: {dvc_reason(result)}")
    except PipelineError as error:
        restore_in_use(root, paths)
        raise RegistryError(f"{version}: its outputs could not be checked out, the one in use stays: {error}") from None


def restore_in_use(root: Path, paths: list[str]) -> None:
    """The version in use back whole after a rollback that failed half-way: its files from HEAD, its outputs."""
    git(root, "checkout", "HEAD", "--", *paths)
    dvc(root, "checkout", "dvc.yaml")
