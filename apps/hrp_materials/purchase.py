# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Purchase orders (采购订单) under contracts, with the qualification gate
and the approval of ordering outside a contract.

A purchase line takes the price of the active contract of its supplier
covering its material at the purchase date (see contract.py); such a price
cannot be changed.  Quoting and confirming a purchase are refused when the
supplier's licence expired, when its authorised scope lacks a material or
when a material's registration certificate expired.  Quoting asks the
approval engine to approve the purchase: the engine's rules may test
``outside_contract``, and a purchase with lines outside a valid contract
must be approved (by default by the hospital leadership) before it can be
confirmed; a rejection returns it to draft with the reason.  Confirming
checks that the quantity and amount ceilings of the contracts still hold,
the contracts locked against concurrent confirmations."""
from collections import defaultdict
from decimal import Decimal

from trytond.i18n import gettext
from trytond.model import ModelView, Workflow, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval
from trytond.transaction import Transaction, without_check_access

from .approval import ApprovalMixin
from .contract import contract_lines_ordered
from .exceptions import PurchaseApprovalError, QualificationError

# The fields of a purchase line its contract line is found from
CONTRACT_LINE_DEPENDS = [
    'type', 'product', 'quantity', 'unit', 'purchase',
    '_parent_purchase.party', '_parent_purchase.purchase_date',
    '_parent_purchase.company', '_parent_purchase.currency']
# The fields of a quoted purchase's lines that its approval and contract
# prices depend on
FROZEN_LINE_FIELDS = {
    'product', 'quantity', 'unit', 'unit_price', 'hrp_contract_line', 'type'}


def check_qualification(party, product, date=None):
    """Raise a QualificationError naming the problem when the supplier party
    may not deliver the material (product or template) at date (today by
    default): a licence expired, no valid medical device trading licence,
    the material not authorised, or its registration certificate expired"""
    pool = Pool()
    Date = pool.get('ir.date')
    if date is None:
        date = Date.today()
    template = getattr(product, 'template', product)
    if template.registration_expiry and template.registration_expiry < date:
        raise QualificationError(gettext(
                'hrp_materials.msg_qualification_registration_expired',
                material=template.rec_name,
                number=template.registration_number or '',
                expiry=template.registration_expiry,
                supplier=party.rec_name))
    if party.is_qualified_for(template, date):
        return
    for licence in party.hrp_licences:
        if not licence.is_valid(date):
            raise QualificationError(gettext(
                    'hrp_materials.msg_qualification_licence_expired',
                    supplier=party.rec_name,
                    licence=licence.rec_name,
                    expiry=licence.expiry,
                    material=template.rec_name))
    if 'device_trading' not in {l.type for l in party.valid_licences(date)}:
        raise QualificationError(gettext(
                'hrp_materials.msg_qualification_no_trading_licence',
                supplier=party.rec_name,
                material=template.rec_name))
    raise QualificationError(gettext(
            'hrp_materials.msg_qualification_not_authorised',
            supplier=party.rec_name,
            material=template.rec_name))


class Purchase(ApprovalMixin, metaclass=PoolMeta):
    __name__ = 'purchase.purchase'

    outside_contract = fields.Function(
        fields.Boolean(
            "Outside Contract",
            help="Some lines are not under a valid contract: the purchase "
            "must be approved before it is confirmed."),
        'get_outside_contract')

    # The confirm button stays clickable while the approval is pending:
    # confirming then says why it is refused (check_approval)

    def get_outside_contract(self, name):
        return bool(self.outside_contract_lines())

    def outside_contract_lines(self):
        "Return the lines that no valid contract covers"
        return [l for l in self.line_lines if not l.hrp_contract_line]

    def contract_date(self):
        "The date the contracts of the purchase must be valid at"
        Date = Pool().get('ir.date')
        if self.purchase_date:
            return self.purchase_date
        with Transaction().set_context(company=self.company.id):
            return Date.today()

    def get_approval_values(self):
        lines = [l for l in self.line_lines if l.product]
        return {
            'company': self.company.id,
            'department': None,
            'categories': {c for l in lines
                for c in l.product.categories_all},
            'high_value': any(l.product.high_value for l in lines),
            # The untaxed amount, from the lines at hand
            'amount': sum(
                (self.currency.round(
                        Decimal(str(l.quantity or 0)) * (l.unit_price or 0))
                    for l in self.line_lines), Decimal(0)),
            'urgency': 'normal',
            'outside_contract': bool(self.outside_contract_lines()),
            }

    @classmethod
    def check_qualification(cls, purchases):
        "Refuse purchases of a material their supplier may not deliver"
        for purchase in purchases:
            date = purchase.contract_date()
            for line in purchase.line_lines:
                if line.product and line.product.type == 'goods':
                    check_qualification(purchase.party, line.product, date)

    @classmethod
    def apply_contracts(cls, purchases):
        """Link the lines to their contract lines and set the contract
        prices, without saving them: return the lines changed"""
        Line = Pool().get('purchase.line')
        lines = [l for p in purchases for l in p.line_lines]
        changed = []
        for line, contract_line in zip(
                lines, Line.find_contract_lines(lines)):
            price = (contract_line.price_for(line.unit) if contract_line
                else line.unit_price)
            if (line.hrp_contract_line != contract_line
                    or line.unit_price != price):
                line.hrp_contract_line = contract_line
                line.unit_price = price
                changed.append(line)
        return changed

    @classmethod
    @ModelView.button
    @Workflow.transition('quotation')
    def quote(cls, purchases):
        Line = Pool().get('purchase.line')
        cls.check_qualification(purchases)
        Line.save(cls.apply_contracts(purchases))
        # Refuses a purchase outside contract no rule approves before it is
        # quoted
        rules = cls.find_approval_rules(purchases)
        super().quote(purchases)
        cls.request_approval(cls.browse([p.id for p in purchases]), rules)

    @classmethod
    def find_approval_rules(cls, purchases):
        """Refuse purchases outside contract no rule applies to, creating
        first the company's default rule when it has none"""
        pool = Pool()
        Rule = pool.get('hrp.approval.rule')
        result = super().find_approval_rules(purchases)
        missing = [i for i, (values, rule) in enumerate(result)
            if not rule and values['outside_contract']]
        if not missing:
            return result
        for company in {purchases[i].company for i in missing}:
            with without_check_access(), Transaction().set_context(
                    active_test=False):
                exists = Rule.search([
                        ('document', '=', cls.__name__),
                        ('company', '=', company.id),
                        ('outside_contract', '=', True),
                        ], limit=1)
            if not exists:
                cls._create_outside_contract_rule(company)
        rules = Rule.find_many(
            cls.__name__, [result[i][0] for i in missing])
        for i, rule in zip(missing, rules):
            if not rule:
                raise PurchaseApprovalError(gettext(
                        'hrp_materials.msg_purchase_outside_contract_no_rule',
                        purchase=purchases[i].rec_name))
            result[i] = (result[i][0], rule)
        return result

    @classmethod
    def _create_outside_contract_rule(cls, company):
        """Create the company's default rule: purchases outside contract are
        approved by the hospital leadership (a rule needs a company, which
        XML data cannot give, so the rule is created at the first need)"""
        pool = Pool()
        Rule = pool.get('hrp.approval.rule')
        ModelData = pool.get('ir.model.data')
        Configuration = pool.get('ir.configuration')
        # Named in the database's language, whoever quotes first
        with without_check_access(), Transaction().set_context(
                language=Configuration.get_language()):
            rule, = Rule.create([{
                        'name': gettext(
                            'hrp_materials.msg_rule_outside_contract_name'),
                        'company': company.id,
                        'document': cls.__name__,
                        'outside_contract': True,
                        'sequence': 100,
                        'steps': [('create', [{
                                        'name': gettext('hrp_materials'
                                            '.msg_rule_outside_contract_step'),
                                        'approver': 'group',
                                        'group': ModelData.get_id(
                                            'hrp_materials',
                                            'group_leadership'),
                                        }])],
                        }])
        return rule

    @classmethod
    def approval_granted(cls, purchases):
        # The approver decides through her task, not as a purchaser
        with without_check_access():
            super().approval_granted(purchases)

    @classmethod
    def approval_refused(cls, purchases, reason):
        with without_check_access():
            super().approval_refused(purchases, reason)
            cls.draft(cls.browse([
                        p.id for p in purchases if p.state == 'quotation']))

    @classmethod
    @ModelView.button
    @Workflow.transition('draft')
    def draft(cls, purchases):
        pending = [p for p in purchases if p.approval_state == 'pending']
        if pending:
            cls.cancel_approval(pending)
        super().draft(purchases)

    @classmethod
    @ModelView.button
    @Workflow.transition('cancelled')
    def cancel(cls, purchases):
        pending = [p for p in purchases if p.approval_state == 'pending']
        if pending:
            cls.cancel_approval(pending)
        super().cancel(purchases)

    @classmethod
    @ModelView.button
    @Workflow.transition('confirmed')
    def confirm(cls, purchases):
        cls.check_qualification(purchases)
        cls.check_approval(purchases)
        cls.check_contracts(purchases)
        super().confirm(purchases)

    @classmethod
    def check_approval(cls, purchases):
        "Refuse purchases whose approval is pending, rejected or missing"
        for purchase in purchases:
            if purchase.approval_state == 'pending':
                raise PurchaseApprovalError(gettext(
                        'hrp_materials.msg_purchase_approval_pending',
                        purchase=purchase.rec_name))
            if purchase.approval_state == 'rejected':
                raise PurchaseApprovalError(gettext(
                        'hrp_materials.msg_purchase_approval_rejected',
                        purchase=purchase.rec_name,
                        reason=purchase.rejection_reason or ''))
            if (purchase.outside_contract_lines()
                    and purchase.approval_state != 'approved'):
                raise PurchaseApprovalError(gettext(
                        'hrp_materials.msg_purchase_approval_required',
                        purchase=purchase.rec_name))

    @classmethod
    def check_contracts(cls, purchases):
        """Refuse purchases whose contract lines are no longer valid or
        whose quantities or amounts exceed the contracts' ceilings; the
        contracts are locked so that concurrent confirmations cannot both
        pass.  Reset the contract prices the lines may have lost."""
        pool = Pool()
        Contract = pool.get('hrp.contract')
        Line = pool.get('purchase.line')
        lines = [l for p in purchases for l in p.line_lines
            if l.hrp_contract_line]
        if not lines:
            return
        contracts = {l.hrp_contract_line.contract for l in lines}
        Contract.lock(list(contracts))
        quantities = defaultdict(float)
        amounts = defaultdict(Decimal)
        for line in lines:
            purchase = line.purchase
            contract_line = line.hrp_contract_line
            contract = contract_line.contract
            date = purchase.contract_date()
            if (contract.state != 'active'
                    or not (contract.start_date <= date <= contract.end_date)
                    or contract.supplier != purchase.party
                    or contract.company != purchase.company
                    or contract_line.product != line.product
                    or purchase.currency != contract.currency):
                raise PurchaseApprovalError(gettext(
                        'hrp_materials.msg_purchase_contract_invalid',
                        purchase=purchase.rec_name,
                        material=line.product.rec_name
                        if line.product else '',
                        contract=contract.rec_name,
                        state=contract.state_string,
                        date=date))
            quantities[contract_line] += contract_line.quantity_in(
                line.quantity or 0, line.unit)
            amounts[contract] += line.amount or Decimal(0)
        ordered = contract_lines_ordered(
            {l for c in contracts for l in c.lines}, purchases)
        for contract_line, quantity in quantities.items():
            if contract_line.quantity_ceiling is None:
                continue
            before = ordered[contract_line.id][0]
            if contract_line.unit.round(before + quantity) > (
                    contract_line.quantity_ceiling):
                raise PurchaseApprovalError(gettext(
                        'hrp_materials.msg_purchase_quantity_ceiling',
                        contract=contract_line.contract.rec_name,
                        material=contract_line.product.rec_name,
                        ceiling=contract_line.quantity_ceiling,
                        ordered=contract_line.unit.round(before),
                        quantity=contract_line.unit.round(quantity),
                        unit=contract_line.unit.symbol))
        for contract, amount in amounts.items():
            if contract.amount_ceiling is None:
                continue
            before = sum((ordered[l.id][1] for l in contract.lines),
                Decimal(0))
            if contract.currency.round(before + amount) > (
                    contract.amount_ceiling):
                raise PurchaseApprovalError(gettext(
                        'hrp_materials.msg_purchase_amount_ceiling',
                        contract=contract.rec_name,
                        ceiling=contract.amount_ceiling,
                        ordered=contract.currency.round(before),
                        amount=contract.currency.round(amount)))
        changed = []
        for line in lines:
            price = line.hrp_contract_line.price_for(line.unit)
            if line.unit_price != price:
                line.unit_price = price
                changed.append(line)
        if changed:
            # Confirming resets the contract prices of quoted lines, which
            # the buyer may not change herself
            with without_check_access():
                Line.save(changed)


class PurchaseLine(metaclass=PoolMeta):
    __name__ = 'purchase.line'

    hrp_contract_line = fields.Many2One(
        'hrp.contract.line', "Contract", readonly=True, ondelete='RESTRICT',
        states={
            'invisible': Eval('type') != 'line',
            },
        help="The contract line whose price applies; empty when the line "
        "is outside any valid contract.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.unit_price.states = cls.unit_price.states.copy()
        cls.unit_price.states['readonly'] = (
            cls.unit_price.states.get('readonly', False)
            | Bool(Eval('hrp_contract_line')))
        cls.unit_price.depends |= {'hrp_contract_line'}

    @fields.depends(*CONTRACT_LINE_DEPENDS)
    def find_contract_line(self):
        "Return the contract line that applies to the line or None"
        line, = self.find_contract_lines([self])
        return line

    @classmethod
    def find_contract_lines(cls, lines):
        """Return the contract line that applies to each line or None, with
        one search per company and purchase date"""
        pool = Pool()
        Contract = pool.get('hrp.contract')
        Date = pool.get('ir.date')
        found = [None] * len(lines)
        groups = defaultdict(list)
        for i, line in enumerate(lines):
            purchase = line.purchase
            if (line.type != 'line' or not line.product or not purchase
                    or not purchase.party or not purchase.company
                    or purchase.currency != purchase.company.currency):
                continue
            date = purchase.purchase_date
            if not date:
                with Transaction().set_context(company=purchase.company.id):
                    date = Date.today()
            groups[purchase.company.id, date].append(i)
        for (company, date), indexes in groups.items():
            keys = [(lines[i].purchase.party, lines[i].product,
                    abs(lines[i].quantity) if lines[i].quantity else None,
                    lines[i].unit) for i in indexes]
            for i, contract_line in zip(indexes, Contract.find_lines(
                        keys, date, company=company)):
                found[i] = contract_line
        return found

    @fields.depends('hrp_contract_line', *CONTRACT_LINE_DEPENDS)
    def compute_unit_price(self):
        # Also links the line to its contract line: every change that
        # prices the line again (product, quantity, unit) finds it again
        price, = self.compute_unit_prices([self])
        return price

    @classmethod
    def compute_unit_prices(cls, lines):
        """Return the unit price of each line, linking it to the contract
        line that applies: the contract price, else Tryton's price"""
        prices = []
        for line, contract_line in zip(lines, cls.find_contract_lines(lines)):
            line.hrp_contract_line = contract_line
            if contract_line:
                prices.append(contract_line.price_for(
                        line.unit or line.product.purchase_uom))
            else:
                prices.append(super(PurchaseLine, line).compute_unit_price())
        return prices

    @classmethod
    def check_modification(cls, mode, lines, values=None, external=False):
        super().check_modification(
            mode, lines, values=values, external=external)
        if (mode == 'write' and external
                and values.keys() & FROZEN_LINE_FIELDS):
            for line in lines:
                if line.purchase.state == 'quotation':
                    raise PurchaseApprovalError(gettext(
                            'hrp_materials.msg_purchase_line_quoted',
                            purchase=line.purchase.rec_name))

    @classmethod
    def copy(cls, lines, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('hrp_contract_line', None)
        return super().copy(lines, default=default)
