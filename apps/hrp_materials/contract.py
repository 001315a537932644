# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Supplier contracts (合同管理): the materials a qualified supplier delivers
at a contract price during the contract's validity, within optional
quantity and amount ceilings.

Procurement drafts the contract from the paper one, activates it (the
supplier must be qualified for every material), and closes it when it ends
early or cancels it, with the reason; an active contract cannot be edited.
Purchase order lines take the contract price (see purchase.py); the ordered
figures count the lines of confirmed, processing and done purchases."""
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Workflow, fields
from trytond.modules.currency.fields import Monetary
from trytond.modules.product import price_digits, round_price
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval, Id
from trytond.transaction import Transaction, without_check_access
from trytond.wizard import Button, StateTransition, StateView, Wizard

from .exceptions import ContractError

STATES = [
    ('draft', "Draft"),
    ('active', "Active"),
    ('closed', "Closed"),
    ('cancelled', "Cancelled"),
    ]
# The purchases whose lines count against the contract's ceilings
ORDERED_STATES = ['confirmed', 'processing', 'done']
DRAFT = {'readonly': Eval('state') != 'draft'}
# What activating, closing and cancelling write on a contract
WORKFLOW_FIELDS = {
    'state', 'number', 'activated_by', 'activated_at', 'closed_by',
    'closed_at', 'close_reason', 'cancelled_by', 'cancelled_at',
    'cancel_reason'}


class Configuration(metaclass=PoolMeta):
    __name__ = 'hrp.configuration'

    contract_sequence = fields.Many2One(
        'ir.sequence', "Contract Sequence", required=True,
        domain=[('sequence_type', '=', Id(
                    'hrp_materials', 'sequence_type_contract'))])

    @classmethod
    def default_contract_sequence(cls):
        return cls._default_sequence('sequence_contract')


class Contract(Workflow, ModelSQL, ModelView):
    __name__ = 'hrp.contract'
    __string__ = "Contract"

    number = fields.Char("Number", readonly=True)
    reference = fields.Char(
        "Reference", strip=True, states=DRAFT,
        help="The number of the paper contract.")
    company = fields.Many2One(
        'company.company', "Company", required=True,
        states={
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            })
    supplier = fields.Many2One(
        'party.party', "Supplier", required=True, ondelete='RESTRICT',
        states={
            'readonly': (Eval('state') != 'draft') | Eval('lines', [0]),
            },
        context={'company': Eval('company', -1)}, depends={'company'})
    start_date = fields.Date(
        "Start Date", required=True, states=DRAFT,
        help="The first day the contract prices apply.")
    end_date = fields.Date(
        "End Date", required=True, states=DRAFT,
        help="The last day the contract prices apply.")
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    amount_ceiling = Monetary(
        "Amount Ceiling", currency='currency', digits='currency',
        domain=['OR',
            ('amount_ceiling', '=', None),
            ('amount_ceiling', '>=', 0),
            ],
        states=DRAFT,
        help="The most that may be ordered under the contract (untaxed); "
        "leave empty for no ceiling.")
    lines = fields.One2Many(
        'hrp.contract.line', 'contract', "Lines",
        states={
            'readonly': (Eval('state') != 'draft') | ~Eval('supplier'),
            })
    ordered_amount = fields.Function(
        Monetary("Ordered Amount", currency='currency', digits='currency',
            help="The untaxed amount of the confirmed purchase lines under "
            "the contract."),
        'get_ordered_amount')
    remaining_amount = fields.Function(
        Monetary("Remaining Amount", currency='currency', digits='currency',
            help="The amount ceiling less the ordered amount."),
        'get_ordered_amount')
    description = fields.Text("Note", states=DRAFT)
    state = fields.Selection(
        STATES, "State", readonly=True, required=True, sort=False)
    state_string = state.translated('state')
    activated_by = fields.Many2One('res.user', "Activated By", readonly=True)
    activated_at = fields.DateTime("Activated At", readonly=True)
    closed_by = fields.Many2One('res.user', "Closed By", readonly=True)
    closed_at = fields.DateTime("Closed At", readonly=True)
    close_reason = fields.Text(
        "Closing Reason", readonly=True,
        states={'invisible': ~Eval('close_reason')})
    cancelled_by = fields.Many2One('res.user', "Cancelled By", readonly=True)
    cancelled_at = fields.DateTime("Cancelled At", readonly=True)
    cancel_reason = fields.Text(
        "Cancellation Reason", readonly=True,
        states={'invisible': ~Eval('cancel_reason')})

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('company')
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    where=t.state.in_(['draft', 'active'])),
                Index(t, (t.supplier, Index.Equality())),
                Index(t, (t.number, Index.Similarity())),
                })
        cls._order = [('start_date', 'DESC'), ('id', 'DESC')]
        cls._transitions |= {
            ('draft', 'active'),
            ('active', 'closed'),
            ('draft', 'cancelled'),
            ('active', 'cancelled'),
            }
        cls._buttons.update({
                'activate': {
                    'invisible': Eval('state') != 'draft',
                    'readonly': ~Eval('lines', []),
                    'depends': ['state'],
                    },
                'close': {
                    'invisible': Eval('state') != 'active',
                    'depends': ['state'],
                    },
                'cancel': {
                    'invisible': ~Eval('state').in_(['draft', 'active']),
                    'depends': ['state'],
                    },
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_state(cls):
        return 'draft'

    @classmethod
    def default_start_date(cls):
        return Pool().get('ir.date').today()

    @fields.depends('company')
    def on_change_with_currency(self, name=None):
        return self.company.currency if self.company else None

    def get_rec_name(self, name):
        number = self.number or self.reference or f'({self.id})'
        if self.supplier:
            return f'{number} {self.supplier.rec_name}'
        return number

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        bool_op = 'AND' if (operator.startswith('!')
            or operator.startswith('not ')) else 'OR'
        return [bool_op,
            ('number', operator, operand, *extra),
            ('reference', operator, operand, *extra),
            ('supplier.rec_name', operator, operand, *extra),
            ]

    @classmethod
    def get_ordered_amount(cls, contracts, names):
        amounts = contract_lines_ordered(
            [l for c in contracts for l in c.lines])
        result = {n: {} for n in names}
        for contract in contracts:
            ordered = sum(
                (amounts[l.id][1] for l in contract.lines), Decimal(0))
            if contract.currency:
                ordered = contract.currency.round(ordered)
            if 'ordered_amount' in names:
                result['ordered_amount'][contract.id] = ordered
            if 'remaining_amount' in names:
                result['remaining_amount'][contract.id] = (
                    contract.amount_ceiling - ordered
                    if contract.amount_ceiling is not None else None)
        return result

    @classmethod
    def validate_fields(cls, contracts, field_names):
        super().validate_fields(contracts, field_names)
        if field_names & {'start_date', 'end_date'}:
            for contract in contracts:
                if (contract.start_date and contract.end_date
                        and contract.end_date < contract.start_date):
                    raise ContractError(gettext(
                            'hrp_materials.msg_contract_dates',
                            contract=contract.rec_name))

    @classmethod
    def check_modification(cls, mode, contracts, values=None,
            external=False):
        super().check_modification(
            mode, contracts, values=values, external=external)
        if (mode == 'write' and external
                and values.keys() - WORKFLOW_FIELDS):
            for contract in contracts:
                if contract.state != 'draft':
                    raise ContractError(gettext(
                            'hrp_materials.msg_contract_modify',
                            contract=contract.rec_name,
                            state=contract.state_string))
        elif mode == 'delete':
            for contract in contracts:
                if contract.state not in {'draft', 'cancelled'}:
                    raise ContractError(gettext(
                            'hrp_materials.msg_contract_delete',
                            contract=contract.rec_name))

    @classmethod
    def copy(cls, contracts, default=None):
        default = default.copy() if default is not None else {}
        for name in ['number', 'activated_by', 'activated_at', 'closed_by',
                'closed_at', 'close_reason', 'cancelled_by', 'cancelled_at',
                'cancel_reason']:
            default.setdefault(name, None)
        return super().copy(contracts, default=default)

    @classmethod
    def _number_sequence(cls):
        pool = Pool()
        Configuration = pool.get('hrp.configuration')
        Sequence = pool.get('ir.sequence')
        sequence = Configuration(1).contract_sequence
        if not sequence:
            sequence = Sequence(Pool().get('ir.model.data').get_id(
                    'hrp_materials', 'sequence_contract'))
        return sequence

    def check_activate(self):
        "Raise a ContractError when the contract may not be activated"
        pool = Pool()
        Date = pool.get('ir.date')
        from .purchase import check_qualification
        with Transaction().set_context(company=self.company.id):
            today = Date.today()
        if not self.lines:
            raise ContractError(gettext(
                    'hrp_materials.msg_contract_no_line',
                    contract=self.rec_name))
        if self.end_date < today:
            raise ContractError(gettext(
                    'hrp_materials.msg_contract_ended',
                    contract=self.rec_name, end_date=self.end_date))
        for line in self.lines:
            check_qualification(self.supplier, line.product, today)

    @classmethod
    @ModelView.button
    @Workflow.transition('active')
    def activate(cls, contracts):
        "Put the contracts in force once their supplier is qualified"
        for contract in contracts:
            contract.check_activate()
        sequence = cls._number_sequence()
        for contract in contracts:
            if not contract.number:
                contract.number = sequence.get()
            contract.activated_by = Transaction().user
            contract.activated_at = dt.datetime.now()
        cls.save(contracts)

    @classmethod
    @ModelView.button_action('hrp_materials.wizard_contract_close')
    def close(cls, contracts):
        pass

    @classmethod
    @ModelView.button_action('hrp_materials.wizard_document_cancel')
    def cancel(cls, contracts):
        pass

    @staticmethod
    def _check_reason(reason):
        if not reason or not reason.strip():
            raise ContractError(gettext(
                    'hrp_materials.msg_contract_reason_required'))

    @classmethod
    @Workflow.transition('closed')
    def do_close(cls, contracts, reason):
        "Close the contracts before or at their end for reason"
        cls._check_reason(reason)
        cls.write(contracts, {
                'closed_by': Transaction().user,
                'closed_at': dt.datetime.now(),
                'close_reason': reason,
                })

    @classmethod
    @Workflow.transition('cancelled')
    def do_cancel(cls, contracts, reason):
        "Cancel the contracts for reason (the document cancel wizard)"
        cls._check_reason(reason)
        cls.write(contracts, {
                'cancelled_by': Transaction().user,
                'cancelled_at': dt.datetime.now(),
                'cancel_reason': reason,
                })

    @classmethod
    def find_line(cls, party, product, date, quantity=None, unit=None,
            company=None):
        """Return the line of an active contract of the supplier party for
        product valid at date, or None (see find_lines)"""
        if not party:
            return None
        line, = cls.find_lines(
            [(party, product, quantity, unit)], date, company=company)
        return line

    @classmethod
    def find_lines(cls, keys, date, company=None):
        """Return, for each (party, product, quantity, unit) of keys, the
        line of an active contract of the supplier party (of any supplier
        when party is None) for product valid at date, or None; one search
        for all keys.

        The contract that started last comes first; with a quantity (in
        unit, by default the line's unit) a line whose quantity ceiling can
        still take it is preferred, else the first line is returned anyway
        (confirming the purchase then refuses the excess)."""
        pool = Pool()
        Line = pool.get('hrp.contract.line')
        Uom = pool.get('product.uom')
        found = [None] * len(keys)
        products = {int(k[1]) for k in keys if k[1]}
        if not products or not date:
            return found
        if company is None:
            company = Transaction().context.get('company')
        domain = [
            ('contract.state', '=', 'active'),
            ('contract.start_date', '<=', date),
            ('contract.end_date', '>=', date),
            ('product', 'in', sorted(products)),
            ]
        parties = {int(k[0]) for k in keys if k[0]}
        if parties and all(k[0] for k in keys if k[1]):
            domain.append(('contract.supplier', 'in', sorted(parties)))
        if company is not None:
            domain.append(('contract.company', '=', int(company)))
        with without_check_access():
            lines = Line.search_read(domain, order=[
                    ('contract.start_date', 'DESC'),
                    ('contract.id', 'DESC'),
                    ('id', 'ASC'),
                    ], fields_names=[
                    'product', 'contract.supplier', 'unit',
                    'quantity_ceiling'])
            ceilings = [l['id'] for l in lines
                if l['quantity_ceiling'] is not None]
            ordered = {}
            if ceilings and any(k[2] is not None for k in keys):
                ordered = {l['id']: l['ordered_quantity'] or 0
                    for l in Line.read(ceilings, ['ordered_quantity'])}
        candidates = defaultdict(list)
        for line in lines:
            candidates[line['product']].append(line)
        for i, (party, product, quantity, unit) in enumerate(keys):
            if not product:
                continue
            matching = [l for l in candidates[int(product)]
                if party is None
                or l['contract.']['supplier'] == int(party)]
            if not matching:
                continue
            found[i] = matching[0]
            if quantity is None:
                continue
            for line in matching:
                if line['quantity_ceiling'] is None:
                    found[i] = line
                    break
                qty = quantity
                if unit is not None and int(unit) != line['unit']:
                    qty = Uom.compute_qty(
                        unit, quantity, Uom(line['unit']), round=False)
                if ordered[line['id']] + qty <= line['quantity_ceiling']:
                    found[i] = line
                    break
        # Records read outside without_check_access, as the caller reads
        records = {l.id: l for l in Line.browse(
                sorted({l['id'] for l in found if l}))}
        return [records[l['id']] if l else None for l in found]


class ContractLine(ModelSQL, ModelView):
    __name__ = 'hrp.contract.line'
    __string__ = "Contract Line"

    contract = fields.Many2One(
        'hrp.contract', "Contract", required=True, ondelete='CASCADE')
    contract_state = fields.Function(
        fields.Selection(STATES, "Contract State"),
        'on_change_with_contract_state')
    product = fields.Many2One(
        'product.product', "Material", required=True, ondelete='RESTRICT',
        states={'readonly': Eval('contract_state') != 'draft'})
    product_uom_category = fields.Function(
        fields.Many2One('product.uom.category', "Unit Category"),
        'on_change_with_product_uom_category')
    unit = fields.Many2One(
        'product.uom', "Unit", required=True, ondelete='RESTRICT',
        domain=[
            ('category', '=', Eval('product_uom_category', -1)),
            ],
        states={'readonly': Eval('contract_state') != 'draft'},
        help="The unit the contract price and quantity ceiling are in.")
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    unit_price = Monetary(
        "Contract Price", currency='currency', digits=price_digits,
        required=True,
        domain=[('unit_price', '>=', 0)],
        states={'readonly': Eval('contract_state') != 'draft'},
        help="The untaxed unit price agreed in the contract.")
    quantity_ceiling = fields.Float(
        "Quantity Ceiling", digits='unit',
        domain=['OR',
            ('quantity_ceiling', '=', None),
            ('quantity_ceiling', '>', 0),
            ],
        states={'readonly': Eval('contract_state') != 'draft'},
        help="The most that may be ordered of the material under the "
        "contract; leave empty for no ceiling.")
    ordered_quantity = fields.Function(
        fields.Float("Ordered Quantity", digits='unit',
            help="The quantity of the confirmed purchase lines under the "
            "contract line."),
        'get_ordered')
    remaining_quantity = fields.Function(
        fields.Float("Remaining Quantity", digits='unit'),
        'get_ordered')
    ordered_amount = fields.Function(
        Monetary("Ordered Amount", currency='currency', digits='currency'),
        'get_ordered')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('contract')
        t = cls.__table__()
        cls._sql_indexes.add(Index(t, (t.product, Index.Equality())))

    @fields.depends('contract', '_parent_contract.state')
    def on_change_with_contract_state(self, name=None):
        return self.contract.state if self.contract else 'draft'

    @fields.depends('contract', '_parent_contract.company')
    def on_change_with_currency(self, name=None):
        if self.contract and self.contract.company:
            return self.contract.company.currency

    @fields.depends('product')
    def on_change_with_product_uom_category(self, name=None):
        return self.product.default_uom_category if self.product else None

    @fields.depends('product', 'unit')
    def on_change_product(self):
        if self.product:
            unit = self.product.purchase_uom or self.product.default_uom
            if not self.unit or self.unit.category != unit.category:
                self.unit = unit

    def get_rec_name(self, name):
        return f'{self.contract.rec_name} / {self.product.rec_name}'

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        bool_op = 'AND' if (operator.startswith('!')
            or operator.startswith('not ')) else 'OR'
        return [bool_op,
            ('contract.rec_name', operator, operand, *extra),
            ('product.rec_name', operator, operand, *extra),
            ]

    @classmethod
    def get_ordered(cls, lines, names):
        ordered = contract_lines_ordered(lines)
        result = {n: {} for n in names}
        for line in lines:
            quantity, amount = ordered[line.id]
            if 'ordered_quantity' in names:
                result['ordered_quantity'][line.id] = line.unit.round(
                    quantity)
            if 'remaining_quantity' in names:
                result['remaining_quantity'][line.id] = (
                    line.unit.round(line.quantity_ceiling - quantity)
                    if line.quantity_ceiling is not None else None)
            if 'ordered_amount' in names:
                result['ordered_amount'][line.id] = (
                    line.currency.round(amount) if line.currency else amount)
        return result

    def price_for(self, unit):
        "Return the contract price of one unit (of the same category)"
        Uom = Pool().get('product.uom')
        if unit is None or unit == self.unit:
            return self.unit_price
        return round_price(
            Uom.compute_price(self.unit, self.unit_price, unit))

    def quantity_in(self, quantity, unit):
        "Return quantity in unit converted to the contract line's unit"
        Uom = Pool().get('product.uom')
        if unit is None or unit == self.unit:
            return quantity
        return Uom.compute_qty(unit, quantity, self.unit, round=False)

    @classmethod
    def check_modification(cls, mode, lines, values=None, external=False):
        super().check_modification(
            mode, lines, values=values, external=external)
        if external or mode in {'create', 'delete'}:
            states = {'draft', 'cancelled'} if mode == 'delete' else {'draft'}
            for line in lines:
                if line.contract.state not in states:
                    raise ContractError(gettext(
                            'hrp_materials.msg_contract_modify',
                            contract=line.contract.rec_name,
                            state=line.contract.state_string))


def contract_lines_ordered(lines, exclude_purchases=None):
    """Return {contract line id: (quantity in the line's unit, amount)} of
    the purchase lines of confirmed, processing and done purchases under
    the contract lines (the purchases of exclude_purchases left out)"""
    pool = Pool()
    PurchaseLine = pool.get('purchase.line')
    result = defaultdict(lambda: (0.0, Decimal(0)))
    lines = {l.id: l for l in lines if l.id is not None and l.id >= 0}
    if not lines:
        return result
    domain = [
        ('hrp_contract_line', 'in', list(lines)),
        ('purchase.state', 'in', ORDERED_STATES),
        ('type', '=', 'line'),
        ]
    if exclude_purchases:
        domain.append(('purchase', 'not in', [
                    int(p) for p in exclude_purchases]))
    # The figures of the contract are shown to whoever reads it
    with without_check_access():
        for pline in PurchaseLine.search(domain):
            cline = lines[pline.hrp_contract_line.id]
            quantity, amount = result[cline.id]
            quantity += cline.quantity_in(pline.quantity or 0, pline.unit)
            amount += pline.amount or Decimal(0)
            result[cline.id] = (quantity, amount)
    return result


class ContractCloseStart(ModelView):
    __name__ = 'hrp.contract.close.start'
    __string__ = "Close Contract"
    reason = fields.Text("Reason", required=True)


class ContractClose(Wizard):
    __name__ = 'hrp.contract.close'
    __string__ = "Close Contract"
    start = StateView(
        'hrp.contract.close.start',
        'hrp_materials.contract_close_start_view_form', [
            Button("Back", 'end', 'tryton-back'),
            Button("Close Contract", 'close', 'tryton-ok', default=True),
            ])
    close = StateTransition()

    def transition_close(self):
        self.model.do_close(list(self.records), self.start.reason)
        return 'end'
