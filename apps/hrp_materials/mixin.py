# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Mixins shared by the HRP models."""
from trytond.model import fields
from trytond.pool import Pool


class CodeNameMixin:
    """Records named "[code] name" and found by any of
    ``_rec_name_search_fields``"""
    __slots__ = ()
    _rec_name_search_fields = ['code', 'name']

    def get_rec_name(self, name):
        return f'[{self.code}] {self.name}'

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        if operator.startswith('!') or operator.startswith('not '):
            bool_op = 'AND'
        else:
            bool_op = 'OR'
        return [bool_op, *(
                (field, operator, operand, *extra)
                for field in cls._rec_name_search_fields)]


class IssueUnitMixin:
    """Lines of a material in its issue unit: the product's default unit,
    read-only, filled also when a client does not send it"""
    __slots__ = ()

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if mode == 'create' and not values.get('unit') and values.get(
                'product'):
            Product = Pool().get('product.product')
            values['unit'] = Product(values['product']).default_uom.id
        return values

    @fields.depends('product')
    def on_change_product(self):
        self.unit = self.product.default_uom if self.product else None
