# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Stores: the central store (一级库) and department stores (二级库) are
Tryton stock locations."""
from trytond.i18n import gettext
from trytond.model import fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import without_check_access

from .exceptions import StoreValidationError

STORE_TYPES = [
    (None, ""),
    ('central', "Central Store"),
    ('department', "Department Store"),
    ('high_value', "High-Value Store"),
    ]


class Location(metaclass=PoolMeta):
    __name__ = 'stock.location'

    hrp_store_type = fields.Selection(
        STORE_TYPES, "Store Type",
        states={
            'invisible': ~Eval('type').in_(['warehouse', 'storage']),
            },
        help="Central store (一级库), department store (二级库) or the "
        "operating-theatre store for high-value items.")
    hrp_department = fields.Many2One(
        'hrp.department', "Department", ondelete='RESTRICT',
        states={
            'invisible': ~Eval('hrp_store_type').in_(
                ['department', 'high_value']),
            'required': Eval('hrp_store_type').in_(
                ['department', 'high_value']),
            },
        help="The department that owns and counts this store.")

    def hrp_stock_locations(self):
        """The locations a store's goods are taken from: the store itself,
        then the consignment locations its suppliers keep in it"""
        Location = Pool().get('stock.location')
        with without_check_access():
            consigned = Location.search([
                    ('parent', '=', self.id),
                    ('type', '=', 'supplier'),
                    ('consignment_party', '!=', None),
                    ], order=[('id', 'ASC')])
        return [self] + [Location(l.id) for l in consigned]

    @classmethod
    def validate_fields(cls, locations, field_names):
        super().validate_fields(locations, field_names)
        if field_names & {'hrp_store_type', 'hrp_department', 'type'}:
            for location in locations:
                location.check_hrp_store()

    def check_hrp_store(self):
        if self.hrp_store_type and self.type not in {'warehouse', 'storage'}:
            raise StoreValidationError(gettext(
                    'hrp_materials.msg_store_location_type',
                    location=self.rec_name))
        if (self.hrp_store_type in {'department', 'high_value'}
                and not self.hrp_department):
            raise StoreValidationError(gettext(
                    'hrp_materials.msg_store_department_required',
                    location=self.rec_name))
        if self.hrp_store_type == 'central' and self.hrp_department:
            raise StoreValidationError(gettext(
                    'hrp_materials.msg_central_store_department',
                    location=self.rec_name))
