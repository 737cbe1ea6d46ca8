"""Working as a team: one DVC remote every clone pulls from and pushes to, and the registry of model versions.

Open `remote.py` first (pull, push, and the one line each failure gives), then `registry.py` (every promotion a
GTO version; the rollback) and `git.py` (what a flow commits, as whom, and where it pushes). The command is
`fashion-team` (pipeline/commands/team.py); docs/team.md says how to set a team up.
"""
