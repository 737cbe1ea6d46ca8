"""Each DVC stage's code deps are exactly the project modules its command imports, so `dvc status` can never call a
stage up to date after a change to code it runs; and the stage entry points stay apart from the library."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "flows")
STAGES_PACKAGE = "pipeline.stages"
ENTRY_POINT_PACKAGES = (f"{STAGES_PACKAGE}.", "pipeline.commands.")
PIPELINE_FILES = (ROOT / "dvc.yaml", ROOT / "tuning" / "dvc.yaml")


def module_file(module: str) -> Path | None:
    """The file of a project module (a package's __init__.py for a package), or None for anything else."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imported_modules(path: Path) -> set[str]:
    """Every project module `path` imports, at the top or inside functions; not those only named for type checkers."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if is_type_checking_block(node):
            # The `if` branch runs for type checkers only; an `else` branch runs for real.
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # The check resolves absolute imports only, which is all the project writes.
            assert node.level == 0, f"{path}:{node.lineno}: relative import; write it as an absolute one"
            found.add(node.module)
            # `from pipeline.drift import check` imports a module, not a name.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {module for module in found if module_file(module) is not None}


def parent_packages(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def import_closure(entry: str) -> set[str]:
    """`entry` and every project module it imports, transitively, with the packages Python runs on the way."""
    seen: set[str] = set()
    pending = [entry]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        pending.extend(parent_packages(module))
        pending.extend(imported_modules(module_file(module)))
    return seen


def code_files(modules: set[str]) -> set[str]:
    """The modules' files as dvc.yaml names them, less the package __init__ files (held free of code, below)."""
    files = (module_file(module).relative_to(ROOT).as_posix() for module in modules)
    return {path for path in files if not path.endswith("__init__.py")}


def stages() -> list[tuple[str, str, dict]]:
    """(dvc.yaml it is in, stage name, stage definition) for every stage of every pipeline file."""
    found = []
    for pipeline_file in PIPELINE_FILES:
        for name, stage in yaml.safe_load(pipeline_file.read_text())["stages"].items():
            found.append((pipeline_file.relative_to(ROOT).as_posix(), name, stage))
    return found


STAGES = stages()


@pytest.mark.parametrize(("pipeline_file", "name", "stage"), STAGES, ids=[name for _, name, _ in STAGES])
def test_each_stage_depends_on_exactly_the_code_it_imports(pipeline_file, name, stage):
    command = re.match(r"python -m (\S+)", stage["cmd"])
    assert command, f"{pipeline_file}: stage {name} must run `python -m {STAGES_PACKAGE}.{name} ...`"
    # One name per stage: the dvc.yaml stage, its entry module (and its params section, its report folder).
    assert command.group(1) == f"{STAGES_PACKAGE}.{name}"
    assert module_file(command.group(1)), f"{pipeline_file}: stage {name} runs {command.group(1)}, which does not exist"
    imported = code_files(import_closure(command.group(1)))
    declared = {dep for dep in stage.get("deps", []) if dep.endswith(".py")}
    missing, extra = sorted(imported - declared), sorted(declared - imported)
    assert not missing and not extra, (
        f"{pipeline_file}: stage {name}'s code deps differ from what it imports: "
        f"add {missing or 'nothing'}, remove {extra or 'nothing'}"
    )


def test_package_init_files_hold_no_code():
    """They run whenever a module of their package is imported, so code in them would be an undeclared dep."""
    for package in (init for name in PACKAGES for init in (ROOT / name).rglob("__init__.py")):
        body = ast.parse(package.read_text()).body
        docstring_only = all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)
        assert docstring_only, f"{package.relative_to(ROOT)} must hold a docstring only"


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def test_no_module_imports_an_entry_point_but_its_own():
    """The library and the flows import no entry point (stage or command), and no entry point imports another."""
    for module, path in project_modules().items():
        entry_points = sorted(
            name
            for name in imported_modules(path)
            if name.startswith(ENTRY_POINT_PACKAGES) and name.count(".") == 2 and name != module
        )
        assert not entry_points, f"{path.relative_to(ROOT)} imports entry points {entry_points}"


def test_the_closure_follows_imports_inside_functions(tmp_path):
    """The check itself: an import inside a function counts, one only for type checkers does not."""
    source = tmp_path / "example.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pipeline.tuning.tuner import SearchClock\n"
        "def load():\n    from pipeline.pictures.batches import load_batch\n    import pipeline.drift.shifts\n"
        "from pipeline.data import idx\n"
        "if TYPE_CHECKING:\n    pass\nelse:\n    from pipeline.lineage import lineage\n"
    )
    expected = {
        "pipeline.data",
        "pipeline.pictures.batches",
        "pipeline.drift.shifts",
        "pipeline.data.idx",
        "pipeline.lineage",
    }
    assert imported_modules(source) == expected


def test_the_stage_package_holds_exactly_the_dvc_stages():
    """pipeline/stages/ is the DVC stages, one module each named as its stage; other commands live elsewhere."""
    listed = subprocess.run(
        [sys.executable, "-m", "dvc", "stage", "list", "-R", ".", "--name-only"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    dvc_stages = {name.rpartition(":")[2] for name in listed}  # tuning/dvc.yaml's are listed as `<file>:<stage>`
    modules = {path.stem for path in (ROOT / "pipeline" / "stages").glob("*.py") if path.stem != "__init__"}
    assert modules == dvc_stages, (
        f"pipeline/stages/ has {sorted(modules - dvc_stages) or 'nothing'} that no dvc.yaml runs, "
        f"and lacks {sorted(dvc_stages - modules) or 'nothing'}; commands that are not stages go to pipeline/commands/"
    )
