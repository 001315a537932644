# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Which HIS charge item (收费项目) bills a material.

A material (product.product) has at most one active mapping; the domain
modules ask charge_item_for(product) when they post a charge, and get a
translated error for a material nobody mapped."""
from decimal import Decimal

from trytond.i18n import gettext
from trytond.exceptions import UserWarning
from trytond.model import DeactivableMixin, ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction

from .exceptions import ProductMappingValidationError, UnmappedMaterialError

# Prices closer than this are the same price
PRICE_TOLERANCE = Decimal('0.005')


class ProductMapping(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'his.product.mapping'
    __string__ = "HIS Charge Item Mapping"

    company = fields.Many2One(
        'company.company', "Company", required=True,
        states={
            'readonly': Eval('id', -1) >= 0,
            })
    product = fields.Many2One(
        'product.product', "Material", required=True, ondelete='CASCADE',
        context={
            'company': Eval('company', -1),
            },
        depends={'company'},
        help="The material billed with the charge item.")
    charge_item = fields.Many2One(
        'his.charge.item', "Charge Item", required=True,
        ondelete='RESTRICT',
        domain=[
            ('company', '=', Eval('company', -1)),
            ],
        help="The HIS charge item (收费项目) that bills the material.")
    unit_factor = fields.Numeric(
        "Unit Factor", digits=(16, 6), required=True,
        help="How many units of the charge item one unit of the material "
        "is, e.g. 10 when the material is a box of 10 and the HIS charges "
        "each piece.")
    material_unit = fields.Function(
        fields.Char("Material Unit"), 'on_change_with_material_unit')
    charge_unit = fields.Function(
        fields.Char("Charge Unit"), 'on_change_with_charge_unit')
    charge_price = fields.Function(
        fields.Numeric("Charge Price", digits=(16, 4)),
        'on_change_with_charge_price')
    insurance_code = fields.Function(
        fields.Char("Insurance Code"), 'on_change_with_insurance_code')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('product', 'ASC'), ('id', 'ASC')]

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_unit_factor(cls):
        return Decimal(1)

    @fields.depends('product')
    def on_change_with_material_unit(self, name=None):
        if self.product and self.product.default_uom:
            return self.product.default_uom.symbol

    @fields.depends('charge_item')
    def on_change_with_charge_unit(self, name=None):
        if self.charge_item:
            return self.charge_item.unit

    @fields.depends('charge_item')
    def on_change_with_charge_price(self, name=None):
        if self.charge_item:
            return self.charge_item.price

    @fields.depends('charge_item')
    def on_change_with_insurance_code(self, name=None):
        if self.charge_item:
            return self.charge_item.insurance_code

    def get_rec_name(self, name):
        return f'{self.product.rec_name} → {self.charge_item.rec_name}'

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        if operator.startswith('!') or operator.startswith('not '):
            bool_op = 'AND'
        else:
            bool_op = 'OR'
        return [bool_op,
            ('product.rec_name', operator, operand, *extra),
            ('charge_item.rec_name', operator, operand, *extra),
            ]

    @classmethod
    def validate_fields(cls, mappings, field_names):
        super().validate_fields(mappings, field_names)
        cls.check_unit_factor(mappings, field_names)
        cls.check_company(mappings, field_names)
        cls.check_one_active(mappings, field_names)
        # Warnings once the errors are ruled out
        if not field_names or (field_names & {
                    'product', 'charge_item', 'unit_factor', 'active'}):
            cls.check_unit_and_price(mappings)

    @classmethod
    def check_unit_factor(cls, mappings, field_names=None):
        if field_names and 'unit_factor' not in field_names:
            return
        for mapping in mappings:
            if mapping.unit_factor <= 0:
                raise ProductMappingValidationError(gettext(
                        'his_connector.msg_product_mapping_unit_factor',
                        mapping=mapping.rec_name,
                        factor=mapping.unit_factor))

    @classmethod
    def check_company(cls, mappings, field_names=None):
        if field_names and not (field_names & {'company', 'charge_item'}):
            return
        for mapping in mappings:
            if mapping.charge_item.company != mapping.company:
                raise ProductMappingValidationError(gettext(
                        'his_connector.msg_product_mapping_company',
                        mapping=mapping.rec_name))

    @classmethod
    def check_one_active(cls, mappings, field_names=None):
        "A material has at most one active mapping per company"
        if field_names and not (
                field_names & {'product', 'company', 'active'}):
            return
        pool = Pool()
        Product = pool.get('product.product')
        active = [m for m in mappings if m.active]
        if not active:
            return
        # Two transactions mapping one material wait for each other
        Product.lock(list({m.product for m in active}))
        for mapping in active:
            others = cls.search([
                    ('company', '=', mapping.company.id),
                    ('product', '=', mapping.product.id),
                    ('id', '!=', mapping.id),
                    ], limit=1)
            if others:
                other, = others
                raise ProductMappingValidationError(gettext(
                        'his_connector.msg_product_mapping_one_active',
                        material=mapping.product.rec_name,
                        charge_item=other.charge_item.rec_name))

    def unit_mismatch(self):
        """Test if the units of the material and of the charge item differ
        while the unit factor is 1 (the factor was forgotten)"""
        unit = (self.charge_item.unit or '').strip()
        uom = self.product.default_uom
        if not unit or self.unit_factor != 1:
            return False
        return unit.lower() not in {
            (uom.symbol or '').strip().lower(),
            (uom.name or '').strip().lower()}

    def material_list_price(self):
        "The list price of the material in the company of the mapping"
        pool = Pool()
        Product = pool.get('product.product')
        with Transaction().set_context(company=self.company.id):
            return Product(self.product.id).list_price_used

    def price_mismatch(self):
        """Test if the material's list price differs from the HIS price of
        the quantity of charge items it is billed as"""
        price = self.charge_item.price
        list_price = self.material_list_price()
        if price is None or list_price is None:
            return False
        return abs(list_price - price * self.unit_factor) > PRICE_TOLERANCE

    @classmethod
    def check_unit_and_price(cls, mappings):
        pool = Pool()
        Warning = pool.get('res.user.warning')
        for mapping in mappings:
            if not mapping.active:
                continue
            if mapping.unit_mismatch():
                key = Warning.format('his_product_mapping_unit', [
                        mapping.product, mapping.charge_item])
                if Warning.check(key):
                    raise UserWarning(key, gettext(
                            'his_connector.msg_product_mapping_unit_mismatch',
                            material=mapping.product.rec_name,
                            material_unit=mapping.product.default_uom.rec_name,
                            charge_item=mapping.charge_item.rec_name,
                            charge_unit=mapping.charge_item.unit))
            if mapping.price_mismatch():
                list_price = mapping.material_list_price()
                key = Warning.format('his_product_mapping_price', [
                        mapping.product, mapping.charge_item])
                if Warning.check(key):
                    raise UserWarning(key, gettext(
                            'his_connector.msg_product_mapping_price_mismatch',
                            material=mapping.product.rec_name,
                            list_price=list_price,
                            charge_item=mapping.charge_item.rec_name,
                            price=mapping.charge_item.price,
                            factor=mapping.unit_factor))

    @classmethod
    def mapping_for(cls, product, company=None):
        """Return the active mapping of product (product.product) in company
        (default: the context's); raise UnmappedMaterialError if there is
        none or if its charge item was withdrawn by the HIS"""
        if company is None:
            company = Transaction().context.get('company')
        company = int(company) if company is not None else None
        mappings = cls.search([
                ('company', '=', company),
                ('product', '=', product.id),
                ], limit=1)
        if not mappings:
            raise UnmappedMaterialError(gettext(
                    'his_connector.msg_product_mapping_unmapped',
                    material=product.rec_name))
        mapping, = mappings
        if not mapping.charge_item.active:
            raise UnmappedMaterialError(gettext(
                    'his_connector.msg_product_mapping_item_inactive',
                    material=product.rec_name,
                    charge_item=mapping.charge_item.rec_name))
        return mapping

    @classmethod
    def charge_item_for(cls, product, company=None):
        """Return the HIS charge item (his.charge.item) that bills product;
        raise UnmappedMaterialError for an unmapped material"""
        return cls.mapping_for(product, company).charge_item
