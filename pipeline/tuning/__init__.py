"""The hyperparameter search: its space and params (search_space), the KerasTuner search (tuner, with
keras_tuner_patches and workers for parallel trials), the objectives it ranks by, its results and report, and
adopting the best trial's values into params.yaml (adoption).

Start with tuner.py.
"""
