"""ingest: obtain the four IDX files of a dataset, verify them, and place them under data/raw/<dataset>/.

Sources, in order: `ingest.source_dir` when set, the system dataset folder (Debian's dataset-fashion-mnist),
then the download mirrors (pipeline/data/ingestion.py).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import run_command
from pipeline.data.datasets import dataset_spec
from pipeline.data.ingestion import IngestParams, choose_source, ingest_dataset
from pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--out", required=True, type=Path, help="output folder, e.g. data/raw/fashion_mnist")

    def work(arguments):
        params = load_params(IngestParams, arguments.params)
        spec = dataset_spec(params.dataset)
        source = choose_source(params, spec)
        manifest = ingest_dataset(source, spec, arguments.out)
        state = "verified" if manifest["verified"] else "UNVERIFIED (structural checks only)"
        print(f"ingest: {spec.name} from {source.kind} {source.location}: {manifest['counts']} {state}")

    run_command("ingest", configure, work, argv)


if __name__ == "__main__":
    main()
