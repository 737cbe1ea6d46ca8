"""The promotion gate: whether a newly trained model may replace the model in use.

A candidate passes when its accuracy on the original test set drops by at most `max_test_drop` standard errors
of that test set, and its accuracy on each new source's test slice drops by at most `max_source_drop` standard
errors of that slice. Standard errors are binomial, sqrt(p(1-p)/n) at the model in use's accuracy: the noise
of a test set of that size, so a margin means the same on 10,000 test images as on a slice of 1,000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from pipeline.params import param


@dataclass(frozen=True)
class PromoteParams:
    SECTION: ClassVar[str] = "promote"
    max_test_drop: float = param("number", minimum=0)
    max_source_drop: float = param("number", minimum=0)
    keep_refused_experiments: int = param("number", integer=True, minimum=0)


@dataclass
class Decision:
    promoted: bool
    reasons: list[str]  # each comparison that failed, in words; none when promoted
    rows: list[dict] = field(default_factory=list)  # per test set: in use, candidate, change, allowed drop


def standard_error(accuracy: float, images: int) -> float:
    return math.sqrt(accuracy * (1 - accuracy) / images) if images else math.inf


def compare(name: str, in_use: float, candidate: float, images: int, margin: float) -> dict:
    allowed = margin * standard_error(in_use, images)
    return {
        "test set": name,
        "images": images,
        "in use": in_use,
        "candidate": candidate,
        "change": candidate - in_use,
        "allowed drop": allowed,
        "passed": candidate >= in_use - allowed,
    }


def decide(in_use: dict, candidate: dict, params: PromoteParams, must_beat: bool = False) -> Decision:
    """`in_use` and `candidate`: {"accuracy", "test_images", "sources": {name: {"accuracy", "images"}}}, the model in
    use scored on the candidate's source slices. `must_beat` also asks for a higher original test accuracy (a
    tuned challenger must earn its place, not merely keep it)."""
    rows = [
        compare(
            "original test set", in_use["accuracy"], candidate["accuracy"], in_use["test_images"], params.max_test_drop
        )
    ]
    for source, score in candidate["sources"].items():
        before = in_use["sources"][source]["accuracy"]
        rows.append(compare(f"new source {source}", before, score["accuracy"], score["images"], params.max_source_drop))
    reasons = [
        f"accuracy on the {row['test set']} drops {-row['change']:.4f}, more than the {row['allowed drop']:.4f} allowed"
        for row in rows
        if not row["passed"]
    ]
    if must_beat and candidate["accuracy"] <= in_use["accuracy"]:
        reasons.append(f"test accuracy {candidate['accuracy']:.4f} does not beat {in_use['accuracy']:.4f}")
    return Decision(promoted=not reasons, reasons=reasons, rows=rows)


def decision_table(decision: Decision) -> str:
    """The comparisons as a Markdown table, for the flow run's artifact."""
    lines = [
        "| test set | images | in use | candidate | change | allowed drop | passed |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in decision.rows:
        lines.append(
            f"| {row['test set']} | {row['images']:,} | {row['in use']:.4f} | {row['candidate']:.4f} | "
            f"{row['change']:+.4f} | {row['allowed drop']:.4f} | {'yes' if row['passed'] else '**no**'} |"
        )
    return "\n".join(lines)
