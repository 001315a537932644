# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The HIS charge catalogue (收费项目).

Each HIS endpoint has its catalogue, read from the HIS through the
endpoint's transport (by hand or by a scheduled job every night) or from a
CSV file.  Every import is kept as a sync record (who, when, where from,
what changed); items a full import no longer lists are deactivated, never
deleted, so that the charges and mappings that name them stay readable."""
import csv
import datetime as dt
import io
import logging
from decimal import Decimal, InvalidOperation

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, ModelSQL, ModelView, Unique, fields)
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval, PYSONEncoder
from trytond.transaction import Transaction
from trytond.wizard import Button, StateAction, StateView, Wizard

from .exceptions import (
    CatalogueError, CatalogueImportError, CredentialError)
from .his import ChargeItem as ChargeItemRecord
from .his import HISError

logger = logging.getLogger(__name__)

CSV_ENCODINGS = ('utf-8-sig', 'gb18030')
# At most this many bad lines are listed in one error message
MAX_ERRORS = 20
# The columns of the catalogue CSV file and the other names accepted for
# them in the header
CHARGE_ITEM_COLUMNS = {
    'code': ['编码', '收费编码', '项目编码'],
    'name': ['名称', '项目名称', '收费名称'],
    'unit': ['单位'],
    'price': ['价格', '单价'],
    'insurance_code': ['医保编码'],
    }
CHARGE_ITEM_REQUIRED = {'code', 'name'}
SOURCES = [
    ('his', "HIS"),
    ('csv', "CSV File"),
    ]


def decode_csv(data):
    """Return the text of a CSV file encoded in UTF-8 (with or without a
    byte order mark) or GB18030"""
    if isinstance(data, str):
        return data
    data = bytes(data)
    for encoding in CSV_ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise CatalogueImportError(gettext('his_connector.msg_csv_encoding'))


def read_csv(data, columns, required):
    """Return the rows of a CSV file as (line number, {column: text}).

    columns maps each column name to the other names accepted in the header
    (case and surrounding spaces are ignored); required are the columns the
    header must have. Empty rows are skipped."""
    text = decode_csv(data)
    names = {}
    for column, aliases in columns.items():
        for name in [column, *aliases]:
            names[name.strip().lower()] = column
    reader = csv.reader(io.StringIO(text, newline=''))
    try:
        header = next(reader, None)
    except csv.Error as exception:
        raise CatalogueImportError(gettext(
                'his_connector.msg_csv_line', line=reader.line_num,
                error=str(exception))) from exception
    if not header or not any(h.strip() for h in header):
        raise CatalogueImportError(gettext('his_connector.msg_csv_empty'))
    positions = {}
    for position, name in enumerate(header):
        column = names.get(name.strip().lower())
        if column and column not in positions:
            positions[column] = position
    missing = [c for c in columns if c in required and c not in positions]
    if missing:
        raise CatalogueImportError(gettext(
                'his_connector.msg_csv_columns_missing',
                columns=', '.join(missing),
                expected=', '.join(columns)))
    rows = []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            rows.append((reader.line_num, {
                        c: (row[p].strip() if p < len(row) else '')
                        for c, p in positions.items()}))
    except csv.Error as exception:
        raise CatalogueImportError(gettext(
                'his_connector.msg_csv_line', line=reader.line_num,
                error=str(exception))) from exception
    return rows


def raise_line_errors(errors):
    "Raise one CatalogueImportError that lists the (line, message) errors"
    if not errors:
        return
    lines = [
        gettext('his_connector.msg_csv_line', line=line, error=error)
        for line, error in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        lines.append(gettext(
                'his_connector.msg_csv_more_errors',
                count=len(errors) - MAX_ERRORS))
    lines.append(gettext('his_connector.msg_csv_nothing_imported'))
    raise CatalogueImportError('\n'.join(lines))


def _has_control(value):
    return any(not c.isprintable() for c in value)


def parse_price(text):
    """Return the price written in text (at most 4 decimals, not negative)
    or None if empty; raise ValueError if it is not a price"""
    if not text:
        return None
    try:
        price = Decimal(text.replace(',', ''))
    except InvalidOperation:
        raise ValueError(text)
    if (not price.is_finite() or price < 0
            or price.as_tuple().exponent < -4):
        raise ValueError(text)
    return price


def parse_charge_items_csv(data):
    """Return the charge items (his.ChargeItem) of a catalogue CSV file
    (columns code, name, unit, price, insurance_code).

    All bad lines are reported together in one CatalogueImportError."""
    items, errors, seen = [], [], {}
    for line, row in read_csv(data, CHARGE_ITEM_COLUMNS, CHARGE_ITEM_REQUIRED):
        code, name = row['code'], row['name']
        if not code:
            errors.append((line, gettext('his_connector.msg_csv_code_empty')))
            continue
        if _has_control(code) or any(c.isspace() for c in code):
            errors.append((line, gettext(
                        'his_connector.msg_csv_code_invalid', code=code)))
            continue
        if code in seen:
            errors.append((line, gettext(
                        'his_connector.msg_csv_code_duplicate', code=code,
                        first=seen[code])))
            continue
        seen[code] = line
        if not name:
            errors.append((line, gettext(
                        'his_connector.msg_csv_name_empty', code=code)))
            continue
        try:
            price = parse_price(row.get('price', ''))
        except ValueError:
            errors.append((line, gettext(
                        'his_connector.msg_csv_price_invalid', code=code,
                        price=row['price'])))
            continue
        items.append(ChargeItemRecord(
                code=code,
                name=name,
                unit=row.get('unit') or None,
                price=price,
                insurance_code=row.get('insurance_code') or None))
    raise_line_errors(errors)
    return items


class ChargeItem(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'his.charge.item'
    __string__ = "HIS Charge Item"

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    endpoint = fields.Many2One(
        'his.endpoint', "HIS", required=True, readonly=True,
        ondelete='CASCADE',
        domain=[
            ('company', '=', Eval('company', -1)),
            ('purpose', '=', 'his'),
            ],
        help="The HIS whose catalogue lists the item.")
    code = fields.Char(
        "Code", required=True, readonly=True,
        help="The HIS's code of the charge item.")
    name = fields.Char("Name", required=True, readonly=True)
    unit = fields.Char(
        "Unit", readonly=True,
        help="The unit the HIS charges the item in.")
    price = fields.Numeric(
        "Price", digits=(16, 4), readonly=True,
        help="The HIS's price per unit.")
    insurance_code = fields.Char(
        "Insurance Code", readonly=True,
        help="The medical-insurance code (医保编码) of the item.")
    last_seen_at = fields.DateTime(
        "Last Seen At", readonly=True,
        help="When an import last listed the item.")
    last_sync = fields.Many2One(
        'his.charge.item.sync', "Last Import", readonly=True,
        ondelete='SET NULL',
        help="The import that last listed the item.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('endpoint_code_unique', Unique(t, t.company, t.endpoint, t.code),
                'his_connector.msg_charge_item_code_unique'),
            ]
        cls._order = [('endpoint', 'ASC'), ('code', 'ASC'), ('id', 'ASC')]
        # The active flag follows the HIS
        cls.active.readonly = True

    def get_rec_name(self, name):
        return f'[{self.code}] {self.name}'

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        if operator.startswith('!') or operator.startswith('not '):
            bool_op = 'AND'
        else:
            bool_op = 'OR'
        return [bool_op,
            ('code', operator, operand, *extra),
            ('name', operator, operand, *extra),
            ]

    @classmethod
    def import_items(cls, endpoint, items, source, full=True,
            file_name=None):
        """Store the charge items (his.ChargeItem) of endpoint's catalogue;
        with full, deactivate the endpoint's items that are not listed.

        Return the sync record that counts what changed. Items are written
        with the model log (who and when changed what)."""
        pool = Pool()
        Endpoint = pool.get('his.endpoint')
        Sync = pool.get('his.charge.item.sync')
        if endpoint.purpose != 'his':
            raise CatalogueError(gettext(
                    'his_connector.msg_charge_item_endpoint_not_his',
                    endpoint=endpoint.rec_name))
        seen = set()
        for item in items:
            if item.code in seen:
                raise CatalogueError(gettext(
                        'his_connector.msg_charge_item_duplicate',
                        endpoint=endpoint.rec_name, code=item.code))
            seen.add(item.code)
        # One import at a time per catalogue
        Endpoint.lock([endpoint])

        now = dt.datetime.now()
        sync = Sync(
            company=endpoint.company, endpoint=endpoint, source=source,
            full=full, file_name=file_name, date=now,
            user=Transaction().user or None)
        sync.save()
        with Transaction().set_context(active_test=False):
            existing = {
                i.code: i for i in cls.search([
                        ('endpoint', '=', endpoint.id),
                        ])}
        to_create, to_write, seen_records = [], [], []
        created = updated = unchanged = deactivated = 0
        for item in items:
            values = {
                'name': item.name,
                'unit': item.unit,
                'price': item.price,
                'insurance_code': item.insurance_code,
                'active': item.active,
                }
            record = existing.get(item.code)
            if record is None:
                created += 1
                to_create.append({
                        'company': endpoint.company.id,
                        'endpoint': endpoint.id,
                        'code': item.code,
                        'last_seen_at': now,
                        'last_sync': sync.id,
                        **values})
                continue
            seen_records.append(record)
            changes = {
                k: v for k, v in values.items() if getattr(record, k) != v}
            if changes:
                if record.active and not item.active:
                    deactivated += 1
                else:
                    updated += 1
                to_write.extend([[record], changes])
            else:
                unchanged += 1
        if full:
            missing = [
                r for c, r in existing.items() if c not in seen and r.active]
            if missing:
                deactivated += len(missing)
                to_write.extend([missing, {'active': False}])
        if seen_records:
            cls.write(seen_records, {'last_seen_at': now, 'last_sync': sync.id})
        # Only the changes go to the model log
        with Transaction().set_context(_log=True):
            if to_create:
                cls.create(to_create)
            if to_write:
                cls.write(*to_write)
        sync.created, sync.updated = created, updated
        sync.unchanged, sync.deactivated = unchanged, deactivated
        sync.save()
        return sync

    @classmethod
    def refresh_endpoint(cls, endpoint):
        """Import the whole catalogue of endpoint from the HIS; return the
        sync record"""
        try:
            transport = endpoint.transport()
        except ValueError as exception:
            raise CatalogueError(gettext(
                    'his_connector.msg_charge_item_his_failed',
                    endpoint=endpoint.rec_name,
                    error=str(exception))) from exception
        try:
            items = transport.list_charge_items()
        except HISError as exception:
            raise CatalogueError(gettext(
                    'his_connector.msg_charge_item_his_failed',
                    endpoint=endpoint.rec_name,
                    error=str(exception))) from exception
        finally:
            transport.close()
        return cls.import_items(endpoint, items, 'his', full=True)

    @classmethod
    def refresh_catalogues(cls):
        """Refresh every active HIS endpoint's catalogue (scheduled job).

        An HIS that fails is logged and does not stop the others; what an
        HIS sent is stored only when its whole catalogue was read."""
        pool = Pool()
        Endpoint = pool.get('his.endpoint')
        for endpoint in Endpoint.search([('purpose', '=', 'his')]):
            try:
                cls.refresh_endpoint(endpoint)
            except (CatalogueError, CredentialError) as exception:
                logger.warning(
                    "charge catalogue of %s not refreshed: %s",
                    endpoint.rec_name, exception.message)


class ChargeItemSync(ModelSQL, ModelView):
    __name__ = 'his.charge.item.sync'
    __string__ = "HIS Charge Catalogue Import"

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    endpoint = fields.Many2One(
        'his.endpoint', "HIS", required=True, readonly=True,
        ondelete='CASCADE')
    date = fields.DateTime("Date", required=True, readonly=True)
    user = fields.Many2One('res.user', "User", readonly=True)
    source = fields.Selection(SOURCES, "Source", required=True, readonly=True)
    file_name = fields.Char("File Name", readonly=True)
    full = fields.Boolean(
        "Full Catalogue", readonly=True,
        help="The items not listed were deactivated.")
    created = fields.Integer("Created", readonly=True)
    updated = fields.Integer("Updated", readonly=True)
    unchanged = fields.Integer("Unchanged", readonly=True)
    deactivated = fields.Integer("Deactivated", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('date', 'DESC'), ('id', 'DESC')]

    @classmethod
    def default_created(cls):
        return 0

    default_updated = default_unchanged = default_deactivated = (
        default_created)


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.extend([
                ('his.charge.item|refresh_catalogues',
                    "Refresh HIS Charge Catalogues"),
                ])


class ChargeItemImportStart(ModelView):
    __name__ = 'his.charge.item.import.start'
    __string__ = "Import Charge Catalogue"

    company = fields.Many2One('company.company', "Company", readonly=True)
    endpoint = fields.Many2One(
        'his.endpoint', "HIS", required=True,
        domain=[
            ('company', '=', Eval('company', -1)),
            ('purpose', '=', 'his'),
            ],
        help="The HIS whose catalogue is imported.")
    source = fields.Selection(
        SOURCES, "Source", required=True,
        help="Read the catalogue from the HIS or from a CSV file.")
    file = fields.Binary(
        "File", filename='file_name',
        states={
            'required': Eval('source') == 'csv',
            'invisible': Eval('source') != 'csv',
            },
        help="A CSV file with the columns code, name, unit, price and "
        "insurance_code, in UTF-8 or GB18030.")
    file_name = fields.Char(
        "File Name",
        states={
            'invisible': Eval('source') != 'csv',
            })
    full = fields.Boolean(
        "Full Catalogue",
        states={
            'invisible': Eval('source') != 'csv',
            },
        help="The file lists the whole catalogue: deactivate the items it "
        "does not list.")

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_source(cls):
        return 'his'

    @classmethod
    def default_full(cls):
        return True


class ChargeItemImport(Wizard):
    __name__ = 'his.charge.item.import'
    __string__ = "Import Charge Catalogue"
    start = StateView(
        'his.charge.item.import.start',
        'his_connector.charge_item_import_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Import", 'import_', 'tryton-ok', default=True),
            ])
    import_ = StateAction('his_connector.act_charge_item_sync_form')

    def do_import_(self, action):
        pool = Pool()
        ChargeItem = pool.get('his.charge.item')
        endpoint = self.start.endpoint
        if self.start.source == 'his':
            sync = ChargeItem.refresh_endpoint(endpoint)
        else:
            items = parse_charge_items_csv(self.start.file or b'')
            sync = ChargeItem.import_items(
                endpoint, items, 'csv', full=self.start.full,
                file_name=self.start.file_name)
        action['pyson_domain'] = PYSONEncoder().encode(
            [('id', '=', sync.id)])
        action['views'].reverse()
        return action, {'res_id': [sync.id]}
