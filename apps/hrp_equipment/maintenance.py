# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Preventive maintenance (保养) of large equipment.

A plan says how often a device is maintained: every so many days, or every
so many examinations counted from the PACS usage feed, with the checklist
to go through.  The scheduled job *Generate Maintenance Work Orders*
creates the work order of each plan that falls due (a number of days
ahead for day plans); the engineer goes through the checklist, records the
cost and completes it.  The next work order counts from the completion.
The job *Check Overdue Maintenance* tells the engineers once about each
work order past its due date."""
import datetime as dt
from collections import defaultdict

from sql.aggregate import Sum

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, Workflow, fields,
    sequence_ordered)
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval, Id
from trytond.transaction import Transaction, without_check_access

from hrp_materials.mixin import context_companies

from .equipment import EquipmentRecordMixin, notify_users
from .exceptions import MaintenanceError
from .repair import engineer_group_id

INTERVALS = [
    ('days', "Days"),
    ('exams', "Examinations"),
    ]
STATES = [
    ('planned', "Planned"),
    ('in_progress', "In Progress"),
    ('done', "Done"),
    ('cancelled', "Cancelled"),
    ]
OPEN_STATES = ['planned', 'in_progress']
RESULTS = [
    (None, ""),
    ('ok', "OK"),
    ('fixed', "Adjusted"),
    ('failed', "Failed"),
    ('not_applicable', "Not Applicable"),
    ]
WORK = {'readonly': ~Eval('state').in_(OPEN_STATES)}


class Configuration(metaclass=PoolMeta):
    __name__ = 'hrp.configuration'

    maintenance_sequence = fields.Many2One(
        'ir.sequence', "Maintenance Sequence",
        domain=[('sequence_type', '=', Id(
                    'hrp_equipment', 'sequence_type_maintenance'))],
        help="Numbers the maintenance work orders (保养单); empty uses the "
        "module's.")

    @classmethod
    def default_maintenance_sequence(cls):
        return cls._equipment_sequence('sequence_maintenance')


class Plan(EquipmentRecordMixin, DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'hrp.equipment.maintenance.plan'
    __string__ = "Maintenance Plan"
    _equipment_record_field = 'name'

    company = fields.Many2One(
        'company.company', "Company", required=True)
    equipment = fields.Many2One(
        'hrp.equipment', "Equipment", required=True, ondelete='CASCADE',
        domain=[('company', '=', Eval('company', -1))])
    name = fields.Char(
        "Name", required=True,
        help="What the maintenance is, e.g. quarterly preventive "
        "maintenance (季度保养).")
    interval_type = fields.Selection(
        INTERVALS, "Interval", required=True, sort=False,
        help="Maintain every so many days, or every so many examinations "
        "counted from the PACS usage feed.")
    interval_days = fields.Integer(
        "Interval Days",
        states={
            'invisible': Eval('interval_type') != 'days',
            'required': Eval('interval_type') == 'days',
            })
    lead_days = fields.Integer(
        "Days Ahead",
        states={
            'invisible': Eval('interval_type') != 'days',
            },
        help="The work order is generated this many days before it is due.")
    interval_exams = fields.Integer(
        "Interval Examinations",
        states={
            'invisible': Eval('interval_type') != 'exams',
            'required': Eval('interval_type') == 'exams',
            })
    start_date = fields.Date(
        "Start Date", required=True,
        help="The intervals count from this day until the first work order "
        "is done.")
    engineer = fields.Many2One(
        'res.user', "Engineer", ondelete='RESTRICT',
        domain=[('groups', '=', Id('hrp_equipment',
                    'group_equipment_engineer'))],
        help="The engineer the work orders are assigned to.")
    checklist = fields.One2Many(
        'hrp.equipment.maintenance.plan.check', 'plan', "Checklist")
    orders = fields.One2Many(
        'hrp.equipment.maintenance', 'plan', "Work Orders", readonly=True)
    last_date = fields.Function(
        fields.Date("Last Done", help="The day the last work order was done."),
        'get_last_date')
    next_date = fields.Function(
        fields.Date(
            "Next Due",
            help="For a day plan, the day the next maintenance is due."),
        'get_next_date')
    exams_since = fields.Function(
        fields.Integer(
            "Examinations Since",
            help="The examinations the PACS counted since the last "
            "maintenance (or the start date)."),
        'get_exams_since')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('equipment')
        cls._order.insert(0, ('equipment', 'ASC'))

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_interval_type(cls):
        return 'days'

    @classmethod
    def default_lead_days(cls):
        return 7

    @classmethod
    def default_start_date(cls):
        return Pool().get('ir.date').today()

    def get_rec_name(self, name):
        return f'{self.equipment.rec_name}: {self.name}'

    @classmethod
    def validate_fields(cls, plans, field_names):
        super().validate_fields(plans, field_names)
        for plan in plans:
            name = f'interval_{plan.interval_type}'
            value = getattr(plan, name)
            if value is not None and value <= 0:
                raise MaintenanceError(gettext(
                        'hrp_equipment.msg_plan_interval',
                        plan=plan.rec_name,
                        field=cls.__names__(name)['field']))
            if (plan.interval_type == 'exams'
                    and not plan.equipment.pacs_device):
                raise MaintenanceError(gettext(
                        'hrp_equipment.msg_plan_no_pacs_device',
                        plan=plan.rec_name,
                        equipment=plan.equipment.rec_name))
            if plan.lead_days is not None and plan.lead_days < 0:
                raise MaintenanceError(gettext(
                        'hrp_equipment.msg_plan_lead_days',
                        plan=plan.rec_name))

    @classmethod
    def get_last_date(cls, plans, name):
        pool = Pool()
        Order = pool.get('hrp.equipment.maintenance')
        order = Order.__table__()
        cursor = Transaction().connection.cursor()
        result = {p.id: None for p in plans}
        cursor.execute(*order.select(
                order.plan, order.done_date,
                where=order.plan.in_(list(result))
                & (order.state == 'done'),
                order_by=[order.done_date.asc]))
        for plan_id, done_date in cursor:
            if isinstance(done_date, str):
                done_date = dt.date.fromisoformat(done_date)
            result[plan_id] = done_date
        return result

    @property
    def counted_from(self):
        "The day the current interval counts from"
        return max(filter(None, [self.last_date, self.start_date]))

    def get_next_date(self, name):
        if self.interval_type == 'days' and self.interval_days:
            return self.counted_from + dt.timedelta(days=self.interval_days)

    @classmethod
    def get_exams_since(cls, plans, name):
        pool = Pool()
        Usage = pool.get('his.pacs.usage')
        usage = Usage.__table__()
        cursor = Transaction().connection.cursor()
        result = {p.id: None for p in plans}
        for plan in plans:
            code = plan.equipment.pacs_device
            if plan.interval_type != 'exams' or not code:
                continue
            cursor.execute(*usage.select(
                    Sum(usage.exams),
                    where=(usage.company == plan.company.id)
                    & (usage.device == code)
                    & (usage.day > plan.counted_from)))
            exams, = cursor.fetchone()
            result[plan.id] = int(exams or 0)
        return result

    def is_due(self, today):
        "Whether the plan asks for a work order today, and its due date"
        if self.interval_type == 'days':
            due = self.next_date
            return due - dt.timedelta(days=self.lead_days or 0) <= today, due
        return (self.exams_since or 0) >= self.interval_exams, today

    @classmethod
    def generate_orders(cls, date=None):
        """Create the work order of each active plan that is due and has no
        open one (scheduled job).  Return the work orders created."""
        pool = Pool()
        Order = pool.get('hrp.equipment.maintenance')
        Date = pool.get('ir.date')
        created = []
        for company in context_companies():
            with Transaction().set_context(company=company.id), \
                    without_check_access():
                today = date or Date.today()
                plans = cls.search([
                        ('company', '=', company.id),
                        ('equipment.status', '!=', 'scrapped'),
                        ])
                busy = {o.plan.id for o in Order.search([
                            ('plan', 'in', [p.id for p in plans]),
                            ('state', 'in', OPEN_STATES),
                            ])}
                orders = []
                for plan in plans:
                    if plan.id in busy:
                        continue
                    due, due_date = plan.is_due(today)
                    if due:
                        orders.append(plan.get_order(due_date))
                Order.save(orders)
                Order.notify(orders, 'msg_maintenance_notify_planned')
                created.extend(orders)
        return created

    def get_order(self, due_date):
        pool = Pool()
        Order = pool.get('hrp.equipment.maintenance')
        Check = pool.get('hrp.equipment.maintenance.check')
        return Order(
            company=self.company,
            plan=self,
            equipment=self.equipment,
            due_date=due_date,
            engineer=self.engineer,
            checks=[Check(sequence=c.sequence, name=c.name)
                for c in self.checklist])


class PlanCheck(sequence_ordered(), ModelSQL, ModelView):
    __name__ = 'hrp.equipment.maintenance.plan.check'
    __string__ = "Maintenance Plan Check"

    plan = fields.Many2One(
        'hrp.equipment.maintenance.plan', "Plan", required=True,
        ondelete='CASCADE')
    name = fields.Char("Check", required=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('plan')


class Order(EquipmentRecordMixin, Workflow, ModelSQL, ModelView):
    __name__ = 'hrp.equipment.maintenance'
    __string__ = "Maintenance Work Order"
    _rec_name = 'number'

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    number = fields.Char("Number", readonly=True)
    plan = fields.Many2One(
        'hrp.equipment.maintenance.plan', "Plan", required=True,
        readonly=True, ondelete='RESTRICT')
    equipment = fields.Many2One(
        'hrp.equipment', "Equipment", required=True, readonly=True,
        ondelete='RESTRICT')
    department = fields.Function(
        fields.Many2One('hrp.department', "Department"),
        'on_change_with_department', searcher='search_department')
    due_date = fields.Date("Due Date", required=True, readonly=True)
    overdue = fields.Function(
        fields.Boolean("Overdue"), 'get_overdue', searcher='search_overdue')
    overdue_notified = fields.Boolean("Overdue Notified", readonly=True)
    engineer = fields.Many2One(
        'res.user', "Engineer", ondelete='RESTRICT',
        domain=[('groups', '=', Id('hrp_equipment',
                    'group_equipment_engineer'))],
        states=WORK)
    checks = fields.One2Many(
        'hrp.equipment.maintenance.check', 'order', "Checklist",
        states={'readonly': ~Eval('state').in_(OPEN_STATES)})
    notes = fields.Text("Notes", states=WORK)
    cost = Monetary(
        "Cost", currency='currency', digits='currency', states=WORK,
        help="Labour, materials and any service company's invoice.")
    external_vendor = fields.Many2One(
        'party.party', "Service Company", ondelete='RESTRICT', states=WORK,
        context={'company': Eval('company', -1)}, depends={'company'})
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    done_date = fields.Date("Done Date", readonly=True)
    done_by = fields.Many2One('res.user', "Done By", readonly=True)
    cancel_reason = fields.Text("Cancellation Reason", readonly=True)
    state = fields.Selection(
        STATES, "State", required=True, readonly=True, sort=False)
    state_string = state.translated('state')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    where=t.state.in_(OPEN_STATES)),
                Index(t, (t.plan, Index.Range())),
                })
        cls._order = [('due_date', 'ASC'), ('id', 'ASC')]
        cls._transitions |= {
            ('planned', 'in_progress'),
            ('in_progress', 'done'),
            ('planned', 'done'),
            ('planned', 'cancelled'),
            ('in_progress', 'cancelled'),
            }
        cls._buttons.update({
                'start': {
                    'invisible': Eval('state') != 'planned',
                    'icon': 'tryton-launch',
                    'depends': ['state'],
                    },
                'do': {
                    'invisible': ~Eval('state').in_(OPEN_STATES),
                    'icon': 'tryton-ok',
                    'depends': ['state'],
                    },
                'cancel': {
                    'invisible': ~Eval('state').in_(OPEN_STATES),
                    'icon': 'tryton-cancel',
                    'depends': ['state'],
                    },
                })

    @classmethod
    def default_state(cls):
        return 'planned'

    @classmethod
    def default_overdue_notified(cls):
        return False

    @fields.depends('company')
    def on_change_with_currency(self, name=None):
        return self.company.currency if self.company else None

    @fields.depends('equipment')
    def on_change_with_department(self, name=None):
        return self.equipment.department if self.equipment else None

    @classmethod
    def search_department(cls, name, clause):
        return [('equipment.department' + clause[0][len(name):],
                *clause[1:])]

    def get_overdue(self, name):
        Date = Pool().get('ir.date')
        with Transaction().set_context(company=self.company.id):
            today = Date.today()
        return self.state in OPEN_STATES and self.due_date < today

    @classmethod
    def search_overdue(cls, name, clause):
        Date = Pool().get('ir.date')
        _, operator, value = clause
        overdue = [
            ('state', 'in', OPEN_STATES),
            ('due_date', '<', Date.today()),
            ]
        if (operator == '=') == bool(value):
            return overdue
        return ['OR',
            ('state', 'not in', OPEN_STATES),
            ('due_date', '>=', Date.today()),
            ]

    @classmethod
    def create(cls, vlist):
        pool = Pool()
        Configuration = pool.get('hrp.configuration')
        sequence = Configuration(1).get_equipment_sequence(
            'maintenance_sequence')
        vlist = [v.copy() for v in vlist]
        for values in vlist:
            if not values.get('number'):
                with Transaction().set_context(
                        company=values.get('company')):
                    values['number'] = sequence.get()
        return super().create(vlist)

    @classmethod
    def validate_fields(cls, orders, field_names):
        super().validate_fields(orders, field_names)
        if field_names and 'cost' not in field_names:
            return
        for order in orders:
            if order.cost is not None and order.cost < 0:
                raise MaintenanceError(gettext(
                        'hrp_equipment.msg_maintenance_cost_negative',
                        order=order.rec_name, cost=order.cost))

    @classmethod
    def check_modification(cls, mode, orders, values=None, external=False):
        super().check_modification(
            mode, orders, values=values, external=external)
        if mode == 'delete':
            for order in orders:
                raise MaintenanceError(gettext(
                        'hrp_equipment.msg_maintenance_delete',
                        order=order.rec_name))

    @classmethod
    def copy(cls, orders, default=None):
        default = default.copy() if default is not None else {}
        for name in ['number', 'done_date', 'done_by', 'cancel_reason']:
            default.setdefault(name, None)
        default.setdefault('state', 'planned')
        default.setdefault('overdue_notified', False)
        return super().copy(orders, default=default)

    @classmethod
    def notify(cls, orders, message_id):
        """Tell the engineer of each work order (every engineer of the
        company when it has none)"""
        pool = Pool()
        Lang = pool.get('ir.lang')
        Repair = pool.get('hrp.equipment.repair')
        engineers = {}
        recipients = {}
        for order in orders:
            if order.engineer:
                recipients[order] = [order.engineer]
            else:
                if order.company not in engineers:
                    engineers[order.company] = Repair.engineers(order.company)
                recipients[order] = engineers[order.company]

        def texts(order):
            return gettext(f'hrp_equipment.{message_id}',
                number=order.number,
                plan=order.plan.rec_name,
                date=Lang.get().strftime(order.due_date)), None
        notify_users(recipients, 'act_maintenance_list', texts)

    @classmethod
    def check_overdue(cls, date=None):
        """Tell the engineers once about each work order past its due date
        (scheduled job).  Return the work orders."""
        Date = Pool().get('ir.date')
        overdue = []
        for company in context_companies():
            with Transaction().set_context(company=company.id), \
                    without_check_access():
                today = date or Date.today()
                orders = cls.search([
                        ('company', '=', company.id),
                        ('state', 'in', OPEN_STATES),
                        ('due_date', '<', today),
                        ('overdue_notified', '=', False),
                        ])
                cls.notify(orders, 'msg_maintenance_notify_overdue')
                cls.write(orders, {'overdue_notified': True})
                overdue.extend(orders)
        return overdue

    @classmethod
    @ModelView.button
    @Workflow.transition('in_progress')
    def start(cls, orders):
        pool = Pool()
        User = pool.get('res.user')
        user = Transaction().user
        if engineer_group_id() in User.get_groups():
            cls.write([o for o in orders if not o.engineer],
                {'engineer': user})

    @classmethod
    @ModelView.button
    @Workflow.transition('done')
    def do(cls, orders):
        pool = Pool()
        Date = pool.get('ir.date')
        for order in orders:
            unchecked = [c.name for c in order.checks if not c.result]
            if unchecked:
                raise MaintenanceError(gettext(
                        'hrp_equipment.msg_maintenance_unchecked',
                        order=order.rec_name,
                        checks=', '.join(unchecked)))
            if order.equipment.status == 'scrapped':
                raise MaintenanceError(gettext(
                        'hrp_equipment.msg_maintenance_scrapped',
                        order=order.rec_name,
                        equipment=order.equipment.rec_name))
        by_company = defaultdict(list)
        for order in orders:
            by_company[order.company].append(order)
        for company, c_orders in by_company.items():
            with Transaction().set_context(company=company.id):
                today = Date.today()
            cls.write(c_orders, {
                    'done_date': today,
                    'done_by': Transaction().user,
                    })

    @classmethod
    def _cancel_action(cls):
        pool = Pool()
        ModelData = pool.get('ir.model.data')
        Action = pool.get('ir.action')
        return Action.get_action_id(ModelData.get_id(
                'hrp_equipment', 'wizard_maintenance_cancel'))

    @classmethod
    @ModelView.button
    def cancel(cls, orders, reason=None):
        "Cancel the work orders for a reason (the dialog asks it)"
        if reason is None:
            return cls._cancel_action()
        if not reason.strip():
            raise MaintenanceError(gettext(
                    'hrp_equipment.msg_maintenance_cancel_reason',
                    orders=', '.join(o.rec_name for o in orders)))
        cls._cancel(orders)
        cls.write([o for o in orders if o.state == 'cancelled'],
            {'cancel_reason': reason.strip()})

    @classmethod
    @Workflow.transition('cancelled')
    def _cancel(cls, orders):
        pass


class Check(sequence_ordered(), ModelSQL, ModelView):
    __name__ = 'hrp.equipment.maintenance.check'
    __string__ = "Maintenance Check"

    order = fields.Many2One(
        'hrp.equipment.maintenance', "Work Order", required=True,
        ondelete='CASCADE')
    name = fields.Char("Check", required=True)
    result = fields.Selection(RESULTS, "Result", sort=False)
    note = fields.Char("Note")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('order')

    @classmethod
    def check_modification(cls, mode, checks, values=None, external=False):
        super().check_modification(
            mode, checks, values=values, external=external)
        for check in checks:
            if check.order.state not in OPEN_STATES:
                raise MaintenanceError(gettext(
                        'hrp_equipment.msg_maintenance_closed',
                        order=check.order.rec_name))


class Equipment(metaclass=PoolMeta):
    __name__ = 'hrp.equipment'

    maintenance_plans = fields.One2Many(
        'hrp.equipment.maintenance.plan', 'equipment', "Maintenance Plans")

    @classmethod
    def copy(cls, equipments, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('maintenance_plans', None)
        return super().copy(equipments, default=default)


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.extend([
                ('hrp.equipment.maintenance.plan|generate_orders',
                    "Generate Maintenance Work Orders"),
                ('hrp.equipment.maintenance|check_overdue',
                    "Check Overdue Maintenance"),
                ])
