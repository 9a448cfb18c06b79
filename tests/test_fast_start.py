"""The command line starts without the heavy libraries: --help and the package import stay cheap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("torch", "pandas", "sklearn", "scipy", "plotly", "pyarrow")


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_trainground_is_light():
    assert _loaded_after("import trainground") == set()


def test_cli_help_is_light():
    code = "from typer.testing import CliRunner\nfrom trainground.cli import app\nassert CliRunner().invoke(app, ['--help']).exit_code == 0"
    assert _loaded_after(code) == set()


def test_public_names_still_resolve():
    code = "import trainground\nassert trainground.fit.__name__ == 'fit'\nassert trainground.Guard.__name__ == 'Guard'"
    assert "torch" in _loaded_after(code)


def test_a_missing_input_is_refused_before_the_heavy_imports(tmp_path):
    code = (
        "from typer.testing import CliRunner\nfrom trainground.cli import app\n"
        f"for args in (['fit', {str(tmp_path / 'nope.csv')!r}, '--target', 'y'], ['report', {str(tmp_path / 'run')!r}],\n"
        f"             ['predict', {str(tmp_path / 'run')!r}, 'x.csv'], ['diagnose', {str(tmp_path / 'nope.csv')!r}]):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 2, (args, result.output)\n"
        "    assert 'no such' in result.output, result.output"
    )
    assert _loaded_after(code) == set()


def test_all_lists_exactly_the_lazy_names():
    import trainground

    assert trainground.__all__ == sorted(trainground._EXPORTS)
