# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""E-mail through an SMTP server (an ``smtp`` endpoint of purpose e-mail).

``smtp://host[:port]`` speaks plain SMTP and upgrades with STARTTLS when the
server offers it; ``smtps://host[:port]`` connects over TLS.  The endpoint's
username and credential log in when set.  Each message carries a Message-ID
made from its outbox key, so a message delivered twice (the connection lost
after the server took it) is recognisable as one.

Errors map to the outbox's outcomes: the server unreachable, a temporary
(4xx) answer → tried again later; a permanent (5xx) refusal → parked."""
import hashlib
import smtplib
import socket
import ssl
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import urlsplit

from . import his

DEFAULT_PORTS = {'smtp': 25, 'smtps': 465}


def message_id(key, sender):
    "The Message-ID of the outbox message key sent by sender"
    digest = hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]
    domain = sender.rpartition('@')[2] or 'hrp.invalid'
    return f'<{digest}@{domain}>'


def valid_address(address):
    "Test if address is one plain e-mail address"
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, TypeError, HeaderParseError):
        return False
    return bool(parsed.username and '.' in parsed.domain
        and not any(c.isspace() for c in address))


class MailTransport:
    "Send e-mails through one SMTP connection, opened on first use"

    def __init__(self, url, sender, username=None, password=None,
            connect_timeout=5.0):
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or DEFAULT_PORTS[parts.scheme]
        self.sender = sender
        self.username = username
        self.password = password
        self.timeout = connect_timeout
        self._server = None

    @classmethod
    def from_endpoint(cls, endpoint):
        return cls(
            endpoint.url, endpoint.email_from,
            username=endpoint.username,
            password=endpoint.get_credential(),
            connect_timeout=endpoint.connect_timeout)

    def _connect(self):
        context = ssl.create_default_context()
        if self.scheme == 'smtps':
            server = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=context)
        else:
            server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            server.ehlo()
            if server.has_extn('starttls'):
                server.starttls(context=context)
                server.ehlo()
        if self.username:
            server.login(self.username, self.password or '')
        return server

    def send(self, to, subject, text, key):
        """Send text to the address to; return the Message-ID.  Raise
        his.PeerUnavailable (try again) or his.PeerRejected (do not)."""
        message = EmailMessage()
        message['From'] = self.sender
        message['To'] = to
        message['Subject'] = subject
        message['Date'] = formatdate(localtime=False)
        message['Message-ID'] = message_id(key, self.sender)
        message.set_content(text)
        try:
            if self._server is None:
                self._server = self._connect()
            self._server.send_message(message)
        except smtplib.SMTPResponseException as exception:
            self.close()
            code = getattr(exception, 'smtp_code', 0)
            error = exception.smtp_error
            if isinstance(error, bytes):
                error = error.decode('utf-8', 'replace')
            text = f"SMTP {code}: {error}"
            if 400 <= code < 500:
                raise his.PeerUnavailable(text) from exception
            raise his.PeerRejected(text) from exception
        except smtplib.SMTPRecipientsRefused as exception:
            self.close()
            raise his.PeerRejected(
                f"recipient refused: {to}") from exception
        except (smtplib.SMTPException, OSError, socket.timeout) as exception:
            self.close()
            raise his.PeerUnavailable(
                f"SMTP server {self.host}:{self.port}: {exception}"
                ) from exception
        return message['Message-ID']

    def close(self):
        server, self._server = self._server, None
        if server is not None:
            try:
                server.quit()
            except (smtplib.SMTPException, OSError):
                server.close()
