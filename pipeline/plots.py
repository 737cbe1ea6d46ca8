"""matplotlib drawing into PNG files, on any machine; each picture is drawn beside the code it belongs to."""

from __future__ import annotations


def headless_pyplot():
    """matplotlib.pyplot drawing into files only, on any machine (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
