"""`python -m flows.apply_experiment <name>`: `dvc exp apply <name>`, checking out the main pipeline's outputs only.

`dvc exp apply` checks out every stage of every dvc.yaml, and tuning/dvc.yaml's search outputs are never in the
cache of a workspace that has not tuned, so it fails there after changing params.yaml and dvc.lock. Its Python
API takes the checkout's targets.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    [name] = sys.argv[1:] if argv is None else argv
    try:
        with Repo(".") as repo:
            repo.experiments.apply(name, targets=["dvc.yaml"])
    except DvcException as error:
        sys.exit(f"exp apply: error: {' '.join(str(error).split())}")
    print(f"applied experiment {name} to the workspace")


if __name__ == "__main__":
    main()
