# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Consignment stock (寄售, vendor-managed inventory) of high-value
consumables, on Tryton's ``stock_consignment``.

A supplier keeps its implants in the operating theatre's store and owns them
until they are used.  Each supplier's units lie in its own consignment
location: a location of type supplier, placed under the store, whose
consignment party is the supplier (Tryton's consignment model).

- A consignment receipt (``hrp.receipt`` of kind consignment, no purchase
  order) takes the units unit by unit by scanning their UDI, with the
  acceptance checks of a purchase receipt but the order's, and moves them
  from the supplier into its consignment location: still the supplier's.
- A usage registration takes them out of the consignment location to the
  patient: Tryton's consignment creates the supplier invoice line when the
  move is done (ownership passes to the hospital), priced here at the
  supplier's active contract price.
- Reversing a line (a wrong scan) puts the unit back into the consignment
  location and gives the ownership back: the invoice line is deleted, or
  credited when it is already on a supplier invoice.

``hrp.consignment.stock`` (寄售库存) lists the consigned units by supplier,
store, material and lot."""
from decimal import Decimal

from sql import Null
from sql.aggregate import Max, Min, Sum
from sql.conditionals import Case

from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, fields
from trytond.modules.product import round_price
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction, without_check_access

from .exceptions import ConsignmentError, ReceiptError
from .invoice import _format_price, _format_quantity
from .mixin import SupplierMaterialRowMixin


def consignment_price(supplier, product, date, company, quantity=None,
        unit=None):
    """The unit price (in unit, by default the product's) at which the
    hospital buys product of supplier when a consigned unit is used: the
    supplier's active contract price, else Tryton's purchase price of the
    supplier; None when there is neither"""
    pool = Pool()
    Contract = pool.get('hrp.contract')
    Product = pool.get('product.product')
    unit = unit or product.default_uom
    contract_line = Contract.find_line(
        supplier, product, date, quantity=quantity, unit=unit,
        company=company)
    if contract_line and contract_line.currency == company.currency:
        return round_price(contract_line.price_for(unit))
    with Transaction().set_context(
            company=company.id, currency=company.currency.id,
            supplier=supplier.id, uom=unit.id):
        price = Product.get_purchase_price(
            [product], quantity or 0)[product.id]
    return round_price(price) if price is not None else None


class Location(metaclass=PoolMeta):
    __name__ = 'stock.location'

    @classmethod
    def hrp_consignment_location(cls, store, supplier):
        """Return the consignment location of supplier in store, created
        on first use"""
        with without_check_access(), \
                Transaction().set_context(active_test=False):
            locations = cls.search([
                    ('parent', '=', store.id),
                    ('type', '=', 'supplier'),
                    ('consignment_party', '=', supplier.id),
                    ], order=[('active', 'DESC'), ('id', 'ASC')], limit=1)
            if locations:
                location, = locations
                if not location.active:
                    location.active = True
                    location.save()
            else:
                location = cls(
                    name=supplier.rec_name,
                    code=None,
                    type='supplier',
                    parent=store,
                    consignment_party=supplier)
                location.save()
        return cls(location.id)


class Receipt(metaclass=PoolMeta):
    __name__ = 'hrp.receipt'

    def check_scan_ready(self):
        if self.kind != 'consignment':
            return super().check_scan_ready()
        if not self.supplier or not self.store:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_consignment_required'))

    def check_receive(self):
        if self.kind == 'consignment':
            if self.store.hrp_store_type not in {'high_value', 'department'}:
                raise ReceiptError(gettext(
                        'hrp_materials.msg_receipt_consignment_store',
                        store=self.store.rec_name))
        super().check_receive()

    def _receive(self):
        if self.kind != 'consignment':
            return super()._receive()
        pool = Pool()
        Move = pool.get('stock.move')
        Line = pool.get('hrp.receipt.line')
        Location = pool.get('stock.location')
        Date = pool.get('ir.date')
        with Transaction().set_context(company=self.company.id):
            today = Date.today()
        accepted = [l for l in self.lines if l.state == 'accepted']
        lots = Line.get_lots(accepted)
        location = Location.hrp_consignment_location(self.store, self.supplier)
        moves = [line.get_consignment_move(lots.get(line), location, today)
            for line in accepted]
        Move.save(moves)
        Move.do(moves)
        Line.link_moves(dict(zip(accepted, moves)), lots)


class ReceiptLine(metaclass=PoolMeta):
    __name__ = 'hrp.receipt.line'

    def find_purchase_line(self, receipt, lines):
        if receipt.kind == 'consignment':
            return None
        return super().find_purchase_line(receipt, lines)

    def find_destination(self, receipt):
        if receipt.kind == 'consignment':
            return receipt.store
        return super().find_destination(receipt)

    def check_ordered(self, receipt):
        """A consigned material needs a price to invoice it at when it is
        used: the supplier's contract price"""
        if receipt.kind != 'consignment':
            return super().check_ordered(receipt)
        Date = Pool().get('ir.date')
        with Transaction().set_context(company=receipt.company.id):
            today = Date.today()
        if consignment_price(
                receipt.supplier, self.product, today, receipt.company,
                unit=self.unit) is None:
            raise ConsignmentError(gettext(
                    'hrp_materials.msg_consignment_no_price',
                    material=self.product.rec_name,
                    supplier=receipt.supplier.rec_name))

    def check_quantity(self, receipt, lines):
        if receipt.kind != 'consignment':
            super().check_quantity(receipt, lines)

    def check_destination(self, receipt):
        super().check_destination(receipt)
        if receipt.kind == 'consignment' and self.to_location != receipt.store:
            raise ReceiptError(gettext(
                    'hrp_materials.msg_receipt_consignment_destination',
                    material=self.product.rec_name,
                    store=receipt.store.rec_name))

    @staticmethod
    def supplier_location(receipt):
        "The location goods come from: the supplier's supplier location"
        pool = Pool()
        Location = pool.get('stock.location')
        ModelData = pool.get('ir.model.data')
        location = getattr(receipt.supplier, 'supplier_location', None)
        if location:
            return location
        return Location(ModelData.get_id('stock', 'location_supplier'))

    def get_consignment_move(self, lot, location, date):
        """Return the move of the line's units from the supplier into its
        consignment location (the supplier keeps the ownership)"""
        pool = Pool()
        Move = pool.get('stock.move')
        receipt = self.receipt
        return Move(
            company=receipt.company,
            product=self.product,
            unit=self.unit,
            quantity=self.quantity,
            lot=lot,
            from_location=self.supplier_location(receipt),
            to_location=location,
            planned_date=date,
            effective_date=date,
            origin=self)


class Move(metaclass=PoolMeta):
    __name__ = 'stock.move'

    @classmethod
    def _get_origin(cls):
        return super()._get_origin() + ['hrp.receipt.line']

    def _get_supplier_invoice_line_consignment(self):
        """The supplier invoice line of used consigned goods, at the price
        of the supplier's active contract when there is one"""
        Date = Pool().get('ir.date')
        line = super()._get_supplier_invoice_line_consignment()
        with Transaction().set_context(company=self.company.id):
            date = self.effective_date or Date.today()
        if line.currency == self.company.currency:
            line.unit_price = consignment_price(
                line.party, self.product, date, self.company,
                quantity=self.quantity, unit=self.unit)
        if line.unit_price is None:
            raise ConsignmentError(gettext(
                    'hrp_materials.msg_consignment_no_price',
                    material=self.product.rec_name,
                    supplier=line.party.rec_name))
        return line


class ConsumptionLine(metaclass=PoolMeta):
    __name__ = 'hrp.consumption.line'

    consignor = fields.Function(
        fields.Many2One('party.party', "Consigned By"),
        'get_consignor')

    def get_consignor(self, name):
        location = self.location
        if location and location.type == 'supplier':
            party = location.consignment_party
            return party.id if party else None

    def get_cost_values(self, move):
        """Consigned goods are costed at the price the hospital buys them:
        their invoice line's"""
        values = super().get_cost_values(move)
        invoice_lines = move.consignment_invoice_lines
        if invoice_lines and self.consumption.company:
            currency = self.consumption.company.currency
            invoice_line = invoice_lines[0]
            if invoice_line.currency == currency:
                unit_cost = round_price(invoice_line.unit_price)
                values['unit_cost'] = unit_cost
                values['amount'] = currency.round(
                    unit_cost * Decimal(str(self.quantity)))
        return values

    @classmethod
    def return_consignment(cls, lines):
        """Give back to their suppliers the consigned goods of the reversed
        lines: delete their invoice lines, or credit them when already on
        an invoice"""
        pool = Pool()
        InvoiceLine = pool.get('account.invoice.line')
        to_delete, to_credit = [], []
        for line in lines:
            if not line.move or not line.reverse_move:
                continue
            if line.reverse_move.consignment_invoice_lines:
                continue
            for invoice_line in line.move.consignment_invoice_lines:
                if invoice_line.invoice:
                    to_credit.append(
                        invoice_line.hrp_consignment_credit(
                            line.reverse_move))
                else:
                    to_delete.append(invoice_line)
        if to_delete:
            InvoiceLine.delete(to_delete)
        if to_credit:
            InvoiceLine.save(to_credit)

    @classmethod
    def reverse(cls, lines, reason):
        super().reverse(lines, reason)
        cls.return_consignment(cls.browse(lines))


class Consumption(metaclass=PoolMeta):
    __name__ = 'hrp.consumption'

    @classmethod
    def reverse(cls, consumptions):
        Line = Pool().get('hrp.consumption.line')
        super().reverse(consumptions)
        Line.return_consignment([l for c in cls.browse(consumptions)
                for l in c.lines])


class InvoiceLine(metaclass=PoolMeta):
    __name__ = 'account.invoice.line'

    def hrp_consignment_credit(self, move):
        """Return the line crediting this supplier invoice line for the
        consigned goods move returns to the supplier"""
        line = self.__class__(
            invoice_type=self.invoice_type,
            type='line',
            company=self.company,
            party=self.party,
            currency=self.currency,
            product=self.product,
            quantity=-move.quantity,
            unit=move.unit,
            unit_price=self.unit_price,
            account=self.account,
            taxes=list(self.taxes),
            description=self.description,
            stock_moves=[move],
            origin=move)
        return line


class Invoice(metaclass=PoolMeta):
    __name__ = 'account.invoice'

    def _hrp_match_other(
            self, line, results, quantity_tolerance, price_tolerance):
        """A line of consigned goods used (or given back) is vouched for by
        its stock move: the quantity that moved, at the contract price"""
        pool = Pool()
        Move = pool.get('stock.move')
        Uom = pool.get('product.uom')
        move = line.origin
        if not isinstance(move, Move) or move.id < 0 or move.state != 'done':
            return super()._hrp_match_other(
                line, results, quantity_tolerance, price_tolerance)
        if move.is_supplier_consignment:
            sign = 1
        elif (move.to_location.type == 'supplier'
                and move.to_location.consignment_party):
            sign = -1
        else:
            return super()._hrp_match_other(
                line, results, quantity_tolerance, price_tolerance)
        notes = []
        unit = line.unit or move.unit
        moved = sign * Uom.compute_qty(
            move.unit, move.quantity, unit, round=False)
        margin = abs(moved) * float(quantity_tolerance)
        quantity_ok = unit.round(
            abs(line.quantity or 0) - abs(moved) - margin) <= 0 and (
            (line.quantity or 0) * sign >= 0)
        material = self._hrp_line_name(line)
        if not quantity_ok:
            notes.append(gettext(
                    'hrp_materials.msg_invoice_match_consignment_quantity',
                    material=material, move=move.rec_name,
                    invoiced=_format_quantity(line.quantity or 0, unit),
                    moved=_format_quantity(moved, unit)))
        ordered = consignment_price(
            line.party or self.party, move.product, move.effective_date,
            self.company, unit=unit)
        price_ok = True
        if (ordered is not None and line.unit_price is not None
                and line.currency == self.company.currency):
            price_ok = line.unit_price <= round_price(
                ordered * (1 + price_tolerance))
            if not price_ok:
                notes.append(gettext(
                        'hrp_materials.msg_invoice_match_consignment_price',
                        material=material,
                        price=_format_price(line.unit_price, line.currency),
                        ordered=_format_price(ordered, line.currency)))
        results[line] = {
            'hrp_received_quantity': moved,
            'hrp_ordered_price': ordered,
            'hrp_match_state': (
                'matched' if quantity_ok and price_ok else 'mismatch'),
            }
        return notes


class ConsignmentStock(SupplierMaterialRowMixin, ModelSQL, ModelView):
    __name__ = 'hrp.consignment.stock'
    __string__ = "Consignment Stock"

    location = fields.Many2One('stock.location', "Consignment Location")
    lot = fields.Many2One('stock.lot', "Lot")
    expiry = fields.Date("Expiry")
    quantity = fields.Float("Quantity", digits='unit')
    last_move = fields.Date("Last Move")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [
            ('supplier', 'ASC'), ('store', 'ASC'), ('product', 'ASC'),
            ('expiry', 'ASC NULLS LAST'), ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        """The done moves in and out of the consignment locations, summed by
        location, material and lot (the units still there)"""
        pool = Pool()
        Move = pool.get('stock.move')
        Location = pool.get('stock.location')
        Lot = pool.get('stock.lot')
        Product = pool.get('product.product')
        Template = pool.get('product.template')
        context = Transaction().context
        move = Move.__table__()
        location = Location.__table__()
        lot = Lot.__table__()
        product = Product.__table__()
        template = Template.__table__()

        consigned = location.select(
            location.id, where=(location.type == 'supplier')
            & (location.consignment_party != Null)
            & (location.parent != Null))
        where = (move.state == 'done') & (
            move.to_location.in_(consigned)
            | move.from_location.in_(consigned))
        if context.get('company'):
            where &= move.company == context['company']
        in_ = move.to_location.in_(consigned)
        # one row per move and side, the quantity signed
        sides = (move
            .select(
                move.id.as_('move'),
                move.company.as_('company'),
                Case((in_, move.to_location),
                    else_=move.from_location).as_('location'),
                move.product.as_('product'),
                move.lot.as_('lot'),
                Case((in_, move.internal_quantity),
                    else_=-move.internal_quantity).as_('quantity'),
                move.effective_date.as_('date'),
                where=where))
        query = (sides
            .join(location, condition=sides.location == location.id)
            .join(product, condition=sides.product == product.id)
            .join(template, condition=product.template == template.id)
            .join(lot, 'LEFT', condition=sides.lot == lot.id)
            .select(
                Min(sides.move).as_('id'),
                sides.company.as_('company'),
                location.consignment_party.as_('supplier'),
                location.parent.as_('store'),
                sides.location.as_('location'),
                sides.product.as_('product'),
                sides.lot.as_('lot'),
                Max(lot.shelf_life_expiration_date).as_('expiry'),
                template.default_uom.as_('unit'),
                cls.quantity.sql_cast(Sum(sides.quantity)).as_('quantity'),
                Max(sides.date).as_('last_move'),
                group_by=[
                    sides.company, location.consignment_party,
                    location.parent, sides.location, sides.product,
                    sides.lot, template.default_uom],
                having=Sum(sides.quantity) > 0))
        return query
