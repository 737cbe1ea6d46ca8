"""Entry points that are not DVC stages: fashion-predict (predict), fashion-accept (accept), and the commands the
flows run (adopt, labelling_sheet, score_sources). Wiring only: the work is in the library's families.
"""
