# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Write-offs (报损) out of a department store or the central store.

A department declares materials expired, damaged, lost, recalled or
defective; the write-off is approved through the approval engine and its
approval posts done stock moves from the store to the warehouse's
lost-and-found location, costed at the material's cost price and charged to
the department's cost centre.  Recalled and expired lots may be written off:
lost-and-found is one of the places such lots may still go (see lot.py)."""
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Workflow, fields
from trytond.modules.currency.fields import Monetary
from trytond.modules.product import price_digits
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval
from trytond.transaction import Transaction, without_check_access

from .approval import ApprovalWorkflowMixin
from .department import DepartmentDocumentMixin
from .exceptions import WriteOffError
from .mixin import IssueUnitMixin, cost_values

STATES = [
    ('draft', "Draft"),
    ('submitted', "Submitted"),
    ('in_approval', "In Approval"),
    ('approved', "Approved"),
    ('done', "Done"),
    ('rejected', "Rejected"),
    ('cancelled', "Cancelled"),
    ]
REASONS = [
    ('expired', "Expired"),
    ('damaged', "Damaged"),
    ('lost', "Lost"),
    ('recalled', "Recalled"),
    ('quality_defect', "Quality Defect"),
    ('other', "Other"),
    ]
STORE_TYPES = ['central', 'department', 'high_value']
DRAFT = {'readonly': Eval('state') != 'draft'}


def format_quantity(quantity, unit):
    Lang = Pool().get('ir.lang')
    return Lang.get().format_number_symbol(
        quantity, unit, digits=unit.digits)


def lost_found_location(store):
    "Return the lost-and-found location of the store's warehouse or raise"
    location = store.lost_found_used
    if not location:
        raise WriteOffError(gettext(
                'hrp_materials.msg_write_off_no_lost_found',
                store=store.rec_name))
    return location


class WriteOff(
        DepartmentDocumentMixin, ApprovalWorkflowMixin, Workflow, ModelSQL,
        ModelView):
    __name__ = 'hrp.write_off'
    __string__ = "Write-Off"
    _rec_name = 'number'

    company = fields.Many2One(
        'company.company', "Company", required=True,
        states={
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            })
    number = fields.Char("Number", readonly=True)
    date = fields.Date(
        "Date", required=True, states=DRAFT,
        help="The day the loss was found.")
    store = fields.Many2One(
        'stock.location', "Store", required=True,
        domain=['OR',
            [
                ('hrp_department', '=', Eval('department', -1)),
                ('hrp_store_type', 'in', ['department', 'high_value']),
                ],
            ('hrp_store_type', '=', 'central'),
            ],
        states={
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            },
        help="The store the materials are written off from: a store of the "
        "department or, for the store keeper, the central store.")
    description = fields.Text("Note", states=DRAFT)
    lines = fields.One2Many(
        'hrp.write_off.line', 'write_off', "Lines",
        states={
            'readonly': (Eval('state') != 'draft') | ~Eval('store'),
            })
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    total_amount = fields.Function(
        Monetary("Total Amount", currency='currency', digits='currency'),
        'get_total_amount')
    done_by = fields.Many2One('res.user', "Posted By", readonly=True)
    done_at = fields.DateTime("Posted At", readonly=True)
    state = fields.Selection(
        STATES, "State", readonly=True, required=True, sort=False)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('department')
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    where=t.state.in_(['draft', 'submitted', 'in_approval'])),
                Index(t, (t.number, Index.Similarity())),
                })
        cls._order = [('date', 'DESC'), ('id', 'DESC')]
        cls.department.domain = [('company', '=', Eval('company', -1))]
        cls.department.states = {
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            }
        cls._transitions |= {('approved', 'done')}

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_date(cls):
        return Pool().get('ir.date').today()

    @classmethod
    def default_store(cls):
        department = cls.default_department()
        if department is not None:
            store = Pool().get('hrp.department')(department).store
            if store:
                return store.id

    @fields.depends('department', 'store')
    def on_change_department(self):
        if self.department:
            if (not self.store
                    or (self.store.hrp_store_type != 'central'
                        and self.store.hrp_department != self.department)):
                self.store = self.department.store
        else:
            self.store = None

    @fields.depends('company')
    def on_change_with_currency(self, name=None):
        return self.company.currency if self.company else None

    def get_total_amount(self, name):
        amounts = [l.amount if l.amount is not None else l.estimated_amount
            for l in self.lines]
        amounts = [a for a in amounts if a is not None]
        total = sum(amounts, Decimal(0))
        return self.currency.round(total) if self.currency else total

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if (mode == 'create' and values.get('department')
                and not values.get('store')):
            store = Pool().get('hrp.department')(values['department']).store
            if store:
                values['store'] = store.id
        return values

    @classmethod
    def check_modification(
            cls, mode, write_offs, values=None, external=False):
        super().check_modification(
            mode, write_offs, values=values, external=external)
        if mode == 'write' and external and 'department' in values:
            cls._check_department_user([values['department']])

    @classmethod
    def copy(cls, write_offs, default=None):
        default = default.copy() if default is not None else {}
        for name in ['done_by', 'done_at']:
            default.setdefault(name, None)
        default.setdefault('date', cls.default_date())
        return super().copy(write_offs, default=default)

    @classmethod
    def _number_sequence(cls):
        return Pool().get('hrp.configuration')(1).write_off_sequence

    def _acts_for_every_department(self):
        "Whether the user may write off any store (store keeper …)"
        pool = Pool()
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        transaction = Transaction()
        if transaction.user == 0:
            return True
        groups = set(User.get_groups())
        return bool(groups & {ModelData.get_id(*g.split('.'))
                for g in self._hrp_all_departments_groups()})

    def check_store(self):
        store = self.store
        if store.hrp_store_type not in STORE_TYPES or (
                store.hrp_store_type != 'central'
                and store.hrp_department != self.department):
            raise WriteOffError(gettext(
                    'hrp_materials.msg_write_off_store_department',
                    write_off=self.rec_name,
                    store=store.rec_name,
                    department=self.department.rec_name))
        if (store.hrp_store_type == 'central'
                and not self._acts_for_every_department()):
            raise WriteOffError(gettext(
                    'hrp_materials.msg_write_off_central_store',
                    write_off=self.rec_name,
                    store=store.rec_name))

    @classmethod
    def check_submit(cls, write_offs):
        super().check_submit(write_offs)
        for write_off in write_offs:
            if not write_off.lines:
                raise WriteOffError(gettext(
                        'hrp_materials.msg_document_no_line',
                        document=write_off.rec_name))
            if not write_off.department.cost_center:
                raise WriteOffError(gettext(
                        'hrp_materials.msg_write_off_no_cost_center',
                        write_off=write_off.rec_name,
                        department=write_off.department.rec_name))
            write_off.check_store()
            lost_found_location(write_off.store)
            for line in write_off.lines:
                line.check_line()
        cls.check_stock(write_offs)

    @classmethod
    def _lock_stock(cls, write_offs):
        """Take the stores' lock and the locks of Tryton's stock assignment
        on the products of the write-offs in their stores"""
        pool = Pool()
        Move = pool.get('stock.move')
        Date = pool.get('ir.date')
        Consumption = pool.get('hrp.consumption')
        by_company = defaultdict(list)
        for write_off in write_offs:
            by_company[write_off.company].append(write_off)
        for company, c_write_offs in by_company.items():
            with Transaction().set_context(company=company.id):
                today = Date.today()
            store_ids = sorted({w.store.id for w in c_write_offs})
            product_ids = sorted({
                    l.product.id for w in c_write_offs for l in w.lines})
            Consumption._lock_stores(store_ids)
            Move._assign_try_lock(
                product_ids, store_ids, [company.id], today,
                ('product', 'lot'))

    @classmethod
    def check_stock(cls, write_offs):
        """Refuse write-offs their stores do not cover today (with the
        assigned moves): per lot for the lines with a lot and per material
        for all"""
        pool = Pool()
        Product = pool.get('product.product')
        Date = pool.get('ir.date')
        for write_off in write_offs:
            with Transaction().set_context(company=write_off.company.id):
                today = Date.today()
            needed = defaultdict(float)
            needed_product = defaultdict(float)
            for line in write_off.lines:
                needed[line.product, line.lot] += line.internal_quantity
                needed_product[line.product] += line.internal_quantity
            with Transaction().set_context(
                    stock_date_end=today, stock_assign=True,
                    company=write_off.company.id), without_check_access():
                pbl = Product.products_by_location(
                    [write_off.store.id], with_childs=True,
                    grouping=('product', 'lot'),
                    grouping_filter=(
                        sorted({p.id for p in needed_product}),))
            available = defaultdict(float)
            available_product = defaultdict(float)
            for (_, product_id, lot_id), quantity in pbl.items():
                available[product_id, lot_id] += quantity
                available_product[product_id] += quantity
            for (product, lot), quantity in needed.items():
                unit = product.default_uom
                if lot:
                    stock = available[product.id, lot.id]
                else:
                    stock = available_product[product.id]
                total = available_product[product.id]
                if (unit.round(quantity - stock) > 0
                        or unit.round(needed_product[product] - total) > 0):
                    if lot:
                        stock = min(stock, total)
                    else:
                        quantity = needed_product[product]
                    raise WriteOffError(gettext(
                            'hrp_materials.msg_write_off_stock_short',
                            write_off=write_off.rec_name,
                            store=write_off.store.rec_name,
                            material=product.rec_name,
                            lot=lot.rec_name if lot else '-',
                            quantity=format_quantity(quantity, unit),
                            available=format_quantity(max(stock, 0), unit)))

    @classmethod
    @Workflow.transition('approved')
    def approve(cls, write_offs):
        pass

    @classmethod
    def approval_granted(cls, write_offs):
        super().approval_granted(write_offs)
        cls.post(cls.browse([w.id for w in write_offs]))

    @classmethod
    @Workflow.transition('done')
    def post(cls, write_offs):
        """Move the approved write-offs' materials to lost-and-found and cost
        them; every check runs (under the stores' lock) before anything is
        written"""
        pool = Pool()
        Move = pool.get('stock.move')
        Line = pool.get('hrp.write_off.line')
        if not write_offs:
            return
        with without_check_access():
            for write_off in write_offs:
                write_off.check_store()
                for line in write_off.lines:
                    line.check_line()
            cls._lock_stock(write_offs)
            cls.check_stock(write_offs)
            lines = [l for w in write_offs for l in w.lines]
            moves = [l.get_move() for l in lines]
            Move.save(moves)
            Move.do(moves)
            to_write = []
            for line, move in zip(lines, Move.browse(moves)):
                to_write.extend([[line], line.get_cost_values(move)])
            Line.write(*to_write)
            cls.write(write_offs, {
                    'done_by': Transaction().user,
                    'done_at': dt.datetime.now(),
                    })


class WriteOffLine(IssueUnitMixin, ModelSQL, ModelView):
    __name__ = 'hrp.write_off.line'
    __string__ = "Write-Off Line"

    _states = {'readonly': Eval('write_off_state') != 'draft'}

    write_off = fields.Many2One(
        'hrp.write_off', "Write-Off", required=True, ondelete='CASCADE',
        states={
            'readonly': ((Eval('write_off_state') != 'draft')
                & Bool(Eval('write_off'))),
            })
    product = fields.Many2One(
        'product.product', "Material", required=True, ondelete='RESTRICT',
        domain=[('type', '=', 'goods')],
        context={
            'locations': [Eval('_parent_write_off', {}).get('store', -1)],
            },
        states=_states, depends={'write_off'})
    lot = fields.Many2One(
        'stock.lot', "Lot", ondelete='RESTRICT',
        domain=[('product', '=', Eval('product', -1))],
        context={
            'locations': [Eval('_parent_write_off', {}).get('store', -1)],
            },
        states={
            'readonly': Eval('write_off_state') != 'draft',
            'required': Bool(Eval('lot_required')),
            },
        depends={'write_off'})
    lot_required = fields.Function(
        fields.Boolean("Lot Required"), 'on_change_with_lot_required')
    unit = fields.Many2One(
        'product.uom', "Unit", required=True, readonly=True,
        ondelete='RESTRICT')
    quantity = fields.Float(
        "Quantity", digits='unit', required=True, states=_states,
        help="In the material's unit.")
    reason = fields.Selection(
        REASONS, "Reason", required=True, states=_states, sort=False)
    note = fields.Text(
        "Note",
        states={
            'readonly': Eval('write_off_state') != 'draft',
            'required': Eval('reason') == 'other',
            },
        help="What happened; required for another reason.")
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    unit_cost = fields.Numeric(
        "Unit Cost", digits=price_digits, readonly=True,
        help="The cost price the materials were written off at.")
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
    write_off_state = fields.Function(
        fields.Selection(STATES, "Write-Off State"),
        'on_change_with_write_off_state')

    del _states

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('write_off')
        t = cls.__table__()
        cls._sql_indexes.add(Index(t, (t.write_off, Index.Equality())))

    @classmethod
    def default_reason(cls):
        return 'expired'

    @fields.depends('write_off', '_parent_write_off.state')
    def on_change_with_write_off_state(self, name=None):
        return self.write_off.state if self.write_off else None

    @fields.depends('write_off', '_parent_write_off.company')
    def on_change_with_currency(self, name=None):
        if self.write_off and self.write_off.company:
            return self.write_off.company.currency

    @fields.depends('product', 'write_off', '_parent_write_off.store')
    def on_change_with_lot_required(self, name=None):
        if self.product and self.write_off and self.write_off.store:
            return self.product_lot_required(self.write_off.store)
        return False

    def product_lot_required(self, store):
        to_location = store.lost_found_used
        return bool(self.product.lot_is_required(store, to_location)
            or getattr(self.product.template, 'serial_tracked', False)
            or getattr(self.product.template, 'implant', False))

    @fields.depends('lot', 'reason')
    def on_change_lot(self):
        "A recalled or expired lot is written off for that reason"
        if self.lot:
            reason = lot_reason(self.lot)
            if reason:
                self.reason = reason

    @property
    def internal_quantity(self):
        Uom = Pool().get('product.uom')
        return Uom.compute_qty(
            self.unit, self.quantity, self.product.default_uom)

    @property
    def estimated_amount(self):
        "The amount at the material's cost price (before posting)"
        if self.quantity is None:
            return None
        with without_check_access():
            price = self.product.get_multivalue(
                'cost_price', company=self.write_off.company.id)
        if price is None:
            return None
        return Decimal(str(self.internal_quantity)) * price

    def check_line(self):
        write_off = self.write_off
        if self.quantity is None or self.quantity <= 0:
            raise WriteOffError(gettext(
                    'hrp_materials.msg_write_off_quantity_positive',
                    write_off=write_off.rec_name,
                    material=self.product.rec_name))
        if self.lot and self.lot.product != self.product:
            raise WriteOffError(gettext(
                    'hrp_materials.msg_return_lot_product',
                    lot=self.lot.rec_name, material=self.product.rec_name))
        if not self.lot and self.product_lot_required(write_off.store):
            raise WriteOffError(gettext(
                    'hrp_materials.msg_write_off_lot_required',
                    write_off=write_off.rec_name,
                    material=self.product.rec_name))
        if self.reason == 'other' and not (self.note or '').strip():
            raise WriteOffError(gettext(
                    'hrp_materials.msg_write_off_note_required',
                    write_off=write_off.rec_name,
                    material=self.product.rec_name))

    @classmethod
    def check_modification(cls, mode, lines, values=None, external=False):
        super().check_modification(
            mode, lines, values=values, external=external)
        if external or mode == 'delete':
            for line in lines:
                if line.write_off.state != 'draft':
                    raise WriteOffError(gettext(
                            'hrp_materials.msg_write_off_modify',
                            write_off=line.write_off.rec_name))
        if mode in {'create', 'write'} and external and values and values.get(
                'write_off'):
            WriteOff = Pool().get('hrp.write_off')
            write_off = WriteOff(values['write_off'])
            if write_off.state != 'draft':
                raise WriteOffError(gettext(
                        'hrp_materials.msg_write_off_modify',
                        write_off=write_off.rec_name))

    @classmethod
    def copy(cls, lines, default=None):
        default = default.copy() if default is not None else {}
        for name in ['unit_cost', 'amount', 'cost_center', 'category',
                'move']:
            default.setdefault(name, None)
        return super().copy(lines, default=default)

    def get_move(self):
        "Return the stock move writing the line off its store"
        pool = Pool()
        Move = pool.get('stock.move')
        Date = pool.get('ir.date')
        write_off = self.write_off
        with Transaction().set_context(company=write_off.company.id):
            today = Date.today()
        return Move(
            company=write_off.company,
            product=self.product,
            unit=self.unit,
            quantity=self.quantity,
            lot=self.lot,
            from_location=write_off.store,
            to_location=lost_found_location(write_off.store),
            planned_date=write_off.date,
            effective_date=today,
            origin=self,
            )

    def get_cost_values(self, move):
        "Return the values costing the posted line"
        return cost_values(
            move, self.product, self.internal_quantity, self.write_off)


def lot_reason(lot):
    "The write-off reason a lot imposes: recalled, expired or None"
    Date = Pool().get('ir.date')
    if getattr(lot, 'hrp_recalled', False):
        return 'recalled'
    expiry = getattr(lot, 'shelf_life_expiration_date', None)
    if expiry and expiry < Date.today():
        return 'expired'
    return None


class Move(metaclass=PoolMeta):
    __name__ = 'stock.move'

    @classmethod
    def _get_origin(cls):
        return super()._get_origin() + ['hrp.write_off.line']
