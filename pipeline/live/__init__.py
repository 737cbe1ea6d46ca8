"""Live accuracy: labelled samples of the traffic fashion-serve captured, and how right each model version is on it.

sampling.py picks what to label (a random sample, kept apart, and hard cases), labels.py takes the labels back,
statistics.py and performance.py measure each version, page.py shows it; the live stage (pipeline/stages/live.py)
writes the page and the verdict."""
