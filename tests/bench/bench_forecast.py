# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Backtest the replenishment arithmetic (hrp_materials.forecast) against a
fixed minimum on generated demand histories, and print the figures.

    python tests/bench/bench_forecast.py [--seed N] [--materials N]
        [--history-days N] [--test-days N] [--service-level F]
        [--review-days N] [--baseline-days N]

Target: on steady demand, the computed policy's cycle service level (the
share of replenishment cycles without a stock-out), averaged over the
materials, at or above the service level; its stock is printed against
the fixed minimum's (which holds less but serves worse with the defaults:
7 days of demand do not cover lead times of up to 14 days).

Generates, from SEED, the daily demand of MATERIALS materials of one store
over HISTORY-DAYS training days then TEST-DAYS backtest days: steady
Poisson demand (means 0.5 to 40 a day), intermittent demand (most days
nothing, now and then a burst), and a trend or a weekly season (less at
weekends); each material has a supplier lead time (mean 2 to 14 days, with
some spread) of which the training period holds a few past samples.  From
the training window only, the computed policy orders at the reorder point
(lead time demand plus the safety stock at the service level) up to the
reorder point plus REVIEW-DAYS of demand; the baseline orders at a minimum
of BASELINE-DAYS of average demand (at least 1) up to that minimum plus
REVIEW-DAYS of demand.  Both are simulated day by day over the test days
with continuous review, the same demand, and lead times drawn from the
same stream (the n-th order of a material waits as long in both): the
demand is served from stock on hand, what is not is lost; at the end of a
day an inventory position (on hand plus on order) at or below the minimum
orders up to the maximum.  A cycle runs from one order to the next; a
stock-out day is a day with demand lost.  It asserts nothing: it is a
measurement, not a test.

With --uri (e.g. postgresql://postgres@127.0.0.1:5432/, or sqlite://) the
computed policy's levels come from the module itself: the training days
are written to a throw-away database (from the test suite's template, see
benchdb.py) as the central store's consumption moves and each lead time
sample as a purchase and its receipt, the nightly computation
(``hrp.replenishment.compute_company``) runs on them, and its reorder
points and order-up-to levels (in whole units; Tryton orders below the
reorder point) are simulated instead of the arithmetic's."""
import argparse
import datetime as dt
import math
import random
import sys
import time
from dataclasses import dataclass, field

from hrp_materials import forecast

PATTERNS = ('steady', 'intermittent', 'trend-seasonal')


@dataclass
class Material:
    index: int
    pattern: str
    history: list   # daily demand of the training days
    test: list      # daily demand of the backtest days
    lead_mean: float
    lead_std: float
    lead_samples: list = field(default_factory=list)  # past lead times

    def lead_time(self, rng):
        "A lead time in whole days drawn from the supplier's distribution"
        return max(1, round(rng.gauss(self.lead_mean, self.lead_std)))


def poisson(rng, mean):
    "A Poisson draw (Knuth's product of uniforms; fine for means up to 500)"
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def generate(seed, materials, history_days, test_days):
    "The materials of a store with their demand and lead time histories"
    rng = random.Random(seed)
    days = history_days + test_days
    result = []
    for index in range(materials):
        pattern = rng.choices(PATTERNS, weights=(60, 25, 15))[0]
        if pattern == 'steady':
            mean = math.exp(rng.uniform(math.log(0.5), math.log(40)))
            demand = [poisson(rng, mean) for _ in range(days)]
        elif pattern == 'intermittent':
            chance = rng.uniform(0.02, 0.25)   # of a day with demand
            size = rng.uniform(1, 15)          # mean size of a burst
            demand = [1 + poisson(rng, size - 1)
                if rng.random() < chance else 0 for _ in range(days)]
        elif rng.random() < 0.5:               # trend
            mean = rng.uniform(2, 20)
            slope = rng.uniform(-0.4, 0.8)     # change of the mean a year
            demand = [poisson(rng, mean * (1 + slope * day / 365))
                for day in range(days)]
        else:                                  # weekly season
            mean = rng.uniform(2, 20)
            weekend = rng.uniform(0.05, 0.5)   # share of a weekday's
            demand = [poisson(rng, mean * (weekend if day % 7 >= 5 else 1))
                for day in range(days)]
        lead_mean = rng.uniform(2, 14)
        material = Material(
            index, pattern, demand[:history_days], demand[history_days:],
            lead_mean, lead_mean * rng.uniform(0.05, 0.4))
        material.lead_samples = [
            material.lead_time(rng) for _ in range(rng.randint(3, 8))]
        result.append(material)
    return result


def parameters(material, service_level, review_days):
    "The minimum and maximum computed from the training window"
    history = material.history
    mean, std = forecast.demand_statistics(
        sum(history), sum(q * q for q in history), len(history))
    lead, lead_std = forecast.lead_time_statistics(material.lead_samples)
    safety = forecast.safety_stock(service_level, mean, std, lead, lead_std)
    reorder = forecast.reorder_point(mean, lead, safety)
    return reorder, forecast.order_up_to(reorder, mean, review_days)


def database_parameters(materials, options):
    """{material index: (minimum, maximum)} computed by the module from the
    training days written to a database on options.uri"""
    import benchdb
    benchdb.configure(options.uri, 'bench_forecast')

    from decimal import Decimal

    from trytond.modules.company.tests import create_company, set_company
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME, activate_module
    from trytond.transaction import Transaction

    from hrp_materials.tests.test_consumption import (
        create_category, create_product)

    activate_module(['hrp_materials'])
    pool = Pool(DB_NAME)
    # the configuration singleton is created under its table lock
    with Transaction().start(DB_NAME, 0, context={},
            _lock_tables=['hrp_configuration']):
        Configuration = pool.get('hrp.configuration')
        Location = pool.get('stock.location')
        Move = pool.get('stock.move')
        Party = pool.get('party.party')
        Purchase = pool.get('purchase.purchase')
        Replenishment = pool.get('hrp.replenishment')
        Consumption = pool.get('hrp.consumption')
        company = create_company()
        with set_company(company):
            today = pool.get('ir.date').today()
            warehouse, = Location.search([('type', '=', 'warehouse')])
            central = warehouse.storage_location
            central.hrp_store_type = 'central'
            central.save()
            supplier_location, = Location.search(
                [('type', '=', 'supplier')], limit=1)
            consumption = Consumption.consumption_location()
            config = Configuration(1)
            config.service_level = options.service_level
            config.review_days = options.review_days
            config.replenishment_history_days = options.history_days
            config.save()
            supplier, = Party.create([{
                        'name': "供应商", 'addresses': [('create', [{}])]}])
            category = create_category("敷料类")
            unit = pool.get('product.uom')(pool.get(
                    'ir.model.data').get_id('product', 'uom_unit'))
            products = [create_product(
                    f"物资 {m.index:04d}", category, Decimal('1'),
                    purchasable=True, purchase_uom=unit.id)
                for m in materials]
            start = time.perf_counter()
            demand, receipts = [], []
            for material, product in zip(materials, products):
                history = len(material.history)
                for day, quantity in enumerate(material.history):
                    if quantity:
                        demand.append({
                                'product': product.id,
                                'unit': product.default_uom.id,
                                'quantity': quantity,
                                'from_location': central.id,
                                'to_location': consumption.id,
                                'company': company.id,
                                'effective_date': today - dt.timedelta(
                                    days=history - day),
                                })
                for k, lead in enumerate(material.lead_samples):
                    ordered = today - dt.timedelta(days=300 - 30 * k)
                    receipts.append((product, ordered, lead))
            purchases = Purchase.create([{
                        'company': company.id, 'party': supplier.id,
                        'invoice_address': supplier.addresses[0].id,
                        'warehouse': warehouse.id,
                        'purchase_date': ordered,
                        'lines': [('create', [{
                                        'product': product.id,
                                        'quantity': 10,
                                        'unit': product.default_uom.id,
                                        'unit_price': Decimal('1'),
                                        }])],
                        } for product, ordered, _ in receipts])
            for purchase, (product, ordered, lead) in zip(
                    purchases, receipts):
                line, = purchase.lines
                demand.append({
                        'product': product.id,
                        'unit': product.default_uom.id, 'quantity': 10,
                        'from_location': supplier_location.id,
                        'to_location': central.id, 'company': company.id,
                        'effective_date': ordered + dt.timedelta(days=lead),
                        'origin': str(line),
                        'unit_price': Decimal('1'),
                        'currency': company.currency.id,
                        })
            # written as done moves directly: the ORM would take minutes
            move = Move.__table__()
            cursor = Transaction().connection.cursor()
            now = dt.datetime.now()
            columns = ['product', 'unit', 'quantity', 'from_location',
                'to_location', 'company', 'effective_date', 'origin',
                'unit_price', 'currency']
            for i in range(0, len(demand), 1000):
                cursor.execute(*move.insert(
                        [getattr(move, c) for c in columns] + [
                            move.internal_quantity, move.planned_date,
                            move.state, move.create_date, move.create_uid],
                        [[v.get(c) for c in columns] + [
                                v['quantity'], v['effective_date'], 'done',
                                now, 0]
                            for v in demand[i:i + 1000]]))
            print(f"database ({options.uri.split(':')[0]}): "
                f"{len(demand)} moves of history written in "
                f"{time.perf_counter() - start:.1f} s")
            start = time.perf_counter()
            Replenishment.compute_company(company)
            print(f"parameters computed in "
                f"{(time.perf_counter() - start) * 1000:.0f} ms")
            index = {p.id: m.index for m, p in zip(materials, products)}
            result = {}
            for record in Replenishment.search(
                    [('store', '=', central.id)]):
                if record.reorder_point is not None:
                    result[index[record.product.id]] = (
                        record.reorder_point - 1, record.target_quantity)
            Transaction().rollback()
    return result


def baseline(material, baseline_days, review_days):
    "The fixed minimum of baseline_days of average demand and its maximum"
    mean = sum(material.history) / len(material.history)
    minimum = max(1, math.ceil(baseline_days * mean))
    return minimum, minimum + math.ceil(review_days * mean)


def simulate(material, s, S, rng):
    """Run the test days under continuous review (s, S) starting with S on
    hand; rng draws the lead times"""
    top = math.ceil(S)
    on_hand, arrivals = top, {}  # day: quantity
    figures = dict.fromkeys((
            'demanded', 'served', 'orders', 'short_cycles', 'short_days',
            'stock_days'), 0)
    short_cycle = False
    for day, demand in enumerate(material.test):
        on_hand += arrivals.pop(day, 0)
        served = min(on_hand, demand)
        on_hand -= served
        figures['demanded'] += demand
        figures['served'] += served
        if served < demand:
            figures['short_days'] += 1
            short_cycle = True
        figures['stock_days'] += on_hand
        position = on_hand + sum(arrivals.values())
        if position <= s and top > position:
            if figures['orders'] and short_cycle:
                figures['short_cycles'] += 1
            figures['orders'] += 1
            short_cycle = False
            arrival = day + material.lead_time(rng)
            arrivals[arrival] = arrivals.get(arrival, 0) + top - position
    if figures['orders']:
        figures['cycles'] = figures['orders']
        figures['short_cycles'] += short_cycle
    else:  # never ordered: the whole period is one cycle
        figures['cycles'] = 1
        figures['short_cycles'] = int(short_cycle)
    figures['stock'] = figures['stock_days'] / len(material.test)
    figures['demand'] = figures['demanded'] / len(material.test)
    return figures


def summarise(results, target):
    "The figures of a policy over results, a list of simulate's"
    demanded = sum(r['demanded'] for r in results)
    levels = [1 - r['short_cycles'] / r['cycles'] for r in results]
    stock = sum(r['stock'] for r in results)
    demand = sum(r['demand'] for r in results)
    return {
        'fill': sum(r['served'] for r in results) / demanded
        if demanded else 1.0,
        'cycle': sum(levels) / len(levels),
        'meeting': sum(level >= target for level in levels) / len(levels),
        'short_days': sum(r['short_days'] for r in results),
        'stock': stock,
        'days': stock / demand if demand else 0.0,
        }


HEADER = (f"{'pattern':<15} {'policy':<14} {'n':>4} {'fill':>7} "
    f"{'cycle SL':>8} {'>=target':>8} {'short d':>8} {'stock':>9} "
    f"{'days':>5} {'vs base':>7}")


def row(pattern, policy, count, figures, base):
    return (f"{pattern:<15} {policy:<14} {count:>4} "
        f"{figures['fill']:>7.2%} {figures['cycle']:>8.2%} "
        f"{figures['meeting']:>8.1%} {figures['short_days']:>8} "
        f"{figures['stock']:>9.1f} {figures['days']:>5.1f} "
        f"{figures['stock'] / base['stock'] if base['stock'] else 0:>7.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--materials', type=int, default=300)
    parser.add_argument('--history-days', type=int, default=90)
    parser.add_argument('--test-days', type=int, default=365)
    parser.add_argument('--service-level', type=float, default=0.95)
    parser.add_argument('--review-days', type=int, default=7)
    parser.add_argument('--baseline-days', type=int, default=7)
    parser.add_argument('--uri', default=None,
        help="compute the levels with the module on this database")
    options = parser.parse_args(argv)
    target = options.service_level

    materials = generate(options.seed, options.materials,
        options.history_days, options.test_days)
    computed = None
    if options.uri:
        computed = database_parameters(materials, options)
    results = {'computed': [], 'baseline': []}
    for material in materials:
        if computed is not None:
            # no level: the module does not replenish the material
            s, S = computed.get(material.index, (-1, 0))
        else:
            s, S = parameters(material, target, options.review_days)
        # the same lead times for both policies as long as they order alike
        results['computed'].append(simulate(
                material, s, S, random.Random(options.seed * 100003
                    + material.index)))
        s, S = baseline(material, options.baseline_days, options.review_days)
        results['baseline'].append(simulate(
                material, s, S, random.Random(options.seed * 100003
                    + material.index)))

    counts = {p: sum(m.pattern == p for m in materials) for p in PATTERNS}
    print(f"seed {options.seed}, {options.materials} materials of one store "
        f"({', '.join(f'{n} {p}' for p, n in counts.items())}), "
        f"{options.history_days} training days, "
        f"{options.test_days} test days")
    print("computed levels from: " + ("the module's nightly computation on "
            "the database" if computed is not None else "the arithmetic"))
    print(f"computed: service level {target} "
        f"(z {forecast.z_score(target):.3f}), review {options.review_days} "
        f"days; baseline: minimum {options.baseline_days} days of demand, "
        f"maximum + {options.review_days} days")
    idle = sum(not any(m.history) for m in materials)
    print(f"{idle} materials without demand in the training window: the "
        "computed policy stocks none of them, the baseline 1 unit")
    print(HEADER)
    for pattern in ('all',) + PATTERNS:
        chosen = [i for i, m in enumerate(materials)
            if pattern in ('all', m.pattern)]
        if not chosen:
            continue
        base = summarise([results['baseline'][i] for i in chosen], target)
        computed = summarise([results['computed'][i] for i in chosen], target)
        print(row(pattern, 'safety stock', len(chosen), computed, base))
        print(row('', 'fixed minimum', len(chosen), base, base))
    print("fill: units served / demanded; cycle SL: mean over materials of "
        "the cycles without a stock-out; >=target: materials whose cycle SL "
        "reaches the service level; short d: days with demand lost; stock: "
        "average units on hand (all materials); days: of average demand")


if __name__ == '__main__':
    sys.exit(main())
