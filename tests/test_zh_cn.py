# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The desk and its errors read in Chinese."""
import pytest

from hrp import i18n


@pytest.fixture(scope='module')
def database():
    from trytond.tests.test_tryton import activate_module, drop_db
    drop_db()
    activate_module(i18n.MODULES, lang='zh_CN')
    yield
    drop_db()


@pytest.mark.parametrize('module, xml_id, name', [
        ('hrp_materials', 'menu_materials', "物资管理"),
        ('hrp_equipment', 'menu_equipment', "设备管理"),
        ('his_connector', 'menu_interfaces', "接口"),
        ])
def test_menus_in_chinese(database, module, xml_id, name):
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME
    from trytond.transaction import Transaction
    with Transaction().start(DB_NAME, 0, context={'language': 'zh_CN'}):
        pool = Pool()
        Menu = pool.get('ir.ui.menu')
        ModelData = pool.get('ir.model.data')
        assert Menu(ModelData.get_id(module, xml_id)).name == name


def test_error_in_chinese(database):
    from trytond.exceptions import UserError
    from trytond.modules.company.tests import create_company, set_company
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME
    from trytond.transaction import Transaction
    with Transaction().start(
            DB_NAME, 0, context={'language': 'zh_CN'}) as transaction:
        Department = Pool().get('hrp.department')
        company = create_company()
        with set_company(company):
            Department.create([
                    {'code': 'XNK', 'name': "心内科", 'company': company.id}])
            with pytest.raises(UserError) as error:
                Department.create([
                        {'code': 'XNK', 'name': "心内科", 'company': company.id}])
        transaction.rollback()
    assert "科室编码在公司内必须唯一" in error.value.message


def test_list_columns_the_desk_draws(database):
    """sao 8.0 has no list column for a date-time: a list showing one
    without a widget (date or time) does not open in the desk"""
    from lxml import etree

    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME
    from trytond.transaction import Transaction
    with Transaction().start(DB_NAME, 0):
        pool = Pool()
        View = pool.get('ir.ui.view')
        wrong = []
        for view in View.search([
                    ('module', 'in', i18n.MODULES),
                    ('type', '=', 'tree'),
                    ]):
            Model = pool.get(view.model)
            arch = View(view.id).view_get(view.model)['arch']
            for node in etree.fromstring(arch).iter('field'):
                field = Model._fields.get(node.get('name'))
                if (field is not None
                        and field._type in {'datetime', 'timestamp'}
                        and not node.get('widget')):
                    wrong.append(f'{view.module}.{view.name}: '
                        f'{node.get("name")}')
    assert not wrong
