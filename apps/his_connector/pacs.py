# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""PACS usage feeds: per device (AE title or station) and day, the number
of examinations and the hours of use.

They come from a CSV export the PACS drops in a directory (a scheduled job
reads it; a user may also upload a file) or from the PACS pushing JSON to
``POST /<database>/his_connector/pacs/usage`` with the bearer key of a user
application "PACS Usage Feed".  Figures sent again for the same endpoint,
device and day replace the previous ones, which are kept as a revision.
The domain modules read the figures with PacsUsage.usage_for(); this module
knows nothing of their equipment."""
import dataclasses
import datetime as dt
import json
import logging
import os
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool, PoolMeta
from trytond.protocols.wrappers import (
    HTTPStatus, abort, user_application, with_pool,
    with_transaction)
from trytond.pyson import Eval, PYSONEncoder
from trytond.transaction import Transaction, without_check_access
from trytond.wizard import Button, StateAction, StateView, Wizard
from trytond.wsgi import app

from .chargeitem import read_csv, raise_line_errors
from .exceptions import CatalogueImportError, PacsUsageError

logger = logging.getLogger(__name__)

APPLICATION = 'his_connector_pacs'
SOURCES = [
    ('csv', "CSV File"),
    ('http', "HTTP Push"),
    ]
USAGE_COLUMNS = {
    'device': ['ae_title', 'station', '设备', '设备编码'],
    'day': ['date', '日期'],
    'exams': ['exam_count', '检查人次', '检查数'],
    'hours': ['使用时长', '小时'],
    }
DEVICE_MAX = 64
# Rows in one push
MAX_ROWS = 10000
HOURS = Decimal('0.01')
DAY_FORMATS = ('%Y-%m-%d', '%Y%m%d', '%Y/%m/%d')
DIGITS = re.compile(r'[0-9]+')


@dataclasses.dataclass(frozen=True)
class Usage:
    "The usage of one device on one day"
    device: str
    day: dt.date
    exams: int
    hours: Decimal


def _parse_day(value):
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        for format_ in DAY_FORMATS:
            try:
                return dt.datetime.strptime(value.strip(), format_).date()
            except ValueError:
                continue
    raise ValueError(value)


def _parse_exams(value):
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        exams = value
    elif isinstance(value, str) and DIGITS.fullmatch(value.strip()):
        exams = int(value.strip())
    elif isinstance(value, (float, Decimal)) and value == int(value):
        exams = int(value)
    else:
        raise ValueError(value)
    if exams < 0:
        raise ValueError(value)
    return exams


def _parse_hours(value):
    if isinstance(value, bool) or value is None:
        raise ValueError(value)
    try:
        hours = Decimal(value.strip() if isinstance(value, str)
            else str(value))
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(value)
    if not hours.is_finite() or not (0 <= hours <= 24):
        raise ValueError(value)
    return hours.quantize(HOURS, rounding=ROUND_HALF_UP)


def parse_usage(rows, today=None):
    """Return the Usage of rows, a list of (number, {device, day, exams,
    hours}) with text (CSV) or JSON values.

    Return the list of (number, error message) of the bad rows as second
    value; a device and day may appear once only."""
    if today is None:
        today = dt.date.today()
    usages, errors, seen = [], [], {}
    for number, row in rows:
        if not isinstance(row, dict):
            errors.append((number, gettext('his_connector.msg_pacs_row_type')))
            continue
        device = row.get('device')
        if (not isinstance(device, str) or not device.strip()
                or len(device.strip()) > DEVICE_MAX
                or not device.strip().isprintable()):
            errors.append((number, gettext(
                        'his_connector.msg_pacs_device_invalid',
                        device=device if device is not None else '',
                        max=DEVICE_MAX)))
            continue
        device = device.strip()
        try:
            day = _parse_day(row.get('day'))
        except ValueError:
            errors.append((number, gettext(
                        'his_connector.msg_pacs_day_invalid',
                        device=device, day=row.get('day') or '')))
            continue
        if day > today:
            errors.append((number, gettext(
                        'his_connector.msg_pacs_day_future',
                        device=device, day=day)))
            continue
        try:
            exams = _parse_exams(row.get('exams'))
        except (ValueError, OverflowError):
            errors.append((number, gettext(
                        'his_connector.msg_pacs_exams_invalid',
                        device=device, day=day,
                        exams=row.get('exams') if row.get('exams')
                        is not None else '')))
            continue
        try:
            hours = _parse_hours(row.get('hours'))
        except ValueError:
            errors.append((number, gettext(
                        'his_connector.msg_pacs_hours_invalid',
                        device=device, day=day,
                        hours=row.get('hours') if row.get('hours')
                        is not None else '')))
            continue
        if (device, day) in seen:
            errors.append((number, gettext(
                        'his_connector.msg_pacs_duplicate',
                        device=device, day=day, first=seen[device, day])))
            continue
        seen[device, day] = number
        usages.append(Usage(device, day, exams, hours))
    return usages, errors


def parse_usage_csv(data, today=None):
    """Return the Usage of a PACS CSV export (columns device, day, exams,
    hours); raise CatalogueImportError listing the bad lines"""
    usages, errors = parse_usage(
        read_csv(data, USAGE_COLUMNS, set(USAGE_COLUMNS)), today=today)
    raise_line_errors(errors)
    return usages


def parse_usage_json(data, today=None):
    """Return the Usage of a JSON push (a list of objects with device, day,
    exams and hours); raise PacsUsageError listing the bad rows"""
    if not isinstance(data, list):
        raise PacsUsageError(gettext('his_connector.msg_pacs_body_list'))
    if len(data) > MAX_ROWS:
        raise PacsUsageError(gettext(
                'his_connector.msg_pacs_too_many_rows', max=MAX_ROWS))
    usages, errors = parse_usage(enumerate(data, 1), today=today)
    if errors:
        lines = [
            gettext('his_connector.msg_pacs_row', row=row, error=error)
            for row, error in errors[:20]]
        if len(errors) > 20:
            lines.append(gettext(
                    'his_connector.msg_csv_more_errors',
                    count=len(errors) - 20))
        lines.append(gettext('his_connector.msg_pacs_nothing_stored'))
        raise PacsUsageError('\n'.join(lines))
    return usages


class PacsUsage(ModelSQL, ModelView):
    __name__ = 'his.pacs.usage'
    __string__ = "PACS Usage"
    _rec_name = 'device'

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    endpoint = fields.Many2One(
        'his.endpoint', "PACS", required=True, readonly=True,
        ondelete='CASCADE',
        domain=[
            ('company', '=', Eval('company', -1)),
            ('purpose', '=', 'pacs'),
            ])
    device = fields.Char(
        "Device", required=True, readonly=True,
        help="The device's code at the PACS: its AE title or station name.")
    day = fields.Date("Day", required=True, readonly=True)
    exams = fields.Integer(
        "Examinations", required=True, readonly=True,
        domain=[('exams', '>=', 0)])
    hours = fields.Numeric(
        "Hours", digits=(4, 2), required=True, readonly=True,
        domain=[('hours', '>=', 0), ('hours', '<=', 24)],
        help="The hours the device was in use that day.")
    source = fields.Selection(
        SOURCES, "Source", required=True, readonly=True)
    file_name = fields.Char("File Name", readonly=True)
    received_at = fields.DateTime("Received At", required=True, readonly=True)
    revisions = fields.One2Many(
        'his.pacs.usage.revision', 'usage', "Replaced Figures",
        readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('endpoint_device_day_unique',
                Unique(t, t.endpoint, t.device, t.day),
                'his_connector.msg_pacs_usage_unique'),
            ]
        cls._order = [
            ('day', 'DESC'), ('device', 'ASC'), ('id', 'DESC')]

    @classmethod
    def record_usage(cls, endpoint, usages, source, file_name=None):
        """Store the usages (Usage) the PACS endpoint sent; figures sent
        again for a device and day replace the previous ones, which are
        kept as a revision. Return the counts {created, replaced,
        unchanged}."""
        pool = Pool()
        Endpoint = pool.get('his.endpoint')
        Revision = pool.get('his.pacs.usage.revision')
        if endpoint.purpose != 'pacs':
            raise PacsUsageError(gettext(
                    'his_connector.msg_pacs_endpoint_not_pacs',
                    endpoint=endpoint.rec_name))
        if len({(u.device, u.day) for u in usages}) != len(usages):
            raise PacsUsageError(gettext(
                    'his_connector.msg_pacs_duplicate_batch'))
        # One feed at a time per endpoint: a re-send replaces, never
        # collides
        Endpoint.lock([endpoint])
        now = dt.datetime.now()
        existing = {}
        devices = sorted({u.device for u in usages})
        for i in range(0, len(devices), 500):
            for record in cls.search([
                        ('endpoint', '=', endpoint.id),
                        ('device', 'in', devices[i:i + 500]),
                        ('day', 'in', list({u.day for u in usages})),
                        ]):
                existing[record.device, record.day] = record
        to_create, to_write, revisions = [], [], []
        counts = {'created': 0, 'replaced': 0, 'unchanged': 0}
        for usage in usages:
            record = existing.get((usage.device, usage.day))
            if record is None:
                counts['created'] += 1
                to_create.append({
                        'company': endpoint.company.id,
                        'endpoint': endpoint.id,
                        'device': usage.device,
                        'day': usage.day,
                        'exams': usage.exams,
                        'hours': usage.hours,
                        'source': source,
                        'file_name': file_name,
                        'received_at': now,
                        })
            elif (record.exams, record.hours) == (usage.exams, usage.hours):
                counts['unchanged'] += 1
            else:
                counts['replaced'] += 1
                revisions.append({
                        'usage': record.id,
                        'exams': record.exams,
                        'hours': record.hours,
                        'source': record.source,
                        'file_name': record.file_name,
                        'received_at': record.received_at,
                        })
                to_write.extend([[record], {
                            'exams': usage.exams,
                            'hours': usage.hours,
                            'source': source,
                            'file_name': file_name,
                            'received_at': now,
                            }])
        if to_create:
            cls.create(to_create)
        if revisions:
            Revision.create(revisions)
        if to_write:
            with Transaction().set_context(_log=True):
                cls.write(*to_write)
        return counts

    @classmethod
    def usage_for(cls, device_codes, start, end, company=None):
        """Return the usages (his.pacs.usage) of the devices named by
        device_codes (AE titles or stations) from start to end (dates,
        included), ordered by device and day; in company (default: the
        context's)"""
        if company is None:
            company = Transaction().context.get('company')
        domain = [
            ('device', 'in', list(device_codes)),
            ('day', '>=', start),
            ('day', '<=', end),
            ]
        if company is not None:
            domain.append(('company', '=', int(company)))
        return cls.search(domain, order=[
                ('device', 'ASC'), ('day', 'ASC'), ('endpoint', 'ASC')])

    @classmethod
    def import_file(cls, endpoint, data, file_name=None):
        "Import a PACS CSV export; return the counts"
        usages = parse_usage_csv(data)
        return cls.record_usage(endpoint, usages, 'csv', file_name=file_name)

    @classmethod
    def import_directories(cls):
        """Import the CSV files waiting in the directory of every active
        PACS CSV endpoint (scheduled job)"""
        pool = Pool()
        Endpoint = pool.get('his.endpoint')
        for endpoint in Endpoint.search([('kind', '=', 'pacs_csv')]):
            cls.import_directory(endpoint)

    @classmethod
    def import_directory(cls, endpoint):
        """Import the *.csv files of the endpoint's directory.

        Once the transaction is committed, imported files are moved to its
        done/ subdirectory and refused ones to error/ with the reason in
        <file>.error.txt; nothing of a refused file is stored. Return the
        list of (file name, counts or error message)."""
        directory = Path(endpoint.url)
        if not directory.is_dir():
            logger.warning(
                "PACS directory %s of %s is missing",
                directory, endpoint.rec_name)
            return []
        mover = Transaction().join(FileMover())
        results = []
        for path in sorted(
                p for p in directory.iterdir()
                if p.is_file() and p.suffix.lower() == '.csv'):
            try:
                data = path.read_bytes()
                usages = parse_usage_csv(data)
            except (OSError, CatalogueImportError, PacsUsageError) as e:
                reason = getattr(e, 'message', None) or str(e)
                logger.warning(
                    "PACS file %s refused: %s", path, reason)
                mover.add(path, directory / 'error', reason)
                results.append((path.name, reason))
                continue
            counts = cls.record_usage(
                endpoint, usages, 'csv', file_name=path.name)
            mover.add(path, directory / 'done')
            results.append((path.name, counts))
        return results


class PacsUsageRevision(ModelSQL, ModelView):
    __name__ = 'his.pacs.usage.revision'
    __string__ = "PACS Usage Revision"

    usage = fields.Many2One(
        'his.pacs.usage', "Usage", required=True, readonly=True,
        ondelete='CASCADE')
    exams = fields.Integer("Examinations", readonly=True)
    hours = fields.Numeric("Hours", digits=(4, 2), readonly=True)
    source = fields.Selection(SOURCES, "Source", readonly=True)
    file_name = fields.Char("File Name", readonly=True)
    received_at = fields.DateTime(
        "Received At", readonly=True,
        help="When the replaced figures had been received.")
    replaced_at = fields.Function(
        fields.DateTime("Replaced At"), 'get_replaced')
    replaced_by = fields.Function(
        fields.Many2One('res.user', "Replaced By"), 'get_replaced')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('create_date', 'DESC'), ('id', 'DESC')]

    def get_replaced(self, name):
        if name == 'replaced_at':
            return self.create_date.replace(microsecond=0)
        return self.create_uid.id if self.create_uid else None


class FileMover:
    """Move the imported files once the transaction is committed (a Tryton
    data manager); on a rollback they stay where they are and are read
    again by the next run"""

    def __init__(self):
        self.moves = []

    def __eq__(self, other):
        return isinstance(other, FileMover)

    def __hash__(self):
        return hash(FileMover)

    def add(self, path, target, reason=None):
        self.moves.append((path, target, reason))

    def abort(self, transaction):
        self.moves = []

    def tpc_begin(self, transaction):
        pass

    def commit(self, transaction):
        pass

    def tpc_vote(self, transaction):
        pass

    def tpc_finish(self, transaction):
        for path, target, reason in self.moves:
            try:
                target.mkdir(exist_ok=True)
                destination = target / path.name
                if destination.exists():
                    stamp = dt.datetime.now().strftime('%Y%m%dT%H%M%S%f')
                    destination = target / f'{path.stem}-{stamp}{path.suffix}'
                os.replace(path, destination)
                if reason is not None:
                    destination.with_name(
                        destination.name + '.error.txt').write_text(
                        reason + '\n', encoding='utf-8')
            except OSError:
                logger.exception("PACS file %s not moved to %s", path, target)
        self.moves = []

    def tpc_abort(self, transaction):
        self.moves = []


class PacsUsageImportStart(ModelView):
    __name__ = 'his.pacs.usage.import.start'
    __string__ = "Import PACS Usage"

    company = fields.Many2One('company.company', "Company", readonly=True)
    endpoint = fields.Many2One(
        'his.endpoint', "PACS", required=True,
        domain=[
            ('company', '=', Eval('company', -1)),
            ('purpose', '=', 'pacs'),
            ])
    file = fields.Binary(
        "File", required=True, filename='file_name',
        help="A CSV export with the columns device, day, exams and hours, "
        "in UTF-8 or GB18030.")
    file_name = fields.Char("File Name")

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')


class PacsUsageImport(Wizard):
    __name__ = 'his.pacs.usage.import'
    __string__ = "Import PACS Usage"
    start = StateView(
        'his.pacs.usage.import.start',
        'his_connector.pacs_usage_import_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Import", 'import_', 'tryton-ok', default=True),
            ])
    import_ = StateAction('his_connector.act_pacs_usage_form')

    def do_import_(self, action):
        pool = Pool()
        PacsUsage = pool.get('his.pacs.usage')
        endpoint = self.start.endpoint
        PacsUsage.import_file(
            endpoint, self.start.file or b'', file_name=self.start.file_name)
        action['pyson_domain'] = PYSONEncoder().encode([
                ('endpoint', '=', endpoint.id),
                ])
        return action, {}


class UserApplication(metaclass=PoolMeta):
    __name__ = 'res.user.application'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.application.selection.append((APPLICATION, "PACS Usage Feed"))


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('his.pacs.usage|import_directories', "Import PACS Usage Files"))


def _push_endpoint(request, pool):
    """The PACS HTTP endpoint the push is for: ?endpoint=<name>, or the
    only active one of the user's company"""
    Endpoint = pool.get('his.endpoint')
    domain = [
        ('kind', '=', 'pacs_http'),
        ('company', '=', Transaction().context['company']),
        ]
    name = request.args.get('endpoint')
    if name:
        domain.append(('name', '=', name))
    # The feed's user needs no access to the endpoints' configuration
    with without_check_access():
        endpoints = Endpoint.search(domain, limit=2)
    if len(endpoints) != 1:
        raise PacsUsageError(gettext(
                'his_connector.msg_pacs_push_endpoint',
                endpoint=name or ''))
    return endpoints[0]


@app.route(
    '/<database_name>/his_connector/pacs/usage', methods=['POST'])
@with_pool
@with_transaction(readonly=False)
@user_application(APPLICATION)
def pacs_usage_push(request, pool):
    """Receive the usage of the PACS's devices: a JSON list of
    {"device", "day", "exams", "hours"}; answer the counts"""
    User = pool.get('res.user')
    PacsUsage = pool.get('his.pacs.usage')
    user = User(Transaction().user)
    if not user.company:
        abort(HTTPStatus.FORBIDDEN)
    context = {
        'company': user.company.id,
        'companies': [c.id for c in user.companies] or [user.company.id],
        }
    if user.language:
        context['language'] = user.language.code
    with Transaction().set_context(context):
        try:
            data = json.loads(request.get_data().decode('utf-8'))
        except (UnicodeDecodeError, ValueError):
            raise PacsUsageError(gettext('his_connector.msg_pacs_body_json'))
        usages = parse_usage_json(data)
        endpoint = _push_endpoint(request, pool)
        counts = PacsUsage.record_usage(endpoint, usages, 'http')
    return {'received': len(usages), **counts}
