# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Charging the patient (计费): a usage registration for an inpatient bills
the HIS for the materials used.

Posting a per-patient registration queues one HIS charge per line of a
material mapped to a HIS charge item (收费项目, with its insurance code
医保编码), through the connector's outbox: exactly once per line, whatever
retries, in the transaction that moves the goods.  A high-value material
used for a patient must be mapped.  The HIS confirms the patient (and the
surgery) first: an inpatient number it does not know refuses the posting;
an unreachable HIS lets it through, the registration flagged as not
verified and its charges waiting in the outbox.  Cancelling a posted
registration queues the cancellation of its charges."""
import datetime as dt
from decimal import Decimal

from trytond.i18n import gettext
from trytond.model import ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import without_check_access

from his_connector import his
from his_connector.exceptions import HISUnavailableError
from his_connector.outbox import STATES as OUTBOX_STATES

from .exceptions import ChargeError

PATIENT_CHECKS = [
    (None, ""),
    ('confirmed', "Confirmed by the HIS"),
    ('unverified', "Not Verified (HIS Unreachable)"),
    ]


# The delivery states of the outbox messages
MESSAGE_STATES = [(None, "")] + OUTBOX_STATES


def charge_key(line):
    "The idempotency key of the HIS charge of the consumption line"
    return f'hrp.consumption.line-{line.id}'


class Consumption(metaclass=PoolMeta):
    __name__ = 'hrp.consumption'

    his_patient_check = fields.Selection(
        PATIENT_CHECKS, "HIS Patient Check", readonly=True,
        states={
            'invisible': Eval('kind') != 'patient',
            },
        help="Whether the HIS confirmed the inpatient (and the surgery) "
        "when the registration was posted; not verified when the HIS was "
        "unreachable (the charges then wait in the outbox).")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._buttons.update({
                'look_up_patient': {
                    'invisible': ((Eval('kind') != 'patient')
                        | (Eval('state') != 'draft')),
                    'readonly': ~Eval('inpatient_number'),
                    'depends': ['kind', 'state', 'inpatient_number'],
                    },
                })

    @classmethod
    def copy(cls, consumptions, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('his_patient_check', None)
        return super().copy(consumptions, default=default)

    @classmethod
    @ModelView.button
    def look_up_patient(cls, consumptions):
        """Fill the patient's name from the HIS and check the surgery
        number belongs to the patient"""
        cls._check_department_user([c.department.id for c in consumptions])
        for consumption in consumptions:
            patient = consumption.his_patient()
            consumption.patient_name = patient.name
        with without_check_access():
            cls.save(consumptions)

    def his_patient(self):
        """Return the his.Patient of the registration, its surgery checked
        to be one of the patient's; raise a UserError naming the problem"""
        Service = Pool().get('his.service')
        patient = Service.find_patient(
            self.inpatient_number, company=self.company)
        if self.surgery_number:
            Service.find_surgeries(self.inpatient_number,
                surgery_number=self.surgery_number, company=self.company)
        return patient

    @classmethod
    def post(cls, consumptions):
        # Every check runs before anything is written: a refused posting
        # changes nothing
        checks = {}
        for consumption in consumptions:
            if consumption.kind != 'patient':
                continue
            lines = consumption.chargeable_lines()
            if not lines:
                continue
            try:
                consumption.his_patient()
            except HISUnavailableError:
                checks[consumption] = 'unverified'
            else:
                checks[consumption] = 'confirmed'
        super().post(consumptions)
        if checks:
            for check in {'confirmed', 'unverified'}:
                checked = [c for c, v in checks.items() if v == check]
                if checked:
                    cls.write(checked, {'his_patient_check': check})
            cls.post_charges(cls.browse(list(checks)))

    def chargeable_lines(self):
        """Return the lines billed to the patient: those of a material
        mapped to a HIS charge item; raise a ChargeError for a high-value
        material that is not"""
        lines = []
        mapped = self.mapped_products([l.product for l in self.lines])
        for line in self.lines:
            if line.product in mapped:
                lines.append(line)
            elif line.product.high_value:
                raise ChargeError(gettext(
                        'hrp_materials.msg_charge_high_value_unmapped',
                        consumption=self.rec_name,
                        material=line.product.rec_name))
        return lines

    def mapped_products(self, products):
        "Return the set of products mapped to a HIS charge item"
        Mapping = Pool().get('his.product.mapping')
        with without_check_access():
            return {m.product for m in Mapping.search([
                        ('company', '=', self.company.id),
                        ('product', 'in', [p.id for p in products]),
                        ])}

    def check_scanned(self, line, lines):
        "A high-value unit used for a patient must be billable to the HIS"
        super().check_scanned(line, lines)
        if (self.kind == 'patient' and line.product.high_value
                and not self.mapped_products([line.product])):
            raise ChargeError(gettext(
                    'hrp_materials.msg_charge_high_value_unmapped',
                    consumption=self.rec_name,
                    material=line.product.rec_name))

    @classmethod
    def post_charges(cls, consumptions):
        "Queue the HIS charges of the posted consumptions' chargeable lines"
        pool = Pool()
        Service = pool.get('his.service')
        Line = pool.get('hrp.consumption.line')
        to_write = []
        for consumption in consumptions:
            for line in consumption.chargeable_lines():
                message = Service.post_charge(
                    line.make_his_charge(), origin=line,
                    company=consumption.company)
                to_write.extend([[line], {'his_charge': message.id}])
        if to_write:
            Line.write(*to_write)

    @classmethod
    def reverse(cls, consumptions):
        Line = Pool().get('hrp.consumption.line')
        charged = [l for c in consumptions if c.state == 'done'
            for l in c.lines if l.his_charge and not l.his_charge_cancel]
        super().reverse(consumptions)
        Line.cancel_charges(charged)


class ConsumptionLine(metaclass=PoolMeta):
    __name__ = 'hrp.consumption.line'

    his_charge = fields.Many2One(
        'his.outbox', "HIS Charge", readonly=True, ondelete='RESTRICT')
    his_charge_cancel = fields.Many2One(
        'his.outbox', "HIS Charge Cancellation", readonly=True,
        ondelete='RESTRICT')
    his_charge_state = fields.Function(
        fields.Selection(MESSAGE_STATES, "HIS Charge",
            help="The delivery of the charge to the HIS."),
        'get_his_charge_state')
    his_charge_cancel_state = fields.Function(
        fields.Selection(MESSAGE_STATES, "HIS Cancellation",
            help="The delivery of the charge's cancellation to the HIS."),
        'get_his_charge_state')

    @classmethod
    def get_his_charge_state(cls, lines, names):
        "The delivery states of the outbox messages, shown to the nurses"
        result = {n: {l.id: None for l in lines} for n in names}
        field = {
            'his_charge_state': 'his_charge',
            'his_charge_cancel_state': 'his_charge_cancel',
            }
        with without_check_access():
            for line in cls.browse(lines):
                for name in names:
                    message = getattr(line, field[name])
                    if message:
                        result[name][line.id] = message.state
        return result

    @classmethod
    def reverse(cls, lines, reason):
        super().reverse(lines, reason)
        cls.cancel_charges(
            [l for l in lines if l.his_charge and not l.his_charge_cancel])

    @classmethod
    def cancel_charges(cls, lines):
        "Queue the cancellation of the HIS charges of the lines"
        Service = Pool().get('his.service')
        to_write = []
        for line in lines:
            message = Service.cancel_charge(
                charge_key(line), origin=line,
                company=line.consumption.company)
            to_write.extend([[line], {'his_charge_cancel': message.id}])
        if to_write:
            cls.write(*to_write)

    @classmethod
    def copy(cls, lines, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('his_charge', None)
        default.setdefault('his_charge_cancel', None)
        return super().copy(lines, default=default)

    def udi(self):
        """The unit's UDI as GS1 element strings in human-readable form:
        the material's GTIN (01) with the serial (21) of a serial-tracked
        material or the lot (10); None without a GTIN or a lot"""
        gtin = self.product.gtin
        if not gtin or not self.lot:
            return None
        ai = '21' if self.product.template.serial_tracked else '10'
        return f'(01){gtin.zfill(14)}({ai}){self.lot.number}'

    def make_his_charge(self):
        "Return the his.Charge billing the line to the patient"
        pool = Pool()
        Mapping = pool.get('his.product.mapping')
        Uom = pool.get('product.uom')
        consumption = self.consumption
        with without_check_access():
            mapping = Mapping.mapping_for(
                self.product, company=consumption.company)
        item = mapping.charge_item
        quantity = Uom.compute_qty(
            self.unit, self.quantity, self.product.default_uom, round=False)
        quantity = Decimal(str(quantity)) * mapping.unit_factor
        lot = self.lot
        return his.Charge(
            key=charge_key(self),
            inpatient_number=consumption.inpatient_number,
            charge_item=item.code,
            quantity=quantity.normalize(),
            unit_price=item.price,
            insurance_code=item.insurance_code,
            surgery_number=consumption.surgery_number,
            department=consumption.department.code,
            description=self.product.rec_name,
            lot=lot.number if lot else None,
            udi=self.udi(),
            date=(consumption.done_at
                or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))


class Outbox(metaclass=PoolMeta):
    __name__ = 'his.outbox'

    @classmethod
    def _get_origin(cls):
        return super()._get_origin() + ['hrp.consumption.line']
