# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Replenishment (补货) from the consumption history: the parameters of each
store and material, their order points and the requests the nightly job
asks for from them (those Tryton's supply would), and the real-time stock
status of a store."""
import math
import statistics
import unittest
from decimal import Decimal

from trytond.model.exceptions import ValidationError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from .test_consumption import Hospital, create_lots, days, receive, today

GAUZE_DAILY = [(d, 4 + (d % 5)) for d in range(-60, 0)]


def move(company, product, from_location, to_location, quantity, date,
        state='done', lot=None, origin=None):
    "A move of quantity of product at date, done unless state says"
    Move = Pool().get('stock.move')
    record, = Move.create([{
                'product': product.id,
                'unit': product.default_uom.id,
                'quantity': quantity,
                'from_location': from_location.id,
                'to_location': to_location.id,
                'company': company.id,
                'lot': lot.id if lot else None,
                'origin': origin,
                'planned_date': date,
                'effective_date': date if state == 'done' else None,
                'unit_price': (product.cost_price
                    if from_location.type == 'supplier' else None),
                'currency': (company.currency.id
                    if from_location.type == 'supplier' else None),
                }])
    if state == 'done':
        Move.do([record])
    elif state == 'assigned':
        Move.assign([record])
    return record


class Wards(Hospital):
    """The hospital with a consumption history: the cardiology store uses
    gauze every day of the last 60, the central store received it twice
    from a supplier"""

    def __init__(self, company):
        super().__init__(company)
        pool = Pool()
        Location = pool.get('stock.location')
        Party = pool.get('party.party')
        Purchase = pool.get('purchase.purchase')
        Template = pool.get('product.template')
        self.supplier_location, = Location.search(
            [('type', '=', 'supplier')], limit=1)
        self.warehouse = self.central.warehouse
        self.supplier, = Party.create([{'name': "康泰医疗"}])
        Template.write([self.gauze.template, self.syringe.template], {
                'purchasable': True,
                'purchase_uom': self.gauze.default_uom.id,
                })
        # two receipts: ordered, then received 5 and 9 days later
        self.lead_times = [5, 9]
        for ordered, lead in zip([-120, -40], self.lead_times):
            purchase, = Purchase.create([{
                        'company': company.id,
                        'party': self.supplier.id,
                        'purchase_date': days(ordered),
                        'lines': [('create', [{
                                        'product': self.gauze.id,
                                        'quantity': 200,
                                        'unit': self.gauze.default_uom.id,
                                        'unit_price': Decimal('2.50'),
                                        }])],
                        }])
            line, = purchase.lines
            move(company, self.gauze, self.supplier_location, self.central,
                200, days(ordered + lead), origin=str(line))
        move(company, self.gauze, self.central, self.cardio_store, 365,
            days(-100))
        for day, quantity in GAUZE_DAILY:
            move(company, self.gauze, self.cardio_store,
                self.consumption_location, quantity, days(day))

    def daily(self, history_days=90):
        "The daily gauze demand of the window, the days without as zeros"
        by_day = dict(GAUZE_DAILY)
        return [by_day.get(-d, 0) for d in range(1, history_days + 1)]


def param(store, product):
    Replenishment = Pool().get('hrp.replenishment')
    records = Replenishment.search([
            ('store', '=', store.id), ('product', '=', product.id)])
    return records[0] if records else None


class ReplenishmentTestCase(unittest.TestCase):
    "Replenishment parameters, order points, supply and stock status"

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
    def test_parameters_from_history(self):
        """The demand, lead time, safety stock and reorder point equal a
        calculation by hand from the recorded moves"""
        pool = Pool()
        Replenishment = pool.get('hrp.replenishment')
        company = create_company()
        with set_company(company):
            h = Wards(company)
            computed = Replenishment.compute_company(company)
            self.assertEqual(computed, 2)

            daily = h.daily()
            mean, std = statistics.mean(daily), statistics.stdev(daily)
            z = statistics.NormalDist().inv_cdf(0.95)

            ward = param(h.cardio_store, h.gauze)
            self.assertEqual(ward.basis, 'history')
            self.assertEqual(ward.history_days, 90)
            self.assertEqual(ward.demand_days, 60)
            self.assertEqual(ward.demand_total, sum(daily))
            self.assertAlmostEqual(ward.daily_demand, mean, places=3)
            self.assertAlmostEqual(ward.demand_std, std, places=3)
            self.assertEqual(ward.lead_time_source, 'internal')
            self.assertEqual(ward.lead_time, 1)
            safety = z * std
            self.assertAlmostEqual(ward.safety_stock, safety, places=1)
            # in whole units, rounded up
            self.assertEqual(ward.reorder_point, math.ceil(mean + safety))
            self.assertEqual(
                ward.target_quantity, math.ceil(mean + safety + 7 * mean))
            op = ward.order_point
            self.assertEqual(op.type, 'internal')
            self.assertEqual(op.location, h.cardio_store)
            self.assertEqual(op.provisioning_location, h.central)
            self.assertEqual(op.min_quantity, ward.reorder_point)
            self.assertEqual(op.target_quantity, ward.target_quantity)
            self.assertIn("60", ward.explanation)

            # the central store buys for the whole hospital: same demand,
            # the lead time measured on its two receipts
            central = param(h.central, h.gauze)
            self.assertEqual(central.lead_time_source, 'receipts')
            self.assertEqual(central.lead_time_samples, 2)
            lead = statistics.mean(h.lead_times)
            lead_std = statistics.stdev(h.lead_times)
            self.assertEqual(central.lead_time, lead)
            self.assertAlmostEqual(central.lead_time_std, lead_std, places=2)
            safety = z * math.sqrt(lead * std ** 2 + (mean * lead_std) ** 2)
            self.assertAlmostEqual(central.safety_stock, safety, places=1)
            self.assertEqual(
                central.reorder_point, math.ceil(mean * lead + safety))
            op = central.order_point
            self.assertEqual(op.type, 'purchase')
            self.assertEqual(op.location, h.warehouse)
            self.assertIsNotNone(central.computed_at)

            # a higher service level for the category raises the safety
            h.dressings.hrp_service_level = 0.99
            h.dressings.save()
            Replenishment.compute([ward])
            ward = param(h.cardio_store, h.gauze)
            self.assertEqual(ward.service_level, 0.99)
            self.assertAlmostEqual(
                ward.safety_stock,
                statistics.NormalDist().inv_cdf(0.99) * std, places=1)

    @with_transaction()
    def test_new_material(self):
        """A material first stocked within the history window is averaged
        over the days since; an order point set by hand before gives the
        new parameter its minimum and maximum"""
        pool = Pool()
        Replenishment = pool.get('hrp.replenishment')
        OrderPoint = pool.get('stock.order_point')
        company = create_company()
        with set_company(company):
            h = Wards(company)
            OrderPoint.create([{
                        'product': h.syringe.id, 'type': 'purchase',
                        'location': h.warehouse.id, 'company': company.id,
                        'min_quantity': 30, 'target_quantity': 100,
                        }])
            lot, = create_lots(h.syringe, ('S7', days(400)))
            move(company, h.syringe, h.central, h.ortho_store, 60, days(-20),
                lot=lot)
            for day in range(-20, 0):
                move(company, h.syringe, h.ortho_store,
                    h.consumption_location, 2, days(day), lot=lot)
            Replenishment.compute_company(company)
            ortho = param(h.ortho_store, h.syringe)
            self.assertEqual(ortho.history_days, 20)
            self.assertEqual(ortho.daily_demand, 2)
            self.assertEqual(ortho.demand_std, 0)
            self.assertIn("20", ortho.explanation)

            central = param(h.central, h.syringe)
            self.assertEqual(central.minimum, 30)
            self.assertEqual(central.maximum, 100)
            self.assertEqual(central.target_quantity, 100)
            self.assertGreaterEqual(central.reorder_point, 30)
            op, = OrderPoint.search([('product', '=', h.syringe.id),
                    ('type', '=', 'purchase')])
            self.assertEqual(op, central.order_point)
            self.assertEqual(op.min_quantity, central.reorder_point)

    @with_transaction()
    def test_manual_levels(self):
        """Without history the manual minimum is the reorder point, and
        said so; the minimum is a floor, the maximum the order-up-to
        level, a manual safety stock replaces the computed one"""
        pool = Pool()
        Replenishment = pool.get('hrp.replenishment')
        company = create_company()
        with set_company(company):
            h = Wards(company)
            fallback, nothing = Replenishment.create([{
                        'store': h.ortho_store.id, 'product': h.syringe.id,
                        'minimum': 20, 'maximum': 50,
                        }, {
                        'store': h.ortho_store.id, 'product': h.gauze.id,
                        }])
            Replenishment.compute_company(company)
            fallback = param(h.ortho_store, h.syringe)
            self.assertEqual(fallback.basis, 'fallback')
            self.assertEqual(fallback.demand_total, 0)
            self.assertEqual(fallback.reorder_point, 20)
            self.assertEqual(fallback.target_quantity, 50)
            self.assertIn("20", fallback.explanation)
            self.assertEqual(fallback.order_point.min_quantity, 20)
            self.assertEqual(fallback.order_point.target_quantity, 50)

            nothing = param(h.ortho_store, h.gauze)
            self.assertEqual(nothing.basis, 'none')
            self.assertIsNone(nothing.reorder_point)
            self.assertIsNone(nothing.order_point)

            ward = param(h.cardio_store, h.gauze)
            computed_reorder = ward.reorder_point
            ward.minimum = computed_reorder + 40
            ward.maximum = computed_reorder + 100
            ward.save()
            ward = param(h.cardio_store, h.gauze)
            self.assertEqual(ward.reorder_point, computed_reorder + 40)
            self.assertEqual(ward.target_quantity, computed_reorder + 100)
            self.assertEqual(ward.order_point.min_quantity,
                computed_reorder + 40)

            ward.minimum = ward.maximum = None
            ward.safety_override = 3
            ward.save()
            ward = param(h.cardio_store, h.gauze)
            self.assertEqual(ward.safety_stock, 3)
            self.assertEqual(
                ward.reorder_point, math.ceil(ward.daily_demand + 3))
            self.assertIn("3", ward.explanation)

            # a minimum removed from a material without history stops it
            fallback.minimum = None
            fallback.maximum = None
            fallback.save()
            fallback = param(h.ortho_store, h.syringe)
            self.assertEqual(fallback.basis, 'none')
            self.assertIsNone(fallback.order_point)

    @with_transaction()
    def test_bad_input(self):
        """Negative levels, a maximum below the minimum and a service level
        outside (0, 1) are refused and change nothing"""
        pool = Pool()
        Replenishment = pool.get('hrp.replenishment')
        Configuration = pool.get('hrp.configuration')
        company = create_company()
        with set_company(company):
            h = Wards(company)
            Replenishment.compute_company(company)
            ward = param(h.cardio_store, h.gauze)
            config = Configuration(1)
            config.review_days = 7
            config.save()
            for values in [{'minimum': -1}, {'maximum': -5},
                    {'safety_override': -2}, {'minimum': 30, 'maximum': 10}]:
                with self.subTest(values=values):
                    with self.assertRaises(ValidationError) as cm:
                        Replenishment.write([ward], values)
                    self.assertIn(ward.rec_name, str(cm.exception))
            for level in [0, 1, 1.5, -0.2]:
                with self.subTest(level=level):
                    with self.assertRaises(ValidationError) as cm:
                        h.dressings.__class__.write(
                            [h.dressings], {'hrp_service_level': level})
                    self.assertIn(str(level), str(cm.exception))
                    with self.assertRaises(ValidationError):
                        Configuration.write(
                            [Configuration(1)], {'service_level': level})

    @with_transaction()
    def test_nightly_requests(self):
        """The nightly job asks the supplier for the hospital's shortage
        (a purchase request for the central store) and the central store
        for the ward's (an internal shipment request)"""
        pool = Pool()
        Replenishment = pool.get('hrp.replenishment')
        Request = pool.get('purchase.request')
        Shipment = pool.get('stock.shipment.internal')
        Product = pool.get('product.product')
        OrderPoint = pool.get('stock.order_point')
        company = create_company()
        with set_company(company):
            h = Wards(company)
            with Transaction().set_user(0), Transaction().set_context(
                    company=company.id):
                Replenishment.run_nightly()
            ward = param(h.cardio_store, h.gauze)
            central = param(h.central, h.gauze)
            with Transaction().set_context(stock_date_end=today()):
                pbl = Product.products_by_location(
                    [h.cardio_store.id, h.warehouse.id], with_childs=True,
                    grouping_filter=([h.gauze.id],))
            ward_stock = pbl.get((h.cardio_store.id, h.gauze.id), 0)
            hospital_stock = pbl.get((h.warehouse.id, h.gauze.id), 0)
            self.assertLess(ward_stock, ward.reorder_point)
            self.assertLess(hospital_stock, central.reorder_point)

            shipment, = Shipment.search([
                    ('state', '=', 'request'),
                    ('to_location', '=', h.cardio_store.id),
                    ])
            self.assertEqual(shipment.from_location, h.central)
            line, = shipment.moves
            self.assertEqual(line.product, h.gauze)
            self.assertEqual(
                line.quantity, ward.target_quantity - ward_stock)

            request, = Request.search([('hrp_source', '=', 'order_point')])
            self.assertEqual(request.product, h.gauze)
            self.assertEqual(request.warehouse, h.warehouse)
            self.assertEqual(
                request.quantity, central.target_quantity - hospital_stock)

            # run again: the same requests, not twice
            with Transaction().set_user(0), Transaction().set_context(
                    company=company.id):
                Replenishment.run_nightly()
            self.assertEqual(len(Request.search(
                        [('hrp_source', '=', 'order_point')])), 1)
            self.assertEqual(len(Shipment.search([
                            ('state', '=', 'request'),
                            ('to_location', '=', h.cardio_store.id),
                            ])), 1)

            def requests():
                return (
                    sorted((r.product.id, r.warehouse.id, r.quantity,
                            r.party) for r in Request.search(
                            [('hrp_source', '=', 'order_point')])),
                    sorted((m.from_location.id, m.to_location.id,
                            m.product.id, m.quantity)
                        for s in Shipment.search([('state', '=', 'request')])
                        for m in s.moves))
            # the same requests as Tryton's own supply over every location
            # and material
            ours = requests()
            with Transaction().set_user(0), Transaction().set_context(
                    company=company.id, _skip_warnings=True):
                OrderPoint.supply_stock()
            self.assertEqual(requests(), ours)

            # the hospital receives gauze, the ward syringes, with a
            # minimum it is above: the purchase request is withdrawn, the
            # ward still asks for gauze, not for syringes
            receive(company, h.central, h.gauze, 1000)
            syringe_lot, = create_lots(h.syringe, ('S1', days(300)))
            receive(company, h.cardio_store, h.syringe, 40, lot=syringe_lot)
            Replenishment.create([{
                        'store': h.cardio_store.id, 'product': h.syringe.id,
                        'minimum': 10, 'maximum': 30,
                        }])
            with Transaction().set_user(0), Transaction().set_context(
                    company=company.id):
                Replenishment.run_nightly()
            self.assertEqual(
                Request.search([('hrp_source', '=', 'order_point')]), [])
            shipment, = Shipment.search([('state', '=', 'request')])
            line, = shipment.moves
            self.assertEqual(line.product, h.gauze)
            self.assertEqual(line.origin, param(
                    h.cardio_store, h.gauze).order_point)
            self.assertEqual(shipment.create_uid.id, 0)

    @with_transaction()
    def test_stock_status(self):
        """On hand, reserved, in transit, on order and projected of a
        store, with its levels and status"""
        pool = Pool()
        Replenishment = pool.get('hrp.replenishment')
        Status = pool.get('hrp.stock.status')
        company = create_company()
        with set_company(company):
            h = Wards(company)
            Replenishment.compute_company(company)
            syringe_lot, = create_lots(h.syringe, ('S1', days(300)))
            receive(company, h.cardio_store, h.syringe, 40, lot=syringe_lot)
            Replenishment.create([{
                        'store': h.cardio_store.id, 'product': h.syringe.id,
                        'minimum': 10, 'maximum': 30,
                        }])
            # 5 being used for a patient (reserved), 6 on their way
            # from the central store (in transit), 7 requested (on order)
            receive(company, h.central, h.gauze, 20)
            move(company, h.gauze, h.central, h.cardio_store, 6, today(),
                state='assigned')
            move(company, h.gauze, h.central, h.cardio_store, 7, today(),
                state='draft')
            move(company, h.syringe, h.cardio_store,
                h.consumption_location, 5, today(), state='assigned',
                lot=syringe_lot)
            # 2 more to be used tomorrow (planned: reserved too)
            move(company, h.syringe, h.cardio_store,
                h.consumption_location, 2, days(1), state='draft')

            with Transaction().set_context(store=h.cardio_store.id):
                rows = {r.product: r for r in Status.search([])}
            gauze = rows[h.gauze]
            on_hand = 365 - sum(q for _, q in GAUZE_DAILY)
            self.assertEqual(gauze.on_hand, on_hand)
            self.assertEqual(gauze.in_transit, 6)
            self.assertEqual(gauze.on_order, 7)
            self.assertEqual(gauze.reserved, 0)
            self.assertEqual(gauze.projected, on_hand + 13)
            ward = param(h.cardio_store, h.gauze)
            self.assertEqual(gauze.reorder_point, ward.reorder_point)
            self.assertEqual(gauze.status, 'below_safety'
                if on_hand < ward.safety_stock else 'below_minimum')

            syringe = rows[h.syringe]
            self.assertEqual(syringe.on_hand, 40)
            self.assertEqual(syringe.reserved, 7)
            self.assertEqual(syringe.projected, 33)
            self.assertEqual(syringe.status, 'over_maximum')

            with Transaction().set_context(store=h.cardio_store.id):
                short = Status.search([('status', 'in', [
                                'out_of_stock', 'below_safety',
                                'below_minimum'])])
            self.assertEqual([r.product for r in short], [h.gauze])

            with Transaction().set_context(store=h.ortho_store.id):
                self.assertEqual(Status.search([]), [])

            # the dashboard values the stores' stock at cost
            Value = pool.get('hrp.store.value')
            values = {v.store: v for v in Value.search([])}
            cardio = values[h.cardio_store]
            self.assertEqual(cardio.value,
                Decimal('2.50') * on_hand + Decimal('0.80') * 40)
            consumed = Decimal('2.50') * sum(q for _, q in GAUZE_DAILY)
            self.assertEqual(cardio.consumption, consumed)
            self.assertAlmostEqual(cardio.turnover_days,
                float(cardio.value / consumed * 90), places=1)

