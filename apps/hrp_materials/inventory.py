# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Department stocktaking (盘点) on Tryton's inventories, with the approval
of the variance.

A department counts its store on a Tryton inventory; "submit for approval"
computes the variance (counted minus expected quantity, valued at cost),
asks every loss for a write-off reason and sends the inventory to the
approval engine (the rule's minimal amount tests the total variance).
Tryton's confirm then runs only once the variance is approved, and only if
the stock did not move meanwhile; without variance, or when no rule
applies, the variance is approved at once.  Confirming moves the
differences to the warehouse's lost-and-found location as Tryton does and
keeps the cost and the department's cost centre on the lines."""
import datetime as dt
from decimal import Decimal

from trytond.i18n import gettext
from trytond.model import ModelView, fields
from trytond.modules.currency.fields import Monetary
from trytond.modules.product import price_digits, round_price
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction, without_check_access

from .approval import ApprovalMixin
from .exceptions import StocktakingError
from .lot import hrp_store
from .writeoff import REASONS, lot_reason

FROZEN = ['pending', 'approved']


def store_department(location):
    "The department owning the store that holds location, or None"
    store = hrp_store(location) if location else None
    return store.hrp_department if store else None


class Inventory(ApprovalMixin, metaclass=PoolMeta):
    __name__ = 'stock.inventory'

    department = fields.Many2One(
        'hrp.department', "Department", readonly=True, ondelete='RESTRICT',
        help="The department that owns the store counted.")
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    variance_lines = fields.Function(
        fields.Many2Many(
            'stock.inventory.line', None, None, "Variances", readonly=True,
            help="The lines whose count differs from the expected "
            "quantity, with their value at cost."),
        'get_variance_lines')
    variance_amount = fields.Function(
        Monetary("Total Variance", currency='currency', digits='currency',
            help="The value at cost of every difference, gains and losses "
            "alike: the minimal amount of the approval rules tests it."),
        'get_variance_amounts')
    net_variance_amount = fields.Function(
        Monetary("Net Variance", currency='currency', digits='currency',
            help="The gains less the losses, at cost."),
        'get_variance_amounts')
    submitted_at = fields.DateTime("Submitted At", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        frozen = Eval('approval_state').in_(FROZEN)
        cls.lines.states = cls.lines.states.copy()
        cls.lines.states['readonly'] = (
            cls.lines.states.get('readonly', False) | frozen)
        cls.lines.depends |= {'approval_state'}
        cls.empty_quantity.states = cls.empty_quantity.states.copy()
        cls.empty_quantity.states['readonly'] = (
            cls.empty_quantity.states.get('readonly', False) | frozen)
        cls.empty_quantity.depends |= {'approval_state'}
        cls._buttons.update({
                'submit_approval': {
                    'invisible': ((Eval('state') != 'draft')
                        | (Eval('approval_state') == 'pending')),
                    'readonly': ~Eval('lines', []),
                    'depends': ['state', 'approval_state'],
                    },
                'recount': {
                    'invisible': ((Eval('state') != 'draft')
                        | ~Eval('approval_state').in_(
                            ['approved', 'rejected'])),
                    'depends': ['state', 'approval_state'],
                    },
                })
        for name in ['complete_lines', 'do_count']:
            button = cls._buttons[name] = cls._buttons[name].copy()
            button['readonly'] = button.get('readonly', False) | frozen
            button['depends'] = list(button.get('depends', [])) + [
                'approval_state']

    @fields.depends('location')
    def on_change_with_department(self, name=None):
        return store_department(self.location)

    @fields.depends('company')
    def on_change_with_currency(self, name=None):
        return self.company.currency if self.company else None

    def get_variance_lines(self, name):
        return [l.id for l in self.lines if l.variance_quantity]

    @classmethod
    def get_variance_amounts(cls, inventories, name):
        result = {}
        for inventory in inventories:
            amounts = [l.variance_amount for l in inventory.lines
                if l.variance_amount]
            if name == 'variance_amount':
                amounts = [abs(a) for a in amounts]
            total = sum(amounts, Decimal(0))
            if inventory.currency:
                total = inventory.currency.round(total)
            result[inventory.id] = total
        return result

    @classmethod
    def preprocess_values(cls, mode, values):
        pool = Pool()
        Location = pool.get('stock.location')
        # Tryton numbers the inventory from the stock configuration, which
        # department users do not read
        with without_check_access():
            values = super().preprocess_values(mode, values)
        if 'location' in values:
            location = (Location(values['location'])
                if values['location'] is not None else None)
            with without_check_access():
                department = store_department(location)
            values['department'] = department.id if department else None
        return values

    @classmethod
    def check_modification(
            cls, mode, inventories, values=None, external=False):
        super().check_modification(
            mode, inventories, values=values, external=external)
        if (mode == 'write' and external
                and values.keys() & {
                    'lines', 'empty_quantity', 'location', 'date'}):
            for inventory in inventories:
                if inventory.approval_state in FROZEN:
                    raise StocktakingError(gettext(
                            'hrp_materials.msg_stocktaking_frozen',
                            inventory=inventory.rec_name))

    @classmethod
    def copy(cls, inventories, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('submitted_at', None)
        default.setdefault('lines.hrp_approved_variance', None)
        default.setdefault('lines.hrp_unit_cost', None)
        default.setdefault('lines.hrp_cost_center', None)
        return super().copy(inventories, default=default)

    def get_approval_values(self):
        lines = [l for l in self.lines if l.variance_quantity]
        return {
            'company': self.company.id,
            'department': self.department,
            'categories': {c for l in lines
                for c in l.product.categories_all},
            'high_value': any(l.product.high_value for l in lines),
            'amount': self.variance_amount,
            'urgency': 'normal',
            }

    @classmethod
    @ModelView.button
    def complete_lines(cls, inventories, fill=True):
        if fill:
            for inventory in inventories:
                if inventory.approval_state in FROZEN:
                    raise StocktakingError(gettext(
                            'hrp_materials.msg_stocktaking_frozen',
                            inventory=inventory.rec_name))
        super().complete_lines(inventories, fill=fill)

    @classmethod
    @ModelView.button
    def submit_approval(cls, inventories):
        "Compute the variance of the counts and ask for its approval"
        cls._submit_approval(inventories)

    @classmethod
    def _submit_approval(cls, inventories, granted_only=False):
        """Record the variance of the inventories and ask for its approval.

        With granted_only, refuse (before anything is written) the
        inventories whose variance a rule must approve."""
        pool = Pool()
        Line = pool.get('stock.inventory.line')
        Rule = pool.get('hrp.approval.rule')
        Lang = pool.get('ir.lang')
        for inventory in inventories:
            if inventory.state != 'draft':
                raise StocktakingError(gettext(
                        'hrp_materials.msg_stocktaking_not_draft',
                        inventory=inventory.rec_name))
            if inventory.approval_state == 'pending':
                raise StocktakingError(gettext(
                        'hrp_materials.msg_stocktaking_in_approval',
                        inventory=inventory.rec_name))
        # the expected quantities of now
        cls.complete_lines(inventories, fill=False)
        inventories = cls.browse([i.id for i in inventories])
        for inventory in inventories:
            for line in inventory.lines:
                line.check_variance()
        if granted_only:
            lang = Lang.get()
            for inventory in inventories:
                if not inventory.variance_lines:
                    continue
                rule = Rule.find(
                    cls.__name__, inventory.get_approval_values())
                if rule:
                    raise StocktakingError(gettext(
                            'hrp_materials.msg_stocktaking_needs_approval',
                            inventory=inventory.rec_name,
                            amount=lang.currency(
                                inventory.variance_amount,
                                inventory.currency),
                            rule=rule.rec_name))
        to_write = []
        for inventory in inventories:
            for line in inventory.lines:
                to_write.extend([[line], line.get_variance_values()])
        if to_write:
            Line.write(*to_write)
        inventories = cls.browse([i.id for i in inventories])
        without, with_variance = [], []
        for inventory in inventories:
            if inventory.variance_lines:
                with_variance.append(inventory)
            else:
                without.append(inventory)
        if without:
            # nothing to approve
            cls.cancel_approval(without)
            cls.write(without, {
                    'approval_state': 'approved',
                    'approval_requester': Transaction().user,
                    'approval_rule': None,
                    'rejection_reason': None,
                    })
        if with_variance:
            cls.request_approval(with_variance)
        cls.write(list(inventories), {'submitted_at': dt.datetime.now()})

    @classmethod
    @ModelView.button
    def recount(cls, inventories):
        "Withdraw the approval to change the counts"
        cls.cancel_approval(inventories)
        cls.write(inventories, {
                'submitted_at': None,
                'rejection_reason': None,
                })

    @classmethod
    def check_variance_approved(cls, inventories):
        """Refuse inventories whose variance is not approved, or whose
        stock moved since; submit those never submitted (granted at once
        when there is no variance or no rule)"""
        for inventory in inventories:
            if inventory.approval_state == 'pending':
                raise StocktakingError(gettext(
                        'hrp_materials.msg_stocktaking_in_approval',
                        inventory=inventory.rec_name))
            if inventory.approval_state == 'rejected':
                raise StocktakingError(gettext(
                        'hrp_materials.msg_stocktaking_rejected',
                        inventory=inventory.rec_name,
                        reason=inventory.rejection_reason or ''))
        to_submit = [i for i in inventories if i.approval_state is None]
        approved = [i for i in inventories if i.approval_state == 'approved']
        if to_submit:
            cls._submit_approval(to_submit, granted_only=True)
        if approved:
            cls.complete_lines(approved, fill=False)
            for inventory in cls.browse(approved):
                for line in inventory.lines:
                    if not line.variance_unchanged():
                        raise StocktakingError(gettext(
                                'hrp_materials.msg_stocktaking_stock_moved',
                                inventory=inventory.rec_name,
                                line=line.rec_name))

    @classmethod
    @ModelView.button
    def confirm(cls, inventories):
        pool = Pool()
        Line = pool.get('stock.inventory.line')
        cls.check_variance_approved(inventories)
        inventories = cls.browse([i.id for i in inventories])
        super().confirm(inventories)
        to_write = []
        for inventory in cls.browse(inventories):
            for line in inventory.lines:
                if line.moves:
                    to_write.extend([[line], line.get_cost_values()])
        if to_write:
            Line.write(*to_write)

    @classmethod
    @ModelView.button
    def cancel(cls, inventories):
        super().cancel(inventories)
        pending = [i for i in inventories if i.approval_state == 'pending']
        if pending:
            cls.cancel_approval(pending)


class InventoryLine(metaclass=PoolMeta):
    __name__ = 'stock.inventory.line'

    variance_quantity = fields.Function(
        fields.Float(
            "Variance", digits='unit',
            help="The counted quantity less the expected quantity: "
            "negative for a loss."),
        'on_change_with_variance_quantity')
    hrp_reason = fields.Selection(
        [(None, "")] + REASONS, "Write-Off Reason", sort=False,
        states={
            'readonly': Eval('inventory_state') != 'draft',
            'invisible': Eval('variance_quantity', 0) >= 0,
            },
        help="Why the goods are missing: required for a loss.")
    hrp_note = fields.Text(
        "Note",
        states={
            'readonly': Eval('inventory_state') != 'draft',
            },
        help="What happened; required for another reason.")
    hrp_unit_cost = fields.Numeric(
        "Unit Cost", digits=price_digits, readonly=True,
        help="The cost price the variance is valued at.")
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    variance_amount = fields.Function(
        Monetary("Variance Value", currency='currency', digits='currency'),
        'get_variance_amount')
    hrp_approved_variance = fields.Float(
        "Approved Variance", digits='unit', readonly=True,
        help="The variance submitted for approval.")
    hrp_cost_center = fields.Many2One(
        'analytic_account.account', "Cost Centre", readonly=True,
        ondelete='RESTRICT',
        help="The department's cost centre charged with the variance.")

    @fields.depends('quantity', 'expected_quantity', 'product',
        'inventory', '_parent_inventory.empty_quantity')
    def on_change_with_variance_quantity(self, name=None):
        quantity = self.quantity
        if quantity is None:
            if (self.inventory
                    and getattr(self.inventory, 'empty_quantity', None)
                    == 'empty'):
                quantity = 0.
            else:
                return None
        variance = quantity - (self.expected_quantity or 0)
        if self.product:
            variance = self.product.default_uom.round(variance)
        return variance

    @fields.depends('inventory', '_parent_inventory.company')
    def on_change_with_currency(self, name=None):
        if self.inventory and self.inventory.company:
            return self.inventory.company.currency

    def _unit_cost(self):
        if self.hrp_unit_cost is not None:
            return self.hrp_unit_cost
        with without_check_access():
            return self.product.get_multivalue(
                'cost_price', company=self.inventory.company.id)

    def get_variance_amount(self, name):
        variance = self.variance_quantity
        if not variance:
            return None
        unit_cost = self._unit_cost()
        if unit_cost is None:
            return None
        return self.inventory.company.currency.round(
            Decimal(str(variance)) * unit_cost)

    def get_variance_values(self):
        "The values the submission records: variance, cost and reason"
        with without_check_access():
            unit_cost = self.product.get_multivalue(
                'cost_price', company=self.inventory.company.id)
        values = {
            'hrp_approved_variance': self.variance_quantity,
            'hrp_unit_cost': round_price(unit_cost or Decimal(0)),
            }
        variance = self.variance_quantity
        if variance is not None and variance < 0:
            if not self.hrp_reason and self.lot:
                reason = lot_reason(self.lot)
                if reason:
                    values['hrp_reason'] = reason
        elif self.hrp_reason:
            values['hrp_reason'] = None
        return values

    def check_variance(self):
        "Check the line's variance can be submitted"
        if (self.quantity is None
                and self.inventory.empty_quantity is None):
            raise StocktakingError(gettext(
                    'stock.msg_inventory_missing_empty_quantity',
                    inventory=self.inventory.rec_name))
        variance = self.variance_quantity
        if variance is not None and variance < 0:
            if not self.hrp_reason and not (
                    self.lot and lot_reason(self.lot)):
                raise StocktakingError(gettext(
                        'hrp_materials.msg_stocktaking_reason_required',
                        inventory=self.inventory.rec_name,
                        line=self.rec_name))
            if self.hrp_reason == 'other' and not (
                    self.hrp_note or '').strip():
                raise StocktakingError(gettext(
                        'hrp_materials.msg_stocktaking_note_required',
                        inventory=self.inventory.rec_name,
                        line=self.rec_name))

    def variance_unchanged(self):
        "Whether the variance is the one approved"
        approved = self.hrp_approved_variance or 0
        return self.unit.round((self.variance_quantity or 0) - approved) == 0

    def get_cost_values(self):
        "The cost of the confirmed line and the cost centre it is charged to"
        move = self.moves[0]
        unit_cost = move.cost_price
        if unit_cost is None:
            unit_cost = self._unit_cost()
        department = self.inventory.department
        return {
            'hrp_unit_cost': round_price(unit_cost or Decimal(0)),
            'hrp_cost_center': (department.cost_center.id
                if department and department.cost_center else None),
            }

    @classmethod
    def check_modification(cls, mode, lines, values=None, external=False):
        super().check_modification(
            mode, lines, values=values, external=external)
        if external:
            for line in lines:
                if line.inventory.approval_state in FROZEN:
                    raise StocktakingError(gettext(
                            'hrp_materials.msg_stocktaking_frozen',
                            inventory=line.inventory.rec_name))
            if mode in {'create', 'write'} and values and values.get(
                    'inventory'):
                Inventory = Pool().get('stock.inventory')
                inventory = Inventory(values['inventory'])
                if inventory.approval_state in FROZEN:
                    raise StocktakingError(gettext(
                            'hrp_materials.msg_stocktaking_frozen',
                            inventory=inventory.rec_name))

    @classmethod
    def copy(cls, lines, default=None):
        default = default.copy() if default is not None else {}
        for name in ['hrp_approved_variance', 'hrp_unit_cost',
                'hrp_cost_center']:
            default.setdefault(name, None)
        return super().copy(lines, default=default)
