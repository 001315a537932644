# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The nightly supply: the requests the order points call for, in bulk.

Tryton's supply (``stock.order_point.supply_stock``) walks every location
and material through the ORM for every day up to the longest lead time,
and computes the purchase shortages per supply date group over the
warehouse's whole history: hours at a hospital's size (10,000 materials
in 60 stores).  The nightly job asks for the same documents from the same
order points, with Tryton's rules, on the forecast stock computed in one
SQL statement (the done moves and those not done yet, in and out: the
stock status's projected stock):

- internal shipment requests (补货申请): an internal order point below
  its minimum asks for its target less the stock, from its provisioning
  location; one request per store and provisioning location, each move's
  origin its order point.  The requests are replaced each night, as
  Tryton's are; their moves are written and deleted in bulk;
- purchase requests: a material whose warehouse stock is below its
  purchase order point's minimum (or below zero without one) is short at
  its earliest supply date; the request is Tryton's
  (``compute_request``: best supplier, purchase date, quantity up to the
  target), compared with those already on purchases
  (``compare_requests``, purchase plans included) and replaces the
  draft requests of the order points.

The stock counts every move not done yet, whatever its planned date: a
replenishment already asked for tomorrow stops today's request, where
Tryton's supply counts it only from tomorrow (and asks again).  Otherwise
the requests are those of Tryton's *Supply Stock* wizard, which still
works in the desk."""
import datetime as dt
import operator
from collections import defaultdict
from functools import reduce

from sql import Column, Null
from sql.aggregate import Sum

from trytond.pool import Pool
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from .mixin import executemany
from .stock_status import store_locations

FORECAST = ['done', 'draft', 'assigned']


def balances(company, scopes, into_states, out_states):
    """{(key, product id): quantity} of the moves of company into the
    locations of each key (in into_states) less those out of them (in
    out_states); scopes is {key: location ids}, the moves between two
    locations of a key do not count"""
    Move = Pool().get('stock.move')
    move = Move.__table__()
    cursor = Transaction().connection.cursor()
    by_location = defaultdict(list)
    for key, locations in scopes.items():
        for location in locations:
            by_location[location].append(key)
    scopes = {k: set(v) for k, v in scopes.items()}
    result = defaultdict(float)
    if not by_location:
        return result
    locations = list(by_location)
    into_states, out_states = set(into_states), set(out_states)
    where = reduce(operator.or_, (
            move.to_location.in_(chunk) | move.from_location.in_(chunk)
            for chunk in map(list, grouped_slice(locations, 1000))))
    cursor.execute(*move.select(
            move.from_location, move.to_location, move.product, move.state,
            Sum(move.internal_quantity),
            where=where & (move.company == company.id)
            & move.state.in_(list(into_states | out_states)),
            group_by=[move.from_location, move.to_location, move.product,
                move.state]))
    for from_, to, product, state, quantity in cursor:
        quantity = quantity or 0
        if state in into_states:
            for key in by_location.get(to, ()):
                if from_ not in scopes[key]:
                    result[key, product] += quantity
        if state in out_states:
            for key in by_location.get(from_, ()):
                if to not in scopes[key]:
                    result[key, product] -= quantity
    return result


def forecast(company, scopes):
    """{(key, product id): the forecast stock of the locations of each key
    (Tryton's forecast quantity, whatever the planned dates)}"""
    return balances(company, scopes, FORECAST, FORECAST)


def supply_internal(company, today):
    """Replace the company's internal shipment requests by those its
    internal order points call for today; return the shipments"""
    pool = Pool()
    OrderPoint = pool.get('stock.order_point')
    Location = pool.get('stock.location')
    Shipment = pool.get('stock.shipment.internal')
    Move = pool.get('stock.move')
    Product = pool.get('product.product')
    op = OrderPoint.__table__()
    move = Move.__table__()
    cursor = Transaction().connection.cursor()

    cursor.execute(*op.select(
            op.id, op.location, op.product, op.provisioning_location,
            op.min_quantity, op.target_quantity,
            where=(op.company == company.id) & (op.type == 'internal')
            & (op.min_quantity != Null)
            & (op.provisioning_location != Null)))
    order_points = cursor.fetchall()
    locations = {r[1] for r in order_points}
    requests = Shipment.search([
            ('company', '=', company.id),
            ('state', '=', 'request'),
            ('to_location', 'in', list(locations)),
            ])
    # their moves in bulk too (tens of thousands at night)
    for sub_requests in grouped_slice(requests, 100):
        cursor.execute(*move.delete(where=move.shipment.in_(
                    [str(s) for s in sub_requests])
                & move.state.in_(['staging', 'draft', 'cancelled'])))
    Shipment.delete(requests)
    scopes = {l.id: store_locations(l) for l in Location.browse(locations)}
    stock = forecast(company, scopes)

    short = defaultdict(list)
    for id_, location, product_id, provisioning, minimum, target in sorted(
            order_points, key=lambda r: (r[1], r[2])):
        quantity = stock.get((location, product_id), 0)
        if quantity < minimum:
            short[provisioning, location].append(
                (id_, product_id, (target or 0) - quantity))
    if not short:
        return []
    shipments = Shipment.create([{
                'company': company.id,
                'from_location': provisioning,
                'to_location': location,
                'planned_date': today,
                'origin_planned_date': today,
                'planned_start_date': today,
                'state': 'request',
                } for provisioning, location in short])

    # the moves, as Move.create would write them (its defaults), in bulk:
    # their locations are the order point's, their quantities positive in
    # the material's unit
    units = {p.id: p.default_uom for p in Product.browse(
            list({p for lines in short.values() for _, p, _ in lines}))}
    stored = [n for n, f in Move._fields.items()
        if hasattr(f, 'sql_type') and not hasattr(f, 'set')
        and n not in {'id', 'create_date', 'create_uid', 'write_date',
            'write_uid'}]
    values = Move.default_get(stored, with_rec_name=False)
    values.update({
            'company': company.id, 'planned_date': today,
            'origin_planned_date': today, 'state': 'draft',
            'create_date': dt.datetime.now(),
            'create_uid': Transaction().user,
            })
    own = ['shipment', 'origin', 'from_location', 'to_location', 'product',
        'unit', 'quantity', 'internal_quantity']
    for name in own:
        values.pop(name, None)
    names = list(values) + own
    rows = []
    for shipment, lines in zip(shipments, short.values()):
        for op_id, product_id, quantity in lines:
            unit = units[product_id]
            quantity = unit.ceil(quantity)
            if quantity > 0:
                rows.append(list(values.values()) + [
                        str(shipment), f'stock.order_point,{op_id}',
                        shipment.from_location.id, shipment.to_location.id,
                        product_id, unit.id, quantity, quantity])
    executemany(move.insert(
            [Column(move, n) for n in names], [[None] * len(names)]), rows)
    return shipments


def supply_purchase(company):
    """Replace the company's purchase requests of the order points by those
    its warehouses' stock calls for today; return the requests"""
    pool = Pool()
    OrderPoint = pool.get('stock.order_point')
    Location = pool.get('stock.location')
    Product = pool.get('product.product')
    Template = pool.get('product.template')
    Request = pool.get('purchase.request')
    op = OrderPoint.__table__()
    product = Product.__table__()
    template = Template.__table__()
    cursor = Transaction().connection.cursor()

    warehouses = Location.search([('type', '=', 'warehouse')])
    scopes = {w.id: [l.id for l in Location.search(
                [('parent', 'child_of', [w.id])])] for w in warehouses}
    stock = forecast(company, scopes)
    order_points = {}
    cursor.execute(*op.select(
            op.location, op.product, op.id, op.min_quantity,
            where=(op.company == company.id) & (op.type == 'purchase')
            & op.location.in_(list(scopes) or [-1])))
    for location, product_id, op_id, minimum in cursor:
        order_points[location, product_id] = (op_id, minimum or 0)
    cursor.execute(*product.join(template,
            condition=product.template == template.id).select(
            product.id,
            where=template.type.in_(['goods', 'assets'])
            & (template.consumable == False)  # noqa: E712
            & (template.purchasable == True)))  # noqa: E712
    purchasable = [p for p, in cursor]

    short = []
    for warehouse in scopes:
        for product_id in purchasable:
            key = warehouse, product_id
            op_id, minimum = order_points.get(key, (None, 0))
            quantity = stock.get(key, 0)
            if quantity < minimum:
                short.append((warehouse, product_id, op_id, quantity))
    products = {p.id: p for p in Product.browse(
            list({p for _, p, _, _ in short}))}
    ops = {o.id: o for o in OrderPoint.browse(
            [o for _, _, o, _ in short if o])}
    new_requests = []
    for warehouse, product_id, op_id, quantity in short:
        product = products[product_id]
        supply_date, _ = Request.get_supply_dates(product, company=company.id)
        new_requests.append(Request.compute_request(
                product, warehouse, supply_date, quantity, company,
                ops.get(op_id)))
    with Transaction().set_context(_hrp_generating_requests=True):
        Request.delete(Request.search([
                    ('state', '=', 'draft'),
                    ('purchase_line', '=', None),
                    ('company', '=', company.id),
                    ('origin', 'like', 'stock.order_point,%'),
                    ('warehouse', 'in', list(scopes)),
                    ]))
        new_requests = Request.compare_requests(new_requests, company)
        Request.create_requests(new_requests)
    return [r for r in new_requests if r.id is not None and r.id >= 0]
