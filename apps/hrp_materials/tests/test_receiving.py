# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Receiving (验收入库) against the purchase order number: UDI scans, the
acceptance checks, rejections and the stock the receipt puts away."""
import datetime as dt
import unittest
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from .test_lot import setup_stores
from .tools import as_user, create_user

GS = '\x1d'


def today():
    return Pool().get('ir.date').today()


def days(n):
    return today() + dt.timedelta(days=n)


def check_digit(payload):
    "The GS1 check digit of payload (the digits before it)"
    total = sum(int(d) * (3 if i % 2 == 0 else 1)
        for i, d in enumerate(reversed(payload)))
    return str((10 - total % 10) % 10)


def gtin(item):
    "A GTIN-14 with a valid check digit for the item reference"
    payload = '0690123' + f'{item:06d}'
    return payload + check_digit(payload)


def gs1(gtin14, expiry=None, lot=None, serial=None, production=None,
        quantity=None, prefix=']d2'):
    """A GS1 element string as a DataMatrix scanner sends it (symbology
    identifier, variable-length fields ended by GS)"""
    text = prefix + '01' + gtin14
    if production:
        text += '11' + production.strftime('%y%m%d')
    if expiry:
        text += '17' + expiry.strftime('%y%m%d')
    if quantity:
        text += '30' + str(quantity) + GS
    if lot:
        text += '10' + lot + GS
    if serial:
        text += '21' + serial
    return text.rstrip(GS)


def create_supplier(name, templates, expiry=None):
    "A supplier with a valid trading licence authorised for templates"
    Party = Pool().get('party.party')
    supplier, = Party.create([{
                'name': name,
                'addresses': [('create', [{}])],
                'hrp_licences': [('create', [{
                                'type': 'device_trading',
                                'number': f'{name}-001',
                                'expiry': expiry or days(365),
                                }])],
                'hrp_authorised_materials': [
                    ('add', [t.id for t in templates])],
                }])
    return supplier


def create_material(name, item, **values):
    pool = Pool()
    Template = pool.get('product.template')
    Uom = pool.get('product.uom')
    unit = Uom(Pool().get('ir.model.data').get_id('product', 'uom_unit'))
    template, = Template.create([{
                'name': name,
                'type': 'goods',
                'default_uom': unit.id,
                'purchasable': True,
                'purchase_uom': unit.id,
                'products': [('create', [{
                                'identifiers': [('create', [{
                                                'type': 'ean',
                                                'code': gtin(item),
                                                }])],
                                }])],
                **values,
                }])
    product, = template.products
    return product


class Receiving:
    "A central store, a department store, a supplier and three materials"

    def __init__(self):
        self.company = create_company()
        with set_company(self.company):
            self._setup()

    def _setup(self):
        pool = Pool()
        Location = pool.get('stock.location')
        self.central, self.cardio_store, self.ortho_store = setup_stores(
            self.company)
        self.warehouse, = Location.search([('type', '=', 'warehouse')])
        self.syringe = create_material(
            "一次性使用无菌注射器", 1, lot_required=['storage'],
            shelf_life_state='required')
        self.stent = create_material(
            "冠脉药物洗脱支架", 2, implant=True, serial_tracked=True,
            lot_required=['storage'], shelf_life_state='required')
        self.dressing = create_material(
            "透明敷贴", 3, direct_delivery=True, lot_required=['storage'],
            shelf_life_state='required')
        self.gauze = create_material("医用纱布块", 4)
        self.supplier = create_supplier("华东医疗器械", [
                p.template for p in [
                    self.syringe, self.stent, self.dressing, self.gauze]])
        self.keeper = create_user(
            'storekeeper', 'hrp_materials.group_store_keeper', self.company)

    def purchase(self, lines, supplier=None):
        """A confirmed and processed purchase of lines [(product,
        quantity)]: its lines have their pending (draft) moves"""
        Purchase = Pool().get('purchase.purchase')
        supplier = supplier or self.supplier
        purchase, = Purchase.create([{
                    'company': self.company.id,
                    'party': supplier.id,
                    'invoice_address': supplier.addresses[0].id,
                    'invoice_method': 'manual',
                    'warehouse': self.warehouse.id,
                    'purchase_date': today(),
                    'lines': [('create', [{
                                    'product': p.id,
                                    'quantity': q,
                                    'unit': p.default_uom.id,
                                    'unit_price': Decimal('10'),
                                    } for p, q in lines])],
                    }])
        # The ordering workflow (qualification gate, contracts, approval of
        # purchases outside contract) is tested by test_purchase; receiving
        # needs a confirmed order whose lines have their pending moves.
        Purchase.write([purchase], {'state': 'confirmed'})
        Purchase.process([purchase])
        purchase = Purchase(purchase.id)
        return purchase

    def receipt(self, purchase):
        Receipt = Pool().get('hrp.receipt')
        receipt, = Receipt.create([{
                    'company': self.company.id,
                    'purchase': purchase.id,
                    }])
        return receipt


def snapshot():
    "Counts of what receiving changes"
    pool = Pool()
    return {
        'lines': [(l.id, l.quantity, l.state)
            for l in pool.get('hrp.receipt.line').search(
                [], order=[('id', 'ASC')])],
        'lots': pool.get('stock.lot').search_count([]),
        'moves': [(m.id, m.quantity, m.state, m.lot)
            for m in pool.get('stock.move').search(
                [], order=[('id', 'ASC')])],
        'shipments': pool.get('stock.shipment.in').search_count([]),
        }


def stock(location, product, lot=None):
    Product = Pool().get('product.product')
    grouping = ('product', 'lot') if lot else ('product',)
    with Transaction().set_context(stock_date_end=today()):
        pbl = Product.products_by_location(
            [location.id], with_childs=False, grouping=grouping,
            grouping_filter=([product.id],))
    if lot:
        return pbl.get((location.id, product.id, lot.id), 0)
    return pbl.get((location.id, product.id), 0)


def pending(pline):
    "The pending (draft) quantity of the purchase line"
    pline = pline.__class__(pline.id)
    return sum(m.quantity for m in pline.moves
        if m.state == 'draft' and not m.shipment)


class ReceivingTestCase(unittest.TestCase):
    "Test receiving against the order number"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def scan(self, receipt, text, **kwargs):
        Receipt = Pool().get('hrp.receipt')
        return Pool().get('hrp.receipt.line')(
            Receipt.scan_barcode(receipt.id, text, **kwargs))

    def refused(self, receipt, text, pattern, **kwargs):
        "The scan is refused with a message matching pattern, nothing changed"
        before = snapshot()
        with self.assertRaisesRegex(UserError, pattern):
            self.scan(receipt, text, **kwargs)
        self.assertEqual(snapshot(), before)

    @with_transaction()
    def test_receive_lot_and_serial(self):
        "Scans of a lot-tracked item and serial implants received by keeper"
        pool = Pool()
        Receipt = pool.get('hrp.receipt')
        Purchase = pool.get('purchase.purchase')
        Lot = pool.get('stock.lot')
        h = Receiving()
        with set_company(h.company):
            purchase = h.purchase([(h.syringe, 10), (h.stent, 2)])
            self.assertEqual(purchase.state, 'processing')
            syringe_line, stent_line = purchase.lines
            self.assertEqual(pending(syringe_line), 10)
            receipt = h.receipt(purchase)
            self.assertTrue(receipt.number.startswith('RK'))
            self.assertEqual(receipt.supplier, h.supplier)
            self.assertEqual(receipt.warehouse, h.warehouse)
            expiry = days(400)
            with as_user(h.keeper, h.company):
                # GS1-128 with symbology identifier and FNC1 as GS, then
                # the human-readable form and no symbology identifier
                self.scan(receipt, gs1(
                        gtin(1), expiry=expiry, lot='L2601', prefix=']C1'))
                self.scan(receipt, gs1(
                        gtin(1), expiry=expiry, lot='L2601', prefix=''))
                self.scan(receipt, '(01)%s(17)%s(10)L2601' % (
                        gtin(1), expiry.strftime('%y%m%d')))
                for serial in ['SN0001', 'SN0002']:
                    self.scan(receipt, gs1(
                            gtin(2), expiry=expiry, lot='B77',
                            serial=serial) + '\r\n')
                receipt = Receipt(receipt.id)
                self.assertEqual(
                    [(l.product, l.quantity, l.lot_number, l.serial,
                            l.expiry, l.state, l.to_location)
                        for l in receipt.lines], [
                        (h.syringe, 3, 'L2601', None, expiry, 'accepted',
                            h.central),
                        (h.stent, 1, 'B77', 'SN0001', expiry, 'accepted',
                            h.central),
                        (h.stent, 1, 'B77', 'SN0002', expiry, 'accepted',
                            h.central),
                        ])
                self.assertEqual(
                    [l.purchase_line for l in receipt.lines],
                    [syringe_line, stent_line, stent_line])
                Receipt.receive([Receipt(receipt.id)])
            receipt = Receipt(receipt.id)
            self.assertEqual(receipt.state, 'done')
            self.assertEqual(receipt.received_by, h.keeper)
            self.assertTrue(receipt.received_at)
            self.assertEqual(receipt.shipment.state, 'done')
            self.assertEqual(receipt.shipment.supplier, h.supplier)
            lot, = Lot.search([('product', '=', h.syringe.id)])
            self.assertEqual(lot.number, 'L2601')
            self.assertEqual(lot.shelf_life_expiration_date, expiry)
            self.assertEqual(stock(h.central, h.syringe, lot), 3)
            stent_lots = Lot.search(
                [('product', '=', h.stent.id)], order=[('number', 'ASC')])
            self.assertEqual(
                [l.number for l in stent_lots], ['SN0001', 'SN0002'])
            for stent_lot in stent_lots:
                self.assertEqual(stock(h.central, h.stent, stent_lot), 1)
            self.assertEqual(
                [l.lot for l in receipt.lines], [lot] + stent_lots)
            for line in receipt.lines:
                self.assertEqual(line.move.state, 'done')
                self.assertEqual(line.move.origin, line.purchase_line)
            # the rest of the order is still pending
            self.assertEqual(pending(syringe_line), 7)
            self.assertEqual(pending(stent_line), 0)
            Purchase.process([purchase])
            purchase = Purchase(purchase.id)
            self.assertEqual(purchase.shipment_state, 'partially shipped')
            self.assertEqual(pending(syringe_line), 7)
            self.assertEqual(
                [l.moves_progress for l in purchase.lines], [0.3, 1])

            # a serial is received only once
            again = h.receipt(purchase)
            self.refused(again, gs1(
                    gtin(2), expiry=expiry, lot='B77', serial='SN0001'),
                'SN0001.*already been received')
            # the remaining 7 syringes in a second delivery (same lot)
            line = self.scan(again, gs1(
                    gtin(1), expiry=expiry, lot='L2601'), quantity=7)
            self.assertEqual(line.quantity, 7)
            Receipt.receive([again])
            self.assertEqual(stock(h.central, h.syringe, lot), 10)
            self.assertEqual(Lot.search_count(
                    [('product', '=', h.syringe.id)]), 1)
            # nothing can be changed once received
            with self.assertRaisesRegex(UserError, 'no longer a draft'):
                self.scan(again, gs1(gtin(1), expiry=expiry, lot='L2601'))
            with as_user(h.keeper, h.company), \
                    self.assertRaisesRegex(UserError, 'no longer a draft'):
                Receipt.write([Receipt(again.id)], {'note': "x"})

    @with_transaction()
    def test_acceptance_checks(self):
        "Every bad scan is refused with its reason and changes nothing"
        pool = Pool()
        Configuration = pool.get('hrp.configuration')
        Template = pool.get('product.template')
        Licence = pool.get('hrp.supplier.licence')
        h = Receiving()
        with set_company(h.company):
            purchase = h.purchase([(h.syringe, 10), (h.stent, 1)])
            other = create_material("留置针", 9, lot_required=['storage'])
            h.supplier.hrp_authorised_materials += (other.template,)
            h.supplier.save()
            receipt = h.receipt(purchase)
            good = days(365)
            self.scan(receipt, gs1(gtin(1), expiry=good, lot='A1'))
            refused = self.refused
            # malformed barcode, wrong check digit, unknown GTIN
            refused(receipt, ']C1017', 'barcode|Barcode|GS1')
            bad_digit = gtin(1)[:-1] + str((int(gtin(1)[-1]) + 1) % 10)
            refused(receipt, gs1(bad_digit, expiry=good, lot='A1'),
                'check digit')
            refused(receipt, gs1(gtin(555), expiry=good, lot='A1'),
                gtin(555))
            # a material not on the order
            refused(receipt, gs1(gtin(9), expiry=good, lot='A1'),
                'not on purchase order')
            # expiry in the past and too close
            refused(receipt, gs1(gtin(1), expiry=days(-1), lot='A2'),
                'expired on')
            refused(receipt, gs1(gtin(1), expiry=days(89), lot='A3'),
                '89 days of shelf life left, the minimum on receipt is 90')
            # lot-tracked without lot, serial-tracked without serial
            refused(receipt, gs1(gtin(1), expiry=good), 'no lot number')
            refused(receipt, gs1(gtin(2), expiry=good, lot='B'),
                'no serial number')
            # over-delivery: 1 + 10 > 10 ordered
            refused(receipt, gs1(gtin(1), expiry=good, lot='A1'),
                'Over-delivery', quantity=10)
            refused(receipt, gs1(gtin(1), expiry=good, lot='A1',
                    quantity=10), 'Over-delivery')
            # serial scanned twice on the receipt
            self.scan(receipt, gs1(gtin(2), expiry=good, lot='B',
                    serial='X1'))
            refused(receipt, gs1(gtin(2), expiry=good, lot='B',
                    serial='X1'), 'X1.*already on this receipt')
            # the stent line is full (1 ordered)
            refused(receipt, gs1(gtin(2), expiry=good, lot='B',
                    serial='X2'), 'Over-delivery')

            # the configured minimum and the material's own
            config = Configuration(1)
            config.receipt_min_shelf_life_days = 30
            config.save()
            self.scan(receipt, gs1(gtin(1), expiry=days(60), lot='A4'))
            h.syringe.template.min_shelf_life_days = 100
            h.syringe.template.save()
            refused(receipt, gs1(gtin(1), expiry=days(99), lot='A5'),
                'minimum on receipt is 100')
            # tolerance: 10 % over 10 ordered accepts 11
            config.receipt_tolerance = 10
            config.save()
            self.scan(receipt, gs1(gtin(1), expiry=good, lot='A1'),
                quantity=9)
            refused(receipt, gs1(gtin(1), expiry=good, lot='A1'),
                'Over-delivery')

            # registration certificate expired (written past the check that
            # refuses saving an expired certificate)
            table = Template.__table__()
            cursor = Transaction().connection.cursor()
            cursor.execute(*table.update(
                    [table.registration_number, table.registration_expiry],
                    ['国械注准20203130001', days(-1)],
                    where=table.id == h.stent.template.id))
            Transaction().cache.clear()
            receipt2 = h.receipt(h.purchase([(h.stent, 5)]))
            refused(receipt2, gs1(gtin(2), expiry=good, lot='B',
                    serial='Y1'), '国械注准20203130001.*expired on')

            # supplier licence expired, material not authorised
            receipt3 = h.receipt(h.purchase([(h.gauze, 5)]))
            licence, = h.supplier.hrp_licences
            Licence.write([licence], {'expiry': days(-1)})
            refused(receipt3, gs1(gtin(4)), 'licence .* expired on')
            Licence.write([licence], {'expiry': days(100)})
            h.supplier.hrp_authorised_materials = [
                t for t in h.supplier.hrp_authorised_materials
                if t != h.gauze.template]
            h.supplier.save()
            refused(receipt3, gs1(gtin(4)), 'not authorised')

    @with_transaction()
    def test_recheck_on_receive(self):
        "Receive checks everything again: a licence expired since the scan"
        pool = Pool()
        Receipt = pool.get('hrp.receipt')
        Licence = pool.get('hrp.supplier.licence')
        h = Receiving()
        with set_company(h.company):
            purchase = h.purchase([(h.stent, 2)])
            first, second = h.receipt(purchase), h.receipt(purchase)
            text = gs1(gtin(2), expiry=days(300), lot='B', serial='Z9')
            self.scan(first, text)
            self.scan(second, text)
            Receipt.receive([first])
            before = snapshot()
            with self.assertRaisesRegex(UserError, 'Z9.*already been received'):
                Receipt.receive([second])
            self.assertEqual(snapshot(), before)
            Receipt.write([Receipt(second.id)], {'lines': [
                        ('delete', [l.id for l in second.lines])]})
            self.scan(second, gs1(
                    gtin(2), expiry=days(300), lot='B', serial='Z10'))
            licence, = h.supplier.hrp_licences
            Licence.write([licence], {'expiry': days(-1)})
            before = snapshot()
            with self.assertRaisesRegex(UserError, 'expired on'):
                Receipt.receive([second])
            self.assertEqual(snapshot(), before)
            self.assertEqual(Receipt(second.id).state, 'draft')

    @with_transaction()
    def test_rejection(self):
        "Rejected quantities do not enter stock and cancel the pending moves"
        pool = Pool()
        Receipt = pool.get('hrp.receipt')
        Line = pool.get('hrp.receipt.line')
        Purchase = pool.get('purchase.purchase')
        h = Receiving()
        with set_company(h.company):
            purchase = h.purchase([(h.syringe, 10)])
            pline, = purchase.lines
            receipt = h.receipt(purchase)
            expiry = days(365)
            text = gs1(gtin(1), expiry=expiry, lot='R1')
            self.scan(receipt, text, quantity=6)
            self.refused(receipt, text, 'Describe in the note', quantity=2,
                reject_reason='other')
            rejected = self.scan(receipt, text, quantity=2,
                reject_reason='damaged')
            self.assertEqual(rejected.state, 'rejected')
            self.assertEqual(rejected.reject_reason, 'damaged')
            # goods short of shelf life are rejected, not refused
            short = self.scan(receipt, gs1(gtin(1), expiry=days(10),
                    lot='R2'), reject_reason='shelf_life')
            Receipt.receive([receipt])
            receipt = Receipt(receipt.id)
            self.assertEqual(stock(h.central, h.syringe), 6)
            self.assertEqual(rejected.__class__(rejected.id).move.state,
                'cancelled')
            self.assertEqual(rejected.__class__(rejected.id).move.quantity, 2)
            self.assertIsNone(short.__class__(short.id).lot)
            # 6 received, 3 rejected: 1 still pending
            self.assertEqual(pending(pline), 1)
            Purchase.process([purchase])
            self.assertEqual(Purchase(purchase.id).shipment_state, 'exception')
            # the rejections listed for the supplier
            rejections = Line.search([
                    ('state', '=', 'rejected'),
                    ('receipt.state', '=', 'done'),
                    ('supplier', '=', h.supplier.id),
                    ], order=[('id', 'ASC')])
            self.assertEqual(
                [(r.quantity, r.reject_reason, r.purchase) for r in rejections],
                [(2, 'damaged', purchase), (1, 'shelf_life', purchase)])

    @with_transaction()
    def test_direct_delivery(self):
        "Direct-delivery materials go to the requesting department's store"
        pool = Pool()
        Receipt = pool.get('hrp.receipt')
        Requisition = pool.get('hrp.requisition')
        Request = pool.get('purchase.request')
        h = Receiving()
        with set_company(h.company):
            purchase = h.purchase([(h.dressing, 5), (h.gauze, 5)])
            dressing_line, gauze_line = purchase.lines
            requisition, = Requisition.create([{
                        'company': h.company.id,
                        'department': h.ortho_store.hrp_department.id,
                        'from_location': h.central.id,
                        'to_location': h.ortho_store.id,
                        'lines': [('create', [{
                                        'product': h.dressing.id,
                                        'unit': h.dressing.default_uom.id,
                                        'quantity': 5,
                                        }])],
                        }])
            Request.create([{
                        'product': h.dressing.id,
                        'quantity': 5,
                        'unit': h.dressing.default_uom.id,
                        'company': h.company.id,
                        'warehouse': h.warehouse.id,
                        'origin': str(requisition.lines[0]),
                        'purchase_line': dressing_line.id,
                        }])
            receipt = h.receipt(purchase)
            expiry = days(500)
            line = self.scan(receipt, gs1(gtin(3), expiry=expiry, lot='D1'),
                quantity=5)
            self.assertEqual(line.to_location, h.ortho_store)
            gauze = self.scan(receipt, gs1(gtin(4)), quantity=2)
            self.assertEqual(gauze.to_location, h.central)
            Receipt.receive([receipt])
            self.assertEqual(stock(h.ortho_store, h.dressing), 5)
            self.assertEqual(stock(h.central, h.dressing), 0)
            self.assertEqual(stock(h.central, h.gauze), 2)

            # without a request the keeper chooses the department store
            purchase2 = h.purchase([(h.dressing, 3)])
            receipt2 = h.receipt(purchase2)
            line = self.scan(receipt2, gs1(gtin(3), expiry=expiry, lot='D2'),
                quantity=3)
            self.assertIsNone(line.to_location)
            before = snapshot()
            with self.assertRaisesRegex(UserError, 'Choose the store'):
                Receipt.receive([receipt2])
            self.assertEqual(snapshot(), before)
            line.to_location = h.cardio_store
            line.save()
            Receipt.receive([receipt2])
            self.assertEqual(stock(h.cardio_store, h.dressing), 3)

    @with_transaction()
    def test_scan_on_change(self):
        "The desk's scan field adds and counts lines in the form"
        pool = Pool()
        Receipt = pool.get('hrp.receipt')
        h = Receiving()
        with set_company(h.company):
            purchase = h.purchase([(h.syringe, 10)])
            receipt = Receipt()
            receipt.company = h.company
            receipt.state = 'draft'
            receipt.purchase = purchase
            receipt.on_change_purchase()
            receipt.lines = []
            receipt.scan_mode = 'accept'
            text = gs1(gtin(1), expiry=days(200), lot='W1')
            for _ in range(2):
                receipt.scan = text
                receipt.on_change_scan()
                self.assertIsNone(receipt.scan)
            line, = receipt.lines
            self.assertEqual(line.quantity, 2)
            receipt.scan = gs1(gtin(1), expiry=days(-3), lot='W2')
            with self.assertRaisesRegex(UserError, 'expired on'):
                receipt.on_change_scan()
            self.assertEqual(len(receipt.lines), 1)
            receipt.scan_mode = 'reject'
            receipt.scan_reject_reason = 'damaged'
            receipt.scan = text
            receipt.on_change_scan()
            self.assertEqual(
                [(l.state, l.quantity) for l in receipt.lines],
                [('accepted', 2), ('rejected', 1)])
            receipt.save()
            self.assertEqual(len(Receipt(receipt.id).lines), 2)

    @with_transaction()
    def test_purchase_unit(self):
        "An order in boxes is received in units, priced per unit"
        pool = Pool()
        Receipt = pool.get('hrp.receipt')
        Purchase = pool.get('purchase.purchase')
        Uom = pool.get('product.uom')
        h = Receiving()
        with set_company(h.company):
            unit = h.syringe.default_uom
            box, = Uom.create([{
                        'name': "盒(10)", 'symbol': "盒", 'category':
                        unit.category.id, 'factor': 10, 'rate': 0.1,
                        'rounding': 0.01, 'digits': 2}])
            purchase, = Purchase.create([{
                        'company': h.company.id,
                        'party': h.supplier.id,
                        'invoice_address': h.supplier.addresses[0].id,
                        'invoice_method': 'manual',
                        'warehouse': h.warehouse.id,
                        'purchase_date': today(),
                        'lines': [('create', [{
                                        'product': h.syringe.id,
                                        'quantity': 2,
                                        'unit': box.id,
                                        'unit_price': Decimal('12.5'),
                                        }])],
                        }])
            Purchase.write([purchase], {'state': 'confirmed'})
            Purchase.process([purchase])
            pline, = Purchase(purchase.id).lines
            receipt = h.receipt(purchase)
            text = gs1(gtin(1), expiry=days(300), lot='P1')
            line = self.scan(receipt, text, quantity=15)
            self.assertEqual(line.unit, unit)
            self.refused(receipt, text, 'Over-delivery', quantity=6)
            Receipt.receive([receipt])
            move = line.__class__(line.id).move
            self.assertEqual(move.unit, unit)
            self.assertEqual(move.quantity, 15)
            self.assertEqual(move.unit_price, Decimal('1.25'))
            self.assertEqual(pending(pline), 0.5)
            self.assertEqual(stock(h.central, h.syringe), 15)
