# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Repairs (维修) of large equipment.

A clinical department reports a fault (device, symptom, urgency, photo);
the equipment engineers are notified, one is assigned, diagnoses, draws
spare parts from a store (done stock moves to the *Equipment Repairs*
location, costed at the part's cost price), records labour and external
service cost and completes the repair; the department accepts it, which
closes it, or sends it back.  Every step records who, when and why in the
repair's history.  A fault that takes the device out of service puts it
*Under Repair* until the last such repair is accepted or cancelled; the
downtime runs from the report to the acceptance."""
import datetime as dt
from decimal import Decimal

from trytond.i18n import gettext
from trytond.model import (
    Index, ModelSQL, ModelView, Workflow, fields)
from trytond.modules.currency.fields import Monetary
from trytond.modules.product import price_digits, round_price
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval, Id, If
from trytond.transaction import Transaction, without_check_access
from trytond.wizard import Button, StateTransition, StateView, Wizard

from .equipment import EquipmentRecordMixin, notify_users
from .exceptions import RepairError

STATES = [
    ('draft', "Draft"),
    ('reported', "Reported"),
    ('assigned', "Assigned"),
    ('in_progress', "In Repair"),
    ('repaired', "Awaiting Acceptance"),
    ('closed', "Closed"),
    ('cancelled', "Cancelled"),
    ]
OPEN_STATES = ['reported', 'assigned', 'in_progress', 'repaired']
URGENCIES = [
    ('normal', "Normal"),
    ('urgent', "Urgent"),
    ('critical', "Critical"),
    ]
CAUSES = [
    (None, ""),
    ('wear', "Wear and Ageing"),
    ('misuse', "Improper Use"),
    ('environment', "Environment (Power, Water, Temperature)"),
    ('software', "Software"),
    ('accessory', "Accessory or Consumable"),
    ('no_fault', "No Fault Found"),
    ('other', "Other"),
    ]
ACTIONS = [
    ('report', "Reported"),
    ('assign', "Assigned"),
    ('start', "Started"),
    ('draw_parts', "Parts Drawn"),
    ('complete', "Completed"),
    ('reject', "Acceptance Refused"),
    ('accept', "Accepted"),
    ('cancel', "Cancelled"),
    ]
# The dialogs asking for a reason (XML id of the wizard action) and the
# button they call with it
REASON_ACTIONS = {
    'wizard_repair_cancel': 'cancel',
    'wizard_repair_reject': 'reject',
    'wizard_maintenance_cancel': 'cancel',
    }
DRAFT = {'readonly': Eval('state') != 'draft'}
WORK = {'readonly': ~Eval('state').in_(['assigned', 'in_progress'])}


def _now():
    return dt.datetime.now().replace(microsecond=0)


def engineer_group_id():
    return Pool().get('ir.model.data').get_id(
        'hrp_equipment', 'group_equipment_engineer')


class Configuration(metaclass=PoolMeta):
    __name__ = 'hrp.configuration'

    repair_sequence = fields.Many2One(
        'ir.sequence', "Repair Sequence",
        domain=[('sequence_type', '=', Id(
                    'hrp_equipment', 'sequence_type_repair'))],
        help="Numbers the repair orders (维修单); empty uses the module's.")

    @classmethod
    def default_repair_sequence(cls):
        return cls._equipment_sequence('sequence_repair')

    @staticmethod
    def _equipment_sequence(xml_id):
        try:
            return Pool().get('ir.model.data').get_id('hrp_equipment', xml_id)
        except KeyError:
            return None

    def get_equipment_sequence(self, name):
        "The sequence of the field name, or the module's default"
        Sequence = Pool().get('ir.sequence')
        sequence = getattr(self, name)
        if not sequence:
            # repair_sequence: the module's sequence_repair
            kind = name[:-len('_sequence')]
            sequence = Sequence(self._equipment_sequence(f'sequence_{kind}'))
        return sequence


class Repair(EquipmentRecordMixin, Workflow, ModelSQL, ModelView):
    __name__ = 'hrp.equipment.repair'
    __string__ = "Equipment Repair"
    _rec_name = 'number'

    company = fields.Many2One(
        'company.company', "Company", required=True, states=DRAFT)
    number = fields.Char("Number", readonly=True)
    equipment = fields.Many2One(
        'hrp.equipment', "Equipment", required=True, ondelete='RESTRICT',
        domain=[('company', '=', Eval('company', -1))],
        states=DRAFT)
    department = fields.Many2One(
        'hrp.department', "Department", required=True, readonly=True,
        ondelete='RESTRICT',
        help="The department using the equipment: it reports the fault and "
        "accepts the repair.")
    urgency = fields.Selection(
        URGENCIES, "Urgency", required=True, sort=False, states=DRAFT)
    urgency_string = urgency.translated('urgency')
    symptom = fields.Text(
        "Symptom", required=True, states=DRAFT,
        help="What the department sees: error codes, noises, images.")
    photo = fields.Binary("Photo", states=DRAFT)
    out_of_service = fields.Boolean(
        "Out of Service", states=DRAFT,
        help="The device cannot be used until it is repaired: reporting "
        "puts it under repair.")
    reported_by = fields.Many2One('res.user', "Reported By", readonly=True)
    reported_at = fields.DateTime("Reported At", readonly=True)

    engineer = fields.Many2One(
        'res.user', "Engineer", ondelete='RESTRICT',
        domain=[('groups', '=', Id('hrp_equipment',
                    'group_equipment_engineer'))],
        states={
            'readonly': ~Eval('state').in_(['draft', 'reported']),
            'required': Eval('state').in_(
                ['assigned', 'in_progress', 'repaired', 'closed']),
            },
        help="The equipment engineer in charge of the repair.")
    assigned_at = fields.DateTime("Assigned At", readonly=True)
    started_at = fields.DateTime("Started At", readonly=True)
    diagnosis = fields.Text(
        "Diagnosis", states={
            'readonly': WORK['readonly'],
            'required': Eval('state').in_(['repaired', 'closed']),
            })
    cause = fields.Selection(CAUSES, "Cause", sort=False, states=WORK)
    cause_string = cause.translated('cause')
    work_done = fields.Text("Work Done", states=WORK)
    labour_hours = fields.Numeric(
        "Labour Hours", digits=(6, 2), states=WORK,
        help="The engineers' hours on the repair.")
    labour_cost = Monetary(
        "Labour Cost", currency='currency', digits='currency', states=WORK)
    external_vendor = fields.Many2One(
        'party.party', "External Service", ondelete='RESTRICT', states=WORK,
        context={'company': Eval('company', -1)}, depends={'company'},
        help="The manufacturer or service company that worked on the "
        "repair, if any.")
    external_cost = Monetary(
        "External Service Cost", currency='currency', digits='currency',
        states=WORK)
    parts = fields.One2Many(
        'hrp.equipment.repair.part', 'repair', "Spare Parts",
        states={
            'readonly': ~Eval('state').in_(['assigned', 'in_progress']),
            },
        depends={'company', 'equipment'})
    parts_cost = fields.Function(Monetary(
            "Parts Cost", currency='currency', digits='currency'),
        'get_costs')
    total_cost = fields.Function(Monetary(
            "Total Cost", currency='currency', digits='currency',
            help="Parts, labour and external service."),
        'get_costs')
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    completed_by = fields.Many2One('res.user', "Completed By", readonly=True)
    completed_at = fields.DateTime("Completed At", readonly=True)
    accepted_by = fields.Many2One('res.user', "Accepted By", readonly=True)
    accepted_at = fields.DateTime("Accepted At", readonly=True)
    acceptance_note = fields.Text(
        "Acceptance Note", states={
            'readonly': Eval('state') != 'repaired',
            })
    downtime_hours = fields.Function(fields.Numeric(
            "Downtime (Hours)", digits=(10, 1),
            help="From the report to the department's acceptance (or now "
            "while the repair is open)."),
        'get_downtime_hours')
    events = fields.One2Many(
        'hrp.equipment.repair.event', 'repair', "History", readonly=True)
    state = fields.Selection(
        STATES, "State", required=True, readonly=True, sort=False)
    state_string = state.translated('state')

    @classmethod
    def __setup__(cls):
        cls.number.search_unaccented = False
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    where=t.state.in_(OPEN_STATES)),
                Index(t, (t.equipment, Index.Range())),
                })
        cls._order = [
            ('reported_at', 'DESC NULLS FIRST'),
            ('id', 'DESC'),
            ]
        cls._transitions |= {
            ('draft', 'reported'),
            ('reported', 'assigned'),
            ('reported', 'in_progress'),
            ('assigned', 'in_progress'),
            ('in_progress', 'repaired'),
            ('repaired', 'in_progress'),
            ('repaired', 'closed'),
            ('draft', 'cancelled'),
            ('reported', 'cancelled'),
            ('assigned', 'cancelled'),
            }
        cls._buttons.update({
                'report': {
                    'invisible': Eval('state') != 'draft',
                    'icon': 'tryton-forward',
                    'depends': ['state'],
                    },
                'assign': {
                    'invisible': Eval('state') != 'reported',
                    'readonly': ~Eval('engineer'),
                    'icon': 'tryton-forward',
                    'depends': ['state', 'engineer'],
                    },
                'start': {
                    'invisible': ~Eval('state').in_(['reported', 'assigned']),
                    'icon': 'tryton-launch',
                    'depends': ['state'],
                    },
                'draw_parts': {
                    'invisible': Eval('state') != 'in_progress',
                    'icon': 'tryton-import',
                    'depends': ['state'],
                    },
                'complete': {
                    'invisible': Eval('state') != 'in_progress',
                    'icon': 'tryton-ok',
                    'depends': ['state'],
                    },
                'accept': {
                    'invisible': Eval('state') != 'repaired',
                    'icon': 'tryton-ok',
                    'depends': ['state'],
                    },
                'reject': {
                    'invisible': Eval('state') != 'repaired',
                    'icon': 'tryton-back',
                    'depends': ['state'],
                    },
                'cancel': {
                    'invisible': ~Eval('state').in_(
                        ['draft', 'reported', 'assigned']),
                    'icon': 'tryton-cancel',
                    'depends': ['state'],
                    },
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_state(cls):
        return 'draft'

    @classmethod
    def default_urgency(cls):
        return 'normal'

    @classmethod
    def default_out_of_service(cls):
        return True

    @fields.depends('company')
    def on_change_with_currency(self, name=None):
        return self.company.currency if self.company else None

    @fields.depends('equipment')
    def on_change_equipment(self):
        self.department = self.equipment.department if self.equipment else None

    @classmethod
    def get_costs(cls, repairs, names):
        result = {n: {} for n in names}
        for repair in repairs:
            currency = repair.company.currency
            parts = currency.round(sum(
                    (p.amount or Decimal(0) for p in repair.parts),
                    Decimal(0)))
            if 'parts_cost' in names:
                result['parts_cost'][repair.id] = parts
            if 'total_cost' in names:
                result['total_cost'][repair.id] = currency.round(
                    parts + (repair.labour_cost or Decimal(0))
                    + (repair.external_cost or Decimal(0)))
        return result

    def get_downtime_hours(self, name):
        if not self.reported_at:
            return None
        end = self.accepted_at
        if not end:
            if self.state == 'cancelled':
                end = self.write_date or self.reported_at
            else:
                end = _now()
        seconds = Decimal(int((end - self.reported_at).total_seconds()))
        return (seconds / 3600).quantize(Decimal('0.1'))

    @classmethod
    def preprocess_values(cls, mode, values):
        pool = Pool()
        Equipment = pool.get('hrp.equipment')
        values = super().preprocess_values(mode, values)
        if values.get('equipment') is not None:
            # the department follows the device
            values['department'] = Equipment(
                values['equipment']).department.id
        return values

    @classmethod
    def validate_fields(cls, repairs, field_names):
        super().validate_fields(repairs, field_names)
        for repair in repairs:
            for name in ['labour_hours', 'labour_cost', 'external_cost']:
                if field_names and name not in field_names:
                    continue
                value = getattr(repair, name)
                if value is not None and value < 0:
                    raise RepairError(gettext(
                            'hrp_equipment.msg_repair_negative',
                            repair=repair.rec_name,
                            field=cls.__names__(name)['field'],
                            value=value))

    @classmethod
    def create(cls, vlist):
        repairs = super().create(vlist)
        cls.check_equipment_usable(repairs)
        return repairs

    @classmethod
    def check_modification(cls, mode, repairs, values=None, external=False):
        super().check_modification(
            mode, repairs, values=values, external=external)
        if mode == 'delete':
            for repair in repairs:
                if repair.state not in {'draft', 'cancelled'} \
                        or repair.events:
                    raise RepairError(gettext(
                            'hrp_equipment.msg_repair_delete',
                            repair=repair.rec_name))

    @classmethod
    def copy(cls, repairs, default=None):
        default = default.copy() if default is not None else {}
        for name in ['number', 'reported_by', 'reported_at', 'engineer',
                'assigned_at', 'started_at', 'diagnosis', 'cause',
                'work_done', 'labour_hours', 'labour_cost', 'external_vendor',
                'external_cost', 'parts', 'completed_by', 'completed_at',
                'accepted_by', 'accepted_at', 'acceptance_note', 'events']:
            default.setdefault(name, None)
        return super().copy(repairs, default=default)

    @classmethod
    def check_equipment_usable(cls, repairs):
        "Refuse repairs of scrapped devices"
        for repair in repairs:
            if repair.equipment.status == 'scrapped':
                raise RepairError(gettext(
                        'hrp_equipment.msg_repair_scrapped',
                        repair=repair.rec_name,
                        equipment=repair.equipment.rec_name))

    # History and notifications

    @classmethod
    def _log(cls, repairs, action, note=None, state=None):
        Event = Pool().get('hrp.equipment.repair.event')
        user = Transaction().user
        now = _now()
        with without_check_access():
            Event.create([{
                        'repair': r.id,
                        'action': action,
                        'state': state or r.state,
                        'user': user,
                        'date': now,
                        'note': note,
                        } for r in repairs])

    @classmethod
    def engineers(cls, company):
        "The active equipment engineers of the company"
        User = Pool().get('res.user')
        with without_check_access():
            return User.search([
                    ('groups', '=', engineer_group_id()),
                    ('companies', '=', company.id),
                    ])

    def department_staff(self):
        "The users of the device's department: members, head nurse, director"
        department = self.department
        return set(department.members) | {
            u for u in [department.head_nurse, department.director] if u}

    @classmethod
    def notify(cls, recipients, message_id):
        """Send the notification message_id about each repair to its
        recipients ({repair: users}), except to the user acting"""
        def texts(repair):
            label = gettext(
                f'hrp_equipment.{message_id}',
                number=repair.number,
                equipment=repair.equipment.rec_name,
                department=repair.department.rec_name)
            return label, f'{repair.urgency_string}: {repair.symptom}'[:200]
        notify_users(recipients, 'act_repair_list', texts,
            skip_acting_user=True)

    # Equipment status

    @classmethod
    def _take_out_of_service(cls, repairs):
        Equipment = Pool().get('hrp.equipment')
        for repair in repairs:
            equipment = repair.equipment
            if repair.out_of_service and equipment.status != 'under_repair':
                with without_check_access():
                    Equipment.change_status([equipment], 'under_repair',
                        gettext('hrp_equipment.msg_repair_status_reason',
                            repair=repair.number, symptom=repair.symptom))

    @classmethod
    def _put_back_in_service(cls, repairs, message_id):
        """Put back in use the devices of the out-of-service repairs that
        no other open out-of-service repair holds"""
        Equipment = Pool().get('hrp.equipment')
        for repair in repairs:
            equipment = Equipment(repair.equipment.id)
            if not repair.out_of_service \
                    or equipment.status != 'under_repair':
                continue
            others = cls.search([
                    ('equipment', '=', equipment.id),
                    ('out_of_service', '=', True),
                    ('state', 'in', OPEN_STATES),
                    ('id', '!=', repair.id),
                    ])
            if not others:
                with without_check_access():
                    Equipment.change_status([equipment], 'in_use',
                        gettext(f'hrp_equipment.{message_id}',
                            repair=repair.number))

    # Buttons

    @classmethod
    @ModelView.button
    @Workflow.transition('reported')
    def report(cls, repairs):
        pool = Pool()
        Configuration = pool.get('hrp.configuration')
        cls.check_equipment_usable(repairs)
        sequence = Configuration(1).get_equipment_sequence('repair_sequence')
        now = _now()
        for repair in repairs:
            if not repair.number:
                with Transaction().set_context(company=repair.company.id):
                    repair.number = sequence.get()
            repair.reported_by = Transaction().user
            repair.reported_at = now
        cls.save(repairs)
        cls._take_out_of_service(repairs)
        cls._log(repairs, 'report', state='reported')
        cls.notify({r: cls.engineers(r.company) for r in repairs},
            'msg_repair_notify_reported')

    @classmethod
    @ModelView.button
    @Workflow.transition('assigned')
    def assign(cls, repairs):
        for repair in repairs:
            if not repair.engineer:
                raise RepairError(gettext(
                        'hrp_equipment.msg_repair_no_engineer',
                        repair=repair.rec_name))
        cls.write(repairs, {'assigned_at': _now()})
        for repair in repairs:
            cls._log([repair], 'assign', note=repair.engineer.rec_name,
                state='assigned')
        cls.notify({r: [r.engineer] for r in repairs},
            'msg_repair_notify_assigned')

    @classmethod
    @ModelView.button
    @Workflow.transition('in_progress')
    def start(cls, repairs):
        pool = Pool()
        User = pool.get('res.user')
        user = User(Transaction().user)
        now = _now()
        for repair in repairs:
            if not repair.engineer:
                # the engineer starting an unassigned repair takes it
                if engineer_group_id() not in User.get_groups():
                    raise RepairError(gettext(
                            'hrp_equipment.msg_repair_no_engineer',
                            repair=repair.rec_name))
                repair.engineer = user
                repair.assigned_at = now
            repair.started_at = now
        cls.save(repairs)
        cls._log(repairs, 'start', state='in_progress')

    @classmethod
    @ModelView.button
    def draw_parts(cls, repairs):
        "Issue the spare parts not yet drawn from their stores"
        for repair in repairs:
            if repair.state != 'in_progress':
                raise RepairError(gettext(
                        'hrp_equipment.msg_repair_draw_state',
                        repair=repair.rec_name,
                        state=repair.state_string))
        cls.check_equipment_usable(repairs)
        Part = Pool().get('hrp.equipment.repair.part')
        drawn = Part.draw([p for r in repairs for p in r.parts if not p.move])
        for repair in repairs:
            parts = [p for p in drawn if p.repair == repair]
            if parts:
                cls._log([repair], 'draw_parts', note='\n'.join(
                        p.summary() for p in parts))

    @classmethod
    @ModelView.button
    @Workflow.transition('repaired')
    def complete(cls, repairs):
        for repair in repairs:
            if not (repair.diagnosis or '').strip():
                raise RepairError(gettext(
                        'hrp_equipment.msg_repair_no_diagnosis',
                        repair=repair.rec_name))
        cls.draw_parts(repairs)
        cls.write(repairs, {
                'completed_by': Transaction().user,
                'completed_at': _now(),
                })
        cls._log(repairs, 'complete', state='repaired')
        cls.notify({r: r.department_staff() for r in repairs},
            'msg_repair_notify_repaired')

    @classmethod
    def check_acceptance(cls, repairs):
        """Only the device's department accepts a repair, never the
        engineer who did it"""
        pool = Pool()
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        transaction = Transaction()
        if transaction.user == 0:
            return
        admin = ModelData.get_id('hrp_materials', 'group_hrp_admin')
        departments = set(User.get_hrp_departments())
        for repair in repairs:
            if repair.engineer and repair.engineer.id == transaction.user:
                raise RepairError(gettext(
                        'hrp_equipment.msg_repair_accept_engineer',
                        repair=repair.rec_name))
            if (repair.department.id not in departments
                    and admin not in User.get_groups()):
                raise RepairError(gettext(
                        'hrp_equipment.msg_repair_accept_department',
                        repair=repair.rec_name,
                        department=repair.department.rec_name))

    @classmethod
    @ModelView.button
    def accept(cls, repairs):
        "The department accepts the repair, which closes it"
        repairs = [r for r in repairs if r.state == 'repaired']
        cls.check_acceptance(repairs)
        now = _now()
        for repair in repairs:
            repair.accepted_by = Transaction().user
            repair.accepted_at = now
        cls.save(repairs)
        cls.close(repairs)
        cls._closed(repairs)
        for repair in repairs:
            cls._log([repair], 'accept', note=repair.acceptance_note,
                state='closed')
        cls.notify({r: [r.engineer] for r in repairs},
            'msg_repair_notify_accepted')

    @classmethod
    @Workflow.transition('closed')
    def close(cls, repairs):
        "Close the accepted repairs; refuse those not accepted"
        for repair in repairs:
            if not repair.accepted_at or not repair.accepted_by:
                raise RepairError(gettext(
                        'hrp_equipment.msg_repair_close_unaccepted',
                        repair=repair.rec_name,
                        department=repair.department.rec_name))

    @classmethod
    def _closed(cls, repairs):
        "Once closed, the devices no open repair holds are back in use"
        cls._put_back_in_service(repairs, 'msg_repair_back_accepted')

    @classmethod
    def _reason_button(cls, repairs, button, reason):
        pool = Pool()
        ModelData = pool.get('ir.model.data')
        Action = pool.get('ir.action')
        if reason is None:
            return Action.get_action_id(ModelData.get_id(
                    'hrp_equipment', f'wizard_repair_{button}'))
        if not reason.strip():
            raise RepairError(gettext(
                    'hrp_equipment.msg_repair_reason',
                    repairs=', '.join(r.rec_name for r in repairs)))

    @classmethod
    @ModelView.button
    def reject(cls, repairs, reason=None):
        "The department refuses the repair: back to the engineer"
        action = cls._reason_button(repairs, 'reject', reason)
        if action:
            return action
        repairs = [r for r in repairs if r.state == 'repaired']
        cls.check_acceptance(repairs)
        cls._set_in_progress_again(repairs)
        cls._log(repairs, 'reject', note=reason.strip(),
            state='in_progress')
        cls.notify({r: [r.engineer] for r in repairs},
            'msg_repair_notify_rejected')

    @classmethod
    @Workflow.transition('in_progress')
    def _set_in_progress_again(cls, repairs):
        cls.write(repairs, {'completed_by': None, 'completed_at': None})

    @classmethod
    @ModelView.button
    def cancel(cls, repairs, reason=None):
        action = cls._reason_button(repairs, 'cancel', reason)
        if action:
            return action
        repairs = [r for r in repairs
            if r.state in {'draft', 'reported', 'assigned'}]
        cls._set_cancelled(repairs)
        cls._log(repairs, 'cancel', note=reason.strip(), state='cancelled')
        cls._put_back_in_service(
            [r for r in repairs if r.reported_at],
            'msg_repair_back_cancelled')
        cls.notify({r: [r.engineer] for r in repairs if r.engineer},
            'msg_repair_notify_cancelled')

    @classmethod
    @Workflow.transition('cancelled')
    def _set_cancelled(cls, repairs):
        pass


class RepairPart(ModelSQL, ModelView):
    __name__ = 'hrp.equipment.repair.part'
    __string__ = "Repair Spare Part"

    repair = fields.Many2One(
        'hrp.equipment.repair', "Repair", required=True, ondelete='CASCADE')
    product = fields.Many2One(
        'product.product', "Part", required=True, ondelete='RESTRICT',
        domain=[('type', '=', 'goods')],
        context={'company': Eval('company', -1)},
        states={'readonly': Bool(Eval('move'))},
        depends={'company'})
    quantity = fields.Float(
        "Quantity", digits='unit', required=True,
        states={'readonly': Bool(Eval('move'))})
    unit = fields.Many2One(
        'product.uom', "Unit", required=True, ondelete='RESTRICT',
        domain=[If(Bool(Eval('product_uom_category')),
                ('category', '=', Eval('product_uom_category', -1)),
                ())],
        states={'readonly': Bool(Eval('move'))})
    product_uom_category = fields.Function(
        fields.Many2One('product.uom.category', "Product UoM Category"),
        'on_change_with_product_uom_category')
    store = fields.Many2One(
        'stock.location', "Store", required=True, ondelete='RESTRICT',
        domain=[('type', '=', 'storage')],
        states={'readonly': Bool(Eval('move'))},
        help="The store the part is drawn from.")
    lot = fields.Many2One(
        'stock.lot', "Lot", ondelete='RESTRICT',
        domain=[('product', '=', Eval('product', -1))],
        states={'readonly': Bool(Eval('move'))})
    move = fields.Many2One(
        'stock.move', "Stock Move", readonly=True, ondelete='RESTRICT')
    unit_cost = Monetary(
        "Unit Cost", currency='currency', digits=price_digits,
        readonly=True)
    amount = Monetary(
        "Amount", currency='currency', digits='currency', readonly=True)
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    company = fields.Function(
        fields.Many2One('company.company', "Company"),
        'on_change_with_company')
    drawn = fields.Function(fields.Boolean("Drawn"), 'get_drawn')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('repair')

    @fields.depends('repair', '_parent_repair.company')
    def on_change_with_company(self, name=None):
        return self.repair.company if self.repair else None

    @fields.depends('repair', '_parent_repair.company')
    def on_change_with_currency(self, name=None):
        if self.repair and self.repair.company:
            return self.repair.company.currency

    @fields.depends('product')
    def on_change_with_product_uom_category(self, name=None):
        return self.product.default_uom.category if self.product else None

    @fields.depends('product', 'unit')
    def on_change_product(self):
        if self.product and (not self.unit
                or self.unit.category != self.product.default_uom.category):
            self.unit = self.product.default_uom

    def get_drawn(self, name):
        return bool(self.move)

    def format_quantity(self):
        Lang = Pool().get('ir.lang')
        return Lang.get().format_number_symbol(
            self.quantity, self.unit, digits=self.unit.digits)

    def summary(self):
        return f'{self.product.rec_name} × {self.format_quantity()}'

    @classmethod
    def validate_fields(cls, parts, field_names):
        super().validate_fields(parts, field_names)
        for part in parts:
            if part.quantity is not None and part.quantity <= 0:
                raise RepairError(gettext(
                        'hrp_equipment.msg_repair_part_quantity',
                        part=part.product.rec_name,
                        repair=part.repair.rec_name))
            if part.unit.category != part.product.default_uom.category:
                raise RepairError(gettext(
                        'hrp_equipment.msg_repair_part_unit',
                        part=part.product.rec_name,
                        unit=part.unit.rec_name))

    @classmethod
    def check_modification(cls, mode, parts, values=None, external=False):
        super().check_modification(
            mode, parts, values=values, external=external)
        if mode == 'create':
            Pool().get('hrp.equipment.repair').check_equipment_usable(
                {p.repair for p in parts})
        if mode in {'write', 'delete'}:
            for part in parts:
                if part.move and (mode == 'delete' or (
                            values.keys() - {'unit_cost', 'amount',
                                'move'})):
                    raise RepairError(gettext(
                            'hrp_equipment.msg_repair_part_drawn',
                            part=part.product.rec_name,
                            repair=part.repair.rec_name))

    @classmethod
    def copy(cls, parts, default=None):
        default = default.copy() if default is not None else {}
        for name in ['move', 'unit_cost', 'amount']:
            default.setdefault(name, None)
        return super().copy(parts, default=default)

    @classmethod
    def repair_location(cls):
        "The location spare parts go to"
        pool = Pool()
        Location = pool.get('stock.location')
        ModelData = pool.get('ir.model.data')
        return Location(ModelData.get_id(
                'hrp_equipment', 'location_repair'))

    def get_move(self, today):
        Move = Pool().get('stock.move')
        repair = self.repair
        return Move(
            company=repair.company,
            product=self.product,
            unit=self.unit,
            quantity=self.quantity,
            lot=self.lot,
            from_location=self.store,
            to_location=self.repair_location(),
            planned_date=today,
            effective_date=today,
            origin=self,
            )

    @classmethod
    def draw(cls, parts):
        """Post the parts' stock moves out of their stores: all or nothing,
        refused when a store does not hold the quantity.  Return the parts
        drawn."""
        pool = Pool()
        Move = pool.get('stock.move')
        Date = pool.get('ir.date')
        if not parts:
            return []
        company = parts[0].repair.company
        with Transaction().set_context(company=company.id):
            today = Date.today()
        moves = [p.get_move(today) for p in parts]
        with without_check_access(), \
                Transaction().set_context(company=company.id):
            Move.save(moves)
            if not Move.assign_try(moves, grouping=('product', 'lot')):
                # the first part its store cannot cover; nothing is kept
                for part, move in zip(parts, moves):
                    if move.state != 'assigned':
                        raise RepairError(gettext(
                                'hrp_equipment.msg_repair_part_stock',
                                part=part.product.rec_name,
                                store=part.store.rec_name,
                                quantity=part.format_quantity(),
                                repair=part.repair.rec_name))
            Move.do(moves)
        to_write = []
        for part, move in zip(parts, moves):
            unit_cost = move.cost_price
            if unit_cost is None:
                unit_cost = part.product.get_multivalue(
                    'cost_price', company=company.id)
            unit_cost = round_price(unit_cost or Decimal(0))
            to_write.extend([[part], {
                        'move': move.id,
                        'unit_cost': unit_cost,
                        'amount': company.currency.round(
                            Decimal(str(move.internal_quantity))
                            * unit_cost),
                        }])
        cls.write(*to_write)
        return cls.browse(parts)


class RepairEvent(ModelSQL, ModelView):
    __name__ = 'hrp.equipment.repair.event'
    __string__ = "Repair History"

    repair = fields.Many2One(
        'hrp.equipment.repair', "Repair", required=True, ondelete='CASCADE',
        readonly=True)
    action = fields.Selection(
        ACTIONS, "Action", required=True, readonly=True, sort=False)
    action_string = action.translated('action')
    state = fields.Selection(
        STATES, "State", required=True, readonly=True, sort=False,
        help="The state of the repair after the action.")
    state_string = state.translated('state')
    user = fields.Many2One('res.user', "User", required=True, readonly=True)
    date = fields.DateTime("Date", required=True, readonly=True)
    note = fields.Text("Note", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('repair')
        cls._order = [('date', 'ASC'), ('id', 'ASC')]

    @classmethod
    def check_modification(cls, mode, events, values=None, external=False):
        super().check_modification(
            mode, events, values=values, external=external)
        if external:
            raise RepairError(gettext(
                    'hrp_equipment.msg_repair_event_readonly'))


class ReasonStart(ModelView):
    __name__ = 'hrp.equipment.reason.start'
    __string__ = "Reason"

    reason = fields.Text(
        "Reason", required=True,
        help="It is kept in the record's history.")


class Reason(Wizard):
    """Ask the reason of a cancellation or a refused acceptance, then press
    the button of the dialog's action with it"""
    __name__ = 'hrp.equipment.reason'

    start = StateView('hrp.equipment.reason.start',
        'hrp_equipment.reason_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("OK", 'apply', 'tryton-ok', default=True),
            ])
    apply = StateTransition()

    def _button(self):
        ModelData = Pool().get('ir.model.data')
        action_id = Transaction().context.get('action_id')
        for xml_id, button in REASON_ACTIONS.items():
            if action_id == ModelData.get_id('hrp_equipment', xml_id):
                return button
        raise RepairError(gettext('hrp_equipment.msg_reason_action'))

    def transition_apply(self):
        getattr(self.model, self._button())(
            self.records, reason=self.start.reason or '')
        return 'end'

    def end(self):
        return 'reload'


class Move(metaclass=PoolMeta):
    __name__ = 'stock.move'

    @classmethod
    def _get_origin(cls):
        return super()._get_origin() + ['hrp.equipment.repair.part']


class Equipment(metaclass=PoolMeta):
    __name__ = 'hrp.equipment'

    repairs = fields.One2Many(
        'hrp.equipment.repair', 'equipment', "Repairs", readonly=True)

    @classmethod
    def copy(cls, equipments, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('repairs', None)
        return super().copy(equipments, default=default)
