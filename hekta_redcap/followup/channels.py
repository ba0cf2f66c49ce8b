"""Message channels for reminders and digests: e-mail over SMTP, SMS through an HTTP gateway,
and a file outbox for dry runs and the demo.

    >>> channels = Channels.from_settings(Settings.load())
    >>> message = Message("sms", normalise_phone("912 34 567"), "Hei!", key="hekta/17/m6/sms")
    >>> channels.get("sms").send(message)
    'HTTP 202 id=8f3a'

The reminder engine writes an intent to its outbox before `send` and the answer after, so what
matters most is how certain a channel is about the outcome:

- `send` returns the provider's answer (a short text without personal data): accepted;
- `NotSent`: the provider certainly did not take the message (nothing could be sent, or the
  provider refused it with a definite reply), so it is safe to try again later;
- `UnknownOutcome` (never a `NotSent`): the message may have gone out (a timeout or dropped
  connection after the message was handed over, an HTTP 5xx or 3xx, a garbled reply). Channels
  raise it instead of letting library exceptions escape, so its one-line text holds no
  addresses; the engine lists such messages as maybe sent.

Addresses are checked again before anything leaves (`normalise_phone`, `normalise_email`); a
bad one is a `NotSent`. Provider replies are scrubbed of anything that looks like an address or
a phone number, and passwords and tokens are kept in `Token`, which never shows itself.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.policy
import email.utils
import hashlib
import json
import os
import re
import smtplib
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol, TypeGuard
from urllib.parse import urlsplit

import jinja2
import phonenumbers
import requests
from jinja2.sandbox import ImmutableSandboxedEnvironment
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.exceptions import SSLError as Urllib3SSLError

from hekta_redcap.core.errors import ConfigError, HektaError
from hekta_redcap.core.settings import Settings, Token

ChannelName = Literal["sms", "email"]

DEFAULT_SMS_BODY = (
    '{"to": {{ to|tojson }}, "from": {{ sender|tojson }}, '
    '"text": {{ body|tojson }}, "reference": {{ reference|tojson }}}'
)
# Keys under which gateways commonly return their message id.
REPLY_ID_KEYS = ("id", "message_id", "messageId", "sid", "reference")
SmtpSecurity = Literal["starttls", "tls", "none"]
SMTP_PORTS: dict[SmtpSecurity, int] = {"starttls": 587, "tls": 465, "none": 25}
MOBILE_TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)
# Only what people type into a phone field; letters would be read as a keypad spelling.
PHONE_CHARACTERS = re.compile(r"[\d\s+\-().]+")
EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
DOMAIN_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
# What a provider's reply may echo back: e-mail addresses and phone numbers.
PERSONAL = re.compile(r"\S+@\S+|\+?\d[\d ]{6,}\d")


class InvalidContact(HektaError):
    """A phone number or e-mail address that cannot be used (the text never repeats it)."""


class NotSent(HektaError):
    """The provider certainly did not take the message: safe to try again later."""


class UnknownOutcome(HektaError):
    """The message was handed over, or may have been, but no definite answer came back."""


@dataclass(frozen=True)
class Message:
    channel: ChannelName
    to: str  # an E.164 phone number (+4791234567) or an e-mail address
    body: str
    subject: str | None = None  # e-mail only
    key: str = ""  # the outbox key: no personal data; the provider reference comes from it

    @cached_property
    def reference(self) -> str:
        """A short hash of the key, the same for every attempt, so a provider or a receiving
        mail system can spot a duplicate. Key-less messages (ad hoc tests) get a random one."""
        if not self.key:
            return uuid.uuid4().hex[:16]
        return hashlib.sha256(self.key.encode("utf-8")).hexdigest()[:16]


class Channel(Protocol):
    @property
    def name(self) -> str:
        """The channel's name: sms, email or file."""

    def send(self, message: Message) -> str:
        """Send; return the provider's answer as a short text with no personal data. Raise
        `NotSent` when the provider certainly did not accept it; anything else means the
        outcome is unknown."""
        ...


# -- contact details ---------------------------------------------------------------------------


def normalise_phone(text: str, region: str = "NO") -> str:
    """A mobile number in E.164 (+4791234567). Numbers without a country code are read as
    `region`'s: Norwegian ones may be written as 8 digits, with spaces, +47 or 0047."""
    text = text.strip()
    if not text:
        raise InvalidContact("no mobile number given")
    if not PHONE_CHARACTERS.fullmatch(text):
        raise InvalidContact("not a valid mobile number (only digits, spaces and + allowed)")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise InvalidContact("not a valid mobile number (a foreign number needs its country code)")
    if phonenumbers.number_type(number) not in MOBILE_TYPES:
        raise InvalidContact("not a mobile number (a landline or service number cannot get SMS)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(text: str) -> str:
    """An e-mail address with its domain lower-cased (and IDNA-encoded, so `blåbær.no` works
    over any SMTP server). Light checks only: one @, a dot in the domain, nothing that could
    smuggle a second recipient or a header into the message."""
    local, at, domain = text.strip().rpartition("@")
    problem = "not a valid e-mail address"
    if not at or not EMAIL_LOCAL.fullmatch(local) or len(local) > 64:
        raise InvalidContact(problem)
    try:
        domain = domain.lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidContact(problem) from None
    labels = domain.split(".")
    if len(labels) < 2 or not all(DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise InvalidContact(problem)
    address = f"{local}@{domain}"
    if len(address) > 254:
        raise InvalidContact(problem)
    return address


def _address(message: Message, channel: ChannelName) -> str:
    """The checked recipient; a message for another channel or a bad address is `NotSent`."""
    if message.channel != channel:
        raise NotSent(f"message {message.key}: a {message.channel} message sent as {channel}")
    normalise = normalise_phone if channel == "sms" else normalise_email
    try:
        return normalise(message.to)
    except InvalidContact as error:
        raise NotSent(f"message {message.key}: {error}") from None


def _scrub(text: str | bytes, limit: int = 120, secrets: tuple[Token, ...] = ()) -> str:
    """A provider's reply fit for the outbox: one line, no addresses, phone numbers or
    `secrets` (a gateway may echo a rejected token)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for secret in secrets:
        text = text.replace(secret.reveal(), "********")
    text = PERSONAL.sub("<…>", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- e-mail ------------------------------------------------------------------------------------


def _is_security(text: str) -> TypeGuard[SmtpSecurity]:
    return text in SMTP_PORTS


@dataclass(frozen=True)
class SmtpChannel:
    """E-mail through an SMTP server, certificates verified (also a private CA's, with
    `ca_file`); login only when a user is set, and never over an unencrypted connection."""

    host: str
    sender: str  # the From header, e.g. "HEKTA-studien <hekta@example.org>"
    port: int = 587
    security: SmtpSecurity = "starttls"
    user: str | None = None
    password: Token | None = None
    ca_file: Path | None = None
    timeout: float = 30.0
    name: str = field(default="email", init=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpChannel:
        """Read the HEKTA_SMTP_* settings (see .env.example); check them before any send."""
        host = settings.require("HEKTA_SMTP_HOST")
        sender = settings.require("HEKTA_SMTP_FROM")
        try:
            normalise_email(email.utils.parseaddr(sender)[1])
        except InvalidContact:
            raise ConfigError("HEKTA_SMTP_FROM must hold an e-mail address") from None
        security = settings.smtp_security.lower()
        if not _is_security(security):
            raise ConfigError("HEKTA_SMTP_SECURITY must be starttls, tls or none")
        user, password = settings.smtp_user, settings.smtp_password
        if user and password is None:
            raise ConfigError("HEKTA_SMTP_USER is set but HEKTA_SMTP_PASSWORD is not")
        if user and security == "none":
            raise ConfigError(
                "HEKTA_SMTP_USER needs HEKTA_SMTP_SECURITY starttls or tls "
                "(the password would cross the network in clear)"
            )
        ca_file = settings.smtp_ca_file
        if ca_file and not ca_file.is_file():
            raise ConfigError(f"HEKTA_SMTP_CA_FILE: no such file {ca_file}")
        return cls(
            host=host,
            sender=sender,
            port=settings.smtp_port or SMTP_PORTS[security],
            security=security,
            user=user,
            password=password,
            ca_file=ca_file,
            timeout=settings.smtp_timeout,
        )

    def send(self, message: Message) -> str:
        """Hand the message to the server. Failing before the data went out, or a 4xx/5xx
        reply (to MAIL, RCPT, DATA or the data itself), is `NotSent`; a failure while the data
        was under way or awaiting its reply is `UnknownOutcome`."""
        recipient = _address(message, "email")
        content = self._compose(message, recipient)
        where = f"e-mail {message.key} via {self.host}:{self.port}"
        try:
            connection = self._open()
        except (smtplib.SMTPException, OSError) as error:
            raise NotSent(f"{where}: {_smtp_problem(error)}") from None
        try:
            answer = self._transfer(connection, recipient, content, where)
        except BaseException:
            connection.close()  # no QUIT: it could wait out another timeout
            raise
        try:
            connection.quit()
        except (smtplib.SMTPException, OSError):  # the server has the message all the same
            connection.close()
        return answer

    def _compose(self, message: Message, recipient: str) -> bytes:
        """The message as sent: UTF-8 text, a Message-ID from the key, a Date header."""
        domain = self._envelope_sender.rpartition("@")[2]
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = recipient
        mail["Subject"] = message.subject or ""
        mail["Date"] = email.utils.formatdate(localtime=True)
        mail["Message-ID"] = f"<{message.reference}@{domain}>"
        mail.set_content(message.body, charset="utf-8", cte="quoted-printable")
        return mail.as_bytes(policy=email.policy.SMTP)

    @property
    def _envelope_sender(self) -> str:
        return email.utils.parseaddr(self.sender)[1]

    def _open(self) -> smtplib.SMTP:
        """A connection ready for MAIL: greeted, encrypted as configured, logged in."""
        context = ssl.create_default_context()
        if self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        connection: smtplib.SMTP
        if self.security == "tls":
            connection = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=context
            )
        else:
            connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                connection.starttls(context=context)  # raises if the server does not offer it
            connection.ehlo_or_helo_if_needed()
            if self.user and self.password:
                _login(connection, self.user, self.password.reveal())
        except BaseException:
            connection.close()
            raise
        return connection

    def _transfer(
        self, connection: smtplib.SMTP, recipient: str, content: bytes, where: str
    ) -> str:
        try:  # until the data goes out the server has nothing it could deliver
            refusal = _refusal("MAIL", *connection.mail(self._envelope_sender)) or _refusal(
                "RCPT", *connection.rcpt(recipient)
            )
        except (smtplib.SMTPException, OSError) as error:
            raise NotSent(f"{where}: {_smtp_problem(error)}") from None
        if refusal:
            raise NotSent(f"{where}: {refusal}")
        try:
            code, reply = connection.data(content)
        except smtplib.SMTPDataError as error:  # the DATA command itself was refused
            raise NotSent(f"{where}: {_smtp_problem(error)}") from None
        except (smtplib.SMTPException, OSError) as error:
            raise UnknownOutcome(f"{where}: {_smtp_problem(error)} after the data") from None
        if 200 <= code < 300:
            return f"{code} {_scrub(reply)}"
        if 400 <= code < 600:  # a definite refusal: the server took no responsibility
            raise NotSent(f"{where}: SMTP {code} {_scrub(reply)} to the data")
        raise UnknownOutcome(f"{where}: unreadable reply to the data ({code})")


def _login(connection: smtplib.SMTP, user: str, password: str) -> None:
    """smtplib's login (which picks a mechanism the server offers) for ASCII credentials;
    others go as AUTH PLAIN in UTF-8 (RFC 4616), which smtplib cannot send."""
    if (user + password).isascii():
        connection.login(user, password)
        return
    credentials = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, reply = connection.docmd("AUTH", f"PLAIN {credentials}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _refusal(command: str, code: int, reply: bytes) -> str | None:
    return None if code in (250, 251) else f"SMTP {code} {_scrub(reply)} to {command}"


def _smtp_problem(error: BaseException) -> str:
    """A one-line description without the reply's addresses (nor, ever, the password)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"the server's certificate is not trusted ({error.verify_message}); "
            "set HEKTA_SMTP_CA_FILE for a private CA"
        )
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"login refused ({error.smtp_code}); check HEKTA_SMTP_USER and HEKTA_SMTP_PASSWORD"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"SMTP {error.smtp_code} {_scrub(error.smtp_error)}"
    return f"{type(error).__name__}: {_scrub(str(error))}"


# -- SMS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsGateway:
    """SMS through an HTTP gateway: one POST per message, its body rendered from a jinja2
    template (variables `to`, `sender`, `body`, `reference`), Bearer or basic auth."""

    url: str
    token: Token | None = None
    user: str | None = None
    password: Token | None = None
    sender: str = "Studie"
    body_template: str = DEFAULT_SMS_BODY
    content_type: str = "application/json"
    timeout: float = 30.0
    name: str = field(default="sms", init=False)
    session: requests.Session = field(default_factory=requests.Session, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsGateway:
        """Read the HEKTA_SMS_* settings (see .env.example); check them before any send."""
        url = settings.require("HEKTA_SMS_URL")
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise ConfigError("HEKTA_SMS_URL must be an http(s) URL")
        token, user, password = settings.sms_token, settings.sms_user, settings.sms_password
        if token and (user or password):
            raise ConfigError(
                "set HEKTA_SMS_TOKEN or HEKTA_SMS_USER and HEKTA_SMS_PASSWORD, not both"
            )
        if bool(user) != bool(password):
            raise ConfigError("HEKTA_SMS_USER and HEKTA_SMS_PASSWORD go together")
        gateway = cls(
            url=url,
            token=token,
            user=user,
            password=password,
            sender=settings.sms_sender,
            body_template=settings.sms_body or DEFAULT_SMS_BODY,
            content_type=settings.sms_content_type,
            timeout=settings.sms_timeout,
        )
        try:
            gateway.render(Message("sms", "+4791234567", "Test", key="check"))
        except Exception as error:  # a syntax error, an unknown variable, a failing filter
            raise ConfigError(f"HEKTA_SMS_BODY is not a usable template: {error}") from None
        return gateway

    def render(self, message: Message) -> bytes:
        """The request body for a message, UTF-8 encoded."""
        template = _TEMPLATES.from_string(self.body_template)
        text = template.render(
            to=message.to, sender=self.sender, body=message.body, reference=message.reference
        )
        return text.encode("utf-8")

    def send(self, message: Message) -> str:
        """POST the message. 2xx: sent; 4xx, or no connection at all: `NotSent`; anything
        else (5xx, a redirect, a timeout or dropped connection after the request went out):
        `UnknownOutcome`."""
        checked = Message("sms", _address(message, "sms"), message.body, key=message.key)
        where = f"SMS {message.key} via {urlsplit(self.url).hostname}"
        try:
            body = self.render(checked)
        except Exception as error:  # nothing has left yet
            raise NotSent(f"{where}: HEKTA_SMS_BODY cannot be rendered: {error}") from None
        try:
            response = self.session.post(
                self.url,
                data=body,
                headers=self._headers(),
                timeout=self.timeout,
                allow_redirects=False,  # a redirected POST would turn into a GET
            )
        except requests.RequestException as error:
            problem = f"{where}: {type(error).__name__}"
            if _never_connected(error):
                raise NotSent(f"{problem}, nothing sent") from None
            raise UnknownOutcome(f"{problem} after the request went out") from None
        status = response.status_code
        if 200 <= status < 300:
            reply_id = _reply_id(response)
            return f"HTTP {status}" + (f" id={reply_id}" if reply_id else "")
        secrets = tuple(secret for secret in (self.token, self.password) if secret)
        problem = f"{where}: HTTP {status} {_scrub(response.text, secrets=secrets)}".rstrip()
        if 400 <= status < 500:
            raise NotSent(problem)
        raise UnknownOutcome(problem)

    def _headers(self) -> dict[str, str]:
        """Content type and credentials (basic auth in UTF-8: requests would use Latin-1)."""
        headers = {"Content-Type": self.content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token.reveal()}"
        elif self.user and self.password:
            pair = f"{self.user}:{self.password.reveal()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return headers


_TEMPLATES = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def _never_connected(error: requests.RequestException) -> bool:
    """Whether the request certainly never left: the connection (or its TLS handshake's
    certificate check) failed. Every other failure may have come after the request was sent."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = (
        error.args[0].reason if error.args and isinstance(error.args[0], MaxRetryError) else None
    )
    if isinstance(reason, ConnectTimeoutError):  # includes refused and unresolvable
        return True
    return isinstance(reason, Urllib3SSLError) and any(
        isinstance(cause, ssl.SSLCertVerificationError) for cause in reason.args
    )


def _reply_id(response: requests.Response) -> str | None:
    """The gateway's message id, when its reply is a JSON object that has one."""
    try:
        reply: Any = response.json()
    except ValueError:
        return None
    if isinstance(reply, list) and len(reply) == 1:
        reply = reply[0]
    if not isinstance(reply, dict):
        return None
    found = next((reply[k] for k in REPLY_ID_KEYS if isinstance(reply.get(k), str | int)), None)
    return None if found is None else _scrub(str(found), limit=64)


# -- dry runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutbox:
    """Every message as one JSON line in `<directory>/outbox.jsonl`, on disk before `send`
    returns, so a reader can count deliveries per key exactly. The file holds contact details:
    it is created readable by its owner only."""

    directory: Path
    name: str = field(default="file", init=False)

    @property
    def path(self) -> Path:
        return self.directory / "outbox.jsonl"

    def send(self, message: Message) -> str:
        record = {
            "key": message.key,
            "channel": message.channel,
            "to": _address(message, message.channel),
            "subject": message.subject,
            "body": message.body,
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        self.directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line.encode("utf-8"))  # one write: lines never interleave
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return "written to file"

    def read(self) -> list[dict[str, Any]]:
        """The messages written so far, oldest first."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines()]


# -- choosing a channel ------------------------------------------------------------------------


@dataclass
class Channels:
    """The channels a run sends through: all into a `FileOutbox` when `HEKTA_OUTBOX_DIR` is
    set (or for `Channels.file`), otherwise SMTP and the SMS gateway, each built from its
    settings the first time it is asked for."""

    settings: Settings = field(repr=False)
    outbox: FileOutbox | None = None
    _built: dict[str, Channel] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Channels:
        directory = settings.outbox_dir
        return cls(settings, FileOutbox(directory) if directory else None)

    @classmethod
    def file(cls, directory: Path) -> Channels:
        """Every message into `<directory>/outbox.jsonl` (dry runs, the demo)."""
        return cls(Settings({}), FileOutbox(directory))

    def get(self, name: ChannelName) -> Channel:
        """The channel for `name`; an unconfigured one raises `ConfigError` naming the
        missing setting."""
        if self.outbox is not None:
            return self.outbox
        if name not in self._built:
            makers: dict[str, Callable[[Settings], Channel]] = {
                "sms": SmsGateway.from_settings,
                "email": SmtpChannel.from_settings,
            }
            if name not in makers:
                raise HektaError(f"unknown channel {name!r} (sms or email)")
            self._built[name] = makers[name](self.settings)
        return self._built[name]
