"""fashion-accept: a labelled batch joins the pool only when its Great Expectations suite passes; every bad input is
refused in one line naming the batch, the expectation and a file, and adds nothing."""

import hashlib
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from pipeline.accept.near_duplicates import nearest_matches, reference
from pipeline.commands.accept import main
from pipeline.data.idx import write_idx
from pipeline.data.preprocessing import save_arrays
from tests.support.workspaces import REPO_ROOT, run

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def garments(count: int, seed: int) -> np.ndarray:
    """Light, textured items of varied shape on black, as unlike each other as Fashion-MNIST's items are."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for image in images:
        mask = np.zeros((28, 28), dtype=bool)
        for _ in range(3):
            top, left = rng.integers(1, 12, 2)
            height, width = rng.integers(8, 16, 2)
            mask[top : top + height, left : left + width] = True
        texture = np.kron(rng.integers(90, 256, (7, 7)), np.ones((4, 4), dtype=np.int64))
        image[mask] = texture[mask]
    return images


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """A git and DVC repository with a (tiny) prepared test set, as the workspace fashion-accept runs in."""
    root = tmp_path_factory.mktemp("repository")
    run(["git", "init", "-q"], root)
    run(["python", "-m", "dvc", "init", "-q"], root)
    # A pool DVC refuses to track, for the failure of `dvc add`.
    (root / ".dvcignore").write_text("data/ignored-pool\n")
    (root / "data" / "prepared").mkdir(parents=True)
    save_arrays(root / "data" / "prepared" / "test.npz", garments(60, seed=100)[..., None], np.arange(60) % 10)
    return root


@pytest.fixture
def workspace(repository, tmp_path):
    """The repository with an empty pool of its own for one test."""
    pool = repository / "data" / f"pool-{tmp_path.name}"
    yield {"pool": pool, "docs": tmp_path / "reports", "test": repository / "data" / "prepared" / "test.npz"}
    shutil.rmtree(pool, ignore_errors=True)


def accept(workspace, *batches, extra=()):
    """Run fashion-accept in-process; its exit code (0 when it did not exit)."""
    argv = [str(batch) for batch in batches] + ["--pool", str(workspace["pool"]), "--test", str(workspace["test"])]
    argv += ["--docs-root", str(workspace["docs"]), "--web-assets", str(REPO_ROOT / "node_modules")]
    argv += ["--params", str(REPO_ROOT / "params.yaml"), *extra]
    try:
        main(argv)
    except SystemExit as exit:
        return exit.code
    return 0


def picture_batch(folder, images, labels) -> list[str]:
    """PNG pictures and a labels.csv with a labelling sheet's extra columns; the file names."""
    folder.mkdir(parents=True)
    names = [f"item{index:02d}.png" for index in range(len(images))]
    for name, image in zip(names, images, strict=True):
        Image.fromarray(image).save(folder / name)
    rows = [f"{name},{label},Coat,0.5" for name, label in zip(names, labels, strict=True)]
    (folder / "labels.csv").write_text("\n".join(["file,label,predicted,confidence", *rows]) + "\n")
    return names


def good_pictures(folder, seed=1):
    # Labels as a person writes them: class names in any case, or indices.
    labels = ["Coat", "ankle boot", "3", "T-shirt/top", "Bag", "SNEAKER", "0", "Coat", "Trouser", "9", "Shirt", "1"]
    return picture_batch(folder, garments(12, seed), labels)


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def assert_nothing_added(workspace, name):
    assert not (workspace["pool"] / name).exists() and not (workspace["pool"] / f"{name}.dvc").exists()


def test_a_batch_of_pictures_is_accepted_into_the_pool_and_tracked_by_dvc(workspace, repository, tmp_path, capsys):
    batch = tmp_path / "incoming" / "week-49"
    names = good_pictures(batch)
    Image.fromarray(garments(1, seed=9)[0]).save(batch / "not-listed.png")
    assert accept(workspace, batch, extra=["--source", "phone-photos"]) == 0
    pool, printed = workspace["pool"], capsys.readouterr().out.strip().splitlines()
    assert printed[0] == "accept: week-49: left out 1 picture(s) that labels.csv does not list (e.g. not-listed.png)"
    assert printed[1] == (
        "accept: week-49: accepted 12 images (T-shirt/top 2, Trouser 2, Dress 1, Coat 2, Shirt 1, Sneaker 1, Bag 1, "
        f"Ankle boot 2) from source 'phone-photos'; commit {pool}/week-49.dvc and {pool}/.gitignore to record it"
    )
    with np.load(pool / "week-49" / "images.npz", allow_pickle=False) as arrays:
        images, labels, files = arrays["images"], arrays["labels"], arrays["files"]
    assert images.shape == (12, 28, 28, 1) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert labels.tolist() == [4, 9, 3, 0, 8, 7, 0, 4, 1, 9, 6, 1] and files.tolist() == names
    manifest = json.loads((pool / "week-49" / "manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    assert (manifest["batch"], manifest["source"], manifest["from"], manifest["images"]) == (
        "week-49",
        "phone-photos",
        str(batch),
        12,
    )
    assert manifest["classes"]["Ankle boot"] == 2 and "Sandal" not in manifest["classes"]
    assert manifest["accepted_at"].endswith("+00:00")
    assert "/week-49" in (pool / ".gitignore").read_text()
    status = run(["python", "-m", "dvc", "status", str((pool / "week-49.dvc").relative_to(repository))], repository)
    assert "up to date" in status.stdout
    summary = json.loads((workspace["docs"] / "week-49" / "summary.json").read_text())
    assert summary["success"] and summary["unlisted_files"] == ["not-listed.png"]
    assert (workspace["docs"] / "week-49" / "data_docs" / "index.html").exists()

    # The pool only grows: the same name again is refused, and nothing changes.
    assert accept(workspace, batch) == 1
    assert one_error_line(capsys) == (
        f"accept: error: week-49: already accepted on {manifest['accepted_at'][:10]} ({pool}/week-49); "
        "a new batch needs a new name"
    )
    assert json.loads((pool / "week-49" / "manifest.json").read_text()) == manifest

    # A later batch repeating accepted images more than accept.max_duplicate_share allows is refused.
    later = tmp_path / "incoming" / "week-50"
    picture_batch(later, np.concatenate([garments(10, seed=2), garments(12, seed=1)[:2]]), ["Coat"] * 12)
    assert accept(workspace, later) == 1
    assert one_error_line(capsys) == (
        "accept: error: week-50: rejected: expectation 'few repeated images (within the batch or of the pool)' "
        "broken by 2 of 12 rows, at most 5% allowed (e.g. item10.png: repeats an accepted image)"
    )
    assert_nothing_added(workspace, "week-50")


def test_an_npz_and_an_idx_pair_are_accepted_on_one_command_line(workspace, tmp_path, capsys):
    npz_batch, idx_batch = tmp_path / "npz-batch", tmp_path / "idx-batch"
    npz_batch.mkdir()
    idx_batch.mkdir()
    np.savez(npz_batch / "batch.npz", images=garments(10, seed=3), labels=np.arange(10, dtype=np.uint8))
    write_idx(idx_batch / "new-images-idx3-ubyte", garments(5, seed=4))
    write_idx(idx_batch / "new-labels-idx1-ubyte", np.array([5, 5, 6, 7, 8], dtype=np.uint8))
    assert accept(workspace, npz_batch, idx_batch) == 0
    printed = capsys.readouterr().out
    assert "accept: npz-batch: accepted 10 images (T-shirt/top 1, Trouser 1," in printed
    assert (
        "accept: idx-batch: accepted 5 images (Sandal 2, Shirt 1, Sneaker 1, Bag 1) from source 'idx-batch'" in printed
    )
    with np.load(workspace["pool"] / "npz-batch" / "images.npz", allow_pickle=False) as arrays:
        np.testing.assert_array_equal(arrays["images"][..., 0], garments(10, seed=3))
        assert arrays["files"][3] == "batch.npz[3]"
    assert (workspace["pool"] / "idx-batch.dvc").exists()


def missing_file(folder):
    good_pictures(folder)
    with (folder / "labels.csv").open("a") as sheet:
        sheet.write("ghost.png,Coat,Coat,0.9\n")


def unknown_class(folder):
    good_pictures(folder)
    text = (folder / "labels.csv").read_text()
    (folder / "labels.csv").write_text(text.replace("item04.png,Bag", "item04.png,Jacket"))


def malformed_row(folder):
    good_pictures(folder)
    with (folder / "labels.csv").open("a") as sheet:
        sheet.write(",Coat\n")


def no_rows(folder):
    folder.mkdir()
    (folder / "labels.csv").write_text("file,label\n")


def blank_picture(folder):
    good_pictures(folder)
    Image.fromarray(np.full((28, 28), 128, dtype=np.uint8)).save(folder / "item05.png")


def leaked_test_image(folder):
    good_pictures(folder)
    test_image = garments(60, seed=100)[17]
    Image.fromarray(test_image).save(folder / "item07.jpg", quality=70)
    text = (folder / "labels.csv").read_text()
    (folder / "labels.csv").write_text(text.replace("item07.png", "item07.jpg"))


def repeats_within_the_batch(folder):
    images = garments(12, seed=1)
    picture_batch(folder, np.concatenate([images, images[:2]]), ["Coat"] * 14)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            missing_file,
            "'listed files exist' broken by 1 of 13 rows (e.g. ghost.png: no such file in the batch folder)",
        ),
        (unknown_class, "'labels name a known class' broken by 1 of 12 rows (e.g. item04.png: unknown class 'Jacket')"),
        (
            malformed_row,
            "'labelled rows name a file' broken by 1 of 13 rows (e.g. labels.csv line 14: no file name)",
        ),
        (no_rows, "'at least one labelled image' not met (0 rows)"),
        (
            blank_picture,
            "'pictures convert' broken by 1 of 12 rows (e.g. item05.png: no item to classify (nothing stands out "
            "from the background))",
        ),
        (
            leaked_test_image,
            "'no near-duplicates of test images' broken by 1 of 12 rows, at most 1% allowed (e.g. item07.jpg: like "
            "test image 17 (similarity 0.9*))",
        ),
        (
            repeats_within_the_batch,
            "'few repeated images (within the batch or of the pool)' broken by 2 of 14 rows, at most 5% allowed "
            "(e.g. item12.png: repeats item00.png)",
        ),
    ],
)
def test_each_bad_batch_is_refused_in_one_line_and_adds_nothing(workspace, tmp_path, capsys, breakage, message):
    breakage(tmp_path / "bad-batch")
    assert accept(workspace, tmp_path / "bad-batch") == 1
    # The message is exact but for the digits of a similarity (`*`).
    expected = re.escape(f"accept: error: bad-batch: rejected: expectation {message}").replace(r"\*", r"\d{3}")
    assert re.fullmatch(expected, one_error_line(capsys))
    assert_nothing_added(workspace, "bad-batch")
    # The report of a rejected batch is kept, for the person to read what broke.
    summary = json.loads((workspace["docs"] / "bad-batch" / "summary.json").read_text())
    assert not summary["success"] and (workspace["docs"] / "bad-batch" / "data_docs" / "index.html").exists()


def test_a_batch_without_labelled_images_is_refused_and_the_rest_still_decided(workspace, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    good_pictures(tmp_path / "good")
    assert accept(workspace, tmp_path / "empty", tmp_path / "good") == 1
    output = capsys.readouterr()
    reason = "empty batch (no labels.csv with pictures, .npz or IDX images file)"
    assert output.err.strip() == f"accept: error: empty: {tmp_path / 'empty'}: {reason}"
    assert "accept: good: accepted 12 images" in output.out
    assert_nothing_added(workspace, "empty")
    assert (workspace["pool"] / "good.dvc").exists()


def test_a_copy_of_an_image_is_told_from_a_different_item_of_the_same_kind():
    """The similarity behind the near-duplicate expectations, on images whose copies differ by more than noise."""
    originals = garments(40, seed=5)
    # The same items redrawn: shifted by a pixel and a little larger, as a re-encoded picture converts.
    shifted = np.roll(originals, 1, axis=2)
    redrawn = np.stack([np.asarray(Image.fromarray(image).resize((30, 30)))[1:29, 1:29] for image in shifted])
    matches = nearest_matches(redrawn[..., None], reference(originals[..., None]))
    assert (matches.nearest == np.arange(40)).all()
    assert matches.best.min() > 0.95 and (1 - matches.best).max() < 0.25 * (1 - matches.runner_up).min()


def test_a_labelling_sheet_labelled_from_the_top_is_accepted_pixel_for_pixel(workspace, tmp_path, capsys):
    from pipeline.accept.labelling import write_labelling_sheet

    sheet_dir = tmp_path / "sheet-1"
    sheet_dir.mkdir()
    images = garments(8, seed=6)[..., None]
    probabilities = np.random.default_rng(0).dirichlet(np.ones(10), size=8)
    sheet = write_labelling_sheet(images, [f"drifted[{i}]" for i in range(8)], probabilities, CLASS_NAMES, sheet_dir)
    # A person labels the five least confident images and leaves the rest.
    sheet.loc[:4, "label"] = ["Coat", "Bag", "Bag", "Sandal", "Coat"]
    sheet.to_csv(sheet_dir / "labels.csv", index=False)
    # The sheet's 28x28 images are already converted: read as they are.
    assert accept(workspace, sheet_dir, extra=["--no-crop", "--invert", "never"]) == 0
    printed = capsys.readouterr().out
    assert f"accept: sheet-1: left out 3 picture(s) with no label in labels.csv (e.g. {sheet.file[5]})" in printed
    assert "accept: sheet-1: accepted 5 images (Coat 2, Sandal 1, Bag 2)" in printed
    with np.load(workspace["pool"] / "sheet-1" / "images.npz", allow_pickle=False) as arrays:
        labelled = [int(source.removeprefix("drifted[").rstrip("]")) for source in sheet.source[:5]]
        np.testing.assert_array_equal(arrays["images"], images[labelled])
        assert arrays["files"].tolist() == sheet.file[:5].tolist()


def test_a_bad_accept_param_is_named_before_any_work(workspace, tmp_path, write_params, capsys):
    good_pictures(tmp_path / "good")
    params = write_params({"accept.max_duplicate_share": 1.5})
    assert accept(workspace, tmp_path / "good", extra=["--params", str(params)]) == 1
    assert (
        one_error_line(capsys) == f"accept: error: {params}: accept.max_duplicate_share must be >= 0 and < 1, got 1.5"
    )
    assert not workspace["pool"].exists() and not workspace["docs"].exists()


def test_a_pool_dvc_cannot_track_keeps_nothing(workspace, repository, tmp_path, capsys):
    good_pictures(tmp_path / "good")
    outside = dict(workspace, pool=tmp_path / "not-a-repository" / "pool")
    assert accept(outside, tmp_path / "good") == 1
    assert one_error_line(capsys) == (
        f"accept: error: {outside['pool']}: not inside a DVC repository (no .dvc/ folder above it); "
        "run `dvc init` first"
    )
    assert not (tmp_path / "not-a-repository").exists()
    ignored = dict(workspace, pool=repository / "data" / "ignored-pool")
    assert accept(ignored, tmp_path / "good") == 1
    assert one_error_line(capsys).startswith("accept: error: good: dvc add data/ignored-pool/good failed: ERROR: ")
    assert list(ignored["pool"].iterdir()) == []  # the batch folder written before `dvc add` was removed again


def test_a_labels_file_without_a_label_column_is_refused_in_one_line(workspace, tmp_path, capsys):
    good_pictures(tmp_path / "sheet")
    (tmp_path / "sheet" / "labels.csv").write_text("file,class\nitem00.png,Coat\n")
    assert accept(workspace, tmp_path / "sheet") == 1
    assert one_error_line(capsys) == (
        f"accept: error: sheet: {tmp_path / 'sheet' / 'labels.csv'}: needs the columns file and label, "
        "found ['file', 'class']"
    )
    assert_nothing_added(workspace, "sheet")


def test_a_test_image_look_alike_within_the_allowed_share_stays_out_of_the_pool(workspace, tmp_path, capsys):
    # 1 look-alike in 120 images is under accept.max_test_duplicate_share (1%): the batch is accepted without it.
    batch = tmp_path / "big-batch"
    images = garments(120, seed=5)
    images[7] = garments(60, seed=100)[17]
    picture_batch(batch, images, [str(index % 10) for index in range(120)])
    assert accept(workspace, batch) == 0
    output = capsys.readouterr().out
    assert "big-batch: left out 1 image(s) like test images (e.g. item07.png (like test image 17" in output
    assert "big-batch: accepted 119 images" in output
    with np.load(workspace["pool"] / "big-batch" / "images.npz") as arrays:
        assert len(arrays["labels"]) == 119 and "item07.png" not in list(arrays["files"])
    assert json.loads((workspace["pool"] / "big-batch" / "manifest.json").read_text())["images"] == 119


# Holds the workspace's slot as a flow run does (flows/workspace.py), or DVC's own lock as a dvc command does.
HOLD_SLOT = """
import sys, time
from pathlib import Path
from flows.workspace import claimed_workspace
with claimed_workspace(Path(sys.argv[1]), "flow run 'weekly-test'", 1, print):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""
HOLD_DVC_LOCK = """
import sys, time
from dvc.repo import Repo
with Repo(sys.argv[1]).lock:
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def holding(script: str, repository, seconds: float):
    """A process that holds the lock for `seconds`, once it says so."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(repository), str(seconds)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


def accept_process(workspace, batch, *extra):
    import subprocess
    import sys

    argv = [sys.executable, "-m", "pipeline.commands.accept", str(batch), "--pool", str(workspace["pool"])]
    argv += ["--test", str(workspace["test"]), "--docs-root", str(workspace["docs"])]
    argv += ["--web-assets", str(REPO_ROOT / "node_modules"), "--params", str(REPO_ROOT / "params.yaml"), *extra]
    return subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(
    ("script", "waiting"),
    [
        (HOLD_SLOT, r"accept: waiting for the workspace .*: flow run 'weekly-test' \(pid \d+, since .*\) is using it"),
        (HOLD_DVC_LOCK, r"accept: waiting for DVC's lock in .*: another dvc command is running there"),
    ],
)
def test_accept_waits_for_a_run_that_holds_the_workspace_and_then_accepts(
    workspace, repository, tmp_path, script, waiting
):
    batch = tmp_path / "incoming" / "during-a-run"
    good_pictures(batch)
    holder = holding(script, repository, seconds=120)
    accepting = accept_process(workspace, batch)
    said = accepting.stdout.readline().strip()
    assert re.fullmatch(waiting, said), said
    assert not (workspace["pool"] / "during-a-run.dvc").exists()
    holder.kill()  # the run ends (even killed, its locks go with it)
    holder.wait()
    out, err = accepting.communicate(timeout=120)
    assert accepting.returncode == 0, err
    assert "during-a-run: accepted 12 images" in out.strip().splitlines()[-1]
    assert (workspace["pool"] / "during-a-run.dvc").is_file()


def test_accept_gives_up_at_its_limit_in_one_line_and_leaves_the_batch_in_place(workspace, repository, tmp_path):
    batch = tmp_path / "incoming" / "too-late"
    names = good_pictures(batch)
    holder = holding(HOLD_SLOT, repository, seconds=120)
    accepting = accept_process(workspace, batch, "--wait-minutes", "0.03")
    _, err = accepting.communicate(timeout=120)
    holder.kill()
    holder.wait()
    assert accepting.returncode == 1
    error = err.strip().splitlines()
    assert len(error) == 1 and re.fullmatch(
        r"accept: error: .*: still in use by flow run 'weekly-test' \(pid \d+, since .*\) after waiting 0.03 min",
        error[0],
    ), error
    assert_nothing_added(workspace, "too-late")
    assert sorted(path.name for path in batch.iterdir()) == sorted([*names, "labels.csv"])
