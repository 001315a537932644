# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Fifty requisitions compete for one scarce lot, each in its own
transaction and thread, the way concurrent desk requests reach the server
(PostgreSQL only: SQLite serialises its writers)."""
import collections
import random
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor

from trytond import backend
from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    DB_NAME, activate_module, drop_db)
from trytond.transaction import Transaction

from .test_requisition import Hospital
from .tools import run_like_dispatcher

REQUISITIONS = 50
STOCK = 20


@unittest.skipUnless(backend.name == 'postgresql',
    "needs concurrent writers (PostgreSQL)")
class RequisitionConcurrencyTestCase(unittest.TestCase):
    "Concurrent requisitions never over-issue a scarce lot"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def test_fifty_requisitions_one_lot(self):
        pool = Pool(DB_NAME)
        with Transaction().start(DB_NAME, 0) as transaction:
            Requisition = pool.get('hrp.requisition')
            Move = pool.get('stock.move')
            h = Hospital(stock=[('SCARCE', 100, STOCK)])
            with set_company(h.company):
                requisitions = [h.requisition(random.Random(i).randint(1, 3))
                    for i in range(REQUISITIONS)]
            ids = [r.id for r in requisitions]
            requested = {r.id: r.lines[0].quantity for r in requisitions}
            nurse_id, company_id = h.nurse.id, h.company.id
            keeper_id = h.keeper.id
            central_id = h.central.id
            product_id = h.syringe.id
            transaction.commit()

        barrier = threading.Barrier(min(REQUISITIONS, 25))

        def submit(requisition_id):
            try:
                barrier.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass

            def call():
                with Transaction().set_context(_check_access=True):
                    Requisition.submit([Requisition(requisition_id)])
            return run_like_dispatcher(nurse_id, {'company': company_id}, call)

        with ThreadPoolExecutor(max_workers=25) as executor:
            results = list(executor.map(submit, ids))
        retries = sum(attempt for _, attempt in results)

        def issue_all():
            Shipment = pool.get('stock.shipment.internal')
            shipments = Shipment.search([('state', '=', 'assigned')])
            Shipment.do(shipments)
            return len(shipments)
        run_like_dispatcher(keeper_id, {'company': company_id}, issue_all)

        with Transaction().start(DB_NAME, 0, context={
                    'company': company_id}):
            Location = pool.get('stock.location')
            reserved = issued = backordered = 0
            for requisition in Requisition.browse(ids):
                self.assertIn(requisition.state,
                    {'approved', 'partially_issued', 'done'})
                line, = requisition.lines
                self.assertEqual(
                    line.issued_quantity + line.reserved_quantity
                    + line.backorder_quantity,
                    requested[requisition.id], requisition.number)
                issued += line.issued_quantity
                reserved += line.reserved_quantity
                backordered += line.backorder_quantity
                self.assertEqual(
                    sum(r.quantity for r in line.purchase_requests),
                    line.backorder_quantity)
            self.assertEqual(reserved, 0)
            self.assertEqual(issued, STOCK)
            self.assertEqual(
                issued + backordered, sum(requested.values()))
            # the stock actually moved (done moves): no store went negative
            # and the central store gave exactly what it had
            balance = collections.Counter()
            for move in Move.search([
                        ('product', '=', product_id),
                        ('state', '=', 'done')]):
                balance[move.from_location] -= move.quantity
                balance[move.to_location] += move.quantity
            for location, quantity in balance.items():
                if location.type == 'storage':
                    self.assertGreaterEqual(quantity, 0, location.rec_name)
            self.assertEqual(balance[Location(central_id)], 0)
            moves = Move.search([
                    ('product', '=', product_id),
                    ('from_location', '=', central_id),
                    ('state', '=', 'done')])
            self.assertEqual(sum(m.quantity for m in moves), STOCK)
        print(f"\n{REQUISITIONS} concurrent requisitions: {STOCK} issued, "
            f"{backordered:g} backordered, {retries} retries")
