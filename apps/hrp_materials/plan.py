# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Purchase plans (采购计划).

The procurement officer collects the open purchase requests to buy by the
end of a period into a plan: one line per supplier, material, unit and
warehouse, with the requested quantity, the quantity to order (editable),
the unit price the order will take (the contract price when a contract
covers it) and the amount.  The plan is approved through the approval
engine; its approval creates one Tryton purchase per supplier and
warehouse, quoted at once (so that the contract and qualification checks of
the purchase apply), and links every request to its purchase line.  A line
set to zero cancels its requests with the plan as the reason."""
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from sql import Column, Values
from sql.functions import CurrentTimestamp

from trytond import backend
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Workflow, fields
from trytond.modules.currency.fields import Monetary
from trytond.modules.product import price_digits
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval, Id
from trytond.tools import grouped_slice, reduce_ids
from trytond.transaction import Transaction, without_check_access

from .approval import ApprovalWorkflowMixin
from .exceptions import PurchasePlanError
from .purchase import check_qualification

STATES = [
    ('draft', "Draft"),
    ('submitted', "Submitted"),
    ('in_approval', "In Approval"),
    ('approved', "Approved"),
    ('done', "Ordered"),
    ('rejected', "Rejected"),
    ('cancelled', "Cancelled"),
    ]
DRAFT = {'readonly': Eval('state') != 'draft'}


def write_links(model, values, ids=(), links=None):
    """Write values on the records ids of model in SQL, recording who and
    when; with links, a (field, {record id: target id}) pair, write values
    and each record's field on the records of links instead.

    A plan links a thousand requests and hundreds of lines each to its own
    line or purchase line at once: the values are the plan's own links (and
    the state Tryton derives from them), so Tryton's write of each record in
    turn, validating each and computing the function fields of the whole
    list, is skipped, and the links are written by one statement."""
    Model = Pool().get(model)
    transaction = Transaction()
    table = Model.__table__()
    cursor = transaction.connection.cursor()
    columns = [Column(table, name) for name in values] + [
        table.write_uid, table.write_date]
    constants = list(values.values()) + [
        transaction.user, CurrentTimestamp()]
    if links:
        field, targets = links
        ids = sorted(targets)
        for sub_ids in grouped_slice(
                ids, (backend.MAX_QUERY_PARAMS - len(constants)) // 2):
            rows = Values([[i, targets[i]] for i in sub_ids])
            cursor.execute(*table.update(
                    [Column(table, field)] + columns,
                    [rows.column2] + constants,
                    from_=[rows], where=table.id == rows.column1))
    else:
        for sub_ids in grouped_slice(
                ids, backend.MAX_QUERY_PARAMS - len(constants)):
            cursor.execute(*table.update(
                    columns, constants,
                    where=reduce_ids(table.id, sub_ids)))
    # Forget the cached values as Tryton's write does (the records' own
    # caches are dropped when the counter changes)
    transaction.counter += 1
    for cache in transaction.cache.values():
        if model in cache:
            for id_ in ids:
                cache[model].pop(id_, None)


class Configuration(metaclass=PoolMeta):
    __name__ = 'hrp.configuration'

    purchase_plan_sequence = fields.Many2One(
        'ir.sequence', "Purchase Plan Sequence", required=True,
        domain=[('sequence_type', '=', Id(
                    'hrp_materials', 'sequence_type_purchase_plan'))])
    plan_invoice_method = fields.Selection([
            ('order', "On Order"),
            ('fulfillment', "On Fulfillment"),
            ('manual', "Manual"),
            ], "Plan Invoice Method", required=True,
        help="How the purchases of approved plans are invoiced; with "
        "\"On Fulfillment\" the supplier invoice is drafted from the "
        "receipt and matched against the order and the receipt.")

    @classmethod
    def default_purchase_plan_sequence(cls):
        return cls._default_sequence('sequence_purchase_plan')

    @classmethod
    def default_plan_invoice_method(cls):
        return 'fulfillment'


class Plan(ApprovalWorkflowMixin, Workflow, ModelSQL, ModelView):
    __name__ = 'hrp.purchase.plan'
    __string__ = "Purchase Plan"
    _rec_name = 'number'

    company = fields.Many2One(
        'company.company', "Company", required=True,
        states={
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            })
    number = fields.Char("Number", readonly=True)
    description = fields.Char("Description", states=DRAFT)
    period_start = fields.Date(
        "Period Start", required=True, states=DRAFT,
        domain=[('period_start', '<=', Eval('period_end', None))])
    period_end = fields.Date(
        "Period End", required=True, states=DRAFT,
        domain=[('period_end', '>=', Eval('period_start', None))],
        help="The plan collects the open requests to purchase by this day "
        "(earlier, overdue ones included).")
    warehouse = fields.Many2One(
        'stock.location', "Warehouse", states=DRAFT,
        domain=[('type', '=', 'warehouse')],
        help="Collect only the requests of this warehouse; leave empty for "
        "every warehouse.")
    category = fields.Many2One(
        'product.category', "Material Category", states=DRAFT,
        context={'company': Eval('company', -1)}, depends={'company'},
        help="Collect only the materials of this category or of its "
        "sub-categories; leave empty for every category.")
    lines = fields.One2Many(
        'hrp.purchase.plan.line', 'plan', "Lines",
        states={
            'readonly': Eval('state') != 'draft',
            })
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    total_amount = fields.Function(
        Monetary("Total Amount", currency='currency', digits='currency'),
        'get_total_amount')
    request_count = fields.Function(
        fields.Integer("Requests"), 'get_request_count')
    purchases = fields.Function(
        fields.Many2Many('purchase.purchase', None, None, "Purchases"),
        'get_purchases')
    collected_by = fields.Many2One('res.user', "Collected By", readonly=True)
    collected_at = fields.DateTime("Collected At", readonly=True)
    ordered_by = fields.Many2One('res.user', "Ordered By", readonly=True)
    ordered_at = fields.DateTime("Ordered At", readonly=True)
    state = fields.Selection(
        STATES, "State", readonly=True, required=True, sort=False)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('company')
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    where=t.state.in_(['draft', 'submitted', 'in_approval'])),
                })
        cls._order = [('period_start', 'DESC'), ('id', 'DESC')]
        cls._transitions |= {('approved', 'done')}
        cls._buttons.update({
                'collect': {
                    'invisible': Eval('state') != 'draft',
                    'depends': ['state'],
                    },
                })
        # The plan's lines may all be collected by the button
        cls._buttons['submit']['readonly'] = ~Eval('lines', [])

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_period_start(cls):
        return Pool().get('ir.date').today()

    @classmethod
    def default_period_end(cls):
        today = Pool().get('ir.date').today()
        return today + dt.timedelta(days=30)

    @fields.depends('company')
    def on_change_with_currency(self, name=None):
        return self.company.currency if self.company else None

    @property
    def department(self):
        # A plan is the hospital's, not a department's
        return None

    def get_total_amount(self, name):
        total = sum((l.amount or Decimal(0) for l in self.lines), Decimal(0))
        return self.currency.round(total) if self.currency else total

    def get_request_count(self, name):
        return sum(len(l.requests) for l in self.lines)

    def get_purchases(self, name):
        return sorted({l.purchase_line.purchase.id for l in self.lines
                if l.purchase_line})

    def get_approval_values(self):
        values = super().get_approval_values()
        values['department'] = None
        return values

    @classmethod
    def _number_sequence(cls):
        return Pool().get('hrp.configuration')(1).purchase_plan_sequence

    @classmethod
    def copy(cls, plans, default=None):
        default = default.copy() if default is not None else {}
        for name in ['lines', 'collected_by', 'collected_at', 'ordered_by',
                'ordered_at']:
            default.setdefault(name, None)
        return super().copy(plans, default=default)

    def _request_domain(self):
        "The domain of the open requests the plan collects"
        domain = [
            ('company', '=', self.company.id),
            ('state', '=', 'draft'),
            ('purchase_line', '=', None),
            ('hrp_cancelled', '!=', True),
            ('product', '!=', None),
            ['OR',
                ('purchase_date', '<=', self.period_end),
                ('purchase_date', '=', None),
                ],
            ['OR',
                ('hrp_plan_line', '=', None),
                ('hrp_plan_line.plan', '=', self.id),
                ('hrp_plan_line.plan.state', '=', 'cancelled'),
                ],
            ]
        if self.warehouse:
            domain.append(('warehouse', '=', self.warehouse.id))
        if self.category:
            domain.append(
                ('product.template.categories_all', 'child_of',
                    [self.category.id], 'parent'))
        return domain

    @classmethod
    @ModelView.button
    def collect(cls, plans):
        """Collect the open requests into lines (again: the lines are
        replaced)"""
        pool = Pool()
        Line = pool.get('hrp.purchase.plan.line')
        Request = pool.get('purchase.request')
        Request.lock()
        for plan in plans:
            if plan.state != 'draft':
                raise PurchasePlanError(gettext(
                        'hrp_materials.msg_plan_not_draft',
                        plan=plan.rec_name))
        with without_check_access():
            old = [l for p in plans for l in p.lines]
            if old:
                write_links('purchase.request', {'hrp_plan_line': None},
                    ids=[r.id for l in old for r in l.requests])
                Line.delete(old)
            lines, links = [], []
            for plan in plans:
                requests = Request.search_read(
                    plan._request_domain(), order=[('id', 'ASC')],
                    fields_names=[
                        'product', 'party', 'warehouse', 'unit', 'quantity',
                        'purchase_date'])
                for line, request_ids in plan._lines_for(requests):
                    lines.append(line)
                    links.append(request_ids)
            Line.save(lines)
            write_links('purchase.request', {}, links=('hrp_plan_line', {
                        i: line.id
                        for line, request_ids in zip(lines, links)
                        for i in request_ids}))
        cls.write(plans, {
                'collected_by': Transaction().user,
                'collected_at': dt.datetime.now(),
                })

    def _lines_for(self, requests):
        """Return [(line, request ids)] grouping the requests (as read) by
        supplier, material and warehouse, the lines priced"""
        pool = Pool()
        Line = pool.get('hrp.purchase.plan.line')
        Product = pool.get('product.product')
        Uom = pool.get('product.uom')
        Date = pool.get('ir.date')
        with Transaction().set_context(company=self.company.id):
            today = Date.today()
        products = {p.id: p for p in Product.browse(
                sorted({r['product'] for r in requests}))}
        units = {u.id: u for u in Uom.browse(
                sorted({r['unit'] for r in requests}))}
        suppliers = self._find_suppliers({
                (products[r['product']], r['purchase_date'] or today)
                for r in requests if not r['party']})
        groups = defaultdict(list)
        for request in requests:
            supplier = request['party'] or suppliers[
                products[request['product']],
                request['purchase_date'] or today]
            groups[supplier, request['product'], request['warehouse']
                ].append(request)
        lines, links = [], []
        for (supplier, product, warehouse), grouped in groups.items():
            product = products[product]
            unit = product.purchase_uom or product.default_uom
            quantity = unit.ceil(sum(
                    Uom.compute_qty(units[r['unit']], r['quantity'], unit,
                        round=False)
                    for r in grouped))
            lines.append(Line(
                    plan=self, supplier=supplier, product=product,
                    warehouse=warehouse, unit=unit, quantity=quantity,
                    requested_quantity=quantity))
            links.append([r['id'] for r in grouped])
        for line, price in zip(lines, Line.compute_unit_prices(lines)):
            line.unit_price = price
        return list(zip(lines, links))

    def _find_suppliers(self, keys):
        """Return {(product, date): supplier id or None}: the supplier of
        the active contract covering the material at date, else Tryton's
        best supplier"""
        pool = Pool()
        Contract = pool.get('hrp.contract')
        Request = pool.get('purchase.request')
        keys = sorted(keys, key=lambda k: (k[0].id, k[1]))
        by_date = defaultdict(list)
        for key in keys:
            by_date[key[1]].append(key)
        suppliers = {}
        for date, date_keys in by_date.items():
            contract_lines = Contract.find_lines(
                [(None, product, None, None) for product, _ in date_keys],
                date, company=self.company)
            for key, contract_line in zip(date_keys, contract_lines):
                if contract_line:
                    suppliers[key] = contract_line.contract.supplier.id
        with Transaction().set_context(company=self.company.id):
            for product, date in keys:
                if (product, date) not in suppliers:
                    supplier, _ = Request.find_best_supplier(product, date)
                    suppliers[product, date] = (
                        supplier.id if supplier else None)
        return suppliers

    @classmethod
    def check_submit(cls, plans):
        super().check_submit(plans)
        for plan in plans:
            lines = [l for l in plan.lines if l.quantity]
            if not lines:
                raise PurchasePlanError(gettext(
                        'hrp_materials.msg_document_no_line',
                        document=plan.rec_name))
            for line in lines:
                line.check_orderable()

    @classmethod
    @Workflow.transition('approved')
    def approve(cls, plans):
        pass

    @classmethod
    def approval_granted(cls, plans):
        super().approval_granted(plans)
        cls.order(cls.browse([p.id for p in plans]))

    @classmethod
    @Workflow.transition('done')
    def order(cls, plans):
        """Create one purchase per supplier and warehouse of the approved
        plans, quoted, and link the requests to their purchase lines"""
        pool = Pool()
        Purchase = pool.get('purchase.purchase')
        PurchaseLine = pool.get('purchase.line')
        Date = pool.get('ir.date')
        Configuration = pool.get('hrp.configuration')
        invoice_method = Configuration(1).plan_invoice_method
        user_id = Transaction().user
        now = dt.datetime.now()
        purchases, plines, dropped = {}, [], []
        with without_check_access():
            for plan in plans:
                with Transaction().set_context(company=plan.company.id):
                    today = Date.today()
                # Qualifications were checked at submit and are checked
                # again when the purchases are quoted
                for line in plan.lines:
                    if not line.quantity:
                        dropped.append(line)
                        continue
                    key = (plan.company, line.supplier, line.warehouse)
                    if key not in purchases:
                        purchase = Purchase(
                            company=plan.company, party=line.supplier,
                            warehouse=line.warehouse,
                            currency=plan.company.currency,
                            purchase_date=today)
                        purchase.on_change_party()
                        purchase.invoice_method = invoice_method
                        purchase.comment = gettext(
                            'hrp_materials.msg_plan_purchase_comment',
                            plan=plan.rec_name)
                        purchases[key] = purchase
                    purchase = purchases[key]
                    pline = line._purchase_line(purchase)
                    # The price the plan was approved with
                    pline.unit_price = line.unit_price
                    pline.taxes = pline.compute_taxes(purchase.party)
                    plines.append((line, pline))
            # Linked to their contract lines as quoting does, so that it
            # finds nothing to change
            for (_, pline), contract_line in zip(plines,
                    PurchaseLine.find_contract_lines([p for _, p in plines])):
                pline.hrp_contract_line = contract_line
                if contract_line:
                    pline.unit_price = contract_line.price_for(pline.unit)
            Purchase.save(list(purchases.values()))
            PurchaseLine.save([p for _, p in plines])
            write_links('hrp.purchase.plan.line', {}, links=('purchase_line', {
                        line.id: pline.id for line, pline in plines}))
            # One write links the requests to their purchase lines and marks
            # them purchased (what Request.set_purchased does, without
            # writing each request twice)
            employee = pool.get('res.user')(user_id).employee
            purchased = defaultdict(dict)
            for line, pline in plines:
                by = (employee.id if employee
                    and employee.company == line.plan.company else None)
                for request in line.requests:
                    purchased[by][request.id] = pline.id
            for by, targets in purchased.items():
                write_links('purchase.request',
                    {'state': 'purchased', 'purchased_by': by},
                    links=('purchase_line', targets))
            for line in dropped:
                write_links('purchase.request', {
                        'state': 'cancelled',
                        'hrp_cancelled': True,
                        'hrp_cancelled_by': user_id,
                        'hrp_cancelled_at': now,
                        'hrp_cancel_reason': gettext(
                            'hrp_materials.msg_plan_line_dropped',
                            plan=line.plan.rec_name),
                        }, ids=[r.id for r in line.requests])
            if purchases:
                Purchase.quote(list(purchases.values()))
        cls.write(plans, {'ordered_by': user_id, 'ordered_at': now})

    @classmethod
    def _cancel(cls, plans):
        super()._cancel(plans)
        Request = Pool().get('purchase.request')
        requests = [r for p in plans for l in p.lines for r in l.requests
            if not r.purchase_line]
        if requests:
            with without_check_access():
                Request.write(requests, {'hrp_plan_line': None})


class PlanLine(ModelSQL, ModelView):
    __name__ = 'hrp.purchase.plan.line'
    __string__ = "Purchase Plan Line"

    plan = fields.Many2One(
        'hrp.purchase.plan', "Plan", required=True, ondelete='CASCADE')
    plan_state = fields.Function(
        fields.Selection(STATES, "Plan State"), 'on_change_with_plan_state')
    supplier = fields.Many2One(
        'party.party', "Supplier",
        states={
            'readonly': Eval('plan_state') != 'draft',
            'required': Eval('plan_state').in_(['submitted', 'in_approval']),
            },
        context={'company': Eval('company', -1)}, depends={'company'})
    company = fields.Function(
        fields.Many2One('company.company', "Company"),
        'on_change_with_company')
    product = fields.Many2One(
        'product.product', "Material", required=True, readonly=True,
        context={'company': Eval('company', -1)}, depends={'company'})
    category = fields.Function(
        fields.Many2One(
            'product.category', "Category",
            context={'company': Eval('company', -1)}, depends={'company'}),
        'get_category')
    warehouse = fields.Many2One(
        'stock.location', "Warehouse", required=True, readonly=True,
        domain=[('type', '=', 'warehouse')])
    requested_quantity = fields.Float(
        "Requested Quantity", digits='unit', readonly=True)
    quantity = fields.Float(
        "Quantity", digits='unit', required=True,
        domain=[('quantity', '>=', 0)],
        states={
            'readonly': Eval('plan_state') != 'draft',
            },
        help="The quantity to order; zero leaves the material out and "
        "cancels its requests when the plan is ordered.")
    unit = fields.Many2One('product.uom', "Unit", required=True, readonly=True)
    unit_price = Monetary(
        "Unit Price", currency='currency', digits=price_digits,
        readonly=True,
        help="The price of the order: the contract price when a valid "
        "contract with the supplier covers the material.")
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    amount = fields.Function(
        Monetary("Amount", currency='currency', digits='currency'),
        'on_change_with_amount')
    requests = fields.One2Many(
        'purchase.request', 'hrp_plan_line', "Requests", readonly=True)
    purchase_line = fields.Many2One(
        'purchase.line', "Purchase Line", readonly=True, ondelete='SET NULL')
    purchase = fields.Function(
        fields.Many2One('purchase.purchase', "Purchase"), 'get_purchase')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('plan')
        cls._order = [('supplier', 'ASC'), ('product', 'ASC'), ('id', 'ASC')]

    @fields.depends('plan', '_parent_plan.state')
    def on_change_with_plan_state(self, name=None):
        return self.plan.state if self.plan else None

    @fields.depends('plan', '_parent_plan.company')
    def on_change_with_company(self, name=None):
        return self.plan.company if self.plan else None

    @fields.depends('plan', '_parent_plan.company')
    def on_change_with_currency(self, name=None):
        return self.plan.company.currency if self.plan else None

    def get_category(self, name):
        categories = self.product.template.categories
        return categories[0].id if categories else None

    @fields.depends('quantity', 'unit_price', 'plan', '_parent_plan.company')
    def on_change_with_amount(self, name=None):
        if self.quantity is None or self.unit_price is None:
            return None
        amount = Decimal(str(self.quantity)) * self.unit_price
        if self.plan and self.plan.company:
            return self.plan.company.currency.round(amount)
        return amount

    @fields.depends(methods=['compute_unit_price'])
    def on_change_supplier(self):
        self.unit_price = self.compute_unit_price()

    @fields.depends(methods=['compute_unit_price'])
    def on_change_quantity(self):
        self.unit_price = self.compute_unit_price()

    def get_purchase(self, name):
        return self.purchase_line.purchase.id if self.purchase_line else None

    @fields.depends('plan', 'supplier', 'product', 'unit', 'quantity',
        'warehouse', '_parent_plan.company')
    def compute_unit_price(self):
        "The unit price the purchase line will take"
        price, = self.compute_unit_prices([self])
        return price

    @classmethod
    def compute_unit_prices(cls, lines):
        """Return the unit price the purchase line of each line will take,
        priced by the purchase line's own rules (the contract, else the
        supplier's prices) on a purchase of the plan's day"""
        pool = Pool()
        Purchase = pool.get('purchase.purchase')
        PurchaseLine = pool.get('purchase.line')
        Date = pool.get('ir.date')
        purchases, plines, indexes = {}, [], []
        for i, line in enumerate(lines):
            if not (line.plan and line.supplier and line.product
                    and line.unit):
                continue
            company = line.plan.company
            key = (company, line.supplier, line.warehouse)
            if key not in purchases:
                with Transaction().set_context(company=company.id):
                    today = Date.today()
                purchases[key] = Purchase(
                    company=company, party=line.supplier,
                    currency=company.currency, purchase_date=today,
                    warehouse=line.warehouse)
            plines.append(line._purchase_line(purchases[key]))
            indexes.append(i)
        prices = [None] * len(lines)
        for i, price in zip(indexes, PurchaseLine.compute_unit_prices(plines)):
            prices[i] = price
        return prices

    def _purchase_line(self, purchase):
        "Return a purchase line of purchase for the line, not priced"
        PurchaseLine = Pool().get('purchase.line')
        return PurchaseLine(
            purchase=purchase, type='line', product=self.product,
            unit=self.unit, quantity=self.quantity or 0, taxes=[])

    def check_orderable(self):
        """Raise if the line cannot be ordered: no supplier, one that may
        not deliver the material (the purchases' qualification gate), or no
        price (neither a contract nor the supplier's prices nor a cost)"""
        pool = Pool()
        Date = pool.get('ir.date')
        if not self.supplier:
            raise PurchasePlanError(gettext(
                    'hrp_materials.msg_plan_line_no_supplier',
                    plan=self.plan.rec_name,
                    material=self.product.rec_name))
        with Transaction().set_context(company=self.plan.company.id):
            today = Date.today()
        check_qualification(self.supplier, self.product, today)
        if not self.unit_price:
            raise PurchasePlanError(gettext(
                    'hrp_materials.msg_plan_line_no_price',
                    plan=self.plan.rec_name,
                    material=self.product.rec_name,
                    supplier=self.supplier.rec_name))

    @classmethod
    def copy(cls, lines, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('requests', None)
        default.setdefault('purchase_line', None)
        return super().copy(lines, default=default)
