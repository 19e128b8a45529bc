"""The container's recipe: the README's container steps match the Dockerfile, the Dockerfile runs on
a base without a ``python`` binary, and requirements.lock pins what pyproject.toml asks for.

The image itself is built and run by ``scripts/container-smoke.sh`` (CI runs it); these tests
catch drift between the documented commands and the recipe without an engine.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import typer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sync.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, rest = stripped.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, rest in _dockerfile():
        if instruction == "ENV":
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def _last(instruction: str) -> str:
    return [rest for name, rest in _dockerfile() if name == instruction][-1]


def _readme_commands() -> list[list[str]]:
    """The ``$ ...`` command lines of the README's Container section and the inline
    ``docker run ...`` examples of its prose, split into words."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Container\n", 1)[1].split("\n## ", 1)[0]
    lines = [m.group(1) for m in re.finditer(r"^\$ (.+)$", section, re.MULTILINE)]
    lines += re.findall(r"`(docker (?:run|build) [^`]+)`", section)
    return [shlex.split(line) for line in lines]


def _docker_runs() -> list[tuple[dict[str, list[str]], list[str]]]:
    """``(options, command after the image)`` of each documented ``docker run``."""
    with_value = {"-v", "-p", "--user", "--env-file", "--name", "-e"}
    runs = []
    for words in _readme_commands():
        if words[:2] != ["docker", "run"]:
            continue
        options: dict[str, list[str]] = {}
        rest = words[2:]
        while rest and rest[0].startswith("-"):
            option = rest.pop(0)
            options.setdefault(option, []).append(rest.pop(0) if option in with_value else "")
        assert rest, f"no image in {shlex.join(words)}"
        runs.append((options, rest[1:]))
    return runs


def test_the_readme_documents_runs_and_builds() -> None:
    commands = [" ".join(words[:2]) for words in _readme_commands()]
    assert commands.count("docker build") >= 2
    assert commands.count("docker run") >= 4


def test_documented_mounts_land_where_the_image_reads_and_writes() -> None:
    env = _env()
    config_file = env["CLOSEDLOOP_CONFIG"]
    config_dir = str(Path(config_file).parent)
    ledger_path = urlsplit(env["CLOSEDLOOP_DATABASE_URL"]).path.removeprefix("/")
    ledger_dir = str(Path(ledger_path).parent)
    assert _last("WORKDIR") == ledger_dir
    targets = {config_dir: "the config folder", config_file: "the config file"}
    targets[ledger_dir] = "the ledger"
    seen = set()
    for options, _command in _docker_runs():
        for volume in options.get("-v", []):
            target = volume.split(":")[1]
            assert target in targets, f"README mounts {volume!r}; the image uses {targets}"
            seen.add(targets[target])
    assert seen == set(targets.values())


def test_documented_ports_users_and_commands_match_the_image() -> None:
    exposed = _last("EXPOSE")
    cmd = _last("CMD")
    assert f'"--port", "{exposed}"' in cmd
    user = _last("USER")
    assert user == "999:999"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Container\n", 1)[1].split("\n## ", 1)[0]
    assert "uid 999" in section
    for chown in re.findall(r"chown -R (\S+) ", section):
        assert chown == user, f"README gives secrets to {chown}, the image runs as {user}"
    commands: dict[str, object] = getattr(typer.main.get_command(app), "commands", {})
    assert "serve" in commands
    for options, command in _docker_runs():
        for port in options.get("-p", []):
            assert port.split(":")[-1] == exposed
        if command:
            assert command[0] in commands, f"README runs unknown `{command[0]}`"
        if command[:1] == ["init"]:
            assert command[1] == _env()["CLOSEDLOOP_CONFIG"]


def test_documented_build_args_and_offline_build_match_the_dockerfile() -> None:
    args = {rest.split("=")[0] for name, rest in _dockerfile() if name == "ARG"}
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    wheel_commands = 0
    for words in _readme_commands():
        for index, word in enumerate(words):
            if word == "--build-arg":
                assert words[index + 1].split("=")[0] in args
        if words[:2] == ["pip", "wheel"]:
            wheel_commands += 1
            lock = words[words.index("-r") + 1]
            wheelhouse = words[words.index("-w") + 1]
            assert f"-r {lock}" in dockerfile
            assert f"[ -d {wheelhouse} ]" in dockerfile
            assert f"--find-links {wheelhouse}" in dockerfile
            assert f"!{lock}" in ignored
            assert f"!{wheelhouse}" in ignored
    assert wheel_commands == 1


def test_the_dockerfile_needs_no_python_binary() -> None:
    """Plain Debian has ``python3`` only: every command names python3 or the venv's python."""
    for instruction, rest in _dockerfile():
        if instruction in {"RUN", "CMD", "HEALTHCHECK", "ENTRYPOINT"}:
            bare = re.findall(r"(?<![/\w])python(?![\w.])", rest)
            assert not bare, f"{instruction} calls a bare `python`: {rest}"
    assert "/opt/closedloop/bin/python" in _last("HEALTHCHECK")


def test_the_image_ships_its_mappings_where_a_lone_config_file_finds_them() -> None:
    env = _env()
    run = " ".join(rest for name, rest in _dockerfile() if name == "RUN")
    config_dir = Path(env["CLOSEDLOOP_CONFIG"]).parent
    shipped = env["CLOSEDLOOP_MAPPINGS_DIR"]
    assert f"ln -s {shipped} {config_dir}/mappings" in run
    assert any(name == "COPY" and rest == f"mappings {shipped}" for name, rest in _dockerfile())


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"requirements.lock: {line!r} is not pinned with =="
            key = canonicalize_name(name)
            assert key not in pins, f"requirements.lock pins {name} twice"
            pins[key] = version
    return pins


def test_requirements_lock_pins_every_dependency_within_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = _lock()
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {requirement.name}=={pins[name]}, pyproject.toml asks "
            f"{requirement.specifier}: regenerate it (scripts/lock_requirements.py)"
        )
    for extra_package in ("psycopg-binary", "cryptography"):  # psycopg[binary], pyjwt[crypto]
        assert extra_package in pins


@pytest.mark.parametrize("script", ["scripts/container-smoke.sh", ".ci/run"])
def test_ci_runs_the_container_smoke(script: str) -> None:
    text = (ROOT / script).read_text(encoding="utf-8")
    if script == ".ci/run":
        assert "scripts/container-smoke.sh" in text
    else:
        assert "closedloop init /etc/closedloop/closedloop.yaml" in text
        assert ":/etc/closedloop:ro" in text
        assert ":/var/lib/closedloop" in text


def test_the_dockerfile_pulls_nothing_but_its_base() -> None:
    """An offline build must not fetch a BuildKit frontend (``# syntax=``) or another image."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE)
    bases = [rest.split()[0] for name, rest in _dockerfile() if name == "FROM"]
    assert bases == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
