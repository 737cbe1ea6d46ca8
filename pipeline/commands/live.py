"""fashion-live: labelled samples of the served traffic, to measure how right the model in use is live.

    fashion-live sample                       a labelling sheet of the closed days' traffic not sampled yet
    fashion-live label data/labelling/live-…  its labels recorded (live.labels_file), then the live page and verdict

`sample` sends to labelling a random sample of the captured pictures (the only group that measures accuracy) and
hard cases (unfamiliar, least confident), as a blind sheet (pipeline/live/sheets.py). `label` checks a filled sheet
whole (an unknown class, a missing picture or a picture labelled twice: one line, exit 1, nothing recorded), records
each label against the model version that answered, and reruns the live and report_index stages through DVC.
`--accept` also offers the labels it recorded to the accepted pool through fashion-accept's gate, as source `live`.
The page's stages run in the DVC repository of live.labels_file, on its params.yaml.
Both take the workspace's slot, as fashion-accept does, so they never write while a flow run reads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pipeline.accept.pool_append import dvc_root
from pipeline.cli import run_command
from pipeline.data.datasets import dataset_spec
from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.live.labels import read_labelled_sheet
from pipeline.live.params import LiveParams
from pipeline.live.record import record_labels
from pipeline.live.sampling import SHEET_FILE
from pipeline.live.sheets import sheet_of_new_traffic
from pipeline.params import load_params, read_section
from pipeline.serving.params import ServeParams
from pipeline.workspace_slot import workspace_slot

PAGE_STAGES = ("live", "report_index")
INCOMING = Path("data/incoming")  # where fashion-accept's batches wait, as for any labelled batch
DEFAULT_WAIT_MINUTES = 240.0


def configure(parser) -> None:
    parser.description = __doc__.splitlines()[0]
    commands = parser.add_subparsers(dest="action", required=True)
    sample = commands.add_parser("sample", help="a labelling sheet of the traffic captured since the last sheet")
    sample.add_argument("--traffic", type=Path, help="the capture folder (default: serve.capture_folder)")
    sample.add_argument(
        "--include-today", action="store_true", help="sample today's traffic too (a day is sampled whole once closed)"
    )
    label = commands.add_parser("label", help="record a filled sheet's labels, then refresh the live page")
    label.add_argument("sheet", type=Path, help="a filled live labelling sheet's folder")
    label.add_argument("--accept", action="store_true", help="offer the labelled pictures to the pool (fashion-accept)")
    label.add_argument("--no-page", dest="page", action="store_false", help="record only: no DVC run for the page")
    for command in (sample, label):
        command.add_argument("--wait-minutes", type=float, default=DEFAULT_WAIT_MINUTES, help="for a busy workspace")
        # Also after the action's name; the main parser's default (params.yaml) stands when it is not given.
        command.add_argument("--params", type=Path, default=argparse.SUPPRESS, help="the params file")


def class_names(params_file: Path) -> tuple[str, ...]:
    return dataset_spec(read_section("ingest", params_file)["dataset"]).class_names


def sample(arguments, params: LiveParams, say) -> None:
    traffic = arguments.traffic or Path(load_params(ServeParams, arguments.params).capture_folder)
    names = class_names(arguments.params)
    new = sheet_of_new_traffic(traffic, Path(params.sheets_folder), params, names, arguments.include_today)
    for chunk in new.unreadable:
        say(f"left out {chunk}: not a readable chunk of traffic (damaged, or copied in half)")
    if new.sheet is None:
        closed = "" if arguments.include_today else " of a closed day (--include-today for today's)"
        say(f"no traffic to sample: no new chunk{closed} in {traffic}")
    elif new.sheet.folder is None:
        say(f"{len(new.chunks)} chunk(s) read; nothing to label (each day's bounds are reached)")
    else:
        say(new.sheet.described())


def label(arguments, params: LiveParams, say) -> pd.DataFrame:
    labelled = read_labelled_sheet(arguments.sheet, class_names(arguments.params))
    added = record_labels(Path(params.labels_file), labelled.rows)
    say(
        f"{len(added)} new label(s) recorded in {params.labels_file} ({len(labelled.rows) - len(added)} already "
        f"there, {labelled.unlabelled} picture(s) still without a label)"
    )
    if arguments.page:
        refresh_page(dvc_root(Path(params.labels_file)), say)
    return added


def refresh_page(root: Path, say) -> None:
    """The live and report_index stages through DVC, so the page is a DVC output like any report."""
    command = [sys.executable, "-m", "dvc", "repro", "--single-item", *PAGE_STAGES]
    # The stages' `python` is this interpreter, whatever PATH says.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    environment = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        # The stage's own one-line reason when it gave one, else DVC's.
        stage_errors = [line for line in lines if line.startswith(("live: error:", "report_index: error:"))]
        reason = (stage_errors or lines or [f"exit code {result.returncode}"])[-1]
        raise PipelineError(f"the labels are recorded, but the live page was not refreshed: {reason}")
    verdict = next((line for line in reversed(result.stdout.splitlines()) if line.startswith("live: ")), None)
    page = root / "reports" / "live" / "index.html"
    say(f"{verdict.removeprefix('live: ') if verdict else 'the page is up to date'} ({page})")


def accept_labelled(sheet: Path, added: pd.DataFrame, params_file: Path, say) -> None:
    """The labels this run recorded, as a batch of their own (data/incoming/<sheet>-<time>/, the pictures are 28x28
    already), offered to the pool through fashion-accept's gate: a sheet labelled in parts joins in parts."""
    if added.empty:
        say("no new labels to offer to the accepted pool")
        return
    batch = INCOMING / f"{sheet.resolve().name}-{datetime.now(UTC):%H%M%S}"
    with atomic_path(batch) as folder:
        folder.mkdir(parents=True)
        for file in added["file"]:
            shutil.copy2(sheet / file, folder / file)
        added[["file", "label"]].to_csv(folder / SHEET_FILE, index=False)
    options = ["--source", "live", "--no-crop", "--invert", "never", "--params", str(params_file)]
    say(f"offering {len(added)} labelled picture(s) to the accepted pool: fashion-accept {batch} {' '.join(options)}")
    if subprocess.run([sys.executable, "-m", "pipeline.commands.accept", str(batch), *options]).returncode != 0:
        raise PipelineError(f"{batch}: the labels are recorded, but fashion-accept did not accept the batch (above)")


def main(argv: list[str] | None = None) -> None:
    def say(line: str) -> None:
        print(f"live: {line}", flush=True)

    def work(arguments):
        params = load_params(LiveParams, arguments.params)
        with workspace_slot(dvc_root(Path(params.labels_file)), "fashion-live", arguments.wait_minutes, say):
            if arguments.action == "sample":
                sample(arguments, params, say)
                return
            added = label(arguments, params, say)
        if arguments.accept:  # after the slot: fashion-accept takes it itself
            accept_labelled(arguments.sheet, added, arguments.params, say)

    run_command("live", configure, work, argv)


if __name__ == "__main__":
    main()
