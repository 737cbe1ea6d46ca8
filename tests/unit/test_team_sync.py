"""Two clones pushing at once (pipeline/team/sync.py): the second replays its commit on the first's and pushes.

Git only, no DVC remote: each clone plays a worker whose commit touches what a drift check and a promotion both
commit, the drift history and dvc.lock.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.team.git import GitFailed
from pipeline.team.publish import publish
from pipeline.team.sync import catch_up
from tests.support.workspaces import REPO_ROOT

HISTORY = "reports/drift/checks/history.jsonl"
IDENTITY = ["-c", "user.name=test", "-c", "user.email=test@localhost"]


def git(root: Path, *arguments: str) -> str:
    result = subprocess.run(["git", *IDENTITY, *arguments], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


@pytest.fixture
def two_clones(tmp_path) -> tuple[Path, Path, Path]:
    """A bare origin with one commit (history, dvc.lock, .gitattributes), and two clones of it."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    shutil.copy(REPO_ROOT / ".gitattributes", seed / ".gitattributes")
    write(seed, HISTORY, '{"check": "first"}\n')
    write(seed, "dvc.lock", "stages:\n  live:\n    md5: aaa\n  train:\n    md5: bbb\n")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "seed")
    git(tmp_path, "clone", "-q", "--bare", str(seed), "origin.git")
    clones = []
    for name in ("drift-check", "promotion"):
        git(tmp_path, "clone", "-q", str(tmp_path / "origin.git"), name)
        clones.append(tmp_path / name)
    return tmp_path / "origin.git", *clones


def test_the_second_push_replays_its_commit_on_the_first_and_keeps_both_histories(two_clones):
    origin, checker, promoter = two_clones
    # A drift check appends to the history and reruns `live`; it pushes first.
    write(checker, HISTORY, '{"check": "first"}\n{"check": "worker a"}\n')
    write(checker, "dvc.lock", "stages:\n  live:\n    md5: ccc\n  train:\n    md5: bbb\n")
    git(checker, "commit", "-qam", "Drift monitor: no drift")
    publish(checker, lambda line: None)
    # Meanwhile a promotion appends its own line, retrains and reruns `live`, and registers its commit.
    write(promoter, HISTORY, '{"check": "first"}\n{"check": "worker b"}\n')
    write(promoter, "dvc.lock", "stages:\n  live:\n    md5: ddd\n  train:\n    md5: eee\n")
    git(promoter, "commit", "-qam", "Model in use: promoted")
    git(promoter, "tag", "-a", "-m", "promotion gate: promoted", "model@v0.0.2")
    said = []
    publish(promoter, said.append)

    assert any("another clone pushed first" in line for line in said), said
    assert git(origin, "rev-parse", "main") == git(promoter, "rev-parse", "HEAD")
    pushed = git(origin, "show", f"main:{HISTORY}")
    assert '"worker a"' in pushed and '"worker b"' in pushed  # both checks kept, union-merged
    # dvc.lock's line both changed keeps the promoter's, whose data it pushed; the rest is the promoter's too.
    assert git(origin, "show", "main:dvc.lock") == "stages:\n  live:\n    md5: ddd\n  train:\n    md5: eee"
    # The version tag moved with the replayed commit, on the branch, and reached the remote.
    assert git(origin, "rev-parse", "model@v0.0.2^{commit}") == git(origin, "rev-parse", "main")
    assert git(origin, "tag", "-l", "--format=%(contents)", "model@v0.0.2") == "promotion gate: promoted"

    # The first clone catches up with both commits before its next run.
    catch_up(checker, lambda line: None)
    assert git(checker, "rev-parse", "HEAD") == git(origin, "rev-parse", "main")
    assert git(checker, "rev-parse", "model@v0.0.2^{commit}") == git(checker, "rev-parse", "HEAD")


def test_a_conflict_the_rules_cannot_settle_leaves_the_clone_as_it_was(two_clones):
    origin, first, second = two_clones
    git(first, "rm", "-q", "dvc.lock")
    git(first, "commit", "-qm", "first: no dvc.lock")
    publish(first, lambda line: None)
    write(second, "dvc.lock", "stages:\n  live:\n    md5: fff\n")
    git(second, "commit", "-qam", "second: a new dvc.lock")
    head = git(second, "rev-parse", "HEAD")
    with pytest.raises(GitFailed, match="merge by hand"):
        publish(second, lambda line: None)
    assert git(second, "rev-parse", "HEAD") == head
    assert git(second, "status", "--porcelain") == ""
