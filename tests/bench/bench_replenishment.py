# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Time the nightly replenishment job and a store's stock status, and print
the figures.

    python tests/bench/bench_replenishment.py [--uri URI] [--materials N]
        [--stores N] [--moves N] [--status-materials N] [--runs N]
        [--seed N] [--no-supply] [--tryton-supply] [--no-analyze]
        [--record-cache-size N]
        [--profile] [--explain] [--keep]

Targets (issue 7): the nightly job over 10,000 materials × 60 stores with
1,000,000 historical moves in less than 60 s on PostgreSQL; the stock
status of one store with 2,000 materials in less than 200 ms.

Builds a throw-away database with hrp_materials on URI (default the local
PostgreSQL, from the test suite's template database; ``sqlite://`` works
too, at small sizes): a company whose warehouse's storage location is the
central store, STORES - 1 department stores under the warehouse (each with
its department), a store keeper, 50 suppliers and MATERIALS purchasable
goods (ten categories, two of them at a 0.99 service level; each material
with a supplier declaring a lead time of 2 to 14 days), by the ORM.  Then
about MOVES stock moves, written in bulk (COPY on PostgreSQL, multi-row
INSERTs on SQLite), in the order they were made: each department store uses
1,000 to 2,000 of the materials (the first exactly STATUS-MATERIALS), some
every day, most now and then (a skewed activity); its usages (done moves
from the store to the consumption location over the last 90 days) are
most of the moves; its replenishments from the central store (done, about
one move in nine: a first fill, then following the usage) leave it 2 to 14
days of usage (nothing in a few); the central store receives every
material from its supplier in 2 to 5 receipts (done moves whose purchase
line and purchase date the lead time query measures) a little more than it
issued; and a few moves are under way today (usages being prepared,
replenishments being issued or requested, goods ordered).  The data is
committed, and on PostgreSQL vacuumed and analysed, as autovacuum would
have done long before the night (the history is months old);
--no-analyze leaves the statistics stale.

Then, as the scheduled job (``hrp.replenishment.run_nightly``) does it
(user 0, the company in context, warnings skipped, no access check), one
transaction each, committed: the first night
(``hrp.replenishment.compute_company`` inserts the parameters and the
order points, then ``supply.supply_internal`` asks the internal shipment
requests and ``supply.supply_purchase`` Tryton's purchase requests), then
the next night (the parameters and order points updated, the requests
cleaned and asked again).  Each part is timed, and the main steps inside
them.  --no-supply leaves the requests out; --tryton-supply asks them with
Tryton's ``stock.order_point.supply_stock`` instead, for comparison (it
does not scale: hours at full size); --record-cache-size runs the job with
a larger trytond record cache (``_record_cache_size`` in the context).

Last, RUNS times, as the store keeper through the access checks in a
read-only transaction (a desk request): the stock status of the first
department store (``search_read`` of the model's fields with the store in
context), the same with the names the list shows, as the desk opens the
list (a search of its first page of 1,000, then the read of the first
batch of records it shows, each request its own transaction), and the
central store's (the hospital's MATERIALS materials) for comparison;
--explain then prints the EXPLAIN ANALYZE of the statements of the
department store's.

It asserts nothing: it is a measurement, not a test."""
import argparse
import datetime as dt
import math
import os
import random
import signal
import sys
import time
from collections import defaultdict
from decimal import Decimal

import benchdb
from benchdb import report

HISTORY_DAYS = 90
SUPPLIERS = 50
CATEGORIES = 10
BATCH = 500      # templates created per ORM call
CHUNK = 2000     # rows per SQL INSERT


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--uri', default=os.environ.get(
            'HRP_TEST_DB_URI', 'postgresql://postgres@127.0.0.1:5432/'))
    parser.add_argument('--materials', type=int, default=10000)
    parser.add_argument('--stores', type=int, default=60,
        help="the stores: the central one and STORES - 1 department stores")
    parser.add_argument('--moves', type=int, default=1000000)
    parser.add_argument('--status-materials', type=int, default=2000,
        help="the materials of the store whose stock status is timed")
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--no-supply', action='store_true',
        help="leave the requests out (parameters and order points only)")
    parser.add_argument('--tryton-supply', action='store_true',
        help="ask the requests with Tryton's supply "
        "(stock.order_point.supply_stock) instead of the nightly job's")
    parser.add_argument('--no-analyze', action='store_true',
        help="do not vacuum and analyse the tables after loading the data")
    parser.add_argument('--profile', action='store_true',
        help="print the cProfile of each part of the first night")
    parser.add_argument('--explain', action='store_true',
        help="print the EXPLAIN ANALYZE of the store's stock status query "
        "(PostgreSQL)")
    parser.add_argument('--record-cache-size', type=int,
        help="run the nightly job with this _record_cache_size in its "
        "context (trytond's default: the [cache] record setting, 2000)")
    parser.add_argument('--keep', action='store_true',
        help="keep the PostgreSQL database at the end (to inspect it), "
        "and print its name")
    options = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    # killed: still drop the database (finally)
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(1))
    postgresql = not options.uri.startswith('sqlite')
    departments = options.stores - 1
    status_materials = min(options.status_materials, options.materials)

    benchdb.configure(options.uri, 'bench_replenishment')

    from sql import Table
    from sql.aggregate import Count

    from trytond import backend
    from trytond.model import fields
    from trytond.modules.company.tests import create_company, set_company
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME, activate_module, drop_db
    from trytond.transaction import Transaction, without_check_access

    from hrp_materials import supply
    from hrp_materials.tests.test_consumption import create_category
    from hrp_materials.tests.tools import create_user

    started = time.perf_counter()
    activate_module(['hrp_materials'])
    print(f"database ({options.uri.split(':')[0]}) ready in "
        f"{time.perf_counter() - started:.1f} s")
    pool = Pool(DB_NAME)
    Pool.test = False
    rng = random.Random(options.seed)

    def profiled(func):
        "Run func, under cProfile with --profile (its top printed)"
        if not options.profile:
            return func()
        import cProfile
        import pstats
        profiler = cProfile.Profile()
        try:
            return profiler.runcall(func)
        finally:
            pstats.Stats(profiler).sort_stats('cumulative').print_stats(30)

    def build():
        """The hospital: company, stores, suppliers, materials (ORM);
        return the ids the history and the timings need"""
        Category = pool.get('product.category')
        Consumption = pool.get('hrp.consumption')
        Department = pool.get('hrp.department')
        Location = pool.get('stock.location')
        ModelData = pool.get('ir.model.data')
        Party = pool.get('party.party')
        Template = pool.get('product.template')
        company = create_company()
        with set_company(company):
            warehouse, = Location.search([('type', '=', 'warehouse')])
            central = warehouse.storage_location
            central.hrp_store_type = 'central'
            central.save()
            supplier_location, = Location.search(
                [('type', '=', 'supplier')], limit=1)
            consumption = Consumption.consumption_location()
            wards = Department.create([{
                        'code': f'K{d:03d}', 'name': f"科室 {d:03d}",
                        'company': company.id,
                        } for d in range(departments)])
            stores = Location.create([{
                        'name': f"{w.name}二级库", 'type': 'storage',
                        'hrp_store_type': 'department',
                        'hrp_department': w.id, 'parent': warehouse.id,
                        } for w in wards])
            keeper = create_user(
                'storekeeper', 'hrp_materials.group_store_keeper', company)
            suppliers = Party.create([{
                        'name': f"供应商 {s:02d}",
                        } for s in range(SUPPLIERS)])
            categories = [create_category(f"耗材类 {c}")
                for c in range(CATEGORIES)]
            Category.write(categories[:2], {'hrp_service_level': 0.99})
            unit = ModelData.get_id('product', 'uom_unit')
            products = []
            for start in range(0, options.materials, BATCH):
                templates = Template.create([{
                            'name': f"耗材 {m:05d}",
                            'type': 'goods',
                            'default_uom': unit,
                            'purchasable': True,
                            'purchase_uom': unit,
                            'categories': [(
                                    'add', [categories[m % CATEGORIES].id])],
                            'products': [('create', [{}])],
                            'product_suppliers': [('create', [{
                                            'party': suppliers[
                                                m % SUPPLIERS].id,
                                            'lead_time': dt.timedelta(
                                                days=2 + m % 13),
                                            }])],
                            } for m in range(start, min(
                                start + BATCH, options.materials))])
                products.extend(t.products[0].id for t in templates)
            return dict(
                company=company.id, currency=company.currency.id,
                keeper=keeper.id, warehouse=warehouse.id, central=central.id,
                supplier_location=supplier_location.id,
                consumption=consumption.id, unit=unit,
                stores=[s.id for s in stores],
                suppliers=[s.id for s in suppliers],
                products=products,
                today=pool.get('ir.date').today())

    def history(ids):
        """Write the moves of the last HISTORY_DAYS days and today's with
        bulk SQL inserts; return their number"""
        today = ids['today']
        products = ids['products']
        company, unit = ids['company'], ids['unit']
        central, stores = ids['central'], ids['stores']
        supplier_of = {
            p: ids['suppliers'][i % SUPPLIERS] for i, p in enumerate(products)}

        def day(n):
            return today - dt.timedelta(days=n)

        # the materials each department store uses, with their activity
        pairs = []
        for i, store in enumerate(stores):
            count = status_materials if i == 0 else rng.randint(
                min(1000, options.materials), min(2000, options.materials))
            for product in rng.sample(products, count):
                pairs.append((store, product, rng.lognormvariate(0, 1.2)))
        receipts_per = {p: rng.randint(2, 5) for p in products}
        under_way = options.moves // 200
        # the usages: 8 of 9 moves of the pairs, by activity (at least one)
        budget = max(options.moves - sum(receipts_per.values())
            - under_way - len(pairs), len(pairs))
        activity = sum(w for _, _, w in pairs)
        usages = budget * 8 / 9

        rows = []
        now = dt.datetime.now()

        def add(product, from_, to, quantity, date, state='done',
                origin=None, price=None):
            rows.append([
                    now, 0, company, product, unit, quantity, quantity,
                    from_, to, state,
                    date if state == 'done' else None, date, date, origin,
                    price, ids['currency'] if price is not None else None])

        issued = defaultdict(float)   # product: out of the central store
        for store, product, weight in pairs:
            count = max(1, round(usages * weight / activity))
            size = rng.choice([1, 1, 1, 2, 2, 3, 5, 10, 20])
            used = 0
            for _ in range(count):
                quantity = rng.randint(1, 2 * size)
                used += quantity
                add(product, store, ids['consumption'], quantity,
                    day(rng.randint(1, HISTORY_DAYS)))
            # replenished from the central store: a first fill, then
            # about every ninth move, to what was used plus a buffer
            # (nothing left in some stores)
            fills = 1 + count // 8
            buffer = 0 if rng.random() < 0.05 else math.ceil(
                used / HISTORY_DAYS * rng.uniform(2, 14)) + rng.randint(0, 2)
            total = used + buffer
            for f in range(fills):
                quantity = total // fills + (1 if f < total % fills else 0)
                if quantity:
                    add(product, central, store, quantity,
                        day(HISTORY_DAYS + 1 - f * HISTORY_DAYS // fills))
            issued[product] += total

        # the central store's receipts from the suppliers, a purchase per
        # supplier and week, 2 to 14 days after it
        purchases = {}   # (supplier, week): purchase date
        received = []    # (product, quantity, date, purchase key)
        for product in products:
            count = receipts_per[product]
            total = math.ceil(issued[product] * rng.uniform(1, 1.25)) + 10
            for r in range(count):
                quantity = total // count + (1 if r < total % count else 0)
                date = day(HISTORY_DAYS + 5 - r * HISTORY_DAYS // count)
                lead = rng.randint(2, 14)
                ordered = date - dt.timedelta(days=lead)
                key = supplier_of[product], ordered.isocalendar()[:2]
                purchases.setdefault(key, ordered)
                received.append((product, quantity, date, key))
        cursor = Transaction().connection.cursor()
        purchase = Table('purchase_purchase')
        line = Table('purchase_line')
        # no RETURNING (SQLite): the rows are found again by their number
        # and description
        keys = list(purchases)
        for chunk in chunks(list(enumerate(keys))):
            cursor.execute(*purchase.insert(
                    [purchase.create_date, purchase.create_uid,
                        purchase.company, purchase.currency, purchase.party,
                        purchase.warehouse, purchase.purchase_date,
                        purchase.state, purchase.invoice_method,
                        purchase.invoice_state, purchase.shipment_state,
                        purchase.number],
                    [[now, 0, company, ids['currency'], key[0],
                            ids['warehouse'], purchases[key], 'done',
                            'manual', 'none', 'received', f'PO{i:06d}']
                        for i, key in chunk]))
        cursor.execute(*purchase.select(purchase.id, purchase.number))
        purchase_ids = {number: id_ for id_, number in cursor}
        purchase_ids = {key: purchase_ids[f'PO{i:06d}']
            for i, key in enumerate(keys)}
        for chunk in chunks(list(enumerate(received))):
            cursor.execute(*line.insert(
                    [line.create_date, line.create_uid, line.purchase,
                        line.type, line.product, line.quantity, line.unit,
                        line.unit_price, line.description],
                    [[now, 0, purchase_ids[key], 'line', product, quantity,
                            unit, Decimal('2.5'), f"耗材 R{i}"]
                        for i, (product, quantity, _, key) in chunk]))
        cursor.execute(*line.select(line.id, line.description))
        line_ids = dict((d, i) for i, d in cursor)
        line_ids = [line_ids[f"耗材 R{i}"] for i in range(len(received))]
        for line_id, (product, quantity, date, _) in zip(
                line_ids, received):
            add(product, ids['supplier_location'], central, quantity, date,
                origin=f'purchase.line,{line_id}', price=Decimal('2.5'))

        # under way today: usages being prepared (reserved), replenishments
        # being issued (in transit) or requested, goods ordered
        for _ in range(under_way):
            store, product, _ = rng.choice(pairs)
            kind = rng.random()
            if kind < 0.4:
                add(product, store, ids['consumption'], rng.randint(1, 5),
                    today, state='assigned')
            elif kind < 0.6:
                add(product, central, store, rng.randint(5, 50), today,
                    state='assigned')
            elif kind < 0.8:
                add(product, central, store, rng.randint(5, 50),
                    today + dt.timedelta(days=1), state='draft')
            else:
                add(product, ids['supplier_location'], central,
                    rng.randint(50, 500),
                    today + dt.timedelta(days=rng.randint(1, 10)),
                    state='draft', price=Decimal('2.5'))

        # in the order they were made: by day, the stores interleaved
        rng.shuffle(rows)
        rows.sort(key=lambda r: r[11])
        move = Table('stock_move')
        columns = [move.create_date, move.create_uid, move.company,
            move.product, move.unit, move.quantity, move.internal_quantity,
            move.from_location, move.to_location, move.state,
            move.effective_date, move.planned_date, move.origin_planned_date,
            move.origin, move.unit_price, move.currency]
        if postgresql:
            # PostgreSQL's bulk insert: several times faster than INSERTs
            copy = 'COPY stock_move (%s) FROM STDIN' % ', '.join(
                c.name for c in columns)
            with cursor.copy(copy) as stream:
                for row in rows:
                    stream.write_row(row)
        else:
            for chunk in chunks(rows):
                cursor.execute(*move.insert(columns, chunk))
        return len(rows), len(pairs), len(purchase_ids)

    def chunks(items, size=CHUNK):
        for i in range(0, len(items), size):
            yield items[i:i + size]

    def analyze():
        "Vacuum and analyse the database, as autovacuum would have"
        database = backend.Database(DB_NAME).connect()
        connection = database.get_connection(autocommit=True)
        try:
            with connection.cursor() as cursor:
                cursor.execute('VACUUM ANALYZE')
        finally:
            database.put_connection(connection)

    def counts(ids):
        "The parameters, order points and requests in the database"
        cursor = Transaction().connection.cursor()
        result = {}

        def count(table, where=None):
            cursor.execute(*table.select(Count(table.id), where=where))
            return cursor.fetchone()[0]
        result['parameters'] = count(Table('hrp_replenishment'))
        op = Table('stock_order_point')
        result['purchase order points'] = count(op, op.type == 'purchase')
        result['internal order points'] = count(op, op.type == 'internal')
        request = Table('purchase_request')
        result['purchase requests'] = count(
            request, request.origin.like('stock.order_point,%'))
        shipment = Table('stock_shipment_internal')
        result['internal shipment requests'] = count(
            shipment, shipment.state == 'request')
        move = Table('stock_move')
        result['their moves'] = count(
            move, move.shipment.like('stock.shipment.internal,%')
            & move.state.in_(['staging', 'draft']))
        return result

    parts = defaultdict(float)

    def instrument(Model, names):
        """Add the seconds spent in Model's classmethods names to parts
        (their behaviour unchanged)"""
        for name in names:
            method = getattr(Model, name)

            def timed(cls, *args, _method=method, _name=name, **kwargs):
                start = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    parts[_name] += time.perf_counter() - start
            setattr(Model, name, classmethod(timed))
    instrument(pool.get('hrp.replenishment'), [
            '_demand', '_lead_times', '_supplier_lead_times', '_save_rows',
            '_sync_order_points'])
    instrument(pool.get('stock.shipment.internal'),
        ['generate_internal_shipment', 'create', 'delete'])
    instrument(pool.get('purchase.request'), ['generate_requests'])
    balances = supply.balances

    def timed_balances(*args, **kwargs):
        start = time.perf_counter()
        try:
            return balances(*args, **kwargs)
        finally:
            parts['balances'] += time.perf_counter() - start
    supply.balances = timed_balances

    def nightly(ids, label, profile=False):
        """Run the nightly job as run_nightly does, each part timed;
        return the seconds of each"""
        Company = pool.get('company.company')
        OrderPoint = pool.get('stock.order_point')
        Replenishment = pool.get('hrp.replenishment')
        times = {}
        parts.clear()
        context = {'company': ids['company'], '_skip_warnings': True}
        if options.record_cache_size:
            context['_record_cache_size'] = options.record_cache_size
        with Transaction().start(DB_NAME, 0, context=context) as transaction, \
                without_check_access():
            start = time.perf_counter()
            company = Company(ids['company'])
            today = pool.get('ir.date').today()
            computed = run(profile, Replenishment.compute_company, company)
            times['compute_company'] = time.perf_counter() - start
            if options.tryton_supply:
                start = time.perf_counter()
                run(profile, OrderPoint.supply_stock)
                times['supply_stock'] = time.perf_counter() - start
            elif not options.no_supply:
                start = time.perf_counter()
                run(profile, supply.supply_internal, company, today)
                times['supply_internal'] = time.perf_counter() - start
                start = time.perf_counter()
                run(profile, supply.supply_purchase, company)
                times['supply_purchase'] = time.perf_counter() - start
            start = time.perf_counter()
            transaction.commit()
            times['commit'] = time.perf_counter() - start
        total = sum(times.values())
        print(f"{label}: {total:.1f} s ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
            + f"), {computed} parameters computed")
        print("  of which " + ", ".join(
                f"{k} {v:.1f} s" for k, v in parts.items()))
        return times

    def run(profile, func, *args):
        if profile:
            return profiled(lambda: func(*args))
        return func(*args)

    def status(ids, store, fields_names):
        "Time the stock status of store as a desk request RUNS times"
        Status = pool.get('hrp.stock.status')
        times = []
        for _ in range(options.runs):
            start = time.perf_counter()
            with Transaction().start(DB_NAME, ids['keeper'], context={
                        'company': ids['company'], 'store': store,
                        '_check_access': True}, readonly=True):
                rows = Status.search_read([], fields_names=fields_names)
            times.append(time.perf_counter() - start)
        return rows, times

    def desk(ids, store, fields_names):
        """Time the stock status of store as the desk (sao 8.0) opens the
        list RUNS times: a search of its first page (Sao.config.limit, 1000
        ids), then the read of the first batch of records it shows (limit
        / number of fields)"""
        Status = pool.get('hrp.stock.status')
        times = []
        batch = 1000 // len(fields_names)
        for _ in range(options.runs):
            start = time.perf_counter()
            with Transaction().start(DB_NAME, ids['keeper'], context={
                        'company': ids['company'], 'store': store,
                        '_check_access': True}, readonly=True):
                found = Status.search([], limit=1000)
            with Transaction().start(DB_NAME, ids['keeper'], context={
                        'company': ids['company'], 'store': store,
                        '_check_access': True}, readonly=True):
                Status.read([r.id for r in found[:batch]], fields_names)
            times.append(time.perf_counter() - start)
        return times

    def explain(ids, store, fields_names):
        """Print the EXPLAIN ANALYZE of the statements on the stock status
        that its search_read issues (the search, then the read)"""
        import psycopg
        Status = pool.get('hrp.stock.status')
        statements = []
        execute = psycopg.Cursor.execute

        def record(self, query, params=None, **kwargs):
            if 'hrp_replenishment' in str(query):
                statements.append((query, params))
            return execute(self, query, params, **kwargs)
        with Transaction().start(DB_NAME, ids['keeper'], context={
                    'company': ids['company'], 'store': store,
                    '_check_access': True},
                readonly=True) as transaction:
            psycopg.Cursor.execute = record
            try:
                Status.search_read([], fields_names=fields_names)
            finally:
                psycopg.Cursor.execute = execute
            cursor = transaction.connection.cursor()
            for query, params in statements:
                print(f"\n{str(query)[:300]} ...")
                cursor.execute(
                    'EXPLAIN (ANALYZE, BUFFERS) ' + str(query), params)
                print('\n'.join(r for r, in cursor))

    try:
        started = total = time.perf_counter()
        with Transaction().start(DB_NAME, 0) as transaction:
            ids = build()
            transaction.commit()
        print(f"{options.materials} materials, {options.stores} stores "
            f"({departments} department stores), {SUPPLIERS} suppliers "
            f"created in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        with Transaction().start(DB_NAME, 0) as transaction:
            moves, pairs, purchases = history(ids)
            transaction.commit()
        print(f"{moves} stock moves ({pairs} store × material pairs used, "
            f"{purchases} purchases) written in "
            f"{time.perf_counter() - started:.1f} s")
        if postgresql and not options.no_analyze:
            started = time.perf_counter()
            analyze()
            print(f"vacuumed and analysed in "
                f"{time.perf_counter() - started:.1f} s")

        first = nightly(ids, "first night (parameters inserted)",
            profile=options.profile)
        with Transaction().start(DB_NAME, 0, readonly=True):
            print("  " + ", ".join(
                    f"{v} {k}" for k, v in counts(ids).items()))
        second = nightly(ids, "next night (parameters updated)")
        with Transaction().start(DB_NAME, 0, readonly=True):
            print("  " + ", ".join(
                    f"{v} {k}" for k, v in counts(ids).items()))
        print(f"  (target < 60 s; first night {sum(first.values()):.1f} s, "
            f"next night {sum(second.values()):.1f} s)")

        if postgresql and not options.no_analyze:
            # the parameters and order points, as autovacuum would have
            analyze()
        # the model's own fields (not Tryton's generic rec_name,
        # last_modified_at, xml_id, create_* and write_*)
        Status = pool.get('hrp.stock.status')
        fields_names = ['id'] + [n for n, f in Status._fields.items()
            if not isinstance(f, fields.Function)
            and n not in {'id', 'create_uid', 'create_date', 'write_uid',
                'write_date'}]
        store = ids['stores'][0]
        rows, times = status(ids, store, fields_names)
        report(f"stock status of a department store ({len(rows)} "
            "materials)", times)
        print("  (target < 200 ms)")
        by_status = defaultdict(int)
        for row in rows:
            by_status[row['status']] += 1
        print("  " + ", ".join(
                f"{v} {k}" for k, v in sorted(by_status.items())))
        rows, times = status(ids, store, fields_names + [
                'product.rec_name', 'unit.rec_name', 'store.rec_name'])
        report("  the same with the names the list shows", times)
        names = fields_names + [
            'product.rec_name', 'unit.rec_name', 'store.rec_name']
        report(f"  as the desk opens the list (search of 1,000, read of the "
            f"first {1000 // len(names)} with their names)",
            desk(ids, store, names))
        rows, times = status(ids, ids['central'], fields_names)
        report(f"stock status of the central store ({len(rows)} materials, "
            "the hospital's)", times)
        if options.explain and postgresql:
            explain(ids, store, fields_names)
        print(f"total {time.perf_counter() - total:.0f} s")
    finally:
        if options.keep and postgresql:
            print(f"database kept: {DB_NAME}")
        elif postgresql:
            drop_db()


if __name__ == '__main__':
    sys.exit(main())
