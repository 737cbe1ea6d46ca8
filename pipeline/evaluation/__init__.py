"""How good a model is: its scores on the test set and each new source's slice with the evaluation report
(scoring), the model card (model_card), and the promotion gate a retrained model must pass (promotion).

Start with scoring.py.
"""
