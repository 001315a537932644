# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Monthly usage, revenue and cost of each large device (设备月度使用与收支).

One record per device and month.  *Collect* fills what the hospital's
systems know:
- examinations and hours of use from the PACS usage feed (the device's PACS
  code), when the device has one; otherwise they are entered (or kept);
- downtime: the hours of the month the device was out of service for a
  repair, from the report to the department's acceptance;
- revenue: the HIS revenue of the charge items mapped to the device; an
  item several devices share goes to the device the HIS recorded, else is
  shared in proportion to their examinations;
- costs: preventive maintenance done, repairs accepted, depreciation of the
  fixed asset (with ``account_asset``), consumables used for the device.
The rest is entered by the equipment engineers: the quality sampling, the
functions in use, research and teaching, and upkeep (utilities, helium …).
"""
import calendar
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from types import SimpleNamespace

from sql import Column, Null
from sql.aggregate import Sum
from sql.conditionals import Coalesce

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from hrp_materials.mixin import executemany

from .exceptions import UsageError

# ids per IN (…) of a query
CHUNK = 1000
HOURS = Decimal('0.01')
ZERO = Decimal(0)
# The figures Collect computes; the others are entered
COLLECTED = [
    'exams', 'hours_used', 'downtime_hours', 'revenue', 'maintenance_cost',
    'repair_cost', 'depreciation', 'consumables_cost']
COSTS = [
    'maintenance_cost', 'repair_cost', 'depreciation', 'consumables_cost',
    'upkeep_cost']


def month_start(date):
    return date.replace(day=1)


def month_end(date):
    "The first day of the next month"
    return (date.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def month_days(date):
    return calendar.monthrange(date.year, date.month)[1]


def _date(value):
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    if isinstance(value, dt.datetime):
        return value.date()
    return value


def _datetime(value):
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    return value


# The columns of a usage record the scoring reads
FIGURES = [
    'month', 'exams', 'hours_used', 'downtime_hours', 'scheduled_hours',
    'exams_sampled', 'exams_excellent', 'functions_total', 'functions_used',
    'papers', 'projects', 'trainees', 'revenue', *COSTS]


def calendar_hours(month):
    return Decimal(month_days(month) * 24)


def hours_available(month, scheduled_hours, downtime_hours):
    """The scheduled hours of the month less the downtime's share of
    them"""
    total = calendar_hours(month)
    up = max(total - (downtime_hours or 0), 0)
    return (Decimal(scheduled_hours) * month_days(month) * up
        / total).quantize(HOURS)


def total_cost(figures):
    return sum((Decimal(getattr(figures, c) or 0) for c in COSTS), ZERO)


class Device(SimpleNamespace):
    "A device's figures the collection reads"
    __hash__ = object.__hash__
    __eq__ = object.__eq__


class MonthFigures:
    "A usage record's figures, read in bulk for the scoring"

    def __init__(self, month, values):
        self.__dict__.update(values)
        self.month = _date(self.month)
        for name in ['hours_used', 'downtime_hours', 'scheduled_hours',
                'revenue', *COSTS]:
            value = getattr(self, name)
            setattr(self, name, Decimal(str(value if value is not None
                        else 0)))

    @property
    def calendar_hours(self):
        return calendar_hours(self.month)

    @property
    def hours_available(self):
        return hours_available(
            self.month, self.scheduled_hours, self.downtime_hours)

    @property
    def total_cost(self):
        return total_cost(self)

    @property
    def profit(self):
        return self.revenue - self.total_cost


class Equipment(metaclass=PoolMeta):
    __name__ = 'hrp.equipment'

    scheduled_hours = fields.Numeric(
        "Scheduled Hours per Day", digits=(4, 2), required=True,
        help="The hours a day the device is meant to be available: the "
        "usage rate is the hours used over these hours of the month, less "
        "its downtime.")
    functions_total = fields.Integer(
        "Functions",
        help="The functions (applications, sequences, options) the device "
        "was bought with.")
    functions_used = fields.Integer(
        "Functions in Use",
        help="The functions the department actually uses: the function "
        "completeness rate is these over the functions bought.")
    charge_items = fields.Many2Many(
        'hrp.equipment-his.charge.item', 'equipment', 'item',
        "HIS Charge Items",
        help="The HIS charge items (examinations, treatments) billed for "
        "the device's work: their revenue is the device's.")
    usages = fields.One2Many(
        'hrp.equipment.usage', 'equipment', "Monthly Usage", readonly=True)

    @classmethod
    def default_scheduled_hours(cls):
        return Decimal(24)

    @classmethod
    def validate_fields(cls, equipments, field_names):
        super().validate_fields(equipments, field_names)
        for equipment in equipments:
            if not (0 < equipment.scheduled_hours <= 24):
                raise UsageError(gettext(
                        'hrp_equipment.msg_equipment_scheduled_hours',
                        equipment=equipment.rec_name,
                        hours=equipment.scheduled_hours))
            total, used = equipment.functions_total, equipment.functions_used
            if (total is not None and total < 0) or (
                    used is not None and (used < 0 or used > (total or 0))):
                raise UsageError(gettext(
                        'hrp_equipment.msg_equipment_functions',
                        equipment=equipment.rec_name))

    @classmethod
    def copy(cls, equipments, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('usages', None)
        return super().copy(equipments, default=default)


class EquipmentChargeItem(ModelSQL):
    __name__ = 'hrp.equipment-his.charge.item'
    __string__ = "Equipment - HIS Charge Item"

    equipment = fields.Many2One(
        'hrp.equipment', "Equipment", required=True, ondelete='CASCADE')
    item = fields.Many2One(
        'his.charge.item', "Charge Item", required=True, ondelete='CASCADE')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls.__access__.add('equipment')
        cls._sql_constraints += [
            ('equipment_item_unique', Unique(t, t.equipment, t.item),
                'hrp_equipment.msg_equipment_item_unique'),
            ]


class Usage(ModelSQL, ModelView):
    __name__ = 'hrp.equipment.usage'
    __string__ = "Equipment Monthly Usage"

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    equipment = fields.Many2One(
        'hrp.equipment', "Equipment", required=True, ondelete='RESTRICT',
        domain=[('company', '=', Eval('company', -1))],
        states={'readonly': Eval('id', -1) >= 0})
    month = fields.Date(
        "Month", required=True,
        states={'readonly': Eval('id', -1) >= 0},
        help="The first day of the month.")
    exams = fields.Integer(
        "Examinations", required=True,
        help="From the PACS when the device has its PACS code.")
    hours_used = fields.Numeric(
        "Hours Used", digits=(8, 2), required=True,
        help="From the PACS when the device has its PACS code.")
    downtime_hours = fields.Numeric(
        "Downtime Hours", digits=(8, 2), required=True,
        help="The hours out of service for repairs (collected).")
    calendar_hours = fields.Function(
        fields.Numeric("Calendar Hours", digits=(8, 2)), 'get_hours')
    hours_available = fields.Function(
        fields.Numeric(
            "Hours Available", digits=(8, 2),
            help="The scheduled hours of the month less the downtime's "
            "share of them."),
        'get_hours')
    scheduled_hours = fields.Numeric(
        "Scheduled Hours per Day", digits=(4, 2), required=True,
        help="The device's scheduled hours a day when collected.")
    exams_sampled = fields.Integer(
        "Examinations Sampled",
        help="The examinations the quality control sampled this month.")
    exams_excellent = fields.Integer(
        "Excellent Examinations",
        help="The sampled examinations rated excellent (优良).")
    functions_total = fields.Integer("Functions")
    functions_used = fields.Integer("Functions in Use")
    papers = fields.Integer("Papers", help="Papers published using it.")
    projects = fields.Integer(
        "Research Projects", help="Research projects that used it.")
    trainees = fields.Integer(
        "Trainees", help="Physicians and technicians trained on it.")
    revenue = Monetary(
        "Revenue", currency='currency', digits='currency', required=True)
    maintenance_cost = Monetary(
        "Maintenance Cost", currency='currency', digits='currency',
        required=True)
    repair_cost = Monetary(
        "Repair Cost", currency='currency', digits='currency', required=True)
    depreciation = Monetary(
        "Depreciation", currency='currency', digits='currency',
        required=True)
    consumables_cost = Monetary(
        "Consumables Cost", currency='currency', digits='currency',
        required=True,
        help="The materials the department registered as used for the "
        "device.")
    upkeep_cost = Monetary(
        "Upkeep Cost", currency='currency', digits='currency', required=True,
        help="Electricity, water, helium, rooms and other running costs.")
    total_cost = fields.Function(Monetary(
            "Total Cost", currency='currency', digits='currency'),
        'get_total_cost')
    profit = fields.Function(Monetary(
            "Profit", currency='currency', digits='currency'),
        'get_total_cost')
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    collected_at = fields.DateTime("Collected At", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('equipment_month_unique', Unique(t, t.equipment, t.month),
                'hrp_equipment.msg_usage_unique'),
            ]
        cls._sql_indexes.add(Index(t, (t.month, Index.Range())))
        cls._order = [('month', 'DESC'), ('equipment', 'ASC'), ('id', 'ASC')]
        cls._buttons.update({
                'collect': {
                    'icon': 'tryton-refresh',
                    },
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @staticmethod
    def _default_zero():
        return 0

    default_exams = _default_zero
    default_hours_used = default_downtime_hours = _default_zero

    @classmethod
    def default_scheduled_hours(cls):
        return Decimal(24)

    @staticmethod
    def _default_amount():
        return ZERO

    default_revenue = default_maintenance_cost = _default_amount
    default_repair_cost = default_depreciation = _default_amount
    default_consumables_cost = default_upkeep_cost = _default_amount

    @fields.depends('company')
    def on_change_with_currency(self, name=None):
        return self.company.currency if self.company else None

    @fields.depends('equipment')
    def on_change_equipment(self):
        if self.equipment:
            self.scheduled_hours = self.equipment.scheduled_hours
            self.functions_total = self.equipment.functions_total
            self.functions_used = self.equipment.functions_used

    def get_rec_name(self, name):
        return f'{self.equipment.rec_name} {self.month:%Y-%m}'

    @classmethod
    def search_rec_name(cls, name, clause):
        return [('equipment.rec_name', *clause[1:])]

    @property
    def month_calendar_hours(self):
        return calendar_hours(self.month)

    def get_hours(self, name):
        if name == 'calendar_hours':
            return calendar_hours(self.month)
        return hours_available(
            self.month, self.scheduled_hours, self.downtime_hours)

    @classmethod
    def get_total_cost(cls, usages, names):
        result = {n: {} for n in names}
        for usage in usages:
            cost = total_cost(usage)
            if 'total_cost' in names:
                result['total_cost'][usage.id] = cost
            if 'profit' in names:
                result['profit'][usage.id] = (usage.revenue or ZERO) - cost
        return result

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if values.get('month'):
            values['month'] = month_start(_date(values['month']))
        return values

    @classmethod
    def validate_fields(cls, usages, field_names):
        super().validate_fields(usages, field_names)
        cls.check_figures(usages)

    @classmethod
    def check_figures(cls, usages):
        "Refuse figures that cannot be: negative, beyond the month's hours"
        for usage in usages:
            names = cls.__names__
            for name in ['exams', 'exams_sampled', 'exams_excellent',
                    'functions_total', 'functions_used', 'papers',
                    'projects', 'trainees', 'hours_used', 'downtime_hours',
                    *COSTS]:
                value = getattr(usage, name)
                if value is not None and value < 0:
                    raise UsageError(gettext(
                            'hrp_equipment.msg_usage_negative',
                            usage=usage.rec_name,
                            field=names(name)['field'], value=value))
            hours = usage.month_calendar_hours
            for name in ['hours_used', 'downtime_hours']:
                if getattr(usage, name) > hours:
                    raise UsageError(gettext(
                            'hrp_equipment.msg_usage_hours_month',
                            usage=usage.rec_name,
                            field=names(name)['field'],
                            value=getattr(usage, name), hours=hours))
            if not (0 < usage.scheduled_hours <= 24):
                raise UsageError(gettext(
                        'hrp_equipment.msg_equipment_scheduled_hours',
                        equipment=usage.rec_name,
                        hours=usage.scheduled_hours))
            for part, whole in [('exams_excellent', 'exams_sampled'),
                    ('functions_used', 'functions_total')]:
                if (getattr(usage, part) or 0) > (getattr(usage, whole) or 0):
                    raise UsageError(gettext(
                            'hrp_equipment.msg_usage_part_whole',
                            usage=usage.rec_name,
                            part=names(part)['field'],
                            whole=names(whole)['field']))

    @classmethod
    @ModelView.button
    def collect(cls, usages):
        "Collect again the figures the hospital's systems know"
        by_month = defaultdict(list)
        for usage in usages:
            by_month[usage.company, usage.month].append(usage.equipment)
        for (company, month), equipments in by_month.items():
            cls.collect_month(company, month, [e.id for e in equipments])

    @classmethod
    def collect_month(cls, company, month, equipments=None):
        """Create or update the usage records of the month for equipments
        (default: every device of company in service in the month).

        Return the month's figures of each device ({equipment id:
        MonthFigures}).  The records are written in bulk: the collected
        figures come from checked sources (the PACS feed limits a day to 24
        hours, downtime is within the month)."""
        month = month_start(month)
        devices = cls._devices(company, month, equipments)
        figures = cls.collected_figures(company, month, devices)
        usage = cls.__table__()
        cursor = Transaction().connection.cursor()
        existing = set()
        ids = [d.id for d in devices]
        for sub in grouped_slice(ids, CHUNK):
            cursor.execute(*usage.select(usage.equipment,
                    where=usage.equipment.in_(list(sub))
                    & (usage.month == month)))
            existing.update(e for e, in cursor)
        user, now = Transaction().user, dt.datetime.now().replace(
            microsecond=0)
        updates = defaultdict(list)
        inserts = []
        for device in devices:
            values = figures[device]
            if not device.pacs_device:
                # entered by hand (or imported): kept
                for name in ['exams', 'hours_used']:
                    values.pop(name, None)
            names = tuple(sorted(values))
            if device.id in existing:
                updates[names].append([
                        *(values[n] for n in names), now, user, now,
                        device.id, month])
            else:
                inserts.append([company.id, device.id, month,
                        device.scheduled_hours, device.functions_total,
                        device.functions_used, values.get('exams', 0),
                        values.get('hours_used', ZERO),
                        *(values[n] for n in COLLECTED[2:]),
                        ZERO, now, user, now])
        for names, rows in updates.items():
            columns = [Column(usage, n) for n in names] + [
                usage.collected_at, usage.write_uid, usage.write_date]
            executemany(usage.update(columns, [0] * len(columns),
                    where=(usage.equipment == 0)
                    & (usage.month == month)),
                rows)
        insert_names = ['company', 'equipment', 'month', 'scheduled_hours',
            'functions_total', 'functions_used', 'exams', 'hours_used',
            *COLLECTED[2:], 'upkeep_cost', 'collected_at', 'create_uid',
            'create_date']
        executemany(usage.insert(
                [Column(usage, n) for n in insert_names],
                [[None] * len(insert_names)]), inserts)
        result = cls.month_figures(month, ids)
        for device in devices:
            result[device.id].device = device
        return result

    @classmethod
    def month_figures(cls, month, equipment_ids):
        "{equipment id: MonthFigures} of the usage records of the month"
        usage = cls.__table__()
        cursor = Transaction().connection.cursor()
        names = ['id', 'equipment', *FIGURES]
        result = {}
        for sub in grouped_slice(equipment_ids, CHUNK):
            cursor.execute(*usage.select(
                    *(Column(usage, n) for n in names),
                    where=usage.equipment.in_(list(sub))
                    & (usage.month == month)))
            for row in cursor:
                values = dict(zip(names, row))
                result[values['equipment']] = MonthFigures(month, values)
        return result

    @classmethod
    def _devices(cls, company, month, equipments=None):
        """The devices (their figures as Device) of equipments, default
        those of company in service in the month: commissioned before its
        end and not scrapped before it began"""
        pool = Pool()
        Equipment = pool.get('hrp.equipment')
        StatusChange = pool.get('hrp.equipment.status_change')
        equipment = Equipment.__table__()
        change = StatusChange.__table__()
        cursor = Transaction().connection.cursor()
        names = ['id', 'pacs_device', 'scheduled_hours', 'functions_total',
            'functions_used', 'category', 'department', 'purchase_cost',
            'status']
        query = equipment.select(*(Column(equipment, n) for n in names),
            where=equipment.company == company.id)
        rows = []
        if equipments is None:
            query.where &= ((equipment.commissioning_date == Null)
                | (equipment.commissioning_date < month_end(month)))
            cursor.execute(*query)
            rows = cursor.fetchall()
        else:
            where = query.where
            for sub in grouped_slice([int(e) for e in equipments], CHUNK):
                query.where = where & equipment.id.in_(list(sub))
                cursor.execute(*query)
                rows.extend(cursor)
        devices = [Device(**dict(zip(names, r))) for r in rows]
        scrapped = [d.id for d in devices if d.status == 'scrapped']
        if equipments is None and scrapped:
            start = dt.datetime.combine(month, dt.time())
            gone = set()
            for sub in grouped_slice(scrapped, CHUNK):
                cursor.execute(*change.select(change.equipment,
                        where=change.equipment.in_(list(sub))
                        & (change.to_status == 'scrapped')
                        & (change.date < start)))
                gone.update(e for e, in cursor)
            devices = [d for d in devices if d.id not in gone]
        return sorted(devices, key=lambda d: d.id)

    @classmethod
    def collected_figures(cls, company, month, equipments):
        """{equipment: {field: value}} of the month for each of equipments,
        from the PACS, the repairs, the maintenance, the HIS revenue and the
        consumption"""
        start, end = month_start(month), month_end(month)
        currency = company.currency
        result = {e: {n: ZERO for n in COLLECTED} for e in equipments}
        for values in result.values():
            values['exams'] = 0
        by_id = {e.id: e for e in equipments}
        for name, amounts in [
                ('maintenance_cost', cls._maintenance_costs),
                ('repair_cost', cls._repair_costs),
                ('depreciation', cls._depreciations),
                ('consumables_cost', cls._consumables_costs),
                ]:
            for equipment_id, amount in amounts(
                    company, start, end, list(by_id)).items():
                result[by_id[equipment_id]][name] = currency.round(
                    Decimal(amount or 0))
        for equipment_id, hours in cls._downtimes(
                start, end, list(by_id)).items():
            result[by_id[equipment_id]]['downtime_hours'] = hours
        exams = cls._pacs_usage(company, start, end, equipments, result)
        for equipment, amount in cls._revenues(
                company, start, end, equipments, exams).items():
            result[equipment]['revenue'] = currency.round(amount)
        return result

    @classmethod
    def _pacs_sums(cls, company, start, end, codes):
        "{PACS code: (examinations, hours)} of the devices from start to end"
        pool = Pool()
        PacsUsage = pool.get('his.pacs.usage')
        usage = PacsUsage.__table__()
        cursor = Transaction().connection.cursor()
        result = {}
        for sub in grouped_slice(sorted(codes), CHUNK):
            cursor.execute(*usage.select(
                    usage.device, Sum(usage.exams), Sum(usage.hours),
                    where=(usage.company == company.id)
                    & usage.device.in_(list(sub))
                    & (usage.day >= start) & (usage.day < end),
                    group_by=[usage.device]))
            for code, exams, hours in cursor:
                result[code] = (
                    int(exams), Decimal(str(hours or 0)).quantize(HOURS))
        return result

    @classmethod
    def _pacs_usage(cls, company, start, end, equipments, result):
        """Fill the examinations and hours of the devices with a PACS code;
        return {equipment: examinations}"""
        by_code = {e.pacs_device: e for e in equipments if e.pacs_device}
        exams = {}
        for code, (count, hours) in cls._pacs_sums(
                company, start, end, by_code).items():
            equipment = by_code[code]
            result[equipment]['exams'] = exams[equipment] = count
            result[equipment]['hours_used'] = hours
        return exams

    @classmethod
    def _revenues(cls, company, start, end, equipments, exams):
        """{equipment: revenue}: the HIS revenue of the items mapped to the
        devices; an item several devices share goes to the device the HIS
        recorded, else in proportion to the examinations of all the devices
        it is mapped to (equally without any)"""
        pool = Pool()
        Revenue = pool.get('his.revenue')
        Link = pool.get('hrp.equipment-his.charge.item')
        Equipment = pool.get('hrp.equipment')
        revenue = Revenue.__table__()
        link = Link.__table__()
        cursor = Transaction().connection.cursor()
        items = set()
        for sub in grouped_slice([e.id for e in equipments], CHUNK):
            cursor.execute(*link.select(
                    link.item, where=link.equipment.in_(list(sub))))
            items.update(i for i, in cursor)
        item_devices = defaultdict(list)
        for sub in grouped_slice(sorted(items), CHUNK):
            cursor.execute(*link.select(
                    link.item, link.equipment,
                    where=link.item.in_(list(sub))))
            for item_id, equipment_id in cursor:
                item_devices[item_id].append(equipment_id)
        devices = {e.id: e for e in equipments}
        others = {i for ids in item_devices.values() for i in ids} - set(
            devices)
        devices.update({e.id: e for e in Equipment.browse(sorted(others))})
        exams = dict(exams)
        sums = cls._pacs_sums(company, start, end, {
                devices[i].pacs_device for i in others
                if devices[i].pacs_device})
        for i in others:
            exams[devices[i]] = sums.get(devices[i].pacs_device, (0,))[0]
        result = defaultdict(Decimal)
        for sub in grouped_slice(sorted(item_devices), CHUNK):
            cursor.execute(*revenue.select(
                    revenue.item, revenue.device, Sum(revenue.amount),
                    where=(revenue.company == company.id)
                    & revenue.item.in_(list(sub))
                    & (revenue.day >= start) & (revenue.day < end),
                    group_by=[revenue.item, revenue.device]))
            for item_id, code, amount in cursor:
                amount = Decimal(str(amount or 0))
                sharing = [devices[i] for i in sorted(item_devices[item_id])]
                named = [e for e in sharing
                    if code and e.pacs_device == code]
                if named:
                    sharing = named
                weights = [exams.get(e, 0) for e in sharing]
                if not any(weights):
                    weights = [1] * len(sharing)
                total = sum(weights)
                for device, weight in zip(sharing, weights):
                    result[device] += amount * weight / total
        wanted = set(equipments)
        return {e: a for e, a in result.items() if e in wanted}

    @classmethod
    def _maintenance_costs(cls, company, start, end, ids):
        pool = Pool()
        Order = pool.get('hrp.equipment.maintenance')
        order = Order.__table__()
        cursor = Transaction().connection.cursor()
        result = {}
        for sub_ids in grouped_slice(ids, CHUNK):
            cursor.execute(*order.select(
                    order.equipment, Sum(Coalesce(order.cost, 0)),
                    where=order.equipment.in_(list(sub_ids))
                    & (order.state == 'done')
                    & (order.done_date >= start) & (order.done_date < end),
                    group_by=[order.equipment]))
            result.update(cursor)
        return result

    @classmethod
    def _repair_costs(cls, company, start, end, ids):
        "The cost of the repairs accepted in the month"
        pool = Pool()
        Repair = pool.get('hrp.equipment.repair')
        Part = pool.get('hrp.equipment.repair.part')
        repair = Repair.__table__()
        part = Part.__table__()
        cursor = Transaction().connection.cursor()
        start_at = dt.datetime.combine(start, dt.time())
        end_at = dt.datetime.combine(end, dt.time())
        result = defaultdict(Decimal)
        for sub_ids in grouped_slice(ids, CHUNK):
            where = (repair.equipment.in_(list(sub_ids))
                & (repair.state == 'closed')
                & (repair.accepted_at >= start_at)
                & (repair.accepted_at < end_at))
            cursor.execute(*repair.select(
                    repair.equipment,
                    Sum(Coalesce(repair.labour_cost, 0)
                        + Coalesce(repair.external_cost, 0)),
                    where=where, group_by=[repair.equipment]))
            for equipment_id, amount in cursor:
                result[equipment_id] += Decimal(str(amount or 0))
            cursor.execute(*repair.join(part,
                    condition=part.repair == repair.id).select(
                    repair.equipment, Sum(Coalesce(part.amount, 0)),
                    where=where, group_by=[repair.equipment]))
            for equipment_id, amount in cursor:
                result[equipment_id] += Decimal(str(amount or 0))
        return result

    @classmethod
    def _depreciations(cls, company, start, end, ids):
        "The depreciation of the devices' fixed assets (account_asset)"
        return {}

    @classmethod
    def _consumables_costs(cls, company, start, end, ids):
        "The materials the departments registered as used for the devices"
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Line = pool.get('hrp.consumption.line')
        consumption = Consumption.__table__()
        line = Line.__table__()
        cursor = Transaction().connection.cursor()
        result = {}
        for sub_ids in grouped_slice(ids, CHUNK):
            cursor.execute(*consumption.join(line,
                    condition=line.consumption == consumption.id).select(
                    consumption.hrp_equipment, Sum(Coalesce(line.amount, 0)),
                    where=consumption.hrp_equipment.in_(list(sub_ids))
                    & (consumption.state == 'done')
                    & (line.reverse_move == Null)
                    & (consumption.date >= start) & (consumption.date < end),
                    group_by=[consumption.hrp_equipment]))
            result.update(cursor)
        return result

    @classmethod
    def _downtimes(cls, start, end, ids):
        """{equipment id: hours} the devices were out of service for repairs
        in the month: from the report to the acceptance (or now)"""
        pool = Pool()
        Repair = pool.get('hrp.equipment.repair')
        repair = Repair.__table__()
        cursor = Transaction().connection.cursor()
        start_at = dt.datetime.combine(start, dt.time())
        end_at = dt.datetime.combine(end, dt.time())
        now = dt.datetime.now()
        periods = defaultdict(list)
        for sub_ids in grouped_slice(ids, CHUNK):
            cursor.execute(*repair.select(
                    repair.equipment, repair.reported_at, repair.accepted_at,
                    where=repair.equipment.in_(list(sub_ids))
                    & repair.out_of_service
                    & (repair.reported_at != Null)
                    & (repair.reported_at < end_at)
                    & repair.state.in_(
                        ['reported', 'assigned', 'in_progress', 'repaired',
                            'closed'])
                    & ((repair.accepted_at == Null)
                        | (repair.accepted_at > start_at))))
            for equipment_id, reported_at, accepted_at in cursor:
                begin = max(_datetime(reported_at), start_at)
                finish = min(_datetime(accepted_at) or now, end_at)
                if finish > begin:
                    periods[equipment_id].append((begin, finish))
        result = {}
        for equipment_id, spans in periods.items():
            # overlapping repairs count once
            spans.sort()
            seconds, (current_start, current_end) = 0, spans[0]
            for begin, finish in spans[1:]:
                if begin > current_end:
                    seconds += (current_end - current_start).total_seconds()
                    current_start, current_end = begin, finish
                else:
                    current_end = max(current_end, finish)
            seconds += (current_end - current_start).total_seconds()
            result[equipment_id] = (
                Decimal(int(seconds)) / 3600).quantize(HOURS)
        return result


class Consumption(metaclass=PoolMeta):
    __name__ = 'hrp.consumption'

    hrp_equipment = fields.Many2One(
        'hrp.equipment', "For Equipment", ondelete='RESTRICT',
        domain=[('department', '=', Eval('department', -1))],
        states={'readonly': Eval('state') != 'draft'},
        help="The large device the materials were used for (e.g. the "
        "injector syringes of the CT): their cost is the device's.")
