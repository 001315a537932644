# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The GNU Health 5.0 HIS over its Tryton JSON-RPC.

What is read and written at the peer:

- an admission (住院号) is a ``gnuhealth.inpatient.registration`` whose
  ``name`` is the inpatient number;
- a surgery (手术流水号) is a ``gnuhealth.surgery`` whose ``code`` is the
  surgery number; the surgeries of an admission are those of its patient
  dated within the stay;
- the charge catalogue (收费项目) is the products with a code that are
  services or medical supplies (beds and insurance plans excluded);
- a charge is a line (``gnuhealth.health_service.line``) of the service
  document named ``HRP-<inpatient number>`` (``-2``, ``-3``… once the
  earlier one is invoiced), created when missing.  The line carries the
  idempotency key in its remarks:

  ``[hrp-pending:KEY]``
      being posted: not to invoice yet;
  ``[hrp:KEY]``
      posted: to invoice;
  ``[hrp-cancelled:KEY]``
      cancelled: kept, not to invoice.

Exactly once: a post first looks for a line of its key, and answers it as a
duplicate when there is one.  Otherwise it creates a pending line, then
confirms the oldest line of the key and deletes the other pending ones.  A
post whose answer was lost (timeout) and that the server completes after a
retry only leaves a pending line, never a second line to invoice, and the
next post or cancellation of the key removes it.  A confirmed or cancelled
line is never replaced.

Dates and times are naive UTC, as Tryton stores them."""
import base64
import datetime as dt
import itertools
import json
import logging
import re
import threading
from decimal import Decimal

import requests

from ..his import (
    ChargeAck, ChargeItem, HISTransport, MalformedReply, NotFound, Patient,
    PeerConfig, PeerRejected, PeerUnavailable, Surgery)

__all__ = ['GNUHealthTransport']

logger = logging.getLogger(__name__)

REGISTRATION = 'gnuhealth.inpatient.registration'
SURGERY = 'gnuhealth.surgery'
SERVICE = 'gnuhealth.health_service'
LINE = 'gnuhealth.health_service.line'
PRODUCT = 'product.product'

PENDING, POSTED, CANCELLED = 'pending', 'posted', 'cancelled'
MARKERS = {
    PENDING: '[hrp-pending:{}]',
    POSTED: '[hrp:{}]',
    CANCELLED: '[hrp-cancelled:{}]',
    }
MARKER = re.compile(r'\[hrp(?:-(pending|cancelled))?:(.+)\]', re.DOTALL)
# The registrations whose patient has left: their stay has an end
DISCHARGED = {'done', 'finished'}
SEX = {'m': 'male', 'f': 'female', 'nb': 'other', 'other': 'other'}
# How many times a post or a cancellation starts over when it meets a
# concurrent one (another service document created meanwhile, …)
ATTEMPTS = 4

REGISTRATION_FIELDS = [
    'name', 'state', 'patient', 'patient.puid', 'patient.gender',
    'patient.dob', 'patient.party.rec_name', 'bed.rec_name',
    'bed.ward.name', 'bed.ward.unit.code', 'bed.ward.unit.name',
    'hospitalization_date', 'discharge_date',
    ]
SURGERY_FIELDS = [
    'code', 'state', 'patient', 'patient.puid', 'surgery_date',
    'description', 'main_procedure.rec_name', 'operating_room.name',
    'surgeon.rec_name',
    ]
LINE_FIELDS = [
    'remarks', 'service', 'service.name', 'service.state', 'to_invoice',
    'create_date', 'write_date',
    ]


def marker(state, key):
    return MARKERS[state].format(key)


def parse_marker(remarks):
    "Return (state, key) of a line's remarks, or None if not ours"
    match = MARKER.fullmatch(remarks or '')
    if not match:
        return None
    return match.group(1) or POSTED, match.group(2)


# Tryton's JSON-RPC encodes these types as objects with a __class__
def _encode(value):
    if isinstance(value, dt.datetime):
        return {'__class__': 'datetime', 'year': value.year,
            'month': value.month, 'day': value.day, 'hour': value.hour,
            'minute': value.minute, 'second': value.second,
            'microsecond': value.microsecond}
    if isinstance(value, dt.date):
        return {'__class__': 'date', 'year': value.year,
            'month': value.month, 'day': value.day}
    if isinstance(value, Decimal):
        return {'__class__': 'Decimal', 'decimal': str(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _decode(obj):
    cls = obj.get('__class__')
    if cls is None:
        return obj
    try:
        if cls == 'datetime':
            return dt.datetime(obj['year'], obj['month'], obj['day'],
                obj.get('hour', 0), obj.get('minute', 0),
                obj.get('second', 0), obj.get('microsecond', 0))
        if cls == 'date':
            return dt.date(obj['year'], obj['month'], obj['day'])
        if cls == 'time':
            return dt.time(obj.get('hour', 0), obj.get('minute', 0),
                obj.get('second', 0), obj.get('microsecond', 0))
        if cls == 'timedelta':
            return dt.timedelta(seconds=obj['seconds'])
        if cls == 'Decimal':
            return Decimal(obj['decimal'])
        if cls == 'bytes':
            return base64.decodebytes(obj['base64'].encode())
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"bad {cls} value") from exc
    return obj


def _related(record, path):
    """The value of a dotted field read by Tryton ('bed.ward.name'), which
    comes as nested dicts under 'bed.' and 'ward.'"""
    *parents, name = path.split('.')
    for parent in parents:
        if not isinstance(record, dict):
            return None
        record = record.get(f'{parent}.')
    if not isinstance(record, dict):
        return None
    return record.get(name)


def _start_of_day(value):
    return dt.datetime.combine(value.date(), dt.time.min)


def _end_of_day(value):
    return dt.datetime.combine(value.date(), dt.time.max)


class GNUHealthTransport(HISTransport):
    """A GNU Health (Tryton 7.0) server reached by JSON-RPC at
    ``<url>/<database>/`` with a user's session.

    The user needs read access to inpatient registrations, patients and
    surgeries, and read/write/create/delete access to health services and
    their lines (see GNUHEALTH.md)."""

    # Tryton up to 7.0 answers JSON-RPC at /<db>/, later versions at
    # /<db>/rpc/: the first that does not answer 404/405 is kept
    PATHS = ('{database}/', '{database}/rpc/')

    def __init__(self, config: PeerConfig):
        super().__init__(config)
        if not config.database or not config.username:
            raise ValueError("GNU Health needs a database and a username")
        self._http = requests.Session()
        self._http.headers['Content-Type'] = 'application/json'
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._path = None
        self._authorization = None
        self._context = None

    @property
    def _base(self):
        return self.config.url.rstrip('/') + '/'

    @property
    def _timeout(self):
        return (self.config.connect_timeout, self.config.read_timeout)

    # ------------------------------------------------------------------
    # JSON-RPC

    def _post(self, path, method, params, authorization=None):
        """POST one JSON-RPC request; return (HTTP status, reply or None).

        The request body is never logged nor quoted: the login's holds the
        password."""
        request_id = next(self._ids)
        body = json.dumps(
            {'id': request_id, 'method': method, 'params': params},
            default=_encode, separators=(',', ':'))
        headers = {}
        if authorization:
            headers['Authorization'] = f'Session {authorization}'
        url = self._base + path
        try:
            response = self._http.post(
                url, data=body.encode('utf-8'), headers=headers,
                timeout=self._timeout)
            content = response.content
        except requests.Timeout as exc:
            raise PeerUnavailable(
                f"GNU Health at {self._base} did not answer {method} "
                "in time") from exc
        except requests.RequestException as exc:
            raise PeerUnavailable(
                f"GNU Health at {self._base} is unreachable "
                f"({type(exc).__name__})") from exc
        status = response.status_code
        logger.debug("%s %s -> %s", url, method, status)
        if status >= 500:
            raise PeerUnavailable(
                f"GNU Health at {self._base} answered HTTP {status} "
                f"to {method}")
        if status == 429:
            raise PeerUnavailable(
                f"GNU Health at {self._base} limits the rate of requests")
        if status != 200:
            return status, None
        try:
            reply = json.loads(content, object_hook=_decode)
        except ValueError as exc:
            raise MalformedReply(
                f"GNU Health at {self._base} answered {method} with "
                "something that is not JSON") from exc
        if (not isinstance(reply, dict)
                or reply.get('id') != request_id
                or ('result' in reply) == ('error' in reply)):
            raise MalformedReply(
                f"GNU Health at {self._base} answered {method} with an "
                "unexpected JSON-RPC reply")
        return status, reply

    def _login(self):
        password = self.config.password
        if password is None:
            raise PeerRejected(
                f"No password for user {self.config.username} of "
                f"GNU Health at {self._base}")
        paths = [self._path] if self._path else [
            p.format(database=self.config.database) for p in self.PATHS]
        for path in paths:
            status, reply = self._post(path, 'common.db.login',
                [self.config.username, {'password': password}, 'en'])
            if status in {404, 405}:
                continue
            if status in {401, 403}:
                raise PeerRejected(
                    f"GNU Health at {self._base} refused the login of "
                    f"user {self.config.username} to database "
                    f"{self.config.database}")
            if reply is None:
                raise PeerRejected(
                    f"GNU Health at {self._base} answered HTTP {status} to "
                    "the login")
            result = self._result(reply, 'common.db.login')
            if (not isinstance(result, list) or len(result) < 2
                    or not isinstance(result[0], int)
                    or not isinstance(result[1], str)):
                raise MalformedReply(
                    f"GNU Health at {self._base} answered the login with "
                    "an unexpected value")
            user_id, session = result[:2]
            self._path = path
            self._authorization = base64.b64encode(
                f'{self.config.username}:{user_id}:{session}'.encode()
                ).decode()
            self._context = None
            return
        raise PeerRejected(
            f"No GNU Health database {self.config.database} at "
            f"{self._base}")

    def _result(self, reply, method):
        "The result of a reply; raise the mapped error of an error reply"
        if 'result' in reply:
            return reply['result']
        error = reply['error']
        if not isinstance(error, list) or not error:
            raise MalformedReply(
                f"GNU Health at {self._base} answered {method} with an "
                "unexpected error")
        kind = error[0]
        args = error[1] if len(error) > 1 else None
        if kind in {'UserError', 'UserWarning'}:
            message = args
            if isinstance(args, list) and args:
                message = args[1] if kind == 'UserWarning' and len(
                    args) > 1 else args[0]
            raise PeerRejected(f"GNU Health refused {method}: {message}")
        if kind == 'ConcurrencyException':
            raise PeerUnavailable(
                f"GNU Health refused {method}: records were modified "
                "meanwhile")
        if kind == 'LoginException':
            raise PeerRejected(
                f"GNU Health asks for more than a password to log in "
                f"user {self.config.username}")
        # Any other exception of the server (the first item is its text):
        # a fault of the peer, as an HTTP 500 would be
        raise PeerUnavailable(
            f"GNU Health failed on {method}: {str(kind)[:200]}")

    def _call(self, method, *params):
        "Call method with the user's session (logging in when needed)"
        with self._lock:
            for attempt in range(2):
                if self._authorization is None:
                    self._login()
                status, reply = self._post(
                    self._path, method, list(params), self._authorization)
                if status == 401 and attempt == 0:
                    # The session expired: log in again and repeat (the
                    # server did not run the call)
                    self._authorization = None
                    continue
                if status in {401, 403}:
                    raise PeerRejected(
                        f"GNU Health at {self._base} refused {method} to "
                        f"user {self.config.username}")
                if reply is None:
                    raise PeerRejected(
                        f"GNU Health at {self._base} answered HTTP "
                        f"{status} to {method}")
                return self._result(reply, method)

    @property
    def context(self):
        "The user's context (company, language), as a Tryton client sends"
        if self._context is None:
            context = self._call('model.res.user.get_preferences', True, {})
            if not isinstance(context, dict):
                raise MalformedReply(
                    f"GNU Health at {self._base} answered the user "
                    "preferences with an unexpected value")
            self._context = {k: v for k, v in context.items()
                if k in {'company', 'language', 'company_filter'}}
        return self._context

    def _search_read(self, model, domain, fields, order=None, limit=None,
            context=None):
        records = self._call(f'model.{model}.search_read',
            domain, 0, limit, order, fields,
            {**self.context, **(context or {})})
        if (not isinstance(records, list)
                or not all(isinstance(r, dict) and isinstance(
                        r.get('id'), int) for r in records)):
            raise MalformedReply(
                f"GNU Health at {self._base} answered a search of {model} "
                "with an unexpected value")
        return records

    def _create(self, model, values):
        "Create one record of model; return its id"
        result = self._call(f'model.{model}.create', [values], self.context)
        if (not isinstance(result, list) or len(result) != 1
                or not isinstance(result[0], int)):
            raise MalformedReply(
                f"GNU Health at {self._base} answered a creation of {model} "
                "with an unexpected value")
        return result[0]

    # ------------------------------------------------------------------
    # Patients and surgeries

    def _registration(self, inpatient_number, fields=REGISTRATION_FIELDS):
        records = self._search_read(REGISTRATION,
            [('name', '=', inpatient_number)], fields, limit=1)
        if not records:
            raise NotFound(
                f"No admission {inpatient_number} in GNU Health")
        return records[0]

    def _patient_id(self, record):
        puid = _related(record, 'patient.puid')
        return puid or f"{record.get('patient')}"

    def find_patient(self, inpatient_number):
        record = self._registration(inpatient_number)
        state = record.get('state')
        ward = _related(record, 'bed.ward.name')
        bed = _related(record, 'bed.rec_name')
        return Patient(
            inpatient_number=record['name'],
            patient_id=self._patient_id(record),
            name=_related(record, 'patient.party.rec_name') or '',
            sex=SEX.get(_related(record, 'patient.gender')),
            birth_date=_related(record, 'patient.dob'),
            ward=' '.join(filter(None, [ward, bed])) or None,
            department=(_related(record, 'bed.ward.unit.code')
                or _related(record, 'bed.ward.unit.name')),
            admission_date=record.get('hospitalization_date'),
            discharge_date=(record.get('discharge_date')
                if state in DISCHARGED else None),
            )

    @staticmethod
    def _stay(registration):
        "The (start, end) a surgery of the admission falls in; end may be None"
        start = registration.get('hospitalization_date')
        end = registration.get('discharge_date')
        if registration.get('state') not in DISCHARGED or end is None:
            end = None
        return (start and _start_of_day(start), end and _end_of_day(end))

    def _surgery(self, record, inpatient_number):
        procedure = ' '.join(filter(None, [
                    _related(record, 'main_procedure.rec_name'),
                    record.get('description')]))
        return Surgery(
            surgery_number=record.get('code') or '',
            inpatient_number=inpatient_number,
            patient_id=self._patient_id(record),
            procedure=procedure or None,
            date=record.get('surgery_date'),
            theatre=_related(record, 'operating_room.name'),
            surgeon=_related(record, 'surgeon.rec_name'),
            state=record.get('state'),
            )

    def find_surgeries(self, inpatient_number=None, surgery_number=None):
        """The surgeries of the admission's patient dated within the stay,
        or the surgery numbered surgery_number (which takes precedence) with
        the inpatient number of the stay it falls in, for the caller to
        compare"""
        if surgery_number is not None:
            records = self._search_read(SURGERY,
                [('code', '=', surgery_number)], SURGERY_FIELDS, limit=1)
            if not records:
                return []
            record, = records
            return [self._surgery(record,
                    self._admission_of(record['patient'],
                        record.get('surgery_date')))]
        if inpatient_number is None:
            raise ValueError("an inpatient number or a surgery number")
        registration = self._registration(inpatient_number, [
                'name', 'state', 'patient', 'hospitalization_date',
                'discharge_date'])
        start, end = self._stay(registration)
        domain = [('patient', '=', registration['patient'])]
        if start:
            domain.append(('surgery_date', '>=', start))
        if end:
            domain.append(('surgery_date', '<=', end))
        records = self._search_read(SURGERY, domain, SURGERY_FIELDS,
            order=[('surgery_date', 'ASC'), ('id', 'ASC')])
        return [self._surgery(r, registration['name']) for r in records]

    def _admission_of(self, patient, date):
        "The inpatient number of the patient's stay that holds date"
        if date is None:
            return None
        registrations = self._search_read(REGISTRATION, [
                ('patient', '=', patient),
                ('state', '!=', 'cancelled'),
                ('hospitalization_date', '<=', _end_of_day(date)),
                ], ['name', 'state', 'hospitalization_date',
                'discharge_date'],
            order=[('hospitalization_date', 'DESC'), ('id', 'DESC')])
        for registration in registrations:
            start, end = self._stay(registration)
            if (not start or start <= date) and (not end or date <= end):
                return registration['name']
        return None

    # ------------------------------------------------------------------
    # Charges

    def _lines(self, key):
        "The lines of the key, oldest first, as (state, record)"
        records = self._search_read(LINE, [
                ('remarks', 'in', [marker(s, key) for s in MARKERS]),
                ], LINE_FIELDS, order=[('id', 'ASC')])
        lines = []
        for record in records:
            parsed = parse_marker(record.get('remarks'))
            if parsed and parsed[1] == key:
                lines.append((parsed[0], record))
        return lines

    def _ack(self, key, record, state, duplicate):
        return ChargeAck(
            key=key, his_reference=f"{LINE},{record['id']}",
            duplicate=duplicate, cancelled=state == CANCELLED)

    def _remove_pending(self, lines, keep=None):
        """Delete the pending lines but keep: lines of posts that lost the
        race.  Best effort: a line that cannot be deleted is not charged."""
        ids = [r['id'] for s, r in lines
            if s == PENDING and (keep is None or r['id'] != keep['id'])]
        if not ids:
            return
        try:
            self._call(f'model.{LINE}.delete', ids, self.context)
        except PeerRejected as exc:
            logger.warning("Pending lines %s stay in GNU Health: %s", ids, exc)

    def _settle(self, key, lines):
        """Make one line the charge of key: the oldest posted or cancelled
        line, or else the oldest pending line of a draft service document,
        which is confirmed; delete the other pending lines.  Return (state,
        record) of the line kept, or None if there is none to keep."""
        settled = [(s, r) for s, r in lines if s != PENDING]
        pending = [r for s, r in lines if s == PENDING
            and _related(r, 'service.state') == 'draft']
        if settled:
            state, record = settled[0]
        elif pending:
            record = pending[0]
            self._call(f'model.{LINE}.write', [record['id']], {
                    'remarks': marker(POSTED, key),
                    'to_invoice': True,
                    }, self.context)
            state = POSTED
        else:
            # Left by posts that did not finish, in documents invoiced since
            self._remove_pending(lines)
            return None
        self._remove_pending(lines, keep=record)
        return state, record

    @staticmethod
    def _check_charge(charge):
        if (not charge.key or len(charge.key) > 200
                or not charge.key.isprintable()):
            raise PeerRejected(f"Invalid charge key {charge.key!r}")
        quantity = Decimal(charge.quantity)
        if quantity <= 0 or quantity != quantity.to_integral_value():
            raise PeerRejected(
                f"GNU Health charges whole positive quantities, "
                f"not {charge.quantity} (charge {charge.key})")
        return int(quantity)

    def _description(self, charge, product):
        parts = [charge.description or product.get('name')
            or charge.charge_item]
        for label, value in [
                ('lot', charge.lot),
                ('udi', charge.udi),
                ('surgery', charge.surgery_number),
                ('dept', charge.department),
                ('insurance', charge.insurance_code),
                ('unit_price', charge.unit_price),
                ]:
            if value not in {None, ''}:
                parts.append(f'{label}={value}')
        return '; '.join(str(p) for p in parts)

    def _product(self, code):
        records = self._search_read(PRODUCT, [('code', '=', code)],
            ['code', 'name', 'list_price'], limit=1)
        if not records:
            raise PeerRejected(
                f"No active charge item {code} in GNU Health")
        return records[0]

    def _check_surgery(self, charge, registration):
        records = self._search_read(SURGERY,
            [('code', '=', charge.surgery_number)], ['patient'], limit=1)
        if not records:
            raise NotFound(
                f"No surgery {charge.surgery_number} in GNU Health")
        if records[0]['patient'] != registration['patient']:
            raise PeerRejected(
                f"Surgery {charge.surgery_number} is not of the patient "
                f"admitted under {charge.inpatient_number}")

    def _service(self, registration):
        """The draft service document of the registration, created when
        missing; return its id"""
        base = f"HRP-{registration['name']}"
        for attempt in range(ATTEMPTS):
            documents = self._search_read(SERVICE, [
                    ('patient', '=', registration['patient']),
                    ('name', 'like', f'{base}%'),
                    ], ['name', 'state'])
            numbers = {}
            for document in documents:
                name = document.get('name') or ''
                if name == base:
                    numbers[1] = document
                elif (name.startswith(f'{base}-')
                        and name[len(base) + 1:].isdigit()):
                    numbers[int(name[len(base) + 1:])] = document
            drafts = [n for n, d in numbers.items() if d['state'] == 'draft']
            if drafts:
                return numbers[max(drafts)]['id']
            number = max(numbers, default=0) + 1
            name = base if number == 1 else f'{base}-{number}'
            try:
                document_id = self._create(SERVICE, {
                        'name': name,
                        'patient': registration['patient'],
                        'desc': f"HRP {registration['name']}",
                        })
            except PeerRejected:
                # Most likely created meanwhile by a concurrent post: the
                # name is unique; look again
                if attempt == ATTEMPTS - 1:
                    raise
                continue
            return document_id

    def post_charge(self, charge):
        quantity = self._check_charge(charge)
        settled = self._settle(charge.key, self._lines(charge.key))
        if settled:
            state, record = settled
            return self._ack(charge.key, record, state, duplicate=True)

        registration = self._registration(
            charge.inpatient_number, ['name', 'state', 'patient'])
        if registration.get('state') == 'cancelled':
            raise PeerRejected(
                f"Admission {charge.inpatient_number} is cancelled in "
                "GNU Health")
        product = self._product(charge.charge_item)
        if charge.surgery_number:
            self._check_surgery(charge, registration)
        values = {
            'product': product['id'],
            'qty': quantity,
            'desc': self._description(charge, product),
            'remarks': marker(PENDING, charge.key),
            'to_invoice': False,
            }
        if charge.date:
            values['from_date'] = values['to_date'] = charge.date.date()
        for attempt in range(ATTEMPTS):
            service = self._service(registration)
            try:
                line_id = self._create(LINE, dict(values, service=service))
            except PeerRejected:
                # The document may have been invoiced meanwhile
                if attempt == ATTEMPTS - 1:
                    raise
                continue
            break
        settled = self._settle(charge.key, self._lines(charge.key))
        if not settled:
            # The document was invoiced meanwhile: the post may be retried
            raise PeerUnavailable(
                f"GNU Health invoiced the service document of charge "
                f"{charge.key} while it was posted")
        state, record = settled
        return self._ack(charge.key, record, state,
            duplicate=record['id'] != line_id)

    def cancel_charge(self, key):
        lines = self._lines(key)
        if not lines:
            raise NotFound(f"No charge {key} in GNU Health")
        cancelled = [r for s, r in lines if s == CANCELLED]
        if cancelled:
            self._remove_pending(lines)
            return self._ack(key, cancelled[0], CANCELLED, duplicate=True)
        # The posted line, or the oldest pending one of a post that did
        # not finish: cancelling it stops any retry of the post
        posted = [r for s, r in lines if s == POSTED]
        record = (posted or [lines[0][1]])[0]
        self._call(f'model.{LINE}.write', [record['id']], {
                'remarks': marker(CANCELLED, key),
                'to_invoice': False,
                }, self.context)
        self._remove_pending(lines, keep=record)
        return self._ack(key, record, CANCELLED, duplicate=False)

    def list_charges(self, inpatient_number=None, since=None):
        domain = [['OR',
                ('remarks', 'like', '[hrp:%'),
                ('remarks', 'like', '[hrp-cancelled:%'),
                ]]
        if inpatient_number is not None:
            registration = self._registration(
                inpatient_number, ['name', 'patient'])
            base = f'HRP-{inpatient_number}'
            domain += [
                ('service.patient', '=', registration['patient']),
                ['OR',
                    ('service.name', '=', base),
                    ('service.name', 'like', f'{base}-%'),
                    ],
                ]
        if since is not None:
            domain.append(['OR',
                    ('create_date', '>=', since),
                    ('write_date', '>=', since),
                    ])
        records = self._search_read(LINE, domain, LINE_FIELDS,
            order=[('id', 'ASC')])
        acks = {}
        for record in records:
            parsed = parse_marker(record.get('remarks'))
            if not parsed or parsed[0] == PENDING:
                continue
            state, key = parsed
            if inpatient_number is not None:
                # 'like' took any % or _ of the number as wildcards
                base = f'HRP-{inpatient_number}'
                name = _related(record, 'service.name') or ''
                suffix = name[len(base):]
                if not name.startswith(base) or (suffix and not (
                            suffix.startswith('-') and suffix[1:].isdigit())):
                    continue
            if key not in acks:
                acks[key] = self._ack(key, record, state, duplicate=False)
        return list(acks.values())

    def list_charge_items(self):
        # Inactive items too, so that the catalogue shows them withdrawn
        records = self._search_read(PRODUCT, [
                ('code', '!=', None),
                ('is_bed', '!=', True),
                ('is_insurance_plan', '!=', True),
                ['OR',
                    ('type', '=', 'service'),
                    ('is_medical_supply', '=', True),
                    ],
                ], ['code', 'name', 'list_price', 'active',
                'default_uom.symbol', 'default_uom.name'],
            order=[('code', 'ASC'), ('id', 'ASC')],
            context={'active_test': False})
        items = []
        for record in records:
            price = record.get('list_price')
            items.append(ChargeItem(
                    code=record['code'],
                    name=record.get('name') or record['code'],
                    unit=(_related(record, 'default_uom.symbol')
                        or _related(record, 'default_uom.name')),
                    price=Decimal(price) if price is not None else None,
                    active=bool(record.get('active', True)),
                    ))
        return items

    def close(self):
        with self._lock:
            if self._authorization is not None:
                try:
                    self._post(self._path, 'common.db.logout', [],
                        self._authorization)
                except (PeerUnavailable, MalformedReply):
                    pass
                self._authorization = None
            self._http.close()
