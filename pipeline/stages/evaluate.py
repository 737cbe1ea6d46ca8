"""evaluate: the trained model on the test set: metrics, confusion matrix, classification report, HTML report,
model card."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from pipeline.cli import run_command
from pipeline.data.datasets import dataset_spec
from pipeline.data.pool import batches_line, read_pool_record, read_slices
from pipeline.data.preprocessing import load_prepared
from pipeline.evaluation.model_card import (
    data_section,
    read_unfamiliarity_summary,
    render_model_card,
    unfamiliarity_section,
)
from pipeline.evaluation.scoring import OUTPUTS, EvaluateParams, evaluate, sources_table
from pipeline.files import atomic_path
from pipeline.lineage import lineage
from pipeline.model.network import load_model
from pipeline.model.unfamiliarity import load as load_unfamiliarity
from pipeline.params import load_params, read_section


def main(argv: list[str] | None = None) -> None:
    def configure(parser):
        parser.add_argument("--model", required=True, type=Path, help="the trained model (.keras)")
        parser.add_argument("--test", required=True, type=Path, help="prepared test split (.npz)")
        parser.add_argument("--slices", required=True, type=Path, help="folder of the new sources' test slices")
        parser.add_argument("--pool-record", required=True, type=Path, help="the accepted batches trained on (.json)")
        parser.add_argument("--manifest", required=True, type=Path, help="the ingest manifest, for lineage")
        parser.add_argument("--curve", required=True, type=Path, help="the learning-curve plot from training")
        parser.add_argument(
            "--training-record", type=Path, help="the train stage's timing.json: the precision and device it used"
        )
        parser.add_argument("--dataset", required=True, help="dataset name, for its class names")
        parser.add_argument("--unfamiliarity", required=True, type=Path, help="the unfamiliarity scorer (.npz)")
        parser.add_argument("--unfamiliarity-summary", required=True, type=Path, help="its threshold's summary (.json)")
        for name in OUTPUTS:
            parser.add_argument(f"--{name.replace('_', '-')}", required=True, type=Path, help=f"output: {name}")

    def work(arguments):
        params = load_params(EvaluateParams, arguments.params)
        class_names = dataset_spec(arguments.dataset).class_names
        test_split = load_prepared(arguments.test)
        model = load_model(arguments.model)
        scorer = load_unfamiliarity(arguments.unfamiliarity)
        unfamiliarity_summary = read_unfamiliarity_summary(arguments.unfamiliarity_summary)
        train_params = read_section("train", arguments.params)
        val_fraction = read_section("preprocess", arguments.params)["val_fraction"]
        manifest = json.loads(arguments.manifest.read_text())
        accepted = read_pool_record(arguments.pool_record)
        record = lineage(arguments.manifest, {"train": train_params}, batches_line(accepted))
        if arguments.training_record:
            trained = json.loads(arguments.training_record.read_text())
            record["trained in"] = f"{trained['precision']} on {trained['device']}, {trained['train_seconds']:.0f} s"
        with contextlib.ExitStack() as stack:
            outputs = {name: stack.enter_context(atomic_path(getattr(arguments, name))) for name in OUTPUTS}
            metrics, matrix = evaluate(
                model,
                scorer,
                test_split,
                read_slices(arguments.slices),
                class_names,
                params,
                outputs,
                arguments.curve,
                record,
            )
            card = render_model_card(
                metrics,
                matrix,
                class_names,
                data_section(manifest, val_fraction, accepted),
                sources_table(metrics),
                unfamiliarity_section(unfamiliarity_summary, metrics["unfamiliar"]),
                train_params,
                record,
            )
            outputs["model_card"].write_text(card)
            outputs["lineage"].write_text(json.dumps(record, indent=2) + "\n")
        new_sources = "".join(
            f", {name} {score['accuracy']:.4f} ({score['images']} images)" for name, score in metrics["sources"].items()
        )
        print(
            f"evaluate: test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
            f"{metrics['unfamiliar']:.1%} flagged unfamiliar{new_sources}"
        )

    run_command("evaluate", configure, work, argv)


if __name__ == "__main__":
    main()
