from decimal import Decimal

from trytond.model import ModelSingleton, ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Id

from trytond.i18n import gettext

from .exceptions import ConfigurationValidationError

DEFAULT_HIGH_VALUE_THRESHOLD = Decimal('2000')


class Configuration(ModelSingleton, ModelSQL, ModelView):
    __name__ = 'hrp.configuration'
    __string__ = "Materials Configuration"

    high_value_threshold = fields.Numeric(
        "High-Value Threshold", digits=(16, 2), required=True,
        help="A material whose unit cost reaches this amount (in the "
        "company currency) is a high-value consumable.")
    licence_warning_days = fields.Integer(
        "Licence Warning Days", required=True,
        help="Licences and certificates expiring within this many days "
        "are flagged as close to expiry.")

    requisition_sequence = fields.Many2One(
        'ir.sequence', "Requisition Sequence", required=True,
        domain=[('sequence_type', '=', Id(
                    'hrp_materials', 'sequence_type_requisition'))])
    return_sequence = fields.Many2One(
        'ir.sequence', "Return Sequence", required=True,
        domain=[('sequence_type', '=', Id(
                    'hrp_materials', 'sequence_type_return'))])
    write_off_sequence = fields.Many2One(
        'ir.sequence', "Write-Off Sequence", required=True,
        domain=[('sequence_type', '=', Id(
                    'hrp_materials', 'sequence_type_write_off'))])
    approval_email = fields.Boolean(
        "E-mail Approvers",
        help="Also send an e-mail to the approvers who have an address.")

    @classmethod
    def default_requisition_sequence(cls):
        return cls._default_sequence('sequence_requisition')

    @classmethod
    def default_return_sequence(cls):
        return cls._default_sequence('sequence_return')

    @classmethod
    def default_write_off_sequence(cls):
        return cls._default_sequence('sequence_write_off')

    @staticmethod
    def _default_sequence(xml_id):
        try:
            return Pool().get('ir.model.data').get_id('hrp_materials', xml_id)
        except KeyError:
            return None

    @classmethod
    def default_approval_email(cls):
        # Off until the site has a mail server ([email] uri)
        return False

    @classmethod
    def default_high_value_threshold(cls):
        return DEFAULT_HIGH_VALUE_THRESHOLD

    @classmethod
    def default_licence_warning_days(cls):
        return 30

    @classmethod
    def validate_fields(cls, records, field_names):
        super().validate_fields(records, field_names)
        for record in records:
            if (record.high_value_threshold is not None
                    and record.high_value_threshold <= 0):
                raise ConfigurationValidationError(gettext(
                        'hrp_materials.msg_threshold_positive'))
            if (record.licence_warning_days is not None
                    and record.licence_warning_days < 0):
                raise ConfigurationValidationError(gettext(
                        'hrp_materials.msg_warning_days_positive'))


def get_configuration():
    return Pool().get('hrp.configuration')(1)
