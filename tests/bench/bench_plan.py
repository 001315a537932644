# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Time a purchase plan over many open requests, and print the figures.

    python tests/bench/bench_plan.py [--uri URI] [--requests N]
        [--suppliers N] [--materials N] [--contract-share F] [--runs N]

Target (issue 5): a plan over 1,000 open requests from 50 suppliers,
aggregated and approved into orders in less than 5 s on PostgreSQL.

Builds a throw-away database with hrp_materials on URI (default the local
PostgreSQL, from the test suite's template database; ``sqlite://`` works
too), SUPPLIERS qualified suppliers with MATERIALS materials spread over
them (each with its supplier price), the share F (default all) of each
supplier's materials under an active contract with it, and REQUESTS open
purchase requests spread over the materials.  Then, RUNS times (each run on
fresh requests), as the procurement officer: collect the requests into a
new plan (one transaction) and submit it (no rule stops it, so the submit
approves it and orders one quoted purchase per supplier at the contract
prices; one transaction).  With F below 1 the purchases with materials
outside contract wait for the leadership's approval.  It asserts nothing:
it is a measurement, not a test."""
import argparse
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
    parser.add_argument('--requests', type=int, default=1000)
    parser.add_argument('--suppliers', type=int, default=50)
    parser.add_argument('--materials', type=int, default=400)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--contract-share', type=float, default=1.0,
        help="the share of each supplier's materials under an active "
        "contract (0 orders everything outside contract, each purchase "
        "then waiting for the leadership's approval)")
    parser.add_argument('--profile', action='store_true',
        help="print the cProfile of the last run")
    parser.add_argument('--test-mode', action='store_true',
        help="keep trytond's test mode (it validates function fields too)")
    parser.add_argument('--profile-file',
        help="also dump the cProfile statistics of the last run there")
    options = parser.parse_args(argv)

    benchdb.configure(options.uri, 'bench_plan')

    from trytond.modules.company.tests import create_company, set_company
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME, activate_module, drop_db
    from trytond.transaction import Transaction

    from hrp_materials.tests.test_contract import create_contract
    from hrp_materials.tests.test_module import create_material
    from hrp_materials.tests.test_plan import create_supplier, purchasable
    from hrp_materials.tests.tools import create_user, run_like_dispatcher

    started = time.perf_counter()
    activate_module(['hrp_materials'])
    print(f"database ({options.uri.split(':')[0]}) ready in "
        f"{time.perf_counter() - started:.1f} s")
    pool = Pool(DB_NAME)
    if not options.test_mode:
        # Measure what a server does: trytond's test mode also validates
        # every function field of the records written
        Pool.test = False
    rng = random.Random(5)

    try:
        with Transaction().start(DB_NAME, 0) as transaction:
            company = create_company()
            with set_company(company):
                Location = pool.get('stock.location')
                warehouse, = Location.search([('type', '=', 'warehouse')])
                templates = [create_material(
                        f"耗材 {i:03d}", gtin=None,
                        cost=Decimal('10') + i % 50)
                    for i in range(options.materials)]
                products = []
                per_supplier = max(1, len(templates) // options.suppliers)
                for s in range(options.suppliers):
                    chunk = templates[s * per_supplier:(s + 1) * per_supplier]
                    supplier = create_supplier(f"供应商 {s:02d}", chunk)
                    chunk_products = []
                    for template in chunk:
                        chunk_products.append(purchasable(
                                template, supplier,
                                Decimal('9') + len(products) % 40))
                        products.append(chunk_products[-1])
                    covered = chunk_products[
                        :round(len(chunk_products) * options.contract_share)]
                    if covered:
                        create_contract(company, supplier, [
                                (p, Decimal('8') + i % 30)
                                for i, p in enumerate(covered)])
                officer = create_user(
                    'buyer', 'hrp_materials.group_procurement', company)
            ids = dict(officer=officer.id, company=company.id,
                warehouse=warehouse.id, products=[p.id for p in products])
            transaction.commit()
        print(f"{len(ids['products'])} materials from {options.suppliers} "
            f"suppliers, {options.contract_share:.0%} of them under "
            "contract")

        Request = pool.get('purchase.request')
        Plan = pool.get('hrp.purchase.plan')
        Product = pool.get('product.product')
        Date = pool.get('ir.date')
        collect_times, order_times, counts = [], [], []
        for run in range(options.runs):
            with Transaction().start(DB_NAME, 0, context={
                        'company': ids['company']}) as transaction:
                today = Date.today()
                Request.save([Request(
                            product=Product(p), quantity=rng.randint(1, 50),
                            unit=Product(p).default_uom,
                            computed_quantity=1,
                            computed_unit=Product(p).default_uom,
                            purchase_date=today, supply_date=today,
                            warehouse=ids['warehouse'],
                            company=ids['company'], state='draft')
                        for p in (rng.choice(ids['products'])
                            for _ in range(options.requests))])
                transaction.commit()
            context = {'company': ids['company'], '_check_access': True}
            plan_ids = []

            def collect():
                plan, = Plan.create([{
                            'period_start': today, 'period_end': today}])
                Plan.collect([plan])
                plan_ids[:] = [plan.id]

            def submit():
                Plan.submit(Plan.browse(plan_ids))

            profile = options.profile and run == options.runs - 1
            if profile:
                import cProfile
                import pstats
                profiler = cProfile.Profile()
                profiler.enable()
            start = time.perf_counter()
            run_like_dispatcher(ids['officer'], context, collect)
            collect_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            run_like_dispatcher(ids['officer'], context, submit)
            order_times.append(time.perf_counter() - start)
            if profile:
                profiler.disable()
                pstats.Stats(profiler).sort_stats('cumulative').print_stats(40)
                if options.profile_file:
                    profiler.dump_stats(options.profile_file)
            with Transaction().start(DB_NAME, 0):
                plan = Plan(plan_ids[0])
                counts.append((plan.state, plan.request_count,
                        len(plan.lines), len(plan.purchases)))
        for state, requests, lines, purchases in counts:
            print(f"  plan {state}: {requests} requests, {lines} lines, "
                f"{purchases} purchases")
        report("collect the open requests into a plan", collect_times)
        report("submit: approve and order the purchases", order_times)
        report("collect to ordered",
            [c + o for c, o in zip(collect_times, order_times)])
        print("  (target < 5 s)")
    finally:
        if not options.uri.startswith('sqlite'):
            drop_db()


if __name__ == '__main__':
    sys.exit(main())
