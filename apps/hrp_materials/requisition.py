# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Department requisitions (领用申请) from the central store.

A nurse asks for materials (or applies her department's usual list); the
approval engine decides; approval reserves the stock on an internal shipment
central store → department store with lots picked first-expired-first-out;
what cannot be reserved stays on a backorder shipment and becomes a purchase
request linked to the requisition line; the store keeper picks and issues;
the requisition follows its shipments to partially issued and done."""
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, Workflow, fields,
    sequence_ordered)
from trytond.modules.product import round_price
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction, without_check_access

from .approval import URGENCIES, ApprovalWorkflowMixin
from .department import DepartmentDocumentMixin
from .mixin import IssueUnitMixin
from .exceptions import RequisitionError, RequisitionValidationError

STATES = [
    ('draft', "Draft"),
    ('submitted', "Submitted"),
    ('in_approval', "In Approval"),
    ('approved', "Approved"),
    ('partially_issued', "Partially Issued"),
    ('done', "Done"),
    ('rejected', "Rejected"),
    ('cancelled', "Cancelled"),
    ]
DRAFT = {'readonly': Eval('state') != 'draft'}


class Department(metaclass=PoolMeta):
    __name__ = 'hrp.department'

    allowed_materials = fields.Many2Many(
        'hrp.department-product.template', 'department', 'template',
        "Allowed Materials",
        context={'company': Eval('company', -1)}, depends={'company'},
        help="The materials the department may request; leave empty to "
        "allow every material.")

    def check_material_allowed(self, product):
        allowed = self.allowed_materials
        if allowed and product.template not in allowed:
            raise RequisitionValidationError(gettext(
                    'hrp_materials.msg_requisition_material_not_allowed',
                    material=product.rec_name,
                    department=self.rec_name))


class DepartmentMaterial(ModelSQL):
    __name__ = 'hrp.department-product.template'
    __string__ = "Department - Allowed Material"
    department = fields.Many2One(
        'hrp.department', "Department", required=True, ondelete='CASCADE')
    template = fields.Many2One(
        'product.template', "Material", required=True, ondelete='CASCADE')


def check_material(product, quantity, department=None):
    """Raise a RequisitionValidationError when product may not be requested
    in quantity (issue unit) by department"""
    if quantity is None or quantity <= 0:
        raise RequisitionValidationError(gettext(
                'hrp_materials.msg_requisition_quantity_positive',
                material=product.rec_name))
    if not product.active or not product.template.active:
        raise RequisitionValidationError(gettext(
                'hrp_materials.msg_requisition_material_inactive',
                material=product.rec_name))
    if product.type not in {'goods', 'assets'}:
        raise RequisitionValidationError(gettext(
                'hrp_materials.msg_requisition_material_not_goods',
                material=product.rec_name))
    if not product.template.registration_valid:
        raise RequisitionValidationError(gettext(
                'hrp_materials.msg_requisition_material_uncertified',
                material=product.rec_name,
                number=product.template.registration_number or '',
                expiry=product.template.registration_expiry))
    if department:
        department.check_material_allowed(product)


class Requisition(
        DepartmentDocumentMixin, ApprovalWorkflowMixin, Workflow, ModelSQL,
        ModelView):
    __name__ = 'hrp.requisition'
    __string__ = "Requisition"
    _approval_locks = ('stock.move',)
    _rec_name = 'number'

    company = fields.Many2One(
        'company.company', "Company", required=True,
        states={'readonly': Eval('state') != 'draft'})
    number = fields.Char("Number", readonly=True)
    request_date = fields.Date("Request Date", required=True, states=DRAFT)
    requested_by = fields.Many2One(
        'res.user', "Requested By", readonly=True)
    urgency = fields.Selection(URGENCIES, "Urgency", required=True,
        states=DRAFT)
    template = fields.Many2One(
        'hrp.requisition.template', "Template",
        domain=[('department', '=', Eval('department', -1))],
        states={'readonly': Eval('state') != 'draft'},
        help="Fill the lines with the department's usual list.")
    from_location = fields.Many2One(
        'stock.location', "From Store", required=True,
        domain=[('hrp_store_type', '=', 'central')],
        states=DRAFT,
        help="The central store (一级库) that issues the materials.")
    to_location = fields.Many2One(
        'stock.location', "To Store", required=True,
        domain=[
            ('hrp_department', '=', Eval('department', -1)),
            ('hrp_store_type', 'in', ['department', 'high_value']),
            ],
        states=DRAFT,
        help="The department store (二级库) that receives the materials.")
    description = fields.Text("Note", states=DRAFT)
    lines = fields.One2Many(
        'hrp.requisition.line', 'requisition', "Lines",
        states={
            'readonly': ((Eval('state') != 'draft')
                | ~Eval('from_location') | ~Eval('to_location')),
            })
    total_amount = fields.Function(
        fields.Numeric("Total Amount", digits=(16, 2)),
        'get_total_amount')
    shipments = fields.Function(
        fields.Many2Many('stock.shipment.internal', None, None, "Shipments"),
        'get_shipments')
    purchase_requests = fields.Function(
        fields.Many2Many('purchase.request', None, None,
            "Purchase Requests"),
        'get_purchase_requests')
    approved_at = fields.DateTime("Approved At", readonly=True)
    state = fields.Selection(STATES, "State", readonly=True, required=True,
        sort=False)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('department')
        cls._order = [('request_date', 'DESC'), ('id', 'DESC')]
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    where=t.state.in_(['submitted', 'in_approval',
                            'approved', 'partially_issued'])),
                Index(t, (t.number, Index.Similarity())),
                })
        cls.department.states = {
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            }
        cls._transitions |= {
            ('approved', 'partially_issued'),
            ('approved', 'done'),
            ('partially_issued', 'done'),
            }
        cls._buttons.update({
                'approve_step': {
                    'invisible': ~Eval('state').in_(
                        ['submitted', 'in_approval']),
                    'depends': ['state'],
                    },
                'reject_step': {
                    'invisible': ~Eval('state').in_(
                        ['submitted', 'in_approval']),
                    'depends': ['state'],
                    },
                'close': {
                    'invisible': Eval('state') != 'partially_issued',
                    'depends': ['state'],
                    },
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_urgency(cls):
        return 'normal'

    @classmethod
    def default_request_date(cls):
        return Pool().get('ir.date').today()

    @classmethod
    def default_requested_by(cls):
        return Transaction().user

    @classmethod
    def default_from_location(cls):
        Location = Pool().get('stock.location')
        stores = Location.search([('hrp_store_type', '=', 'central')],
            limit=1, order=[('id', 'ASC')])
        if stores:
            return stores[0].id

    @classmethod
    def default_to_location(cls):
        department_id = cls.default_department()
        if department_id is not None:
            store = Pool().get('hrp.department')(department_id).store
            if store:
                return store.id

    @fields.depends('department')
    def on_change_department(self):
        if self.department and self.department.store:
            self.to_location = self.department.store
        else:
            self.to_location = None

    @fields.depends('template', 'lines', 'urgency')
    def on_change_template(self):
        pool = Pool()
        Line = pool.get('hrp.requisition.line')
        if not self.template:
            return
        lines = list(self.lines or [])
        for tline in self.template.lines:
            line = Line(
                product=tline.product,
                unit=tline.product.default_uom,
                quantity=tline.quantity,
                urgency=self.urgency)
            lines.append(line)
        self.lines = lines

    def get_total_amount(self, name):
        return sum((l.amount or Decimal(0) for l in self.lines), Decimal(0))

    def get_shipments(self, name):
        return sorted({m.shipment.id for l in self.lines for m in l.moves
                if m.shipment})

    def get_purchase_requests(self, name):
        return [r.id for l in self.lines for r in l.purchase_requests]

    # Approval

    def get_approval_values(self):
        values = super().get_approval_values()
        values['urgency'] = self.urgency
        return values

    @classmethod
    @ModelView.button
    def approve_step(cls, requisitions, comment=None):
        "Approve the pending step of the requisitions (the approver's button)"
        Task = Pool().get('hrp.approval.task')
        tasks = Task.search([
                ('document', 'in', [str(r) for r in requisitions]),
                ('state', '=', 'pending'),
                ])
        if len({t.document for t in tasks}) != len(requisitions):
            raise RequisitionError(gettext(
                    'hrp_materials.msg_approval_nothing_pending'))
        Task.approve(tasks, comment=comment)

    @classmethod
    @ModelView.button_action('hrp_materials.wizard_approval_reject')
    def reject_step(cls, requisitions):
        pass

    @classmethod
    def _number_sequence(cls):
        return Pool().get('hrp.configuration')(1).requisition_sequence

    @classmethod
    def check_submit(cls, requisitions):
        "Check the lines and fix their unit cost"
        Line = Pool().get('hrp.requisition.line')
        super().check_submit(requisitions)
        for requisition in requisitions:
            if not requisition.lines:
                raise RequisitionValidationError(gettext(
                        'hrp_materials.msg_document_no_line',
                        document=requisition.rec_name))
            for line in requisition.lines:
                check_material(line.product, line.quantity,
                    requisition.department)
        lines = [l for r in requisitions for l in r.lines]
        for line in lines:
            line.unit_price = line.current_unit_price()
        Line.save(lines)

    @classmethod
    @Workflow.transition('approved')
    def approve(cls, requisitions):
        cls.write(requisitions, {'approved_at': dt.datetime.now()})
        # The approval is the right to the issue: the reservation is made
        # for the requester or approver without their access to the stock
        with without_check_access():
            cls.issue(requisitions)

    @classmethod
    def _cancel(cls, requisitions):
        "Release the reservations: cancel the shipments not yet left"
        pool = Pool()
        Shipment = pool.get('stock.shipment.internal')
        super()._cancel(requisitions)
        shipments = {s for r in requisitions for s in r.shipments}
        for shipment in shipments:
            if shipment.state in {'packed', 'shipped', 'done'}:
                raise RequisitionError(gettext(
                        'hrp_materials.msg_requisition_cancel_issued',
                        requisition=shipment.reference or '',
                        shipment=shipment.rec_name))
        with Transaction().set_context(_hrp_requisition_cancel=True):
            Shipment.cancel(list(shipments))

    @classmethod
    @ModelView.button
    def close(cls, requisitions):
        """Give up what is still backordered: cancel the waiting shipments
        and finish the requisitions"""
        pool = Pool()
        Shipment = pool.get('stock.shipment.internal')
        shipments = [s for r in requisitions for s in r.shipments
            if s.state in {'draft', 'waiting'}]
        Shipment.cancel(shipments)
        cls.process(requisitions)

    # Issue

    @classmethod
    def _get_shipment(cls, requisition):
        Shipment = Pool().get('stock.shipment.internal')
        return Shipment(
            company=requisition.company,
            from_location=requisition.from_location,
            to_location=requisition.to_location,
            planned_date=requisition.request_date,
            planned_start_date=requisition.request_date,
            reference=requisition.number,
            moves=[])

    @classmethod
    def issue(cls, requisitions):
        """Reserve the approved quantities on internal shipments (lots picked
        first-expired-first-out); what cannot be reserved goes to a
        backorder shipment and becomes a purchase request"""
        pool = Pool()
        Move = pool.get('stock.move')
        Shipment = pool.get('stock.shipment.internal')
        Line = pool.get('hrp.requisition.line')
        # Concurrent reservations see each other's (lock_for_approval)
        Move.lock()
        shipments = []
        for requisition in requisitions:
            shipment = cls._get_shipment(requisition)
            moves = []
            for line in requisition.lines:
                if line.quantity and line.quantity > 0:
                    moves.append(line.get_move())
            shipment.moves = moves
            shipments.append(shipment)
        Shipment.save(shipments)
        Shipment.wait(shipments)
        Shipment.assign_try(shipments)
        shipments = Shipment.browse(shipments)
        backorders = []
        shortfall = defaultdict(float)
        for shipment in shipments:
            unassigned = [m for m in shipment.moves
                if m.state in {'draft', 'staging'}]
            if not unassigned:
                continue
            for move in unassigned:
                shortfall[move.origin] += move.quantity
            if len(unassigned) < len(shipment.moves):
                backorder, = Shipment.copy([shipment], default={
                        'moves': None,
                        'number': None,
                        })
                Move.write(unassigned, {'shipment': str(backorder)})
                backorders.append(backorder)
        if backorders:
            Shipment.wait(backorders)
            partial = [s for s in shipments if s.state == 'waiting']
            if partial:
                Shipment.assign(Shipment.browse(partial))
        if shortfall:
            Line.create_purchase_requests(shortfall)
        return shipments + backorders

    @classmethod
    def process(cls, requisitions):
        "Follow the shipments: partially issued, or done when all is issued"
        partially, done = [], []
        for requisition in cls.browse(requisitions):
            if requisition.state not in {'approved', 'partially_issued'}:
                continue
            states = {s.state for s in requisition.shipments}
            if not states or states <= {'done', 'cancelled'}:
                done.append(requisition)
            elif 'done' in states and requisition.state == 'approved':
                partially.append(requisition)
        if partially:
            cls.partially_issue(partially)
        if done:
            cls.do(done)

    @classmethod
    @Workflow.transition('partially_issued')
    def partially_issue(cls, requisitions):
        pass

    @classmethod
    @Workflow.transition('done')
    def do(cls, requisitions):
        pass

    @classmethod
    def copy(cls, requisitions, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('approved_at', None)
        default.setdefault('request_date', cls.default_request_date())
        default.setdefault('requested_by', Transaction().user)
        return super().copy(requisitions, default=default)


class RequisitionLine(
        IssueUnitMixin, sequence_ordered(), ModelSQL, ModelView):
    __name__ = 'hrp.requisition.line'
    __string__ = "Requisition Line"

    requisition = fields.Many2One(
        'hrp.requisition', "Requisition", required=True, ondelete='CASCADE',
        states={'readonly': Eval('requisition_state') != 'draft'})
    product = fields.Many2One(
        'product.product', "Material", required=True, ondelete='RESTRICT',
        domain=[('type', 'in', ['goods', 'assets'])],
        states={'readonly': Eval('requisition_state') != 'draft'},
        context={'company': Eval('company', -1)},
        depends={'company'})
    unit = fields.Many2One(
        'product.uom', "Unit", required=True, ondelete='RESTRICT',
        readonly=True, help="The issue unit of the material.")
    quantity = fields.Float(
        "Quantity", digits='unit', required=True,
        states={'readonly': Eval('requisition_state') != 'draft'})
    urgency = fields.Selection(URGENCIES, "Urgency", required=True,
        states={'readonly': Eval('requisition_state') != 'draft'})
    note = fields.Char("Note",
        states={'readonly': Eval('requisition_state') != 'draft'})
    unit_price = fields.Numeric(
        "Unit Cost", digits=(16, 4), readonly=True,
        help="The unit cost of the material when the requisition was "
        "submitted.")
    amount = fields.Function(
        fields.Numeric("Amount", digits=(16, 2)), 'get_amount')
    moves = fields.One2Many('stock.move', 'origin', "Moves", readonly=True)
    purchase_requests = fields.One2Many(
        'purchase.request', 'origin', "Purchase Requests", readonly=True)
    reserved_quantity = fields.Function(
        fields.Float("Reserved", digits='unit'), 'get_quantities')
    issued_quantity = fields.Function(
        fields.Float("Issued", digits='unit'), 'get_quantities')
    backorder_quantity = fields.Function(
        fields.Float("Backordered", digits='unit'), 'get_quantities')
    company = fields.Function(
        fields.Many2One('company.company', "Company"),
        'on_change_with_company')
    requisition_state = fields.Function(
        fields.Selection(STATES, "Requisition State"),
        'on_change_with_requisition_state')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('requisition')

    @classmethod
    def default_urgency(cls):
        return 'normal'

    @fields.depends('requisition', '_parent_requisition.company')
    def on_change_with_company(self, name=None):
        return self.requisition.company if self.requisition else None

    @fields.depends('requisition', '_parent_requisition.state')
    def on_change_with_requisition_state(self, name=None):
        return self.requisition.state if self.requisition else None

    @fields.depends('product', 'quantity', 'unit_price')
    def get_amount(self, name=None):
        price = self.unit_price
        if price is None and self.product:
            price = self.current_unit_price()
        if price is None or self.quantity is None:
            return None
        return (price * Decimal(str(self.quantity))).quantize(Decimal('0.01'))

    def current_unit_price(self):
        price = self.product.cost_price if self.product else None
        return round_price(price) if price is not None else None

    @classmethod
    def get_quantities(cls, lines, names):
        result = {n: {l.id: 0.0 for l in lines} for n in names}
        for line in lines:
            for move in line.moves:
                if move.to_location != line.requisition.to_location:
                    continue
                if move.state == 'done':
                    key = 'issued_quantity'
                elif move.state == 'assigned':
                    key = 'reserved_quantity'
                elif move.state in {'draft', 'staging'}:
                    key = 'backorder_quantity'
                else:
                    continue
                if key in result:
                    result[key][line.id] += move.internal_quantity
        return result

    def get_rec_name(self, name):
        return (f'{self.requisition.rec_name} / {self.product.rec_name}'
            if self.product else self.requisition.rec_name)

    def get_move(self):
        Move = Pool().get('stock.move')
        requisition = self.requisition
        return Move(
            company=requisition.company,
            from_location=requisition.from_location,
            to_location=requisition.to_location,
            product=self.product,
            unit=self.unit,
            quantity=self.quantity,
            planned_date=requisition.request_date,
            origin=self,
            )

    @classmethod
    def create_purchase_requests(cls, shortfall):
        """Create a purchase request for each line's shortfall
        ({line: quantity})"""
        pool = Pool()
        Request = pool.get('purchase.request')
        Date = pool.get('ir.date')
        today = Date.today()
        requests = []
        for line, quantity in shortfall.items():
            product = line.product
            if not quantity or not product.purchasable:
                continue
            requisition = line.requisition
            warehouse = requisition.from_location.warehouse
            requests.append(Request(
                    product=product,
                    description=line.get_purchase_description(),
                    quantity=quantity,
                    unit=line.unit,
                    computed_quantity=quantity,
                    computed_unit=line.unit,
                    purchase_date=today,
                    supply_date=today,
                    warehouse=warehouse,
                    company=requisition.company,
                    origin=line,
                    state='draft'))
        Request.save(requests)
        return requests

    def get_purchase_description(self):
        return gettext('hrp_materials.msg_requisition_purchase_description',
            requisition=self.requisition.rec_name,
            department=self.requisition.department.rec_name,
            material=self.product.rec_name)

    @classmethod
    def validate_fields(cls, lines, field_names):
        super().validate_fields(lines, field_names)
        if field_names & {'quantity', 'product'}:
            for line in lines:
                if line.quantity is not None and line.quantity <= 0:
                    raise RequisitionValidationError(gettext(
                            'hrp_materials.msg_requisition_quantity_positive',
                            material=line.product.rec_name))

    @classmethod
    def copy(cls, lines, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('moves', None)
        default.setdefault('purchase_requests', None)
        default.setdefault('unit_price', None)
        return super().copy(lines, default=default)


class RequisitionTemplate(DeactivableMixin, ModelSQL, ModelView):
    "A department's usual list (常用模板)"
    __name__ = 'hrp.requisition.template'
    __string__ = "Requisition Template"

    name = fields.Char("Name", required=True)
    department = fields.Many2One(
        'hrp.department', "Department", required=True, ondelete='CASCADE')
    lines = fields.One2Many(
        'hrp.requisition.template.line', 'template', "Lines")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('department')

    @classmethod
    def default_department(cls):
        departments = Pool().get('res.user').get_hrp_departments()
        if departments:
            return departments[0]


class RequisitionTemplateLine(sequence_ordered(), ModelSQL, ModelView):
    __name__ = 'hrp.requisition.template.line'
    __string__ = "Requisition Template Line"

    template = fields.Many2One(
        'hrp.requisition.template', "Template", required=True,
        ondelete='CASCADE')
    product = fields.Many2One(
        'product.product', "Material", required=True, ondelete='CASCADE',
        domain=[('type', 'in', ['goods', 'assets'])])
    quantity = fields.Float("Quantity", required=True,
        domain=[('quantity', '>', 0)])

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('template')


class Move(metaclass=PoolMeta):
    __name__ = 'stock.move'

    @classmethod
    def _get_origin(cls):
        return super()._get_origin() + ['hrp.requisition.line']


class ShipmentInternal(metaclass=PoolMeta):
    __name__ = 'stock.shipment.internal'

    @classmethod
    def _hrp_requisitions(cls, shipments):
        Line = Pool().get('hrp.requisition.line')
        return list({m.origin.requisition for s in shipments
                for m in s.moves if isinstance(m.origin, Line)})

    @classmethod
    def do(cls, shipments):
        super().do(shipments)
        requisitions = cls._hrp_requisitions(shipments)
        if requisitions:
            Pool().get('hrp.requisition').process(requisitions)

    @classmethod
    def cancel(cls, shipments):
        super().cancel(shipments)
        if Transaction().context.get('_hrp_requisition_cancel'):
            return
        requisitions = [r for r in cls._hrp_requisitions(shipments)
            if r.state in {'approved', 'partially_issued'}]
        if requisitions:
            Pool().get('hrp.requisition').process(requisitions)


class PurchaseRequest(metaclass=PoolMeta):
    __name__ = 'purchase.request'

    @classmethod
    def _get_origin(cls):
        return super()._get_origin() | {'hrp.requisition.line'}
