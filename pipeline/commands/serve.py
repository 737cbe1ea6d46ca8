"""fashion-serve: the model in use over HTTP (pipeline/serving/, docs/serving.md).

    fashion-serve                      # http://127.0.0.1:8000, settings from params.yaml's serve section
    fashion-serve --host 0.0.0.0 --port 9000

It answers as soon as it listens: /health says 503 until the model and its unfamiliarity scorer are loaded, then
200. It swaps to a new pair within serve.reload_seconds of the files changing (a promotion), without a restart.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from pipeline.cli import run_command
from pipeline.data.datasets import dataset_spec
from pipeline.errors import PipelineError
from pipeline.params import load_params, read_section
from pipeline.serving.params import ServeParams


def configure(parser) -> None:
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--host", help="address to listen on (default: serve.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: serve.port)")
    parser.add_argument("--model", type=Path, default=Path("models/model.keras"), help="default: %(default)s")
    parser.add_argument(
        "--unfamiliarity",
        type=Path,
        help="the model's unfamiliarity scorer (default: unfamiliarity.npz beside --model)",
    )
    parser.add_argument(
        "--capture-folder", help="where traffic is kept for the drift monitor (default: serve.capture_folder)"
    )
    parser.add_argument("--no-capture", action="store_true", help="keep nothing of the traffic")


def main(argv: list[str] | None = None) -> None:
    def work(arguments):
        params = load_params(ServeParams, arguments.params)
        overrides = {"host": arguments.host, "port": arguments.port, "capture_folder": arguments.capture_folder}
        params = dataclasses.replace(params, **{key: value for key, value in overrides.items() if value is not None})
        if arguments.no_capture:
            params = dataclasses.replace(params, capture=False)
        if not 1 <= params.port < 65536:
            raise PipelineError(f"--port must be between 1 and 65535, got {params.port}")
        if not arguments.model.is_file():
            raise PipelineError(f"{arguments.model}: model file not found (run `dvc repro` or `make pipeline` first)")
        class_names = dataset_spec(read_section("ingest", arguments.params)["dataset"]).class_names
        serve(
            params,
            class_names,
            arguments.model,
            arguments.unfamiliarity or arguments.model.with_name("unfamiliarity.npz"),
        )

    run_command("fashion-serve", configure, work, argv)


def serve(params: ServeParams, class_names: tuple[str, ...], model: Path, scorer: Path) -> None:
    import uvicorn

    from pipeline.serving.app import Service, create_app

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = create_app(Service(params, class_names, model, scorer))
    print(f"fashion-serve: listening on http://{params.host}:{params.port} (loading {model})", flush=True)
    uvicorn.run(app, host=params.host, port=params.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
