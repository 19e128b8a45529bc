"""YAML documents past closedloop's limits are refused at file:line:col with exit 2, cheaply.

The alias bomb ("billion laughs") is run through the real CLI in a child process whose address
space is capped (so a loader that expands it fails fast instead of eating the machine) and which
reports its own peak resident memory when it exits.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.errors import ConfigError
from sync.yamlfile import MAX_ALIASES, MAX_BYTES, MAX_DEPTH, load_yaml, parse_yaml

ROOT = Path(__file__).resolve().parents[2]
# Nine lines, 9**9 (387 million) strings once expanded.
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)
# The child's whole address space: room for Python and closedloop, not for the expanded bomb.
ADDRESS_SPACE = 1536 * 1024 * 1024
PEAK_LIMIT_KB = 150 * 1024
# The child's own peak (VmHWM): ru_maxrss would also count the test process's memory at the
# fork, which Linux carries across exec into the child's figure.
_REPORTING_MAIN = """
import sys
from sync.cli import main
try:
    main(sys.argv[1:])
finally:
    with open("/proc/self/status", encoding="ascii") as status:
        peak = next(int(ln.split()[1]) for ln in status if ln.startswith("VmHWM:"))
    sys.stderr.write(f"\\npeak-rss-kb={peak}\\n")
"""


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_bounded(*args: str, cwd: Path) -> tuple[int, str, int]:
    """``closedloop ARGS`` in a memory-capped child: exit code, stderr, peak RSS in KB."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLOSEDLOOP_LOG_LEVEL": "error"}
    done = subprocess.run(
        [sys.executable, "-c", _REPORTING_MAIN, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_cap_memory,
        check=False,
    )
    peaks = [ln for ln in done.stderr.splitlines() if ln.startswith("peak-rss-kb=")]
    peak = int(peaks[-1].split("=", 1)[1]) if peaks else -1
    return done.returncode, done.stderr, peak


def test_an_alias_bomb_in_the_config_is_refused_at_its_alias_with_exit_2_in_little_memory(
    tmp_path: Path,
) -> None:
    (tmp_path / "closedloop.yaml").write_text(BOMB, encoding="utf-8")

    code, err, peak = run_bounded("config", "check", "--config", "closedloop.yaml", cwd=tmp_path)

    assert code == 2, err
    assert "Traceback" not in err
    assert "MemoryError" not in err
    # Line 6 is where *e first makes the document pass the limit.
    assert "closedloop.yaml:6:8:" in err
    assert "alias *e brings the document past 100,000 values once aliases are expanded" in err
    assert 0 < peak < PEAK_LIMIT_KB


def test_an_alias_bomb_in_a_mapping_file_is_refused_the_same_way(tmp_path: Path) -> None:
    mapping = tmp_path / "bomb.yaml"
    mapping.write_text("schema_version: 1\n" + BOMB, encoding="utf-8")

    code, err, peak = run_bounded("mappings", "validate", str(mapping), "--offline", cwd=tmp_path)

    assert code == 2, err
    assert "Traceback" not in err
    assert f"{mapping}:7:8:" in err
    assert "alias *e brings the document past 100,000 values" in err
    assert 0 < peak < PEAK_LIMIT_KB


def _problem(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "closedloop.yaml")
    assert caught.value.exit_code == 2
    return str(caught.value.issues[0])


def test_collections_nested_too_deep_are_refused_where_they_pass_the_limit() -> None:
    text = "a: " + "[" * (MAX_DEPTH + 10) + "1" + "]" * (MAX_DEPTH + 10) + "\n"

    problem = _problem(text)

    # The top-level mapping is level 1, so the limit is passed by the 64th "[" (column 4 + 63).
    assert problem.startswith(f"closedloop.yaml:1:{4 + MAX_DEPTH - 1}: ")
    assert f"collections nested more than {MAX_DEPTH} deep" in problem


def test_an_alias_inside_its_own_anchor_is_refused_instead_of_recursing() -> None:
    problem = _problem("pipelines: &p\n  loop: *p\n")

    assert problem.startswith("closedloop.yaml:2:9: ")
    assert "alias *p is inside its own anchor &p" in problem


def test_more_aliases_than_the_limit_are_refused_at_the_first_one_past_it() -> None:
    lines = ["base: &b 1", *(f"k{n}: *b" for n in range(MAX_ALIASES + 5))]

    problem = _problem("\n".join(lines) + "\n")

    assert problem.startswith(f"closedloop.yaml:{MAX_ALIASES + 2}:")
    assert f"more than {MAX_ALIASES} aliases" in problem


def test_a_file_larger_than_the_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "closedloop.yaml"
    path.write_text("# padding\n" * (MAX_BYTES // 10 + 10) + "version: 1\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_yaml(path)

    assert str(caught.value.issues[0]).startswith(f"{path}:1:1: ")
    assert "larger than 1,024 KB" in str(caught.value)


def test_ordinary_anchors_and_aliases_still_read_as_before() -> None:
    text = (
        "defaults: &defaults {schedule: {every: 15m}, batch_size: 500}\n"
        "one: *defaults\n"
        "two: [*defaults, *defaults]\n"
    )

    located = parse_yaml(text, "closedloop.yaml")

    expected = {"schedule": {"every": "15m"}, "batch_size": 500}
    assert located.data == {"defaults": expected, "one": expected, "two": [expected, expected]}
