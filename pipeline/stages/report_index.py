"""report_index: reports/index.html, one page linking every report with where it came from.

Links are relative, so the page and the reports open from disk, offline, wherever the folder is copied.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import run_command
from pipeline.data.pool import read_pool
from pipeline.files import atomic_path
from pipeline.reports.index_page import render_index


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--reports", required=True, type=Path, help="the reports folder")
        parser.add_argument("--out", required=True, type=Path, help="output: the index page (.html)")
        parser.add_argument("--pool", required=True, type=Path, help="the accepted pool (data/pool)")

    def work(arguments):
        page = render_index(arguments.reports, arguments.out.parent, read_pool(arguments.pool))
        with atomic_path(arguments.out) as staging:
            staging.write_text(page)
        print(f"report_index: {arguments.out}")

    run_command("report_index", configure, work, argv)


if __name__ == "__main__":
    main()
