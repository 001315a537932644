# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Time receiving scans and print the figures.

    python tests/bench/bench_receiving.py [--uri URI] [--scans N]

Target (issue 5, part 5): a scan to an accepted receipt line in less than
100 ms of server time.

Builds a throw-away database with hrp_materials on URI (default
HRP_TEST_DB_URI, else TRYTOND_DATABASE_URI, else in-memory SQLite
``sqlite://``), a supplier with a valid trading licence, a processing
purchase of a lot-tracked material and a serial-tracked implant, then scans
SCANS GS1 DataMatrix element strings into one receipt as the store keeper,
each scan one transaction as one desk request (``hrp.receipt.scan_barcode``:
parse, find the material, all the acceptance checks, add or count the line):
half count units of one lot, half add serial-tracked units (a new line each,
checked against every serial received before).  Then it times "Receive" of
the whole receipt.  It asserts nothing: it is a measurement, not a test."""
import argparse
import os
import statistics
import sys
import time

import benchdb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--uri', default=os.environ.get(
            'HRP_TEST_DB_URI',
            os.environ.get('TRYTOND_DATABASE_URI', 'sqlite://')))
    parser.add_argument('--scans', type=int, default=200)
    parser.add_argument('--profile', action='store_true',
        help="print the cProfile of the last serial scan")
    options = parser.parse_args(argv)

    benchdb.configure(options.uri, 'bench_receiving')

    from trytond.modules.company.tests import set_company
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME, activate_module, drop_db
    from trytond.transaction import Transaction

    from hrp_materials.tests.test_receiving import (
        Receiving, days, gs1, gtin)
    from hrp_materials.tests.tools import run_like_dispatcher

    started = time.perf_counter()
    activate_module(['hrp_materials'])
    print(f"database ({options.uri.split(':')[0]}) ready in "
        f"{time.perf_counter() - started:.1f} s")
    pool = Pool(DB_NAME)
    half = options.scans // 2

    try:
        with Transaction().start(DB_NAME, 0) as transaction:
            h = Receiving()
            with set_company(h.company):
                # serials received before, that every serial scan is
                # checked against
                earlier = h.receipt(h.purchase([(h.stent, 200)]))
                Receipt = pool.get('hrp.receipt')
                for i in range(200):
                    Receipt.scan_barcode(earlier.id, gs1(
                            gtin(2), expiry=days(700), lot='OLD',
                            serial=f'OLD{i:05d}'))
                Receipt.receive([earlier])
                purchase = h.purchase(
                    [(h.syringe, 10 * options.scans), (h.stent, half)])
                receipt = h.receipt(purchase)
                ids = dict(keeper=h.keeper.id, company=h.company.id,
                    receipt=receipt.id)
                expiry = days(400)
            transaction.commit()

        Receipt = pool.get('hrp.receipt')
        lot_scan = gs1(gtin(1), expiry=expiry, lot='L2612')
        context = {'company': ids['company'], '_check_access': True}
        lot_times, serial_times = [], []
        for n in range(half):
            for kind, text, times in [
                    ('lot', lot_scan, lot_times),
                    ('serial', gs1(gtin(2), expiry=expiry, lot='B1',
                            serial=f'SN{n:06d}'), serial_times)]:
                profile = (options.profile and kind == 'serial'
                    and n == half - 1)
                if profile:
                    import cProfile
                    import pstats
                    profiler = cProfile.Profile()
                    profiler.enable()
                start = time.perf_counter()
                run_like_dispatcher(ids['keeper'], context,
                    lambda: Receipt.scan_barcode(ids['receipt'], text))
                times.append(time.perf_counter() - start)
                if profile:
                    profiler.disable()
                    pstats.Stats(profiler).sort_stats(
                        'cumulative').print_stats(40)
        report("scan counting a unit of a lot", lot_times)
        report("scan adding a serial-tracked unit", serial_times)
        report("all scans", lot_times + serial_times)
        print("  (target < 100 ms per scan)")

        start = time.perf_counter()
        run_like_dispatcher(ids['keeper'], context,
            lambda: Receipt.receive([Receipt(ids['receipt'])]))
        duration = time.perf_counter() - start
        with Transaction().start(DB_NAME, 0):
            receipt = Receipt(ids['receipt'])
            lines, state = len(receipt.lines), receipt.state
        print(f"receive a receipt of {lines} lines: {duration * 1000:.0f} ms "
            f"(state {state})")
    finally:
        if not options.uri.startswith('sqlite'):
            drop_db()


def report(label, times):
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(f"{label}: median {statistics.median(times) * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms "
        f"({len(times)} scans)")


if __name__ == '__main__':
    sys.exit(main())
