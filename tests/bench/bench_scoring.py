# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Time the monthly equipment scoring over a year of generated data, and
print the figures.

    python tests/bench/bench_scoring.py [--uri URI] [--devices N]
        [--months N] [--seed N] [--profile]

Target (issue 8): scoring 500 devices over 12 months of generated data in
less than 10 s on PostgreSQL.

Builds a throw-away database with hrp_equipment on URI (default the local
PostgreSQL, from the test suite's template database; ``sqlite://`` works
too): a company, 20 departments, DEVICES devices of the ten categories
(each with its PACS code, scheduled hours, functions, purchase cost and a
monthly maintenance plan), a scoring scheme of the seven default indicators, an
HIS with 30 charge items each mapped to several devices of a category, by
the ORM.  Then MONTHS months of history written in bulk: the PACS usage of
every device every day (examinations and hours), the HIS revenue of every
item every day (a share recorded with its device, the rest without), a
repair or two per device (closed, with labour, external cost and a part,
out of service for hours to days), a maintenance work order done each
month, and what the engineers enter each month (quality sampling, research,
upkeep) as monthly usage records.

Then, as the scheduled job does it (user 0, the company in context), one
transaction per month, committed: ``hrp.equipment.score.score_month`` of
each month, oldest first: the usage collected from the sources, then every
device scored, ranked and flagged.  The total is the figure against the
target; each month's time is printed too.  It asserts nothing: it is a
measurement, not a test."""
import argparse
import cProfile
import datetime as dt
import pstats
import random
import sys
import time
from decimal import Decimal

import benchdb

CATEGORIES = ['ct', 'mri', 'pet_ct', 'dsa', 'dr', 'ultrasound',
    'linear_accelerator', 'endoscopy', 'ventilator', 'other']
DEPARTMENTS = 20
ITEMS = 30


def month_starts(today, months):
    "The first days of the months months before today's, oldest first"
    first = today.replace(day=1)
    result = []
    for _ in range(months):
        first = (first - dt.timedelta(days=1)).replace(day=1)
        result.append(first)
    return result[::-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--uri', default='postgresql://postgres@127.0.0.1:5432/')
    parser.add_argument('--devices', type=int, default=500)
    parser.add_argument('--months', type=int, default=12)
    parser.add_argument('--seed', type=int, default=8)
    parser.add_argument('--profile', action='store_true',
        help="print the cProfile of the scoring")
    options = parser.parse_args(argv)

    benchdb.configure(options.uri, 'bench_scoring')

    from sql import Column

    from trytond.modules.company.tests import create_company, set_company
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME, activate_module, drop_db
    from trytond.transaction import Transaction

    from hrp_materials.mixin import executemany
    from hrp_materials.tests.tools import create_department, create_user

    def insert(Model, names, rows):
        table = Model.__table__()
        executemany(table.insert(
                [Column(table, n) for n in names], [[None] * len(names)]),
            rows)

    started = time.perf_counter()
    activate_module(['hrp_equipment'])
    print(f"database ({options.uri.split(':')[0]}) ready in "
        f"{time.perf_counter() - started:.1f} s")
    pool = Pool(DB_NAME)
    Pool.test = False
    rng = random.Random(options.seed)
    try:
        started = time.perf_counter()
        with Transaction().start(DB_NAME, 0) as transaction:
            company = create_company()
            with set_company(company):
                Date = pool.get('ir.date')
                today = Date.today()
                months = month_starts(today, options.months)
                first, end = months[0], (
                    months[-1] + dt.timedelta(days=31)).replace(day=1)
                days = [first + dt.timedelta(days=d)
                    for d in range((end - first).days)]
                ids = generate(pool, company, options, rng, months, days,
                    insert, create_department, create_user)
            transaction.commit()
        print(f"{options.devices} devices, {options.months} months "
            f"({days[0]} to {days[-1]}): {ids['pacs']} PACS days, "
            f"{ids['revenue']} HIS revenue rows, {ids['repairs']} repairs, "
            f"{ids['orders']} maintenance work orders, generated in "
            f"{time.perf_counter() - started:.1f} s")
        if not options.uri.startswith('sqlite'):
            with Transaction().start(DB_NAME, 0) as transaction:
                cursor = transaction.connection.cursor()
                cursor.execute('ANALYZE')
                transaction.commit()

        Score = pool.get('hrp.equipment.score')
        Company = pool.get('company.company')
        profile = cProfile.Profile() if options.profile else None
        times, counts = [], []
        for month in months:
            with Transaction().start(DB_NAME, 0, context={
                        'company': ids['company']}) as transaction:
                start = time.perf_counter()
                if profile:
                    profile.enable()
                counts.append(Score.score_month(
                        Company(ids['company']), month))
                transaction.commit()
                if profile:
                    profile.disable()
                times.append(time.perf_counter() - start)
            print(f"  {month:%Y-%m}: {counts[-1]} devices scored in "
                f"{times[-1]:.2f} s")
        print(f"scoring {options.devices} devices over {options.months} "
            f"months: {sum(times):.2f} s in all "
            f"({sum(counts)} scores, {sum(times) / len(times):.2f} s a "
            "month; target < 10 s)")
        with Transaction().start(DB_NAME, 0) as transaction:
            cursor = transaction.connection.cursor()
            score = Score.__table__()
            cursor.execute(*score.select(
                    score.category, score.composite, score.under_used,
                    score.idle))
            rows = cursor.fetchall()
        composites = sorted(float(r[1]) for r in rows)
        print(f"composite scores: min {composites[0]:.2f}, median "
            f"{composites[len(composites) // 2]:.2f}, max "
            f"{composites[-1]:.2f}; {sum(1 for r in rows if r[2])} "
            f"under-used, {sum(1 for r in rows if r[3])} idle")
        if profile:
            pstats.Stats(profile).sort_stats('cumulative').print_stats(25)
    finally:
        drop_db()


def generate(pool, company, options, rng, months, days, insert,
        create_department, create_user):
    "The devices and a year of their history; return counts and ids"
    Equipment = pool.get('hrp.equipment')
    Scheme = pool.get('hrp.equipment.scoring.scheme')
    Endpoint = pool.get('his.endpoint')
    Item = pool.get('his.charge.item')
    Link = pool.get('hrp.equipment-his.charge.item')
    PacsUsage = pool.get('his.pacs.usage')
    Revenue = pool.get('his.revenue')
    Plan = pool.get('hrp.equipment.maintenance.plan')
    Order = pool.get('hrp.equipment.maintenance')
    Repair = pool.get('hrp.equipment.repair')
    Part = pool.get('hrp.equipment.repair.part')
    Usage = pool.get('hrp.equipment.usage')
    Template = pool.get('product.template')
    Uom = pool.get('product.uom')
    Location = pool.get('stock.location')

    departments = [create_department(company, f'D{d:02d}', f"科室{d:02d}")
        for d in range(DEPARTMENTS)]
    engineer = create_user(
        'engineer', 'hrp_equipment.group_equipment_engineer', company)
    equipments = Equipment.create([{
                'company': company.id,
                'code': f'EQ-{i:04d}',
                'name': f"设备{i:04d}",
                'category': CATEGORIES[i % len(CATEGORIES)],
                'department': departments[i % DEPARTMENTS].id,
                'pacs_device': f'AE{i:04d}',
                'scheduled_hours': Decimal(rng.choice([8, 12, 16, 24])),
                'functions_total': 20,
                'functions_used': rng.randint(8, 20),
                'purchase_cost': Decimal(rng.randint(50, 3000) * 10000),
                } for i in range(options.devices)])
    Scheme.create([{
                'company': company.id,
                'name': "大型设备绩效评估",
                'indicators': [('create', Scheme.default_indicators())],
                }])
    pacs, his = Endpoint.create([{
                'name': "PACS", 'purpose': 'pacs', 'kind': 'pacs_http',
                'url': 'https://pacs.example.org/',
                }, {
                'name': "HIS", 'purpose': 'his', 'kind': 'fhir',
                'url': 'https://his.example.org/',
                }])
    items = Item.create([{
                'company': company.id, 'endpoint': his.id,
                'code': f'JC{i:03d}', 'name': f"检查项目{i:03d}",
                'price': Decimal(rng.randint(50, 1200)),
                } for i in range(ITEMS)])
    # each item is billed for the devices of one category
    item_devices = {item: [e for e in equipments
            if e.category == CATEGORIES[i % len(CATEGORIES)]]
        for i, item in enumerate(items)}
    links = [[e.id, item.id] for item, devices in item_devices.items()
        for e in devices]
    insert(Link, ['equipment', 'item'], links)

    now = dt.datetime.now()
    exams_of = {}
    pacs_rows = []
    for equipment in equipments:
        # some devices sit idle: no examination at all
        rate = 0 if rng.random() < 0.03 else rng.uniform(5, 80)
        hours_a_day = float(equipment.scheduled_hours)
        for day in days:
            exams = int(rng.gauss(rate, rate / 4)) if rate else 0
            if exams <= 0:
                continue
            hours = min(24, round(min(hours_a_day, exams * 0.25
                        * rng.uniform(0.8, 1.2)), 2))
            exams_of[equipment.id, day] = exams
            pacs_rows.append([company.id, pacs.id, equipment.pacs_device,
                    day, exams, Decimal(str(hours)), 'http', now, 0, now])
    insert(PacsUsage, ['company', 'endpoint', 'device', 'day', 'exams',
            'hours', 'source', 'received_at', 'create_uid', 'create_date'],
        pacs_rows)

    revenue_rows = []
    for item, devices in item_devices.items():
        for day in days:
            unnamed = Decimal(0)
            for equipment in devices:
                exams = exams_of.get((equipment.id, day), 0)
                if not exams:
                    continue
                amount = item.price * exams / len(items) * 10
                if rng.random() < 0.7:
                    revenue_rows.append([company.id, his.id, day, item.id,
                            equipment.pacs_device, Decimal(exams),
                            amount.quantize(Decimal('0.01')), now, 0, now])
                else:
                    unnamed += amount
            if unnamed:
                revenue_rows.append([company.id, his.id, day, item.id, None,
                        Decimal(1), unnamed.quantize(Decimal('0.01')), now,
                        0, now])
    insert(Revenue, ['company', 'endpoint', 'day', 'item', 'device',
            'quantity', 'amount', 'received_at', 'create_uid',
            'create_date'], revenue_rows)

    unit, = Uom.search([('name', '=', 'Unit')])
    template, = Template.create([{
                'name': "球管", 'type': 'goods', 'default_uom': unit.id,
                'products': [('create', [{}])]}])
    part_product, = template.products
    store, = Location.search([('code', '=', 'STO')])
    repair_rows, part_rows = [], []
    start_at = dt.datetime.combine(days[0], dt.time())
    span = (days[-1] - days[0]).days * 86400
    for equipment in equipments:
        for _ in range(rng.randint(0, 3)):
            reported = start_at + dt.timedelta(seconds=rng.randint(0, span))
            accepted = reported + dt.timedelta(hours=rng.uniform(2, 120))
            repair_rows.append([company.id, equipment.id,
                    equipment.department.id, 'normal', "故障",
                    rng.random() < 0.7, reported, engineer.id, "已修复",
                    Decimal(rng.randint(1, 20) * 100),
                    Decimal(rng.choice([0, 0, 5000, 20000])), accepted,
                    engineer.id, 'closed', 0, now])
    insert(Repair, ['company', 'equipment', 'department', 'urgency',
            'symptom', 'out_of_service', 'reported_at', 'engineer',
            'diagnosis', 'labour_cost', 'external_cost', 'accepted_at',
            'accepted_by', 'state', 'create_uid', 'create_date'],
        repair_rows)
    repairs = Repair.search([])
    for repair in repairs:
        if rng.random() < 0.5:
            part_rows.append([repair.id, part_product.id, 1, unit.id,
                    store.id, Decimal(rng.randint(1, 50) * 1000), 0, now])
    insert(Part, ['repair', 'product', 'quantity', 'unit', 'store',
            'amount', 'create_uid', 'create_date'], part_rows)

    plans = Plan.create([{
                'company': company.id, 'equipment': e.id,
                'name': "月度保养", 'interval_days': 30,
                'start_date': days[0], 'engineer': engineer.id,
                } for e in equipments])
    order_rows = []
    for plan in plans:
        for month in months:
            done = month + dt.timedelta(days=rng.randint(0, 27))
            order_rows.append([company.id, f'BY{plan.id}-{month:%Y%m}',
                    plan.id, plan.equipment.id, done, done, engineer.id,
                    Decimal(rng.randint(2, 30) * 100), 'done', False, 0,
                    now])
    insert(Order, ['company', 'number', 'plan', 'equipment', 'due_date',
            'done_date', 'done_by', 'cost', 'state', 'overdue_notified',
            'create_uid', 'create_date'], order_rows)

    usage_rows = []
    for equipment in equipments:
        for month in months:
            sampled = rng.randint(0, 60)
            usage_rows.append([company.id, equipment.id, month, 0, 0, 0,
                    equipment.scheduled_hours, sampled,
                    int(sampled * rng.uniform(0.7, 1)), 20,
                    equipment.functions_used, rng.randint(0, 2),
                    rng.randint(0, 1), rng.randint(0, 4), 0, 0, 0, 0, 0,
                    Decimal(rng.randint(10, 300) * 100), 0, now])
    insert(Usage, ['company', 'equipment', 'month', 'exams', 'hours_used',
            'downtime_hours', 'scheduled_hours', 'exams_sampled',
            'exams_excellent', 'functions_total', 'functions_used',
            'papers', 'projects', 'trainees', 'revenue', 'maintenance_cost',
            'repair_cost', 'depreciation', 'consumables_cost',
            'upkeep_cost', 'create_uid', 'create_date'], usage_rows)
    return {
        'company': company.id,
        'pacs': len(pacs_rows),
        'revenue': len(revenue_rows),
        'repairs': len(repair_rows),
        'orders': len(order_rows),
        }


if __name__ == '__main__':
    sys.exit(main())
