"""`closedloop sandbox serve`: prints where and how to connect, serves, and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandbox import credentials
from sandbox.cli import main, parse_seed


def _read_banner(process: subprocess.Popen[str], deadline_s: float = 60.0) -> list[str]:
    """Lines printed until the banner's last line (or the process ended)."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "Ctrl-C stops it" in line:
            break
    return lines


def test_serve_prints_urls_and_credentials_answers_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    ca_file = tmp_path / "certs" / "sandbox-ca.pem"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-m", "sandbox.cli", "serve", "--seed", "7", "--size", "60",
        "--port-salesforce", "0", "--port-hubspot", "0", "--port-marketo", "0",
        "--ca-file", str(ca_file), "--latency-ms", "1",
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        _serve_and_stop(process, ca_file)


def _serve_and_stop(process: subprocess.Popen[str], ca_file: Path) -> None:
    try:
        banner = "\n".join(_read_banner(process))
        assert "Ctrl-C stops it" in banner, banner + (
            process.stderr.read() if process.stderr else ""
        )
        urls = dict(re.findall(r"^(Salesforce|HubSpot|Marketo) +(\S+)", banner, re.MULTILINE))
        assert urls["Salesforce"].startswith("https://127.0.0.1:")
        assert credentials.HUBSPOT_TOKEN in banner
        assert credentials.SALESFORCE_SESSION_ID in banner
        assert str(ca_file) in banner
        assert ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")

        world = httpx.get(f"{urls['HubSpot']}/__sandbox/world", trust_env=False).json()
        assert world["seed"] == 7
        assert world["counts"]["people"] >= 60
        latency = httpx.get(f"{urls['Marketo']}/__sandbox/latency", trust_env=False).json()
        assert latency == {"ms": 1}

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_bad_fault_spec_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--faults", "hubspot:429=lots"])
    assert exited.value.code == 2
    assert "hubspot:429=lots" in capsys.readouterr().err


def test_a_bad_seed_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--seed", "many"])
    assert exited.value.code == 2
    assert "--seed" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "seed"), [("demo", 42), ("none", None), ("7", 7), (" 12 ", 12)])
def test_seed_options_name_the_demo_an_empty_sandbox_or_a_number(
    text: str, seed: int | None
) -> None:
    assert parse_seed(text) == seed
