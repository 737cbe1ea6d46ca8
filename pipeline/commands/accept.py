"""accept: the gate for labelled batches; each batch that passes its Great Expectations suite joins the accepted pool.

    fashion-accept data/incoming/week-49 [more batches ...] [--source phone-photos]

A batch is a folder: pictures with a labels.csv (columns file and label), one .npz with images and labels, or an IDX
images file with its labels file (pipeline/accept/incoming.py). An accepted batch becomes data/pool/<batch>/, tracked by
data/pool/<batch>.dvc (`dvc add`); a rejected one adds nothing and is named in one line with the expectations it
broke. Either way its Data Docs and summary are in reports/accept/<batch>/. Each batch is decided on its own; the
command fails if any was rejected. Not a DVC stage: it appends to the pool that the preprocess stage reads.

It takes the workspace's slot first, as a flow run does (pipeline/workspace_slot.py): a batch never joins the pool
while a run reads it, and a run never meets the lock of its `dvc add`. It waits up to accept.wait_minutes for the
slot (and for DVC's own lock, held by a `dvc` command typed in a terminal), naming what it waits for.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from pipeline.accept.gate import AcceptParams, Gate, accept_batch
from pipeline.accept.pool_append import dvc_root
from pipeline.cli import run_command
from pipeline.data.datasets import dataset_spec
from pipeline.data.preprocessing import load_prepared
from pipeline.errors import PipelineError
from pipeline.params import load_params, read_section
from pipeline.pictures.options import INVERT_CHOICES
from pipeline.team.remote import RemoteFailed, default_remote, push
from pipeline.workspace_slot import workspace_slot


def configure(parser) -> None:
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("batches", nargs="+", type=Path, help="batch folders, e.g. data/incoming/week-49")
    parser.add_argument("--source", help="where the batches come from, kept per batch (default: the batch's name)")
    parser.add_argument("--pool", type=Path, default=Path("data/pool"), help="the accepted pool (default: %(default)s)")
    parser.add_argument(
        "--test", type=Path, default=Path("data/prepared/test.npz"), help="test images (default: %(default)s)"
    )
    parser.add_argument(
        "--docs-root", type=Path, default=Path("reports/accept"), help="reports per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--web-assets", type=Path, default=Path("node_modules"), help="for offline Data Docs (default: %(default)s)"
    )
    parser.add_argument("--dataset", help="whose class names the labels use (default: ingest.dataset in --params)")
    parser.add_argument("--invert", choices=INVERT_CHOICES, help="light backgrounds (default: accept.invert)")
    parser.add_argument(
        "--no-crop", dest="crop", action="store_false", default=None, help="pictures are already cropped to the item"
    )
    parser.add_argument("--wait-minutes", type=float, help="for a busy workspace (default: accept.wait_minutes)")


def share_pool(root: Path, say) -> None:
    """Push the accepted batches to the team's DVC remote, when one is configured. The batch is accepted either way:
    a failed push is said in one line, and the next push (a flow's, `fashion-team push`) sends it."""
    try:
        remote = default_remote(root)
        if remote is None:
            return
        push(root, remote)
    except RemoteFailed as error:
        say(f"warning: accepted here but not pushed: {error}")
        return
    say(f"pushed the pool to {remote}; commit its .dvc files for the team to see them")


def main(argv: list[str] | None = None) -> None:
    def say(line: str) -> None:
        print(f"accept: {line}", flush=True)

    def work(arguments):
        params = load_params(AcceptParams, arguments.params)
        params = replace(
            params,
            invert=arguments.invert or params.invert,
            crop=params.crop if arguments.crop is None else arguments.crop,
            wait_minutes=params.wait_minutes if arguments.wait_minutes is None else arguments.wait_minutes,
        )
        dataset = arguments.dataset or read_section("ingest", arguments.params)["dataset"]
        gate = Gate(
            params=params,
            class_names=dataset_spec(dataset).class_names,
            test_images=load_prepared(arguments.test)[0],
            pool_dir=arguments.pool,
            docs_root=arguments.docs_root,
            web_assets=arguments.web_assets,
            source=arguments.source,
            echo=say,
        )
        rejections = []
        with workspace_slot(dvc_root(arguments.pool), "fashion-accept", params.wait_minutes, say):
            for folder in arguments.batches:
                try:
                    for line in accept_batch(folder, gate):
                        say(line)
                except PipelineError as error:
                    # Each batch is decided on its own: one rejected leaves the others' decisions standing.
                    rejections.append(f"{folder.resolve().name}: {error}")
        if len(rejections) < len(arguments.batches):
            share_pool(dvc_root(arguments.pool), say)
        for line in rejections[:-1]:
            print(f"accept: error: {line}", file=sys.stderr)
        if rejections:
            raise PipelineError(rejections[-1])

    run_command("accept", configure, work, argv)


if __name__ == "__main__":
    main()
