"""Whether a batch of images looks like the training data: features from the model (features), statistical tests
calibrated to a stated false-alarm rate (stat_tests), a reference per source of the data on disk (references) and
judging a batch against its source or the mix of sources it looks like (sources), one check end to end (check), its
page (page) and the history of checks (history); shifts.py makes the simulated shifts of `drift.scenario`, which the
tests and benchmarks use too.

Start with check.py.
"""
