# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Time the theatre nurse's post-operative usage registration of a surgery,
and print the figures.

    python tests/bench/bench_registration.py [--uri URI] [--surgeries N]
        [--units N]

Target (issue 6): registering a 5-unit surgery in less than 500 ms of
server time, the HIS's latency excluded.

Builds a throw-away database with hrp_materials on URI (default the local
PostgreSQL, from the test suite's template database; ``sqlite://`` works
too): the operating theatre's high-value store with SURGERIES × UNITS
serial-numbered stents a supplier keeps there on consignment (received by
scanning), a contract price, the accounts of the supplier invoice lines and
the stent mapped to a HIS charge item.  The HIS endpoint points at a closed
port, so the patient check fails at once (the registration is flagged "not
verified" and its charges wait in the outbox): the HIS's own latency is
left out.  Then, for each surgery, as the nurse through the access checks,
each request in its own committed transaction: create the registration for
the inpatient, scan the UNITS units' UDIs one request each, and post it (the
units leave the consignment stock to the patient, their invoice lines and
HIS charges are created).  It asserts nothing: it is a measurement, not a
test."""
import argparse
import os
import socket
import sys
import time

import benchdb
from benchdb import report


def closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--uri', default=os.environ.get(
            'HRP_TEST_DB_URI', 'postgresql://postgres@127.0.0.1:5432/'))
    parser.add_argument('--surgeries', type=int, default=30)
    parser.add_argument('--units', type=int, default=5)
    options = parser.parse_args(argv)

    benchdb.configure(options.uri, 'bench_registration')

    from trytond.modules.company.tests import set_company
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME, activate_module, drop_db

    from hrp_materials.tests.test_consignment import Theatre
    from hrp_materials.tests.test_receiving import gs1, gtin
    from hrp_materials.tests.test_consumption import days
    from hrp_materials.tests.tools import run_like_dispatcher

    started = time.perf_counter()
    activate_module(['hrp_materials'])
    print(f"database ({options.uri.split(':')[0]}) ready in "
        f"{time.perf_counter() - started:.1f} s")
    pool = Pool(DB_NAME)
    Pool.test = False
    count = options.surgeries * options.units
    serials = [f'BENCH{i:06d}' for i in range(count)]

    def udi(serial):
        return gs1(gtin(2), expiry=days(400), lot='B1', serial=serial)

    def build():
        Endpoint = pool.get('his.endpoint')
        Item = pool.get('his.charge.item')
        Mapping = pool.get('his.product.mapping')
        Receipt = pool.get('hrp.receipt')
        h = Theatre()
        with set_company(h.company):
            endpoint, = Endpoint.create([{
                        'name': "HIS", 'company': h.company.id,
                        'purpose': 'his', 'kind': 'fhir',
                        'url': f'http://127.0.0.1:{closed_port()}/fhir',
                        'connect_timeout': 1.0, 'read_timeout': 2.0,
                        'max_attempts': 3}])
            item, = Item.create([{
                        'company': h.company.id, 'endpoint': endpoint.id,
                        'code': 'C31010001', 'name': "冠脉药物洗脱支架",
                        'unit': "个", 'price': 6500,
                        'insurance_code': 'C0301010010000'}])
            Mapping.create([{
                        'company': h.company.id, 'product': h.stent.id,
                        'charge_item': item.id, 'unit_factor': 1}])
            receipt = h.consignment_receipt()
            for serial in serials:
                Receipt.scan_barcode(receipt.id, udi(serial))
            Receipt.receive([receipt])
        return (h.company.id, h.nurse.id, h.theatre.id, h.store.id)

    try:
        started = time.perf_counter()
        (company_id, nurse_id, theatre_id, store_id), _ = (
            run_like_dispatcher(0, {}, build))
        print(f"{count} stents received on consignment in "
            f"{time.perf_counter() - started:.1f} s")
        context = {
            'company': company_id, 'companies': [company_id],
            '_check_access': True}
        Consumption = pool.get('hrp.consumption')

        def request(func):
            start = time.perf_counter()
            result, _ = run_like_dispatcher(nurse_id, context, func)
            return result, time.perf_counter() - start

        totals, creates, scans, posts = [], [], [], []
        for surgery in range(options.surgeries):
            consumption_id, create_time = request(lambda: Consumption.create([{
                            'department': theatre_id, 'store': store_id,
                            'kind': 'patient',
                            'inpatient_number': f'ZY2026{surgery:06d}',
                            'surgery_number': f'SS2026{surgery:06d}',
                            }])[0].id)
            scan_time = 0
            for serial in serials[
                    surgery * options.units:(surgery + 1) * options.units]:
                _, elapsed = request(lambda: Consumption.scan_barcode(
                        consumption_id, udi(serial)))
                scan_time += elapsed
            _, post_time = request(lambda: Consumption.done(
                    [Consumption(consumption_id)]))
            creates.append(create_time)
            scans.append(scan_time)
            posts.append(post_time)
            totals.append(create_time + scan_time + post_time)

        def check():
            done = Consumption.search([('state', '=', 'done')])
            return (len(done), sum(len(c.lines) for c in done),
                {c.his_patient_check for c in done})
        done, lines, checks = run_like_dispatcher(0, {}, check)[0]
        print(f"{done} registrations of {lines} units posted "
            f"(HIS patient check: {', '.join(sorted(checks))})")
        report("create the registration", creates)
        report(f"scan its {options.units} units", scans)
        report("post it", posts)
        report(f"register a {options.units}-unit surgery "
            "(create, scans, post)", totals)
        print("  (target < 500 ms)")
    finally:
        if not options.uri.startswith('sqlite'):
            drop_db()


if __name__ == '__main__':
    sys.exit(main())
