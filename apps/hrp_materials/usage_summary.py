# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The used-products summary (已使用产品汇总): what the posted usage
registrations took out of the stores, by supplier, store and material, for
a period.

A used unit is attributed to the supplier that delivered its lot: the
supplier of the receipt (验收入库) that accepted the lot.  Units of lots no
receipt accepted (found stock, materials not tracked by lot) are not in
the summary.  *Used Products Summary (Spreadsheet)* prints the selected
rows to an OpenDocument spreadsheet (.ods) with the period in its title;
the desk's list export gives CSV."""
from sql import Null
from sql.aggregate import Count, Max, Min, Sum

from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, fields
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.report import Report
from trytond.transaction import Transaction

from .mixin import PeriodContextMixin, SupplierMaterialRowMixin


class UsageSummary(SupplierMaterialRowMixin, ModelSQL, ModelView):
    __name__ = 'hrp.usage.summary'
    __string__ = "Used Products Summary"

    quantity = fields.Float("Quantity", digits='unit')
    amount = Monetary("Amount", currency='currency', digits='currency')
    currency = fields.Many2One('currency.currency', "Currency")
    registrations = fields.Integer(
        "Registrations", help="The usage registrations that used it.")
    first_date = fields.Date("First Used")
    last_date = fields.Date("Last Used")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [
            ('supplier', 'ASC'), ('store', 'ASC'), ('product', 'ASC'),
            ('id', 'ASC')]

    @classmethod
    def lot_suppliers(cls):
        """The query of (lot, supplier): the supplier of the receipt that
        accepted each lot"""
        pool = Pool()
        Receipt = pool.get('hrp.receipt')
        ReceiptLine = pool.get('hrp.receipt.line')
        receipt = Receipt.__table__()
        line = ReceiptLine.__table__()
        return (line
            .join(receipt, condition=line.receipt == receipt.id)
            .select(
                line.lot.as_('lot'),
                Min(receipt.supplier).as_('supplier'),
                where=((receipt.state == 'done')
                    & (line.state == 'accepted')
                    & (line.lot != Null)),
                group_by=[line.lot]))

    @classmethod
    def table_query(cls):
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Line = pool.get('hrp.consumption.line')
        Company = pool.get('company.company')
        Product = pool.get('product.product')
        Template = pool.get('product.template')
        context = Transaction().context
        consumption = Consumption.__table__()
        line = Line.__table__()
        company = Company.__table__()
        product = Product.__table__()
        template = Template.__table__()
        lot_supplier = cls.lot_suppliers()

        where = Consumption.posted_lines_where(consumption, line, context)
        if context.get('supplier'):
            where &= lot_supplier.supplier == context['supplier']
        if context.get('store'):
            where &= consumption.store == context['store']
        return (line
            .join(consumption, condition=line.consumption == consumption.id)
            .join(company, condition=consumption.company == company.id)
            .join(lot_supplier, condition=line.lot == lot_supplier.lot)
            .join(product, condition=line.product == product.id)
            .join(template, condition=product.template == template.id)
            .select(
                Min(line.id).as_('id'),
                consumption.company.as_('company'),
                company.currency.as_('currency'),
                lot_supplier.supplier.as_('supplier'),
                consumption.store.as_('store'),
                line.product.as_('product'),
                template.default_uom.as_('unit'),
                cls.quantity.sql_cast(Sum(line.quantity)).as_('quantity'),
                cls.amount.sql_cast(Sum(line.amount)).as_('amount'),
                Count(consumption.id, distinct=True).as_('registrations'),
                Min(consumption.date).as_('first_date'),
                Max(consumption.date).as_('last_date'),
                where=where,
                group_by=[
                    consumption.company, company.currency,
                    lot_supplier.supplier, consumption.store, line.product,
                    template.default_uom]))


class UsageSummaryContext(PeriodContextMixin, ModelView):
    __name__ = 'hrp.usage.summary.context'
    __string__ = "Used Products Summary Context"

    supplier = fields.Many2One(
        'party.party', "Supplier",
        context={
            'company': Eval('company', -1),
            },
        depends={'company'},
        help="Leave empty for every supplier.")
    store = fields.Many2One(
        'stock.location', "Store",
        domain=[
            ('hrp_store_type', 'in', ['department', 'high_value']),
            ],
        help="Leave empty for every store.")

    @classmethod
    def default_from_date(cls):
        context = Transaction().context
        if 'from_date' in context:
            return context['from_date']
        return Pool().get('ir.date').today().replace(day=1)


class UsageSummaryReport(Report):
    "The used products summary as an OpenDocument spreadsheet"
    __name__ = 'hrp.usage.summary.report'

    @classmethod
    def get_context(cls, records, header, data):
        pool = Pool()
        Model = pool.get('ir.model')
        Lang = pool.get('ir.lang')
        Summary = pool.get('hrp.usage.summary')
        context = super().get_context(records, header, data)
        transaction_context = Transaction().context
        lang = Lang.get()

        def date(name):
            value = transaction_context.get(name)
            return lang.strftime(value) if value else ''
        context['title'] = Model.get_name(Summary.__name__)
        context['period'] = gettext(
            'hrp_materials.msg_usage_summary_period',
            from_date=date('from_date'), to_date=date('to_date'))
        context['labels'] = {
            name: field['string']
            for name, field in Summary.fields_get().items()}
        return context
