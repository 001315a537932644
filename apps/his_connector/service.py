# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The HIS services the domain modules call: ``his.service``, a Model with
classmethods, reached through the pool so that a module can extend it::

    Service = Pool().get('his.service')
    patient = Service.find_patient('ZY2026000101')   # his.Patient
    surgery, = Service.find_surgeries(
        'ZY2026000101', surgery_number='SS20261101001')
    message = Service.post_charge(his.Charge(key=…, …), origin=usage_line)
    Service.cancel_charge(key, origin=usage_line)
    Service.send_sms('+8613800000000', '请补货…', origin=order)
    item = Service.charge_item_for(product)           # his.charge.item
    usages = Service.usage_for(['CT01'], start, end)  # his.pacs.usage

Each takes an optional company (default: the context's) whose active
endpoint of the right purpose is used (``his.endpoint.get_active``).

Lookups are synchronous: they return the plain records of ``his.py`` and
turn the transport's errors into translated UserErrors (unknown inpatient
number, surgery of another patient, HIS unreachable, malformed reply,
refusal).  Posts, cancellations and SMS are asynchronous: they store an
``his.outbox`` message in the caller's transaction and return it; the queue
delivers it exactly once per key.  The domain modules never see a wire
format."""
import json
import uuid
from decimal import Decimal

from trytond.i18n import gettext
from trytond.model import Model
from trytond.pool import Pool
from trytond.transaction import without_check_access

from . import his, sms
from .exceptions import HISError, HISUnavailableError, OutboxError
from .outbox import charge_payload


class Service(Model):
    __name__ = 'his.service'
    __string__ = "HIS Service"

    # Synchronous lookups

    @classmethod
    def _lookup(cls, company, method, *args, **kwargs):
        "Call method of the HIS transport; map his errors to UserErrors"
        pool = Pool()
        Endpoint = pool.get('his.endpoint')
        Outbox = pool.get('his.outbox')
        with without_check_access():
            endpoint = Endpoint.get_active('his', company)
        transport = endpoint.transport()
        try:
            return getattr(transport, method)(*args, **kwargs)
        except his.NotFound:
            raise
        except his.PeerUnavailable as exception:
            raise HISUnavailableError(gettext(
                    'his_connector.msg_his_unreachable',
                    endpoint=endpoint.rec_name,
                    error=Outbox._error_text(endpoint, exception)))
        except his.MalformedReply as exception:
            raise HISError(gettext(
                    'his_connector.msg_his_malformed',
                    endpoint=endpoint.rec_name,
                    error=Outbox._error_text(endpoint, exception)))
        except his.PeerRejected as exception:
            raise HISError(gettext(
                    'his_connector.msg_his_rejected',
                    endpoint=endpoint.rec_name,
                    error=Outbox._error_text(endpoint, exception)))
        finally:
            transport.close()

    @classmethod
    def find_patient(cls, inpatient_number, company=None):
        """Return the his.Patient admitted under inpatient_number (住院号):
        identity, ward, department, admission"""
        number = (inpatient_number or '').strip()
        if not number:
            raise HISError(gettext('his_connector.msg_his_number_required'))
        try:
            return cls._lookup(company, 'find_patient', number)
        except his.NotFound:
            raise HISError(gettext(
                    'his_connector.msg_his_patient_unknown', number=number))

    @classmethod
    def find_surgeries(
            cls, inpatient_number=None, surgery_number=None, company=None):
        """Return the his.Surgery list of the patient admitted under
        inpatient_number, or the surgery numbered surgery_number (手术流水号).

        With both, the surgery must be one of that patient's: a surgery of
        another patient is refused."""
        number = (inpatient_number or '').strip() or None
        surgery_number = (surgery_number or '').strip() or None
        if not number and not surgery_number:
            raise HISError(gettext('his_connector.msg_his_number_required'))
        if not surgery_number:
            try:
                return cls._lookup(company, 'find_surgeries', number)
            except his.NotFound:
                raise HISError(gettext(
                        'his_connector.msg_his_patient_unknown',
                        number=number))
        try:
            surgeries = cls._lookup(
                company, 'find_surgeries', surgery_number=surgery_number)
        except his.NotFound:
            surgeries = []
        if not surgeries:
            raise HISError(gettext(
                    'his_connector.msg_his_surgery_unknown',
                    surgery=surgery_number))
        surgery, = surgeries
        if number and surgery.inpatient_number != number:
            same_patient = False
            if not surgery.inpatient_number:
                patient = cls.find_patient(number, company=company)
                same_patient = patient.patient_id == surgery.patient_id
            if not same_patient:
                raise HISError(gettext(
                        'his_connector.msg_his_surgery_other_patient',
                        surgery=surgery_number, number=number))
        return surgeries

    # Outbox

    @classmethod
    def _message(cls, purpose, operation, key, payload, company, origin,
            depends_on=None):
        """Return the outbox message of the key, created and queued if new;
        an existing message must carry the same payload"""
        pool = Pool()
        Endpoint = pool.get('his.endpoint')
        Outbox = pool.get('his.outbox')
        with without_check_access():
            endpoint = Endpoint.get_active(purpose, company)
            existing = Outbox.search([
                    ('endpoint', '=', endpoint.id),
                    ('operation', '=', operation),
                    ('key', '=', key),
                    ], limit=1)
            if existing:
                message, = existing
                if message.payload != payload:
                    raise OutboxError(gettext(
                            'his_connector.msg_outbox_key_reused',
                            key=key))
                return message
            message, = Outbox.create([{
                        'company': endpoint.company.id,
                        'endpoint': endpoint.id,
                        'operation': operation,
                        'key': key,
                        'payload': payload,
                        'origin': str(origin) if origin else None,
                        'depends_on': depends_on.id if depends_on else None,
                        }])
            Outbox.enqueue([message])
        return message

    @classmethod
    def post_charge(cls, charge, origin=None, company=None):
        """Queue the his.Charge for the HIS, exactly once per charge.key;
        return the his.outbox message.  Posting the same key again returns
        the first message."""
        if not charge.key or not charge.key.strip():
            raise OutboxError(gettext('his_connector.msg_charge_key'))
        if not (charge.inpatient_number or '').strip():
            raise HISError(gettext('his_connector.msg_his_number_required'))
        if not (charge.charge_item or '').strip():
            raise OutboxError(gettext(
                    'his_connector.msg_charge_item_required',
                    key=charge.key))
        try:
            quantity = Decimal(charge.quantity)
            price = Decimal(charge.unit_price)
        except (ArithmeticError, TypeError, ValueError):
            quantity = price = None
        if quantity is None or not quantity.is_finite() or quantity <= 0:
            raise OutboxError(gettext(
                    'his_connector.msg_charge_quantity',
                    key=charge.key, quantity=charge.quantity))
        if price is None or not price.is_finite() or price < 0:
            raise OutboxError(gettext(
                    'his_connector.msg_charge_price',
                    key=charge.key, price=charge.unit_price))
        return cls._message(
            'his', 'post_charge', charge.key, charge_payload(charge),
            company, origin)

    @classmethod
    def cancel_charge(cls, key, origin=None, company=None):
        """Queue the cancellation of the charge posted under key, delivered
        after the post; return the his.outbox message"""
        pool = Pool()
        Endpoint = pool.get('his.endpoint')
        Outbox = pool.get('his.outbox')
        with without_check_access():
            endpoint = Endpoint.get_active('his', company)
            posts = Outbox.search([
                    ('endpoint', '=', endpoint.id),
                    ('operation', '=', 'post_charge'),
                    ('key', '=', key),
                    ], limit=1)
        if not posts:
            raise OutboxError(gettext(
                    'his_connector.msg_charge_cancel_unknown', key=key))
        post, = posts
        return cls._message(
            'his', 'cancel_charge', key, json.dumps({'key': key}),
            company, origin, depends_on=post)

    @classmethod
    def send_sms(cls, number, text, key=None, origin=None, company=None):
        """Queue an SMS to number through the company's modem; return the
        his.outbox message.  The number and text are checked now."""
        try:
            number = sms.normalise_number(number)
            sms.encode_submit(number, text)
        except sms.InvalidMessage as exception:
            raise OutboxError(gettext(
                    'his_connector.msg_sms_invalid', error=str(exception)))
        key = key or f'sms-{uuid.uuid4().hex}'
        return cls._message(
            'sms', 'send_sms', key,
            json.dumps({'key': key, 'number': number, 'text': text},
                ensure_ascii=False, sort_keys=True),
            company, origin)

    @classmethod
    def send_email(cls, address, subject, text, key=None, origin=None,
            company=None):
        """Queue an e-mail to address through the company's SMTP endpoint;
        return the his.outbox message.  The address is checked now."""
        from .mail import valid_address
        address = (address or '').strip()
        if not valid_address(address):
            raise OutboxError(gettext(
                    'his_connector.msg_email_invalid', address=address))
        key = key or f'email-{uuid.uuid4().hex}'
        return cls._message(
            'email', 'send_email', key,
            json.dumps({'key': key, 'to': address, 'subject': subject,
                    'text': text}, ensure_ascii=False, sort_keys=True),
            company, origin)

    # Charge items and PACS usage (pass-throughs)

    @classmethod
    def charge_item_for(cls, product, company=None):
        """Return the HIS charge item (his.charge.item) that bills product
        (product.product) in company (default: the context's); raise a
        UserError for a material not mapped or mapped to a withdrawn item"""
        Mapping = Pool().get('his.product.mapping')
        with without_check_access():
            return Mapping.charge_item_for(product, company=company)

    @classmethod
    def record_usage(cls, endpoint, usages, source, file_name=None):
        """Store the usages (pacs.Usage) sent by the PACS endpoint; return
        the counts {created, replaced, unchanged}"""
        Usage = Pool().get('his.pacs.usage')
        return Usage.record_usage(
            endpoint, usages, source, file_name=file_name)

    @classmethod
    def usage_for(cls, device_codes, start, end, company=None):
        """Return the PACS usages (his.pacs.usage) of the devices named by
        device_codes from start to end (dates, included) in company
        (default: the context's)"""
        Usage = Pool().get('his.pacs.usage')
        with without_check_access():
            return Usage.usage_for(
                device_codes, start, end, company=company)
