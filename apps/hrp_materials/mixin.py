# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Mixins shared by the HRP models."""
from decimal import Decimal

from trytond.model import fields
from trytond.modules.product import round_price
from trytond.pool import Pool
from trytond.pyson import Eval, If
from trytond.transaction import Transaction


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


class PeriodContextMixin:
    """The company and the period (from and to dates, today by default for
    the end) of a report's context model"""
    __slots__ = ()

    company = fields.Many2One('company.company', "Company", required=True)
    from_date = fields.Date(
        "From Date",
        domain=[
            If(Eval('to_date') & Eval('from_date'),
                ('from_date', '<=', Eval('to_date')),
                ()),
            ])
    to_date = fields.Date(
        "To Date",
        domain=[
            If(Eval('from_date') & Eval('to_date'),
                ('to_date', '>=', Eval('from_date')),
                ()),
            ])

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_to_date(cls):
        context = Transaction().context
        if 'to_date' in context:
            return context['to_date']
        return Pool().get('ir.date').today()


class SupplierMaterialRowMixin:
    """The row of a report on a supplier's material in a store of a company
    (used products summary, consignment stock); the model adds its quantity
    (in unit)"""
    __slots__ = ()

    company = fields.Many2One('company.company', "Company")
    supplier = fields.Many2One(
        'party.party', "Supplier",
        context={
            'company': Eval('company', -1),
            },
        depends={'company'})
    store = fields.Many2One('stock.location', "Store")
    product = fields.Many2One(
        'product.product', "Material",
        context={
            'company': Eval('company', -1),
            },
        depends={'company'})
    unit = fields.Many2One('product.uom', "Unit")


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


def cost_values(move, product, quantity, document):
    """The values costing a line of document (a department's consumption or
    write-off) posted by move for quantity in the product's unit: unit cost
    (the move's cost price, else the product's), amount, the department's
    cost centre and the material's first category"""
    unit_cost = move.cost_price
    if unit_cost is None:
        unit_cost = product.get_multivalue(
            'cost_price', company=document.company.id)
    unit_cost = round_price(unit_cost or Decimal(0))
    amount = document.company.currency.round(
        Decimal(str(quantity)) * unit_cost)
    categories = product.template.categories
    return {
        'move': move.id,
        'unit_cost': unit_cost,
        'amount': amount,
        'cost_center': document.department.cost_center.id,
        'category': categories[0].id if categories else None,
        }


def context_companies():
    """The companies a scheduled job works for: the context's (ir.cron runs
    once per company of the job), else every company"""
    Company = Pool().get('company.company')
    company_id = Transaction().context.get('company')
    if company_id is not None:
        return [Company(company_id)]
    return Company.search([])


def executemany(query, rows):
    """Run query (python-sql, its parameters placeholders) once for each of
    rows (its parameters, in the query's order): one statement prepared
    and sent in a pipeline, for the hundreds of thousands of rows of a
    night"""
    if not rows:
        return
    sql, params = tuple(query)
    assert all(len(r) == len(params) for r in rows)
    Transaction().connection.cursor().executemany(sql, rows)
