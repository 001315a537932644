# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Replenishment parameters (补货参数) per store and material, computed
from the consumption history, and the scheduled job that turns them into
Tryton order points and asks for the requests they call for (``supply``).

The nightly job, for each store of the company:

- sums the store's daily demand over the history window: the done moves
  from the store (its sub-locations included, the suppliers' consignment
  locations left out) to a consumption location (production or customer).
  The central store's purchases replenish the whole hospital, so its
  demand is the hospital's (every store of its warehouse) and its order
  point, of type *purchase* on the warehouse, compares it with the
  warehouse's stock (Tryton counts the department stores in it: the
  echelon stock);
- measures the supplier lead time of each material from its past receipts
  (purchase date to receipt), else takes the supplier's declared lead
  time, else the configured default; a department store is replenished by
  the central store in the configured internal lead time;
- computes the safety stock and reorder point at the service level of the
  material's category (see ``forecast``), the manual minimum being a floor
  and the manual maximum the order-up-to level; without history the
  manual minimum is used, and said so;
- writes the order point of each store and material (a department store's
  is of type *internal*, provisioned by the central store) and asks for
  what they call for, by Tryton's rules: purchase requests for the
  central store, internal shipment requests (补货申请) for the department
  stores (see ``supply``).

A manual safety stock (override) replaces the computed one; every
computation keeps its date and its inputs on the parameter."""
import datetime as dt
import math
from collections import defaultdict

from sql import Null
from sql.aggregate import Min, Sum
from sql.operators import Concat

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.tools import grouped_slice
from trytond.transaction import Transaction, without_check_access

from . import forecast, supply
from .exceptions import (
    ConfigurationValidationError, ReplenishmentValidationError)
from .mixin import context_companies, executemany
from .stock_status import store_locations

BASES = [
    ('history', "Consumption History"),
    ('fallback', "Manual Minimum"),
    ('none', "Not Replenished"),
    ]
LEAD_TIME_SOURCES = [
    (None, ""),
    ('receipts', "Past Receipts"),
    ('supplier', "Supplier's Lead Time"),
    ('default', "Default Lead Time"),
    ('internal', "Internal Lead Time"),
    ]
DEMAND_LOCATION_TYPES = ('production', 'customer')
LEAD_TIME_WINDOW = 365
CHUNK = 1000
MIN_HISTORY_DAYS = 7


def check_service_level(level, record):
    "Refuse a service level of record outside (0, 1)"
    if level is not None and not 0 < level < 1:
        raise ReplenishmentValidationError(gettext(
                'hrp_materials.msg_service_level_range',
                level=level, record=record.rec_name))


class Category(metaclass=PoolMeta):
    __name__ = 'product.category'

    hrp_service_level = fields.Float(
        "Service Level", digits=(1, 4),
        help="The probability of not running out during a replenishment "
        "(e.g. 0.95, or 0.99 for life-saving materials); the subcategories "
        "inherit it.")
    hrp_near_expiry_days = fields.Integer(
        "Near-Expiry Days",
        help="Alert this many days before a lot of the category expires; "
        "the subcategories inherit it; the configuration's by default.")

    @classmethod
    def validate_fields(cls, categories, field_names):
        super().validate_fields(categories, field_names)
        for category in categories:
            check_service_level(category.hrp_service_level, category)
            days = category.hrp_near_expiry_days
            if days is not None and days < 0:
                raise ReplenishmentValidationError(gettext(
                        'hrp_materials.msg_category_near_expiry_negative',
                        category=category.rec_name))

    @classmethod
    def hrp_inherited(cls, name):
        """{category id: the value of name on it or its nearest parent that
        has one}"""
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(
                table.id, table.parent, getattr(table, name)))
        rows = {i: (p, v) for i, p, v in cursor}
        result = {}
        for category_id in rows:
            seen, current = set(), category_id
            while current is not None and current not in seen:
                seen.add(current)
                parent, value = rows.get(current, (None, None))
                if value is not None:
                    result[category_id] = value
                    break
                current = parent
        return result

    @classmethod
    def hrp_product_values(cls, name):
        """{product id: the value of name from the product's categories
        (the highest when several)}"""
        pool = Pool()
        Product = pool.get('product.product')
        TemplateCategory = pool.get('product.template-product.category')
        inherited = cls.hrp_inherited(name)
        if not inherited:
            return {}
        product = Product.__table__()
        rel = TemplateCategory.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*product.join(rel,
                condition=rel.template == product.template).select(
                product.id, rel.category))
        result = {}
        for product_id, category_id in cursor:
            value = inherited.get(category_id)
            if value is not None:
                result[product_id] = max(result.get(product_id, value), value)
        return result


class Configuration(metaclass=PoolMeta):
    __name__ = 'hrp.configuration'

    replenishment_history_days = fields.Integer(
        "History Days", required=True,
        help="The days of consumption the replenishment parameters are "
        "computed from.")
    service_level = fields.Float(
        "Service Level", digits=(1, 4), required=True,
        help="The service level of materials whose category sets none.")
    review_days = fields.Integer(
        "Review Days", required=True,
        help="Without a manual maximum, an order restores the reorder point "
        "plus this many days of demand.")
    default_lead_time = fields.Integer(
        "Default Lead Time", required=True,
        help="The supplier lead time in days of materials never received "
        "and whose supplier declares none.")
    internal_lead_time = fields.Integer(
        "Internal Lead Time", required=True,
        help="The days the central store takes to replenish a department "
        "store.")
    slow_moving_days = fields.Integer(
        "Slow-Moving Days", required=True,
        help="Stock that has not moved for this many days is slow-moving.")

    @classmethod
    def default_replenishment_history_days(cls):
        return 90

    @classmethod
    def default_service_level(cls):
        return 0.95

    @classmethod
    def default_review_days(cls):
        return 7

    @classmethod
    def default_default_lead_time(cls):
        return 7

    @classmethod
    def default_internal_lead_time(cls):
        return 1

    @classmethod
    def default_slow_moving_days(cls):
        return 90

    @classmethod
    def validate_fields(cls, records, field_names):
        super().validate_fields(records, field_names)
        for record in records:
            check_service_level(record.service_level, record)
            if record.replenishment_history_days is not None and (
                    record.replenishment_history_days < 7):
                raise ConfigurationValidationError(gettext(
                        'hrp_materials.msg_history_days_minimum'))
            for name in ['review_days', 'default_lead_time',
                    'internal_lead_time', 'slow_moving_days']:
                value = getattr(record, name)
                if value is not None and value < 0:
                    raise ConfigurationValidationError(gettext(
                            'hrp_materials.msg_configuration_days_negative',
                            field=cls.__names__(name)['field']))


class Replenishment(ModelSQL, ModelView):
    __name__ = 'hrp.replenishment'
    __string__ = "Replenishment Parameter"

    company = fields.Many2One('company.company', "Company", required=True)
    store = fields.Many2One(
        'stock.location', "Store", required=True, ondelete='CASCADE',
        domain=[('hrp_store_type', '!=', None)])
    product = fields.Many2One(
        'product.product', "Material", required=True, ondelete='CASCADE',
        domain=[('type', '=', 'goods')],
        context={'company': Eval('company', -1)}, depends={'company'})
    unit = fields.Function(
        fields.Many2One('product.uom', "Unit"), 'on_change_with_unit')

    minimum = fields.Float(
        "Minimum", digits='unit',
        help="The manual minimum (下限): the reorder point never goes "
        "below it, and it is used when there is no consumption history.")
    maximum = fields.Float(
        "Maximum", digits='unit',
        help="The manual maximum (上限): the stock an order restores.")
    safety_override = fields.Float(
        "Manual Safety Stock", digits='unit',
        help="Replaces the computed safety stock.")

    safety_stock = fields.Float(
        "Safety Stock", digits=(16, 2), readonly=True)
    reorder_point = fields.Float(
        "Reorder Point", digits=(16, 2), readonly=True,
        help="Below this stock a replenishment is requested (rounded up "
        "to the unit).")
    target_quantity = fields.Float(
        "Order-Up-To", digits=(16, 2), readonly=True,
        help="The stock a replenishment restores (rounded up to the "
        "unit).")
    basis = fields.Selection(BASES, "Basis", readonly=True, required=True)
    explanation = fields.Function(
        fields.Text("Explanation"), 'get_explanation')

    computed_at = fields.DateTime("Computed At", readonly=True)
    history_days = fields.Integer("History Days", readonly=True)
    demand_days = fields.Integer(
        "Days with Demand", readonly=True)
    demand_total = fields.Float(
        "Demand", digits=(16, 2), readonly=True)
    daily_demand = fields.Float(
        "Daily Demand", digits=(16, 3), readonly=True)
    demand_std = fields.Float(
        "Daily Demand Deviation", digits=(16, 3), readonly=True)
    lead_time = fields.Float(
        "Lead Time (Days)", digits=(16, 2), readonly=True)
    lead_time_std = fields.Float(
        "Lead Time Deviation", digits=(16, 2), readonly=True)
    lead_time_samples = fields.Integer("Receipts Measured", readonly=True)
    lead_time_source = fields.Selection(
        LEAD_TIME_SOURCES, "Lead Time From", readonly=True)
    service_level = fields.Float(
        "Service Level", digits=(1, 4), readonly=True)
    computed_safety = fields.Float(
        "Computed Safety Stock", digits=(16, 2), readonly=True)
    order_point = fields.Function(
        fields.Many2One('stock.order_point', "Order Point"),
        'get_order_point')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('store_product_unique', Unique(t, t.store, t.product),
                'hrp_materials.msg_replenishment_unique'),
            ]
        cls._sql_indexes.add(Index(
                t, (t.product, Index.Range()), (t.store, Index.Range())))
        cls._order = [('store', 'ASC'), ('product', 'ASC'), ('id', 'ASC')]
        cls._buttons.update({
                'compute': {},
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_basis(cls):
        return 'none'

    @fields.depends('product')
    def on_change_with_unit(self, name=None):
        return self.product.default_uom if self.product else None

    def get_rec_name(self, name):
        return f'{self.product.rec_name} @ {self.store.rec_name}'

    @classmethod
    def search_rec_name(cls, name, clause):
        return ['OR',
            ('product.rec_name', *clause[1:]),
            ('store.rec_name', *clause[1:]),
            ]

    def get_explanation(self, name):
        lang = Pool().get('ir.lang').get()
        days = self.history_days or 0
        if self.basis == 'history':
            text = gettext('hrp_materials.msg_replenishment_history',
                days=days, demand_days=self.demand_days,
                demand=lang.format_number(self.demand_total or 0),
                mean=lang.format('%.2f', self.daily_demand or 0),
                std=lang.format('%.2f', self.demand_std or 0),
                level=lang.format('%.1f', (self.service_level or 0) * 100))
        elif self.basis == 'fallback':
            text = gettext('hrp_materials.msg_replenishment_fallback',
                days=days, minimum=lang.format_number(self.minimum or 0))
        else:
            text = gettext('hrp_materials.msg_replenishment_none', days=days)
        if self.lead_time_source:
            text += ' ' + gettext(
                'hrp_materials.msg_replenishment_lead_time_%s'
                % self.lead_time_source,
                days=lang.format('%.1f', self.lead_time or 0),
                samples=self.lead_time_samples or 0)
        if self.safety_override is not None:
            text += ' ' + gettext(
                'hrp_materials.msg_replenishment_override',
                safety=lang.format_number(self.safety_override))
        return text

    @classmethod
    def get_order_point(cls, records, name):
        OrderPoint = Pool().get('stock.order_point')
        result = {r.id: None for r in records}
        keys = {}
        for record in records:
            keys[record.product.id, cls._order_point_location(
                    record.store).id] = record.id
        for ops in grouped_slice(list(keys), CHUNK):
            for op in OrderPoint.search([
                        ('product', 'in', list({p for p, _ in ops})),
                        ]):
                key = op.product.id, op.location.id
                if key in keys:
                    result[keys[key]] = op.id
        return result

    @classmethod
    def validate_fields(cls, records, field_names):
        super().validate_fields(records, field_names)
        if field_names & {'minimum', 'maximum', 'safety_override'}:
            for record in records:
                record.check_quantities()

    def check_quantities(self):
        for name in ['minimum', 'maximum', 'safety_override']:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ReplenishmentValidationError(gettext(
                        'hrp_materials.msg_replenishment_negative',
                        field=self.__names__(name)['field'],
                        record=self.rec_name))
        if (self.minimum is not None and self.maximum is not None
                and self.maximum < self.minimum):
            raise ReplenishmentValidationError(gettext(
                    'hrp_materials.msg_replenishment_maximum',
                    record=self.rec_name))

    @classmethod
    def create(cls, vlist):
        records = super().create(vlist)
        cls._apply([r for r in records])
        return records

    @classmethod
    def write(cls, *args):
        super().write(*args)
        names = set()
        records = []
        actions = iter(args)
        for recs, values in zip(actions, actions):
            records.extend(recs)
            names |= set(values)
        if names & {'minimum', 'maximum', 'safety_override', 'store',
                'product'}:
            cls._apply(records)

    @classmethod
    def _apply(cls, records):
        """Recompute the effective levels of records from their stored
        inputs and write their order points"""
        config = Pool().get('hrp.configuration')(1)
        rows = []
        for r in records:
            rows.append(cls._levels({
                        'id': r.id, 'company': r.company.id,
                        'store': r.store.id, 'product': r.product.id,
                        'minimum': r.minimum, 'maximum': r.maximum,
                        'safety_override': r.safety_override,
                        'basis': 'history' if r.basis == 'history' else None,
                        'daily_demand': r.daily_demand,
                        'lead_time': r.lead_time,
                        'computed_safety': r.computed_safety,
                        'rounding': r.product.default_uom.rounding,
                        }, config.review_days))
        cls._store_levels(rows)
        cls._sync_order_points(rows)

    @classmethod
    def _levels(cls, row, review_days):
        "Fill the basis and the effective levels of row (a dict)"
        minimum = row['minimum']
        if row['basis'] == 'history':
            mean = row['daily_demand'] or 0.0
            safety = row['safety_override']
            if safety is None:
                safety = row['computed_safety'] or 0.0
            reorder = forecast.reorder_point(
                mean, row['lead_time'] or 0.0, safety)
            if minimum is not None:
                reorder = max(reorder, minimum)
            target = forecast.order_up_to(
                reorder, mean, review_days, row['maximum'])
        elif minimum is not None:
            row['basis'] = 'fallback'
            safety = row['safety_override']
            if safety is None:
                safety = minimum
            reorder = minimum
            target = forecast.order_up_to(
                reorder, 0.0, review_days, row['maximum'])
        else:
            row['basis'] = 'none'
            safety = reorder = target = None
        rounding = row.get('rounding') or 1

        def up(quantity):
            # Tryton's supply orders target - stock: in whole units
            if quantity is None:
                return None
            return round(
                math.ceil(round(quantity / rounding, 6)) * rounding, 6)
        row['safety_stock'] = None if safety is None else round(safety, 2)
        row['reorder_point'] = up(reorder)
        row['target_quantity'] = up(target)
        return row

    @classmethod
    def _store_levels(cls, rows):
        table = cls.__table__()
        names = ['basis', 'safety_stock', 'reorder_point', 'target_quantity']
        executemany(table.update(
                [getattr(table, n) for n in names], [None] * len(names),
                where=table.id == 0),
            [[row[n] for n in names] + [row['id']] for row in rows])

    @classmethod
    def _order_point_location(cls, store):
        if store.hrp_store_type == 'central':
            return store.warehouse or store
        return store

    @classmethod
    def _sync_order_points(cls, rows):
        """Create, update or delete the order point of each row's store and
        material (the parameters own them)"""
        pool = Pool()
        OrderPoint = pool.get('stock.order_point')
        Location = pool.get('stock.location')
        op = OrderPoint.__table__()
        cursor = Transaction().connection.cursor()
        transaction = Transaction()
        stores = {s.id: s for s in Location.browse(
                list({r['store'] for r in rows}))}
        centrals = {}
        for central in Location.search(
                [('hrp_store_type', '=', 'central')],
                order=[('id', 'DESC')]):
            centrals[central.warehouse] = central

        def central_of(store):
            return centrals.get(store.warehouse)

        desired = {}
        for row in rows:
            store = stores[row['store']]
            location = cls._order_point_location(store)
            key = (row['company'], row['product'], location.id)
            if row['reorder_point'] is None:
                desired[key] = None
                continue
            if store.hrp_store_type == 'central':
                values = ('purchase', None)
            else:
                central = central_of(store)
                if not central:
                    desired[key] = None
                    continue
                values = ('internal', central.id)
            desired[key] = values + (
                row['reorder_point'], row['target_quantity'])

        existing = {}
        for keys in grouped_slice(list(desired), CHUNK):
            products = list({k[1] for k in keys})
            cursor.execute(*op.select(
                    op.id, op.company, op.product, op.location, op.type,
                    op.provisioning_location, op.min_quantity,
                    op.target_quantity,
                    where=op.product.in_(products)))
            for id_, company, product, location, *values in cursor:
                existing[company, product, location] = (id_, tuple(values))

        to_delete, to_insert, to_update = [], [], []
        now = dt.datetime.now()
        user = transaction.user
        for key, values in desired.items():
            current = existing.get(key)
            if values is None:
                if current:
                    to_delete.append(current[0])
            elif current is None:
                to_insert.append(key + values)
            elif current[1] != values:
                to_update.append(
                    list(values) + [None, now, user, current[0]])
        for ids in grouped_slice(to_delete, CHUNK):
            cursor.execute(*op.delete(where=op.id.in_(list(ids))))
        executemany(op.update(
                [op.type, op.provisioning_location, op.min_quantity,
                    op.target_quantity, op.max_quantity, op.write_date,
                    op.write_uid],
                [None] * 7, where=op.id == 0),
            to_update)
        # in the order Tryton's supply wizard reads them
        to_insert.sort(key=lambda v: (v[2], v[1]))
        executemany(op.insert(
                [op.company, op.product, op.location, op.type,
                    op.provisioning_location, op.min_quantity,
                    op.target_quantity, op.create_date, op.create_uid],
                [[None] * 9]),
            [list(v) + [now, user] for v in to_insert])

    @classmethod
    @ModelView.button
    def compute(cls, records):
        "Compute again the parameters of records from the history"
        by_company = defaultdict(list)
        for record in records:
            by_company[record.company].append(record)
        for company, company_records in by_company.items():
            with Transaction().set_context(company=company.id):
                cls.compute_company(
                    company, pairs={(r.store.id, r.product.id)
                        for r in company_records})

    @classmethod
    def compute_company(cls, company, pairs=None, today=None):
        """Compute the parameters of company's stores from the history
        (only those of pairs, (store id, product id), when given), write
        the order points and return the number of parameters computed"""
        pool = Pool()
        Date = pool.get('ir.date')
        Location = pool.get('stock.location')
        Category = pool.get('product.category')
        config = pool.get('hrp.configuration')(1)
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        if today is None:
            with Transaction().set_context(company=company.id):
                today = Date.today()
        history_days = config.replenishment_history_days
        stores = Location.search([('hrp_store_type', '!=', None)])
        if pairs is not None:
            stores = [s for s in stores if s.id in {p[0] for p in pairs}]
        if not stores:
            return 0

        # the locations of each store, for its demand and its first stock
        scopes = cls._store_scopes(stores)
        demand = cls._demand(company, scopes, today, history_days)
        lead_times = cls._lead_times(company, today)
        service_levels = Category.hrp_product_values('hrp_service_level')
        roundings = cls._roundings()

        existing = {}
        cursor.execute(*table.select(
                table.id, table.store, table.product, table.minimum,
                table.maximum, table.safety_override,
                where=(table.company == company.id)
                & table.store.in_([s.id for s in stores])))
        for id_, store, product, minimum, maximum, override in cursor:
            existing[store, product] = (id_, minimum, maximum, override)

        keys = set(demand) | set(existing)
        if pairs is not None:
            keys &= set(pairs)
        store_types = {s.id: s.hrp_store_type for s in stores}
        first_days = cls._first_days(
            company, scopes, today - dt.timedelta(days=history_days))
        # the levels of an order point set by hand before the parameter
        # existed become its manual minimum and maximum
        for key, levels in cls._manual_order_points(
                company, stores, set(keys) - set(existing)).items():
            existing[key] = (None, *levels, None)
        supplier_lead_times = cls._supplier_lead_times(
            {p for s, p in keys if store_types[s] == 'central'}
            - set(lead_times))
        now = dt.datetime.now()
        user = Transaction().user
        rows = []
        for store_id, product_id in keys:
            total, squares, days_with = demand.get(
                (store_id, product_id), (0.0, 0.0, 0))
            id_, minimum, maximum, override = existing.get(
                (store_id, product_id), (None, None, None, None))
            if store_types[store_id] == 'central':
                if product_id in lead_times:
                    samples = lead_times[product_id]
                    lead, lead_std = forecast.lead_time_statistics(samples)
                    source, count = 'receipts', len(samples)
                elif product_id in supplier_lead_times:
                    lead, lead_std = supplier_lead_times[product_id], 0.0
                    source, count = 'supplier', 0
                else:
                    lead, lead_std = float(config.default_lead_time), 0.0
                    source, count = 'default', 0
            else:
                lead, lead_std = float(config.internal_lead_time), 0.0
                source, count = 'internal', 0
            level = service_levels.get(product_id, config.service_level)
            # a material first stocked within the window: since then
            days = history_days
            if (store_id, product_id) in first_days:
                days = min(max(
                        (today - first_days[store_id, product_id]).days,
                        MIN_HISTORY_DAYS), history_days)
            mean, std = forecast.demand_statistics(total, squares, days)
            row = {
                'id': id_, 'company': company.id, 'store': store_id,
                'product': product_id, 'minimum': minimum,
                'maximum': maximum, 'safety_override': override,
                'basis': 'history' if total > 0 else None,
                'computed_at': now, 'history_days': days,
                'demand_days': days_with, 'demand_total': total,
                'daily_demand': round(mean, 4), 'demand_std': round(std, 4),
                'lead_time': round(lead, 2),
                'lead_time_std': round(lead_std, 2),
                'lead_time_samples': count, 'lead_time_source': source,
                'service_level': level,
                'rounding': roundings.get(product_id, 1),
                'computed_safety': round(forecast.safety_stock(
                        level, mean, std, lead, lead_std), 2),
                }
            rows.append(cls._levels(row, config.review_days))
        cls._save_rows(rows, now, user)
        cls._sync_order_points(rows)
        return len(rows)

    _computed_columns = [
        'basis', 'safety_stock', 'reorder_point', 'target_quantity',
        'computed_at', 'history_days', 'demand_days', 'demand_total',
        'daily_demand', 'demand_std', 'lead_time', 'lead_time_std',
        'lead_time_samples', 'lead_time_source', 'service_level',
        'computed_safety']

    @classmethod
    def _save_rows(cls, rows, now, user):
        """Write the computed rows in bulk: the nightly job computes
        hundreds of thousands of them"""
        table = cls.__table__()
        names = cls._computed_columns
        columns = [getattr(table, n) for n in names]
        executemany(table.insert(
                [table.company, table.store, table.product,
                    table.minimum, table.maximum,
                    table.create_date, table.create_uid] + columns,
                [[None] * (7 + len(columns))]),
            [[r['company'], r['store'], r['product'], r['minimum'],
                    r['maximum'], now, user] + [r[n] for n in names]
                for r in rows if r['id'] is None])
        executemany(table.update(
                columns + [table.write_date, table.write_uid],
                [None] * (len(columns) + 2), where=table.id == 0),
            [[r[n] for n in names] + [now, user, r['id']]
                for r in rows if r['id'] is not None])

    @classmethod
    def _roundings(cls):
        "{product id: the rounding of its default unit}"
        pool = Pool()
        Product = pool.get('product.product')
        Template = pool.get('product.template')
        Uom = pool.get('product.uom')
        product = Product.__table__()
        template = Template.__table__()
        uom = Uom.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*product
            .join(template, condition=product.template == template.id)
            .join(uom, condition=template.default_uom == uom.id)
            .select(product.id, uom.rounding))
        return dict(cursor)

    @classmethod
    def _store_scopes(cls, stores):
        """{location id: [store ids]}: the locations whose moves are each
        store's, the central store standing for its whole warehouse"""
        scopes = defaultdict(list)
        for store in stores:
            for location in store_locations(store, echelon=True):
                scopes[location].append(store.id)
        return scopes

    @classmethod
    def _first_days(cls, company, scopes, start):
        """{(store id, product id): the date of the first move into the
        store} of the materials first stocked after start"""
        Move = Pool().get('stock.move')
        move = Move.__table__()
        cursor = Transaction().connection.cursor()
        first = {}
        for locations in grouped_slice(list(scopes), CHUNK):
            locations = list(locations)
            cursor.execute(*move.select(
                    move.to_location, move.product, Min(move.effective_date),
                    where=(move.state == 'done')
                    & (move.company == company.id)
                    & move.to_location.in_(locations),
                    group_by=[move.to_location, move.product]))
            for location, product, date in cursor:
                if isinstance(date, str):
                    date = dt.date.fromisoformat(date)
                for store in scopes[location]:
                    key = store, product
                    first[key] = min(first.get(key, date), date)
        return {k: d for k, d in first.items() if d > start}

    @classmethod
    def _manual_order_points(cls, company, stores, keys):
        """{(store id, product id): (minimum, target)} of the order points
        of keys that no parameter owns yet"""
        OrderPoint = Pool().get('stock.order_point')
        locations = {s.id: cls._order_point_location(s).id for s in stores}
        wanted = {(p, locations[s]): (s, p) for s, p in keys}
        result = {}
        for chunk in grouped_slice(list(wanted), CHUNK):
            for op in OrderPoint.search([
                        ('company', '=', company.id),
                        ('product', 'in', list({p for p, _ in chunk})),
                        ]):
                key = wanted.get((op.product.id, op.location.id))
                if key and op.min_quantity is not None:
                    result[key] = (op.min_quantity, op.target_quantity)
        return result

    @classmethod
    def _demand(cls, company, scopes, today, history_days):
        """{(store id, product id): (total, sum of daily squares, days with
        demand)} over the history window ending yesterday"""
        pool = Pool()
        Move = pool.get('stock.move')
        Location = pool.get('stock.location')
        move = Move.__table__()
        location = Location.__table__()
        cursor = Transaction().connection.cursor()
        start = today - dt.timedelta(days=history_days)
        consumption = location.select(
            location.id,
            where=location.type.in_(list(DEMAND_LOCATION_TYPES)))
        daily = defaultdict(float)
        for locations in grouped_slice(list(scopes), CHUNK):
            locations = list(locations)
            cursor.execute(*move.select(
                    move.from_location, move.product, move.effective_date,
                    Sum(move.internal_quantity),
                    where=(move.state == 'done')
                    & (move.company == company.id)
                    & move.from_location.in_(locations)
                    & move.to_location.in_(consumption)
                    & (move.effective_date >= start)
                    & (move.effective_date < today),
                    group_by=[move.from_location, move.product,
                        move.effective_date]))
            for from_location, product, date, quantity in cursor:
                for store in scopes[from_location]:
                    daily[store, product, date] += quantity or 0
        result = {}
        for (store, product, _), quantity in daily.items():
            total, squares, days = result.get((store, product), (0, 0, 0))
            result[store, product] = (
                total + quantity, squares + quantity * quantity, days + 1)
        return result

    @classmethod
    def _lead_times(cls, company, today):
        """{product id: [lead times in days]} measured from the receipts of
        the last year: the purchase date to the receipt of its goods"""
        pool = Pool()
        Move = pool.get('stock.move')
        PurchaseLine = pool.get('purchase.line')
        Purchase = pool.get('purchase.purchase')
        move = Move.__table__()
        line = PurchaseLine.__table__()
        purchase = Purchase.__table__()
        cursor = Transaction().connection.cursor()
        start = today - dt.timedelta(days=LEAD_TIME_WINDOW)
        cursor.execute(*move
            .join(line, condition=move.origin == Concat(
                    'purchase.line,', line.id))
            .join(purchase, condition=line.purchase == purchase.id)
            .select(
                move.product, purchase.purchase_date, move.effective_date,
                where=(move.state == 'done')
                & (move.company == company.id)
                & (move.effective_date >= start)
                & (purchase.purchase_date != Null),
                group_by=[move.product, purchase.id, move.effective_date]))
        result = defaultdict(list)
        for product, ordered, received in cursor:
            if isinstance(ordered, str):
                ordered = dt.date.fromisoformat(ordered)
            if isinstance(received, str):
                received = dt.date.fromisoformat(received)
            result[product].append(max((received - ordered).days, 0))
        return result

    @classmethod
    def _supplier_lead_times(cls, product_ids):
        "{product id: the lead time in days its first supplier declares}"
        pool = Pool()
        Product = pool.get('product.product')
        result = {}
        for ids in grouped_slice(list(product_ids), CHUNK):
            for product in Product.browse(list(ids)):
                for supplier in product.product_suppliers_used():
                    if supplier.lead_time is not None:
                        result[product.id] = (
                            supplier.lead_time.total_seconds() / 86400)
                        break
        return result

    @classmethod
    def run_nightly(cls):
        """The scheduled job: compute every parameter of the company, then
        ask for the internal shipment and purchase requests its order
        points call for (see ``supply``)"""
        Date = Pool().get('ir.date')
        for company in context_companies():
            with Transaction().set_context(
                    company=company.id, _skip_warnings=True), \
                    without_check_access():
                cls.compute_company(company)
                supply.supply_internal(company, Date.today())
                supply.supply_purchase(company)


class Move(metaclass=PoolMeta):
    __name__ = 'stock.move'

    @classmethod
    def _get_origin(cls):
        # the order point a replenishment request's move was asked for
        return super()._get_origin() + ['stock.order_point']


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('hrp.replenishment|run_nightly',
                "Compute Replenishment and Request Supplies"))

