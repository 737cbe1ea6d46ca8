"""The datasets and their files: raw IDX files fetched and verified (ingestion), checked (validation), split into
the prepared arrays (preprocessing), with the accepted pool of new labelled data joined in (pool), and where each
prepared image comes from (sources).

Start with datasets.py: the datasets this pipeline knows, their class names and files; then the module named for the
stage you are following.
"""
