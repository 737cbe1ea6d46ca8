"""The objectives a search can rank trials by, and which way each is better."""

from __future__ import annotations

OBJECTIVES = ("val_accuracy", "val_loss")


def is_maximised(objective: str) -> bool:
    """Whether trials with a higher `objective` are better: accuracy is, loss is not."""
    return objective == "val_accuracy"


def best_score(scores, objective: str) -> float:
    """The best of one objective's scores (a pandas Series): the highest accuracy, or the lowest loss."""
    return scores.max() if is_maximised(objective) else scores.min()
