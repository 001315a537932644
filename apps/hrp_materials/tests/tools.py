# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Helpers for the tests of the HRP modules (departments, stores, users)."""
import random
import time
from contextlib import contextmanager

from trytond import backend
from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME
from trytond.transaction import Transaction, TransactionError


def create_department(company, code, name, **values):
    Department = Pool().get('hrp.department')
    department, = Department.create([{
                'code': code, 'name': name, 'company': company.id,
                **values}])
    return department


def create_cost_center(company, name):
    """A cost centre (an analytic account) of company named name, under the
    company's root "科室成本", created with the first"""
    Account = Pool().get('analytic_account.account')
    roots = Account.search([
            ('company', '=', company.id), ('type', '=', 'root'),
            ('name', '=', "科室成本")])
    if not roots:
        roots = Account.create([{
                    'name': "科室成本", 'type': 'root',
                    'company': company.id}])
    root, = roots
    cost_center, = Account.create([{
                'name': name, 'type': 'normal', 'root': root.id,
                'parent': root.id, 'company': company.id}])
    return cost_center


def create_store(name, department, store_type='department'):
    Location = Pool().get('stock.location')
    store, = Location.create([{
                'name': name, 'type': 'storage',
                'hrp_store_type': store_type,
                'hrp_department': department.id if department else None,
                }])
    return store


def create_user(login, group_xml_id, company):
    "Create a user of company in group_xml_id ('module.xml_id')"
    pool = Pool()
    User = pool.get('res.user')
    ModelData = pool.get('ir.model.data')
    group_id = ModelData.get_id(*group_xml_id.split('.'))
    user, = User.create([{
                'login': login, 'name': login,
                'groups': [('add', [group_id])],
                'companies': [('add', [company.id])],
                'company': company.id,
                }])
    return user


@contextmanager
def as_user(user, company):
    "Act as user through the access checks, like a request from the desk"
    with Transaction().set_user(user.id), Transaction().set_context(
            company=company.id, _check_access=True):
        yield


def run_like_dispatcher(user_id, context, func, attempts=200, readonly=False):
    """Run func in its own transaction as trytond's dispatcher runs a
    request: restart it with the locks it asks for (TransactionError) and
    retry it on lock and serialisation failures, at most attempts times.
    Return (result, retries)."""
    extras = {}
    for attempt in range(attempts):
        try:
            with Transaction().start(DB_NAME, user_id, context=context,
                    readonly=readonly, **extras) as transaction:
                try:
                    result = func()
                except TransactionError as e:
                    transaction.rollback()
                    e.fix(extras)
                    continue
                if not readonly:
                    transaction.commit()
                return result, attempt
        except backend.DatabaseOperationalError:
            time.sleep(random.uniform(0.01, 0.05) * min(attempt + 1, 10))
    raise RuntimeError(f"gave up after {attempts} attempts")


def setup_accounting(company, today=None):
    """Give company what invoicing needs: Tryton's universal chart of
    accounts (receivable and payable defaults), a fiscal year of today with
    its periods and invoice sequences, the default expense and revenue
    accounts of new accounting categories and an accounting category.
    Return a namespace with fiscalyear, payable, expense, revenue and
    account_category."""
    from types import SimpleNamespace

    from trytond.modules.account.tests import create_chart, get_fiscalyear
    from trytond.modules.account_invoice.tests import set_invoice_sequences

    pool = Pool()
    Account = pool.get('account.account')
    AccountConfiguration = pool.get('account.configuration')
    Category = pool.get('product.category')
    FiscalYear = pool.get('account.fiscalyear')
    create_chart(company)
    fiscalyear = set_invoice_sequences(get_fiscalyear(company, today=today))
    fiscalyear.save()
    FiscalYear.create_period([fiscalyear])

    def account(type_):
        account, = Account.search([
                ('type.%s' % type_, '=', True),
                ('closed', '!=', True),
                ('company', '=', company.id),
                ], limit=1)
        return account
    expense, revenue = account('expense'), account('revenue')
    payable = account('payable')
    configuration = AccountConfiguration(1)
    configuration.default_category_account_expense = expense
    configuration.default_category_account_revenue = revenue
    configuration.save()
    account_category, = Category.create([{
                'name': "Materials (accounting)",
                'accounting': True,
                'account_expense': expense.id,
                'account_revenue': revenue.id,
                }])
    return SimpleNamespace(
        fiscalyear=fiscalyear, payable=payable, expense=expense,
        revenue=revenue, account_category=account_category)


def account_category(name="卫生材料"):
    """The accounting product category of purchased materials (Tryton's
    purchase lines need one for their taxes), created once"""
    Category = Pool().get('product.category')
    categories = Category.search([
            ('name', '=', name), ('accounting', '=', True)], limit=1)
    if categories:
        return categories[0]
    category, = Category.create([{'name': name, 'accounting': True}])
    return category
