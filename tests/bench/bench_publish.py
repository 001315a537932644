# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Time composing the suppliers' consumption messages of a day, and print
the figures.

    python tests/bench/bench_publish.py [--uri URI] [--surgeries N]
        [--units N] [--suppliers N] [--materials N] [--runs N]

Target (issue 6): composing the messages for a day of 200 surgeries in
less than 2 s.

Builds a throw-away database with hrp_materials on URI (default the local
PostgreSQL, from the test suite's template database; ``sqlite://`` works
too): the operating theatre's high-value store, SUPPLIERS suppliers with a
mobile number and MATERIALS serial-tracked implants spread over them, each
with an agreed level, one unit per lot, the lots attributed to their
supplier by receipts written directly (receiving is measured by
bench_receiving.py), and SURGERIES usage registrations of UNITS units each
posted today.  Then, RUNS times, as the scheduled job: compose the messages
(one per supplier), and publish them (compose, log and queue their SMS in
the outbox), each rolled back.  It asserts nothing: it is a measurement,
not a test."""
import argparse
import datetime as dt
import os
import random
import sys
import time
from decimal import Decimal

import benchdb
from benchdb import report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--uri', default=os.environ.get(
            'HRP_TEST_DB_URI', 'postgresql://postgres@127.0.0.1:5432/'))
    parser.add_argument('--surgeries', type=int, default=200)
    parser.add_argument('--units', type=int, default=3)
    parser.add_argument('--suppliers', type=int, default=20)
    parser.add_argument('--materials', type=int, default=100)
    parser.add_argument('--runs', type=int, default=5)
    options = parser.parse_args(argv)

    benchdb.configure(options.uri, 'bench_publish')

    from sql import Table

    from trytond.modules.company.tests import create_company, set_company
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME, activate_module, drop_db
    from trytond.transaction import Transaction

    from hrp_materials.tests.test_consumption import (
        create_category, create_product)
    from hrp_materials.tests.tools import (
        create_cost_center, create_department, create_store,
        run_like_dispatcher)

    started = time.perf_counter()
    activate_module(['hrp_materials'])
    print(f"database ({options.uri.split(':')[0]}) ready in "
        f"{time.perf_counter() - started:.1f} s")
    pool = Pool(DB_NAME)
    Pool.test = False
    rng = random.Random(6)

    def build():
        Consumption = pool.get('hrp.consumption')
        Endpoint = pool.get('his.endpoint')
        Level = pool.get('hrp.agreed.level')
        Location = pool.get('stock.location')
        Lot = pool.get('stock.lot')
        Move = pool.get('stock.move')
        Party = pool.get('party.party')
        Purchase = pool.get('purchase.purchase')
        company = create_company()
        with set_company(company):
            warehouse, = Location.search([('type', '=', 'warehouse')])
            lost_found, = Location.search([('type', '=', 'lost_found')])
            theatre = create_department(
                company, 'SSS', "手术室",
                cost_center=create_cost_center(company, "手术室成本").id)
            store = create_store("手术室高值库", theatre, 'high_value')
            store.parent = warehouse
            store.save()
            Endpoint.create([{
                        'name': "短信猫", 'company': company.id,
                        'purpose': 'sms', 'kind': 'sms_modem',
                        'url': '/dev/ttyUSB0'}])
            suppliers = Party.create([{
                        'name': f"供应商 {s:02d}",
                        'addresses': [('create', [{}])],
                        'contact_mechanisms': [('create', [{
                                        'type': 'mobile',
                                        'value': f'1380000{s:04d}'}])],
                        } for s in range(options.suppliers)])
            implants = create_category("植入类")
            products = [create_product(
                    f"植入物 {m:03d}", implants, Decimal('3000') + m,
                    implant=True, serial_tracked=True, lot_required=True)
                for m in range(options.materials)]
            supplier_of = {
                p.id: suppliers[i % len(suppliers)]
                for i, p in enumerate(products)}
            Level.create([{
                        'company': company.id, 'store': store.id,
                        'supplier': supplier_of[p.id].id, 'product': p.id,
                        'safety_quantity': 2, 'maximum_quantity': 6}
                    for p in products])

            # the units of the day, one lot each, in the theatre store
            used = [rng.choice(products)
                for _ in range(options.surgeries * options.units)]
            lots = Lot.create([{
                        'number': f'SN{i:06d}', 'product': p.id}
                    for i, p in enumerate(used)])
            moves = Move.create([{
                        'product': l.product.id,
                        'unit': l.product.default_uom.id, 'quantity': 1,
                        'lot': l.id, 'from_location': lost_found.id,
                        'to_location': store.id, 'company': company.id,
                        'effective_date': dt.date.today(),
                        } for l in lots])
            Move.do(moves)

            # the receipts that attribute the lots to their suppliers
            purchases = Purchase.create([{
                        'company': company.id, 'party': s.id,
                        'invoice_address': s.addresses[0].id,
                        'warehouse': warehouse.id,
                        } for s in suppliers])
            purchase_of = {p.party.id: p for p in purchases}
            receipt = Table('hrp_receipt')
            receipt_line = Table('hrp_receipt_line')
            cursor = Transaction().connection.cursor()
            receipt_ids = {}
            for supplier in suppliers:
                cursor.execute(*receipt.insert(
                        [receipt.company, receipt.kind, receipt.purchase,
                            receipt.supplier, receipt.warehouse,
                            receipt.state, receipt.number],
                        [[company.id, 'purchase',
                                purchase_of[supplier.id].id, supplier.id,
                                warehouse.id, 'done', f'RK-{supplier.id}']],
                        [receipt.id]))
                receipt_ids[supplier.id], = cursor.fetchone()
            cursor.execute(*receipt_line.insert(
                    [receipt_line.receipt, receipt_line.product,
                        receipt_line.unit, receipt_line.quantity,
                        receipt_line.lot, receipt_line.state,
                        receipt_line.serial],
                    [[receipt_ids[supplier_of[l.product.id].id],
                            l.product.id, l.product.default_uom.id, 1,
                            l.id, 'accepted', l.number] for l in lots]))

            consumptions = Consumption.create([{
                        'department': theatre.id, 'store': store.id,
                        'kind': 'bulk',
                        'lines': [('create', [{
                                        'product': l.product.id,
                                        'quantity': 1, 'lot': l.id,
                                        } for l in lots[
                                        s * options.units:
                                        (s + 1) * options.units]])],
                        } for s in range(options.surgeries)])
            Consumption.post(consumptions)
        return company.id

    try:
        started = time.perf_counter()
        company_id, _ = run_like_dispatcher(0, {}, build)
        print(f"{options.surgeries} surgeries of {options.units} units from "
            f"{options.suppliers} suppliers posted in "
            f"{time.perf_counter() - started:.1f} s")

        Company = pool.get('company.company')
        Message = pool.get('hrp.supplier.message')
        compose_times, publish_times, counts = [], [], []
        for _ in range(options.runs):
            with Transaction().start(DB_NAME, 0, context={
                        'company': company_id}) as transaction:
                start = time.perf_counter()
                messages = Message.compose(Company(company_id))
                compose_times.append(time.perf_counter() - start)
                counts.append(len(messages))
                transaction.rollback()
            with Transaction().start(DB_NAME, 0) as transaction:
                start = time.perf_counter()
                Message.publish([Company(company_id)])
                publish_times.append(time.perf_counter() - start)
                transaction.rollback()
        print(f"  {counts[0]} messages, e.g.: {messages[0].text}")
        report("compose the messages of the day", compose_times)
        report("publish: compose, log and queue their SMS", publish_times)
        print("  (target < 2 s to compose)")
    finally:
        if not options.uri.startswith('sqlite'):
            drop_db()


if __name__ == '__main__':
    sys.exit(main())
