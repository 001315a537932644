# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Three-way match (对账) of supplier invoices: invoice against purchase order
against receipt.

Purchases of the HRP flow are invoiced on fulfillment: Tryton drafts a
supplier invoice from what was received; finance types the supplier's paper
invoice over it (reference, quantities, unit prices) and the match compares
each invoice line with its purchase line:

- the quantity with what was received (done moves from the supplier, less
  returns) and not yet invoiced by another validated or posted invoice;
- the unit price with the ordered unit price;
- a line without purchase line was not ordered.

Only invoicing more than received or a higher price than ordered (beyond the
tolerances of the materials configuration) is a mismatch: the supplier may
invoice the rest later.  A supplier invoice coming from a purchase is posted
only once matched, or despite the mismatch with a reason (who, when, why
recorded)."""
import datetime as dt
import logging
from collections import defaultdict
from decimal import Decimal

from trytond.i18n import gettext
from trytond.model import ModelView, fields
from trytond.modules.product import price_digits
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction, without_check_access
from trytond.wizard import Button, StateTransition, StateView, Wizard

from .exceptions import ConfigurationValidationError, InvoiceMatchError

logger = logging.getLogger(__name__)

MATCH_STATES = [
    (None, ""),
    ('matched', "Matched"),
    ('mismatch', "Mismatch"),
    ]
MATCH_INVOICE_STATES = {'draft', 'validated'}
# the invoices whose lines count as already invoiced
INVOICED_STATES = {'validated', 'posted', 'paid'}
# changes of a line that make its match stale
LINE_MATCH_FIELDS = {
    'invoice', 'type', 'product', 'quantity', 'unit', 'unit_price', 'origin',
    'currency'}
INVOICE_MATCH_FIELDS = {'company', 'type', 'party', 'currency'}
INVOICE_HRP_FIELDS = {
    'hrp_match_state', 'hrp_match_notes', 'hrp_matched_by', 'hrp_matched_at',
    'hrp_override_reason', 'hrp_override_by', 'hrp_override_at'}
LINE_HRP_FIELDS = {
    'hrp_received_quantity', 'hrp_ordered_price', 'hrp_match_state'}


class Configuration(metaclass=PoolMeta):
    __name__ = 'hrp.configuration'

    match_price_tolerance = fields.Numeric(
        "Match Price Tolerance", digits=(16, 2), required=True,
        help="In percent: a supplier invoice may charge up to this much more "
        "than the ordered unit price and still match.")
    match_quantity_tolerance = fields.Numeric(
        "Match Quantity Tolerance", digits=(16, 2), required=True,
        help="In percent: a supplier invoice may invoice up to this much more "
        "than the received quantity and still match.")

    @classmethod
    def default_match_price_tolerance(cls):
        return Decimal(0)

    @classmethod
    def default_match_quantity_tolerance(cls):
        return Decimal(0)

    @classmethod
    def validate_fields(cls, records, field_names):
        super().validate_fields(records, field_names)
        names = {'match_price_tolerance', 'match_quantity_tolerance'}
        if field_names & names:
            for record in records:
                for name in sorted(names):
                    value = getattr(record, name)
                    if value is not None and value < 0:
                        raise ConfigurationValidationError(gettext(
                                'hrp_materials.msg_match_tolerance_negative',
                                field=cls.fields_get([name])[name]['string']))


def _format_quantity(quantity, unit):
    Lang = Pool().get('ir.lang')
    if unit is None:
        return Lang.get().format('%g', quantity)
    return Lang.get().format_number_symbol(
        quantity, unit, digits=unit.digits)


def _format_price(price, currency):
    Lang = Pool().get('ir.lang')
    return Lang.get().currency(price, currency, digits=price_digits[1])


def _round_price(price):
    return price.quantize(Decimal(1).scaleb(-price_digits[1]))


class Invoice(metaclass=PoolMeta):
    __name__ = 'account.invoice'

    hrp_match_state = fields.Selection(
        MATCH_STATES, "Match State", readonly=True, sort=False,
        help="The result of the last three-way match of the supplier invoice "
        "with its purchase orders and receipts; empty when it has not run "
        "since the invoice last changed.")
    hrp_match_notes = fields.Text(
        "Match Notes", readonly=True,
        help="One line per difference found by the three-way match.")
    hrp_matched_by = fields.Many2One(
        'res.user', "Matched By", readonly=True, ondelete='RESTRICT')
    hrp_matched_at = fields.DateTime("Matched At", readonly=True)
    hrp_override_reason = fields.Text(
        "Override Reason", readonly=True,
        help="Why the invoice was posted despite the mismatch.")
    hrp_override_by = fields.Many2One(
        'res.user', "Override By", readonly=True, ondelete='RESTRICT')
    hrp_override_at = fields.DateTime("Override At", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._check_modify_exclude |= INVOICE_HRP_FIELDS
        _match_states = {
            'invisible': ((Eval('type') != 'in')
                | ~Eval('state').in_(list(MATCH_INVOICE_STATES))),
            'depends': ['type', 'state'],
            }
        cls._buttons.update({
                'hrp_match': {
                    **_match_states,
                    'icon': 'tryton-search',
                    },
                'hrp_post_matched': {
                    'invisible': (_match_states['invisible']
                        | (Eval('hrp_match_state') == 'mismatch')),
                    'depends': ['type', 'state', 'hrp_match_state'],
                    'icon': 'tryton-ok',
                    },
                'hrp_post_override': {
                    'invisible': (_match_states['invisible']
                        | (Eval('hrp_match_state') != 'mismatch')),
                    'depends': ['type', 'state', 'hrp_match_state'],
                    'icon': 'tryton-warning',
                    },
                })

    @classmethod
    def copy(cls, invoices, default=None):
        default = default.copy() if default is not None else {}
        for name in INVOICE_HRP_FIELDS:
            default.setdefault(name, None)
        return super().copy(invoices, default=default)

    @property
    def hrp_from_purchase(self):
        "Whether a line of the invoice comes from a purchase line"
        PurchaseLine = Pool().get('purchase.line')
        return any(isinstance(l.origin, PurchaseLine) for l in self.lines)

    def _hrp_check_matchable(self):
        if self.type != 'in' or self.state not in MATCH_INVOICE_STATES:
            raise InvoiceMatchError(gettext(
                    'hrp_materials.msg_invoice_match_not_supplier',
                    invoice=self.rec_name))

    def hrp_compute_match(self):
        """Return the match of the invoice: (state, notes, {line: values})
        with the values of the line's match fields"""
        pool = Pool()
        PurchaseLine = pool.get('purchase.line')
        Configuration = pool.get('hrp.configuration')
        config = Configuration(1)
        quantity_tolerance = (
            config.match_quantity_tolerance or Decimal(0)) / 100
        price_tolerance = (config.match_price_tolerance or Decimal(0)) / 100
        notes, results = [], {}
        by_purchase_line = defaultdict(list)
        for line in self.lines:
            if line.type != 'line':
                continue
            if isinstance(line.origin, PurchaseLine) and line.origin.id >= 0:
                by_purchase_line[line.origin].append(line)
                continue
            other = self._hrp_match_other(
                line, results, quantity_tolerance, price_tolerance)
            if other is not None:
                notes.extend(other)
            else:
                results[line] = {
                    'hrp_received_quantity': None,
                    'hrp_ordered_price': None,
                    'hrp_match_state': 'mismatch',
                    }
                notes.append(gettext(
                        'hrp_materials.msg_invoice_match_not_ordered',
                        material=self._hrp_line_name(line)))
        for purchase_line, lines in by_purchase_line.items():
            notes.extend(self._hrp_match_purchase_line(
                    purchase_line, lines, results,
                    quantity_tolerance, price_tolerance))
        if not results:
            notes.append(gettext(
                    'hrp_materials.msg_invoice_match_no_line'))
        state = ('matched'
            if results and not notes
            else 'mismatch')
        return state, notes, results

    def _hrp_match_other(
            self, line, results, quantity_tolerance, price_tolerance):
        """Match line, which comes from no purchase line: fill its results
        and return the notes, or return None when nothing vouches for it
        (it was not ordered)"""
        return None

    @staticmethod
    def _hrp_line_name(line):
        if line.product:
            return line.product.rec_name
        return line.description or line.rec_name

    def _hrp_match_purchase_line(
            self, purchase_line, lines, results, quantity_tolerance,
            price_tolerance):
        "Fill results of lines invoicing purchase_line and return the notes"
        pool = Pool()
        Uom = pool.get('product.uom')
        Currency = pool.get('currency.currency')
        notes = []
        unit = purchase_line.unit
        available = (self._hrp_received_quantity(purchase_line)
            - self._hrp_invoiced_elsewhere(purchase_line))
        invoiced = 0
        for line in lines:
            if unit and line.unit:
                invoiced += Uom.compute_qty(
                    line.unit, line.quantity or 0, unit, round=False)
            else:
                invoiced += line.quantity or 0
        margin = abs(available) * float(quantity_tolerance)
        excess = invoiced - available - margin
        if unit:
            excess = unit.round(excess)
        quantity_ok = excess <= 0
        material = self._hrp_line_name(lines[0])
        purchase = purchase_line.purchase.rec_name
        if not quantity_ok:
            notes.append(gettext(
                    'hrp_materials.msg_invoice_match_quantity',
                    material=material, purchase=purchase,
                    invoiced=_format_quantity(invoiced, unit),
                    received=_format_quantity(max(available, 0), unit)))
        date = self.invoice_date or self.accounting_date
        for line in lines:
            ordered = purchase_line.unit_price
            if (ordered is not None and unit and line.unit
                    and unit != line.unit):
                ordered = Uom.compute_price(unit, ordered, line.unit)
            if (ordered is not None and line.currency
                    and purchase_line.currency
                    and line.currency != purchase_line.currency):
                with Transaction().set_context(date=date):
                    ordered = Currency.compute(
                        purchase_line.currency, ordered, line.currency,
                        round=False)
            if ordered is not None:
                ordered = _round_price(ordered)
            price_ok = True
            if ordered is not None and line.unit_price is not None:
                limit = _round_price(ordered * (1 + price_tolerance))
                price_ok = line.unit_price <= limit
                if not price_ok:
                    notes.append(gettext(
                            'hrp_materials.msg_invoice_match_price',
                            material=self._hrp_line_name(line),
                            purchase=purchase,
                            price=_format_price(
                                line.unit_price, line.currency),
                            ordered=_format_price(ordered, line.currency)))
            received = available
            if unit and line.unit:
                received = Uom.compute_qty(unit, available, line.unit)
            results[line] = {
                'hrp_received_quantity': received,
                'hrp_ordered_price': ordered,
                'hrp_match_state': (
                    'matched' if quantity_ok and price_ok else 'mismatch'),
                }
        return notes

    @staticmethod
    def _hrp_received_quantity(purchase_line):
        """Return the quantity of purchase_line received from the supplier
        less what went back (in the purchase line's unit); what is not goods
        counts as received as ordered"""
        Uom = Pool().get('product.uom')
        if not purchase_line.product or purchase_line.product.type not in {
                'goods', 'assets'}:
            return purchase_line.quantity or 0
        quantity = 0
        for move in purchase_line.moves:
            if move.state != 'done':
                continue
            qty = Uom.compute_qty(
                move.unit, move.quantity, purchase_line.unit, round=False)
            if (move.from_location.type == 'supplier'
                    and move.to_location.type != 'supplier'):
                quantity += qty
            elif (move.to_location.type == 'supplier'
                    and move.from_location.type != 'supplier'):
                quantity -= qty
        return quantity

    def _hrp_invoiced_elsewhere(self, purchase_line):
        """Return the quantity of purchase_line that other validated or
        posted invoices invoice (in the purchase line's unit)"""
        Uom = Pool().get('product.uom')
        skips = {l for i in purchase_line.purchase.invoices_recreated
            for l in i.lines}
        quantity = 0
        for line in purchase_line.invoice_lines:
            if (line.type != 'line' or line in skips
                    or not line.invoice or line.invoice == self
                    or line.invoice.state not in INVOICED_STATES):
                continue
            if purchase_line.unit and line.unit:
                quantity += Uom.compute_qty(
                    line.unit, line.quantity, purchase_line.unit, round=False)
            else:
                quantity += line.quantity
        return quantity

    @classmethod
    @ModelView.button
    def hrp_match(cls, invoices):
        """Run the three-way match of the supplier invoices and store its
        result with who and when"""
        pool = Pool()
        Line = pool.get('account.invoice.line')
        for invoice in invoices:
            invoice._hrp_check_matchable()
        now = dt.datetime.now()
        user = Transaction().user
        invoice_values, line_values = [], []
        with without_check_access():
            for invoice in cls.browse(invoices):
                state, notes, results = invoice.hrp_compute_match()
                invoice_values.extend([[invoice], {
                            'hrp_match_state': state,
                            'hrp_match_notes': '\n'.join(notes) or None,
                            'hrp_matched_by': user,
                            'hrp_matched_at': now,
                            }])
                for line in invoice.lines:
                    line_values.extend([[line], results.get(line, {
                                'hrp_received_quantity': None,
                                'hrp_ordered_price': None,
                                'hrp_match_state': None,
                                })])
            if line_values:
                Line.write(*line_values)
            if invoice_values:
                cls.write(*invoice_values)

    @classmethod
    @ModelView.button
    def hrp_post_matched(cls, invoices):
        """Match the supplier invoices again and post those that match;
        return the posted invoices"""
        cls.hrp_match(invoices)
        matched = [i for i in cls.browse(invoices)
            if i.hrp_match_state == 'matched']
        if matched:
            cls.post(matched)
        return matched

    @classmethod
    @ModelView.button_action('hrp_materials.wizard_invoice_post_override')
    def hrp_post_override(cls, invoices):
        pass

    @classmethod
    def hrp_post_despite_mismatch(cls, invoices, reason):
        """Post the supplier invoices whatever their match, recording the
        reason with who and when"""
        for invoice in invoices:
            invoice._hrp_check_matchable()
            if not (reason or '').strip():
                raise InvoiceMatchError(gettext(
                        'hrp_materials.msg_invoice_match_reason_required',
                        invoice=invoice.rec_name))
        with without_check_access():
            cls.write(list(invoices), {
                    'hrp_override_reason': reason.strip(),
                    'hrp_override_by': Transaction().user,
                    'hrp_override_at': dt.datetime.now(),
                    })
        cls.post(cls.browse(invoices))

    @classmethod
    def hrp_check_post(cls, invoices):
        """Refuse to post a supplier invoice from a purchase that is not
        matched (or no longer matches), unless posted despite the mismatch"""
        for invoice in invoices:
            if (invoice.type != 'in'
                    or invoice.state not in MATCH_INVOICE_STATES
                    or invoice.hrp_override_reason
                    or not invoice.hrp_from_purchase):
                continue
            if invoice.hrp_match_state != 'matched':
                raise InvoiceMatchError(gettext(
                        'hrp_materials.msg_invoice_match_not_matched',
                        invoice=invoice.rec_name))
            with without_check_access():
                state, notes, _ = invoice.hrp_compute_match()
            if state != 'matched':
                raise InvoiceMatchError(gettext(
                        'hrp_materials.msg_invoice_match_changed',
                        invoice=invoice.rec_name,
                        notes='\n'.join(notes)))

    @classmethod
    def post(cls, invoices):
        cls.hrp_check_post(invoices)
        super().post(invoices)

    @classmethod
    def post_batch(cls, invoices):
        cls.hrp_check_post(invoices)
        super().post_batch(invoices)

    @classmethod
    def hrp_reset_match(cls, invoices):
        "Forget the match (and override) of the invoices and their lines"
        pool = Pool()
        Line = pool.get('account.invoice.line')
        invoices = [i for i in invoices
            if i.hrp_match_state or i.hrp_override_reason]
        if not invoices:
            return
        with without_check_access():
            lines = [l for i in invoices for l in i.lines
                if l.hrp_match_state]
            if lines:
                Line.write(lines, {
                        'hrp_received_quantity': None,
                        'hrp_ordered_price': None,
                        'hrp_match_state': None,
                        })
            cls.write(invoices, {name: None for name in INVOICE_HRP_FIELDS})

    @classmethod
    def on_modification(cls, mode, invoices, field_names=None):
        super().on_modification(mode, invoices, field_names=field_names)
        if mode == 'write' and field_names & INVOICE_MATCH_FIELDS:
            cls.hrp_reset_match(
                [i for i in invoices if i.state in MATCH_INVOICE_STATES])

    @classmethod
    def hrp_match_and_post(cls):
        """Match the draft and validated supplier invoices from purchases
        that have the supplier's reference, and post those that match (cron
        "Match and Post Supplier Invoices")"""
        company = Transaction().context.get('company')
        invoices = cls.search([
                ('company', '=', company) if company else (),
                ('type', '=', 'in'),
                ('state', 'in', sorted(MATCH_INVOICE_STATES)),
                ('reference', '!=', None),
                ('reference', '!=', ''),
                ('lines.origin', 'like', 'purchase.line,%'),
                ], order=[('id', 'ASC')])
        if not invoices:
            return []
        posted = cls.hrp_post_matched(invoices)
        logger.info(
            "three-way match: %d supplier invoices matched, %d posted",
            len(invoices), len(posted))
        return posted


class InvoiceLine(metaclass=PoolMeta):
    __name__ = 'account.invoice.line'

    hrp_received_quantity = fields.Float(
        "Received Quantity", digits='unit', readonly=True,
        help="Received from the supplier and not invoiced by another "
        "invoice, in the line's unit, at the last three-way match.")
    hrp_ordered_price = fields.Numeric(
        "Ordered Unit Price", digits=price_digits, readonly=True,
        help="The unit price of the purchase order, in the line's unit and "
        "currency, at the last three-way match.")
    hrp_match_state = fields.Selection(
        MATCH_STATES, "Match State", readonly=True, sort=False)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._check_modify_exclude |= LINE_HRP_FIELDS

    @classmethod
    def copy(cls, lines, default=None):
        default = default.copy() if default is not None else {}
        for name in LINE_HRP_FIELDS:
            default.setdefault(name, None)
        return super().copy(lines, default=default)

    @classmethod
    def on_modification(cls, mode, lines, field_names=None):
        super().on_modification(mode, lines, field_names=field_names)
        if mode == 'write' and not (field_names & LINE_MATCH_FIELDS):
            return
        Invoice = Pool().get('account.invoice')
        invoices = {l.invoice for l in lines
            if l.invoice and l.invoice.state in MATCH_INVOICE_STATES}
        if invoices:
            Invoice.hrp_reset_match(Invoice.browse(list(invoices)))


class InvoicePostOverrideStart(ModelView):
    __name__ = 'account.invoice.hrp_post_override.start'
    __string__ = "Post Despite Mismatch"

    reason = fields.Text(
        "Reason", required=True,
        help="Why the supplier invoice is posted although it does not match "
        "its purchase orders and receipts.")


class InvoicePostOverride(Wizard):
    __name__ = 'account.invoice.hrp_post_override'
    __string__ = "Post Despite Mismatch"
    start = StateView(
        'account.invoice.hrp_post_override.start',
        'hrp_materials.invoice_post_override_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Post", 'post', 'tryton-ok', default=True),
            ])
    post = StateTransition()

    def transition_post(self):
        self.model.hrp_post_despite_mismatch(
            list(self.records), self.start.reason)
        return 'end'


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('account.invoice|hrp_match_and_post',
                "Match and Post Supplier Invoices"))
