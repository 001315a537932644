# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Receiving (验收入库) against the purchase order number.

The store keeper picks the order, then scans the delivered units with a
keyboard-wedge scanner: every scan (GS1-128, GS1 DataMatrix, HIBC or China's
MA code, parsed by ``barcode.py``) resolves the material, lot, expiry and
serial and passes the acceptance checks (on the order, expiry, remaining
shelf life, registration certificate, supplier licence and authorisation,
serial not received before, quantity within the order's tolerance) before an
accepted line is added; a failed check raises a translated error and adds
nothing.  Refused goods are recorded as rejected lines with a reason.

"Receive" re-checks every line and, in one transaction, creates the lots,
moves the purchase lines' pending moves onto a supplier shipment which is
received and done (into the central store, or straight into the department
store for direct-delivery materials) and cancels the pending quantity of the
rejected lines: the purchase shows a shipment exception for procurement and
the rejections are listed for the supplier (returned to the supplier)."""
import datetime as dt
from collections import defaultdict

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Workflow, fields
from trytond.modules.product import round_price
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval, Id, If
from trytond.rpc import RPC
from trytond.transaction import Transaction, without_check_access

from .configuration import get_configuration
from .exceptions import ConfigurationValidationError, ReceiptError
from .purchase import check_qualification
from .mixin import IssueUnitMixin

STATES = [
    ('draft', "Draft"),
    ('done', "Received"),
    ('cancelled', "Cancelled"),
    ]
LINE_STATES = [
    ('accepted', "Accepted"),
    ('rejected', "Rejected"),
    ]
REJECT_REASONS = [
    (None, ""),
    ('damaged', "Damaged"),
    ('shelf_life', "Expired or Short Shelf Life"),
    ('not_ordered', "Not Ordered"),
    ('over_delivery', "Over-Delivery"),
    ('uncertified', "Uncertified"),
    ('other', "Other"),
    ]
KINDS = [
    ('purchase', "Purchase Order"),
    ('consignment', "Consignment"),
    ]
SCAN_MODES = [
    ('accept', "Accept"),
    ('reject', "Reject"),
    ]
STORE_TYPES = ['central', 'department', 'high_value']
DEFAULT_MIN_SHELF_LIFE_DAYS = 90
DRAFT = {'readonly': Eval('state') != 'draft'}


def _format_date(date):
    return Pool().get('ir.lang').get().strftime(date)


def _format_quantity(quantity, unit):
    return Pool().get('ir.lang').get().format_number_symbol(
        quantity, unit, digits=unit.digits)


class Configuration(metaclass=PoolMeta):
    __name__ = 'hrp.configuration'

    receipt_sequence = fields.Many2One(
        'ir.sequence', "Receipt Sequence", required=True,
        domain=[('sequence_type', '=', Id(
                    'hrp_materials', 'sequence_type_receipt'))])
    receipt_min_shelf_life_days = fields.Integer(
        "Minimum Shelf Life on Receipt", required=True,
        help="Deliveries whose remaining shelf life is shorter than this "
        "many days are refused (a material may set its own minimum).")
    receipt_tolerance = fields.Float(
        "Over-Delivery Tolerance (%)", digits=(16, 2), required=True,
        help="How much more than ordered may be received, in percent of "
        "the ordered quantity.")

    @classmethod
    def default_receipt_sequence(cls):
        return cls._default_sequence('sequence_receipt')

    @classmethod
    def default_receipt_min_shelf_life_days(cls):
        return DEFAULT_MIN_SHELF_LIFE_DAYS

    @classmethod
    def default_receipt_tolerance(cls):
        return 0.

    @classmethod
    def validate_fields(cls, records, field_names):
        super().validate_fields(records, field_names)
        for record in records:
            if (record.receipt_min_shelf_life_days is not None
                    and record.receipt_min_shelf_life_days < 0):
                raise ConfigurationValidationError(gettext(
                        'hrp_materials.msg_receipt_min_shelf_life_negative'))
            if (record.receipt_tolerance is not None
                    and record.receipt_tolerance < 0):
                raise ConfigurationValidationError(gettext(
                        'hrp_materials.msg_receipt_tolerance_negative'))


class Template(metaclass=PoolMeta):
    __name__ = 'product.template'

    direct_delivery = fields.Boolean(
        "Direct Delivery",
        help="Received straight into the requesting department's store "
        "instead of the central store.")
    min_shelf_life_days = fields.Integer(
        "Minimum Shelf Life on Receipt",
        help="The remaining shelf life in days a delivery of this material "
        "must have; empty for the configured minimum.")

    @classmethod
    def default_direct_delivery(cls):
        return False

    @classmethod
    def validate_fields(cls, templates, field_names):
        super().validate_fields(templates, field_names)
        if 'min_shelf_life_days' in field_names:
            for template in templates:
                if (template.min_shelf_life_days is not None
                        and template.min_shelf_life_days < 0):
                    raise ConfigurationValidationError(gettext(
                            'hrp_materials.'
                            'msg_receipt_min_shelf_life_negative'))

    @property
    def receipt_min_shelf_life_days(self):
        if self.min_shelf_life_days is not None:
            return self.min_shelf_life_days
        days = get_configuration().receipt_min_shelf_life_days
        return DEFAULT_MIN_SHELF_LIFE_DAYS if days is None else days


class Receipt(Workflow, ModelSQL, ModelView):
    __name__ = 'hrp.receipt'
    __string__ = "Receipt"
    _rec_name = 'number'

    number = fields.Char("Number", readonly=True)
    company = fields.Many2One(
        'company.company', "Company", required=True,
        states={
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            })
    kind = fields.Selection(
        KINDS, "Kind", required=True,
        states={
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            },
        help="Purchase order: goods bought, received against their order.\n"
        "Consignment: units a supplier keeps in a store and still owns "
        "until they are used (寄售); received without order.")
    purchase = fields.Many2One(
        'purchase.purchase', "Purchase Order",
        domain=[
            ('company', '=', Eval('company', -1)),
            If(Eval('state') == 'draft',
                ('state', '=', 'processing'),
                ()),
            ],
        states={
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            'required': Eval('kind') == 'purchase',
            'invisible': Eval('kind') != 'purchase',
            },
        help="The order the goods are delivered against (scan or type its "
        "number).")
    supplier = fields.Many2One(
        'party.party', "Supplier", ondelete='RESTRICT',
        context={
            'company': Eval('company', -1),
            },
        states={
            'readonly': ((Eval('kind') != 'consignment')
                | (Eval('state') != 'draft') | Eval('lines', [0])),
            'required': Eval('kind') == 'consignment',
            },
        depends={'company'},
        help="The supplier who delivers (and, for consignment, owns the "
        "units until they are used).")
    store = fields.Many2One(
        'stock.location', "Store", ondelete='RESTRICT',
        domain=[('hrp_store_type', 'in', ['high_value', 'department'])],
        states={
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            'required': Eval('kind') == 'consignment',
            'invisible': Eval('kind') != 'consignment',
            },
        help="The store the consigned units are kept in (the operating "
        "theatre's high-value store).")
    warehouse = fields.Many2One(
        'stock.location', "Warehouse", readonly=True, ondelete='RESTRICT',
        domain=[('type', '=', 'warehouse')])
    scan = fields.Function(
        fields.Char(
            "Scan",
            states={
                'readonly': (Eval('state') != 'draft') | ~If(
                    Eval('kind') == 'consignment',
                    Bool(Eval('supplier')) & Bool(Eval('store')),
                    Bool(Eval('purchase'))),
                },
            help="Scan the unit's UDI barcode (GS1, HIBC or MA code); "
            "each scan adds or counts one unit."),
        'get_scan', setter='set_scan')
    scan_mode = fields.Function(
        fields.Selection(
            SCAN_MODES, "Scan Mode", states=DRAFT,
            help="Accept the scanned units after the checks, or record "
            "them as rejected with the reason."),
        'get_scan_mode', setter='set_scan')
    scan_reject_reason = fields.Function(
        fields.Selection(
            REJECT_REASONS, "Rejection Reason",
            states={
                'readonly': Eval('state') != 'draft',
                'invisible': Eval('scan_mode') != 'reject',
                'required': Eval('scan_mode') == 'reject',
                }),
        'get_scan', setter='set_scan')
    lines = fields.One2Many(
        'hrp.receipt.line', 'receipt', "Lines",
        states={
            'readonly': (Eval('state') != 'draft') | ~If(
                Eval('kind') == 'consignment',
                Bool(Eval('supplier')) & Bool(Eval('store')),
                Bool(Eval('purchase'))),
            })
    note = fields.Text("Note", states=DRAFT)
    shipment = fields.Many2One(
        'stock.shipment.in', "Supplier Shipment", readonly=True,
        ondelete='RESTRICT')
    received_by = fields.Many2One('res.user', "Received By", readonly=True)
    received_at = fields.DateTime("Received At", readonly=True)
    cancelled_by = fields.Many2One('res.user', "Cancelled By", readonly=True)
    cancel_reason = fields.Text("Cancel Reason", readonly=True)
    state = fields.Selection(
        STATES, "State", readonly=True, required=True, sort=False)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    where=t.state == 'draft'),
                Index(t, (t.number, Index.Similarity())),
                Index(t, (t.purchase, Index.Equality())),
                })
        cls._order = [('id', 'DESC')]
        cls._transitions |= {
            ('draft', 'done'),
            ('draft', 'cancelled'),
            }
        cls._buttons.update({
                'receive': {
                    'invisible': Eval('state') != 'draft',
                    'readonly': ~Eval('lines', []),
                    'depends': ['state', 'lines'],
                    },
                'cancel': {
                    'invisible': Eval('state') != 'draft',
                    'depends': ['state'],
                    },
                })
        cls.__rpc__.update({
                'scan_barcode': RPC(readonly=False, instantiate=0),
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_state(cls):
        return 'draft'

    @classmethod
    def default_kind(cls):
        return 'purchase'

    @classmethod
    def default_scan_mode(cls):
        return 'accept'

    def get_scan(self, name):
        return None

    def get_scan_mode(self, name):
        return 'accept'

    @classmethod
    def set_scan(cls, receipts, name, value):
        pass

    @fields.depends('purchase', 'kind')
    def on_change_purchase(self):
        if self.kind != 'purchase':
            return
        if self.purchase:
            self.supplier = self.purchase.party
            self.warehouse = self.purchase.warehouse
        else:
            self.supplier = self.warehouse = None

    @fields.depends('kind', 'purchase', 'store')
    def on_change_kind(self):
        if self.kind == 'consignment':
            self.purchase = None
        else:
            self.store = None
        self.on_change_purchase()
        self.on_change_store()

    @fields.depends('store', 'kind')
    def on_change_store(self):
        if self.kind == 'consignment':
            self.warehouse = self.store.warehouse if self.store else None

    @fields.depends(
        'scan', 'scan_mode', 'scan_reject_reason', 'state', 'kind',
        'purchase', 'supplier', 'store', 'company', 'warehouse', 'lines')
    def on_change_scan(self):
        "A scan (one line of text ending in Enter) adds or counts a unit"
        text = (self.scan or '').strip()
        if not text:
            return
        if self.scan_mode == 'reject':
            self.add_scan(
                text, state='rejected', reason=self.scan_reject_reason)
        else:
            self.add_scan(text)
        self.scan = None

    @classmethod
    def preprocess_values(cls, mode, values):
        pool = Pool()
        Purchase = pool.get('purchase.purchase')
        Location = pool.get('stock.location')
        values = super().preprocess_values(mode, values)
        if values.get('purchase'):
            purchase = Purchase(values['purchase'])
            values['supplier'] = purchase.party.id
            values['warehouse'] = purchase.warehouse.id
        elif values.get('store'):
            warehouse = Location(values['store']).warehouse
            values['warehouse'] = warehouse.id if warehouse else None
        return values

    def check_scan_ready(self):
        "Refuse a scan before the receipt knows what it receives against"
        if not self.purchase:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_purchase_required'))

    @classmethod
    def create(cls, vlist):
        receipts = super().create(vlist)
        sequence = get_configuration().receipt_sequence
        to_number = [r for r in receipts if not r.number]
        if to_number:
            for receipt in to_number:
                receipt.number = sequence.get()
            cls.save(to_number)
        return receipts

    @classmethod
    def check_modification(cls, mode, receipts, values=None, external=False):
        super().check_modification(
            mode, receipts, values=values, external=external)
        if mode == 'delete' or (mode == 'write' and external):
            for receipt in receipts:
                if receipt.state != 'draft':
                    raise ReceiptError(gettext(
                            'hrp_materials.msg_receipt_modify',
                            receipt=receipt.rec_name))

    @classmethod
    def copy(cls, receipts, default=None):
        default = default.copy() if default is not None else {}
        for name in ['number', 'shipment', 'received_by', 'received_at',
                'cancelled_by', 'cancel_reason', 'lines']:
            default.setdefault(name, None)
        return super().copy(receipts, default=default)

    # Scanning

    @classmethod
    def scan_barcode(cls, receipt, text, quantity=None, reject_reason=None,
            note=None):
        """Scan text into the draft receipt: add (or count) an accepted line
        after the acceptance checks, or a rejected line with reject_reason.
        Return the id of the line."""
        if isinstance(receipt, int):
            receipt = cls(receipt)
        elif isinstance(receipt, (list, tuple)):
            receipt, = receipt
        if reject_reason:
            line = receipt.add_scan(
                text, quantity=quantity, state='rejected',
                reason=reject_reason, note=note)
        else:
            line = receipt.add_scan(text, quantity=quantity)
        line.receipt = receipt
        line.save()
        return line.id

    def add_scan(self, text, quantity=None, state='accepted', reason=None,
            note=None):
        """Parse the scan, check it and add it to the lines (in memory):
        return the new or counted line; raise a translated error (and
        change nothing) when a check fails"""
        pool = Pool()
        Line = pool.get('hrp.receipt.line')
        from .barcode import find_product, parse
        if self.state not in {None, 'draft'}:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_modify',
                    receipt=self.rec_name))
        self.check_scan_ready()
        scan = parse(text)
        product = find_product(scan)
        if quantity is None:
            quantity = scan.quantity or 1
        lines = list(self.lines or [])
        template = product.template
        serial = scan.serial or None
        if template.serial_tracked and serial is None and state == 'accepted':
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_serial_required',
                    material=product.rec_name, barcode=scan.raw))
        # the checks look at the lines of the same material only
        same = [l for l in lines if l.product == product]
        counted = None
        if not serial:
            for line in same:
                if (line.product == product
                        and (line.lot_number or None) == (scan.lot or None)
                        and line.expiry == scan.expiry
                        and not line.serial
                        and line.state == state
                        and (state == 'accepted'
                            or line.reject_reason == reason)):
                    counted = line
                    break
        if counted:
            line = counted
            line.quantity = (line.quantity or 0) + quantity
        else:
            line = Line(
                product=product,
                unit=product.default_uom,
                quantity=quantity,
                lot_number=scan.lot,
                expiry=scan.expiry,
                production_date=scan.production_date,
                serial=serial,
                barcode=scan.raw,
                state=state,
                reject_reason=reason if state == 'rejected' else None,
                note=note)
            line.purchase_line = line.find_purchase_line(self, same)
            line.to_location = line.find_destination(self)
            lines.append(line)
            same.append(line)
        if state == 'accepted':
            line.check_acceptance(self, same)
        else:
            line.check_rejection(self)
        self.lines = lines
        return line

    # Receiving

    @classmethod
    @ModelView.button
    @Workflow.transition('done')
    def receive(cls, receipts):
        """Check every line again and put the accepted goods into stock
        through a supplier shipment; cancel the rejected quantities"""
        pool = Pool()
        Purchase = pool.get('purchase.purchase')
        with without_check_access():
            Purchase.lock([r.purchase for r in receipts if r.purchase])
            receipts = cls.browse(receipts)
            for receipt in receipts:
                receipt.check_receive()
            for receipt in receipts:
                receipt._receive()
        cls.write(receipts, {
                'received_by': Transaction().user,
                'received_at': dt.datetime.now(),
                })

    def check_receive(self):
        if self.purchase and self.purchase.state != 'processing':
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_purchase_state',
                    purchase=self.purchase.rec_name))
        if not self.lines:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_document_no_line',
                    document=self.rec_name))
        lines = list(self.lines)
        for line in lines:
            if line.state == 'accepted':
                line.check_acceptance(self, lines, final=True)
            else:
                line.check_rejection(self)

    def _receive(self):
        pool = Pool()
        Move = pool.get('stock.move')
        Shipment = pool.get('stock.shipment.in')
        Line = pool.get('hrp.receipt.line')
        Uom = pool.get('product.uom')
        Date = pool.get('ir.date')
        with Transaction().set_context(company=self.company.id):
            today = Date.today()

        accepted = [l for l in self.lines if l.state == 'accepted']
        rejected = [l for l in self.lines if l.state == 'rejected']
        lots = Line.get_lots(accepted)

        # take the quantities off the purchase lines' pending moves
        pending = {}
        for line in self.lines:
            pline = line.purchase_line
            if pline and pline not in pending:
                pending[pline] = [m for m in pline.moves
                    if m.state == 'draft' and not m.shipment]
        to_delete, to_save = [], []

        def consume(pline, quantity, unit):
            "Take quantity off the pending moves, return what was taken"
            taken = 0
            for move in pending.get(pline, []):
                if move.quantity <= 0:
                    continue
                remaining = Uom.compute_qty(
                    unit, quantity - taken, move.unit, round=False)
                if move.unit.round(remaining) <= 0:
                    break
                part = min(move.quantity, move.unit.round(remaining))
                move.quantity = move.unit.round(move.quantity - part)
                taken += Uom.compute_qty(move.unit, part, unit, round=False)
            return unit.round(taken)

        incoming, line_moves, cancelled = [], {}, []
        for line in accepted:
            consume(line.purchase_line, line.quantity, line.unit)
            move = line.get_move(lots.get(line), today)
            incoming.append(move)
            line_moves[line] = move
        for line in rejected:
            if not line.purchase_line:
                continue
            quantity = consume(line.purchase_line, line.quantity, line.unit)
            if quantity > 0:
                move = line.get_move(None, today, quantity=quantity)
                cancelled.append(move)
                line_moves[line] = move
        for moves in pending.values():
            for move in moves:
                if move.quantity <= 0:
                    to_delete.append(move)
                else:
                    to_save.append(move)
        Move.save(to_save)
        Move.delete(to_delete)

        shipment = None
        if incoming:
            shipment = Shipment(
                company=self.company,
                supplier=self.supplier,
                warehouse=self.warehouse,
                reference=self.number,
                planned_date=today,
                effective_date=today)
            shipment.on_change_warehouse()
            shipment.save()
            for move in incoming:
                move.shipment = shipment
            Move.save(incoming)
            shipment = Shipment(shipment.id)
            Shipment.receive([shipment])
            # direct deliveries go straight to the department store
            destination = {
                line_moves[l].id: l.to_location for l in accepted}
            to_write = []
            for inventory_move in Shipment(shipment.id).inventory_moves:
                store = destination.get(inventory_move.origin.id)
                if store and store != inventory_move.to_location:
                    to_write.extend([
                            [inventory_move], {'to_location': store.id}])
            if to_write:
                Move.write(*to_write)
            Shipment.do([shipment])
        if cancelled:
            Move.save(cancelled)
            Move.cancel(cancelled)
        Line.link_moves(line_moves, lots)
        self.shipment = shipment
        self.save()

    @classmethod
    @ModelView.button_action('hrp_materials.wizard_document_cancel')
    def cancel(cls, receipts):
        pass

    @classmethod
    @Workflow.transition('cancelled')
    def do_cancel(cls, receipts, reason):
        "Cancel the draft receipts for reason: nothing was received"
        if not reason or not reason.strip():
            raise ReceiptError(gettext(
                    'hrp_materials.msg_document_cancel_reason'))
        cls.write(receipts, {
                'cancelled_by': Transaction().user,
                'cancel_reason': reason,
                })


class ReceiptLine(IssueUnitMixin, ModelSQL, ModelView):
    __name__ = 'hrp.receipt.line'
    __string__ = "Receipt Line"

    _states = {'readonly': Eval('receipt_state') != 'draft'}

    receipt = fields.Many2One(
        'hrp.receipt', "Receipt", required=True, ondelete='CASCADE',
        states={
            'readonly': ((Eval('receipt_state') != 'draft')
                & Bool(Eval('receipt'))),
            })
    product = fields.Many2One(
        'product.product', "Material", required=True, ondelete='RESTRICT',
        domain=[('type', '=', 'goods')], states=_states)
    purchase_line = fields.Many2One(
        'purchase.line', "Purchase Line", ondelete='RESTRICT',
        domain=[
            ('purchase', '=', Eval('_parent_receipt', {}).get('purchase', -1)),
            ('product', '=', Eval('product', -1)),
            ],
        states={
            'readonly': Eval('receipt_state') != 'draft',
            'required': ((Eval('state') == 'accepted')
                & (Eval('receipt_kind') == 'purchase')),
            'invisible': Eval('receipt_kind') != 'purchase',
            },
        depends={'receipt'})
    unit = fields.Many2One(
        'product.uom', "Unit", required=True, readonly=True,
        ondelete='RESTRICT')
    quantity = fields.Float(
        "Quantity", digits='unit', required=True, states=_states,
        help="In the material's unit.")
    lot_number = fields.Char("Lot Number", states=_states, strip=True)
    expiry = fields.Date("Expiry", states=_states)
    production_date = fields.Date("Production Date", states=_states)
    serial = fields.Char("Serial Number", states=_states, strip=True)
    barcode = fields.Char(
        "Barcode", readonly=True, help="The scanned text.")
    state = fields.Selection(
        LINE_STATES, "Acceptance", required=True, states=_states, sort=False)
    reject_reason = fields.Selection(
        REJECT_REASONS, "Rejection Reason", sort=False,
        states={
            'readonly': Eval('receipt_state') != 'draft',
            'invisible': Eval('state') != 'rejected',
            'required': Eval('state') == 'rejected',
            })
    note = fields.Text(
        "Note",
        states={
            'readonly': Eval('receipt_state') != 'draft',
            'required': ((Eval('state') == 'rejected')
                & (Eval('reject_reason') == 'other')),
            })
    to_location = fields.Many2One(
        'stock.location', "Destination Store", ondelete='RESTRICT',
        domain=[('hrp_store_type', 'in', STORE_TYPES)],
        states={
            'readonly': Eval('receipt_state') != 'draft',
            'invisible': Eval('state') != 'accepted',
            },
        help="The central store, or the department store of a "
        "direct-delivery material.")
    lot = fields.Many2One(
        'stock.lot', "Lot", readonly=True, ondelete='RESTRICT')
    move = fields.Many2One(
        'stock.move', "Stock Move", readonly=True, ondelete='RESTRICT')
    receipt_state = fields.Function(
        fields.Selection(STATES, "Receipt State"),
        'on_change_with_receipt_state')
    receipt_kind = fields.Function(
        fields.Selection(KINDS, "Receipt Kind"),
        'on_change_with_receipt_kind')
    supplier = fields.Function(
        fields.Many2One('party.party', "Supplier"),
        'get_receipt_field', searcher='search_receipt_field')
    purchase = fields.Function(
        fields.Many2One('purchase.purchase', "Purchase Order"),
        'get_receipt_field', searcher='search_receipt_field')
    received_at = fields.Function(
        fields.DateTime("Received At"),
        'get_receipt_field', searcher='search_receipt_field')

    del _states

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('receipt')
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.receipt, Index.Equality())),
                Index(t, (t.serial, Index.Equality()),
                    where=t.serial != None),  # noqa: E711
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    where=t.state == 'rejected'),
                })

    @classmethod
    def default_state(cls):
        return 'accepted'

    @classmethod
    def default_quantity(cls):
        return 1

    @fields.depends('receipt', '_parent_receipt.state')
    def on_change_with_receipt_state(self, name=None):
        return self.receipt.state if self.receipt else None

    @fields.depends('receipt', '_parent_receipt.kind')
    def on_change_with_receipt_kind(self, name=None):
        return self.receipt.kind if self.receipt else None

    def get_receipt_field(self, name):
        value = getattr(self.receipt, name)
        return value.id if isinstance(value, ModelSQL) else value

    @classmethod
    def search_receipt_field(cls, name, clause):
        return [('receipt.' + clause[0],) + tuple(clause[1:])]

    @fields.depends('state', 'reject_reason')
    def on_change_state(self):
        if self.state == 'accepted':
            self.reject_reason = None

    @classmethod
    def check_modification(cls, mode, lines, values=None, external=False):
        super().check_modification(
            mode, lines, values=values, external=external)
        if external or mode == 'delete':
            for line in lines:
                if line.receipt.state != 'draft':
                    raise ReceiptError(gettext(
                            'hrp_materials.msg_receipt_modify',
                            receipt=line.receipt.rec_name))
        if mode in {'create', 'write'} and external and values and values.get(
                'receipt'):
            Receipt = Pool().get('hrp.receipt')
            receipt = Receipt(values['receipt'])
            if receipt.state != 'draft':
                raise ReceiptError(gettext(
                        'hrp_materials.msg_receipt_modify',
                        receipt=receipt.rec_name))

    @classmethod
    def copy(cls, lines, default=None):
        default = default.copy() if default is not None else {}
        for name in ['lot', 'move']:
            default.setdefault(name, None)
        return super().copy(lines, default=default)

    @property
    def internal_quantity(self):
        Uom = Pool().get('product.uom')
        unit = self.product.default_uom
        if self.unit == unit:
            return self.quantity or 0
        return Uom.compute_qty(
            self.unit, self.quantity or 0, unit, round=False)

    @property
    def stock_lot_number(self):
        "The stock lot number: the serial of a serial-tracked material"
        if self.product.template.serial_tracked and self.serial:
            return self.serial
        return self.lot_number or None

    # Purchase line and destination

    def _purchase_lines(self, receipt):
        return [l for l in receipt.purchase.lines
            if l.type == 'line' and l.product == self.product]

    def find_purchase_line(self, receipt, lines):
        """Return the order's line of the material with most left to
        receive; raise when the material is not on the order"""
        plines = self._purchase_lines(receipt)
        if not plines:
            if self.state == 'rejected':
                return None
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_not_ordered',
                    material=self.product.rec_name,
                    purchase=receipt.purchase.rec_name))
        in_receipt = defaultdict(float)
        for line in lines:
            if line.state == 'accepted' and line.purchase_line:
                in_receipt[line.purchase_line] += line.internal_quantity

        def left(pline):
            return (self._ordered(pline) - self._received(pline)
                - in_receipt[pline])
        return max(plines, key=lambda l: (left(l), -l.id))

    def _ordered(self, pline):
        Uom = Pool().get('product.uom')
        return Uom.compute_qty(
            pline.unit, abs(pline.quantity or 0), self.product.default_uom,
            round=False)

    def _received(self, pline):
        Uom = Pool().get('product.uom')
        return sum(
            Uom.compute_qty(m.unit, m.quantity, self.product.default_uom,
                round=False)
            for m in pline.moves if m.state == 'done')

    def find_destination(self, receipt):
        """The central store, or for a direct-delivery material the store of
        the department that requested it"""
        template = self.product.template
        if template.direct_delivery and self.purchase_line:
            # the store keeper need not read purchase requests nor
            # requisitions to receive for the department that asked
            store_id = None
            with without_check_access():
                pline = self.purchase_line.__class__(self.purchase_line.id)
                for request in getattr(pline, 'requests', []):
                    store = self._request_store(request)
                    if store:
                        store_id = store.id
                        break
            if store_id is not None:
                return Pool().get('stock.location')(store_id)
            return None
        if receipt.warehouse:
            return receipt.warehouse.storage_location

    @staticmethod
    def _request_store(request):
        RequisitionLine = Pool().get('hrp.requisition.line')
        origin = request.origin
        if isinstance(origin, RequisitionLine) and origin.id >= 0:
            requisition = origin.requisition
            store = requisition.to_location
            if store and store.hrp_store_type in {'department', 'high_value'}:
                return store
            return requisition.department.store

    # Checks

    def check_rejection(self, receipt):
        if self.quantity is None or self.quantity <= 0:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_quantity_positive',
                    receipt=receipt.rec_name,
                    material=self.product.rec_name))
        if not self.reject_reason:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_reject_reason_required',
                    receipt=receipt.rec_name,
                    material=self.product.rec_name))
        if self.reject_reason == 'other' and not (self.note or '').strip():
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_reject_note_required',
                    receipt=receipt.rec_name,
                    material=self.product.rec_name))

    def check_acceptance(self, receipt, lines, final=False):
        """Check the accepted line against the order, the lot and the
        supplier; lines are all the lines of the receipt (with this one)"""
        pool = Pool()
        Date = pool.get('ir.date')
        with Transaction().set_context(company=receipt.company.id):
            today = Date.today()
        product = self.product
        template = product.template
        material = product.rec_name
        if self.quantity is None or self.quantity <= 0:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_quantity_positive',
                    receipt=receipt.rec_name, material=material))
        self.check_ordered(receipt)
        lot_tracked = bool(template.serial_tracked or template.implant
            or template.lot_required)
        if template.serial_tracked:
            if not self.serial:
                raise ReceiptError(gettext(
                        'hrp_materials.msg_receipt_serial_required',
                        material=material, barcode=self.barcode or ''))
            if self.quantity != 1:
                raise ReceiptError(gettext(
                        'hrp_materials.msg_receipt_serial_quantity',
                        material=material, serial=self.serial))
        elif lot_tracked and not self.lot_number:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_lot_required',
                    material=material, barcode=self.barcode or ''))
        shelf_life = getattr(template, 'shelf_life_state', 'none')
        if shelf_life == 'required' and not self.expiry:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_expiry_required',
                    material=material, barcode=self.barcode or ''))
        lot_name = self.stock_lot_number or '-'
        if self.expiry:
            if self.expiry < today:
                raise ReceiptError(gettext(
                        'hrp_materials.msg_receipt_expired',
                        material=material, lot=lot_name,
                        expiry=_format_date(self.expiry)))
            minimum = template.receipt_min_shelf_life_days
            left = (self.expiry - today).days
            if left < minimum:
                raise ReceiptError(gettext(
                        'hrp_materials.msg_receipt_shelf_life_short',
                        material=material, lot=lot_name,
                        expiry=_format_date(self.expiry),
                        days=left, minimum=minimum))
        # The qualification gate of purchases: certificate and licences
        check_qualification(receipt.supplier, self.product, today)
        if self.serial:
            self.check_serial(lines)
        self.check_quantity(receipt, lines)
        if final:
            self.check_destination(receipt)

    def check_ordered(self, receipt):
        "The material is on the order"
        if not self._purchase_lines(receipt) or (
                self.purchase_line
                and (self.purchase_line.purchase != receipt.purchase
                    or self.purchase_line.product != self.product)):
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_not_ordered',
                    material=self.product.rec_name,
                    purchase=receipt.purchase.rec_name))

    def check_serial(self, lines):
        "The serial number was neither received before nor scanned twice"
        pool = Pool()
        Move = pool.get('stock.move')
        material = self.product.rec_name
        for line in lines:
            if (line is not self and line.serial == self.serial
                    and line.product == self.product
                    and line.state == 'accepted'
                    and (self.id is None or self.id < 0
                        or line.id != self.id)):
                raise ReceiptError(gettext(
                        'hrp_materials.msg_receipt_serial_scanned',
                        material=material, serial=self.serial))
        with without_check_access():
            moves = Move.search([
                    ('product', '=', self.product.id),
                    ('lot.number', '=', self.serial),
                    ('state', '=', 'done'),
                    ], limit=1)
        if moves:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_serial_received',
                    material=material, serial=self.serial))

    def check_quantity(self, receipt, lines):
        """The material's accepted quantity in the receipt and received
        before stays within the ordered quantity and the tolerance"""
        tolerance = get_configuration().receipt_tolerance or 0
        plines = self._purchase_lines(receipt)
        ordered = sum(self._ordered(l) for l in plines)
        received = sum(self._received(l) for l in plines)
        accepted = sum(l.internal_quantity for l in lines
            if l.state == 'accepted' and l.product == self.product)
        unit = self.product.default_uom
        limit = ordered * (1 + tolerance / 100)
        if unit.round(received + accepted - limit) > 0:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_over_delivery',
                    material=self.product.rec_name,
                    purchase=receipt.purchase.rec_name,
                    quantity=_format_quantity(accepted, unit),
                    ordered=_format_quantity(ordered, unit),
                    received=_format_quantity(received, unit),
                    tolerance=tolerance))

    def check_destination(self, receipt):
        store = self.to_location
        material = self.product.rec_name
        if not store:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_destination_required',
                    receipt=receipt.rec_name, material=material))
        if store.hrp_store_type not in STORE_TYPES:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_destination_store',
                    store=store.rec_name, material=material))

    # Stock

    @classmethod
    def link_moves(cls, line_moves, lots):
        """Record on the received lines ({line: move}) their stock move and
        their lot ({line: lot}, see get_lots)"""
        values = []
        for line, move in line_moves.items():
            values.extend([[line], {
                        'move': move.id,
                        'lot': lots[line].id if lots.get(line) else None,
                        }])
        if values:
            cls.write(*values)

    @classmethod
    def get_lots(cls, lines):
        """Return the stock lots of the accepted lines ({line: lot}): the
        existing lot of the material with that number (its expiry must
        match) or a new one"""
        pool = Pool()
        Lot = pool.get('stock.lot')
        result, to_create = {}, {}
        for line in lines:
            number = line.stock_lot_number
            if not number:
                continue
            key = (line.product, number)
            if key in to_create:
                result[line] = to_create[key]
                continue
            lots = Lot.search([
                    ('product', '=', line.product.id),
                    ('number', '=', number),
                    ], limit=1)
            if lots:
                lot, = lots
                known = getattr(lot, 'shelf_life_expiration_date', None)
                if line.expiry and known and known != line.expiry:
                    raise ReceiptError(gettext(
                            'hrp_materials.msg_receipt_lot_expiry',
                            material=line.product.rec_name, lot=number,
                            known=_format_date(known),
                            expiry=_format_date(line.expiry)))
                if line.expiry and not known:
                    lot.shelf_life_expiration_date = line.expiry
                    lot.save()
                result[line] = lot
            else:
                lot = Lot(product=line.product, number=number)
                if line.expiry:
                    lot.shelf_life_expiration_date = line.expiry
                    lot.expiration_date = line.expiry
                to_create[key] = result[line] = lot
        Lot.save(list(to_create.values()))
        return result

    def get_move(self, lot, date, quantity=None):
        "Return the incoming move of the line from the purchase line"
        pool = Pool()
        Move = pool.get('stock.move')
        Uom = pool.get('product.uom')
        pline = self.purchase_line
        move = Move(
            company=pline.purchase.company,
            product=self.product,
            unit=self.unit,
            quantity=self.quantity if quantity is None else quantity,
            lot=lot,
            from_location=pline.from_location,
            to_location=pline.to_location,
            planned_date=date,
            state='draft',
            origin=pline)
        if move.on_change_with_unit_price_required():
            move.unit_price = round_price(Uom.compute_price(
                pline.unit, pline.unit_price, self.unit))
            move.currency = pline.purchase.currency
        return move
