# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Agreed levels (约定库存水平) of high-value materials in a high-value store
(the operating theatre's): per supplier and material, the safety quantity
below which the supplier must deliver and the maximum it restores.

The suggested quantity of a level is what brings the store's stock of the
material (its sub-locations included, where the suppliers' consignment
stock will be kept) back to the maximum, once the stock has fallen to the
safety quantity or below; nothing otherwise.  The messages that publish
the consumption to the suppliers carry it."""
from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, Unique, fields)
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction

from .exceptions import AgreedLevelValidationError


class AgreedLevel(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'hrp.agreed.level'
    __string__ = "Agreed Level"

    company = fields.Many2One('company.company', "Company", required=True)
    store = fields.Many2One(
        'stock.location', "Store", required=True, ondelete='CASCADE',
        domain=[
            ('hrp_store_type', '=', 'high_value'),
            ],
        help="The high-value store (e.g. the operating theatre's) the "
        "supplier keeps stocked.")
    supplier = fields.Many2One(
        'party.party', "Supplier", required=True, ondelete='CASCADE',
        context={
            'company': Eval('company', -1),
            },
        depends={'company'})
    product = fields.Many2One(
        'product.product', "Material", required=True, ondelete='CASCADE',
        domain=[
            ('type', '=', 'goods'),
            ],
        context={
            'company': Eval('company', -1),
            },
        depends={'company'})
    unit = fields.Function(
        fields.Many2One('product.uom', "Unit"), 'on_change_with_unit')
    safety_quantity = fields.Float(
        "Safety Quantity", digits='unit', required=True,
        help="At or below this stock the supplier must deliver.")
    maximum_quantity = fields.Float(
        "Maximum Quantity", digits='unit', required=True,
        help="The stock a delivery restores.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        table = cls.__table__()
        cls._sql_constraints += [
            ('store_supplier_product_unique',
                Unique(table, table.store, table.supplier, table.product),
                'hrp_materials.msg_agreed_level_unique'),
            ]
        cls._sql_indexes.add(Index(
                table, (table.supplier, Index.Range()),
                (table.store, Index.Range())))
        cls._order = [
            ('store', 'ASC'), ('supplier', 'ASC'), ('product', 'ASC'),
            ('id', 'ASC')]

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @fields.depends('product')
    def on_change_with_unit(self, name=None):
        return self.product.default_uom if self.product else None

    def get_rec_name(self, name):
        return f'{self.store.rec_name} / {self.product.rec_name}'

    @classmethod
    def validate_fields(cls, levels, field_names):
        super().validate_fields(levels, field_names)
        if field_names & {'safety_quantity', 'maximum_quantity'}:
            for level in levels:
                level.check_quantities()

    def check_quantities(self):
        if (self.safety_quantity < 0
                or self.maximum_quantity < self.safety_quantity
                or self.maximum_quantity <= 0):
            raise AgreedLevelValidationError(gettext(
                    'hrp_materials.msg_agreed_level_quantities',
                    level=self.rec_name,
                    safety=self.safety_quantity,
                    maximum=self.maximum_quantity))

    @classmethod
    def stock_quantities(cls, levels, date=None):
        """Return {level id: the quantity of its material in its store and
        the store's sub-locations at date (today by default)}"""
        pool = Pool()
        Product = pool.get('product.product')
        Date = pool.get('ir.date')
        result = {}
        by_company = {}
        for level in levels:
            by_company.setdefault(level.company, []).append(level)
        for company, company_levels in by_company.items():
            with Transaction().set_context(company=company.id):
                day = date or Date.today()
                stores = sorted({l.store.id for l in company_levels})
                products = sorted({l.product.id for l in company_levels})
                with Transaction().set_context(stock_date_end=day):
                    quantities = Product.products_by_location(
                        stores, with_childs=True,
                        grouping_filter=(products,))
            for level in company_levels:
                result[level.id] = quantities.get(
                    (level.store.id, level.product.id), 0)
        return result

    @classmethod
    def suggested_quantities(cls, levels, date=None):
        """Return {level id: the quantity that restores the maximum once the
        stock is at or below the safety quantity, else 0}"""
        stock = cls.stock_quantities(levels, date=date)
        result = {}
        for level in levels:
            quantity = stock[level.id]
            if quantity <= level.safety_quantity:
                result[level.id] = level.unit.round(
                    max(level.maximum_quantity - quantity, 0))
            else:
                result[level.id] = 0
        return result
