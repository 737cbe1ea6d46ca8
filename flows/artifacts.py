"""The pipeline's files the flows read or hand on, relative to the workspace: the one place the flows name them.

dvc.yaml owns these paths; tests/flows/test_artifacts.py fails when one here is neither a path dvc.yaml names nor inside
a folder it names, so moving an output or a folder there cannot leave a flow reading a path no stage knows.
"""

from __future__ import annotations

from pathlib import Path

MODEL = Path("models/model.keras")
CHECKPOINT = Path("models/checkpoint")  # the train stage's resumable epochs
POOL = Path("data/pool")  # the accepted batches, one folder each (fashion-accept)
PREPARED_POOL_RECORD = Path("data/prepared/pool.json")  # the accepted batches a model was trained on
SLICES = Path("data/prepared/slices")  # each new source's fixed test slice
DRIFT_CHECKS = Path("reports/drift/checks")  # a folder per drift check, none ever rewritten
DRIFT_HISTORY = DRIFT_CHECKS / "history.jsonl"
EVALUATION_METRICS = Path("reports/evaluate/metrics.json")
PER_CLASS_METRICS = Path("reports/evaluate/per_class.json")
BEST_PARAMS = Path("reports/tune/best_params.yaml")  # the tune stage's best trial, as train-section values
LIVE_SUMMARY = Path("reports/live/summary.json")  # the live stage's verdict on the model in use
LIVE_PAGE = Path("reports/live/index.html")

# The reports a person opens after a run, by title, in the order a run's summary links them (those that exist).
REPORT_PAGES = {
    "All reports, with their lineage": Path("reports/index.html"),
    "Evaluation report": Path("reports/evaluate/report.html"),
    "Model card": Path("reports/evaluate/model_card.html"),
    "Data validation (Great Expectations Data Docs)": Path("reports/validate/data_docs/index.html"),
    "Learning curve": Path("reports/train/learning_curve.png"),
    "Sample training images": Path("reports/preprocess/sample_grid.png"),
}

# Every path above, for the test that holds them against dvc.yaml.
PIPELINE_PATHS = (
    MODEL,
    CHECKPOINT,
    POOL,
    PREPARED_POOL_RECORD,
    SLICES,
    DRIFT_CHECKS,
    DRIFT_HISTORY,
    EVALUATION_METRICS,
    PER_CLASS_METRICS,
    BEST_PARAMS,
    LIVE_SUMMARY,
    LIVE_PAGE,
    *REPORT_PAGES.values(),
)
