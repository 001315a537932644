# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Consumption published to the suppliers (消耗信息推送, the paper's Fig. 5):
each supplier is told by SMS and by e-mail what the hospital used of its
materials since its last message, and the quantities that restore its
agreed levels.

*Publish Consumption* (a scheduled job, and a menu entry for the store
keeper) composes, per company, supplier and store, one message with the
usage posted since the supplier's last message for that store (the units
attributed to the supplier that delivered their lots, as in the used
products summary) and the suggested quantities of the supplier's agreed
levels there.  Nothing new used, nothing sent.  The message is logged and
its SMS (to the supplier's mobile number) and e-mail (to its e-mail address,
when the company has an e-mail endpoint) are queued in the connector's
outbox under the message's own key: the modem or the mail server failing
delays them, they are never lost nor sent twice."""
import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

from sql import Null
from sql.aggregate import Max, Sum

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction, without_check_access
from trytond.wizard import StateAction, StateTransition, Wizard

from his_connector.outbox import STATES as OUTBOX_STATES

# Without a previous message, the usage of this period is published
FIRST_PERIOD = dt.timedelta(days=1)
MESSAGE_STATES = [
    ('no_number', "No Mobile Number"),
    ] + OUTBOX_STATES
EMAIL_STATES = [
    ('no_address', "No E-mail"),
    ] + OUTBOX_STATES


def _now():
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class SupplierMessage(ModelSQL, ModelView):
    __name__ = 'hrp.supplier.message'
    __string__ = "Supplier Message"

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    supplier = fields.Many2One(
        'party.party', "Supplier", required=True, readonly=True,
        ondelete='RESTRICT',
        context={
            'company': Eval('company', -1),
            },
        depends={'company'})
    store = fields.Many2One(
        'stock.location', "Store", required=True, readonly=True,
        ondelete='RESTRICT')
    period_start = fields.Timestamp("From", required=True, readonly=True)
    period_end = fields.Timestamp("To", required=True, readonly=True)
    text = fields.Text("Text", required=True, readonly=True)
    number = fields.Char(
        "Mobile Number", readonly=True,
        help="The supplier's mobile number the SMS went to.")
    outbox = fields.Many2One(
        'his.outbox', "SMS", readonly=True, ondelete='RESTRICT')
    state = fields.Function(
        fields.Selection(MESSAGE_STATES, "Delivery"), 'get_state')
    email = fields.Char(
        "E-mail", readonly=True,
        help="The supplier's address the e-mail went to.")
    email_outbox = fields.Many2One(
        'his.outbox', "E-mail Message", readonly=True, ondelete='RESTRICT')
    email_state = fields.Function(
        fields.Selection(EMAIL_STATES, "E-mail Delivery"), 'get_state')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        table = cls.__table__()
        cls._sql_indexes.add(Index(
                table,
                (table.company, Index.Range()),
                (table.supplier, Index.Range()),
                (table.store, Index.Range()),
                (table.period_end, Index.Range(order='DESC'))))
        cls._order = [('period_end', 'DESC'), ('id', 'DESC')]

    @classmethod
    def get_state(cls, messages, names):
        result = {'state': {}, 'email_state': {}}
        with without_check_access():
            for message in cls.browse(messages):
                result['state'][message.id] = (
                    message.outbox.state if message.outbox else 'no_number')
                result['email_state'][message.id] = (
                    message.email_outbox.state if message.email_outbox
                    else 'no_address')
        return {n: result[n] for n in names}

    def get_rec_name(self, name):
        return f'{self.supplier.rec_name} ({self.period_end})'

    @classmethod
    def last_ends(cls, company):
        "Return {(supplier id, store id): end of the last message}"
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        # the messages are created in the order of their ends
        cursor.execute(*table.select(
                Max(table.id),
                where=table.company == company.id,
                group_by=[table.supplier, table.store]))
        return {
            (m.supplier.id, m.store.id): m.period_end
            for m in cls.browse([i for i, in cursor])}

    @classmethod
    def usage(cls, company, start, end):
        """Return [(supplier id, store id, product id, posted at, quantity)]
        of the usage posted after start and up to end, by the supplier of
        the lots"""
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Line = pool.get('hrp.consumption.line')
        Summary = pool.get('hrp.usage.summary')
        consumption = Consumption.__table__()
        line = Line.__table__()
        lot_supplier = Summary.lot_suppliers()
        cursor = Transaction().connection.cursor()
        cursor.execute(*line
            .join(consumption, condition=line.consumption == consumption.id)
            .join(lot_supplier, condition=line.lot == lot_supplier.lot)
            .select(
                lot_supplier.supplier, consumption.store, line.product,
                consumption.done_at, Sum(line.quantity),
                where=(Consumption.posted_lines_where(
                        consumption, line, {'company': company.id})
                    & (consumption.done_at != Null)
                    & (consumption.done_at > start)
                    & (consumption.done_at <= end)),
                group_by=[
                    lot_supplier.supplier, consumption.store,
                    line.product, consumption.done_at]))
        return list(cursor)

    @classmethod
    def compose(cls, company, end=None):
        """Return the unsaved messages of company up to end (now by
        default): one per supplier and store with usage posted since its
        last message (or in the last day, for a first message)"""
        pool = Pool()
        Level = pool.get('hrp.agreed.level')
        Party = pool.get('party.party')
        Location = pool.get('stock.location')
        Product = pool.get('product.product')
        end = end or _now()
        last = cls.last_ends(company)

        def start_of(key):
            return last.get(key, end - FIRST_PERIOD)
        earliest = min([end - FIRST_PERIOD, *last.values()])
        usage = defaultdict(lambda: defaultdict(float))
        for supplier, store, product, posted, quantity in cls.usage(
                company, earliest, end):
            if posted > start_of((supplier, store)):
                usage[supplier, store][product] += quantity
        levels = Level.search([
                ('company', '=', company.id),
                ('supplier', 'in', sorted({s for s, _ in usage})),
                ])
        suggested = Level.suggested_quantities(levels)
        restock = defaultdict(list)
        for level in levels:
            if suggested[level.id]:
                restock[level.supplier.id, level.store.id].append(
                    (level.product, suggested[level.id]))
        messages = []
        for (supplier_id, store_id), used in sorted(usage.items()):
            supplier = Party(supplier_id)
            store = Location(store_id)
            products = Product.browse(sorted(used))
            start = start_of((supplier_id, store_id))
            messages.append(cls(
                    company=company, supplier=supplier, store=store,
                    period_start=start, period_end=end,
                    number=supplier.hrp_mobile_number(),
                    email=supplier.hrp_email_address(),
                    text=cls.message_text(
                        company, supplier, store, start, end,
                        [(p, used[p.id]) for p in products],
                        restock[supplier_id, store_id])))
        return messages

    @classmethod
    def message_text(cls, company, supplier, store, start, end, used,
            restock):
        "The text of the message, in the supplier's language"
        Configuration = Pool().get('ir.configuration')
        language = (supplier.lang.code if supplier.lang
            else Configuration.get_language())
        separator = '；' if language.startswith('zh') else '; '

        def items(pairs):
            return separator.join(
                f'{product.template.name} {product.default_uom.round(q):g}'
                f'{product.default_uom.symbol}' for product, q in pairs)

        def local(timestamp):
            "The timestamp (UTC) in the hospital's time zone"
            if company.timezone:
                timestamp = timestamp.replace(
                    tzinfo=dt.timezone.utc).astimezone(
                    ZoneInfo(company.timezone))
            return timestamp.strftime('%m-%d %H:%M')
        with Transaction().set_context(language=language):
            text = gettext('hrp_materials.msg_supplier_message_usage',
                language,
                hospital=company.rec_name, supplier=supplier.rec_name,
                store=store.rec_name, start=local(start), end=local(end),
                lines=items(used))
            if restock:
                text += gettext(
                    'hrp_materials.msg_supplier_message_restock',
                    language, lines=items(restock))
        return text

    @classmethod
    def publish(cls, companies=None, end=None):
        """Compose, log and queue the messages of companies (all by
        default) up to end; return them"""
        pool = Pool()
        Company = pool.get('company.company')
        Endpoint = pool.get('his.endpoint')
        Service = pool.get('his.service')
        if companies is None:
            companies = Company.search([])
        messages = []
        for company in companies:
            with Transaction().set_context(company=company.id):
                composed = cls.compose(company, end=end)
                mailing = Endpoint.is_configured('email', company)
                if not mailing:
                    for message in composed:
                        message.email = None
                cls.save(composed)
                for message in composed:
                    key = f'{cls.__name__}-{message.id}'
                    if message.number:
                        message.outbox = Service.send_sms(
                            message.number, message.text,
                            key=key, origin=message, company=company)
                    if message.email:
                        message.email_outbox = Service.send_email(
                            message.email, message.subject(), message.text,
                            key=key, origin=message, company=company)
                cls.save(composed)
            messages.extend(composed)
        return messages

    def subject(self):
        "The subject of the message's e-mail, in the supplier's language"
        Configuration = Pool().get('ir.configuration')
        language = (self.supplier.lang.code if self.supplier.lang
            else Configuration.get_language())
        with Transaction().set_context(language=language):
            return gettext('hrp_materials.msg_supplier_message_subject',
                language, hospital=self.company.rec_name,
                store=self.store.rec_name)

    @classmethod
    def publish_all(cls):
        "The scheduled job"
        with without_check_access():
            cls.publish()


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    def hrp_mobile_number(self):
        "The mobile number the supplier's messages go to, or None"
        mechanism = self.contact_mechanism_get({'mobile'})
        return mechanism.value if mechanism else None

    def hrp_email_address(self):
        "The e-mail address the supplier's messages go to, or None"
        mechanism = self.contact_mechanism_get({'email'})
        return mechanism.value if mechanism else None


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('hrp.supplier.message|publish_all',
                "Publish Consumption to Suppliers"))


class Outbox(metaclass=PoolMeta):
    __name__ = 'his.outbox'

    @classmethod
    def _get_origin(cls):
        return super()._get_origin() + ['hrp.supplier.message']


class Publish(Wizard):
    "Publish the consumption to the suppliers now"
    __name__ = 'hrp.supplier.message.publish'

    start = StateTransition()
    open_ = StateAction('hrp_materials.act_supplier_message')

    def transition_start(self):
        pool = Pool()
        Company = pool.get('company.company')
        SupplierMessage = pool.get('hrp.supplier.message')
        company = Transaction().context.get('company')
        with without_check_access():
            SupplierMessage.publish([Company(company)] if company else None)
        return 'open_'

    def do_open_(self, action):
        return action, {}
