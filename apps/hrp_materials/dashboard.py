# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The inventory dashboard (库存看板): the alerts still open by store and
severity (those of suppliers, on licences and certificates, are in the
alerts list), the fifteen stores holding the most stock value and the
fifteen with the most turnover days.

Turnover days are the stock value divided by the average daily value of
the store's consumption (the done moves from the store to a consumption
location) over the configured history days; the value is at the
materials' current cost price."""
import datetime as dt

from sql import Literal, Null, Union
from sql.aggregate import Count, Min, Sum
from sql.conditionals import Case, Coalesce

from trytond.model import ModelSQL, ModelView, fields
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool
from trytond.transaction import Transaction

from .replenishment import DEMAND_LOCATION_TYPES
from .stock_status import NOT_STORE_TYPES


def _company_filter(column):
    company_id = Transaction().context.get('company')
    if company_id is None:
        return Literal(True)
    return column == company_id


class AlertSummary(ModelSQL, ModelView):
    __name__ = 'hrp.alert.summary'
    __string__ = "Alerts by Store"

    store = fields.Many2One('stock.location', "Store")
    critical = fields.Integer("Critical")
    warning = fields.Integer("Warning")
    info = fields.Integer("Information")
    total = fields.Integer("Total")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [
            ('total', 'DESC'), ('store', 'ASC'), ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        Alert = Pool().get('hrp.alert')
        alert = Alert.__table__()

        def count(severity):
            return Sum(Case((alert.severity == severity, 1), else_=0))
        return alert.select(
            Min(alert.id).as_('id'),
            alert.store.as_('store'),
            count('critical').as_('critical'),
            count('warning').as_('warning'),
            count('info').as_('info'),
            Count(alert.id).as_('total'),
            where=alert.state.in_(['open', 'acknowledged'])
            & (alert.store != Null)
            & _company_filter(alert.company),
            group_by=[alert.store])


class StoreValue(ModelSQL, ModelView):
    __name__ = 'hrp.store.value'
    __string__ = "Stock Value by Store"

    store = fields.Many2One('stock.location', "Store")
    currency = fields.Many2One('currency.currency', "Currency")
    value = Monetary(
        "Stock Value", currency='currency', digits='currency')
    consumption = Monetary(
        "Consumption", currency='currency', digits='currency',
        help="The value consumed over the history days.")
    turnover_days = fields.Float(
        "Turnover Days", digits=(16, 1),
        help="How many days of consumption the stock lasts.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [
            ('value', 'DESC'), ('store', 'ASC'), ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        pool = Pool()
        Move = pool.get('stock.move')
        Location = pool.get('stock.location')
        CostPrice = pool.get('product.cost_price')
        Company = pool.get('company.company')
        Date = pool.get('ir.date')
        config = pool.get('hrp.configuration')(1)
        context = Transaction().context
        move = Move.__table__()
        store = Location.__table__()
        location = Location.__table__()
        destination = Location.__table__()
        cost = CostPrice.__table__()
        company = Company.__table__()
        company_id = context.get('company', -1)
        days = config.replenishment_history_days
        start = Date.today() - dt.timedelta(days=days)

        # the locations of each store: itself and its sub-locations, not
        # the suppliers' consignment locations
        members = (store
            .join(location, condition=(location.left >= store.left)
                & (location.right <= store.right))
            .select(store.id.as_('store'), location.id.as_('location'),
                where=(store.hrp_store_type != Null)
                & ~location.type.in_(NOT_STORE_TYPES)))
        done = (move.state == 'done') & _company_filter(move.company)
        qty = Coalesce(move.internal_quantity, 0)
        into = (move
            .join(members, condition=move.to_location == members.location)
            .select(members.store, move.product, qty.as_('quantity'),
                Literal(0.0).as_('consumed'), where=done))
        out = (move
            .join(members, condition=move.from_location == members.location)
            .join(destination,
                condition=move.to_location == destination.id)
            .select(members.store, move.product, (-qty).as_('quantity'),
                Case(((move.effective_date >= start)
                        & destination.type.in_(list(DEMAND_LOCATION_TYPES)),
                        qty), else_=0.0).as_('consumed'),
                where=done))
        sides = Union(into, out, all_=True)
        per_product = sides.select(
            sides.store, sides.product,
            Sum(sides.quantity).as_('quantity'),
            Sum(sides.consumed).as_('consumed'),
            group_by=[sides.store, sides.product])
        price = Coalesce(cost.cost_price, 0)
        value = Sum(per_product.quantity * price)
        consumed = Sum(per_product.consumed * price)
        query = (per_product
            .join(cost, 'LEFT', condition=(cost.product == per_product.product)
                & (cost.company == company_id))
            .join(company, condition=company.id == company_id)
            .select(
                per_product.store.as_('id'),
                per_product.store.as_('store'),
                Min(company.currency).as_('currency'),
                cls.value.sql_cast(value).as_('value'),
                cls.consumption.sql_cast(consumed).as_('consumption'),
                cls.turnover_days.sql_cast(
                    Case((consumed > 0, value * days / consumed),
                        else_=Null)).as_('turnover_days'),
                group_by=[per_product.store]))
        return query
