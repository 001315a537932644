# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Contracts, contract prices on purchase orders, the qualification gate
and the approval of purchases outside contract."""
import datetime as dt
import unittest
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from .tools import as_user, create_user


def today():
    return Pool().get('ir.date').today()


def days(n):
    return today() + dt.timedelta(days=n)


def approve_pending(purchases):
    """Approve (as the root user, whom the engine lets decide any step) the
    pending approvals of purchases, e.g. those outside contract"""
    Task = Pool().get('hrp.approval.task')
    tasks = Task.search([
            ('document', 'in', [str(p) for p in purchases]),
            ('state', '=', 'pending'),
            ])
    with Transaction().set_user(0):
        Task.approve(tasks)
    return tasks


def create_contract(company, supplier, prices, activate=True, **values):
    """Create (and activate) a contract of supplier for prices: a list of
    (product, unit price[, quantity ceiling])"""
    Contract = Pool().get('hrp.contract')
    contract, = Contract.create([{
                'company': company.id,
                'supplier': supplier.id,
                'start_date': values.pop('start_date', days(-30)),
                'end_date': values.pop('end_date', days(335)),
                'lines': [('create', [{
                                'product': p[0].id,
                                'unit': p[0].purchase_uom.id,
                                'unit_price': p[1],
                                'quantity_ceiling': p[2] if len(p) > 2
                                else None,
                                } for p in prices])],
                **values}])
    if activate:
        Contract.activate([contract])
    return Contract(contract.id)


class Procurement:
    "A company, a qualified supplier, two materials, a buyer and a leader"

    def __init__(self):
        self.company = create_company()
        with set_company(self.company):
            self._setup()

    def _setup(self):
        pool = Pool()
        Party = pool.get('party.party')
        Template = pool.get('product.template')
        Uom = pool.get('product.uom')
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        self.unit, = Uom.search([('name', '=', 'Unit')])
        self.dozen, = Uom.create([{
                    'name': "盒(10)", 'symbol': "盒", 'category':
                    self.unit.category.id, 'factor': 10, 'rate': 0.1,
                    'rounding': 1, 'digits': 0}])
        self.gauze, self.stent = [t.products[0] for t in Template.create([{
                        'name': name,
                        'type': 'goods',
                        'default_uom': self.unit.id,
                        'purchasable': True,
                        'purchase_uom': self.unit.id,
                        'registration_number': number,
                        'registration_expiry': days(3650),
                        'products': [('create', [{}])],
                        } for name, number in [
                        ("医用纱布", '国械注准20230001'),
                        ("冠脉支架", '国械注准20230002'),
                        ]])]
        self.supplier, = Party.create([{
                    'name': "华东医疗器械有限公司",
                    'addresses': [('create', [{'city': "上海"}])],
                    'hrp_licences': [('create', [{
                                    'type': 'device_trading',
                                    'number': 'JY-0001',
                                    'expiry': days(365),
                                    }])],
                    'hrp_authorised_materials': [('add', [
                                self.gauze.template.id,
                                self.stent.template.id])],
                    }])
        self.buyer = create_user(
            'buyer', 'hrp_materials.group_procurement', self.company)
        User.write([self.buyer], {'groups': [('add', [
                            ModelData.get_id('purchase', 'group_purchase')])]})
        self.leader = create_user(
            'leader', 'hrp_materials.group_leadership', self.company)

    def purchase(self, lines, user=None, on_change=False):
        """A draft purchase of lines [(product, quantity[, unit price
        [, unit]])] created by user (the buyer); with on_change the lines
        are priced as the desk does"""
        pool = Pool()
        Purchase = pool.get('purchase.purchase')
        Line = pool.get('purchase.line')
        Location = pool.get('stock.location')
        warehouse, = Location.search([('type', '=', 'warehouse')], limit=1)
        with as_user(user or self.buyer, self.company):
            purchase, = Purchase.create([{
                        'company': self.company.id,
                        'party': self.supplier.id,
                        'invoice_address': self.supplier.addresses[0].id,
                        'warehouse': warehouse.id,
                        'currency': self.company.currency.id,
                        'invoice_method': 'manual',
                        }])
            new_lines = []
            for product, quantity, *rest in lines:
                line = Line(purchase=purchase, type='line', product=product,
                    quantity=quantity,
                    unit=rest[1] if len(rest) > 1 else product.purchase_uom,
                    unit_price=rest[0] if rest else Decimal('1'),
                    taxes=[])
                if on_change:
                    line.on_change_quantity()
                new_lines.append(line)
            Line.save(new_lines)
        return Purchase(purchase.id)

    def act(self, user, method, records, *args):
        with as_user(user, self.company):
            Model = records[0].__class__
            records = Model.browse([r.id for r in records])
            return getattr(Model, method)(records, *args)

    def pending(self, purchase):
        Task = Pool().get('hrp.approval.task')
        return Task.search([
                ('document', '=', str(purchase)),
                ('state', '=', 'pending')])

    def reject(self, user, records, reason):
        Wizard = Pool().get('hrp.approval.reject', type='wizard')
        with as_user(user, self.company), Transaction().set_context(
                active_model=records[0].__name__,
                active_ids=[r.id for r in records],
                active_id=records[0].id):
            session_id, _, _ = Wizard.create()
            Wizard.execute(session_id, {'start': {'reason': reason}},
                'reject')
            Wizard.delete(session_id)


def reload(record):
    return record.__class__(record.id)


def snapshot(purchase):
    "What quoting changes on a purchase, its lines and its approval"
    Task = Pool().get('hrp.approval.task')
    purchase = reload(purchase)
    return (purchase.state, purchase.number, purchase.approval_state,
        [(l.hrp_contract_line, l.unit_price) for l in purchase.lines],
        len(Task.search([('document', '=', str(purchase))])))


class ContractTestCase(unittest.TestCase):
    "Test contracts, contract prices and the qualification gate"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    @with_transaction()
    def test_contract_price_taken(self):
        "A purchase line takes the contract price, in its own unit"
        p = Procurement()
        with set_company(p.company):
            contract = create_contract(p.company, p.supplier, [
                    (p.gauze, Decimal('2.5000'))])
            self.assertTrue(contract.number.startswith('HT'))
            self.assertEqual(contract.activated_by.id, 1)
            purchase = p.purchase([
                    (p.gauze, 10, Decimal('9')),
                    (p.gauze, 2, Decimal('9'), p.dozen),
                    ], on_change=True)
            by_unit, by_dozen = purchase.lines
            self.assertEqual(by_unit.hrp_contract_line, contract.lines[0])
            self.assertEqual(by_unit.unit_price, Decimal('2.5000'))
            self.assertEqual(by_dozen.unit_price, Decimal('25.0000'))
            self.assertFalse(purchase.outside_contract)

            # a price typed over the contract price is reset at quote
            by_unit.unit_price = Decimal('3')
            by_unit.save()
            p.act(p.buyer, 'quote', [purchase])
            purchase = reload(purchase)
            self.assertEqual(purchase.state, 'quotation')
            self.assertEqual(purchase.lines[0].unit_price, Decimal('2.5000'))
            # fully under contract: nothing to approve
            self.assertEqual(purchase.approval_state, 'approved')
            self.assertFalse(p.pending(purchase))
            p.act(p.buyer, 'confirm', [purchase])
            purchase = reload(purchase)
            self.assertEqual(purchase.state, 'confirmed')
            contract = reload(contract)
            line, = contract.lines
            self.assertEqual(line.ordered_quantity, 30)
            self.assertEqual(line.ordered_amount, Decimal('75.00'))
            self.assertEqual(contract.ordered_amount, Decimal('75.00'))

            # a quoted purchase's lines cannot be changed
            purchase2 = p.purchase([(p.gauze, 1)], on_change=True)
            p.act(p.buyer, 'quote', [purchase2])
            with self.assertRaises(UserError):
                with as_user(p.buyer, p.company):
                    Line = Pool().get('purchase.line')
                    Line.write(list(reload(purchase2).lines),
                        {'unit_price': Decimal('1')})

    @with_transaction()
    def test_active_contract_frozen(self):
        "An active contract cannot be edited; closing records why"
        pool = Pool()
        Contract = pool.get('hrp.contract')
        Wizard = pool.get('hrp.contract.close', type='wizard')
        p = Procurement()
        with set_company(p.company):
            contract = create_contract(p.company, p.supplier, [
                    (p.gauze, Decimal('2'))])
            for values in [{'end_date': days(700)}, {'reference': 'X'}]:
                with self.assertRaises(UserError):
                    with as_user(p.buyer, p.company):
                        Contract.write([Contract(contract.id)], values)
            with self.assertRaises(UserError):
                with as_user(p.buyer, p.company):
                    Contract.write([Contract(contract.id)], {
                            'lines': [('write', [contract.lines[0].id], {
                                        'unit_price': Decimal('3')})]})
            with self.assertRaises(UserError):
                Contract.delete([contract])
            with as_user(p.buyer, p.company), Transaction().set_context(
                    active_model='hrp.contract', active_ids=[contract.id],
                    active_id=contract.id):
                session_id, _, _ = Wizard.create()
                Wizard.execute(session_id, {'start': {
                            'reason': "供应商停产"}}, 'close')
                Wizard.delete(session_id)
            contract = reload(contract)
            self.assertEqual(contract.state, 'closed')
            self.assertEqual(contract.closed_by, p.buyer)
            self.assertEqual(contract.close_reason, "供应商停产")
            self.assertTrue(contract.closed_at)
            # a closed contract no longer prices the lines
            purchase = p.purchase([(p.gauze, 1, Decimal('7'))],
                on_change=True)
            line, = purchase.lines
            self.assertIsNone(line.hrp_contract_line)
            self.assertEqual(line.unit_price, Decimal('7'))
            # reasons are required
            with self.assertRaises(UserError):
                Contract.do_cancel([contract], " ")

    @with_transaction()
    def test_activation_needs_qualified_supplier(self):
        "A contract for a material the supplier may not deliver stays draft"
        pool = Pool()
        Template = pool.get('product.template')
        p = Procurement()
        with set_company(p.company):
            other, = Template.create([{
                        'name': "导尿管", 'type': 'goods',
                        'default_uom': p.unit.id, 'purchasable': True,
                        'purchase_uom': p.unit.id,
                        'products': [('create', [{}])]}])
            contract = create_contract(p.company, p.supplier, [
                    (other.products[0], Decimal('2'))], activate=False)
            with self.assertRaises(UserError) as cm:
                p.act(p.buyer, 'activate', [contract])
            self.assertIn("导尿管", cm.exception.message)
            contract = reload(contract)
            self.assertEqual(contract.state, 'draft')
            self.assertIsNone(contract.number)

    @with_transaction()
    def test_expired_contract_not_applied(self):
        "Only a contract valid at the purchase date gives its price"
        p = Procurement()
        with set_company(p.company):
            current = create_contract(p.company, p.supplier, [
                    (p.gauze, Decimal('2'))],
                start_date=days(-60), end_date=days(10))
            create_contract(p.company, p.supplier, [
                    (p.gauze, Decimal('1.5'))],
                start_date=days(30), end_date=days(100))
            for date, contract_line, price in [
                    (days(5), current.lines[0], Decimal('2')),
                    (days(20), None, Decimal('3')),
                    (days(-61), None, Decimal('3')),
                    ]:
                purchase = p.purchase([(p.gauze, 4, Decimal('3'))])
                purchase.purchase_date = date
                purchase.save()
                line, = purchase.lines
                line.on_change_quantity()
                self.assertEqual(line.hrp_contract_line, contract_line)
                self.assertEqual(line.unit_price, price)
            # quoting a purchase dated after the end: outside contract
            line.save()
            p.act(p.buyer, 'quote', [purchase])
            purchase = reload(purchase)
            self.assertTrue(purchase.outside_contract)
            self.assertEqual(purchase.approval_state, 'pending')

    @with_transaction()
    def test_outside_contract_approval(self):
        "Ordering outside contract waits for the leadership's approval"
        pool = Pool()
        Rule = pool.get('hrp.approval.rule')
        Task = pool.get('hrp.approval.task')
        p = Procurement()
        with set_company(p.company):
            create_contract(p.company, p.supplier, [(p.gauze, Decimal('2'))])
            purchase = p.purchase([
                    (p.gauze, 10), (p.stent, 1, Decimal('8000'))],
                on_change=True)
            self.assertTrue(purchase.outside_contract)
            p.act(p.buyer, 'quote', [purchase])
            purchase = reload(purchase)
            self.assertEqual(purchase.state, 'quotation')
            self.assertEqual(purchase.approval_state, 'pending')
            # the company's default rule was created for the purpose
            rule, = Rule.search([
                    ('document', '=', 'purchase.purchase'),
                    ('company', '=', p.company.id)])
            self.assertTrue(rule.outside_contract)
            self.assertEqual(purchase.approval_rule, rule)
            task, = p.pending(purchase)
            self.assertEqual(task.amount, Decimal('8020.00'))
            self.assertEqual(task.approver_group.id, Pool().get(
                    'ir.model.data').get_id(
                    'hrp_materials', 'group_leadership'))

            with self.assertRaises(UserError):
                p.act(p.buyer, 'confirm', [purchase])
            self.assertEqual(reload(purchase).state, 'quotation')
            # the buyer is no approver
            with self.assertRaises(UserError):
                p.act(p.buyer, 'approve', [task])

            with as_user(p.leader, p.company):
                self.assertEqual(
                    Task.search([('pending_for_me', '=', True)]), [task])
            p.act(p.leader, 'approve', [task])
            purchase = reload(purchase)
            self.assertEqual(purchase.approval_state, 'approved')
            self.assertEqual(purchase.state, 'quotation')
            self.assertEqual(reload(task).decided_by, p.leader)
            p.act(p.buyer, 'confirm', [purchase])
            self.assertEqual(reload(purchase).state, 'confirmed')

            # under contract only: the outside-contract rule does not apply
            purchase2 = p.purchase([(p.gauze, 1)], on_change=True)
            p.act(p.buyer, 'quote', [purchase2])
            purchase2 = reload(purchase2)
            self.assertEqual(purchase2.approval_state, 'approved')
            self.assertFalse(p.pending(purchase2))

    @with_transaction()
    def test_outside_contract_rejected(self):
        "A rejection returns the purchase to draft with the reason"
        p = Procurement()
        with set_company(p.company):
            purchase = p.purchase([(p.stent, 1, Decimal('8000'))])
            p.act(p.buyer, 'quote', [purchase])
            p.reject(p.leader, p.pending(purchase), "价格过高，请先谈合同")
            purchase = reload(purchase)
            self.assertEqual(purchase.state, 'draft')
            self.assertEqual(purchase.approval_state, 'rejected')
            self.assertEqual(purchase.rejection_reason, "价格过高，请先谈合同")
            task, = purchase.approval_tasks
            self.assertEqual(task.state, 'rejected')
            self.assertEqual(task.decided_by, p.leader)
            # quoting again asks again
            p.act(p.buyer, 'quote', [purchase])
            purchase = reload(purchase)
            self.assertEqual(purchase.approval_state, 'pending')
            self.assertIsNone(purchase.rejection_reason)
            # back to draft by the buyer: the pending task is cancelled
            p.act(p.buyer, 'draft', [purchase])
            purchase = reload(purchase)
            self.assertIsNone(purchase.approval_state)
            self.assertEqual(
                sorted(t.state for t in purchase.approval_tasks),
                ['cancelled', 'rejected'])

    @with_transaction()
    def test_no_rule_refused(self):
        "Without an applicable rule, a purchase outside contract is refused"
        Rule = Pool().get('hrp.approval.rule')
        p = Procurement()
        with set_company(p.company):
            purchase = p.purchase([(p.stent, 1, Decimal('8000'))])
            p.act(p.buyer, 'quote', [purchase])
            purchase = reload(purchase)
            p.act(p.buyer, 'draft', [purchase])
            rule, = Rule.search([('document', '=', 'purchase.purchase')])
            Rule.write([rule], {'active': False})
            with self.assertRaises(UserError):
                p.act(p.buyer, 'quote', [purchase])
            purchase = reload(purchase)
            self.assertEqual(purchase.state, 'draft')
            self.assertIsNone(purchase.approval_state)
            # confirming a purchase outside contract never approved fails
            Purchase = Pool().get('purchase.purchase')
            Purchase.write([purchase], {'state': 'quotation'})
            with self.assertRaises(UserError):
                p.act(p.buyer, 'confirm', [purchase])
            self.assertEqual(reload(purchase).state, 'quotation')

    @with_transaction()
    def test_quantity_ceiling(self):
        "Confirming beyond a contract's quantity ceiling is refused"
        p = Procurement()
        with set_company(p.company):
            contract = create_contract(p.company, p.supplier, [
                    (p.gauze, Decimal('2'), 100)])
            first = p.purchase([(p.gauze, 60)], on_change=True)
            p.act(p.buyer, 'quote', [first])
            p.act(p.buyer, 'confirm', [first])
            second = p.purchase([(p.gauze, 41)], on_change=True)
            # the only contract line is kept: the excess is refused
            self.assertEqual(
                second.lines[0].hrp_contract_line, contract.lines[0])
            p.act(p.buyer, 'quote', [second])
            with self.assertRaises(UserError) as cm:
                p.act(p.buyer, 'confirm', [second])
            self.assertIn('100', cm.exception.message)
            self.assertEqual(reload(second).state, 'quotation')
            line = reload(contract.lines[0])
            self.assertEqual(line.ordered_quantity, 60)
            self.assertEqual(line.remaining_quantity, 40)

            third = p.purchase([(p.gauze, 40)], on_change=True)
            p.act(p.buyer, 'quote', [third])
            p.act(p.buyer, 'confirm', [third])
            self.assertEqual(reload(third).state, 'confirmed')
            self.assertEqual(reload(contract.lines[0]).remaining_quantity, 0)

    @with_transaction()
    def test_amount_ceiling(self):
        "Confirming beyond a contract's amount ceiling is refused"
        p = Procurement()
        with set_company(p.company):
            contract = create_contract(p.company, p.supplier, [
                    (p.gauze, Decimal('2')), (p.stent, Decimal('5000'))],
                amount_ceiling=Decimal('10000'))
            first = p.purchase([(p.stent, 1), (p.gauze, 500)],
                on_change=True)
            p.act(p.buyer, 'quote', [first])
            p.act(p.buyer, 'confirm', [first])
            self.assertEqual(
                reload(contract).ordered_amount, Decimal('6000.00'))
            second = p.purchase([(p.stent, 1)], on_change=True)
            p.act(p.buyer, 'quote', [second])
            with self.assertRaises(UserError) as cm:
                p.act(p.buyer, 'confirm', [second])
            self.assertIn('10000', cm.exception.message)
            self.assertEqual(reload(second).state, 'quotation')
            self.assertEqual(
                reload(contract).remaining_amount, Decimal('4000.00'))

    @with_transaction()
    def test_gate_expired_licence(self):
        "A supplier whose licence expired cannot be quoted"
        pool = Pool()
        Licence = pool.get('hrp.supplier.licence')
        p = Procurement()
        with set_company(p.company):
            purchase = p.purchase([(p.gauze, 5, Decimal('2'))])
            licence, = p.supplier.hrp_licences
            Licence.write([licence], {'expiry': days(-1)})
            before = snapshot(purchase)
            with self.assertRaises(UserError) as cm:
                p.act(p.buyer, 'quote', [purchase])
            self.assertIn('JY-0001', cm.exception.message)
            self.assertEqual(snapshot(purchase), before)

    @with_transaction()
    def test_gate_not_authorised(self):
        "A material outside the supplier's authorised scope is refused"
        pool = Pool()
        Party = pool.get('party.party')
        p = Procurement()
        with set_company(p.company):
            create_contract(p.company, p.supplier, [(p.gauze, Decimal('2'))])
            purchase = p.purchase([(p.gauze, 5), (p.stent, 1)],
                on_change=True)
            Party.write([p.supplier], {'hrp_authorised_materials': [
                        ('remove', [p.stent.template.id])]})
            before = snapshot(purchase)
            with self.assertRaises(UserError) as cm:
                p.act(p.buyer, 'quote', [purchase])
            self.assertIn("冠脉支架", cm.exception.message)
            self.assertEqual(snapshot(purchase), before)

    @with_transaction()
    def test_gate_registration_expired(self):
        "A material whose registration certificate expired is refused"
        p = Procurement()
        with set_company(p.company):
            purchase = p.purchase([(p.stent, 1, Decimal('8000'))])
            p.act(p.buyer, 'quote', [purchase])
            approve_pending([purchase])
            # the certificate expires between the quotation and the order
            template = p.stent.template
            table = template.__table__()
            cursor = Transaction().connection.cursor()
            cursor.execute(*table.update(
                    [table.registration_expiry], [days(-1)],
                    where=table.id == template.id))
            Transaction().cache.clear()
            purchase = reload(purchase)
            with self.assertRaises(UserError) as cm:
                p.act(p.buyer, 'confirm', [purchase])
            self.assertIn('国械注准20230002', cm.exception.message)
            self.assertEqual(reload(purchase).state, 'quotation')
            p.act(p.buyer, 'draft', [purchase])
            before = snapshot(purchase)
            with self.assertRaises(UserError):
                p.act(p.buyer, 'quote', [purchase])
            self.assertEqual(snapshot(purchase), before)
