"""Pictures from outside the pipeline made into what the model takes, one way down: batches.py (a folder, a
picture or an array as a batch: where accept, predict and drift enter) calls convert.py (one picture to a 28x28
image), which calls files.py (reading the file) and item.py (finding the item in it). options.py names the choices
params.yaml and the command lines offer, so what checks them needs none of the picture code.

Start with batches.py.
"""
