"""Where the images of a prepared split come from: the dataset's own ("original") or an accepted source.

Apart from pipeline/data/pool.py, which preprocess runs: reading the layout does not change how it is written.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError

ORIGINAL_SOURCE = "original"  # the dataset's own images, as the drift references name their source


def split_sources(record: list[dict], split: str, total: int) -> np.ndarray:
    """The source of each image of a prepared split ("train" or "val"), as preprocess lays it out
    (pipeline/stages/preprocess.py): the original dataset's images first, then each accepted batch's share, in the
    order of the record (the split's pool.json)."""
    from_pool = [(entry["source"], entry[split]) for entry in record]
    originals = total - sum(count for _, count in from_pool)
    if originals < 0:
        raise PipelineError(
            f"the {split} split holds {total} images, fewer than its accepted batches' {total - originals}"
        )
    return np.array(
        [ORIGINAL_SOURCE] * originals + [source for source, count in from_pool for _ in range(count)], dtype=str
    )
