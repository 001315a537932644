# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Department consumption (实耗实销): usage registrations out of department
stores, costed to the department's cost centre.

A nurse registers what her department actually used out of its store (二级库),
per patient (住院号, 手术流水号) or as a daily bulk entry.  Posting moves the
goods from the store to the consumption location (a Tryton ``production``
location: the goods leave the stock books at their cost price, as components
consumed by production do) and refuses, under Tryton's stock assignment lock,
any line the store cannot cover.  Cancelling a posted registration (a wrong
entry) reverses its moves and needs a reason.

Materials of a category flagged "consumed on issue" (office supplies …) are
consumed the moment an internal shipment brings them into a department store:
a bulk registration is created and posted for them automatically.

``hrp.department.cost`` (科室成本) sums the posted lines by company,
department, cost centre, month and material category."""
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from itertools import groupby

from sql import For, Null
from sql.aggregate import Min, Sum
from sql.functions import DateTrunc

from trytond.exceptions import UserError
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Workflow, fields
from trytond.model.exceptions import AccessError, ValidationError
from trytond.modules.currency.fields import Monetary
from trytond.modules.product import price_digits
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval, If
from trytond.transaction import Transaction, without_check_access

from .department import DepartmentDocumentMixin
from .mixin import PeriodContextMixin, cost_values

KINDS = [
    ('patient', "Per Patient"),
    ('bulk', "Bulk (Daily)"),
    ]
STATES = [
    ('draft', "Draft"),
    ('done', "Done"),
    ('cancelled', "Cancelled"),
    ]
STORE_TYPES = ['department', 'high_value']


class ConsumptionError(UserError):
    pass


class ConsumptionStockError(UserError):
    pass


class ConsumptionValidationError(ValidationError):
    pass


class ConsumptionAccessError(AccessError):
    pass


def _now():
    "The current time as Tryton stores timestamps (naive UTC)"
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _format_quantity(quantity, unit):
    Lang = Pool().get('ir.lang')
    return Lang.get().format_number_symbol(
        quantity, unit, digits=unit.digits)


class Category(metaclass=PoolMeta):
    __name__ = 'product.category'

    hrp_consumed_on_issue = fields.Boolean(
        "Consumed on Issue",
        help="Items not worth tracking in department stores, such as office "
        "supplies, are consumed the moment they reach a department store: "
        "their cost lands on the department at issue.\n"
        "Applies to the sub-categories too.")

    @classmethod
    def default_hrp_consumed_on_issue(cls):
        return False

    @classmethod
    def consumed_on_issue_ids(cls):
        "Return the ids of the categories consumed on issue (with children)"
        with without_check_access(), \
                Transaction().set_context(active_test=False):
            flagged = cls.search([('hrp_consumed_on_issue', '=', True)])
            if not flagged:
                return set()
            return {c.id for c in cls.search([
                        ('parent', 'child_of', [c.id for c in flagged]),
                        ])}


def usable_lot(lot, date):
    "Whether lot may be used at date: neither recalled nor expired"
    expiry = getattr(lot, 'shelf_life_expiration_date', None)
    return (not getattr(lot, 'hrp_recalled', False)
        and not (expiry and expiry < date))


def is_consumed_on_issue(product, category_ids=None):
    "Whether product belongs to a category consumed on issue"
    if category_ids is None:
        category_ids = Pool().get('product.category').consumed_on_issue_ids()
    return any(c.id in category_ids for c in product.template.categories)


class Consumption(DepartmentDocumentMixin, Workflow, ModelSQL, ModelView):
    __name__ = 'hrp.consumption'
    __string__ = "Usage Registration"
    _rec_name = 'number'

    _states = {'readonly': Eval('state') != 'draft'}

    number = fields.Char("Number", readonly=True)
    company = fields.Many2One(
        'company.company', "Company", required=True,
        states={
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            })
    store = fields.Many2One(
        'stock.location', "Store", required=True,
        domain=[
            ('hrp_store_type', 'in', STORE_TYPES),
            ('hrp_department', '=', Eval('department', -1)),
            ],
        states={
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            },
        help="The department store (二级库) the materials were used from.")
    kind = fields.Selection(KINDS, "Kind", required=True, states=_states,
        help="Per patient: the materials used for one inpatient (and "
        "surgery).\nBulk: the department's daily use not charged to a "
        "patient.")
    date = fields.Date("Date", required=True, states=_states,
        help="The day the materials were used.")
    inpatient_number = fields.Char(
        "Inpatient Number", strip=True,
        states={
            'required': Eval('kind') == 'patient',
            'invisible': Eval('kind') != 'patient',
            'readonly': Eval('state') != 'draft',
            },
        help="The patient's inpatient number (住院号) in the HIS.")
    patient_name = fields.Char(
        "Patient Name", strip=True,
        states={
            'invisible': Eval('kind') != 'patient',
            'readonly': Eval('state') != 'draft',
            })
    surgery_number = fields.Char(
        "Surgery Number", strip=True,
        states={
            'invisible': Eval('kind') != 'patient',
            'readonly': Eval('state') != 'draft',
            },
        help="The surgery serial number (手术流水号) when the materials were "
        "used in a surgery.")
    description = fields.Text("Note", states=_states)
    origin = fields.Reference(
        "Origin", selection='get_origin', readonly=True,
        help="The document that created the registration, e.g. the internal "
        "shipment of materials consumed on issue.")
    lines = fields.One2Many(
        'hrp.consumption.line', 'consumption', "Lines",
        states={
            'readonly': (Eval('state') != 'draft') | ~Eval('store'),
            })
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    total_amount = fields.Function(
        Monetary("Total Amount", currency='currency', digits='currency'),
        'get_total_amount')
    cost_center = fields.Function(
        fields.Many2One('analytic_account.account', "Cost Centre"),
        'on_change_with_cost_center')
    done_by = fields.Many2One('res.user', "Posted By", readonly=True)
    done_at = fields.Timestamp("Posted At", readonly=True)
    cancelled_by = fields.Many2One('res.user', "Cancelled By", readonly=True)
    cancelled_at = fields.Timestamp("Cancelled At", readonly=True)
    cancel_reason = fields.Text(
        "Cancellation Reason",
        states={
            'readonly': Eval('state') == 'cancelled',
            'invisible': ((Eval('state') == 'draft')
                & ~Eval('cancel_reason')),
            },
        help="Why the registration is cancelled (a wrong entry …); "
        "required to cancel it.")
    state = fields.Selection(
        STATES, "State", readonly=True, required=True, sort=False)

    del _states

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    where=t.state == 'draft'),
                Index(t, (t.number, Index.Similarity())),
                Index(t,
                    (t.company, Index.Equality()),
                    (t.department, Index.Equality()),
                    (t.date, Index.Range())),
                })
        cls._order = [('date', 'DESC'), ('id', 'DESC')]
        cls.department.domain = [('company', '=', Eval('company', -1))]
        cls.department.states = {
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            }
        cls._transitions |= {
            ('draft', 'done'),
            ('draft', 'cancelled'),
            ('done', 'cancelled'),
            }
        cls._buttons.update({
                'done': {
                    'invisible': Eval('state') != 'draft',
                    'readonly': ~Eval('lines', []),
                    'depends': ['state'],
                    },
                'cancel': {
                    'invisible': Eval('state') == 'cancelled',
                    'readonly': ~Eval('cancel_reason'),
                    'depends': ['state', 'cancel_reason'],
                    },
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_state(cls):
        return 'draft'

    @classmethod
    def default_kind(cls):
        return 'patient'

    @classmethod
    def default_date(cls):
        return Pool().get('ir.date').today()

    @classmethod
    def default_store(cls):
        department = cls.default_department()
        if department is not None:
            Department = Pool().get('hrp.department')
            store = Department(department).store
            if store and store.hrp_store_type in STORE_TYPES:
                return store.id

    @fields.depends('department', 'store')
    def on_change_department(self):
        if self.department:
            if (not self.store
                    or self.store.hrp_department != self.department):
                store = self.department.store
                if store and store.hrp_store_type in STORE_TYPES:
                    self.store = store
                else:
                    self.store = None
        else:
            self.store = None

    @fields.depends('company')
    def on_change_with_currency(self, name=None):
        return self.company.currency if self.company else None

    @fields.depends('department')
    def on_change_with_cost_center(self, name=None):
        return self.department.cost_center if self.department else None

    def get_total_amount(self, name):
        amounts = [l.amount for l in self.lines if l.amount is not None]
        if amounts and self.currency:
            return self.currency.round(sum(amounts, Decimal(0)))

    @classmethod
    def _get_origin(cls):
        "Return the model names the origin may refer to"
        return ['stock.shipment.internal']

    @classmethod
    def get_origin(cls):
        IrModel = Pool().get('ir.model')
        get_name = IrModel.get_name
        return [(None, '')] + [(m, get_name(m)) for m in cls._get_origin()]

    def get_rec_name(self, name):
        return self.number or str(self.id)

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        if operator.startswith('!') or operator.startswith('not '):
            bool_op = 'AND'
        else:
            bool_op = 'OR'
        return [bool_op,
            ('number', operator, operand, *extra),
            ('inpatient_number', operator, operand, *extra),
            ('patient_name', operator, operand, *extra),
            ]

    @classmethod
    def preprocess_values(cls, mode, values):
        pool = Pool()
        Sequence = pool.get('ir.sequence')
        ModelData = pool.get('ir.model.data')
        values = super().preprocess_values(mode, values)
        if (mode == 'create' and values.get('department')
                and not values.get('store')):
            # the store of the department chosen
            store = pool.get('hrp.department')(values['department']).store
            if store and store.hrp_store_type in STORE_TYPES:
                values['store'] = store.id
        if mode == 'create' and not values.get('number'):
            sequence = Sequence(ModelData.get_id(
                    'hrp_materials', 'sequence_consumption'))
            with without_check_access():
                values['number'] = sequence.get()
        return values

    @classmethod
    def validate_fields(cls, consumptions, field_names):
        super().validate_fields(consumptions, field_names)
        if field_names & {'store', 'department', 'company'}:
            for consumption in consumptions:
                consumption.check_store()
        if field_names & {'date', 'state'}:
            for consumption in consumptions:
                consumption.check_date()

    def check_store(self):
        if self.department.company != self.company:
            raise ConsumptionValidationError(gettext(
                    'hrp_materials.msg_consumption_department_company',
                    consumption=self.rec_name,
                    department=self.department.rec_name))
        if (self.store.hrp_store_type not in STORE_TYPES
                or self.store.hrp_department != self.department):
            raise ConsumptionValidationError(gettext(
                    'hrp_materials.msg_consumption_store_department',
                    store=self.store.rec_name,
                    department=self.department.rec_name))

    def check_date(self):
        if self.state != 'draft':
            return
        with Transaction().set_context(company=self.company.id):
            today = Pool().get('ir.date').today()
        if self.date > today:
            raise ConsumptionValidationError(gettext(
                    'hrp_materials.msg_consumption_future_date',
                    consumption=self.rec_name))

    @classmethod
    def check_modification(
            cls, mode, consumptions, values=None, external=False):
        super().check_modification(
            mode, consumptions, values=values, external=external)
        if mode == 'write' and external:
            if 'department' in values:
                cls._check_department_user([values['department']])
            for consumption in consumptions:
                if consumption.state == 'draft':
                    continue
                if (consumption.state == 'done'
                        and set(values) <= {'cancel_reason'}):
                    continue
                raise ConsumptionAccessError(gettext(
                        'hrp_materials.msg_consumption_modify_posted',
                        consumption=consumption.rec_name))
        elif mode == 'delete':
            for consumption in consumptions:
                if consumption.state == 'done' or consumption.done_at:
                    raise ConsumptionAccessError(gettext(
                            'hrp_materials.msg_consumption_delete_posted',
                            consumption=consumption.rec_name))

    @classmethod
    def copy(cls, consumptions, default=None):
        default = default.copy() if default is not None else {}
        for name in ['number', 'origin', 'done_by', 'done_at',
                'cancelled_by', 'cancelled_at', 'cancel_reason']:
            default.setdefault(name, None)
        default.setdefault('date', cls.default_date())
        return super().copy(consumptions, default=default)

    # -- posting --------------------------------------------------------

    @classmethod
    def posted_lines_where(cls, consumption, line, context=None):
        """The SQL condition, on the tables consumption and line, of the
        lines whose goods left their store and stay out (posted, not
        reversed one by one), of the company and the period (from_date,
        to_date) of context when it has them"""
        context = context or {}
        where = (consumption.state == 'done') & (line.reverse_move == Null)
        if context.get('company'):
            where &= consumption.company == context['company']
        if context.get('from_date'):
            where &= consumption.date >= context['from_date']
        if context.get('to_date'):
            where &= consumption.date <= context['to_date']
        return where

    @classmethod
    def consumption_location(cls):
        "The location materials used by departments go to"
        pool = Pool()
        Location = pool.get('stock.location')
        ModelData = pool.get('ir.model.data')
        return Location(ModelData.get_id(
                'hrp_materials', 'location_consumption'))

    @classmethod
    def _check_states(cls, consumptions, states):
        """Refuse the consumptions not in states (posting or cancelling
        twice).  Concurrent postings or cancellations of the same
        consumption write the same row: the database serializes them and
        the late one is retried, to be refused here."""
        with without_check_access():
            consumptions = cls.browse([c.id for c in consumptions])
            for consumption in consumptions:
                if consumption.state not in states:
                    state = dict(cls.fields_get(['state'])['state'][
                            'selection'])[consumption.state]
                    raise ConsumptionError(gettext(
                            'hrp_materials.msg_consumption_wrong_state',
                            consumption=consumption.rec_name, state=state))
        return consumptions

    @classmethod
    @ModelView.button
    def done(cls, consumptions):
        "Post the consumptions: move the materials out of the stores"
        cls._check_department_user([c.department.id for c in consumptions])
        consumptions = cls._check_states(consumptions, {'draft'})
        with without_check_access():
            cls.post(consumptions)

    @classmethod
    @Workflow.transition('done')
    def post(cls, consumptions):
        """Move the materials of the draft consumptions out of their stores,
        cost them and mark the consumptions done.

        Every check runs before anything is written: a refused posting
        changes nothing."""
        pool = Pool()
        Line = pool.get('hrp.consumption.line')
        Move = pool.get('stock.move')
        if not consumptions:
            return
        for consumption in consumptions:
            consumption.check_post()
        cls._lock_stock(consumptions)
        plan = cls._plan_lots(consumptions)
        cls._check_stock(consumptions, plan)

        # split the lines over the lots picked first-expired-first-out
        to_create, to_write = [], []
        for line, allocations in plan.items():
            (location, lot, quantity), *others = allocations
            to_write.extend([[line], {
                        'location': location.id,
                        'lot': lot.id if lot else None,
                        'quantity': quantity}])
            for location, lot, quantity in others:
                to_create.append({
                        'consumption': line.consumption.id,
                        'product': line.product.id,
                        'location': location.id,
                        'lot': lot.id if lot else None,
                        'quantity': quantity,
                        'sequence': line.sequence,
                        })
        if to_write:
            Line.write(*to_write)
        if to_create:
            Line.create(to_create)

        consumptions = cls.browse(consumptions)
        location = cls.consumption_location()
        lines = [l for c in consumptions for l in c.lines]
        moves = [line.get_move(location) for line in lines]
        Move.save(moves)
        Move.do(moves)

        to_write = []
        for line, move in zip(lines, moves):
            to_write.extend([[line], line.get_cost_values(move)])
        Line.write(*to_write)
        cls.write(consumptions, {
                'done_by': Transaction().user,
                'done_at': _now(),
                })

    def check_post(self):
        pool = Pool()
        Date = pool.get('ir.date')
        if not self.lines:
            raise ConsumptionError(gettext(
                    'hrp_materials.msg_consumption_no_lines',
                    consumption=self.rec_name))
        if not self.department.cost_center:
            raise ConsumptionError(gettext(
                    'hrp_materials.msg_consumption_no_cost_center',
                    consumption=self.rec_name,
                    department=self.department.rec_name))
        self.check_store()
        self.check_date()
        with Transaction().set_context(company=self.company.id):
            today = Date.today()
        for line in self.lines:
            line.check_post(today)

    @classmethod
    def _plan_lots(cls, consumptions):
        """Return for each line the list of (location, lot, quantity) it
        takes from its store: its own lot, or the usable lots in
        first-expired-first-out order then the stock without lot (only lots
        for a lot-required material).  The location is the store itself or
        one of its suppliers' consignment locations."""
        pool = Pool()
        Line = pool.get('hrp.consumption.line')
        Date = pool.get('ir.date')
        plan = {}
        pending = defaultdict(list)
        for consumption in consumptions:
            for line in consumption.lines:
                pending[consumption.store, consumption.company].append(line)
        for (store, company), lines in pending.items():
            with Transaction().set_context(company=company.id):
                today = Date.today()
            available = {
                p: Line.fefo_quantities(store, p, company, usable_only=False)
                for p in {l.product for l in lines}}
            for line in lines:
                stock = available[line.product]
                lot_required = line.product_lot_required(store)
                allocations, missing = [], line.quantity
                for i, (lot, quantity, location) in enumerate(stock):
                    if missing <= 0:
                        break
                    if line.lot:
                        if lot != line.lot:
                            continue
                    elif lot is None and lot_required:
                        continue
                    elif lot is not None and not usable_lot(lot, today):
                        continue
                    taken = line.unit.round(min(quantity, missing))
                    if taken <= 0:
                        continue
                    allocations.append((location, lot, taken))
                    stock[i] = (lot, quantity - taken, location)
                    missing = line.unit.round(missing - taken)
                if missing > 0:
                    if lot_required and not line.lot:
                        raise ConsumptionStockError(gettext(
                                'hrp_materials.msg_consumption_stock_short',
                                store=store.rec_name,
                                material=line.product.rec_name,
                                quantity=_format_quantity(
                                    line.quantity, line.unit),
                                available=_format_quantity(
                                    sum(q for _, _, q in allocations),
                                    line.unit)))
                    # the shortage is left to the stock check
                    allocations.append((store, line.lot, missing))
                plan[line] = allocations
        return plan

    @classmethod
    def _lock_stock(cls, consumptions):
        """Take the locks of Tryton's stock assignment on the products of
        the consumptions in their stores, and the stores' own lock"""
        pool = Pool()
        Move = pool.get('stock.move')
        Date = pool.get('ir.date')
        for company, c_consumptions in groupby(
                sorted(consumptions, key=lambda c: c.company.id),
                key=lambda c: c.company):
            c_consumptions = list(c_consumptions)
            with Transaction().set_context(company=company.id):
                today = Date.today()
            store_ids = sorted({c.store.id for c in c_consumptions})
            location_ids = sorted({
                    l.id for c in c_consumptions
                    for l in c.store.hrp_stock_locations()})
            product_ids = sorted({
                    l.product.id for c in c_consumptions for l in c.lines})
            cls._lock_stores(store_ids)
            Move._assign_try_lock(
                product_ids, location_ids, [company.id], today,
                ('product', 'lot'))

    @classmethod
    def _check_stock(cls, consumptions, plan):
        """Refuse the posting if a store would not cover it (under the
        locks of ``_lock_stock``): at today with the assigned moves (as the
        assignment computes it) and at each earlier consumption date, so
        that a backdated registration cannot use stock received later"""
        pool = Pool()
        Product = pool.get('product.product')
        Date = pool.get('ir.date')
        grouping = ('product', 'lot')
        for company, c_consumptions in groupby(
                sorted(consumptions, key=lambda c: c.company.id),
                key=lambda c: c.company):
            c_consumptions = list(c_consumptions)
            with Transaction().set_context(company=company.id):
                today = Date.today()
            location_ids = sorted({
                    l.id for c in c_consumptions
                    for l in c.store.hrp_stock_locations()})
            product_ids = sorted({
                    l.product.id for c in c_consumptions for l in c.lines})

            # the quantities taken by the consumptions of each date
            taken = defaultdict(lambda: defaultdict(float))
            for consumption in c_consumptions:
                for line in consumption.lines:
                    for location, lot, quantity in plan[line]:
                        key = (location.id, line.product.id,
                            lot.id if lot else None)
                        taken[consumption.date][key] += quantity
            for date in sorted({today} | set(taken)):
                # a consumption lowers the stock from its date on
                needed = defaultdict(float)
                for day, quantities in taken.items():
                    if day <= date:
                        for key, quantity in quantities.items():
                            needed[key] += quantity
                with Transaction().set_context(
                        stock_date_end=date, stock_assign=date == today,
                        company=company.id):
                    pbl = Product.products_by_location(
                        location_ids, with_childs=False, grouping=grouping,
                        grouping_filter=(product_ids,))
                cls._compare_stock(needed, pbl)

    @classmethod
    def _lock_stores(cls, store_ids):
        """Serialize the postings out of the same stores on PostgreSQL.

        Tryton's assignment lock (``_assign_try_lock``) locks the existing
        moves of the products in the stores (NOWAIT), but a transaction whose
        REPEATABLE READ snapshot predates a concurrent posting neither sees
        nor locks the moves that posting created, and would count the same
        stock twice.  Locking and touching the stores' rows makes such a
        late transaction fail with a serialization error (a posting still
        running makes it fail at once): the request is retried with a fresh
        snapshot.  SQLite runs one writing transaction at a time and Tryton
        locks the whole move table there."""
        pool = Pool()
        Location = pool.get('stock.location')
        transaction = Transaction()
        if not store_ids or not transaction.database.has_select_for():
            return
        location = Location.__table__()
        cursor = transaction.connection.cursor()
        where = location.id.in_(list(store_ids))
        cursor.execute(*location.select(location.id, where=where,
                order_by=[location.id], for_=For('UPDATE', nowait=True)))
        cursor.execute(*location.update(
                [location.write_date], [location.write_date], where=where))

    @classmethod
    def _compare_stock(cls, needed, pbl):
        pool = Pool()
        Location = pool.get('stock.location')
        Product = pool.get('product.product')
        Lot = pool.get('stock.lot')
        by_product = defaultdict(float)
        for (store_id, product_id, _), quantity in pbl.items():
            by_product[store_id, product_id] += quantity
        needed_product = defaultdict(float)
        for (store_id, product_id, _), quantity in needed.items():
            needed_product[store_id, product_id] += quantity

        def short(quantity, available, unit):
            return unit.round(quantity - available) > 0

        for key, quantity in sorted(needed.items(), key=str):
            store_id, product_id, lot_id = key
            product = Product(product_id)
            unit = product.default_uom
            available = pbl.get(key, 0)
            if lot_id is not None and short(quantity, available, unit):
                raise ConsumptionStockError(gettext(
                        'hrp_materials.msg_consumption_stock_short_lot',
                        store=Location(store_id).rec_name,
                        material=product.rec_name,
                        lot=Lot(lot_id).rec_name,
                        quantity=_format_quantity(quantity, unit),
                        available=_format_quantity(max(available, 0), unit)))
            total = by_product[store_id, product_id]
            if (short(needed_product[store_id, product_id], total, unit)
                    or (lot_id is None
                        and short(quantity, available, unit))):
                raise ConsumptionStockError(gettext(
                        'hrp_materials.msg_consumption_stock_short',
                        store=Location(store_id).rec_name,
                        material=product.rec_name,
                        quantity=_format_quantity(
                            needed_product[store_id, product_id], unit),
                        available=_format_quantity(max(total, 0), unit)))

    # -- cancellation (reversal) ---------------------------------------

    @classmethod
    @ModelView.button
    def cancel(cls, consumptions):
        """Cancel the consumptions; posted ones are reversed: their goods go
        back to the store"""
        cls._check_department_user([c.department.id for c in consumptions])
        consumptions = cls._check_states(consumptions, {'draft', 'done'})
        with without_check_access():
            cls.reverse(consumptions)

    @classmethod
    @Workflow.transition('cancelled')
    def reverse(cls, consumptions):
        pool = Pool()
        Line = pool.get('hrp.consumption.line')
        Move = pool.get('stock.move')
        for consumption in consumptions:
            if not (consumption.cancel_reason or '').strip():
                raise ConsumptionError(gettext(
                        'hrp_materials.msg_consumption_cancel_reason',
                        consumption=consumption.rec_name))
        location = cls.consumption_location()
        lines = [l for c in consumptions if c.state == 'done'
            for l in c.lines
            if l.move and l.move.state == 'done' and not l.reverse_move]
        moves = [line.get_reverse_move(location) for line in lines]
        if moves:
            Move.save(moves)
            Move.do(moves)
            to_write = []
            for line, move in zip(lines, moves):
                to_write.extend([[line], {'reverse_move': move.id}])
            Line.write(*to_write)
        cls.write(consumptions, {
                'cancelled_by': Transaction().user,
                'cancelled_at': _now(),
                })

    # -- consumed on issue ----------------------------------------------

    @classmethod
    def create_consumed_on_issue(cls, shipments):
        """Create and post a bulk consumption of the materials consumed on
        issue that the done internal shipments brought into department
        stores (one per shipment and store)"""
        pool = Pool()
        Category = pool.get('product.category')
        Uom = pool.get('product.uom')
        category_ids = Category.consumed_on_issue_ids()
        if not category_ids:
            return []
        with without_check_access():
            shipment_ids = {str(s) for s in shipments}
            done = {str(c.origin) for c in cls.search([
                        ('origin', 'in', list(shipment_ids)),
                        ])}
            to_create = []
            for shipment in shipments:
                if shipment.state != 'done' or str(shipment) in done:
                    continue
                by_store = defaultdict(list)
                for move in shipment.incoming_moves:
                    store = move.to_location
                    if (move.state != 'done'
                            or store.hrp_store_type != 'department'
                            or not store.hrp_department
                            or not is_consumed_on_issue(
                                move.product, category_ids)):
                        continue
                    by_store[store].append(move)
                for store, moves in by_store.items():
                    date = max(m.effective_date for m in moves)
                    to_create.append({
                            'company': shipment.company.id,
                            'department': store.hrp_department.id,
                            'store': store.id,
                            'kind': 'bulk',
                            'date': date,
                            'origin': str(shipment),
                            'lines': [('create', [{
                                            'product': m.product.id,
                                            'lot': m.lot.id if m.lot else None,
                                            'quantity': Uom.compute_qty(
                                                m.unit, m.quantity,
                                                m.product.default_uom),
                                            } for m in moves])],
                            })
            consumptions = cls.create(to_create)
            cls.post(consumptions)
        return consumptions


class ConsumptionLine(ModelSQL, ModelView):
    __name__ = 'hrp.consumption.line'
    __string__ = "Usage Registration Line"

    _states = {'readonly': Eval('consumption_state') != 'draft'}

    consumption = fields.Many2One(
        'hrp.consumption', "Usage Registration", required=True,
        ondelete='CASCADE',
        states={
            'readonly': ((Eval('consumption_state') != 'draft')
                & Bool(Eval('consumption'))),
            })
    sequence = fields.Integer("Sequence")
    product = fields.Many2One(
        'product.product', "Material", required=True,
        domain=[
            ('type', '=', 'goods'),
            ],
        context={
            'locations': If(Eval('_parent_consumption', {}).get('store'),
                [Eval('_parent_consumption', {}).get('store', -1)], []),
            'stock_date_end': Eval('_parent_consumption', {}).get('date'),
            },
        states=_states, depends={'consumption'})
    unit = fields.Function(
        fields.Many2One('product.uom', "Unit"), 'on_change_with_unit')
    lot = fields.Many2One(
        'stock.lot', "Lot", ondelete='RESTRICT',
        domain=[
            ('product', '=', Eval('product', -1)),
            ],
        context={
            'locations': If(Eval('_parent_consumption', {}).get('store'),
                [Eval('_parent_consumption', {}).get('store', -1)], []),
            },
        states={
            'readonly': Eval('consumption_state') != 'draft',
            'required': (Bool(Eval('lot_required'))
                & (Eval('consumption_state') == 'done')),
            },
        depends={'consumption'},
        help="The lot used; by default the first to expire in the store.")
    lot_required = fields.Function(
        fields.Boolean("Lot Required"), 'on_change_with_lot_required')
    quantity = fields.Float(
        "Quantity", digits='unit', required=True, states=_states,
        help="In the material's unit.")
    location = fields.Many2One(
        'stock.location', "Taken From", readonly=True, ondelete='RESTRICT',
        help="Where the goods were taken from when posted: the store, or "
        "the consignment stock a supplier keeps in it.")
    unit_cost = fields.Numeric(
        "Unit Cost", digits=price_digits, readonly=True,
        help="The cost price the materials left the store at.")
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    amount = Monetary(
        "Amount", currency='currency', digits='currency', readonly=True)
    cost_center = fields.Many2One(
        'analytic_account.account', "Cost Centre", readonly=True,
        ondelete='RESTRICT',
        help="The department's cost centre charged when posted.")
    category = fields.Many2One(
        'product.category', "Category", readonly=True, ondelete='RESTRICT',
        help="The material category the cost is reported under.")
    move = fields.Many2One(
        'stock.move', "Stock Move", readonly=True, ondelete='RESTRICT')
    reverse_move = fields.Many2One(
        'stock.move', "Reverse Move", readonly=True, ondelete='RESTRICT')
    reversed_by = fields.Many2One('res.user', "Reversed By", readonly=True)
    reversed_at = fields.Timestamp("Reversed At", readonly=True)
    reverse_reason = fields.Text(
        "Reversal Reason", readonly=True,
        help="Why the posted line was reversed (a wrong scan …).")
    consumption_state = fields.Function(
        fields.Selection(STATES, "State"), 'on_change_with_consumption_state')

    del _states

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('consumption')
        cls._buttons.update({
                'reverse_line': {
                    'invisible': ((Eval('consumption_state') != 'done')
                        | Bool(Eval('reverse_move'))),
                    'depends': ['consumption_state', 'reverse_move'],
                    },
                })
        cls._order.insert(0, ('sequence', 'ASC NULLS FIRST'))
        t = cls.__table__()
        cls._sql_indexes.add(Index(t, (t.consumption, Index.Equality())))

    @fields.depends('consumption', '_parent_consumption.state')
    def on_change_with_consumption_state(self, name=None):
        if self.consumption:
            return self.consumption.state

    @fields.depends('product')
    def on_change_with_unit(self, name=None):
        return self.product.default_uom if self.product else None

    @fields.depends('consumption', '_parent_consumption.company')
    def on_change_with_currency(self, name=None):
        if self.consumption and self.consumption.company:
            return self.consumption.company.currency

    @fields.depends(
        'product', 'consumption', '_parent_consumption.store')
    def on_change_with_lot_required(self, name=None):
        if self.product and self.consumption and self.consumption.store:
            return self.product_lot_required(self.consumption.store)
        return False

    def product_lot_required(self, store):
        "Whether a lot is required to take the material out of store"
        Consumption = Pool().get('hrp.consumption')
        template = self.product.template
        return bool(
            self.product.lot_is_required(
                store, Consumption.consumption_location())
            or getattr(template, 'serial_tracked', False)
            or getattr(template, 'implant', False))

    @fields.depends(
        'product', 'lot', 'quantity', 'consumption',
        '_parent_consumption.store', '_parent_consumption.company')
    def on_change_product(self):
        if not self.product:
            self.lot = None
            return
        if self.lot and self.lot.product != self.product:
            self.lot = None
        if (not self.lot and self.consumption and self.consumption.store
                and self.consumption.company):
            for lot, quantity, _ in self.fefo_quantities(
                    self.consumption.store, self.product,
                    self.consumption.company):
                if lot and quantity > 0:
                    self.lot = lot
                    break

    @classmethod
    def fefo_quantities(cls, store, product, company, usable_only=True):
        """Return the list of (lot, quantity, location) of product in store
        (the store itself and its suppliers' consignment locations) at today
        with the assigned moves: the lots by shelf-life expiration date, the
        hospital's own stock before consigned stock of the same lot, then
        the quantity without lot.  Expired and recalled lots are left out
        when usable_only."""
        pool = Pool()
        Product = pool.get('product.product')
        Lot = pool.get('stock.lot')
        Date = pool.get('ir.date')
        with Transaction().set_context(company=company.id):
            today = Date.today()
        locations = store.hrp_stock_locations()
        order = {l.id: i for i, l in enumerate(locations)}
        with Transaction().set_context(
                stock_date_end=today, stock_assign=True, company=company.id), \
                without_check_access():
            pbl = Product.products_by_location(
                list(order), with_childs=False, grouping=('product', 'lot'),
                grouping_filter=([product.id],))
            quantities = {(key[0], key[2]): qty for key, qty in pbl.items()
                if key[1] == product.id and qty > 0}
            lots = {l.id: l for l in Lot.browse(
                    sorted({l for _, l in quantities if l is not None}))}

            def key(item):
                (location_id, lot_id), _ = item
                lot = lots.get(lot_id)
                if lot is None:
                    return (1, dt.date.max, '', 0, order[location_id])
                expiry = getattr(lot, 'shelf_life_expiration_date', None)
                return (0, expiry or dt.date.max, lot.number or '', lot.id,
                    order[location_id])

            result = []
            for (location_id, lot_id), quantity in sorted(
                    quantities.items(), key=key):
                lot = lots.get(lot_id)
                if lot and usable_only and not usable_lot(lot, today):
                    continue
                result.append((lot, quantity, locations[order[location_id]]))
        return result

    def check_post(self, today):
        "Check the line can be posted"
        template = self.product.template
        if not self.product.active or not template.active:
            raise ConsumptionError(gettext(
                    'hrp_materials.msg_consumption_material_inactive',
                    material=self.product.rec_name,
                    consumption=self.consumption.rec_name))
        expiry = getattr(template, 'registration_expiry', None)
        if expiry and expiry < today:
            raise ConsumptionError(gettext(
                    'hrp_materials.msg_consumption_registration_expired',
                    material=self.product.rec_name,
                    number=template.registration_number or '',
                    expiry=expiry))
        self.check_quantity()

    @classmethod
    def validate_fields(cls, lines, field_names):
        super().validate_fields(lines, field_names)
        if field_names & {'quantity', 'product'}:
            for line in lines:
                line.check_quantity()
        if field_names & {'product', 'consumption'}:
            for line in lines:
                if (line.consumption.state == 'draft'
                        and not (line.product.active
                            and line.product.template.active)):
                    raise ConsumptionValidationError(gettext(
                            'hrp_materials.msg_consumption_material_inactive',
                            material=line.product.rec_name,
                            consumption=line.consumption.rec_name))

    def check_quantity(self):
        if self.quantity is None or self.quantity <= 0:
            raise ConsumptionValidationError(gettext(
                    'hrp_materials.msg_consumption_quantity_positive',
                    material=self.product.rec_name,
                    consumption=self.consumption.rec_name))

    @classmethod
    def check_modification(cls, mode, lines, values=None, external=False):
        super().check_modification(
            mode, lines, values=values, external=external)
        if external or mode == 'delete':
            for line in lines:
                if line.consumption.state != 'draft':
                    raise ConsumptionAccessError(gettext(
                            'hrp_materials.msg_consumption_modify_posted',
                            consumption=line.consumption.rec_name))
        if mode in {'create', 'write'} and external:
            # a line may not be moved to a posted consumption
            Consumption = Pool().get('hrp.consumption')
            if values and values.get('consumption'):
                consumption = Consumption(values['consumption'])
                if consumption.state != 'draft':
                    raise ConsumptionAccessError(gettext(
                            'hrp_materials.msg_consumption_modify_posted',
                            consumption=consumption.rec_name))

    @classmethod
    def copy(cls, lines, default=None):
        default = default.copy() if default is not None else {}
        for name in ['unit_cost', 'amount', 'cost_center', 'category',
                'location', 'move', 'reverse_move']:
            default.setdefault(name, None)
        return super().copy(lines, default=default)

    def get_move(self, location):
        "Return the stock move taking the line out of its store"
        Move = Pool().get('stock.move')
        consumption = self.consumption
        return Move(
            company=consumption.company,
            product=self.product,
            unit=self.product.default_uom,
            quantity=self.quantity,
            lot=self.lot,
            from_location=self.location or consumption.store,
            to_location=location,
            planned_date=consumption.date,
            effective_date=consumption.date,
            origin=self,
            )

    def get_reverse_move(self, location):
        "Return the stock move bringing the line back into its store"
        pool = Pool()
        Move = pool.get('stock.move')
        Date = pool.get('ir.date')
        consumption = self.consumption
        with Transaction().set_context(company=consumption.company.id):
            today = Date.today()
        move = self.move
        # the goods come back at the cost they left (consigned goods, which
        # have no cost price in stock, at the price they were bought)
        cost = move.cost_price if move.cost_price is not None else (
            self.unit_cost)
        return Move(
            company=move.company,
            product=move.product,
            unit=move.unit,
            quantity=move.quantity,
            lot=move.lot,
            from_location=location,
            to_location=move.from_location,
            planned_date=today,
            effective_date=today,
            unit_price=cost,
            currency=move.company.currency,
            cost_price=move.cost_price,
            origin=self,
            )

    def get_cost_values(self, move):
        "Return the values costing the posted line"
        return cost_values(move, self.product, self.quantity, self.consumption)

    @classmethod
    @ModelView.button_action('hrp_materials.wizard_consumption_line_reverse')
    def reverse_line(cls, lines):
        pass

    @classmethod
    def do_cancel(cls, lines, reason):
        """Reverse the posted lines (a wrong scan): their goods go back to
        the store; the rest of the registration stays posted"""
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Consumption._check_department_user(
            [l.consumption.department.id for l in lines])
        if not (reason or '').strip():
            raise ConsumptionError(gettext(
                    'hrp_materials.msg_consumption_line_reverse_reason'))
        for line in lines:
            if (line.consumption.state != 'done' or not line.move
                    or line.reverse_move):
                raise ConsumptionError(gettext(
                        'hrp_materials.msg_consumption_line_not_reversible',
                        material=line.product.rec_name,
                        consumption=line.consumption.rec_name))
        with without_check_access():
            cls.reverse(lines, reason.strip())

    @classmethod
    def reverse(cls, lines, reason):
        "Bring the goods of the posted lines back into their stores"
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Move = pool.get('stock.move')
        location = Consumption.consumption_location()
        moves = [line.get_reverse_move(location) for line in lines]
        Move.save(moves)
        Move.do(moves)
        to_write = []
        for line, move in zip(lines, moves):
            to_write.extend([[line], {
                        'reverse_move': move.id,
                        'reversed_by': Transaction().user,
                        'reversed_at': _now(),
                        'reverse_reason': reason,
                        }])
        cls.write(*to_write)


class Move(metaclass=PoolMeta):
    __name__ = 'stock.move'

    @classmethod
    def _get_origin(cls):
        return super()._get_origin() + ['hrp.consumption.line']


class ShipmentInternal(metaclass=PoolMeta):
    __name__ = 'stock.shipment.internal'

    @classmethod
    @ModelView.button
    @Workflow.transition('done')
    def do(cls, shipments):
        super().do(shipments)
        Pool().get('hrp.consumption').create_consumed_on_issue(shipments)


class DepartmentCost(ModelSQL, ModelView):
    "Department cost (科室成本): posted consumption by month and category"
    __name__ = 'hrp.department.cost'
    __string__ = "Department Cost"

    company = fields.Many2One('company.company', "Company")
    department = fields.Many2One('hrp.department', "Department")
    cost_center = fields.Many2One(
        'analytic_account.account', "Cost Centre")
    month = fields.Date("Month")
    category = fields.Many2One(
        'product.category', "Category",
        context={
            'company': Eval('company', -1),
            },
        depends={'company'})
    quantity = fields.Float("Quantity", digits=(16, 4))
    amount = Monetary(
        "Amount", currency='currency', digits='currency')
    currency = fields.Many2One('currency.currency', "Currency")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [
            ('month', 'DESC'), ('department', 'ASC'), ('category', 'ASC'),
            ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Line = pool.get('hrp.consumption.line')
        Company = pool.get('company.company')
        context = Transaction().context
        consumption = Consumption.__table__()
        line = Line.__table__()
        company = Company.__table__()

        month = cls.month.sql_cast(DateTrunc('month', consumption.date))
        where = Consumption.posted_lines_where(consumption, line, context)
        if context.get('department'):
            where &= consumption.department == context['department']
        # group by the month's alias: PostgreSQL does not match the same
        # expression with its parameters renumbered
        group_by = [
            consumption.company, company.currency, consumption.department,
            line.cost_center, month.as_('month'), line.category]
        return (line
            .join(consumption, condition=line.consumption == consumption.id)
            .join(company, condition=consumption.company == company.id)
            .select(
                Min(line.id).as_('id'),
                consumption.company.as_('company'),
                company.currency.as_('currency'),
                consumption.department.as_('department'),
                line.cost_center.as_('cost_center'),
                month.as_('month'),
                line.category.as_('category'),
                cls.quantity.sql_cast(Sum(line.quantity)).as_('quantity'),
                cls.amount.sql_cast(Sum(line.amount)).as_('amount'),
                where=where & (line.amount != Null),
                group_by=group_by))


class DepartmentCostContext(PeriodContextMixin, ModelView):
    __name__ = 'hrp.department.cost.context'
    __string__ = "Department Cost Context"

    department = fields.Many2One(
        'hrp.department', "Department",
        domain=[('company', '=', Eval('company', -1))],
        help="Leave empty for every department you may see.")

    @classmethod
    def default_from_date(cls):
        context = Transaction().context
        if 'from_date' in context:
            return context['from_date']
        return Pool().get('ir.date').today().replace(month=1, day=1)

    @classmethod
    def default_department(cls):
        return Transaction().context.get('department')
