# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Lots out of HRP stores: FEFO picking, expired/near-expiry/recalled lots
and their recall."""
import datetime as dt
import unittest

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


def create_lot_material(name="一次性使用无菌注射器", lot_required=True):
    pool = Pool()
    Template = pool.get('product.template')
    Uom = pool.get('product.uom')
    unit, = Uom.search([('name', '=', 'Unit')])
    template, = Template.create([{
                'name': name,
                'type': 'goods',
                'default_uom': unit.id,
                'lot_required': ['storage'] if lot_required else [],
                'shelf_life_state': 'optional',
                'products': [('create', [{}])],
                }])
    product, = template.products
    return product


def create_lots(product, *lots):
    "Create lots from (number, shelf-life expiration date) pairs"
    Lot = Pool().get('stock.lot')
    return Lot.create([{
                'number': number, 'product': product.id,
                'shelf_life_expiration_date': expiry,
                } for number, expiry in lots])


def put_stock(company, location, product, lots, quantity=10):
    "Put quantity of each lot in location (found stock, done a year ago)"
    pool = Pool()
    Move = pool.get('stock.move')
    Location = pool.get('stock.location')
    lost_found, = Location.search([('type', '=', 'lost_found')], limit=1)
    moves = Move.create([{
                'product': product.id,
                'unit': product.default_uom.id,
                'quantity': quantity,
                'from_location': lost_found.id,
                'to_location': location.id,
                'lot': lot.id if lot else None,
                'company': company.id,
                'effective_date': days(-365),
                } for lot in lots])
    Move.do(moves)
    return moves


def setup_stores(company):
    """The central store (the warehouse's storage) and two department
    stores under the warehouse, as in the demo hospital"""
    Location = Pool().get('stock.location')
    warehouse, = Location.search([('type', '=', 'warehouse')])
    central = warehouse.storage_location
    central.hrp_store_type = 'central'
    central.save()
    parent, = Location.create([{
                'name': "科室二级库", 'type': 'view', 'parent': warehouse.id}])
    cardio = create_department(company, 'XNK', "心内科")
    ortho = create_department(company, 'GK', "骨科")
    cardio_store = create_store("心内科二级库", cardio)
    ortho_store = create_store("骨科二级库", ortho)
    Location.write([cardio_store, ortho_store], {'parent': parent.id})
    return central, cardio_store, ortho_store


def create_shipment(company, from_, to, product, quantity, lot=None):
    "A waiting internal shipment of quantity of product"
    pool = Pool()
    Shipment = pool.get('stock.shipment.internal')
    Move = pool.get('stock.move')
    shipment = Shipment(
        company=company, from_location=from_, to_location=to,
        planned_date=today(), planned_start_date=today())
    shipment.moves = [Move(
            product=product, unit=product.default_uom, quantity=quantity,
            from_location=from_, to_location=to, lot=lot, company=company)]
    shipment.save()
    Shipment.wait([shipment])
    return Shipment(shipment.id)


def picked(shipment):
    "The (lot number, quantity, state) of the shipment's moves, in FEFO order"
    moves = Pool().get('stock.move').browse(shipment.moves)
    return sorted(
        ((m.lot.number if m.lot else None, m.quantity, m.state)
            for m in moves),
        key=lambda x: (x[0] is None, x[2], x[0] or ''))


def per_lot(shipment):
    "The quantity picked per lot number"
    quantities = {}
    for move in Pool().get('stock.move').browse(shipment.moves):
        key = move.lot.number if move.lot else None
        quantities[key] = quantities.get(key, 0) + move.quantity
    return quantities


def set_near_expiry_days(days_):
    Configuration = Pool().get('hrp.configuration')
    config = Configuration(1)
    config.near_expiry_days = days_
    config.save()


class LotTestCase(unittest.TestCase):
    "Test HRP lots: FEFO picking, expiry and recall"

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
    def test_configuration(self):
        "Near-expiry days default to 30 and cannot be negative"
        Configuration = Pool().get('hrp.configuration')
        company = create_company()
        with set_company(company):
            self.assertEqual(Configuration(1).near_expiry_days, 30)
            with self.assertRaises(ValidationError):
                set_near_expiry_days(-1)
            set_near_expiry_days(0)
            self.assertEqual(Configuration(1).near_expiry_days, 0)

    @with_transaction()
    def test_fefo_order(self):
        "Lots are picked first-expired-first-out, undated lots last"
        pool = Pool()
        Shipment = pool.get('stock.shipment.internal')
        Move = pool.get('stock.move')
        company = create_company()
        with set_company(company):
            central, cardio, _ = setup_stores(company)
            product = create_lot_material()
            lots = create_lots(product,
                ('L200', days(200)),
                ('L100B', days(100)),
                ('L300', days(300)),
                ('L150', days(150)),
                ('L100A', days(100)),
                ('LNONE', None))
            put_stock(company, central, product, lots)

            shipment = create_shipment(
                company, central, cardio, product, 55)
            Shipment.assign_try([shipment])
            shipment = Shipment(shipment.id)
            self.assertEqual(shipment.state, 'assigned')
            self.assertEqual(picked(shipment), [
                    ('L100A', 10, 'assigned'),
                    ('L100B', 10, 'assigned'),
                    ('L150', 10, 'assigned'),
                    ('L200', 10, 'assigned'),
                    ('L300', 10, 'assigned'),
                    ('LNONE', 5, 'assigned'),
                    ])
            # the first lot stays on the requested move, Tryton copies it for
            # the others, and all know their lot was picked
            self.assertEqual(
                min(shipment.moves, key=lambda m: m.id).lot.number, 'L100A')
            self.assertTrue(all(m.hrp_lot_auto for m in shipment.moves))

            # the next issue takes what is left, still FEFO
            second = create_shipment(company, central, cardio, product, 5)
            self.assertTrue(Move.assign_try(list(second.moves)))
            self.assertEqual(picked(Shipment(second.id)), [
                    ('LNONE', 5, 'assigned')])

            Shipment.do([shipment])
            self.assertEqual(
                {m.state for m in Shipment(shipment.id).moves}, {'done'})

    @with_transaction()
    def test_fefo_without_lot_requirement(self):
        "Stock without lot of a material needing none comes after the lots"
        pool = Pool()
        Shipment = pool.get('stock.shipment.internal')
        company = create_company()
        with set_company(company):
            central, cardio, _ = setup_stores(company)
            product = create_lot_material("医用棉签", lot_required=False)
            lot, = create_lots(product, ('M1', days(90)))
            put_stock(company, central, product, [None, lot])
            shipment = create_shipment(
                company, central, cardio, product, 15)
            Shipment.assign_try([shipment])
            self.assertEqual(picked(Shipment(shipment.id)), [
                    ('M1', 10, 'assigned'),
                    (None, 5, 'assigned'),
                    ])

    @with_transaction()
    def test_excluded_lots(self):
        "Expired, near-expiry and recalled lots are not picked"
        pool = Pool()
        Shipment = pool.get('stock.shipment.internal')
        Lot = pool.get('stock.lot')
        company = create_company()
        with set_company(company):
            central, cardio, _ = setup_stores(company)
            product = create_lot_material()
            expired, today_, boundary, valid, recalled = create_lots(
                product,
                ('EXPIRED', days(-1)),
                ('TODAY', days(0)),
                ('D30', days(30)),
                ('D31', days(31)),
                ('RECALLED', days(400)))
            put_stock(company, central, product,
                [expired, today_, boundary, valid, recalled])
            Lot.hrp_recall([recalled], reason="厂家召回通知")

            self.assertEqual(
                [l.hrp_expiry_state for l in Lot.browse(
                        [expired, today_, boundary, valid, recalled])],
                ['expired', 'near_expiry', 'near_expiry', 'valid', 'valid'])
            self.assertEqual(
                set(Lot.search([('hrp_expiry_state', '=', 'near_expiry')])),
                {today_, boundary})
            self.assertEqual(
                set(Lot.search([('hrp_expiry_state', '!=', 'valid')])),
                {expired, today_, boundary})
            self.assertEqual(
                set(Lot.search([
                            ('hrp_expiry_state', 'in', ['expired', 'valid']),
                            ])),
                {expired, valid, recalled})

            shipment = create_shipment(
                company, central, cardio, product, 15)
            Shipment.assign_try([shipment])
            shipment = Shipment(shipment.id)
            # partially assigned: the remainder waits in its own move
            self.assertEqual(shipment.state, 'waiting')
            self.assertTrue(shipment.partially_assigned)
            self.assertEqual(picked(shipment), [
                    ('D31', 10, 'assigned'),
                    (None, 5, 'draft'),
                    ])

            # with 29 near-expiry days the 30-day lot may go, first; reset
            # to waiting, the picked lots are picked again
            set_near_expiry_days(29)
            Shipment.wait([shipment])
            shipment = Shipment(shipment.id)
            self.assertEqual(picked(shipment), [
                    (None, 5, 'draft'),
                    (None, 10, 'draft'),
                    ])
            Shipment.assign_try([shipment])
            shipment = Shipment(shipment.id)
            self.assertEqual(shipment.state, 'assigned')
            self.assertEqual(per_lot(shipment), {'D30': 10, 'D31': 5})

    @with_transaction()
    def test_only_excluded_lots(self):
        "With only excluded lots left, nothing is assigned"
        pool = Pool()
        Shipment = pool.get('stock.shipment.internal')
        Lot = pool.get('stock.lot')
        company = create_company()
        with set_company(company):
            central, cardio, _ = setup_stores(company)
            product = create_lot_material()
            lots = create_lots(product,
                ('EXPIRED', days(-10)), ('NEAR', days(5)),
                ('RECALLED', days(200)))
            put_stock(company, central, product, lots)
            Lot.hrp_recall([lots[-1]], reason="注册证撤销")

            shipment = create_shipment(
                company, central, cardio, product, 4)
            move, = shipment.moves
            Shipment.assign_try([shipment])
            shipment = Shipment(shipment.id)
            self.assertEqual(shipment.state, 'waiting')
            self.assertFalse(shipment.partially_assigned)
            self.assertEqual(picked(shipment), [(None, 4, 'draft')])
            self.assertEqual(list(shipment.moves), [move])

    @with_transaction()
    def test_hand_set_lot_refused(self):
        "A recalled, expired or near-expiry lot set by hand is refused"
        pool = Pool()
        Shipment = pool.get('stock.shipment.internal')
        Move = pool.get('stock.move')
        Lot = pool.get('stock.lot')
        company = create_company()
        with set_company(company):
            central, cardio, ortho = setup_stores(company)
            product = create_lot_material()
            recalled, expired, near, valid = create_lots(product,
                ('RECALLED', days(200)), ('EXPIRED', days(-1)),
                ('NEAR', days(10)), ('VALID', days(100)))
            put_stock(company, central, product,
                [recalled, expired, near, valid])
            Lot.hrp_recall([recalled], reason="厂家召回通知")

            for lot in [recalled, expired, near]:
                with self.subTest(lot=lot.number):
                    shipment = create_shipment(
                        company, central, cardio, product, 3, lot=lot)
                    move, = shipment.moves
                    with self.assertRaises(UserError) as cm:
                        Shipment.assign_try([shipment])
                    self.assertIn(lot.number, cm.exception.message)
                    with self.assertRaises(UserError):
                        Move.assign_try([move])
                    # forced assignment
                    with self.assertRaises(UserError):
                        Shipment.assign_force([shipment])
                    # done straight from draft
                    with self.assertRaises(UserError):
                        Move.do([move])
                    move = Move(move.id)
                    self.assertEqual(
                        (move.state, move.quantity, move.lot),
                        ('draft', 3, lot))
                    self.assertEqual(Shipment(shipment.id).state, 'waiting')
                    self.assertEqual(len(Shipment(shipment.id).moves), 1)

            # a lot recalled after the assignment is refused when done
            shipment = create_shipment(
                company, central, cardio, product, 3, lot=valid)
            Shipment.assign_try([shipment])
            self.assertEqual(Shipment(shipment.id).state, 'assigned')
            Lot.hrp_recall([valid], reason="抽检不合格")
            with self.assertRaises(UserError) as cm:
                Shipment.do([shipment])
            self.assertIn("抽检不合格", cm.exception.message)
            shipment = Shipment(shipment.id)
            self.assertEqual(shipment.state, 'assigned')
            self.assertEqual(shipment.moves[0].state, 'assigned')

            # a near-expiry lot set by hand is refused between department
            # stores too
            Lot.hrp_lift_recall([valid], reason="复检合格")
            put_stock(company, cardio, product, [near])
            transfer = create_shipment(
                company, cardio, ortho, product, 2, lot=near)
            with self.assertRaises(UserError):
                Shipment.assign_try([transfer])

    @with_transaction()
    def test_returns_and_write_off(self):
        """Near-expiry and expired lots go back to the central store or to
        write-off; recalled lots only there or to the supplier"""
        pool = Pool()
        Shipment = pool.get('stock.shipment.internal')
        Move = pool.get('stock.move')
        Lot = pool.get('stock.lot')
        Location = pool.get('stock.location')
        Inventory = pool.get('stock.inventory')
        company = create_company()
        # moves to patients and suppliers without origin warn
        with set_company(company), \
                Transaction().set_context(_skip_warnings=True):
            central, cardio, _ = setup_stores(company)
            product = create_lot_material()
            near, expired, recalled, later = create_lots(product,
                ('NEAR', days(10)), ('EXPIRED', days(-3)),
                ('RECALLED', days(300)), ('LATER', days(20)))
            put_stock(company, cardio, product,
                [near, expired, recalled, later])
            Lot.hrp_recall([recalled], reason="厂家召回通知")
            lost_found, = Location.search([('type', '=', 'lost_found')])
            supplier, = Location.search([('type', '=', 'supplier')])
            customer, = Location.search([('type', '=', 'customer')])

            # returns of near-expiry, expired and recalled lots to the
            # central store
            # (no subTest: on SQLite the first assignment restarts the test
            # to lock the move table)
            for lot in [near, expired, recalled]:
                back = create_shipment(
                    company, cardio, central, product, 2, lot=lot)
                Shipment.assign_try([back])
                self.assertEqual(Shipment(back.id).state, 'assigned', lot)
                Shipment.do([back])
                self.assertEqual(Shipment(back.id).state, 'done', lot)

            # the recalled lot goes back to the supplier, never to a patient
            to_patient, to_supplier = Move.create([{
                        'product': product.id, 'unit': product.default_uom.id,
                        'quantity': 1, 'from_location': cardio.id,
                        'to_location': location.id, 'lot': recalled.id,
                        'company': company.id, 'unit_price': 0,
                        'currency': company.currency.id,
                        } for location in [customer, supplier]])
            with self.assertRaises(UserError):
                Move.do([to_patient])
            Move.do([to_supplier])
            self.assertEqual(Move(to_supplier.id).state, 'done')
            # the expired lot is not used either
            used, = Move.create([{
                        'product': product.id, 'unit': product.default_uom.id,
                        'quantity': 1, 'from_location': cardio.id,
                        'to_location': customer.id, 'lot': expired.id,
                        'company': company.id, 'unit_price': 0,
                        'currency': company.currency.id,
                        }])
            with self.assertRaises(UserError):
                Move.do([used])

            # the department uses its near-expiry lots first
            use, = Move.create([{
                        'product': product.id, 'unit': product.default_uom.id,
                        'quantity': 9, 'from_location': cardio.id,
                        'to_location': customer.id,
                        'company': company.id, 'unit_price': 0,
                        'currency': company.currency.id,
                        }])
            self.assertTrue(Move.assign_try([use]))
            self.assertEqual(
                sorted((m.lot.number, m.quantity) for m in Move.search([
                            ('from_location', '=', cardio.id),
                            ('to_location', '=', customer.id),
                            ('state', '=', 'assigned'),
                            ])),
                [('LATER', 1), ('NEAR', 8)])

            # the counted expired stock is written off by the inventory
            inventory, = Inventory.create([{
                        'location': cardio.id, 'date': today(),
                        'company': company.id,
                        'lines': [('create', [{
                                        'product': product.id,
                                        'lot': expired.id,
                                        'quantity': 0,
                                        }])],
                        }])
            Inventory.confirm([inventory])
            self.assertEqual(Inventory(inventory.id).state, 'done')
            line, = Inventory(inventory.id).lines
            write_off, = line.moves
            self.assertEqual(
                (write_off.to_location, write_off.lot, write_off.quantity,
                    write_off.state),
                (cardio.lost_found_used or lost_found, expired, 8, 'done'))

    @with_transaction()
    def test_recall_log(self):
        "Recall and lift record who, when and why"
        pool = Pool()
        Lot = pool.get('stock.lot')
        Log = pool.get('hrp.lot.recall.log')
        ModelData = pool.get('ir.model.data')
        Recall = pool.get('hrp.lot.recall', type='wizard')
        company = create_company()
        with set_company(company):
            product = create_lot_material()
            lot, = create_lots(product, ('20260101', days(100)))
            keeper = create_user(
                'keeper', 'hrp_materials.group_store_keeper', company)

        before = dt.datetime.now().replace(microsecond=0)
        with as_user(keeper, company):
            # the button opens the dialog asking the reason
            action_id = Lot.hrp_recall([lot])
            self.assertEqual(action_id,
                ModelData.get_id('hrp_materials', 'wizard_lot_recall'))
            self.assertFalse(Lot(lot.id).hrp_recalled)
            with Transaction().set_context(
                    active_model='stock.lot', active_id=lot.id,
                    active_ids=[lot.id], action_id=action_id):
                session_id, _, _ = Recall.create()
                wizard = Recall(session_id)
                self.assertEqual(
                    wizard.default_start(None), {'action': 'recall'})
                wizard.start.action = 'recall'
                wizard.start.reason = " "
                with self.assertRaises(UserError):
                    wizard.transition_confirm()
                wizard.start.reason = "国家药监局召回公告 2026-017"
                self.assertEqual(wizard.transition_confirm(), 'end')
            lot = Lot(lot.id)
            self.assertTrue(lot.hrp_recalled)
            self.assertEqual(lot.hrp_recall_reason, "国家药监局召回公告 2026-017")
            self.assertEqual(lot.hrp_recalled_by, keeper)
            self.assertTrue(
                before <= lot.hrp_recalled_at <= dt.datetime.now())

            with self.assertRaises(UserError):
                Lot.hrp_recall([lot], reason="再次召回")
            with self.assertRaises(UserError):
                Lot.hrp_lift_recall([lot], reason="")
            Lot.hrp_lift_recall([lot], reason="召回范围不含本批")
            lot = Lot(lot.id)
            self.assertFalse(lot.hrp_recalled)
            self.assertIsNone(lot.hrp_recalled_by)
            with self.assertRaises(UserError):
                Lot.hrp_lift_recall([lot], reason="再次解除")

            logs = Log.search([('lot', '=', lot.id)], order=[('id', 'ASC')])
            self.assertEqual(
                [(l.action, l.reason, l.user) for l in logs], [
                    ('recall', "国家药监局召回公告 2026-017", keeper),
                    ('lift', "召回范围不含本批", keeper),
                    ])
            self.assertTrue(all(
                    before <= l.date <= dt.datetime.now() for l in logs))
            self.assertEqual(lot.hrp_recall_logs[0], logs[-1])

            # the history is read-only, the recall fields too
            with self.assertRaises(AccessError):
                Log.write(logs, {'reason': "改写"})
            with self.assertRaises(AccessError):
                Log.delete(logs)
        with Transaction().set_context(_check_access=True):
            with self.assertRaises(UserError):
                Lot.write([lot], {'hrp_recalled': True})
            with self.assertRaises(AccessError):
                Log.write(logs, {'reason': "改写"})

    @with_transaction()
    def test_recall_access(self):
        "Only store keepers and HRP administrators recall lots"
        pool = Pool()
        Lot = pool.get('stock.lot')
        ModelData = pool.get('ir.model.data')
        Recall = pool.get('hrp.lot.recall', type='wizard')
        company = create_company()
        with set_company(company):
            product = create_lot_material()
            lot, = create_lots(product, ('20260101', days(100)))
            nurse = create_user('nurse', 'hrp_materials.group_nurse', company)
            clerk = create_user('clerk', 'stock.group_stock', company)
            admin = create_user(
                'hrpadmin', 'hrp_materials.group_hrp_admin', company)

        action_id = ModelData.get_id('hrp_materials', 'wizard_lot_recall')
        for user in [nurse, clerk]:
            with as_user(user, company):
                # they read lots, but have neither the button nor the dialog
                Lot.read([lot.id], ['number'])
                with self.assertRaises(UserError):
                    Lot.hrp_recall([lot], reason="库管员以外")
                with Transaction().set_context(
                        active_model='stock.lot', active_id=lot.id,
                        active_ids=[lot.id], action_id=action_id):
                    with self.assertRaises(AccessError):
                        Recall.create()
                # nor write the recall fields (nurses write no lot)
                with self.assertRaises(UserError):
                    Lot.write([lot], {'hrp_recalled': True})
        self.assertFalse(Lot(lot.id).hrp_recalled)
        with as_user(admin, company):
            Lot.hrp_recall([lot], reason="管理员召回")
        self.assertTrue(Lot(lot.id).hrp_recalled)


@unittest.skipUnless(
    backend.name == 'postgresql', "row locks need PostgreSQL")
class LotConcurrencyTestCase(unittest.TestCase):
    """Transactions assigning the same lot at the same time on PostgreSQL
    (REPEATABLE READ): the late one fails, to be retried, and never assigns
    the lot twice"""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])
        with Transaction().start(DB_NAME, 0) as transaction:
            company = create_company()
            with set_company(company):
                stores = setup_stores(company)
            cls.company_id = company.id
            cls.store_ids = [s.id for s in stores]
            transaction.commit()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def setup_stock(self, number, quantity=10):
        "Commit quantity of a new material in one lot in the central store"
        with Transaction().start(DB_NAME, 0) as transaction, \
                Transaction().set_context(company=self.company_id):
            pool = Pool()
            Company = pool.get('company.company')
            Location = pool.get('stock.location')
            company = Company(self.company_id)
            central = Location(self.store_ids[0])
            product = create_lot_material(f"留置针 {number}")
            lot, = create_lots(product, (number, days(100)))
            put_stock(company, central, product, [lot], quantity=quantity)
            transaction.commit()
            return product.id

    def shipment(self, product_id, quantity, store_index=1):
        "Create (and return the id of) a waiting shipment in this transaction"
        pool = Pool()
        Company = pool.get('company.company')
        Location = pool.get('stock.location')
        Product = pool.get('product.product')
        with Transaction().set_context(company=self.company_id):
            return create_shipment(
                Company(self.company_id), Location(self.store_ids[0]),
                Location(self.store_ids[store_index]),
                Product(product_id), quantity).id

    def assign(self, shipment_id):
        Shipment = Pool().get('stock.shipment.internal')
        with Transaction().set_context(company=self.company_id):
            Shipment.assign_try([Shipment(shipment_id)])

    def state(self, shipment_id):
        Shipment = Pool().get('stock.shipment.internal')
        return picked(Shipment(shipment_id))

    def test_concurrent_assignment(self):
        "Two shipments waiting for the same lot are assigned one at a time"
        product_id = self.setup_stock('ONLY')
        with Transaction().start(DB_NAME, 0) as transaction:
            first_id = self.shipment(product_id, 7)
            second_id = self.shipment(product_id, 7, store_index=2)
            transaction.commit()

        with Transaction().start(DB_NAME, 0) as late:
            # this transaction's snapshot is taken before the first
            # assignment commits
            self.assertEqual(self.state(second_id), [(None, 7, 'draft')])
            with late.new_transaction() as first:
                self.assign(first_id)
                # while the first assignment is not committed, the second
                # cannot take the locks (NOWAIT): it fails at once and the
                # dispatcher retries it
                with first.new_transaction() as other:
                    with self.assertRaises(
                            backend.DatabaseOperationalError) as cm:
                        self.assign(second_id)
                    self.assertEqual(
                        cm.exception.sqlstate, '55P03')  # lock_not_available
                    other.rollback()
            # committed now; REPEATABLE READ refuses to lock the rows changed
            # since the snapshot ("could not serialize access")
            with self.assertRaises(backend.DatabaseOperationalError) as cm:
                self.assign(second_id)
            self.assertEqual(
                cm.exception.sqlstate, '40001')  # serialization_failure
            late.rollback()

        # retried, the second assignment sees the first one
        with Transaction().start(DB_NAME, 0) as transaction:
            self.assign(second_id)
            self.assertEqual(self.state(first_id), [('ONLY', 7, 'assigned')])
            self.assertEqual(self.state(second_id), [
                    ('ONLY', 3, 'assigned'), (None, 4, 'draft')])
            transaction.commit()

    def test_create_and_assign(self):
        """A shipment created and assigned in one transaction is seen by an
        older concurrent assignment"""
        product_id = self.setup_stock('ONCE')
        with Transaction().start(DB_NAME, 0) as transaction:
            waiting_id = self.shipment(product_id, 7)
            transaction.commit()

        with Transaction().start(DB_NAME, 0) as late:
            self.assertEqual(self.state(waiting_id), [(None, 7, 'draft')])
            # a requisition creates its shipment and assigns it at once: its
            # moves are new rows the late transaction does not see nor lock
            with late.new_transaction():
                issued_id = self.shipment(product_id, 7, store_index=2)
                self.assign(issued_id)
            # without the store lock, the late assignment would take the
            # same 7 out of the 10 again
            with self.assertRaises(backend.DatabaseOperationalError) as cm:
                self.assign(waiting_id)
            self.assertEqual(cm.exception.sqlstate, '40001')
            late.rollback()

        with Transaction().start(DB_NAME, 0) as transaction:
            self.assign(waiting_id)
            self.assertEqual(self.state(issued_id), [('ONCE', 7, 'assigned')])
            self.assertEqual(self.state(waiting_id), [
                    ('ONCE', 3, 'assigned'), (None, 4, 'draft')])
