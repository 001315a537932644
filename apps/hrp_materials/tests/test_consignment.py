# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Consignment stock (寄售) in the operating theatre's store: units received
by UDI scan without order stay the supplier's until a usage registration
takes them, which creates the supplier invoice line at the contract price;
a reversed line gives them back."""
import unittest
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from .test_consumption import days, today
from .test_contract import create_contract
from .test_receiving import Receiving, create_supplier, gs1, gtin, stock
from .tools import (
    as_user, create_cost_center, create_department, create_store,
    create_user, setup_accounting)

CONTRACT_PRICE = Decimal('6200.0000')


class Theatre(Receiving):
    """The operating theatre (手术室) with its high-value store, a contract
    price for the stent and the accounts its invoice lines need"""

    def _setup(self):
        pool = Pool()
        Location = pool.get('stock.location')
        Template = pool.get('product.template')
        super()._setup()
        self.accounting = setup_accounting(self.company)
        Template.write([self.stent.template, self.syringe.template], {
                'account_category': self.accounting.account_category.id,
                })
        self.theatre = create_department(
            self.company, 'SSS', "手术室",
            cost_center=create_cost_center(self.company, "手术室成本").id)
        self.store = create_store(
            "手术室高值库", self.theatre, store_type='high_value')
        Location.write([self.store], {'parent': self.warehouse.id})
        create_contract(
            self.company, self.supplier, [
                (self.stent, CONTRACT_PRICE),
                (self.syringe, Decimal('0.9'))])
        self.nurse = create_user(
            'nurse.sss', 'hrp_materials.group_nurse', self.company)
        self.head_nurse = create_user(
            'headnurse.sss', 'hrp_materials.group_head_nurse', self.company)
        self.theatre.members = [self.nurse]
        self.theatre.head_nurse = self.head_nurse
        self.theatre.save()

    def consignment_receipt(self, supplier=None, store=None):
        Receipt = Pool().get('hrp.receipt')
        receipt, = Receipt.create([{
                    'company': self.company.id,
                    'kind': 'consignment',
                    'supplier': (supplier or self.supplier).id,
                    'store': (store or self.store).id,
                    }])
        return receipt

    def receive(self, serials, expiry=None):
        "Receive the stents serials on consignment; return their lots"
        Receipt = Pool().get('hrp.receipt')
        receipt = self.consignment_receipt()
        for serial in serials:
            Receipt.scan_barcode(receipt.id, gs1(
                    gtin(2), expiry=expiry or days(400), lot='B7',
                    serial=serial))
        with as_user(self.keeper, self.company):
            Receipt.receive([Receipt(receipt.id)])
        receipt = Receipt(receipt.id)
        return {l.serial: l.lot for l in receipt.lines}

    def use(self, lines, kind='bulk'):
        """Post, as the theatre nurse, a usage registration of lines
        [(product, quantity, lot or None)]"""
        Consumption = Pool().get('hrp.consumption')
        with as_user(self.nurse, self.company):
            consumption, = Consumption.create([{
                        'department': self.theatre.id,
                        'store': self.store.id,
                        'kind': kind,
                        'lines': [('create', [{
                                        'product': p.id,
                                        'quantity': q,
                                        'lot': lot.id if lot else None,
                                        } for p, q, lot in lines])],
                        }])
            Consumption.done([consumption])
        return Consumption(consumption.id)


def consignment_stock(**context):
    Stock = Pool().get('hrp.consignment.stock')
    with Transaction().set_context(**context):
        return [(r.supplier.name, r.store.name, r.product.id,
                r.lot.number if r.lot else None, r.quantity)
            for r in Stock.search([])]


def invoice_lines():
    InvoiceLine = Pool().get('account.invoice.line')
    return InvoiceLine.search([], order=[('id', 'ASC')])


class ConsignmentTestCase(unittest.TestCase):
    "Test consignment stock"

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
    def test_receive_use_return(self):
        """Received by scan into the supplier's consignment location, used
        (ownership passes with an invoice line at the contract price),
        reversed (ownership back, invoice line gone), cancelled after
        invoicing (credited)"""
        pool = Pool()
        Location = pool.get('stock.location')
        Line = pool.get('hrp.consumption.line')
        Consumption = pool.get('hrp.consumption')
        Invoice = pool.get('account.invoice')
        h = Theatre()
        with set_company(h.company):
            lots = h.receive(['SN101', 'SN102', 'SN103'])
            location, = Location.search([
                    ('parent', '=', h.store.id),
                    ('consignment_party', '=', h.supplier.id),
                    ])
            self.assertEqual(location.type, 'supplier')
            self.assertEqual(location.name, h.supplier.name)
            for lot in lots.values():
                self.assertEqual(stock(location, h.stent, lot), 1)
            # the supplier still owns them: not the store's, not invoiced
            self.assertEqual(stock(h.store, h.stent), 0)
            self.assertEqual(invoice_lines(), [])
            self.assertEqual(consignment_stock(), [
                    (h.supplier.name, h.store.name, h.stent.id, n, 1)
                    for n in ['SN101', 'SN102', 'SN103']])
            # a second receipt reuses the supplier's location
            h.receive(['SN104'])
            self.assertEqual(Location.search_count([
                        ('consignment_party', '=', h.supplier.id)]), 1)

            # the nurse uses SN102 (scanned) and one more, picked FEFO
            consumption = h.use([
                    (h.stent, 1, lots['SN102']), (h.stent, 1, None)])
            used = sorted(consumption.lines, key=lambda l: l.lot.number)
            self.assertEqual(
                [l.lot.number for l in used], ['SN101', 'SN102'])
            for line in used:
                self.assertEqual(line.location, location)
                self.assertEqual(line.consignor, h.supplier)
                self.assertEqual(line.unit_cost, CONTRACT_PRICE)
                self.assertEqual(line.amount, Decimal('6200.00'))
            lines = invoice_lines()
            self.assertEqual(len(lines), 2)
            for invoice_line in lines:
                self.assertEqual(invoice_line.invoice_type, 'in')
                self.assertEqual(invoice_line.party, h.supplier)
                self.assertEqual(invoice_line.unit_price, CONTRACT_PRICE)
                self.assertEqual(invoice_line.quantity, 1)
                self.assertIsNone(invoice_line.invoice)
            self.assertEqual(
                {l.origin for l in lines}, {l.move for l in used})
            self.assertEqual(
                [r[3] for r in consignment_stock()], ['SN103', 'SN104'])

            # a wrong scan reversed: SN102 goes back to the supplier
            wrong = used[1]
            with as_user(h.head_nurse, h.company):
                Line.do_cancel([Line(wrong.id)], "扫错了")
            self.assertEqual(stock(location, h.stent, lots['SN102']), 1)
            self.assertEqual(
                [l.origin for l in invoice_lines()], [used[0].move])
            self.assertEqual(
                [r[3] for r in consignment_stock()],
                ['SN102', 'SN103', 'SN104'])

            # SN101's line is on the supplier's invoice; the registration
            # is cancelled afterwards: the invoice line is credited
            invoice_line, = invoice_lines()
            invoice, = Invoice.create([{
                        'type': 'in',
                        'company': h.company.id,
                        'party': h.supplier.id,
                        'invoice_address': h.supplier.addresses[0].id,
                        'account': h.accounting.payable.id,
                        'invoice_date': today(),
                        'lines': [('add', [invoice_line.id])],
                        }])
            # the supplier's invoice matches the use at the contract price
            Invoice.hrp_match([invoice])
            self.assertEqual(Invoice(invoice.id).hrp_match_state, 'matched')
            InvoiceLine = pool.get('account.invoice.line')
            InvoiceLine.write([invoice_line], {'unit_price': Decimal('6500')})
            Invoice.hrp_match([invoice])
            invoice = Invoice(invoice.id)
            self.assertEqual(invoice.hrp_match_state, 'mismatch')
            self.assertIn('6200', invoice.hrp_match_notes)
            InvoiceLine.write([invoice_line], {
                    'unit_price': CONTRACT_PRICE, 'quantity': 2})
            Invoice.hrp_match([invoice])
            self.assertEqual(Invoice(invoice.id).hrp_match_state, 'mismatch')
            InvoiceLine.write([invoice_line], {'quantity': 1})

            consumption = Consumption(consumption.id)
            consumption.cancel_reason = "手术取消"
            consumption.save()
            with as_user(h.head_nurse, h.company):
                Consumption.cancel([consumption])
            charged, credit = invoice_lines()
            self.assertEqual(charged.invoice, invoice)
            self.assertIsNone(credit.invoice)
            self.assertEqual(credit.quantity, -1)
            self.assertEqual(credit.unit_price, CONTRACT_PRICE)
            self.assertEqual(credit.party, h.supplier)
            self.assertEqual(
                credit.origin, Line(used[0].id).reverse_move)
            self.assertEqual(stock(location, h.stent, lots['SN101']), 1)

    @with_transaction()
    def test_own_stock_first(self):
        """Of a lot both bought and consigned, the hospital's own units are
        used first, then the supplier's: one line per location"""
        pool = Pool()
        Move = pool.get('stock.move')
        Location = pool.get('stock.location')
        Receipt = pool.get('hrp.receipt')
        h = Theatre()
        with set_company(h.company):
            receipt = h.consignment_receipt()
            Receipt.scan_barcode(receipt.id, gs1(
                    gtin(1), expiry=days(300), lot='L9', quantity=5))
            with as_user(h.keeper, h.company):
                Receipt.receive([Receipt(receipt.id)])
            lot = Receipt(receipt.id).lines[0].lot
            consigned, = Location.search([
                    ('consignment_party', '=', h.supplier.id)])
            # two units bought out of the consignment into the store
            move, = Move.create([{
                        'product': h.syringe.id,
                        'unit': h.syringe.default_uom.id,
                        'quantity': 2, 'lot': lot.id,
                        'from_location': consigned.id,
                        'to_location': h.store.id,
                        'company': h.company.id,
                        'effective_date': today(),
                        }])
            Move.do([move])
            self.assertEqual(len(invoice_lines()), 1)

            consumption = h.use([(h.syringe, 3, None)])
            self.assertEqual(
                sorted((l.location.id, l.quantity, l.lot.number)
                    for l in consumption.lines),
                sorted([(h.store.id, 2, 'L9'), (consigned.id, 1, 'L9')]))
            self.assertEqual(len(invoice_lines()), 2)
            self.assertEqual(invoice_lines()[-1].quantity, 1)
            self.assertEqual(stock(consigned, h.syringe, lot), 2)

    @with_transaction()
    def test_bad_input(self):
        """Scans before the supplier and store are chosen, of an expired
        unit, of a serial received before or scanned twice, of a material
        the supplier is not authorised for; using more than consigned:
        refused, nothing changed"""
        pool = Pool()
        Receipt = pool.get('hrp.receipt')
        Consumption = pool.get('hrp.consumption')
        h = Theatre()
        with set_company(h.company):
            # the desk's form, not saved yet (a saved one needs both)
            receipt = Receipt(
                company=h.company, kind='consignment', state='draft',
                lines=[], supplier=h.supplier)
            receipt.scan = gs1(
                gtin(2), expiry=days(400), lot='B7', serial='X1')
            with self.assertRaisesRegex(UserError, 'supplier and the store'):
                receipt.on_change_scan()
            receipt = h.consignment_receipt()
            with self.assertRaisesRegex(UserError, 'expired'):
                Receipt.scan_barcode(receipt.id, gs1(
                        gtin(2), expiry=days(-1), lot='B7', serial='X1'))
            Receipt.scan_barcode(receipt.id, gs1(
                    gtin(2), expiry=days(400), lot='B7', serial='X1'))
            with self.assertRaisesRegex(UserError, 'X1'):
                Receipt.scan_barcode(receipt.id, gs1(
                        gtin(2), expiry=days(400), lot='B7', serial='X1'))
            self.assertEqual(len(Receipt(receipt.id).lines), 1)
            with as_user(h.keeper, h.company):
                Receipt.receive([Receipt(receipt.id)])
            again = h.consignment_receipt()
            with self.assertRaisesRegex(UserError, 'X1'):
                Receipt.scan_barcode(again.id, gs1(
                        gtin(2), expiry=days(400), lot='B7', serial='X1'))

            # a supplier not authorised for the stent
            other = create_supplier("西南医疗", [h.syringe.template])
            receipt = h.consignment_receipt(supplier=other)
            with self.assertRaises(UserError):
                Receipt.scan_barcode(receipt.id, gs1(
                        gtin(2), expiry=days(400), lot='B7', serial='X2'))
            self.assertEqual(Receipt(receipt.id).lines, ())

            # gauze has no price: it cannot be consigned
            receipt = h.consignment_receipt()
            with self.assertRaisesRegex(UserError, 'no price'):
                Receipt.scan_barcode(receipt.id, gs1(gtin(4)))

            # one unit consigned, two used: refused, nothing moved
            before = invoice_lines()
            with self.assertRaises(UserError):
                h.use([(h.stent, 2, None)])
            self.assertEqual(invoice_lines(), before)
            self.assertEqual(
                [r[3:] for r in consignment_stock()], [('X1', 1)])
            self.assertEqual(Consumption.search_count(
                    [('state', '=', 'done')]), 0)

    @with_transaction()
    def test_purchase_receipt_unchanged(self):
        "A receipt against an order still needs its order before a scan"
        Receipt = Pool().get('hrp.receipt')
        h = Theatre()
        with set_company(h.company):
            receipt = Receipt(
                company=h.company, kind=Receipt.default_kind(),
                state='draft', lines=[], supplier=h.supplier, store=h.store)
            self.assertEqual(receipt.kind, 'purchase')
            receipt.scan = gs1(
                gtin(2), expiry=days(400), lot='B7', serial='Y1')
            with self.assertRaisesRegex(UserError, 'purchase order'):
                receipt.on_change_scan()

    @with_transaction()
    def test_scan(self):
        """Each scanned unit is checked before its line is added: never
        received, in another store, expired, recalled, scanned twice,
        already used, unknown or malformed barcodes, a high-value unit not
        billable to the patient are refused and add nothing"""
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Lot = pool.get('stock.lot')
        h = Theatre()

        def stent(serial, **values):
            return gs1(gtin(2), expiry=days(400), lot='B7', serial=serial,
                **values)

        with set_company(h.company):
            lots = h.receive(['SN301', 'SN302', 'SN303', 'SN304', 'SN306'])
            Lot.write([lots['SN303']], {
                    'shelf_life_expiration_date': days(-2)})
            Lot.change_hrp_recall([lots['SN304']], 'recall', "厂家召回")
            # SN305 is consigned in the cardiology store
            receipt = h.consignment_receipt(store=h.cardio_store)
            pool.get('hrp.receipt').scan_barcode(receipt.id, stent('SN305'))
            with as_user(h.keeper, h.company):
                pool.get('hrp.receipt').receive([receipt])

            with as_user(h.nurse, h.company):
                consumption, = Consumption.create([{
                            'department': h.theatre.id,
                            'store': h.store.id,
                            'kind': 'bulk',
                            }])
                line_id = Consumption.scan_barcode(
                    consumption.id, stent('SN301'))
                refused = {
                    'SN301': 'already on this registration',
                    'SN999': 'never received',
                    'SN305': 'not in store',
                    'SN303': 'expired',
                    'SN304': 'recalled',
                    }
                for serial, message in refused.items():
                    with self.subTest(serial=serial):
                        with self.assertRaisesRegex(UserError, message):
                            Consumption.scan_barcode(
                                consumption.id, stent(serial))
                with self.assertRaisesRegex(UserError, 'No active material'):
                    Consumption.scan_barcode(
                        consumption.id, gs1(gtin(77), serial='Z'))
                with self.assertRaisesRegex(UserError, 'check digit'):
                    Consumption.scan_barcode(
                        consumption.id, stent('SN302').replace(
                            gtin(2), gtin(2)[:-1] + str(
                                (int(gtin(2)[-1]) + 1) % 10)))
                # the stent scanned without its serial: which unit?
                with self.assertRaisesRegex(UserError, 'which unit'):
                    Consumption.scan_barcode(consumption.id, gs1(gtin(2)))
                consumption = Consumption(consumption.id)
                line, = consumption.lines
                self.assertEqual(line.id, line_id)
                self.assertEqual(line.lot, lots['SN301'])
                self.assertEqual(line.quantity, 1)

                # the form: a scan adds a line in memory
                consumption.scan = stent('SN302')
                consumption.on_change_scan()
                self.assertEqual(
                    [l.lot.number for l in consumption.lines],
                    ['SN301', 'SN302'])
                self.assertIsNone(consumption.scan)
                consumption.save()
                Consumption.done([consumption])

                other, = Consumption.create([{
                            'department': h.theatre.id,
                            'store': h.store.id,
                            'kind': 'patient',
                            'inpatient_number': 'ZY2026000101',
                            }])
                with self.assertRaisesRegex(UserError, 'already used'):
                    Consumption.scan_barcode(other.id, stent('SN301'))
                # for a patient, a high-value unit must have a HIS item
                with self.assertRaisesRegex(UserError, 'HIS'):
                    Consumption.scan_barcode(other.id, stent('SN306'))
                self.assertEqual(Consumption(other.id).lines, ())

    @with_transaction()
    def test_supplier_portal(self):
        """A supplier's user sees its own consignment stock, consumption and
        messages, not another supplier's, and no usage registration"""
        pool = Pool()
        Stock = pool.get('hrp.consignment.stock')
        Summary = pool.get('hrp.usage.summary')
        Consumption = pool.get('hrp.consumption')
        Receipt = pool.get('hrp.receipt')
        User = pool.get('res.user')
        h = Theatre()
        with set_company(h.company):
            lots = h.receive(['SN401', 'SN402'])
            other = create_supplier("西南医疗", [h.stent.template])
            create_contract(h.company, other, [(h.stent, Decimal('6000'))])
            receipt = h.consignment_receipt(supplier=other)
            Receipt.scan_barcode(receipt.id, gs1(
                    gtin(2), expiry=days(400), lot='C1', serial='SN501'))
            with as_user(h.keeper, h.company):
                Receipt.receive([Receipt(receipt.id)])
            h.use([(h.stent, 1, lots['SN401'])])

            def portal_user(login, supplier):
                user = create_user(
                    login, 'hrp_materials.group_supplier', h.company)
                User.write([user], {'hrp_supplier': supplier.id})
                return user
            mine = portal_user('supplier.hd', h.supplier)
            theirs = portal_user('supplier.xn', other)
            context = dict(from_date=today(), to_date=today())
            with as_user(mine, h.company), \
                    Transaction().set_context(context):
                self.assertEqual(
                    [(r.supplier, r.lot.number) for r in Stock.search([])],
                    [(h.supplier, 'SN402')])
                self.assertEqual(
                    [(r.supplier, r.quantity) for r in Summary.search([])],
                    [(h.supplier, 1)])
                with self.assertRaises(AccessError):
                    Consumption.search([])
            with as_user(theirs, h.company), \
                    Transaction().set_context(context):
                self.assertEqual(
                    [(r.supplier, r.lot.number) for r in Stock.search([])],
                    [(other, 'SN501')])
                self.assertEqual(Summary.search([]), [])
            # the store keeper sees every supplier's
            with as_user(h.keeper, h.company):
                self.assertEqual(len(Stock.search([])), 2)
