# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Endpoints: the peer systems (HIS, PACS, SMS modem) a site talks to."""
import math
import os
import re
from urllib.parse import urlsplit

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, ModelSQL, ModelView, Unique, fields)
from trytond.pyson import Eval
from trytond.transaction import Transaction, without_check_access

from .exceptions import (
    CredentialError, EndpointMissingError, EndpointValidationError)

KINDS = [
    ('gnuhealth', "GNU Health JSON-RPC"),
    ('fhir', "FHIR R4 HTTP"),
    ('hl7_mllp', "HL7 v2.5 MLLP"),
    ('sms_modem', "SMS Modem (serial)"),
    ('pacs_http', "PACS HTTP push"),
    ('pacs_csv', "PACS CSV import"),
    ('smtp', "E-mail (SMTP)"),
    ]
PURPOSES = [
    ('his', "HIS"),
    ('sms', "SMS"),
    ('pacs', "PACS"),
    ('email', "E-mail"),
    ]
# The purpose each kind of endpoint serves
KIND_PURPOSE = {
    'gnuhealth': 'his',
    'fhir': 'his',
    'hl7_mllp': 'his',
    'sms_modem': 'sms',
    'pacs_http': 'pacs',
    'pacs_csv': 'pacs',
    'smtp': 'email',
    }
HTTP_KINDS = {'gnuhealth', 'fhir', 'pacs_http'}

ENV_VAR_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
# Endpoints may only read the environment variables made for them, never
# another secret of the server (a database password, …)
CREDENTIAL_ENV_PREFIX = 'HRP_CRED_'
DATABASE_NAME = re.compile(r'\w[\w.-]*')
# A component of a device path: /dev/ttyUSB0, /dev/pts/3,
# /dev/serial/by-id/usb-…-if00-port0, /dev/serial/by-path/pci-0000:00:14.0-…
DEVICE_PART = re.compile(r'[A-Za-z0-9_.+:-]+')


def _has_control_or_space(value):
    return any(c.isspace() or not c.isprintable() for c in value)


def _split_url(url, schemes):
    """Return the parts of url if it has one of the schemes, a host and a
    valid port, or None."""
    if _has_control_or_space(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if (parts.scheme not in schemes
            or not parts.hostname
            or port == 0
            or parts.fragment):
        return None
    return parts


def _has_userinfo(url):
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.username is not None or parts.password is not None


def valid_http_url(url):
    "Test if url is an http(s) URL with a host"
    return _split_url(url, {'http', 'https'}) is not None


def valid_mllp_url(url):
    "Test if url is mllp://host:port"
    parts = _split_url(url, {'mllp'})
    return bool(
        parts
        and parts.port
        and parts.path in {'', '/'}
        and not parts.query)


def valid_smtp_url(url):
    "Test if url is smtp://host[:port] or smtps://host[:port]"
    parts = _split_url(url, {'smtp', 'smtps'})
    return bool(parts and parts.path in {'', '/'} and not parts.query)


def valid_device_path(path):
    "Test if path is the path of a serial device under /dev/"
    if _has_control_or_space(path) or not path.startswith('/dev/'):
        return False
    return all(
        DEVICE_PART.fullmatch(p) and p not in {'.', '..'}
        for p in path[len('/dev/'):].split('/'))


def valid_credential_env(name):
    "Test if name is an environment variable an endpoint may read"
    return bool(
        ENV_VAR_NAME.fullmatch(name)
        and name.startswith(CREDENTIAL_ENV_PREFIX)
        and len(name) > len(CREDENTIAL_ENV_PREFIX))


def valid_directory_path(path):
    "Test if path is an absolute, normalised directory path"
    if not path.isprintable():
        return False
    parts = path.strip('/').split('/')
    return (
        path.startswith('/')
        and all(p and p not in {'.', '..'} for p in parts))


class Endpoint(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'his.endpoint'
    __string__ = "HIS Endpoint"

    name = fields.Char(
        "Name", required=True,
        help="The name of the peer system, unique per company.")
    company = fields.Many2One(
        'company.company', "Company", required=True,
        help="The site that talks to the peer system.")
    purpose = fields.Selection(
        PURPOSES, "Purpose", required=True, sort=False,
        help="What the hospital uses the peer system for.")
    kind = fields.Selection(
        KINDS, "Kind", required=True, sort=False,
        help="The protocol spoken with the peer system.")
    url = fields.Char(
        "URL", required=True,
        help="Where the peer system is reached:\n"
        "- GNU Health, FHIR and PACS HTTP: an http:// or https:// URL;\n"
        "- HL7 MLLP: mllp://host:port;\n"
        "- SMS modem: the serial device, e.g. /dev/ttyUSB0;\n"
        "- PACS CSV: the absolute path of the import directory;\n"
        "- E-mail: smtp://host:port (STARTTLS when offered) or "
        "smtps://host:port.\n"
        "Never put a password in it.")
    database = fields.Char(
        "Database",
        states={
            'invisible': Eval('kind') != 'gnuhealth',
            'required': Eval('kind') == 'gnuhealth',
            },
        help="The name of the GNU Health database.")
    email_from = fields.Char(
        "From Address",
        states={
            'invisible': Eval('kind') != 'smtp',
            'required': Eval('kind') == 'smtp',
            },
        help="The address the e-mails are sent from.")
    username = fields.Char(
        "Username",
        states={
            'required': Eval('kind') == 'gnuhealth',
            },
        help="The login on the peer system.")
    credential_env = fields.Char(
        "Credential Environment Variable",
        states={
            'required': Eval('kind') == 'gnuhealth',
            },
        help="The name of the server environment variable that holds "
        "the password or token; it must start with \"HRP_CRED_\".\n"
        "The credential itself is never stored in the database.")
    connect_timeout = fields.Float(
        "Connect Timeout", required=True,
        help="In seconds, how long to wait for a connection.")
    read_timeout = fields.Float(
        "Read Timeout", required=True,
        help="In seconds, how long to wait for an answer.")
    max_attempts = fields.Integer(
        "Maximum Attempts", required=True,
        help="How many times a message is tried before it is given up.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('name_company_unique', Unique(t, t.company, t.name),
                'his_connector.msg_endpoint_name_unique'),
            ]
        cls._order.insert(0, ('name', 'ASC'))

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_connect_timeout(cls):
        return 5.0

    @classmethod
    def default_read_timeout(cls):
        return 30.0

    @classmethod
    def default_max_attempts(cls):
        return 8

    @fields.depends('kind', 'purpose', 'database', 'email_from')
    def on_change_kind(self):
        if self.kind:
            self.purpose = KIND_PURPOSE[self.kind]
        if self.kind != 'gnuhealth':
            self.database = None
        if self.kind != 'smtp':
            self.email_from = None

    @classmethod
    def validate_fields(cls, endpoints, field_names):
        super().validate_fields(endpoints, field_names)
        cls.check_purpose(endpoints, field_names)
        cls.check_url(endpoints, field_names)
        cls.check_database(endpoints, field_names)
        cls.check_email_from(endpoints, field_names)
        cls.check_credential_env(endpoints, field_names)
        cls.check_timeouts(endpoints, field_names)
        cls.check_max_attempts(endpoints, field_names)

    @classmethod
    def check_purpose(cls, endpoints, field_names=None):
        if field_names and not (field_names & {'kind', 'purpose'}):
            return
        for endpoint in endpoints:
            if KIND_PURPOSE[endpoint.kind] != endpoint.purpose:
                raise EndpointValidationError(gettext(
                        'his_connector.msg_endpoint_kind_purpose',
                        endpoint=endpoint.rec_name,
                        kind=cls.__names__('kind', endpoint)['value'],
                        purpose=cls.__names__('purpose', endpoint)['value']))

    @classmethod
    def check_url(cls, endpoints, field_names=None):
        if field_names and not (field_names & {'kind', 'url'}):
            return
        for endpoint in endpoints:
            url, kind = endpoint.url, endpoint.kind
            if kind == 'pacs_csv':
                valid, message = (
                    valid_directory_path(url),
                    'msg_endpoint_url_invalid_directory')
            elif kind == 'sms_modem':
                valid, message = (
                    valid_device_path(url),
                    'msg_endpoint_url_invalid_device')
            elif _has_userinfo(url):
                # Do not repeat the URL: it contains a credential
                raise EndpointValidationError(gettext(
                        'his_connector.msg_endpoint_url_credential',
                        endpoint=endpoint.rec_name))
            elif kind == 'hl7_mllp':
                valid, message = (
                    valid_mllp_url(url), 'msg_endpoint_url_invalid_mllp')
            elif kind == 'smtp':
                valid, message = (
                    valid_smtp_url(url), 'msg_endpoint_url_invalid_smtp')
            else:
                assert kind in HTTP_KINDS, kind
                valid, message = (
                    valid_http_url(url), 'msg_endpoint_url_invalid_http')
            if not valid:
                raise EndpointValidationError(gettext(
                        f'his_connector.{message}',
                        endpoint=endpoint.rec_name,
                        kind=cls.__names__('kind', endpoint)['value'],
                        url=url))

    @classmethod
    def check_database(cls, endpoints, field_names=None):
        if field_names and not (field_names & {'kind', 'database'}):
            return
        for endpoint in endpoints:
            if not endpoint.database:
                continue
            if endpoint.kind != 'gnuhealth':
                raise EndpointValidationError(gettext(
                        'his_connector.msg_endpoint_database_unused',
                        endpoint=endpoint.rec_name,
                        kind=cls.__names__('kind', endpoint)['value']))
            if not DATABASE_NAME.fullmatch(endpoint.database):
                raise EndpointValidationError(gettext(
                        'his_connector.msg_endpoint_database_invalid',
                        endpoint=endpoint.rec_name,
                        database=endpoint.database))

    @classmethod
    def check_email_from(cls, endpoints, field_names=None):
        from .mail import valid_address
        if field_names and not (field_names & {'kind', 'email_from'}):
            return
        for endpoint in endpoints:
            if (endpoint.kind == 'smtp'
                    and not valid_address(endpoint.email_from or '')):
                raise EndpointValidationError(gettext(
                        'his_connector.msg_endpoint_email_from_invalid',
                        endpoint=endpoint.rec_name,
                        address=endpoint.email_from or ''))

    @classmethod
    def check_credential_env(cls, endpoints, field_names=None):
        if field_names and 'credential_env' not in field_names:
            return
        for endpoint in endpoints:
            variable = endpoint.credential_env
            if not variable:
                continue
            if not ENV_VAR_NAME.fullmatch(variable):
                raise EndpointValidationError(gettext(
                        'his_connector.msg_endpoint_credential_env_invalid',
                        endpoint=endpoint.rec_name,
                        variable=variable))
            if not valid_credential_env(variable):
                raise EndpointValidationError(gettext(
                        'his_connector.msg_endpoint_credential_env_prefix',
                        endpoint=endpoint.rec_name,
                        variable=variable,
                        prefix=CREDENTIAL_ENV_PREFIX))

    @classmethod
    def check_timeouts(cls, endpoints, field_names=None):
        timeouts = ['connect_timeout', 'read_timeout']
        if field_names:
            timeouts = [f for f in timeouts if f in field_names]
        for endpoint in endpoints:
            for fname in timeouts:
                value = getattr(endpoint, fname)
                if not (math.isfinite(value) and value > 0):
                    raise EndpointValidationError(gettext(
                            'his_connector.msg_endpoint_timeout_positive',
                            endpoint=endpoint.rec_name,
                            **cls.__names__(fname, endpoint)))

    @classmethod
    def check_max_attempts(cls, endpoints, field_names=None):
        if field_names and 'max_attempts' not in field_names:
            return
        for endpoint in endpoints:
            if endpoint.max_attempts < 1:
                raise EndpointValidationError(gettext(
                        'his_connector.msg_endpoint_max_attempts',
                        endpoint=endpoint.rec_name,
                        value=endpoint.max_attempts))

    def get_credential(self):
        """Return the password or token of the endpoint from the server
        environment, or None if the endpoint does not use one.

        The value must never be stored nor logged."""
        if not self.credential_env:
            return None
        if not valid_credential_env(self.credential_env):
            # Saved before the prefix was required, or written in SQL
            raise CredentialError(gettext(
                    'his_connector.msg_endpoint_credential_env_prefix',
                    endpoint=self.rec_name,
                    variable=self.credential_env,
                    prefix=CREDENTIAL_ENV_PREFIX))
        value = os.environ.get(self.credential_env)
        if not value:
            raise CredentialError(gettext(
                    'his_connector.msg_endpoint_credential_missing',
                    endpoint=self.rec_name,
                    variable=self.credential_env))
        return value

    # Transports (used by the outbox and the services)

    def transport(self):
        """Return the driver of the endpoint: a his.HISTransport built from
        a PeerConfig for the HIS kinds, a sms.Modem for an SMS modem.

        The credential is read from the environment at each call (never
        stored); the caller closes the transport when done."""
        if self.kind == 'sms_modem':
            from .sms import Modem
            return Modem.from_endpoint(self)
        if self.kind == 'smtp':
            from .mail import MailTransport
            return MailTransport.from_endpoint(self)
        from .his import PeerConfig
        if self.kind == 'gnuhealth':
            from .transports.gnuhealth import GNUHealthTransport as Transport
        elif self.kind == 'fhir':
            from .transports.fhir import FHIRTransport as Transport
        elif self.kind == 'hl7_mllp':
            from .transports.hl7v2 import HL7Transport as Transport
        else:
            raise ValueError(f"No transport for endpoint kind {self.kind}")
        return Transport(PeerConfig(
                url=self.url,
                database=self.database,
                username=self.username,
                password=self.get_credential(),
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout))

    @classmethod
    def is_configured(cls, purpose, company=None):
        """Whether the company (default: the context's) has an active
        endpoint for purpose"""
        if company is None:
            company = Transaction().context.get('company')
        with without_check_access():
            return bool(cls.search([
                        ('purpose', '=', purpose),
                        ('company', '=', getattr(company, 'id', company)),
                        ], limit=1))

    @classmethod
    def get_active(cls, purpose, company=None):
        """Return the active endpoint of the company (default: the context's)
        for purpose ('his', 'sms', 'pacs'): the first by name.

        Raise EndpointMissingError when there is none."""
        if company is None:
            company = Transaction().context.get('company')
        company_id = getattr(company, 'id', company)
        endpoints = cls.search([
                ('purpose', '=', purpose),
                ('company', '=', company_id),
                ], limit=1)
        if not endpoints:
            purposes = dict(cls.fields_get(['purpose'])['purpose']['selection'])
            raise EndpointMissingError(gettext(
                    'his_connector.msg_endpoint_missing',
                    purpose=purposes.get(purpose, purpose)))
        endpoint, = endpoints
        return endpoint
