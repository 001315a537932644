# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The large-equipment register (大型设备台账) and its status history.

A device's status changes only through its status buttons (or
``Equipment.change_status`` from server code); each change records who made
it, when and why in ``hrp.equipment.status_change``.  Scrapped is final."""
import datetime as dt

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, ModelSQL, ModelView, Unique, Workflow, fields)
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction, without_check_access
from trytond.wizard import Button, StateTransition, StateView, Wizard

from hrp_materials.mixin import CodeNameMixin

from .exceptions import (
    EquipmentDeleteError, EquipmentStatusError, EquipmentValidationError)

CATEGORIES = [
    ('ct', "CT"),
    ('mri', "MRI"),
    ('pet_ct', "PET-CT"),
    ('dsa', "DSA"),
    ('dr', "DR"),
    ('ultrasound', "Ultrasound"),
    ('linear_accelerator', "Linear Accelerator"),
    ('endoscopy', "Endoscopy"),
    ('ventilator', "Ventilator"),
    ('other', "Other"),
    ]

STATUSES = [
    ('in_use', "In Use"),
    ('idle', "Idle"),
    ('under_repair', "Under Repair"),
    ('scrapped', "Scrapped"),
    ]
FINAL_STATUSES = {'scrapped'}

# The button moving a device to each status; its dialog is the wizard
# action with the XML id ``wizard_<button>``.
STATUS_BUTTONS = {
    'in_use': 'use',
    'idle': 'idle',
    'under_repair': 'repair',
    'scrapped': 'scrap',
    }


def notify_users(recipients, action_xml_id, texts, skip_acting_user=False):
    """Send Tryton notifications about records: recipients is {record:
    users}; texts(record) returns the (label, description) of a record, read
    again in each user's language.  The notifications open the action
    action_xml_id of this module; inactive users (and, with
    skip_acting_user, the user acting) get none."""
    pool = Pool()
    Notification = pool.get('res.notification')
    ModelData = pool.get('ir.model.data')
    action_id = ModelData.get_id('hrp_equipment', action_xml_id)
    me = Transaction().user
    notifications = []
    for record, users in recipients.items():
        for user in sorted(users, key=lambda u: u.id):
            if not user.active or (skip_acting_user and user.id == me):
                continue
            language = user.language.code if user.language else None
            with Transaction().set_context(language=language):
                label, description = texts(record.__class__(record.id))
            notifications.append(Notification(
                    user=user,
                    label=label,
                    description=description,
                    icon='tryton-notification',
                    model=record.__name__,
                    records=str([record.id]),
                    action=action_id))
    with without_check_access():
        Notification.save(notifications)


class EquipmentRecordMixin:
    """The name of a record about a device: its number (or name, as the
    class's _equipment_record_field says) then the device's"""
    __slots__ = ()
    _equipment_record_field = 'number'

    def get_rec_name(self, name):
        value = (getattr(self, self._equipment_record_field)
            or f'({self.id})')
        return f'{value} {self.equipment.rec_name}'

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        bool_op = 'AND' if operator.startswith('!') else 'OR'
        return [bool_op,
            (cls._equipment_record_field, operator, operand, *extra),
            ('equipment.rec_name', operator, operand, *extra),
            ]


class Equipment(
        CodeNameMixin, DeactivableMixin, Workflow, ModelSQL, ModelView):
    __name__ = 'hrp.equipment'
    __string__ = "Equipment"
    _rec_name_search_fields = ['code', 'name', 'serial_number']
    _transition_state = 'status'

    company = fields.Many2One(
        'company.company', "Company", required=True, ondelete='RESTRICT')
    code = fields.Char(
        "Asset Code", required=True, strip=True,
        help="The hospital's asset code (资产编号), unique in the company.")
    name = fields.Char("Name", required=True)
    category = fields.Selection(
        CATEGORIES, "Category", required=True, sort=False)
    category_string = category.translated('category')
    model = fields.Char(
        "Model", strip=True,
        help="The manufacturer's model (型号).")
    manufacturer = fields.Many2One(
        'party.party', "Manufacturer", ondelete='RESTRICT',
        context={
            'company': Eval('company', -1),
            },
        depends={'company'})
    serial_number = fields.Char(
        "Serial Number", strip=True,
        help="The manufacturer's serial number of the unit.")
    pacs_device = fields.Char(
        "PACS Device", strip=True,
        help="The device's code at the PACS (AE title or station): its "
        "examinations and hours are read from the PACS usage feed.")
    department = fields.Many2One(
        'hrp.department', "Department", required=True, ondelete='RESTRICT',
        domain=[('company', '=', Eval('company', -1))],
        help="The department that uses the equipment and answers for it.")
    location = fields.Char(
        "Location",
        help="Where the equipment stands: building, floor and room.")
    commissioning_date = fields.Date(
        "Commissioning Date",
        help="The date the equipment was put into service (启用日期).")
    purchase_cost = Monetary(
        "Purchase Cost", currency='currency', digits='currency')
    currency = fields.Function(
        fields.Many2One('currency.currency', "Currency"),
        'on_change_with_currency')
    status = fields.Selection(
        STATUSES, "Status", required=True, readonly=True, sort=False,
        help="Changed with the status buttons, which ask for the reason.")
    status_string = status.translated('status')
    status_changes = fields.One2Many(
        'hrp.equipment.status_change', 'equipment', "Status History",
        readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('code_unique', Unique(t, t.company, t.code),
                'hrp_equipment.msg_equipment_code_unique'),
            ('pacs_device_unique', Unique(t, t.company, t.pacs_device),
                'hrp_equipment.msg_equipment_pacs_device_unique'),
            ]
        cls._order.insert(0, ('code', 'ASC'))
        # scrapped equipment is inactive, hence read-only
        cls.active.readonly = True
        cls.active.help = "Scrapped equipment is inactive and read-only."
        cls._transitions |= {
            (from_, to) for from_, _ in STATUSES for to, _ in STATUSES
            if from_ != to and from_ not in FINAL_STATUSES}
        cls._buttons.update({
                'use': {
                    'invisible': Eval('status').in_(['in_use', 'scrapped']),
                    'icon': 'tryton-ok',
                    'depends': ['status'],
                    },
                'idle': {
                    'invisible': Eval('status').in_(['idle', 'scrapped']),
                    'icon': 'tryton-back',
                    'depends': ['status'],
                    },
                'repair': {
                    'invisible': Eval('status').in_(
                        ['under_repair', 'scrapped']),
                    'icon': 'tryton-settings',
                    'depends': ['status'],
                    },
                'scrap': {
                    'invisible': Eval('status') == 'scrapped',
                    'icon': 'tryton-delete',
                    'depends': ['status'],
                    },
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_status(cls):
        return 'in_use'

    @fields.depends('company')
    def on_change_with_currency(self, name=None):
        return self.company.currency if self.company else None

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if mode == 'create' and values.get('status') in FINAL_STATUSES:
            # registering equipment scrapped before it was recorded
            values['active'] = False
        return values

    @classmethod
    def validate_fields(cls, equipments, field_names):
        super().validate_fields(equipments, field_names)
        cls.check_purchase_cost(equipments, field_names)
        cls.check_commissioning_date(equipments, field_names)

    @classmethod
    def check_purchase_cost(cls, equipments, field_names=None):
        if field_names and 'purchase_cost' not in field_names:
            return
        for equipment in equipments:
            if equipment.purchase_cost is not None \
                    and equipment.purchase_cost < 0:
                raise EquipmentValidationError(gettext(
                        'hrp_equipment.msg_equipment_purchase_cost_negative',
                        equipment=equipment.rec_name,
                        cost=equipment.purchase_cost))

    @classmethod
    def check_commissioning_date(cls, equipments, field_names=None):
        if field_names and 'commissioning_date' not in field_names:
            return
        Date = Pool().get('ir.date')
        for equipment in equipments:
            if not equipment.commissioning_date:
                continue
            with Transaction().set_context(company=equipment.company.id):
                today = Date.today()
            if equipment.commissioning_date > today:
                raise EquipmentValidationError(gettext(
                        'hrp_equipment.msg_equipment_commissioning_future',
                        equipment=equipment.rec_name,
                        date=equipment.commissioning_date))

    @classmethod
    def check_modification(cls, mode, equipments, values=None,
            external=False):
        super().check_modification(
            mode, equipments, values=values, external=external)
        if mode == 'write' and external and 'active' in values:
            for equipment in equipments:
                if equipment.active != values['active']:
                    raise EquipmentStatusError(gettext(
                            'hrp_equipment.msg_equipment_status_button',
                            equipment=equipment.rec_name))
        if mode == 'write' and 'status' in values:
            for equipment in equipments:
                if equipment.status == values['status']:
                    continue
                if equipment.status in FINAL_STATUSES:
                    raise EquipmentStatusError(gettext(
                            'hrp_equipment.msg_equipment_scrapped',
                            equipment=equipment.rec_name))
                if external:
                    raise EquipmentStatusError(gettext(
                            'hrp_equipment.msg_equipment_status_button',
                            equipment=equipment.rec_name))
        elif mode == 'delete':
            for equipment in equipments:
                if equipment.status_changes:
                    raise EquipmentDeleteError(gettext(
                            'hrp_equipment.msg_equipment_delete_history',
                            equipment=equipment.rec_name))

    @classmethod
    def copy(cls, equipments, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('serial_number', None)
        default.setdefault('pacs_device', None)
        default.setdefault('status_changes', None)
        default.setdefault('active', True)
        return super().copy(equipments, default=default)

    @classmethod
    def check_status_change(cls, equipments, status, reason=None):
        """Raise an error if equipments cannot move to status.

        With a reason (even empty), it must say something."""
        assert status in dict(STATUSES), status
        for equipment in equipments:
            if equipment.status in FINAL_STATUSES:
                raise EquipmentStatusError(gettext(
                        'hrp_equipment.msg_equipment_scrapped',
                        equipment=equipment.rec_name))
            if equipment.status == status:
                raise EquipmentStatusError(gettext(
                        'hrp_equipment.msg_equipment_status_unchanged',
                        equipment=equipment.rec_name,
                        status=equipment.status_string))
            if reason is not None and not reason.strip():
                raise EquipmentStatusError(gettext(
                        'hrp_equipment.msg_equipment_status_reason',
                        equipment=equipment.rec_name))

    @classmethod
    def change_status(cls, equipments, status, reason):
        """Move equipments to status, recording who, when and why.

        This is the one way the status changes; the buttons and their
        dialog call it, and so may other modules (a repair order, …)."""
        pool = Pool()
        StatusChange = pool.get('hrp.equipment.status_change')
        reason = reason or ''
        cls.check_status_change(equipments, status, reason)
        user = Transaction().user
        now = dt.datetime.now()
        with without_check_access():
            StatusChange.create([{
                        'equipment': e.id,
                        'from_status': e.status,
                        'to_status': status,
                        'user': user,
                        'date': now,
                        'reason': reason.strip(),
                        } for e in equipments])
            getattr(cls, f'_set_{status}')(equipments)

    @classmethod
    @Workflow.transition('in_use')
    def _set_in_use(cls, equipments):
        pass

    @classmethod
    @Workflow.transition('idle')
    def _set_idle(cls, equipments):
        pass

    @classmethod
    @Workflow.transition('under_repair')
    def _set_under_repair(cls, equipments):
        pass

    @classmethod
    @Workflow.transition('scrapped')
    def _set_scrapped(cls, equipments):
        cls.write(equipments, {'active': False})

    @classmethod
    def _status_button(cls, equipments, status, reason):
        """Change the status for reason, or without a reason return the
        dialog asking for it"""
        pool = Pool()
        ModelData = pool.get('ir.model.data')
        Action = pool.get('ir.action')
        if reason is None:
            cls.check_status_change(equipments, status)
            return Action.get_action_id(ModelData.get_id(
                    'hrp_equipment', f'wizard_{STATUS_BUTTONS[status]}'))
        cls.change_status(equipments, status, reason)

    @classmethod
    @ModelView.button
    def use(cls, equipments, reason=None):
        "Put the equipment (back) in use"
        return cls._status_button(equipments, 'in_use', reason)

    @classmethod
    @ModelView.button
    def idle(cls, equipments, reason=None):
        "Set the equipment idle"
        return cls._status_button(equipments, 'idle', reason)

    @classmethod
    @ModelView.button
    def repair(cls, equipments, reason=None):
        "Take the equipment out of service for repair"
        return cls._status_button(equipments, 'under_repair', reason)

    @classmethod
    @ModelView.button
    def scrap(cls, equipments, reason=None):
        "Scrap the equipment for good"
        return cls._status_button(equipments, 'scrapped', reason)

    @classmethod
    def status_of_action(cls, action_id):
        "Return the status the wizard action moves to, if it is one of ours"
        ModelData = Pool().get('ir.model.data')
        if action_id is None:
            return
        for status, button in STATUS_BUTTONS.items():
            if action_id == ModelData.get_id(
                    'hrp_equipment', f'wizard_{button}'):
                return status


class StatusChange(ModelSQL, ModelView):
    __name__ = 'hrp.equipment.status_change'
    __string__ = "Equipment Status Change"

    equipment = fields.Many2One(
        'hrp.equipment', "Equipment", required=True, ondelete='CASCADE',
        readonly=True)
    from_status = fields.Selection(
        STATUSES, "From Status", required=True, readonly=True, sort=False)
    from_status_string = from_status.translated('from_status')
    to_status = fields.Selection(
        STATUSES, "To Status", required=True, readonly=True, sort=False)
    to_status_string = to_status.translated('to_status')
    user = fields.Many2One(
        'res.user', "User", required=True, readonly=True,
        ondelete='RESTRICT', help="Who changed the status.")
    date = fields.DateTime(
        "Date", required=True, readonly=True,
        help="When the status changed.")
    reason = fields.Text(
        "Reason", required=True, readonly=True,
        help="Why the status changed.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        # who may read a device may read its history, and nobody else
        cls.__access__.add('equipment')
        cls._order = [
            ('date', 'DESC'),
            ('id', 'DESC'),
            ]

    def get_rec_name(self, name):
        return (f'{self.equipment.rec_name}: {self.from_status_string} → '
            f'{self.to_status_string}')

    @classmethod
    def search_rec_name(cls, name, clause):
        return [('equipment.rec_name', *clause[1:])]

    @classmethod
    def check_modification(cls, mode, changes, values=None, external=False):
        super().check_modification(
            mode, changes, values=values, external=external)
        if external:
            raise EquipmentStatusError(gettext(
                    'hrp_equipment.msg_status_change_readonly'))


class ChangeStatusStart(ModelView):
    __name__ = 'hrp.equipment.change_status.start'
    __string__ = "Change Equipment Status"

    status = fields.Selection(STATUSES, "New Status", required=True,
        sort=False)
    reason = fields.Text(
        "Reason", required=True,
        help="Why the status changes; it is kept in the status history.")


class ChangeStatus(Wizard):
    __name__ = 'hrp.equipment.change_status'

    start = StateView('hrp.equipment.change_status.start',
        'hrp_equipment.change_status_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Change", 'change', 'tryton-ok', default=True),
            ])
    change = StateTransition()

    def default_start(self, fields):
        Equipment = Pool().get('hrp.equipment')
        status = Equipment.status_of_action(
            Transaction().context.get('action_id'))
        if status:
            Equipment.check_status_change(self.records, status)
        return {'status': status}

    def transition_change(self):
        Equipment = Pool().get('hrp.equipment')
        status, reason = self.start.status, self.start.reason or ''
        Equipment.check_status_change(self.records, status, reason)
        button = getattr(Equipment, STATUS_BUTTONS[status])
        button(self.records, reason=reason)
        return 'end'

    def end(self):
        return 'reload'
