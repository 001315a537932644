# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Stock status (库存状况) of a store, per material, in real time, from the
stock moves and the replenishment parameters:

- on hand: the done moves into the store (its sub-locations included, the
  suppliers' consignment locations left out) less those out of it;
- reserved: the moves out of it not done yet: assigned (issues and usages
  being prepared) or planned (draft);
- in transit: the moves into it from another location that are assigned
  (an issue on its way) or come from a transit location;
- on order: the draft moves into it: goods ordered from a supplier and not
  received, replenishment and requisitions not issued yet;
- projected: on hand - reserved + in transit + on order (Tryton's
  forecast quantity, whatever the planned dates),

with the safety stock, reorder point and order-up-to level of the store's
parameters, and a status: out of stock, below the safety stock, at or
below the reorder point (below minimum), above the maximum, or normal.

The central store's purchases replenish the whole hospital: its figures
are the hospital's (its warehouse, the department stores included), as
its levels are (see ``replenishment``)."""
from sql import Literal, Null
from sql.aggregate import Sum
from sql.conditionals import Case, Coalesce

from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction

STATUSES = [
    ('out_of_stock', "Out of Stock"),
    ('below_safety', "Below Safety Stock"),
    ('below_minimum', "Below Minimum"),
    ('over_maximum', "Above Maximum"),
    ('normal', "Normal"),
    ]


# the locations under a store that hold no stock of its own: the
# suppliers' consignment locations, and where goods go when used or lost
NOT_STORE_TYPES = ['supplier', 'customer', 'production', 'lost_found']


def store_locations(store, echelon=False):
    """The ids of the locations whose stock is store's: itself and its
    sub-locations, but not the suppliers' consignment locations; with
    echelon, the central store's are its whole warehouse's"""
    Location = Pool().get('stock.location')
    root = store
    if echelon and store.hrp_store_type == 'central' and store.warehouse:
        root = store.warehouse
    return [l.id for l in Location.search([
                ('parent', 'child_of', [root.id]),
                ('type', 'not in', NOT_STORE_TYPES),
                ])]


def stock_balance(move, locations):
    """The SQL sum of the moves of move (the stock.move table) into
    locations less those out of them (the moves between two of them do not
    count), and the condition of the moves that touch them"""
    into = move.to_location.in_(locations) & ~move.from_location.in_(
        locations)
    out = move.from_location.in_(locations) & ~move.to_location.in_(
        locations)
    quantity = Coalesce(move.internal_quantity, 0)
    balance = Sum(Case((into, quantity), (out, -quantity), else_=0))
    return balance, (into | out)


class StockStatus(ModelSQL, ModelView):
    __name__ = 'hrp.stock.status'
    __string__ = "Stock Status"

    store = fields.Many2One('stock.location', "Store")
    company = fields.Many2One('company.company', "Company")
    product = fields.Many2One(
        'product.product', "Material",
        context={'company': Eval('company', -1)}, depends={'company'})
    unit = fields.Many2One('product.uom', "Unit")
    on_hand = fields.Float("On Hand", digits='unit')
    reserved = fields.Float(
        "Reserved", digits='unit',
        help="Going out of the store, not done yet: reserved for an issue "
        "or a usage, or planned.")
    in_transit = fields.Float(
        "In Transit", digits='unit',
        help="Issued to the store and on its way.")
    on_order = fields.Float(
        "On Order", digits='unit',
        help="Asked for and not issued yet: purchases not received, "
        "requisitions and replenishment not issued.")
    projected = fields.Float(
        "Projected", digits='unit',
        help="On hand - reserved + in transit + on order: what the "
        "replenishment compares with the reorder point.")
    safety_stock = fields.Float("Safety Stock", digits='unit')
    reorder_point = fields.Float("Reorder Point", digits='unit')
    target_quantity = fields.Float("Order-Up-To", digits='unit')
    status = fields.Selection(STATUSES, "Status", sort=False)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('status', 'ASC'), ('product', 'ASC'), ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        pool = Pool()
        Move = pool.get('stock.move')
        Location = pool.get('stock.location')
        Replenishment = pool.get('hrp.replenishment')
        Product = pool.get('product.product')
        Template = pool.get('product.template')
        context = Transaction().context
        move = Move.__table__()
        source = Location.__table__()
        param = Replenishment.__table__()
        product = Product.__table__()
        template = Template.__table__()

        store_id = context.get('store')
        company_id = context.get('company')
        scope = [-1]
        if store_id is not None and store_id >= 0:
            scope = store_locations(Location(store_id), echelon=True) or [-1]
        else:
            store_id = -1

        into = move.to_location.in_(scope) & ~move.from_location.in_(scope)
        out = move.from_location.in_(scope) & ~move.to_location.in_(scope)
        qty = Coalesce(move.internal_quantity, 0)
        done = move.state == 'done'
        moves = (move
            .join(source, condition=move.from_location == source.id)
            .select(
                move.product.as_('product'),
                Sum(Case((done & into, qty), (done & out, -qty),
                        else_=0)).as_('on_hand'),
                Sum(Case((move.state.in_(['draft', 'assigned']) & out, qty),
                        else_=0)).as_('reserved'),
                Sum(Case(
                        (into & (source.type == 'transit')
                            & move.state.in_(['draft', 'assigned']), qty),
                        (into & (move.state == 'assigned')
                            & (source.type != 'supplier'), qty),
                        else_=0)).as_('in_transit'),
                Sum(Case(
                        (into & (move.state == 'draft')
                            & (source.type != 'transit'), qty),
                        (into & (move.state == 'assigned')
                            & (source.type == 'supplier'), qty),
                        else_=0)).as_('on_order'),
                where=(move.to_location.in_(scope)
                    | move.from_location.in_(scope))
                & (move.state != 'cancelled')
                & ((move.company == company_id) if company_id is not None
                    else Literal(True)),
                group_by=[move.product]))
        params = param.select(
            param.product.as_('product'),
            param.safety_stock, param.reorder_point, param.target_quantity,
            where=(param.store == store_id)
            & ((param.company == company_id) if company_id is not None
                else Literal(True)))

        # one row per material the store moved or has parameters for (a
        # full join: the read's "id in" stays on the join, never pushed
        # down into the moves' aggregate)
        product_id = Coalesce(moves.product, params.product)
        on_hand = Coalesce(moves.on_hand, 0)
        projected = (on_hand - Coalesce(moves.reserved, 0)
            + Coalesce(moves.in_transit, 0) + Coalesce(moves.on_order, 0))
        status = Case(
            (on_hand <= 0, 'out_of_stock'),
            ((params.safety_stock != Null)
                & (on_hand < params.safety_stock), 'below_safety'),
            ((params.reorder_point != Null)
                & (on_hand <= params.reorder_point), 'below_minimum'),
            ((params.target_quantity != Null)
                & (on_hand > params.target_quantity), 'over_maximum'),
            else_='normal')
        return (moves
            .join(params, 'FULL',
                condition=params.product == moves.product)
            .join(product, condition=product.id == product_id)
            .join(template, condition=template.id == product.template)
            .select(
                product.id.as_('id'),
                Literal(store_id).as_('store'),
                Literal(company_id).as_('company'),
                product.id.as_('product'),
                template.default_uom.as_('unit'),
                on_hand.as_('on_hand'),
                Coalesce(moves.reserved, 0).as_('reserved'),
                Coalesce(moves.in_transit, 0).as_('in_transit'),
                Coalesce(moves.on_order, 0).as_('on_order'),
                projected.as_('projected'),
                params.safety_stock.as_('safety_stock'),
                params.reorder_point.as_('reorder_point'),
                params.target_quantity.as_('target_quantity'),
                status.as_('status'),
                where=template.type == 'goods'))


class StockStatusContext(ModelView):
    __name__ = 'hrp.stock.status.context'
    __string__ = "Stock Status Context"

    company = fields.Many2One('company.company', "Company", required=True)
    store = fields.Many2One(
        'stock.location', "Store", required=True,
        domain=[('hrp_store_type', '!=', None)])

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_store(cls):
        Location = Pool().get('stock.location')
        store_id = Transaction().context.get('store')
        if store_id is not None:
            return store_id
        stores = Location.search([('hrp_store_type', '=', 'central')],
            limit=1, order=[('id', 'ASC')])
        if stores:
            return stores[0].id
