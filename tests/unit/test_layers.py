"""Every import points down. Each top-level package sits on a layer; a module may import its
own package and packages on lower layers, never a higher one nor a sibling on its own layer
(api/ and worker/ do not import each other: what both need lives below them)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS: dict[str, int] = {
    "core": 0,  # settings, logging, metrics, small helpers
    "broker": 1,  # the Celery app both sides share
    "catalogue": 1,  # the video models (data)
    "media": 1,  # object storage, video probing, signed links
    "models": 2,  # the database: tables, queries, the state machine
    "migrations": 3,  # Alembic's scripts over the models
    "upstreams": 3,  # one adapter per upstream API family
    "views": 3,  # the job's public view (API responses and webhook bodies)
    "api": 4,
    "worker": 4,
    "sandbox": 4,  # the Kie/imgbb stand-in: a separate server
    "devstack": 5,  # the local stack (development and test tooling)
    "soraq": 6,  # the command line
    "bench": 7,
    "tests": 7,
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_every_import_points_down() -> None:
    wrong = []
    for package, layer in LAYERS.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in imports_of(path):
                target = module.split(".")[0]
                if target == package or target not in LAYERS:
                    continue
                if LAYERS[target] >= layer:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "imports that do not point down:\n" + "\n".join(wrong)


def test_every_package_says_what_it_holds() -> None:
    for package in LAYERS:
        init = ROOT / package / "__init__.py"
        if package in ("bench", "tests") or not init.exists():
            continue
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{package}/__init__.py has no docstring saying what it holds"


def test_no_runtime_state_is_committed() -> None:
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return  # not a clone (an sdist): nothing to check
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    state = [
        path
        for path in tracked
        if path.startswith(("var/", "control/", ".venv/"))
        or path.endswith((".db", ".pyc", "celerybeat-schedule", ".log"))
        or "/__pycache__/" in path
        or ".egg-info/" in path
    ]
    assert not state, f"runtime state is tracked: {state}"


def test_routes_do_not_import_each_other() -> None:
    """What several routers share lives in api/params.py or a service, not in a router."""
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / "api" / "routes").glob("*.py"))
        for line, module in imports_of(path)
        if module.startswith("api.routes")
    ]
    assert not wrong, "\n".join(wrong)
