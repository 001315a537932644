# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Department consumption (实耗实销): usage registrations out of department
stores, their cost on the department's cost centre, materials consumed on
issue and the department cost view."""
import datetime as dt
import unittest
from decimal import Decimal

from trytond import backend
from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError, ValidationError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    DB_NAME, activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from .tools import as_user, create_department, create_store, create_user


def today():
    return Pool().get('ir.date').today()


def days(n):
    return today() + dt.timedelta(days=n)


def first_of_month(date):
    return date.replace(day=1)


def create_category(name, parent=None, consumed_on_issue=False):
    Category = Pool().get('product.category')
    category, = Category.create([{
                'name': name,
                'parent': parent.id if parent else None,
                'hrp_consumed_on_issue': consumed_on_issue,
                }])
    return category


def create_product(name, category, cost, lot_required=False, **values):
    pool = Pool()
    Template = pool.get('product.template')
    Uom = pool.get('product.uom')
    unit = Uom(Pool().get('ir.model.data').get_id('product', 'uom_unit'))
    template, = Template.create([{
                'name': name,
                'type': 'goods',
                'default_uom': unit.id,
                'categories': [('add', [category.id])],
                'lot_required': ['storage'] if lot_required else [],
                'products': [('create', [{}])],
                **values,
                }])
    product, = template.products
    product.cost_price = cost
    product.save()
    return product


def create_lots(product, *lots):
    "Create lots from (number, shelf-life expiration date) pairs"
    Lot = Pool().get('stock.lot')
    return Lot.create([{
                'number': number, 'product': product.id,
                'shelf_life_expiration_date': expiry,
                } for number, expiry in lots])


def receive(company, location, product, quantity, lot=None, date=None):
    "Put quantity of product into location (found stock)"
    pool = Pool()
    Move = pool.get('stock.move')
    Location = pool.get('stock.location')
    lost_found, = Location.search([('type', '=', 'lost_found')], limit=1)
    move, = Move.create([{
                'product': product.id,
                'unit': product.default_uom.id,
                'quantity': quantity,
                'from_location': lost_found.id,
                'to_location': location.id,
                'lot': lot.id if lot else None,
                'company': company.id,
                'effective_date': date or days(-100),
                }])
    Move.do([move])
    return move


def stock(location, product, lot=None):
    "The quantity of product (of lot) in location today"
    pool = Pool()
    Product = pool.get('product.product')
    grouping = ('product', 'lot') if lot else ('product',)
    with Transaction().set_context(stock_date_end=today()):
        pbl = Product.products_by_location(
            [location.id], with_childs=False, grouping=grouping,
            grouping_filter=([product.id],))
    if lot:
        return pbl.get((location.id, product.id, lot.id), 0)
    return pbl.get((location.id, product.id), 0)


class Hospital:
    "Two departments with stores, cost centres, users and materials"

    def __init__(self, company):
        pool = Pool()
        Account = pool.get('analytic_account.account')
        Department = pool.get('hrp.department')
        Location = pool.get('stock.location')
        self.company = company
        root, = Account.create([{
                    'name': "科室成本", 'type': 'root', 'company': company.id}])
        self.cardio_cc, self.ortho_cc = Account.create([{
                    'name': name, 'type': 'normal', 'root': root.id,
                    'parent': root.id, 'company': company.id,
                    } for name in ["心内科成本", "骨科成本"]])
        self.cardio = create_department(
            company, 'XNK', "心内科", cost_center=self.cardio_cc.id)
        self.ortho = create_department(
            company, 'GK', "骨科", cost_center=self.ortho_cc.id)
        warehouse, = Location.search([('type', '=', 'warehouse')])
        self.central = warehouse.storage_location
        self.central.hrp_store_type = 'central'
        self.central.save()
        self.cardio_store = create_store("心内科二级库", self.cardio)
        self.ortho_store = create_store("骨科二级库", self.ortho)
        Location.write([self.cardio_store, self.ortho_store], {
                'parent': warehouse.id})
        self.consumption_location = pool.get(
            'hrp.consumption').consumption_location()

        self.nurse = create_user(
            'nurse.xnk', 'hrp_materials.group_nurse', company)
        self.head_nurse = create_user(
            'headnurse.xnk', 'hrp_materials.group_head_nurse', company)
        self.ortho_nurse = create_user(
            'nurse.gk', 'hrp_materials.group_nurse', company)
        self.finance = create_user(
            'finance', 'hrp_materials.group_finance', company)
        self.keeper = create_user(
            'storekeeper', 'hrp_materials.group_store_keeper', company)
        Department.write([self.cardio], {
                'members': [('add', [self.nurse.id])],
                'head_nurse': self.head_nurse.id,
                })
        Department.write([self.ortho], {
                'members': [('add', [self.ortho_nurse.id])]})

        self.dressings = create_category("敷料类")
        self.injection = create_category("注射穿刺类")
        self.office = create_category("办公用品", consumed_on_issue=True)
        self.paper = create_category("纸张文具", parent=self.office)
        self.gauze = create_product(
            "医用纱布块", self.dressings, Decimal('2.50'))
        self.syringe = create_product(
            "一次性使用无菌注射器", self.injection, Decimal('0.80'),
            lot_required=True, shelf_life_state='optional')
        self.a4 = create_product("A4复印纸", self.paper, Decimal('25'))


class ConsumptionTestCase(unittest.TestCase):
    "Test department consumption and department cost"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def consume(self, h, lines, kind='patient', department=None, store=None,
            **values):
        "Create a draft consumption of lines [(product, quantity[, lot])]"
        Consumption = Pool().get('hrp.consumption')
        if kind == 'patient':
            values.setdefault('inpatient_number', 'ZY20260001')
            values.setdefault('patient_name', "张三")
        if department is not None:
            values['department'] = department.id
        if store is not None:
            values['store'] = store.id
        consumption, = Consumption.create([{
                    'kind': kind,
                    'lines': [('create', [{
                                    'product': l[0].id,
                                    'quantity': l[1],
                                    'lot': l[2].id if len(l) > 2 else None,
                                    } for l in lines])],
                    **values}])
        return consumption

    @with_transaction()
    def test_patient_consumption(self):
        "A nurse registers per-patient use: stock leaves, cost on the centre"
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Line = pool.get('hrp.consumption.line')
        company = create_company()
        with set_company(company):
            h = Hospital(company)
            lot1, lot2, lot3 = create_lots(
                h.syringe, ('S-LATE', days(300)), ('S-EARLY', days(60)),
                ('S-EXPIRED', days(-1)))
            receive(company, h.cardio_store, h.gauze, 20)
            receive(company, h.cardio_store, h.syringe, 5, lot=lot1)
            receive(company, h.cardio_store, h.syringe, 3, lot=lot2)
            receive(company, h.cardio_store, h.syringe, 9, lot=lot3)

        with as_user(h.nurse, company):
            self.assertEqual(Consumption.default_department(), h.cardio.id)
            self.assertEqual(Consumption.default_store(), h.cardio_store.id)
            # the lot defaults to the first to expire (not the expired one)
            line = Line(product=h.syringe, consumption=Consumption(
                    store=h.cardio_store, company=company))
            line.on_change_product()
            self.assertEqual(line.lot, lot2)
            with self.assertRaises(ValidationError):
                # the inpatient number is required per patient
                self.consume(h, [(h.gauze, 1)], inpatient_number=None)
            consumption = self.consume(
                h, [(h.gauze, 3), (h.syringe, 4)],
                surgery_number='SS20260001')
            self.assertEqual(consumption.department, h.cardio)
            self.assertEqual(consumption.store, h.cardio_store)
            self.assertTrue(consumption.number.startswith(
                    'XH%s' % today().year))
            Consumption.done([consumption])

        consumption = Consumption(consumption.id)
        self.assertEqual(consumption.state, 'done')
        self.assertEqual(consumption.done_by, h.nurse)
        self.assertIsNotNone(consumption.done_at)
        self.assertEqual(stock(h.cardio_store, h.gauze), 17)
        # 4 syringes: the 3 of the early lot, 1 of the late one
        self.assertEqual(stock(h.cardio_store, h.syringe, lot2), 0)
        self.assertEqual(stock(h.cardio_store, h.syringe, lot1), 4)
        self.assertEqual(stock(h.cardio_store, h.syringe, lot3), 9)
        self.assertEqual(
            sorted((l.product.name, l.lot.number if l.lot else None,
                    l.quantity, l.unit_cost, l.amount)
                for l in consumption.lines),
            [("一次性使用无菌注射器", 'S-EARLY', 3, Decimal('0.8'),
                    Decimal('2.40')),
                ("一次性使用无菌注射器", 'S-LATE', 1, Decimal('0.8'),
                    Decimal('0.80')),
                ("医用纱布块", None, 3, Decimal('2.5'), Decimal('7.50'))])
        self.assertEqual(consumption.total_amount, Decimal('10.70'))
        for line in consumption.lines:
            self.assertEqual(line.cost_center, h.cardio_cc)
            self.assertEqual(line.move.state, 'done')
            self.assertEqual(line.move.from_location, h.cardio_store)
            self.assertEqual(line.move.to_location, h.consumption_location)
            self.assertEqual(line.move.origin, line)
            self.assertEqual(line.move.cost_price, line.unit_cost)
        self.assertEqual(
            {l.category for l in consumption.lines},
            {h.dressings, h.injection})
        # the goods left stock: the consumption location is not storage
        self.assertEqual(h.consumption_location.type, 'production')

    @with_transaction()
    def test_bulk_consumption(self):
        "A daily bulk entry by the head nurse"
        Consumption = Pool().get('hrp.consumption')
        company = create_company()
        with set_company(company):
            h = Hospital(company)
            receive(company, h.cardio_store, h.gauze, 50)
        with as_user(h.head_nurse, company):
            # 30 of 50, backdated: the stock is checked at its date and
            # today, not counted twice
            consumption = self.consume(
                h, [(h.gauze, 30)], kind='bulk', date=days(-1))
            self.assertIsNone(consumption.inpatient_number)
            Consumption.done([consumption])
        consumption = Consumption(consumption.id)
        self.assertEqual(consumption.state, 'done')
        self.assertEqual(consumption.done_by, h.head_nurse)
        line, = consumption.lines
        self.assertEqual(line.amount, Decimal('75.00'))
        self.assertEqual(line.cost_center, h.cardio_cc)
        self.assertEqual(line.move.effective_date, days(-1))
        self.assertEqual(stock(h.cardio_store, h.gauze), 20)

    @with_transaction()
    def test_insufficient_stock(self):
        "The store never goes negative; a refused posting changes nothing"
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Move = pool.get('stock.move')
        company = create_company()
        with set_company(company):
            h = Hospital(company)
            lot, = create_lots(h.syringe, ('S1', days(100)))
            receive(company, h.cardio_store, h.gauze, 5)
            receive(company, h.cardio_store, h.syringe, 2, lot=lot)
            # stock of another store does not count
            receive(company, h.ortho_store, h.gauze, 100)
        moves_before = Move.search([], count=True)

        with as_user(h.nurse, company):
            cases = [
                [(h.gauze, 6)],
                # the same material on two lines
                [(h.gauze, 3), (h.gauze, 3)],
                # a material never received in the store
                [(h.a4, 1)],
                [(h.syringe, 3)],
                [(h.syringe, 3, lot)],
                ]
            # (no subTest: it would swallow the transaction restart that
            # takes the stock lock on SQLite)
            for lines in cases:
                consumption = self.consume(h, lines)
                with self.assertRaises(UserError) as cm:
                    Consumption.done([consumption])
                self.assertIn("心内科二级库", cm.exception.message)
                consumption = Consumption(consumption.id)
                self.assertEqual(consumption.state, 'draft')
                self.assertEqual(
                    [(l.lot, l.move) for l in consumption.lines],
                    [(l[2] if len(l) > 2 else None, None) for l in lines])

        self.assertEqual(Move.search([], count=True), moves_before)
        self.assertEqual(stock(h.cardio_store, h.gauze), 5)
        self.assertEqual(stock(h.cardio_store, h.syringe), 2)

        # a backdated consumption cannot use stock received after its date
        with set_company(company):
            receive(company, h.cardio_store, h.a4, 10, date=days(-1))
        with as_user(h.nurse, company):
            consumption = self.consume(
                h, [(h.a4, 1)], kind='bulk', date=days(-2))
            with self.assertRaises(UserError):
                Consumption.done([consumption])
            consumption.date = days(-1)
            consumption.save()
            Consumption.done([consumption])
        self.assertEqual(stock(h.cardio_store, h.a4), 9)

        # the assigned (reserved) stock is not available
        with set_company(company):
            move, = Move.create([{
                        'product': h.gauze.id, 'unit': h.gauze.default_uom.id,
                        'quantity': 4, 'from_location': h.cardio_store.id,
                        'to_location': h.central.id, 'company': company.id,
                        'planned_date': today(),
                        }])
            Move.assign([move])
        with as_user(h.nurse, company):
            consumption = self.consume(h, [(h.gauze, 2)])
            with self.assertRaises(UserError):
                Consumption.done([consumption])

    @with_transaction()
    def test_bad_input(self):
        "Bad input gets a clear error"
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Line = pool.get('hrp.consumption.line')
        Template = pool.get('product.template')
        company = create_company()
        with set_company(company):
            h = Hospital(company)
            receive(company, h.cardio_store, h.gauze, 10)
            receive(company, h.cardio_store, h.syringe, 10,
                lot=create_lots(h.syringe, ('S1', None))[0])

        with as_user(h.nurse, company):
            for quantity in [0, -1]:
                with self.subTest(quantity=quantity):
                    with self.assertRaises(ValidationError) as cm:
                        self.consume(h, [(h.gauze, quantity)])
                    self.assertIn("医用纱布块", cm.exception.message)
            # a store of another department
            with self.assertRaises(UserError):
                self.consume(h, [(h.gauze, 1)], store=h.ortho_store)
            # a consumption location is not a store
            with self.assertRaises(UserError):
                self.consume(h, [(h.gauze, 1)], store=h.central)
            with self.assertRaises(ValidationError):
                self.consume(h, [(h.gauze, 1)], date=days(1))
            # no lines
            empty = self.consume(h, [])
            with self.assertRaises(UserError):
                Consumption.done([empty])

        # an inactive material
        with set_company(company):
            consumption = self.consume(
                h, [(h.syringe, 1)], department=h.cardio)
            Template.write([h.syringe.template], {'active': False})
        with as_user(h.nurse, company):
            with self.assertRaises(UserError) as cm:
                Consumption.done([consumption])
            self.assertIn("一次性使用无菌注射器", cm.exception.message)
            with self.assertRaises(ValidationError):
                self.consume(h, [(h.syringe, 1)])
        with set_company(company):
            Template.write([h.syringe.template], {'active': True})

        # a department without cost centre cannot post
        with set_company(company):
            pool.get('hrp.department').write([h.cardio], {
                    'cost_center': None})
        with as_user(h.nurse, company):
            with self.assertRaises(UserError):
                Consumption.done([consumption])
        with set_company(company):
            pool.get('hrp.department').write([h.cardio], {
                    'cost_center': h.cardio_cc.id})

        with as_user(h.nurse, company):
            consumption = self.consume(h, [(h.gauze, 2)])
            Consumption.done([consumption])
            # posting twice
            with self.assertRaises(UserError) as cm:
                Consumption.done([consumption])
            self.assertIn(consumption.number, cm.exception.message)
            # a posted registration cannot be changed nor deleted
            with self.assertRaises(AccessError):
                Consumption.write([consumption], {'patient_name': "李四"})
            with self.assertRaises(AccessError):
                Line.write(list(consumption.lines), {'quantity': 1})
            with self.assertRaises(AccessError):
                Line.create([{
                            'consumption': consumption.id,
                            'product': h.gauze.id, 'quantity': 1}])
        with as_user(h.head_nurse, company):
            # cancelling without a reason
            with self.assertRaises(UserError):
                Consumption.cancel([consumption])
            Consumption.write([consumption], {'cancel_reason': "  "})
            with self.assertRaises(UserError):
                Consumption.cancel([consumption])
            with self.assertRaises(AccessError):
                Consumption.delete([consumption])
        self.assertEqual(Consumption(consumption.id).state, 'done')
        self.assertEqual(stock(h.cardio_store, h.gauze), 8)

    @with_transaction()
    def test_cancel_reversal(self):
        "Cancelling a posted consumption with a reason restores the stock"
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Cost = pool.get('hrp.department.cost')
        company = create_company()
        with set_company(company):
            h = Hospital(company)
            lot, = create_lots(h.syringe, ('S1', days(100)))
            receive(company, h.cardio_store, h.gauze, 10)
            receive(company, h.cardio_store, h.syringe, 10, lot=lot)

        with as_user(h.nurse, company):
            consumption = self.consume(h, [(h.gauze, 4), (h.syringe, 2)])
            Consumption.done([consumption])
            # a nurse cannot reverse a posting
            with self.assertRaises(UserError):
                Consumption.cancel([consumption])
        self.assertEqual(stock(h.cardio_store, h.gauze), 6)
        self.assertEqual(stock(h.cardio_store, h.syringe, lot), 8)

        with as_user(h.head_nurse, company):
            Consumption.write([consumption], {
                    'cancel_reason': "住院号录入错误"})
            Consumption.cancel([consumption])
            consumption = Consumption(consumption.id)
            self.assertEqual(consumption.state, 'cancelled')
            self.assertEqual(consumption.cancelled_by, h.head_nurse)
            self.assertIsNotNone(consumption.cancelled_at)
            self.assertEqual(consumption.cancel_reason, "住院号录入错误")
            self.assertEqual(consumption.done_by, h.nurse)
            # cancelling twice
            with self.assertRaises(UserError):
                Consumption.cancel([consumption])
            with self.assertRaises(AccessError):
                Consumption.write([consumption], {'cancel_reason': "改"})

        self.assertEqual(stock(h.cardio_store, h.gauze), 10)
        self.assertEqual(stock(h.cardio_store, h.syringe, lot), 10)
        for line in consumption.lines:
            reverse = line.reverse_move
            self.assertEqual(reverse.state, 'done')
            self.assertEqual(reverse.from_location, h.consumption_location)
            self.assertEqual(reverse.to_location, h.cardio_store)
            self.assertEqual(reverse.lot, line.lot)
            self.assertEqual(reverse.cost_price, line.unit_cost)
        with Transaction().set_context(company=company.id):
            self.assertEqual(Cost.search([]), [])

        # a draft registration is cancelled with a reason too
        with as_user(h.nurse, company):
            draft = self.consume(h, [(h.gauze, 1)])
        with as_user(h.head_nurse, company):
            with self.assertRaises(UserError):
                Consumption.cancel([draft])
            Consumption.write([draft], {'cancel_reason': "重复登记"})
            Consumption.cancel([draft])
        self.assertEqual(Consumption(draft.id).state, 'cancelled')
        self.assertEqual(stock(h.cardio_store, h.gauze), 10)

    @with_transaction()
    def test_other_department(self):
        "A nurse of another department can neither see nor create"
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Line = pool.get('hrp.consumption.line')
        company = create_company()
        with set_company(company):
            h = Hospital(company)
            receive(company, h.cardio_store, h.gauze, 10)
            receive(company, h.ortho_store, h.gauze, 10)
        with as_user(h.nurse, company):
            consumption = self.consume(h, [(h.gauze, 1)])
            Consumption.done([consumption])
            draft = self.consume(h, [(h.gauze, 1)])

        with as_user(h.ortho_nurse, company):
            self.assertEqual(Consumption.search([]), [])
            self.assertEqual(Line.search([]), [])
            with self.assertRaises(AccessError):
                Consumption.read([consumption.id], ['number'])
            with self.assertRaises(AccessError):
                Line.read([l.id for l in consumption.lines], ['quantity'])
            with self.assertRaises(AccessError):
                self.consume(h, [(h.gauze, 1)], department=h.cardio,
                    store=h.cardio_store)
            with self.assertRaises(AccessError):
                Consumption.done([draft])
            with self.assertRaises(AccessError):
                Consumption.write([draft], {'department': h.ortho.id})
            own = self.consume(h, [(h.gauze, 1)])
            self.assertEqual(own.department, h.ortho)
            self.assertEqual(own.store, h.ortho_store)
            self.assertEqual(Consumption.search([]), [own])
        self.assertEqual(Consumption(draft.id).state, 'draft')

        # the store keeper acts for every department
        with as_user(h.keeper, company):
            self.assertEqual(
                set(Consumption.search([])), {consumption, draft, own})
            Consumption.done([draft])
        # finance reads but does not post
        with as_user(h.finance, company):
            self.assertEqual(len(Consumption.search([])), 3)
            with self.assertRaises(UserError):
                Consumption.done([own])

    @with_transaction()
    def test_consumed_on_issue(self):
        "Materials consumed on issue are consumed when they reach the store"
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Shipment = pool.get('stock.shipment.internal')
        Move = pool.get('stock.move')
        Cost = pool.get('hrp.department.cost')
        company = create_company()
        with set_company(company):
            h = Hospital(company)
            receive(company, h.central, h.a4, 100)
            receive(company, h.central, h.gauze, 100)

            shipment = Shipment(
                company=company, from_location=h.central,
                to_location=h.cardio_store, planned_date=today(),
                planned_start_date=today())
            shipment.moves = [Move(
                    product=p, unit=p.default_uom, quantity=q,
                    from_location=h.central, to_location=h.cardio_store,
                    company=company) for p, q in [(h.a4, 10), (h.gauze, 30)]]
            shipment.save()
            Shipment.wait([shipment])
            Shipment.assign_try([shipment])
            self.assertEqual(Shipment(shipment.id).state, 'assigned')
            Shipment.do([shipment])

        consumption, = Consumption.search([])
        self.assertEqual(consumption.origin, shipment)
        self.assertEqual(consumption.kind, 'bulk')
        self.assertEqual(consumption.state, 'done')
        self.assertEqual(consumption.department, h.cardio)
        line, = consumption.lines
        self.assertEqual((line.product, line.quantity), (h.a4, 10))
        self.assertEqual(line.amount, Decimal('250.00'))
        self.assertEqual(line.cost_center, h.cardio_cc)
        self.assertEqual(line.category, h.paper)
        self.assertEqual(stock(h.cardio_store, h.a4), 0)
        self.assertEqual(stock(h.cardio_store, h.gauze), 30)
        self.assertEqual(stock(h.central, h.a4), 90)

        # the nurse sees it among her department's registrations
        with as_user(h.nurse, company):
            self.assertEqual(Consumption.search([]), [consumption])

        # a shipment of normal materials only creates nothing
        with set_company(company):
            shipment2, = Shipment.copy([shipment])
            Move.write(list(shipment2.moves), {'quantity': 5})
            Move.delete([m for m in shipment2.moves if m.product == h.a4])
            Shipment.wait([shipment2])
            Shipment.assign_force([shipment2])
            Shipment.do([shipment2])
        self.assertEqual(Consumption.search([], count=True), 1)
        with Transaction().set_context(company=company.id):
            cost, = Cost.search([])
        self.assertEqual(
            (cost.department, cost.category, cost.amount),
            (h.cardio, h.paper, Decimal('250.00')))

    @with_transaction()
    def test_department_cost(self):
        "The department cost sums posted use by department, month, category"
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Cost = pool.get('hrp.department.cost')
        company = create_company()
        this_month = first_of_month(today())
        last_month = first_of_month(this_month - dt.timedelta(days=1))
        with set_company(company):
            h = Hospital(company)
            lot, = create_lots(h.syringe, ('S1', None))
            for store in [h.cardio_store, h.ortho_store]:
                receive(company, store, h.gauze, 100, date=days(-100))
                receive(company, store, h.syringe, 100, lot=lot,
                    date=days(-100))
            consumptions = [
                self.consume(h, lines, department=department, store=store,
                    date=date)
                for department, store, date, lines in [
                    (h.cardio, h.cardio_store, today(),
                        [(h.gauze, 2), (h.syringe, 10)]),
                    (h.cardio, h.cardio_store, today(), [(h.gauze, 4)]),
                    (h.cardio, h.cardio_store, last_month, [(h.gauze, 1)]),
                    (h.ortho, h.ortho_store, today(), [(h.syringe, 5)]),
                    ]]
            # a draft consumption does not count
            self.consume(h, [(h.gauze, 50)], department=h.cardio)
            Consumption.done(consumptions)

        def rows(**context):
            with Transaction().set_context(company=company.id, **context):
                return sorted(
                    (c.department.code, c.month, c.category.name,
                        c.quantity, c.amount, c.cost_center.name)
                    for c in Cost.search([]))

        self.assertEqual(rows(), sorted([
                    ('XNK', this_month, "敷料类", 6, Decimal('15.00'),
                        "心内科成本"),
                    ('XNK', this_month, "注射穿刺类", 10, Decimal('8.00'),
                        "心内科成本"),
                    ('XNK', last_month, "敷料类", 1, Decimal('2.50'),
                        "心内科成本"),
                    ('GK', this_month, "注射穿刺类", 5, Decimal('4.00'),
                        "骨科成本"),
                    ]))
        self.assertEqual(
            [r[:2] for r in rows(from_date=this_month)],
            [('GK', this_month), ('XNK', this_month), ('XNK', this_month)])
        self.assertEqual(
            [r[:2] for r in rows(to_date=this_month - dt.timedelta(days=1))],
            [('XNK', last_month)])
        self.assertEqual(
            {r[0] for r in rows(department=h.ortho.id)}, {'GK'})

        # the head nurse sees her department only, finance all, nurses none
        with as_user(h.head_nurse, company):
            self.assertEqual(
                {c.department for c in Cost.search([])}, {h.cardio})
        with as_user(h.finance, company):
            self.assertEqual(
                {c.department for c in Cost.search([])}, {h.cardio, h.ortho})
        with as_user(h.nurse, company):
            with self.assertRaises(AccessError):
                Cost.search([])

    @with_transaction()
    def test_recalled_lot(self):
        "A recalled lot cannot be consumed (with the lot recall in place)"
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Lot = pool.get('stock.lot')
        if not hasattr(Lot, 'hrp_recall'):
            self.skipTest("lot recall not available")
        company = create_company()
        with set_company(company):
            h = Hospital(company)
            good, recalled = create_lots(
                h.syringe, ('S-GOOD', days(200)), ('S-BAD', days(100)))
            receive(company, h.cardio_store, h.syringe, 5, lot=good)
            receive(company, h.cardio_store, h.syringe, 5, lot=recalled)
            Lot.hrp_recall([recalled], reason="厂家召回通知")
        with as_user(h.nurse, company):
            consumption = self.consume(h, [(h.syringe, 1, recalled)])
            with self.assertRaises(UserError):
                Consumption.done([consumption])
            # without lot, the first to expire that may be used is taken
            consumption = self.consume(h, [(h.syringe, 2)])
            Consumption.done([consumption])
            line, = Consumption(consumption.id).lines
            self.assertEqual(line.lot, good)


@unittest.skipIf(
    backend.name != 'postgresql',
    "SQLite runs one writing transaction at a time")
class ConsumptionConcurrencyTestCase(unittest.TestCase):
    """Postings out of the same store at the same time on PostgreSQL
    (REPEATABLE READ): the late one fails, to be retried, and the store never
    goes negative"""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])
        with Transaction().start(DB_NAME, 0) as transaction:
            company = create_company()
            with set_company(company):
                h = Hospital(company)
                receive(company, h.cardio_store, h.gauze, 10)
            cls.company_id = company.id
            cls.store_id = h.cardio_store.id
            cls.department_id = h.cardio.id
            cls.product_id = h.gauze.id
            transaction.commit()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def context(self):
        return Transaction().set_context(company=self.company_id)

    def draft(self, quantity):
        "Create (and return the id of) a draft consumption"
        Consumption = Pool().get('hrp.consumption')
        with self.context():
            consumption, = Consumption.create([{
                        'department': self.department_id,
                        'kind': 'bulk',
                        'lines': [('create', [{
                                        'product': self.product_id,
                                        'quantity': quantity,
                                        }])],
                        }])
            return consumption.id

    def post(self, consumption_id):
        Consumption = Pool().get('hrp.consumption')
        with self.context():
            Consumption.done([Consumption(consumption_id)])

    def stock(self):
        pool = Pool()
        Location = pool.get('stock.location')
        Product = pool.get('product.product')
        with self.context():
            return stock(Location(self.store_id), Product(self.product_id))

    def test_concurrent_posting(self):
        "Two postings of 7 out of 10: one passes, the other is refused"
        with Transaction().start(DB_NAME, 0) as transaction:
            first_id = self.draft(7)
            second_id = self.draft(7)
            transaction.commit()

        with Transaction().start(DB_NAME, 0) as late:
            # the snapshot of this transaction predates the first posting
            self.assertEqual(self.stock(), 10)
            with late.new_transaction() as first:
                self.post(first_id)
                # while the first posting runs, the second cannot take the
                # store lock: it fails at once, to be retried
                with first.new_transaction() as other:
                    with self.assertRaises(
                            backend.DatabaseOperationalError) as cm:
                        self.post(second_id)
                    self.assertEqual(
                        cm.exception.sqlstate, '55P03')  # lock_not_available
                    other.rollback()
            # committed now: the late snapshot cannot lock the store it
            # changed ("could not serialize access")
            with self.assertRaises(backend.DatabaseOperationalError) as cm:
                self.post(second_id)
            self.assertEqual(
                cm.exception.sqlstate, '40001')  # serialization_failure
            late.rollback()

        # retried, the second posting sees the first one
        with Transaction().start(DB_NAME, 0) as transaction:
            with self.assertRaises(UserError):
                self.post(second_id)
            transaction.rollback()
        with Transaction().start(DB_NAME, 0):
            Consumption = Pool().get('hrp.consumption')
            self.assertEqual(self.stock(), 3)
            self.assertEqual(
                [Consumption(i).state for i in [first_id, second_id]],
                ['done', 'draft'])
