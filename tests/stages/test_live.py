"""fashion-live as a user runs it: a sheet of captured traffic (a random sample kept apart, hard cases), its labels
recorded against the version that answered, every bad sheet refused in one line with nothing recorded; and the live
stage's page and verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.datasets import dataset_spec
from pipeline.live.record import LEAST_CONFIDENT, RANDOM, UNFAMILIAR, read_labels
from pipeline.live.sampling import LEDGER, draw_key
from tests.support.traffic import write_traffic

CLASSES = dataset_spec("fashion_mnist").class_names
VERSION = "model-aaaaaaaaaaaa+scorer-bbbbbbbbbbbb"


def fashion_live(workspace: Path, *arguments) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.commands.live", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, cwd=workspace)


@pytest.fixture
def workspace(tmp_path, write_params) -> Path:
    """A folder fashion-live works in (params.yaml, a DVC repository's marker) with two days of captured traffic:
    1,500 pictures, every 30th flagged unfamiliar, the true class of each kept by its uploaded name's number."""
    write_params({"live.sample_rate": 0.1, "live.sample_per_day": 40, "live.least_confident_per_day": 5})
    (tmp_path / ".dvc").mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1500, 28, 28, 1), dtype=np.uint8)
    probabilities = rng.dirichlet(np.full(10, 0.3), 1500).astype(np.float32)
    unfamiliar = np.arange(1500) % 30 == 0
    start = datetime(2026, 12, 1, 23, 40, tzinfo=UTC)  # 1,200 s a day... at one picture a second: two days
    write_traffic(tmp_path / "data" / "traffic", images, probabilities, start, VERSION, unfamiliar, chunk=200)
    np.save(tmp_path / "truth.npy", rng.integers(0, 10, 1500))
    return tmp_path


def sheet_of(workspace: Path) -> Path:
    [sheet] = sorted((workspace / "data" / "labelling").glob("live-*"))
    return sheet


def fill_in(sheet: Path, workspace: Path, edit=None) -> pd.DataFrame:
    truth = np.load(workspace / "truth.npy")
    table = pd.read_csv(sheet / "labels.csv", dtype=str, keep_default_na=False)
    table["label"] = [CLASSES[truth[int(name[7:12])]] for name in table["uploaded_as"]]
    if edit:
        table = edit(table)
    table.to_csv(sheet / "labels.csv", index=False)
    return table


def test_a_sheet_keeps_the_random_sample_apart_within_each_days_bounds(workspace):
    result = fashion_live(workspace, "sample")
    assert result.returncode == 0, result.stderr
    sheet = sheet_of(workspace)
    labels = pd.read_csv(sheet / "labels.csv", dtype=str, keep_default_na=False)
    answers = pd.read_csv(sheet / "answers.csv", dtype=str, keep_default_na=False)
    # Blind: the labeller sees neither the model's answer nor the group.
    assert {"predicted", "confidence", "group"}.isdisjoint(labels.columns) and (labels["label"] == "").all()
    assert list(labels["file"]) == list(answers["file"]) and all((sheet / name).is_file() for name in labels["file"])
    answers["day"] = answers["picture"].str[:10]
    counts = answers.groupby(["day", "group"]).size().to_dict()
    for day in ("2026-12-01", "2026-12-02"):
        assert counts[(day, RANDOM)] <= 40 and counts[(day, LEAST_CONFIDENT)] == 5
    # The random draw: the pictures of lowest seeded key under the rate, whatever their content.
    random = answers[answers["group"] == RANDOM]
    keys = [draw_key(0, picture) for picture in random["picture"]]
    assert max(keys) < 0.1
    # Unfamiliar pictures not drawn at random are hard cases, up to the day's bound (20); a picture is in one group.
    assert answers["picture"].is_unique
    flagged = labels["uploaded_as"].str[7:12].astype(int) % 30 == 0
    for day, bound in (("2026-12-01", 20), ("2026-12-02", 20)):
        of_day = (answers["day"] == day).to_numpy()
        candidates = np.sum(flagged & of_day & (answers["group"] != RANDOM).to_numpy())
        assert counts.get((day, UNFAMILIAR), 0) == min(bound, candidates)
    assert (answers["model_version"] == VERSION).all()
    # Nothing new: one line, no second sheet; the ledger names each chunk once.
    again = fashion_live(workspace, "sample")
    assert again.returncode == 0 and "no traffic to sample: no new chunk of a closed day" in again.stdout
    ledger = [json.loads(line) for line in (workspace / "data" / "labelling" / LEDGER).read_text().splitlines()]
    assert ledger[1] == {"written": sheet.name}
    assert len(ledger) == 2 and len(ledger[0]["chunks"]) == len(list((workspace / "data" / "traffic").rglob("*.npz")))


def test_labels_are_recorded_against_the_version_that_answered_once_and_only_once(workspace):
    fashion_live(workspace, "sample")
    sheet = sheet_of(workspace)
    table = fill_in(sheet, workspace, lambda table: table.assign(label=["", *table["label"][1:]]))
    result = fashion_live(workspace, "label", sheet, "--no-page")
    assert result.returncode == 0, result.stderr
    assert f"{len(table) - 1} new label(s) recorded" in result.stdout
    assert "1 picture(s) still without a label" in result.stdout
    record = read_labels(workspace / "data" / "live" / "labels.csv")
    answers = pd.read_csv(sheet / "answers.csv", dtype=str, keep_default_na=False).set_index("file")
    assert len(record) == len(table) - 1 and (record["model_version"] == VERSION).all()
    row = record.iloc[0]
    assert answers.loc[row["file"], "picture"] == row["picture"] and answers.loc[row["file"], "group"] == row["group"]
    # Again, and with the last label filled in: only the new one is added.
    fill_in(sheet, workspace)
    again = fashion_live(workspace, "label", sheet, "--no-page")
    assert again.returncode == 0 and "1 new label(s) recorded" in again.stdout
    assert len(read_labels(workspace / "data" / "live" / "labels.csv")) == len(table)


@pytest.mark.parametrize(
    "problem, edit, message",
    [
        ("unknown class", lambda t: t.assign(label=["Tshirt", *t["label"][1:]]), "unknown class 'Tshirt'"),
        ("labelled twice", lambda t: pd.concat([t, t.iloc[[2]]]), "labelled twice, on lines 4 and"),
        ("missing picture", None, "the picture is missing from the sheet's folder"),
        ("not of the sheet", lambda t: t.assign(file=["other.png", *t["file"][1:]]), "not a picture of this sheet"),
    ],
)
def test_a_bad_sheet_is_one_line_and_nothing_is_recorded(workspace, problem, edit, message):
    fashion_live(workspace, "sample")
    sheet = sheet_of(workspace)
    fill_in(sheet, workspace, edit)
    if problem == "missing picture":
        (sheet / pd.read_csv(sheet / "labels.csv")["file"][5]).unlink()
    result = fashion_live(workspace, "label", sheet, "--no-page")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"live: error: {sheet / 'labels.csv'}: line ") and message in line, line
    assert line.endswith("nothing recorded")
    assert not (workspace / "data" / "live" / "labels.csv").exists()


def test_a_picture_labelled_otherwise_before_is_refused_and_the_record_kept(workspace):
    fashion_live(workspace, "sample")
    sheet = sheet_of(workspace)
    fill_in(sheet, workspace)
    assert fashion_live(workspace, "label", sheet, "--no-page").returncode == 0
    record = (workspace / "data" / "live" / "labels.csv").read_bytes()
    fill_in(sheet, workspace, lambda t: t.assign(label=["Bag" if t["label"][0] != "Bag" else "Coat", *t["label"][1:]]))
    result = fashion_live(workspace, "label", sheet, "--no-page")
    assert result.returncode == 1 and "is already labelled" in result.stderr and "nothing recorded" in result.stderr
    assert (workspace / "data" / "live" / "labels.csv").read_bytes() == record


def test_a_folder_that_is_no_live_sheet_is_one_line(workspace):
    (workspace / "batch").mkdir()
    result = fashion_live(workspace, "label", workspace / "batch", "--no-page")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"live: error: {workspace / 'batch'}: not a live labelling sheet (no answers.csv); `fashion-live sample` "
        "writes them, fashion-accept takes other labelled folders"
    )


def test_a_sheet_cut_short_is_drawn_again_the_same_and_a_written_one_never(workspace):
    fashion_live(workspace, "sample")
    sheet = sheet_of(workspace)
    first = pd.read_csv(sheet / "answers.csv")
    # Moved away once written: its pictures are not sent to labelling again.
    sheet.rename(workspace / "labelled-elsewhere")
    assert "no traffic to sample" in fashion_live(workspace, "sample").stdout
    # Killed before its folder was renamed into place: the draw's line is there, the second line and the folder not.
    ledger = workspace / "data" / "labelling" / LEDGER
    ledger.write_text(ledger.read_text().splitlines()[0] + "\n")
    result = fashion_live(workspace, "sample")
    assert result.returncode == 0, result.stderr
    again = pd.read_csv(sheet_of(workspace) / "answers.csv")
    assert sorted(again["picture"]) == sorted(first["picture"])


def test_todays_traffic_waits_for_its_day_to_close_unless_asked_for(workspace):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (300, 28, 28, 1), dtype=np.uint8)
    probabilities = rng.dirichlet(np.ones(10), 300).astype(np.float32)
    write_traffic(workspace / "data" / "traffic", images, probabilities, today, VERSION, tag="today")
    assert fashion_live(workspace, "sample").returncode == 0
    answers = pd.read_csv(sheet_of(workspace) / "answers.csv")
    assert not answers["picture"].str.startswith(f"{today:%Y-%m-%d}").any()
    result = fashion_live(workspace, "sample", "--include-today")
    assert result.returncode == 0, result.stderr
    [_, todays] = sorted((workspace / "data" / "labelling").glob("live-*"))
    assert pd.read_csv(todays / "answers.csv")["picture"].str.startswith(f"{today:%Y-%m-%d}").all()
