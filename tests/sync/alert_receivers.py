"""Real local receivers for alert tests: an SMTP server that offers STARTTLS and checks a login
(aiosmtpd, certificate from a trustme CA), and an HTTP server that records what is POSTed."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER = "alerts@example.com"
SMTP_PASSWORD = "smtp-pass-0123456789"


@dataclass
class Mail:
    """One message the SMTP server accepted, and how the session that sent it was secured."""

    sender: str
    recipients: list[str]
    message: Message
    tls: bool
    login: str | None


@dataclass
class Posted:
    """One request the HTTP receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _MailHandler:
    def __init__(self, box: list[Mail]) -> None:
        self.box = box

    async def handle_DATA(self, _server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        login = session.auth_data.login.decode() if session.authenticated else None
        message = message_from_bytes(envelope.content)
        mail = Mail(envelope.mail_from, list(envelope.rcpt_tos), message, bool(session.ssl), login)
        self.box.append(mail)
        return "250 Message accepted for delivery"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == SMTP_USER
        and auth_data.password.decode() == SMTP_PASSWORD
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@dataclass
class SmtpServer:
    """A STARTTLS-only SMTP server on loopback; ``ca_file`` is the CA its certificate is from."""

    port: int
    ca_file: Path
    mails: list[Mail] = field(default_factory=list)
    controller: Any = None

    def start(self, *, offer_starttls: bool = True) -> SmtpServer:
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self.controller = Controller(
            _MailHandler(self.mails), hostname="127.0.0.1", port=self.port,
            tls_context=context if offer_starttls else None, require_starttls=offer_starttls,
            authenticator=_authenticator, auth_require_tls=True,
        )  # fmt: skip
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def smtp_server(folder: Path, *, offer_starttls: bool = True) -> SmtpServer:
    """Start an SMTP server; stop it with ``.stop()``."""
    return SmtpServer(_free_port(), folder / "smtp-ca.pem").start(offer_starttls=offer_starttls)


class _Recorder(BaseHTTPRequestHandler):
    server: _HttpServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.posted.append(Posted(self.path, dict(self.headers.items()), body))
        status = self.server.status
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"no_service")

    def log_message(self, *args: Any) -> None:
        pass


class _HttpServer(ThreadingHTTPServer):
    posted: list[Posted]
    status: int


@dataclass
class HttpReceiver:
    """An HTTP server on loopback recording every POST (answers ``status``, 200 by default)."""

    server: _HttpServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def posted(self) -> list[Posted]:
        return self.server.posted

    def answer(self, status: int) -> None:
        self.server.status = status

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def http_receiver() -> HttpReceiver:
    """Start an HTTP receiver; stop it with ``.stop()``."""
    server = _HttpServer(("127.0.0.1", 0), _Recorder)
    server.posted = []
    server.status = 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return HttpReceiver(server, thread)
