"""The team's DVC remote on a real WebDAV server on loopback, and the registry of model versions (docs/team.md).

Clones of the small workspace (tests/flows/conftest.py) play the teammates; a bare git repository is the team's git
remote. What is timed here is said in the closing figures of docs/team.md, not asserted.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from flows.monitoring import drift_monitor
from flows.training import training_pipeline
from pipeline.team.registry import assignments, state_files, version_in_use
from tests.support.storage import PASSWORD, USER, closed_port_url
from tests.support.workspaces import commit_params, run

MODEL = "models/model.keras"


def use_remote(root: Path, url: str, password: str = PASSWORD) -> None:
    """Point the clone at the team's remote the DVC way: the URL committed, the credentials in config.local."""
    run(["dvc", "remote", "add", "--force", "--default", "team", url], root)
    run(["dvc", "remote", "modify", "--local", "team", "user", USER], root)
    run(["dvc", "remote", "modify", "--local", "team", "password", password], root)


def with_git_origin(root: Path, origin: Path) -> None:
    run(["git", "init", "-q", "--bare", str(origin)], root)
    run(["git", "remote", "add", "origin", str(origin)], root)


def commit_all(root: Path, message: str) -> None:
    run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "add", "-A"], root)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", message], root)


def fingerprint(root: Path) -> dict[str, str]:
    """What a failed command must leave as it was: the model, the state git carries, HEAD and the status."""
    files = [MODEL, "models/unfamiliarity.npz", *state_files(root)]
    digests = {name: hashlib.md5((root / name).read_bytes()).hexdigest() for name in files if (root / name).exists()}
    head = run(["git", "rev-parse", "HEAD"], root).stdout
    status = run(["git", "status", "--porcelain"], root).stdout
    return {**digests, "HEAD": head, "status": status}


def team(root: Path, *arguments: str) -> subprocess.CompletedProcess:
    return run(["fashion-team", *arguments], root, check=False)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("team: error: "), result.stderr
    return lines[0]


def test_a_second_clone_pulls_the_model_and_reruns_no_stage(copy_of_small_workspace, team_storage, tmp_path):
    clone_a = copy_of_small_workspace("clone-a")
    with_git_origin(clone_a, tmp_path / "origin.git")
    use_remote(clone_a, team_storage.new_store("two-clones"))
    commit_all(clone_a, "Use the team's remote")
    pushed = team(clone_a, "push")
    assert pushed.returncode == 0, pushed.stderr
    assert (
        "pushed the pipeline's data, the pool and every registered version's outputs to DVC remote 'team'"
        in pushed.stdout
    )

    clone_b = tmp_path / "clone-b"
    run(["git", "clone", "-q", str(tmp_path / "origin.git"), str(clone_b)], tmp_path)
    use_remote(clone_b, team_storage.address + "/two-clones")
    started = time.monotonic()
    built = run(["make", "--no-print-directory", "-o", "setup", "pipeline"], clone_b)  # set-up done: the tests' env
    seconds = time.monotonic() - started
    print(f"clone B: make pipeline (pull, then dvc repro) took {seconds:.1f} s")

    assert "team: pulled from DVC remote 'team'" in built.stdout
    assert "Running stage" not in built.stdout, built.stdout
    assert (clone_b / MODEL).read_bytes() == (clone_a / MODEL).read_bytes()
    assert run(["git", "status", "--porcelain"], clone_b).stdout == ""  # dvc.lock and the metrics unchanged
    metrics = [json.loads(run(["dvc", "metrics", "show", "--json"], root).stdout) for root in (clone_a, clone_b)]
    assert metrics[0] == metrics[1] and metrics[0]
    assert run(["dvc", "metrics", "diff", "--json"], clone_b).stdout.strip() in ("{}", "")
    assert seconds < 120


def test_promotions_are_registered_versions_and_rollback_brings_the_previous_back(
    copy_of_small_workspace, team_storage, tmp_path
):
    root = copy_of_small_workspace("registry")
    first = version_in_use(root)
    assert first == "v0.0.1"  # the workspace's first model, registered by its first run
    with_git_origin(root, tmp_path / "origin.git")
    use_remote(root, team_storage.new_store("registry"))
    # Any candidate passes: the gate's margins are not under test here.
    commit_params(root, {"promote.max_test_drop": 100.0, "promote.max_source_drop": 100.0}, "Open the gate")

    models = {}
    for seed in (1, 2):
        state = training_pipeline(
            workspace=str(root), overrides={"train.seed": seed}, promote_if_better=True, return_state=True
        )
        assert state.is_completed(), state.message
        models[version_in_use(root)] = (root / MODEL).read_bytes()
    assert list(models) == ["v0.0.2", "v0.0.3"]
    assert [assignment.version for assignment in assignments(root)] == ["v0.0.1", "v0.0.2", "v0.0.3"]
    shown = json.loads(run(["gto", "show", "--json"], root).stdout)
    assert shown["model"]["version"] == "v0.0.3" and shown["model"]["stage"]["prod"] == "v0.0.3", shown
    message = run(["git", "tag", "-l", "-n9", "model@v0.0.3"], root).stdout
    assert "promotion gate: promoted" in message
    # The promoted state and the gate's record are committed, and pushed to both remotes with the tags.
    assert run(["git", "status", "--porcelain", "--", *state_files(root)], root).stdout == ""
    assert run(["git", "ls-files", "reports/runs/*/promotion.json"], root).stdout.count("promotion.json") == 2
    assert "model@v0.0.3" in run(["git", "ls-remote", "--tags", "origin"], root).stdout
    assert "in sync" in run(["dvc", "status", "--cloud", "dvc.yaml"], root).stdout

    rolled = team(root, "rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert "the model in use is v0.0.2 again, in place of v0.0.3" in rolled.stdout
    assert (root / MODEL).read_bytes() == models["v0.0.2"]
    shown = json.loads(run(["gto", "show", "--json"], root).stdout)
    assert shown["model"]["stage"]["prod"] == "v0.0.2", shown
    assert run(["git", "status", "--porcelain", "--", *state_files(root)], root).stdout == ""
    assert run(["git", "log", "-1", "--format=%s"], root).stdout.startswith("Roll the model in use back to v0.0.2")
    status = run(["dvc", "status", "dvc.yaml"], root).stdout
    assert "modified:           models/model.keras" not in status  # the lock and the model agree

    fetched = run(
        ["dvc", "artifacts", "get", str(tmp_path / "origin.git"), "model", "--rev", "v0.0.2", "-o", "got.keras"]
        + ["--remote-config", f"user={USER}", f"password={PASSWORD}"],
        tmp_path,
    )
    assert fetched.returncode == 0 and (tmp_path / "got.keras").read_bytes() == models["v0.0.2"]


@pytest.fixture(scope="module")
def pushed_workspace(copy_of_small_workspace, team_storage, tmp_path_factory):
    """A workspace that pushed to its own store and git origin, for the bad cases."""
    root = copy_of_small_workspace("bad-cases")
    origin = tmp_path_factory.mktemp("bad-cases-origin") / "origin.git"
    with_git_origin(root, origin)
    use_remote(root, team_storage.new_store("bad-cases"))
    commit_all(root, "Use the team's remote")
    assert team(root, "push").returncode == 0
    return root, origin


def test_an_unreachable_remote_is_one_line_and_changes_nothing(pushed_workspace):
    root, origin = pushed_workspace
    url = run(["dvc", "remote", "list"], root).stdout.split()[1]
    try:
        run(["dvc", "remote", "modify", "team", "url", closed_port_url()], root)
        before = fingerprint(root)  # the URL is in .dvc/config, which the fingerprint does not cover
        for action in ("pull", "push"):
            line = one_error_line(team(root, action))
            assert "DVC remote 'team' (webdav://127.0.0.1:" in line and line.endswith("Connection refused"), line
            assert fingerprint(root) == before
        # A flow run with the remote down still completes; what it commits waits for the next push.
        summary = drift_monitor(workspace=str(root), traffic=str(root / "no-traffic"))
        assert summary["verdict"] == "no traffic"
    finally:
        run(["dvc", "remote", "modify", "team", "url", url], root)
    assert team(root, "push").returncode == 0
    head = run(["git", "rev-parse", "HEAD"], root).stdout.split()[0]
    assert head in run(["git", "ls-remote", str(origin)], root).stdout


def test_a_first_push_makes_the_remote_and_an_empty_remote_is_named_on_pull(pushed_workspace, tmp_path):
    root, _ = pushed_workspace
    before = fingerprint(root)
    # A folder that does not exist yet, as a new bucket prefix is: this clone's own default, in config.local.
    run(["dvc", "remote", "add", "--local", "--default", "fresh", str(tmp_path / "new" / "store")], root)
    try:
        line = one_error_line(team(root, "pull"))
        assert "DVC remote 'fresh'" in line and "is empty" in line and "fashion-team push" in line, line
        assert fingerprint(root) == before
        pushed = team(root, "push")
        assert pushed.returncode == 0, pushed.stderr
        assert any((tmp_path / "new" / "store" / "files" / "md5").iterdir())
    finally:
        run(["dvc", "remote", "remove", "--local", "fresh"], root)
    assert run(["dvc", "remote", "default"], root).stdout.strip() == "team"


def test_a_version_tag_another_clone_pushed_is_refused_in_one_line(pushed_workspace, tmp_path):
    root, origin = pushed_workspace
    other = tmp_path / "other"
    run(["git", "clone", "-q", str(origin), str(other)], tmp_path)
    identity = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
    run(["git", *identity, "tag", "-a", "model@v9.9.9", "-m", "the other clone's", "HEAD~1"], other)
    run(["git", "push", "-q", "origin", "model@v9.9.9"], other)
    run(["git", *identity, "tag", "-a", "model@v9.9.9", "-m", "ours", "HEAD"], root)
    try:
        line = one_error_line(team(root, "push"))
        assert "git remote 'origin'" in line and "[rejected]" in line and "model@v9.9.9" in line, line
    finally:
        run(["git", "tag", "-d", "model@v9.9.9"], root)
        run(["git", "push", "-q", "origin", ":refs/tags/model@v9.9.9"], root)


def test_wrong_credentials_are_one_line_and_change_nothing(pushed_workspace):
    root, _ = pushed_workspace
    before = fingerprint(root)
    try:
        run(["dvc", "remote", "modify", "--local", "team", "password", "wrong"], root)
        for action in ("pull", "push"):
            line = one_error_line(team(root, action))
            assert "DVC remote 'team'" in line and "401" in line, line
            assert fingerprint(root) == before
    finally:
        run(["dvc", "remote", "modify", "--local", "team", "password", PASSWORD], root)


def test_a_remote_missing_an_object_is_named_and_the_clone_keeps_what_it_has(pushed_workspace, team_storage, tmp_path):
    root, origin = pushed_workspace
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    store = team_storage.folder / "missing-object"
    run(["cp", "-r", str(team_storage.folder / "bad-cases"), str(store)], tmp_path)
    use_remote(clone, f"{team_storage.address}/missing-object")
    next(path for path in (store / "files" / "md5").rglob("*") if path.is_file()).unlink()
    before = fingerprint(clone)
    line = one_error_line(team(clone, "pull"))
    assert "lacks 1 object(s)" in line and "fashion-team push" in line, line
    after = fingerprint(clone)  # what the remote had is checked out; nothing that was there changed
    assert {name: after[name] for name in before} == before


def test_a_clone_without_the_registry_tags_says_how_to_fetch_them(pushed_workspace, tmp_path):
    root, origin = pushed_workspace
    assert "model@v0.0.1" in run(["git", "ls-remote", "--tags", str(origin)], root).stdout
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "--no-tags", str(origin), str(clone)], tmp_path)
    before = fingerprint(clone)
    line = one_error_line(team(clone, "rollback"))
    assert "no registered model version in this clone" in line and "git fetch --tags" in line, line
    assert fingerprint(clone) == before


def test_fashion_accept_pushes_the_accepted_batch(pushed_workspace):
    root, _ = pushed_workspace
    from pipeline.data.preprocessing import load_arrays

    images, labels = load_arrays(root / "data" / "prepared" / "train.npz")
    incoming = root / "data" / "incoming" / "shared-batch"
    incoming.mkdir(parents=True)
    np.savez_compressed(incoming / "labelled.npz", images=images[:50], labels=labels[:50])
    accepted = run([sys.executable, "-m", "pipeline.commands.accept", "data/incoming/shared-batch"], root)
    assert "accept: pushed the pool to DVC remote 'team'" in accepted.stdout, accepted.stdout
    cloud = run(["dvc", "status", "--cloud", "data/pool/shared-batch.dvc"], root).stdout
    assert "in sync" in cloud, cloud
