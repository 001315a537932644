# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Three-way match (对账) of supplier invoices: the draft invoice Tryton makes
from what was received, typed over with the supplier's paper invoice, against
the purchase order and the receipt."""
import datetime as dt
import unittest
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.model.exceptions import ValidationError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from .tools import as_user, create_user, setup_accounting


def today():
    return Pool().get('ir.date').today()


class Hospital:
    "A company with accounting, a qualified supplier and two materials"

    def __init__(self, company):
        pool = Pool()
        Party = pool.get('party.party')
        Template = pool.get('product.template')
        Uom = pool.get('product.uom')
        self.company = company
        self.accounting = setup_accounting(company)
        unit, = Uom.search([('name', '=', 'Unit')])
        self.unit = unit
        far = today() + dt.timedelta(days=3650)
        self.gauze, self.catheter = Template.create([{
                    'name': name,
                    'type': 'goods',
                    'default_uom': unit.id,
                    'purchasable': True,
                    'purchase_uom': unit.id,
                    'account_category': self.accounting.account_category.id,
                    'registration_number': number,
                    'registration_expiry': far,
                    'products': [('create', [{'cost_price': cost}])],
                    } for name, number, cost in [
                    ("医用纱布", '国械注准20230001', Decimal('3')),
                    ("中心静脉导管", '国械注准20230002', Decimal('120')),
                    ]])
        self.supplier, = Party.create([{
                    'name': "华东医疗器械有限公司",
                    'addresses': [('create', [{'city': "上海"}])],
                    'hrp_licences': [('create', [{
                                    'type': 'device_trading',
                                    'number': 'JY-0001',
                                    'expiry': far,
                                    }])],
                    'hrp_authorised_materials': [
                        ('add', [self.gauze.id, self.catheter.id])],
                    }])
        self.contract(
            (self.gauze, Decimal('30')), (self.catheter, Decimal('1200')))

    def contract(self, *prices):
        "Put in force a contract of the supplier at prices (template, price)"
        pool = Pool()
        try:
            Contract = pool.get('hrp.contract')
        except KeyError:
            return
        contract, = Contract.create([{
                    'company': self.company.id,
                    'supplier': self.supplier.id,
                    'start_date': today() - dt.timedelta(days=30),
                    'end_date': today() + dt.timedelta(days=335),
                    'lines': [('create', [{
                                    'product': template.products[0].id,
                                    'unit': self.unit.id,
                                    'unit_price': price,
                                    } for template, price in prices])],
                    }])
        Contract.activate([contract])

    def purchase(self, *lines):
        "Confirm and process a purchase of (template, quantity, unit price)"
        pool = Pool()
        Purchase = pool.get('purchase.purchase')
        Location = pool.get('stock.location')
        warehouse, = Location.search([('type', '=', 'warehouse')], limit=1)
        purchase, = Purchase.create([{
                    'company': self.company.id,
                    'party': self.supplier.id,
                    'invoice_address': self.supplier.addresses[0].id,
                    'warehouse': warehouse.id,
                    'currency': self.company.currency.id,
                    'invoice_method': 'fulfillment',
                    'lines': [('create', [{
                                    'product': template.products[0].id,
                                    'quantity': quantity,
                                    'unit': self.unit.id,
                                    'unit_price': price,
                                    }
                                for template, quantity, price in lines])],
                    }])
        Purchase.quote([purchase])
        Purchase.confirm([purchase])
        Purchase.process([purchase])
        return purchase

    def receive(self, purchase, quantities=None):
        """Receive the moves of purchase (with quantities instead of the
        ordered ones) and return the draft invoice Tryton makes of them"""
        pool = Pool()
        Purchase = pool.get('purchase.purchase')
        Move = pool.get('stock.move')
        moves = [m for m in purchase.moves if m.state == 'draft']
        for move in moves:
            move.effective_date = today()
        if quantities:
            for move, quantity in zip(moves, quantities):
                move.quantity = quantity
        Move.save(moves)
        Move.do(moves)
        Purchase.process([purchase])
        purchase = Purchase(purchase.id)
        invoice, = [i for i in purchase.invoices if i.state == 'draft']
        return invoice

    def type_paper_invoice(self, invoice, reference, **line_values):
        "Enter the supplier's invoice number (and line values) on invoice"
        pool = Pool()
        Invoice = pool.get('account.invoice')
        Line = pool.get('account.invoice.line')
        Invoice.write([invoice], {
                'reference': reference,
                'invoice_date': today(),
                })
        if line_values:
            Line.write(list(invoice.lines), line_values)
        return Invoice(invoice.id)


class InvoiceMatchTestCase(unittest.TestCase):
    "Test the three-way match of supplier invoices"

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
    def test_match_and_post(self):
        "A supplier invoice as ordered and received matches and posts"
        pool = Pool()
        Invoice = pool.get('account.invoice')
        company = create_company()
        with set_company(company):
            hospital = Hospital(company)
            purchase = hospital.purchase(
                (hospital.gauze, 100, Decimal('30')),
                (hospital.catheter, 5, Decimal('1200')))
            invoice = hospital.receive(purchase)
            invoice = hospital.type_paper_invoice(invoice, 'FP-0001')
            self.assertIsNone(invoice.hrp_match_state)

            Invoice.hrp_match([invoice])
            invoice = Invoice(invoice.id)
            self.assertEqual(invoice.hrp_match_state, 'matched')
            self.assertFalse(invoice.hrp_match_notes)
            self.assertEqual(
                invoice.hrp_matched_by.id, Transaction().user)
            self.assertIsNotNone(invoice.hrp_matched_at)
            figures = sorted(
                (l.hrp_received_quantity, l.hrp_ordered_price,
                    l.hrp_match_state) for l in invoice.lines)
            self.assertEqual(figures, [
                    (5, Decimal('1200'), 'matched'),
                    (100, Decimal('30'), 'matched'),
                    ])

            Invoice.post([invoice])
            invoice = Invoice(invoice.id)
            self.assertEqual(invoice.state, 'posted')
            self.assertEqual(invoice.total_amount, Decimal('9000'))
            self.assertEqual(
                invoice.move.lines[0].account.company, company)

    @with_transaction()
    def test_price_higher_than_ordered(self):
        "A unit price above the ordered one is a mismatch with a note"
        pool = Pool()
        Invoice = pool.get('account.invoice')
        company = create_company()
        with set_company(company):
            hospital = Hospital(company)
            purchase = hospital.purchase(
                (hospital.gauze, 100, Decimal('30')))
            invoice = hospital.receive(purchase)
            invoice = hospital.type_paper_invoice(
                invoice, 'FP-0002', unit_price=Decimal('31.5'))

            Invoice.hrp_match([invoice])
            invoice = Invoice(invoice.id)
            self.assertEqual(invoice.hrp_match_state, 'mismatch')
            line, = invoice.lines
            self.assertEqual(line.hrp_match_state, 'mismatch')
            self.assertEqual(line.hrp_ordered_price, Decimal('30'))
            self.assertEqual(line.hrp_received_quantity, 100)
            self.assertIn("医用纱布", invoice.hrp_match_notes)
            self.assertIn("31.5", invoice.hrp_match_notes)
            self.assertIn("30", invoice.hrp_match_notes)
            self.assertIn(purchase.number, invoice.hrp_match_notes)

            with self.assertRaises(UserError):
                Invoice.post([invoice])
            self.assertEqual(Invoice(invoice.id).state, 'draft')
            self.assertEqual(Invoice.hrp_post_matched([invoice]), [])
            self.assertEqual(Invoice(invoice.id).state, 'draft')

    @with_transaction()
    def test_price_tolerance(self):
        "A price within the configured tolerance matches, beyond it not"
        pool = Pool()
        Invoice = pool.get('account.invoice')
        Configuration = pool.get('hrp.configuration')
        company = create_company()
        with set_company(company):
            hospital = Hospital(company)
            configuration = Configuration(1)
            self.assertEqual(configuration.match_price_tolerance, 0)
            self.assertEqual(configuration.match_quantity_tolerance, 0)
            with self.assertRaises(ValidationError):
                Configuration.write([configuration], {
                        'match_price_tolerance': Decimal('-1')})
            configuration.match_price_tolerance = Decimal('5')
            configuration.save()
            purchase = hospital.purchase(
                (hospital.gauze, 100, Decimal('30')))
            invoice = hospital.receive(purchase)
            invoice = hospital.type_paper_invoice(
                invoice, 'FP-0003', unit_price=Decimal('31.5'))
            Invoice.hrp_match([invoice])
            self.assertEqual(
                Invoice(invoice.id).hrp_match_state, 'matched')

            invoice = hospital.type_paper_invoice(
                invoice, 'FP-0003', unit_price=Decimal('31.51'))
            Invoice.hrp_match([invoice])
            self.assertEqual(
                Invoice(invoice.id).hrp_match_state, 'mismatch')

    @with_transaction()
    def test_quantity_above_received(self):
        "Invoicing more than received is a mismatch; posting it is refused"
        pool = Pool()
        Invoice = pool.get('account.invoice')
        company = create_company()
        with set_company(company):
            hospital = Hospital(company)
            purchase = hospital.purchase(
                (hospital.catheter, 10, Decimal('1200')))
            # the supplier delivered 8 of 10 but invoices 10
            invoice = hospital.receive(purchase, quantities=[8])
            self.assertEqual(invoice.lines[0].quantity, 8)
            invoice = hospital.type_paper_invoice(
                invoice, 'FP-0004', quantity=10)

            Invoice.hrp_match([invoice])
            invoice = Invoice(invoice.id)
            self.assertEqual(invoice.hrp_match_state, 'mismatch')
            line, = invoice.lines
            self.assertEqual(line.hrp_received_quantity, 8)
            self.assertIn("中心静脉导管", invoice.hrp_match_notes)
            self.assertIn("10", invoice.hrp_match_notes)
            self.assertIn("8", invoice.hrp_match_notes)
            with self.assertRaises(UserError):
                Invoice.post([invoice])
            self.assertEqual(Invoice(invoice.id).state, 'draft')

            # invoicing less than received is not a mismatch
            invoice = hospital.type_paper_invoice(
                invoice, 'FP-0004', quantity=6)
            Invoice.hrp_match([invoice])
            self.assertEqual(
                Invoice(invoice.id).hrp_match_state, 'matched')

    @with_transaction()
    def test_already_invoiced(self):
        """What another posted invoice invoiced is no longer available: a
        second invoice of the same receipt is a mismatch"""
        pool = Pool()
        Invoice = pool.get('account.invoice')
        Line = pool.get('account.invoice.line')
        company = create_company()
        with set_company(company):
            hospital = Hospital(company)
            purchase = hospital.purchase(
                (hospital.gauze, 100, Decimal('30')))
            invoice = hospital.receive(purchase)
            invoice = hospital.type_paper_invoice(invoice, 'FP-0005')
            line, = invoice.lines
            # the supplier sends the same invoice twice
            duplicate, = Invoice.copy([invoice], default={
                    'reference': 'FP-0005-B',
                    'invoice_date': today(),
                    })
            Line.write(list(duplicate.lines), {'origin': str(line.origin)})
            # matched before either is posted, both match
            Invoice.hrp_match([invoice, duplicate])
            self.assertEqual(
                [i.hrp_match_state for i in Invoice.browse(
                        [invoice, duplicate])], ['matched', 'matched'])
            Invoice.post([invoice])
            self.assertEqual(Invoice(invoice.id).state, 'posted')
            # the post checks the match again
            with self.assertRaises(UserError) as cm:
                Invoice.post([duplicate])
            self.assertIn("医用纱布", cm.exception.message)
            self.assertEqual(Invoice(duplicate.id).state, 'draft')

            Invoice.hrp_match([duplicate])
            duplicate = Invoice(duplicate.id)
            self.assertEqual(duplicate.hrp_match_state, 'mismatch')
            self.assertEqual(duplicate.lines[0].hrp_received_quantity, 0)

    @with_transaction()
    def test_line_not_ordered(self):
        "A line that comes from no purchase line is a mismatch"
        pool = Pool()
        Invoice = pool.get('account.invoice')
        Line = pool.get('account.invoice.line')
        company = create_company()
        with set_company(company):
            hospital = Hospital(company)
            purchase = hospital.purchase(
                (hospital.gauze, 100, Decimal('30')))
            invoice = hospital.receive(purchase)
            invoice = hospital.type_paper_invoice(invoice, 'FP-0006')
            Line.create([{
                        'invoice': invoice.id,
                        'type': 'line',
                        'product': hospital.catheter.products[0].id,
                        'quantity': 1,
                        'unit': hospital.unit.id,
                        'unit_price': Decimal('1200'),
                        'account': hospital.accounting.expense.id,
                        }])
            Invoice.hrp_match([invoice])
            invoice = Invoice(invoice.id)
            self.assertEqual(invoice.hrp_match_state, 'mismatch')
            states = {l.product.template: l.hrp_match_state
                for l in invoice.lines}
            self.assertEqual(states, {
                    hospital.gauze: 'matched',
                    hospital.catheter: 'mismatch',
                    })
            notes = invoice.hrp_match_notes.splitlines()
            self.assertEqual(len(notes), 1)
            self.assertIn("中心静脉导管", notes[0])
            with self.assertRaises(UserError):
                Invoice.post([invoice])

    @with_transaction()
    def test_unmatched_refused_and_edit_resets(self):
        """A purchase invoice is not posted before it is matched; editing a
        matched invoice's lines resets its match"""
        pool = Pool()
        Invoice = pool.get('account.invoice')
        Line = pool.get('account.invoice.line')
        company = create_company()
        with set_company(company):
            hospital = Hospital(company)
            purchase = hospital.purchase(
                (hospital.gauze, 100, Decimal('30')))
            invoice = hospital.receive(purchase)
            invoice = hospital.type_paper_invoice(invoice, 'FP-0007')
            with self.assertRaises(UserError):
                Invoice.post([invoice])
            self.assertEqual(Invoice(invoice.id).state, 'draft')
            # validating (pro forma) is no posting
            Invoice.validate_invoice([invoice])
            with self.assertRaises(UserError):
                Invoice.post([invoice])
            invoice = Invoice(invoice.id)
            self.assertEqual(invoice.state, 'validated')
            Invoice.draft([invoice])

            Invoice.hrp_match([invoice])
            invoice = Invoice(invoice.id)
            self.assertEqual(invoice.hrp_match_state, 'matched')
            # a note is no change of the match
            Line.write(list(invoice.lines), {'note': "纸质发票已收"})
            self.assertEqual(
                Invoice(invoice.id).hrp_match_state, 'matched')
            Line.write(list(invoice.lines), {'unit_price': Decimal('29')})
            invoice = Invoice(invoice.id)
            self.assertIsNone(invoice.hrp_match_state)
            self.assertIsNone(invoice.lines[0].hrp_match_state)
            with self.assertRaises(UserError):
                Invoice.post([invoice])

            Invoice.hrp_match([invoice])
            self.assertEqual(
                Invoice(invoice.id).hrp_match_state, 'matched')
            # a line added (or deleted) resets it too
            Line.create([{
                        'invoice': invoice.id, 'type': 'comment',
                        'description': "备注"}])
            self.assertIsNone(Invoice(invoice.id).hrp_match_state)
            Invoice.hrp_match([invoice])
            comment, = [l for l in Invoice(invoice.id).lines
                if l.type == 'comment']
            Line.delete([comment])
            self.assertIsNone(Invoice(invoice.id).hrp_match_state)

    @with_transaction()
    def test_post_despite_mismatch(self):
        "Finance posts a mismatched invoice with a reason, recorded"
        pool = Pool()
        Invoice = pool.get('account.invoice')
        company = create_company()
        with set_company(company):
            hospital = Hospital(company)
            purchase = hospital.purchase(
                (hospital.gauze, 100, Decimal('30')))
            invoice = hospital.receive(purchase)
            invoice = hospital.type_paper_invoice(
                invoice, 'FP-0008', unit_price=Decimal('32'))
            Invoice.hrp_match([invoice])

            with self.assertRaises(UserError):
                Invoice.hrp_post_despite_mismatch([invoice], "  ")
            invoice = Invoice(invoice.id)
            self.assertEqual(invoice.state, 'draft')
            self.assertIsNone(invoice.hrp_override_reason)

            Invoice.hrp_post_despite_mismatch(
                [invoice], "供应商调价函已审批")
            invoice = Invoice(invoice.id)
            self.assertEqual(invoice.state, 'posted')
            self.assertEqual(invoice.hrp_match_state, 'mismatch')
            self.assertEqual(invoice.hrp_override_reason, "供应商调价函已审批")
            self.assertEqual(invoice.hrp_override_by.id, Transaction().user)
            self.assertIsNotNone(invoice.hrp_override_at)

    @with_transaction()
    def test_invoice_without_purchase_posts(self):
        "A supplier invoice from no purchase posts without a match"
        pool = Pool()
        Invoice = pool.get('account.invoice')
        company = create_company()
        with set_company(company):
            hospital = Hospital(company)
            invoice = Invoice(
                company=company, type='in', party=hospital.supplier,
                invoice_date=today(), reference='WATER-01',
                currency=company.currency,
                account=hospital.accounting.payable)
            invoice.on_change_type()
            invoice.invoice_address = hospital.supplier.addresses[0]
            invoice.lines = [{
                    'type': 'line', 'description': "水费",
                    'quantity': 1, 'unit_price': Decimal('500'),
                    'account': hospital.accounting.expense.id,
                    }]
            invoice.save()
            Invoice.post([invoice])
            self.assertEqual(Invoice(invoice.id).state, 'posted')
            # but it cannot be matched once posted
            with self.assertRaises(UserError):
                Invoice.hrp_match([invoice])

    @with_transaction()
    def test_cron_posts_only_matched(self):
        """The scheduled match posts the matched invoices that have the
        supplier's reference and leaves the others"""
        pool = Pool()
        Invoice = pool.get('account.invoice')
        Cron = pool.get('ir.cron')
        ModelData = pool.get('ir.model.data')
        company = create_company()
        with set_company(company):
            hospital = Hospital(company)
            invoices = []
            for reference, price in [
                    ('FP-0101', Decimal('30')),
                    ('FP-0102', Decimal('33')),
                    (None, Decimal('30')),
                    ]:
                purchase = hospital.purchase(
                    (hospital.gauze, 10, Decimal('30')))
                invoice = hospital.receive(purchase)
                if reference:
                    invoice = hospital.type_paper_invoice(
                        invoice, reference, unit_price=price)
                invoices.append(invoice)

            cron = Cron(ModelData.get_id(
                    'hrp_materials', 'cron_invoice_match_and_post'))
            cron.companies = [company]
            cron.save()
            with Transaction().set_user(0):
                Cron.run_once([cron])
            good, bad, waiting = Invoice.browse(invoices)
            self.assertEqual(
                (good.state, good.hrp_match_state), ('posted', 'matched'))
            self.assertEqual(
                (bad.state, bad.hrp_match_state), ('draft', 'mismatch'))
            self.assertEqual(
                (waiting.state, waiting.hrp_match_state), ('draft', None))

    @with_transaction()
    def test_finance_user(self):
        "A finance user matches and posts from the desk"
        pool = Pool()
        Invoice = pool.get('account.invoice')
        company = create_company()
        with set_company(company):
            hospital = Hospital(company)
            purchase = hospital.purchase(
                (hospital.gauze, 100, Decimal('30')))
            invoice = hospital.receive(purchase)
            invoice = hospital.type_paper_invoice(invoice, 'FP-0009')
            finance = create_user(
                'finance', 'hrp_materials.group_finance', company)
            nurse = create_user(
                'nurse', 'hrp_materials.group_nurse', company)
            with as_user(nurse, company):
                with self.assertRaises(UserError):
                    Invoice.hrp_match([Invoice(invoice.id)])
            with as_user(finance, company):
                invoice = Invoice(invoice.id)
                self.assertTrue(
                    Invoice.search([('hrp_match_state', '=', None)]))
                Invoice.hrp_post_matched([invoice])
            invoice = Invoice(invoice.id)
            self.assertEqual(invoice.state, 'posted')
            self.assertEqual(invoice.hrp_matched_by, finance)

