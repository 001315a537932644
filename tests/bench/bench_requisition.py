# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Time requisitions and the approver's inbox, and print the figures.

    python tests/bench/bench_requisition.py [--uri URI] [--runs N]
        [--pending N]

Targets (issue 4): a 20-line requisition from submit to issued in less than
1 s of server time on PostgreSQL; an approver's inbox of 500 pending
documents opening in less than 300 ms.

Builds a throw-away database with hrp_materials on URI (default the local
PostgreSQL, ``postgresql://postgres@127.0.0.1:5432/``; ``sqlite://`` works
too), a hospital with 20 lot-tracked materials in the central store, then:

- submits RUNS 20-line requisitions that no approval rule stops, so that
  submit reserves the lots (FEFO) on an internal shipment, and the store
  keeper issues them: each step is one transaction, as one desk request;
- submits PENDING requisitions under a head-nurse rule and opens the head
  nurse's inbox (search of the pending tasks plus the list view's fields),
  as the desk does.

It asserts nothing: it is a measurement, not a test."""
import argparse
import os
import statistics
import sys
import time

import benchdb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--uri', default=os.environ.get(
            'HRP_TEST_DB_URI', 'postgresql://postgres@127.0.0.1:5432/'))
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument('--pending', type=int, default=500)
    parser.add_argument('--profile', action='store_true',
        help="print the cProfile of the last submit and issue")
    options = parser.parse_args(argv)

    benchdb.configure(options.uri, 'bench_requisition')

    from trytond.modules.company.tests import set_company
    from trytond.pool import Pool
    from trytond.tests.test_tryton import (
        DB_NAME, activate_module, drop_db)
    from trytond.transaction import Transaction

    from hrp_materials.tests.test_lot import (
        create_lot_material, create_lots, days, put_stock)
    from hrp_materials.tests.test_requisition import Hospital
    from hrp_materials.tests.tools import run_like_dispatcher

    started = time.perf_counter()
    activate_module(['hrp_materials'])
    print(f"database ({options.uri.split(':')[0]}) ready in "
        f"{time.perf_counter() - started:.1f} s")
    pool = Pool(DB_NAME)

    def timed(user_id, company_id, func, profile=False):
        """Run func like one desk request (restarted with the locks it asks
        for, as the dispatcher does); return the seconds it took"""
        if profile:
            import cProfile
            import pstats
            profiler = cProfile.Profile()
            profiler.enable()
        start = time.perf_counter()
        run_like_dispatcher(user_id, {
                'company': company_id, '_check_access': True}, func)
        duration = time.perf_counter() - start
        if profile:
            profiler.disable()
            pstats.Stats(profiler).sort_stats('cumulative').print_stats(45)
        return duration

    try:
        with Transaction().start(DB_NAME, 0) as transaction:
            h = Hospital(stock=[])
            with set_company(h.company):
                materials = []
                for i in range(20):
                    product = create_lot_material(f"耗材 {i:02d}")
                    lots = create_lots(product,
                        *((f'L{i:02d}-{j}', days(60 + 30 * j))
                            for j in range(4)))
                    put_stock(h.company, h.central, product, lots,
                        quantity=options.runs * 10)
                    materials.append(product.id)
                requisitions = []
                for _ in range(options.runs):
                    requisition = h.requisition(3)
                    Line = pool.get('hrp.requisition.line')
                    Line.delete(list(requisition.lines))
                    Line.create([{
                                'requisition': requisition.id,
                                'product': p,
                                'unit': h.syringe.default_uom.id,
                                'quantity': 12,
                                } for p in materials])
                    requisitions.append(requisition.id)
            ids = dict(nurse=h.nurse.id, keeper=h.keeper.id,
                head_nurse=h.head_nurse.id, company=h.company.id)
            transaction.commit()

        Requisition = pool.get('hrp.requisition')
        Shipment = pool.get('stock.shipment.internal')
        submit_times, issue_times = [], []
        for n, requisition_id in enumerate(requisitions):
            profile = options.profile and n == len(requisitions) - 1

            def submit():
                Requisition.submit([Requisition(requisition_id)])

            def issue():
                shipments = Requisition(requisition_id).shipments
                Shipment.do(list(shipments))
            submit_times.append(timed(
                    ids['nurse'], ids['company'], submit, profile))
            issue_times.append(timed(
                    ids['keeper'], ids['company'], issue, profile))
        with Transaction().start(DB_NAME, 0):
            states = {Requisition(r).state for r in requisitions}
        total = [s + i for s, i in zip(submit_times, issue_times)]
        report("20-line requisition submit (approve, reserve FEFO)",
            submit_times)
        report("store keeper issues its shipment", issue_times)
        report("submit to issued", total)
        print(f"  final states: {sorted(states)} (target < 1 s)")

        # The approver's inbox
        with Transaction().start(DB_NAME, 0) as transaction:
            h.refresh()
            with set_company(h.company):
                Hospital.rule(h, [('head_nurse', None)])
                pending = []
                for _ in range(options.pending):
                    pending.append(h.requisition(2))
            transaction.commit()
        start = time.perf_counter()
        run_like_dispatcher(ids['nurse'], {
                'company': ids['company'], '_check_access': True},
            lambda: Requisition.submit(
                Requisition.browse([r.id for r in pending])))
        print(f"{options.pending} requisitions submitted for approval in "
            f"{time.perf_counter() - start:.1f} s")

        Task = pool.get('hrp.approval.task')
        fields = ['document', 'department', 'requester', 'amount',
            'urgency', 'step', 'due_date', 'state', 'decided_by',
            'decided_at', 'rec_name']
        inbox_times, count = [], None
        for _ in range(options.runs):
            start = time.perf_counter()
            with Transaction().start(DB_NAME, ids['head_nurse'], context={
                        'company': ids['company'], '_check_access': True},
                    readonly=True):
                tasks = Task.search([('pending_for_me', '=', True)],
                    limit=None)
                Task.read([t.id for t in tasks], fields)
                count = Task.search_count([('pending_for_me', '=', True)])
            inbox_times.append(time.perf_counter() - start)
        report(f"inbox of {count} pending approvals (search, read, count)",
            inbox_times)
        print("  (target < 300 ms)")
    finally:
        if not options.uri.startswith('sqlite'):
            drop_db()


def report(label, times):
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(f"{label}: median {statistics.median(times) * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms "
        f"({len(times)} runs)")


if __name__ == '__main__':
    sys.exit(main())
