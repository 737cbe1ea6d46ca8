"""What the Prefect flow adds to `dvc repro` when every stage is up to date, measured in the same run.

In a scratch copy of the repository (with a model that trains in seconds, since only the orchestration is
measured), runs the pipeline once, then times, with nothing to do:
- `dvc repro`, the bare reference;
- the training_pipeline flow called in this process against a running Prefect server (one task per stage);
- `python -m flows.training`, a whole new process that imports Prefect and starts a temporary server.
Target: the flow adds at most 8 s over `dvc repro`.

    python bench/flow_overhead.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import yaml
from workspace import REPO_ROOT, scratch_copy, timed, use_this_environment

FAST_TRAIN = {
    "conv_filters": [8, 16],
    "dense_units": 32,
    "batch_norm": False,
    "conv_dropout": 0.0,
    "dense_dropout": 0.0,
    "augment_flip": False,
    "flip_averaging": False,
    "batch_size": 256,
    "epochs": 1,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    use_this_environment()
    # Prefect's home and test database stay out of the project's .prefect/.
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="bench-prefect-")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    root = scratch_copy()
    try:
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["train"].update(FAST_TRAIN)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        timed(["dvc", "repro"], root)
        dvc_seconds = [timed(["dvc", "repro"], root) for _ in range(rounds)]
        flow_seconds = time_flow_runs(root, rounds)
        cli_seconds = [timed([sys.executable, "-m", "flows.training", "--workspace", str(root)], REPO_ROOT)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    dvc, flow = statistics.median(dvc_seconds), statistics.median(flow_seconds)
    print(f"dvc repro, all up to date:               {dvc:6.2f} s (median of {rounds})")
    print(f"training_pipeline flow, all up to date:  {flow:6.2f} s (median of {rounds}; running server)")
    print(f"flow adds {flow - dvc:+.2f} s over dvc repro (target <= 8 s); flow / dvc repro = {flow / dvc:.1f}x")
    print(f"python -m flows.training, new process with a temporary server: {cli_seconds[0]:.2f} s")


def time_flow_runs(root, rounds: int) -> list[float]:
    from prefect.testing.utilities import prefect_test_harness

    from flows.training import training_pipeline

    seconds = []
    with prefect_test_harness(server_startup_timeout=120):
        for _ in range(rounds):
            start = time.perf_counter()
            stage_runs = training_pipeline(workspace=str(root))
            seconds.append(time.perf_counter() - start)
            assert not any(run.ran for run in stage_runs), "expected every stage to be up to date"
    return seconds


if __name__ == "__main__":
    main()
