"""The architecture holds: .importlinter's layers contract (no import upwards, none across siblings)
and no import circles inside any package. CI runs `lint-imports` too; this runs it with the tests."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_contracts_are_kept(monkeypatch):
    cli = pytest.importorskip("importlinter.cli", reason="import-linter is in the test extras")
    monkeypatch.chdir(ROOT)
    assert cli.lint_imports(config_filename=os.path.join(ROOT, ".importlinter"), no_cache=True, no_logo=True) == 0


def test_no_module_over_400_lines():
    long = []
    for folder, _, files in os.walk(os.path.join(ROOT, "raypose")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    n = sum(1 for _ in f)
                if n > 400:
                    long.append(f"{os.path.relpath(path, ROOT)} ({n})")
    assert not long, f"modules over 400 lines (split them by concern): {long}"


def test_every_package_says_what_it_holds():
    for folder, _, files in os.walk(os.path.join(ROOT, "raypose")):
        if "__init__.py" in files and "__pycache__" not in folder:
            with open(os.path.join(folder, "__init__.py"), encoding="utf-8") as f:
                text = f.read()
            assert text.lstrip().startswith('"""'), f"{os.path.relpath(folder, ROOT)}/__init__.py: no docstring"
