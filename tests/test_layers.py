"""The house's arrows (issue 22, item 3), held by import-linter's contracts in setup.cfg: the front, then the
indexer, then models and db (which never import each other); and the engine never imports the training toolkit
(`models.training`), TensorFlow or Keras, directly or through another module."""
from __future__ import annotations

import configparser
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

try:
    import importlinter  # noqa: F401  (a test extra: without it the contracts would go unchecked, so fail)
except ImportError:
    pytest.fail("import-linter is not installed: pip install -e '.[test]'", pytrace=False)

LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                              "sys.argv[0] = 'lint-imports'; lint_imports_command()"]


def _contracts() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    return config


def test_the_contracts_hold():
    done = subprocess.run([*LINT, "--config", "setup.cfg", "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout, done.stdout


def test_every_engine_module_is_under_the_engine_contract():
    """A new module of the engine must be named among the contract's sources, or nothing would check it: every
    module of `models/` outside `models/training/`, and every module of `facesearch/` but the CLI and the
    toolkit (the fronts of the lab), is listed; `indexer` and `db` are listed whole."""
    sources = set(_contracts()["importlinter:contract:engine"]["source_modules"].split())
    engine = {f"models.{p.stem}" for p in (REPO / "models").glob("*.py") if p.stem != "__init__"}
    engine |= {f"facesearch.{p.stem}" for p in (REPO / "facesearch").glob("*.py")
               if p.stem not in {"__init__", "__main__", "cli", "toolkit"}}
    assert engine | {"indexer", "db"} == sources


def test_the_contracts_catch_an_engine_module_that_reaches_the_lab(tmp_path):
    """The same contracts, on a copy of the house's shape in which detection imports a training module through
    a helper: import-linter must report it broken, naming the chain."""
    for name, text in {
        "facesearch/__init__.py": "", "facesearch/api.py": "import indexer.pipeline\n",
        "indexer/__init__.py": "", "indexer/pipeline.py": "import models.detect\nimport db.schema\n",
        "db/__init__.py": "", "db/schema.py": "",
        "models/__init__.py": "", "models/detect.py": "def f():\n    import models.helper\n",
        "models/helper.py": "import models.training.train\n",
        "models/training/__init__.py": "", "models/training/train.py": "import models.detect\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "setup.cfg").write_text(textwrap.dedent("""\
        [importlinter]
        root_packages =
            facesearch
            indexer
            models
            db
        [importlinter:contract:layers]
        name = layers
        type = layers
        layers =
            facesearch
            indexer
            models | db
        [importlinter:contract:engine]
        name = engine
        type = forbidden
        source_modules =
            facesearch.api
            indexer
            db
            models.detect
        forbidden_modules =
            models.training
        """))
    done = subprocess.run([*LINT, "--config", "setup.cfg", "--no-cache"], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 kept, 1 broken" in done.stdout
    assert "models.detect -> models.helper" in done.stdout and "models.helper -> models.training.train" in done.stdout
