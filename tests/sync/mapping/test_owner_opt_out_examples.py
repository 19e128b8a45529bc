"""``closedloop init`` writes the shipped mappings with ``people.owner`` and ``opt_out``
commented out; uncommented as written, they validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sync.cli import config_cmd
from sync.mapping.catalogue import offline_catalogue
from sync.mapping.validate import validate_file


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mappings folder ``closedloop init`` writes into a new project."""
    project = tmp_path_factory.mktemp("project")
    app = typer.Typer()
    app.command("init")(config_cmd.init_command)
    app.command("noop")(lambda: None)
    config = project / "closedloop.yaml"
    result = CliRunner().invoke(app, ["init", str(config)])
    assert result.exit_code == 0, result.output
    return project / "mappings"


def _uncomment(text: str, key: str) -> str:
    """The text with the commented ``key:`` block (and its first commented value) enabled."""
    lines = text.splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped == f"# {key}:":
            inside = True
            out.append(f"{indent}{key}:")
            continue
        if inside and stripped.startswith("#   ") and not stripped.startswith("#   #"):
            out.append(indent + "  " + stripped[4:])
            continue
        if inside and stripped.startswith("#   #"):
            continue  # the alternatives stay commented
        inside = False
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("marketo-salesforce.yaml", ("owner", "opt_out")),
        ("files-salesforce.yaml", ("owner", "opt_out")),
        ("hubspot-salesforce.yaml", ("opt_out",)),
        ("marketo-hubspot.yaml", ("owner", "opt_out")),
        ("files-hubspot.yaml", ("owner", "opt_out")),
    ],
)
def test_the_commented_examples_validate_once_uncommented(
    name: str, keys: tuple[str, ...], written: Path, tmp_path: Path
) -> None:
    text = (written / name).read_text(encoding="utf-8")
    for key in keys:
        assert f"# {key}:" in text, f"{name} lacks the commented {key} example"
        text = _uncomment(text, key)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")

    report = validate_file(path, offline_catalogue())

    assert report.ok, [str(i) for i in report.issues]
    assert report.model is not None
    if "owner" in keys:
        assert report.model.people.owner is not None
    assert report.model.opt_out is not None
