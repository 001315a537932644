# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The HIS's charge revenue (收费收入): per HIS endpoint, day, charge item
and executing device (when the HIS records it), the quantity charged and
the amount, refunds included.

The HIS exports them as CSV (columns ``day,item,device,quantity,amount``;
Chinese headers 日期, 收费编码, 执行设备, 数量, 金额 are accepted); the file is
uploaded with *Import HIS Revenue*.  Figures sent again for the same day,
item and device replace the previous ones (the change is in the model
log).  Domain modules sum them with ``HisRevenue.__table__()``; this module
knows nothing of their equipment."""
import dataclasses
import datetime as dt
from decimal import Decimal, InvalidOperation

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Eval, PYSONEncoder
from trytond.transaction import Transaction
from trytond.wizard import Button, StateAction, StateView, Wizard

from .chargeitem import raise_line_errors, read_csv
from .exceptions import CatalogueImportError
from .pacs import DEVICE_MAX, _parse_day

REVENUE_COLUMNS = {
    'day': ['date', '日期'],
    'item': ['code', 'item_code', '收费编码', '项目编码'],
    'device': ['ae_title', 'station', '执行设备', '设备', '设备编码'],
    'quantity': ['数量'],
    'amount': ['金额', '收入'],
    }
REVENUE_REQUIRED = {'day', 'item', 'quantity', 'amount'}
CENTS = Decimal('0.01')


@dataclasses.dataclass(frozen=True)
class Revenue:
    "The revenue of one charge item (on one device) on one day"
    day: dt.date
    item: str
    device: str
    quantity: Decimal
    amount: Decimal


def _parse_decimal(text, exponent):
    try:
        value = Decimal(text.replace(',', ''))
    except InvalidOperation:
        raise ValueError(text)
    if not value.is_finite() or value.as_tuple().exponent < exponent:
        raise ValueError(text)
    return value


def parse_revenue_csv(data, today=None):
    """Return the Revenue of an HIS revenue CSV export; raise
    CatalogueImportError listing every bad line"""
    if today is None:
        today = dt.date.today()
    revenues, errors, seen = [], [], {}
    for line, row in read_csv(data, REVENUE_COLUMNS, REVENUE_REQUIRED):
        item = row['item']
        device = row.get('device', '')
        if not item or any(c.isspace() for c in item):
            errors.append((line, gettext(
                        'his_connector.msg_csv_code_invalid', code=item)))
            continue
        if len(device) > DEVICE_MAX or not device.isprintable():
            errors.append((line, gettext(
                        'his_connector.msg_pacs_device_invalid',
                        device=device, max=DEVICE_MAX)))
            continue
        try:
            day = _parse_day(row['day'])
        except ValueError:
            errors.append((line, gettext(
                        'his_connector.msg_revenue_day_invalid',
                        item=item, day=row['day'])))
            continue
        if day > today:
            errors.append((line, gettext(
                        'his_connector.msg_revenue_day_future',
                        item=item, day=day)))
            continue
        try:
            quantity = _parse_decimal(row['quantity'], -4)
            amount = _parse_decimal(row['amount'], -2)
        except ValueError:
            errors.append((line, gettext(
                        'his_connector.msg_revenue_figure_invalid',
                        item=item, day=day, quantity=row['quantity'],
                        amount=row['amount'])))
            continue
        key = (day, item, device)
        if key in seen:
            errors.append((line, gettext(
                        'his_connector.msg_revenue_duplicate',
                        item=item, day=day, device=device or '-',
                        first=seen[key])))
            continue
        seen[key] = line
        revenues.append(Revenue(day, item, device, quantity, amount))
    raise_line_errors(errors)
    return revenues


class HisRevenue(ModelSQL, ModelView):
    __name__ = 'his.revenue'
    __string__ = "HIS Revenue"

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    endpoint = fields.Many2One(
        'his.endpoint', "HIS", required=True, readonly=True,
        ondelete='CASCADE',
        domain=[
            ('company', '=', Eval('company', -1)),
            ('purpose', '=', 'his'),
            ])
    day = fields.Date("Day", required=True, readonly=True)
    item = fields.Many2One(
        'his.charge.item', "Charge Item", required=True, readonly=True,
        ondelete='RESTRICT')
    device = fields.Char(
        "Device", readonly=True,
        help="The executing device the HIS recorded (AE title or station), "
        "if any.")
    quantity = fields.Numeric(
        "Quantity", digits=(16, 4), required=True, readonly=True)
    amount = fields.Numeric(
        "Amount", digits=(16, 2), required=True, readonly=True,
        help="What the HIS charged, refunds deducted.")
    file_name = fields.Char("File Name", readonly=True)
    received_at = fields.DateTime("Received At", required=True, readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(
            Index(t, (t.item, Index.Range()), (t.day, Index.Range())))
        cls._order = [('day', 'DESC'), ('item', 'ASC'), ('id', 'DESC')]

    def get_rec_name(self, name):
        return f'{self.item.rec_name} {self.day}'

    @classmethod
    def search_rec_name(cls, name, clause):
        return [('item.rec_name', *clause[1:])]

    @classmethod
    def record_revenue(cls, endpoint, revenues, file_name=None):
        """Store the revenues (Revenue) of the HIS endpoint; figures sent
        again for a day, item and device replace the previous ones.  Return
        the counts {created, replaced, unchanged}."""
        pool = Pool()
        Endpoint = pool.get('his.endpoint')
        Item = pool.get('his.charge.item')
        if endpoint.purpose != 'his':
            raise CatalogueImportError(gettext(
                    'his_connector.msg_revenue_endpoint_not_his',
                    endpoint=endpoint.rec_name))
        items = {i.code: i for i in Item.search([
                    ('endpoint', '=', endpoint.id),
                    ('code', 'in', sorted({r.item for r in revenues})),
                    ('active', 'in', [True, False]),
                    ])}
        unknown = sorted({r.item for r in revenues} - items.keys())
        if unknown:
            raise CatalogueImportError(gettext(
                    'his_connector.msg_revenue_item_unknown',
                    endpoint=endpoint.rec_name, items=', '.join(unknown)))
        Endpoint.lock([endpoint])
        existing = {}
        days = sorted({r.day for r in revenues})
        for record in cls.search([
                    ('endpoint', '=', endpoint.id),
                    ('day', 'in', days),
                    ]):
            existing[record.day, record.item.code, record.device or ''] = (
                record)
        now = dt.datetime.now()
        counts = {'created': 0, 'replaced': 0, 'unchanged': 0}
        to_create, to_write = [], []
        for revenue in revenues:
            record = existing.get((revenue.day, revenue.item, revenue.device))
            if record is None:
                counts['created'] += 1
                to_create.append({
                        'company': endpoint.company.id,
                        'endpoint': endpoint.id,
                        'day': revenue.day,
                        'item': items[revenue.item].id,
                        'device': revenue.device or None,
                        'quantity': revenue.quantity,
                        'amount': revenue.amount,
                        'file_name': file_name,
                        'received_at': now,
                        })
            elif (record.quantity, record.amount) == (
                    revenue.quantity, revenue.amount):
                counts['unchanged'] += 1
            else:
                counts['replaced'] += 1
                to_write.extend([[record], {
                            'quantity': revenue.quantity,
                            'amount': revenue.amount,
                            'file_name': file_name,
                            'received_at': now,
                            }])
        if to_create:
            cls.create(to_create)
        if to_write:
            with Transaction().set_context(_log=True):
                cls.write(*to_write)
        return counts

    @classmethod
    def import_file(cls, endpoint, data, file_name=None):
        "Import an HIS revenue CSV export; return the counts"
        return cls.record_revenue(
            endpoint, parse_revenue_csv(data), file_name=file_name)


class HisRevenueImportStart(ModelView):
    __name__ = 'his.revenue.import.start'
    __string__ = "Import HIS Revenue"

    company = fields.Many2One('company.company', "Company", readonly=True)
    endpoint = fields.Many2One(
        'his.endpoint', "HIS", required=True,
        domain=[
            ('company', '=', Eval('company', -1)),
            ('purpose', '=', 'his'),
            ])
    file = fields.Binary(
        "File", required=True, filename='file_name',
        help="A CSV export with the columns day, item, device (optional), "
        "quantity and amount, in UTF-8 or GB18030.")
    file_name = fields.Char("File Name")

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')


class HisRevenueImport(Wizard):
    __name__ = 'his.revenue.import'
    __string__ = "Import HIS Revenue"
    start = StateView(
        'his.revenue.import.start',
        'his_connector.revenue_import_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Import", 'import_', 'tryton-ok', default=True),
            ])
    import_ = StateAction('his_connector.act_revenue_form')

    def do_import_(self, action):
        Revenue = Pool().get('his.revenue')
        endpoint = self.start.endpoint
        Revenue.import_file(
            endpoint, self.start.file or b'', file_name=self.start.file_name)
        action['pyson_domain'] = PYSONEncoder().encode([
                ('endpoint', '=', endpoint.id),
                ])
        return action, {}
