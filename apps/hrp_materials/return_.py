# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Returns (退库) from a department store to the central store.

A department sends back a wrong item, a lot close to expiry or a defective
one; the return is approved through the approval engine and becomes an
internal shipment department store → central store that the store keeper
receives."""
from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, Workflow, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval
from trytond.transaction import Transaction

from .approval import ApprovalWorkflowMixin
from .department import DepartmentDocumentMixin
from .mixin import IssueUnitMixin
from .exceptions import ReturnError

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
    ('wrong_item', "Wrong Item"),
    ('near_expiry', "Near Expiry"),
    ('defect', "Defect"),
    ('surplus', "Surplus"),
    ('other', "Other"),
    ]
DRAFT = {'readonly': Eval('state') != 'draft'}


class Return(
        DepartmentDocumentMixin, ApprovalWorkflowMixin, Workflow, ModelSQL,
        ModelView):
    __name__ = 'hrp.return'
    __string__ = "Return"
    _approval_locks = ('stock.move',)
    _rec_name = 'number'

    company = fields.Many2One(
        'company.company', "Company", required=True, states=DRAFT)
    number = fields.Char("Number", readonly=True)
    date = fields.Date("Date", required=True, states=DRAFT)
    reason = fields.Selection(REASONS, "Reason", required=True, states=DRAFT)
    description = fields.Text(
        "Description", states={
            'readonly': Eval('state') != 'draft',
            'required': Eval('reason').in_(['defect', 'other']),
            },
        help="What is wrong: required for a defect or another reason.")
    from_location = fields.Many2One(
        'stock.location', "From Store", required=True,
        domain=[
            ('hrp_department', '=', Eval('department', -1)),
            ('hrp_store_type', 'in', ['department', 'high_value']),
            ],
        states=DRAFT)
    to_location = fields.Many2One(
        'stock.location', "To Store", required=True,
        domain=[('hrp_store_type', '=', 'central')],
        states=DRAFT)
    lines = fields.One2Many(
        'hrp.return.line', 'return_', "Lines",
        states={
            'readonly': ((Eval('state') != 'draft')
                | ~Eval('from_location') | ~Eval('to_location')),
            })
    total_amount = fields.Function(
        fields.Numeric("Total Amount", digits=(16, 2)), 'get_total_amount')
    shipment = fields.Many2One(
        'stock.shipment.internal', "Shipment", readonly=True)
    state = fields.Selection(STATES, "State", readonly=True, required=True,
        sort=False)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('department')
        cls._order = [('date', 'DESC'), ('id', 'DESC')]
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
    def default_reason(cls):
        return 'wrong_item'

    @classmethod
    def default_to_location(cls):
        return Pool().get('hrp.requisition').default_from_location()

    @classmethod
    def default_from_location(cls):
        return Pool().get('hrp.requisition').default_to_location()

    @fields.depends('department')
    def on_change_department(self):
        if self.department and self.department.store:
            self.from_location = self.department.store
        else:
            self.from_location = None

    def get_total_amount(self, name):
        return sum((l.amount or 0 for l in self.lines), 0)

    @classmethod
    def _number_sequence(cls):
        return Pool().get('hrp.configuration')(1).return_sequence

    @classmethod
    def check_submit(cls, returns):
        super().check_submit(returns)
        for return_ in returns:
            if not return_.lines:
                raise ReturnError(gettext(
                        'hrp_materials.msg_document_no_line',
                        document=return_.rec_name))
            if return_.reason in {'defect', 'other'} and not (
                    return_.description or '').strip():
                raise ReturnError(gettext(
                        'hrp_materials.msg_return_description_required',
                        return_=return_.rec_name))
            for line in return_.lines:
                line.check_returnable()

    @classmethod
    @Workflow.transition('approved')
    def approve(cls, returns):
        "Ship the approved returns back to the central store"
        pool = Pool()
        Shipment = pool.get('stock.shipment.internal')
        Move = pool.get('stock.move')
        # Concurrent reservations see each other's (lock_for_approval)
        Move.lock()
        shipments = []
        for return_ in returns:
            shipment = Shipment(
                company=return_.company,
                from_location=return_.from_location,
                to_location=return_.to_location,
                planned_date=return_.date,
                planned_start_date=return_.date,
                reference=return_.number,
                moves=[l.get_move() for l in return_.lines])
            return_.shipment = shipment
            shipments.append(shipment)
        Shipment.save(shipments)
        cls.save(returns)
        Shipment.wait(shipments)
        Shipment.assign_try(shipments)
        for shipment in Shipment.browse(shipments):
            if shipment.state != 'assigned':
                raise ReturnError(gettext(
                        'hrp_materials.msg_return_not_in_stock',
                        return_=shipment.reference,
                        store=shipment.from_location.rec_name))

    @classmethod
    @Workflow.transition('done')
    def do(cls, returns):
        pass

    @classmethod
    def _cancel(cls, returns):
        pool = Pool()
        Shipment = pool.get('stock.shipment.internal')
        super()._cancel(returns)
        shipments = [r.shipment for r in returns if r.shipment]
        for shipment in shipments:
            if shipment.state in {'packed', 'shipped', 'done'}:
                raise ReturnError(gettext(
                        'hrp_materials.msg_return_cancel_shipped',
                        return_=shipment.reference or '',
                        shipment=shipment.rec_name))
        Shipment.cancel(shipments)

    @classmethod
    def copy(cls, returns, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('shipment', None)
        return super().copy(returns, default=default)


class ReturnLine(IssueUnitMixin, ModelSQL, ModelView):
    __name__ = 'hrp.return.line'
    __string__ = "Return Line"

    return_ = fields.Many2One(
        'hrp.return', "Return", required=True, ondelete='CASCADE',
        states={'readonly': Eval('return_state') != 'draft'})
    product = fields.Many2One(
        'product.product', "Material", required=True, ondelete='RESTRICT',
        domain=[('type', 'in', ['goods', 'assets'])],
        states={'readonly': Eval('return_state') != 'draft'})
    lot = fields.Many2One(
        'stock.lot', "Lot", ondelete='RESTRICT',
        domain=[('product', '=', Eval('product', -1))],
        states={
            'readonly': Eval('return_state') != 'draft',
            'required': Bool(Eval('lot_required')),
            })
    lot_required = fields.Function(
        fields.Boolean("Lot Required"), 'on_change_with_lot_required')
    unit = fields.Many2One(
        'product.uom', "Unit", required=True, readonly=True,
        ondelete='RESTRICT')
    quantity = fields.Float(
        "Quantity", digits='unit', required=True,
        states={'readonly': Eval('return_state') != 'draft'})
    amount = fields.Function(
        fields.Numeric("Amount", digits=(16, 2)), 'get_amount')
    moves = fields.One2Many('stock.move', 'origin', "Moves", readonly=True)
    return_state = fields.Function(
        fields.Selection(STATES, "Return State"),
        'on_change_with_return_state')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('return_')

    @fields.depends('return_', '_parent_return_.state')
    def on_change_with_return_state(self, name=None):
        return self.return_.state if self.return_ else None

    @fields.depends('product', 'return_', '_parent_return_.from_location',
        '_parent_return_.to_location')
    def on_change_with_lot_required(self, name=None):
        if self.product:
            return bool(self.product.lot_is_required(
                    self.return_.from_location if self.return_ else None,
                    self.return_.to_location if self.return_ else None))
        return False

    def get_amount(self, name):
        price = self.product.cost_price
        if price is None or self.quantity is None:
            return None
        return price * type(price)(str(self.quantity))

    def check_returnable(self):
        if self.quantity is None or self.quantity <= 0:
            raise ReturnError(gettext(
                    'hrp_materials.msg_requisition_quantity_positive',
                    material=self.product.rec_name))
        if self.lot and self.lot.product != self.product:
            raise ReturnError(gettext(
                    'hrp_materials.msg_return_lot_product',
                    lot=self.lot.rec_name, material=self.product.rec_name))

    def get_move(self):
        Move = Pool().get('stock.move')
        return_ = self.return_
        return Move(
            company=return_.company,
            from_location=return_.from_location,
            to_location=return_.to_location,
            product=self.product,
            lot=self.lot,
            unit=self.unit,
            quantity=self.quantity,
            planned_date=return_.date,
            origin=self)


class Move(metaclass=PoolMeta):
    __name__ = 'stock.move'

    @classmethod
    def _get_origin(cls):
        return super()._get_origin() + ['hrp.return.line']


class ShipmentInternal(metaclass=PoolMeta):
    __name__ = 'stock.shipment.internal'

    @classmethod
    def do(cls, shipments):
        super().do(shipments)
        Return = Pool().get('hrp.return')
        returns = Return.search([
                ('shipment', 'in', [s.id for s in shipments]),
                ('state', '=', 'approved'),
                ])
        if returns:
            Return.do(returns)
