"""Message channels against real servers on loopback: an aiosmtpd SMTP server (plain, STARTTLS
and implicit TLS with trustme certificates, AUTH), and a werkzeug HTTP server standing in for
the SMS gateway. What matters most is certainty: `NotSent` only when nothing was taken."""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from urllib3.exceptions import ProtocolError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from hekta_redcap.core.errors import ConfigError, HektaError
from hekta_redcap.core.settings import Settings
from hekta_redcap.followup.channels import (
    Channels,
    FileOutbox,
    InvalidContact,
    Message,
    NotSent,
    SmsGateway,
    SmtpChannel,
    UnknownOutcome,
    normalise_email,
    normalise_phone,
)

PASSWORD = "s3cret-Password-4711"
TOKEN = "tok-0123456789abcdef"
TO = "ola.nordmann@example.no"
SUBJECT = "Påminnelse: spørreskjema om ærend og øving"
BODY = "Hei!\nVi minner om spørreskjemaet – svar innen fredag.\nÆØÅ æøå\n"
KEY = "hekta/17/followup_6m_arm_1/invite/email"
# A message's reference: the first 16 hex digits of its key's SHA-256 (sha256sum of the key).
KEY_REFERENCE = "54bb15ddf558988a"
SMS_KEY, SMS_REFERENCE = "hekta/17/m6/sms", "dbd7297f19fb7424"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- contact details ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["91234567", "912 34 567", "+47 912 34 567", "0047 91234567", "+4791234567", " 912-34-567 "],
)
def test_norwegian_mobile_numbers_in_any_usual_form(text: str) -> None:
    assert normalise_phone(text) == "+4791234567"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("+46 70 123 45 67", "+46701234567"), ("0044 7400 123456", "+447400123456")],
)
def test_foreign_mobile_numbers_with_country_code(text: str, expected: str) -> None:
    assert normalise_phone(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1234",  # too short
        "912345678",  # too long
        "9123456a",  # letters
        "tlf 91234567",
        "070 123 45 67",  # a Swedish mobile without its country code
        "22 12 34 56",  # an Oslo landline
        "800 12 345",  # a free-phone number
    ],
)
def test_invalid_phone_numbers_are_refused_without_repeating_them(text: str) -> None:
    with pytest.raises(InvalidContact) as caught:
        normalise_phone(text)
    assert not any(c.isdigit() for c in str(caught.value))


def test_email_domain_is_lower_cased_and_idna_encoded() -> None:
    assert normalise_email(" Ola.Nordmann@Example.NO ") == "Ola.Nordmann@example.no"
    assert normalise_email("kari@Blåbær.no") == "kari@xn--blbr-roah.no"


@pytest.mark.parametrize(
    "text",
    [
        "no-at-sign",
        "a@b",
        "a@@b.no",
        "a b@c.no",
        "a@b.no, c@d.no",
        "<a@b.no>",
        "a@.no",
        "a@b..no",
        "a@-b.no",
        ".a@b.no",
        "a@b.no\nBcc: c@d.no",
    ],
)
def test_invalid_email_addresses_are_refused(text: str) -> None:
    with pytest.raises(InvalidContact) as caught:
        normalise_email(text)
    assert "@" not in str(caught.value)


def test_reference_is_a_stable_hash_of_the_key() -> None:
    one, again = (
        Message("sms", "+4791234567", "a", key=KEY),
        Message("sms", "+4791234567", "b", key=KEY),
    )
    other = Message("sms", "+4791234567", "a", key=KEY + "x")
    assert one.reference == again.reference == KEY_REFERENCE != other.reference


# -- SMTP --------------------------------------------------------------------------------------


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it accepts and misbehaves on request."""

    refuse: set[str] = field(default_factory=set)
    data_reply: str = "250 2.0.0 Ok: queued as 4F3A2"
    drop_after_data: bool = False
    drop_on_quit: bool = False
    mails: list[tuple[str, list[str], email.message.EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        if self.data_reply.startswith("250"):
            self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        if self.drop_after_data:
            server.transport.close()
        return self.data_reply

    async def handle_QUIT(self, server, session, envelope) -> str:
        if self.drop_on_quit:
            server.transport.close()
        return "221 Bye"


@dataclass
class Users:
    """An authenticator that accepts one user with one password, and notes the mechanisms."""

    password: str = PASSWORD
    mechanisms: list[str] = field(default_factory=list)

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.mechanisms.append(mechanism)
        expected = (b"hekta", self.password.encode())
        ok = (
            isinstance(auth_data, LoginPassword)
            and (auth_data.login, auth_data.password) == expected
        )
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def smtp() -> Iterator[Any]:
    """Start SMTP servers on loopback (`smtp(handler, **controller_options)` -> port); all are
    stopped when the test ends."""
    started: list[Controller] = []

    def start(handler: Inbox, **options: Any) -> int:
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
        controller.start()
        started.append(controller)
        return controller.port

    yield start
    for controller in started:
        controller.stop()


def smtp_settings(port: int, **extra: str) -> Settings:
    return Settings(
        {
            "HEKTA_SMTP_HOST": "127.0.0.1",
            "HEKTA_SMTP_PORT": str(port),
            "HEKTA_SMTP_FROM": "HEKTA-studien <hekta@example.org>",
            "HEKTA_SMTP_TIMEOUT": "5",
            **extra,
        }
    )


def text_of(received: email.message.EmailMessage) -> str:
    return received.get_content().replace("\r\n", "\n")


def mail(key: str = KEY, to: str = TO) -> Message:
    return Message("email", to, BODY, SUBJECT, key)


def test_plain_smtp_delivers_utf8_with_message_id_from_key(smtp: Any) -> None:
    inbox = Inbox()
    channel = SmtpChannel.from_settings(smtp_settings(smtp(inbox), HEKTA_SMTP_SECURITY="none"))
    answer = channel.send(mail())
    assert answer == "250 2.0.0 Ok: queued as 4F3A2"
    [(sender, recipients, received)] = inbox.mails
    assert sender == "hekta@example.org" and recipients == [TO]
    assert received["To"] == TO
    assert received["From"] == "HEKTA-studien <hekta@example.org>"
    assert received["Subject"] == SUBJECT
    assert text_of(received) == BODY
    assert received.get_content_charset() == "utf-8"
    assert received["Message-ID"] == f"<{KEY_REFERENCE}@example.org>"
    assert received["Date"]


def test_a_retry_carries_the_same_message_id(smtp: Any) -> None:
    inbox = Inbox()
    channel = SmtpChannel.from_settings(smtp_settings(smtp(inbox), HEKTA_SMTP_SECURITY="none"))
    for key in (KEY, KEY, KEY.replace("invite", "reminder_1")):
        channel.send(mail(key))
    ids = [received["Message-ID"] for _, _, received in inbox.mails]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_with_private_ca_and_login(
    smtp: Any, server_tls: ssl.SSLContext, ca_file: Path, mechanism: str
) -> None:
    inbox, users = Inbox(), Users()
    port = smtp(
        inbox,
        tls_context=server_tls,
        require_starttls=True,
        auth_required=True,
        authenticator=users,
        auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m != mechanism],
    )
    settings = smtp_settings(
        port,
        HEKTA_SMTP_CA_FILE=str(ca_file),
        HEKTA_SMTP_USER="hekta",
        HEKTA_SMTP_PASSWORD=PASSWORD,
    )
    assert SmtpChannel.from_settings(settings).send(mail()).startswith("250 ")
    assert users.mechanisms == [mechanism]
    [(_, recipients, received)] = inbox.mails
    assert recipients == [TO] and text_of(received) == BODY


def test_non_ascii_password_logs_in_with_utf8_plain(
    smtp: Any, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    inbox, users = Inbox(), Users(password="blåbærsyltetøy-7")
    port = smtp(inbox, tls_context=server_tls, auth_required=True, authenticator=users)
    settings = smtp_settings(
        port,
        HEKTA_SMTP_CA_FILE=str(ca_file),
        HEKTA_SMTP_USER="hekta",
        HEKTA_SMTP_PASSWORD="blåbærsyltetøy-7",
    )
    assert SmtpChannel.from_settings(settings).send(mail()).startswith("250 ")
    assert users.mechanisms == ["PLAIN"] and len(inbox.mails) == 1


def test_implicit_tls(smtp: Any, server_tls: ssl.SSLContext, ca_file: Path) -> None:
    inbox = Inbox()
    port = smtp(inbox, ssl_context=server_tls)
    settings = smtp_settings(port, HEKTA_SMTP_SECURITY="tls", HEKTA_SMTP_CA_FILE=str(ca_file))
    assert SmtpChannel.from_settings(settings).send(mail()).startswith("250 ")
    assert len(inbox.mails) == 1


def test_wrong_password_is_not_sent_and_never_shown(
    smtp: Any, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    inbox = Inbox()
    port = smtp(inbox, tls_context=server_tls, auth_required=True, authenticator=Users())
    wrong = "wrong-" + PASSWORD
    settings = smtp_settings(
        port, HEKTA_SMTP_CA_FILE=str(ca_file), HEKTA_SMTP_USER="hekta", HEKTA_SMTP_PASSWORD=wrong
    )
    channel = SmtpChannel.from_settings(settings)
    with pytest.raises(NotSent) as caught:
        channel.send(mail())
    assert "login refused (535)" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(channel)
    assert inbox.mails == []


def test_untrusted_certificate_sends_nothing(smtp: Any, server_tls: ssl.SSLContext) -> None:
    inbox = Inbox()
    port = smtp(inbox, tls_context=server_tls, require_starttls=True)
    with pytest.raises(NotSent) as caught:
        SmtpChannel.from_settings(smtp_settings(port)).send(mail())
    assert "not trusted" in str(caught.value) and "HEKTA_SMTP_CA_FILE" in str(caught.value)
    assert inbox.mails == []


def test_starttls_never_falls_back_to_plain(smtp: Any) -> None:
    inbox = Inbox()
    with pytest.raises(NotSent, match="STARTTLS"):
        SmtpChannel.from_settings(smtp_settings(smtp(inbox))).send(mail())
    assert inbox.mails == []


def test_refused_recipient_is_not_sent_and_not_named(smtp: Any) -> None:
    inbox = Inbox(refuse={TO})
    channel = SmtpChannel.from_settings(smtp_settings(smtp(inbox), HEKTA_SMTP_SECURITY="none"))
    with pytest.raises(NotSent) as caught:
        channel.send(mail())
    assert "SMTP 550" in str(caught.value) and "RCPT" in str(caught.value)
    assert "nordmann" not in str(caught.value)
    assert inbox.mails == []


def test_temporary_refusal_of_the_data_is_not_sent(smtp: Any) -> None:
    inbox = Inbox(data_reply="451 4.3.0 Try again later")
    channel = SmtpChannel.from_settings(smtp_settings(smtp(inbox), HEKTA_SMTP_SECURITY="none"))
    with pytest.raises(NotSent, match="SMTP 451"):
        channel.send(mail())


def test_smtp_connection_refused_is_not_sent() -> None:
    settings = smtp_settings(free_port(), HEKTA_SMTP_SECURITY="none")
    with pytest.raises(NotSent, match="ConnectionRefusedError"):
        SmtpChannel.from_settings(settings).send(mail())


def test_connection_dropped_after_the_data_is_unknown(smtp: Any) -> None:
    inbox = Inbox(drop_after_data=True)
    channel = SmtpChannel.from_settings(smtp_settings(smtp(inbox), HEKTA_SMTP_SECURITY="none"))
    with pytest.raises(UnknownOutcome) as caught:
        channel.send(mail())
    assert not isinstance(caught.value, NotSent)
    assert len(inbox.mails) == 1  # the server did get it: exactly why this is not NotSent


def test_a_failing_quit_does_not_undo_a_delivery(smtp: Any) -> None:
    inbox = Inbox(drop_on_quit=True)
    channel = SmtpChannel.from_settings(smtp_settings(smtp(inbox), HEKTA_SMTP_SECURITY="none"))
    assert channel.send(mail()).startswith("250 ")
    assert len(inbox.mails) == 1


def test_invalid_address_is_not_sent_before_connecting() -> None:
    channel = SmtpChannel(host="127.0.0.1", port=free_port(), sender="hekta@example.org")
    with pytest.raises(NotSent, match="not a valid e-mail address"):
        channel.send(mail(to="ola.nordmann@example"))


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"HEKTA_SMTP_PORT": "smtp"}, "HEKTA_SMTP_PORT"),
        ({"HEKTA_SMTP_PORT": "70000"}, "HEKTA_SMTP_PORT"),
        ({"HEKTA_SMTP_SECURITY": "ssl"}, "HEKTA_SMTP_SECURITY"),
        ({"HEKTA_SMTP_TIMEOUT": "-1"}, "HEKTA_SMTP_TIMEOUT"),
        ({"HEKTA_SMTP_FROM": "HEKTA"}, "HEKTA_SMTP_FROM"),
        ({"HEKTA_SMTP_CA_FILE": "/nonexistent/ca.pem"}, "HEKTA_SMTP_CA_FILE"),
        ({"HEKTA_SMTP_USER": "hekta"}, "HEKTA_SMTP_PASSWORD"),
        (
            {
                "HEKTA_SMTP_USER": "hekta",
                "HEKTA_SMTP_PASSWORD": PASSWORD,
                "HEKTA_SMTP_SECURITY": "none",
            },
            "in clear",
        ),
    ],
)
def test_smtp_settings_are_checked(extra: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as caught:
        SmtpChannel.from_settings(smtp_settings(25, **extra))
    assert PASSWORD not in str(caught.value)


def test_smtp_port_defaults_follow_security() -> None:
    settings = {"HEKTA_SMTP_HOST": "mail.example.org", "HEKTA_SMTP_FROM": "hekta@example.org"}
    ports = {
        security: SmtpChannel.from_settings(
            Settings({**settings, "HEKTA_SMTP_SECURITY": security})
        ).port
        for security in ("starttls", "tls", "none")
    }
    assert ports == {"starttls": 587, "tls": 465, "none": 25}


# -- SMS gateway -------------------------------------------------------------------------------


@dataclass
class Gateway:
    """A WSGI app standing in for an SMS gateway: notes each request, answers as told."""

    status: int = 202
    reply: str = '{"id": "msg-8f3a", "to": "+4791234567", "status": "queued"}'
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # wait (until the test ends) before answering
    release: threading.Event = field(default_factory=threading.Event)
    seen: list[Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.bodies.append(request.get_data())
        self.seen.append(request)
        if self.hold:
            self.release.wait(10)
        response = Response(self.reply, self.status, self.headers, content_type="application/json")
        return response(environ, start_response)


@pytest.fixture
def gateway() -> Iterator[Any]:
    """Start gateways on loopback (`gateway(app, ssl_context=None)` -> URL); all are shut
    down (and any held request released) when the test ends."""
    started: list[tuple[Gateway, Any, threading.Thread]] = []

    def start(app: Gateway, ssl_context: ssl.SSLContext | None = None) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        started.append((app, server, thread))
        scheme = "https" if ssl_context else "http"
        return f"{scheme}://127.0.0.1:{server.server_port}/v1/sms"

    yield start
    for app, server, thread in started:
        app.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def sms_settings(url: str, **extra: str) -> Settings:
    return Settings({"HEKTA_SMS_URL": url, "HEKTA_SMS_TIMEOUT": "5", **extra})


def sms(to: str = "+4791234567") -> Message:
    return Message("sms", to, "Hei! Husk spørreskjemaet: æøå ÆØÅ", key=SMS_KEY)


def test_default_json_body_with_bearer_token(gateway: Any) -> None:
    app = Gateway()
    channel = SmsGateway.from_settings(sms_settings(gateway(app), HEKTA_SMS_TOKEN=TOKEN))
    assert channel.send(sms()) == "HTTP 202 id=msg-8f3a"
    [request] = app.seen
    assert request.method == "POST"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(app.bodies[0]) == {
        "to": "+4791234567",
        "from": "Studie",
        "text": "Hei! Husk spørreskjemaet: æøå ÆØÅ",
        "reference": SMS_REFERENCE,
    }


def test_basic_auth_and_custom_form_body(gateway: Any) -> None:
    app = Gateway(status=200, reply="OK")
    settings = sms_settings(
        gateway(app),
        HEKTA_SMS_USER="hekta",
        HEKTA_SMS_PASSWORD="blåbær-7",
        HEKTA_SMS_SENDER="HEKTA",
        HEKTA_SMS_CONTENT_TYPE="application/x-www-form-urlencoded",
        HEKTA_SMS_BODY=(
            'to={{ to|replace("+", "")|urlencode }}&from={{ sender|urlencode }}'
            "&msg={{ body|urlencode }}&ref={{ reference }}"
        ),
    )
    assert SmsGateway.from_settings(settings).send(sms()) == "HTTP 200"
    [request] = app.seen
    assert request.authorization is not None
    credentials = (request.authorization.username, request.authorization.password)
    assert credentials == ("hekta", "blåbær-7")
    assert request.form.to_dict() == {
        "to": "4791234567",
        "from": "HEKTA",
        "msg": "Hei! Husk spørreskjemaet: æøå ÆØÅ",
        "ref": SMS_REFERENCE,
    }


@pytest.mark.parametrize("status", [400, 401, 422, 429])
def test_a_4xx_is_not_sent_without_number_or_token(gateway: Any, status: int) -> None:
    app = Gateway(status=status, reply=f'{{"error": "refused +4791234567, token {TOKEN}"}}')
    channel = SmsGateway.from_settings(sms_settings(gateway(app), HEKTA_SMS_TOKEN=TOKEN))
    with pytest.raises(NotSent, match=f"HTTP {status}") as caught:
        channel.send(sms())
    assert "91234567" not in str(caught.value) and TOKEN not in str(caught.value)


@pytest.mark.parametrize(("status", "headers"), [(500, {}), (503, {}), (302, {"Location": "/x"})])
def test_5xx_and_redirects_are_unknown(gateway: Any, status: int, headers: dict[str, str]) -> None:
    app = Gateway(status=status, reply="", headers=headers)
    with pytest.raises(UnknownOutcome) as caught:
        SmsGateway.from_settings(sms_settings(gateway(app))).send(sms())
    assert not isinstance(caught.value, NotSent)
    assert len(app.seen) == 1  # a redirect is not followed


def test_timeout_after_the_request_arrived_is_unknown(gateway: Any) -> None:
    app = Gateway(hold=True)
    settings = sms_settings(gateway(app), HEKTA_SMS_TIMEOUT="0.5")
    with pytest.raises(UnknownOutcome) as caught:
        SmsGateway.from_settings(settings).send(sms())
    assert not isinstance(caught.value, NotSent)
    assert len(app.seen) == 1


def test_gateway_connection_refused_is_not_sent() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/sms"
    with pytest.raises(NotSent, match="nothing sent"):
        SmsGateway.from_settings(sms_settings(url)).send(sms())


def test_untrusted_gateway_certificate_is_not_sent(
    gateway: Any, server_tls: ssl.SSLContext
) -> None:
    app = Gateway()
    url = gateway(app, ssl_context=server_tls)
    with pytest.raises(NotSent, match="SSLError, nothing sent"):
        SmsGateway.from_settings(sms_settings(url)).send(sms())
    assert app.seen == []


@responses.activate
@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        (requests.ConnectTimeout("connect timed out"), NotSent),
        (requests.ReadTimeout("read timed out"), UnknownOutcome),
        (requests.ConnectionError(ProtocolError("Connection aborted.")), UnknownOutcome),
        (requests.exceptions.ChunkedEncodingError("connection broken"), UnknownOutcome),
    ],
)
def test_library_faults_map_to_certainty(fault: Exception, outcome: type[HektaError]) -> None:
    responses.add(responses.POST, "https://sms.example.org/v1/sms", body=fault)
    settings = sms_settings("https://sms.example.org/v1/sms")
    with pytest.raises(outcome) as caught:
        SmsGateway.from_settings(settings).send(sms())
    assert isinstance(caught.value, NotSent) == (outcome is NotSent)


def test_reply_id_is_scrubbed(gateway: Any) -> None:
    app = Gateway(status=201, reply='[{"message_id": "+4791234567"}]')
    assert SmsGateway.from_settings(sms_settings(gateway(app))).send(sms()) == "HTTP 201 id=<…>"


@responses.activate
def test_invalid_number_is_not_sent_and_nothing_posted() -> None:
    settings = sms_settings("https://sms.example.org/v1/sms")
    with pytest.raises(NotSent, match="not a mobile number"):
        SmsGateway.from_settings(settings).send(sms(to="+4722123456"))
    assert len(responses.calls) == 0


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"HEKTA_SMS_URL": "sms.example.org"}, "HEKTA_SMS_URL"),
        ({"HEKTA_SMS_TOKEN": TOKEN, "HEKTA_SMS_USER": "hekta"}, "not both"),
        ({"HEKTA_SMS_USER": "hekta"}, "HEKTA_SMS_PASSWORD"),
        ({"HEKTA_SMS_BODY": '{"to": {{ to }'}, "HEKTA_SMS_BODY"),
        ({"HEKTA_SMS_BODY": '{"to": {{ phone|tojson }}}'}, "HEKTA_SMS_BODY"),
        ({"HEKTA_SMS_TIMEOUT": "soon"}, "HEKTA_SMS_TIMEOUT"),
    ],
)
def test_sms_settings_are_checked(extra: dict[str, str], named: str) -> None:
    settings = {"HEKTA_SMS_URL": "https://sms.example.org/v1/sms", **extra}
    with pytest.raises(ConfigError, match=named) as caught:
        SmsGateway.from_settings(Settings(settings))
    assert TOKEN not in str(caught.value)


# -- file outbox and channel choice ------------------------------------------------------------


def test_file_outbox_writes_one_line_per_send(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "out")
    assert outbox.send(sms()) == "written to file"
    outbox.send(mail())
    outbox.send(sms())
    lines = (tmp_path / "out" / "outbox.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    records = outbox.read()
    assert [r["key"] for r in records] == [sms().key, KEY, sms().key]
    assert records[1] | {"time": None} == {
        "key": KEY,
        "channel": "email",
        "to": TO,
        "subject": SUBJECT,
        "body": BODY,
        "time": None,
    }
    assert stat.S_IMODE(os.stat(outbox.path).st_mode) == 0o600


def test_file_outbox_refuses_invalid_contacts(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path)
    with pytest.raises(NotSent):
        outbox.send(sms(to="1234"))
    assert outbox.read() == []


def test_outbox_dir_sends_every_channel_to_the_file(tmp_path: Path) -> None:
    channels = Channels.from_settings(
        Settings({"HEKTA_OUTBOX_DIR": str(tmp_path), "HEKTA_SMS_URL": "https://sms.example.org"})
    )
    assert channels.get("sms") is channels.get("email")
    channels.get("sms").send(sms())
    assert len(FileOutbox(tmp_path).read()) == 1
    assert isinstance(Channels.file(tmp_path).get("email"), FileOutbox)


def test_unconfigured_channels_name_the_missing_setting() -> None:
    channels = Channels.from_settings(Settings({"HEKTA_SMTP_HOST": "mail.example.org"}))
    with pytest.raises(ConfigError, match="HEKTA_SMS_URL"):
        channels.get("sms")
    with pytest.raises(ConfigError, match="HEKTA_SMTP_FROM"):
        channels.get("email")
    with pytest.raises(ConfigError, match="HEKTA_SMTP_HOST"):
        Channels.from_settings(Settings({})).get("email")
    with pytest.raises(HektaError, match="unknown channel"):
        channels.get("fax")  # type: ignore[arg-type]


def test_configured_channels_are_built_once_and_hide_secrets() -> None:
    channels = Channels.from_settings(
        Settings(
            {
                "HEKTA_SMS_URL": "https://sms.example.org/v1/sms",
                "HEKTA_SMS_TOKEN": TOKEN,
                "HEKTA_SMTP_HOST": "mail.example.org",
                "HEKTA_SMTP_FROM": "hekta@example.org",
                "HEKTA_SMTP_USER": "hekta",
                "HEKTA_SMTP_PASSWORD": PASSWORD,
            }
        )
    )
    sms_channel, email_channel = channels.get("sms"), channels.get("email")
    assert isinstance(sms_channel, SmsGateway) and isinstance(email_channel, SmtpChannel)
    assert channels.get("sms") is sms_channel
    for shown in (repr(channels), repr(sms_channel), repr(email_channel), str(email_channel)):
        assert TOKEN not in shown and PASSWORD not in shown
