"""What every report is built from: HTML pages that open offline (html), Data Docs made offline (offline_docs), the
headline figures `dvc metrics show` reads (headline), and the index of every report (index_page).

Start with html.py.
"""
