# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Suppliers (供应商) are Tryton parties with licences and authorised
materials."""
import datetime as dt
import re

from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool, PoolMeta

from .configuration import get_configuration
from .exceptions import SupplierValidationError

SMS_NUMBER = re.compile(r'^\+?[1-9]\d{6,14}$')

LICENCE_TYPES = [
    ('business', "Business Licence"),
    ('device_trading', "Medical Device Trading Licence"),
    ('authorisation', "Manufacturer Authorisation"),
    ]


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    hrp_licences = fields.One2Many(
        'hrp.supplier.licence', 'party', "Licences")
    hrp_authorised_materials = fields.Many2Many(
        'hrp.supplier.authorised_material', 'party', 'template',
        "Authorised Materials",
        help="The materials the supplier is authorised to deliver.")
    sms_number = fields.Char(
        "SMS Number",
        help="The mobile number that receives replenishment messages, "
        "in international form (+8613800000000).")
    licence_state = fields.Function(
        fields.Selection([
                (None, ""),
                ('valid', "Valid"),
                ('expiring', "Expiring Soon"),
                ('expired', "Expired"),
                ], "Licence State"),
        'get_licence_state')

    @classmethod
    def validate_fields(cls, parties, field_names):
        super().validate_fields(parties, field_names)
        if 'sms_number' in field_names:
            for party in parties:
                if party.sms_number and not SMS_NUMBER.match(
                        party.sms_number.replace(' ', '')):
                    raise SupplierValidationError(gettext(
                            'hrp_materials.msg_sms_number_invalid',
                            number=party.sms_number, party=party.rec_name))

    def get_licence_state(self, name):
        states = [l.state for l in self.hrp_licences]
        for state in ['expired', 'expiring', 'valid']:
            if state in states:
                return state

    def valid_licences(self, date=None):
        "Return the licences valid at date (today by default)"
        if date is None:
            date = Pool().get('ir.date').today()
        return [l for l in self.hrp_licences if l.is_valid(date)]

    def is_qualified_for(self, template, date=None):
        """Return whether the supplier may deliver the material at date:
        a valid trading licence, no expired licence and an authorisation
        for the material."""
        if date is None:
            date = Pool().get('ir.date').today()
        types = {l.type for l in self.valid_licences(date)}
        expired = any(not l.is_valid(date) for l in self.hrp_licences)
        return ('device_trading' in types and not expired
            and template in self.hrp_authorised_materials)


class SupplierLicence(ModelSQL, ModelView):
    __name__ = 'hrp.supplier.licence'
    __string__ = "Supplier Licence"

    party = fields.Many2One(
        'party.party', "Supplier", required=True, ondelete='CASCADE')
    type = fields.Selection(LICENCE_TYPES, "Type", required=True)
    type_string = type.translated('type')
    number = fields.Char("Number", required=True, strip=True)
    scope = fields.Text(
        "Scope", help="The business scope written on the licence.")
    issued = fields.Date("Issued")
    expiry = fields.Date("Expiry", required=True)
    state = fields.Function(
        fields.Selection([
                ('valid', "Valid"),
                ('expiring', "Expiring Soon"),
                ('expired', "Expired"),
                ], "State"),
        'get_state', searcher='search_state')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('type_number_unique', Unique(t, t.party, t.type, t.number),
                'hrp_materials.msg_licence_unique'),
            ]
        cls._order.insert(0, ('expiry', 'ASC'))

    def get_rec_name(self, name):
        return f'{self.type_string} {self.number}'

    def is_valid(self, date):
        return self.expiry >= date

    def get_state(self, name):
        today = Pool().get('ir.date').today()
        days = get_configuration().licence_warning_days
        if self.expiry < today:
            return 'expired'
        if self.expiry <= today + dt.timedelta(days=days):
            return 'expiring'
        return 'valid'

    @classmethod
    def search_state(cls, name, clause):
        _, operator, value = clause
        today = Pool().get('ir.date').today()
        limit = today + dt.timedelta(
            days=get_configuration().licence_warning_days)
        domains = {
            'expired': [('expiry', '<', today)],
            'expiring': [('expiry', '>=', today), ('expiry', '<=', limit)],
            'valid': [('expiry', '>', limit)],
            }
        values = value if operator in {'in', 'not in'} else [value]
        domain = ['OR'] + [domains[v] for v in values if v in domains]
        if operator in {'!=', 'not in'}:
            return [('id', 'not in', [l.id for l in cls.search(domain)])]
        return domain

    @classmethod
    def validate_fields(cls, licences, field_names):
        super().validate_fields(licences, field_names)
        if field_names & {'issued', 'expiry'}:
            for licence in licences:
                if licence.issued and licence.expiry < licence.issued:
                    raise SupplierValidationError(gettext(
                            'hrp_materials.msg_licence_dates',
                            licence=licence.rec_name))


class SupplierAuthorisedMaterial(ModelSQL):
    __name__ = 'hrp.supplier.authorised_material'
    __string__ = "Supplier Authorised Material"
    party = fields.Many2One(
        'party.party', "Supplier", required=True, ondelete='CASCADE')
    template = fields.Many2One(
        'product.template', "Material", required=True, ondelete='CASCADE')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('party_template_unique', Unique(t, t.party, t.template),
                'hrp_materials.msg_authorised_material_unique'),
            ]
