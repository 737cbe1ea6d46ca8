"""New labelled data into the accepted pool: a labelling sheet for people to fill in (labelling), an incoming
batch read (incoming), judged by a Great Expectations gate (gate, with its suite and near_duplicates), and appended
to data/pool/ (pool_append).

Start with gate.py: accept_batch is the whole path of one batch.
"""
