# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
import datetime as dt
import unittest
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.modules.company.tests import (
    CompanyTestMixin, create_company, set_company)
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    ModuleTestCase, activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from hrp_materials.tests.tools import (
    as_user, create_department, create_user)


def create_equipment(company, department, code='CT-001', name="64排CT",
        category='ct', **values):
    Equipment = Pool().get('hrp.equipment')
    equipment, = Equipment.create([{
                'company': company.id,
                'department': department.id,
                'code': code,
                'name': name,
                'category': category,
                **values}])
    return equipment


class HrpEquipmentTestCase(CompanyTestMixin, ModuleTestCase):
    "Test HRP Equipment module"
    module = 'hrp_equipment'
    extras = ['account_asset']

    @with_transaction()
    def test_code_unique(self):
        "Asset codes are unique in a company"
        company = create_company()
        other = create_company(name="分院")
        with set_company(company):
            radiology = create_department(company, 'FSK', "放射科")
            create_equipment(company, radiology)
            # another hospital of the group may use the same code
            radiology2 = create_department(other, 'FSK', "放射科")
            create_equipment(other, radiology2)
            with self.assertRaises(UserError) as cm:
                create_equipment(company, radiology, name="另一台CT")
            self.assertIn("must be unique", cm.exception.message)

    @with_transaction()
    def test_department_company(self):
        "The department belongs to the equipment's company"
        company = create_company()
        other = create_company(name="分院")
        with set_company(company):
            foreign = create_department(other, 'FSK', "放射科")
            with self.assertRaises(UserError):
                create_equipment(company, foreign)

    @with_transaction()
    def test_purchase_cost(self):
        "The purchase cost cannot be negative"
        pool = Pool()
        Equipment = pool.get('hrp.equipment')
        company = create_company()
        with set_company(company):
            radiology = create_department(company, 'FSK', "放射科")
            with self.assertRaises(UserError) as cm:
                create_equipment(
                    company, radiology, code='CT-000',
                    purchase_cost=Decimal('-1'))
            self.assertIn("cannot be negative", cm.exception.message)
            equipment = create_equipment(
                company, radiology, purchase_cost=Decimal('0'))
            self.assertEqual(equipment.currency, company.currency)
            Equipment.write([equipment], {
                    'purchase_cost': Decimal('12800000.00')})
            with self.assertRaises(UserError):
                Equipment.write([equipment], {
                        'purchase_cost': Decimal('-0.01')})

    @with_transaction()
    def test_commissioning_date(self):
        "The commissioning date cannot be in the future"
        pool = Pool()
        today = pool.get('ir.date').today()
        company = create_company()
        with set_company(company):
            radiology = create_department(company, 'FSK', "放射科")
            create_equipment(
                company, radiology, code='CT-001', commissioning_date=today)
            with self.assertRaises(UserError) as cm:
                create_equipment(
                    company, radiology, code='CT-002',
                    commissioning_date=today + dt.timedelta(days=1))
            self.assertIn("in the future", cm.exception.message)

    @with_transaction()
    def test_status_workflow(self):
        "Status changes record who, when and why; scrapped is final"
        pool = Pool()
        Equipment = pool.get('hrp.equipment')
        StatusChange = pool.get('hrp.equipment.status_change')
        company = create_company()
        with set_company(company):
            radiology = create_department(company, 'FSK', "放射科")
            ct = create_equipment(company, radiology)
            engineer = create_user(
                'engineer', 'hrp_equipment.group_equipment_engineer',
                company)
        self.assertEqual(ct.status, 'in_use')
        self.assertTrue(ct.active)

        with as_user(engineer, company):
            before = dt.datetime.now().replace(microsecond=0)
            Equipment.repair([ct], reason="球管打火")
            after = dt.datetime.now()
            ct = Equipment(ct.id)
            self.assertEqual(ct.status, 'under_repair')
            change, = ct.status_changes
            self.assertEqual(
                (change.from_status, change.to_status),
                ('in_use', 'under_repair'))
            self.assertEqual(change.user, engineer)
            self.assertEqual(change.reason, "球管打火")
            self.assertTrue(before <= change.date <= after)

            Equipment.use([ct], reason="  更换球管后验收合格  ")
            Equipment.idle([ct], reason="夜间停用")
            ct = Equipment(ct.id)
            self.assertEqual(ct.status, 'idle')
            self.assertEqual(
                [(c.from_status, c.to_status, c.reason)
                    for c in reversed(ct.status_changes)], [
                    ('in_use', 'under_repair', "球管打火"),
                    ('under_repair', 'in_use',
                        "更换球管后验收合格"),
                    ('in_use', 'idle', "夜间停用"),
                    ])

            # a reason is required and the status must change
            for reason in ['', '   ']:
                with self.assertRaises(UserError):
                    Equipment.use([ct], reason=reason)
            with self.assertRaises(UserError):
                Equipment.idle([ct], reason="再次停用")
            with self.assertRaises(UserError) as cm:
                Equipment.change_status([ct], 'idle', "再次停用")
            self.assertIn("already", cm.exception.message)
            # the status cannot be written directly
            with self.assertRaises(UserError):
                Equipment.write([ct], {'status': 'in_use'})
            # nor the history
            change = ct.status_changes[0]
            with self.assertRaises(UserError):
                StatusChange.write([change], {'reason': "改写"})
            with self.assertRaises(UserError):
                StatusChange.delete([change])
            self.assertEqual(Equipment(ct.id).status, 'idle')
            self.assertEqual(len(Equipment(ct.id).status_changes), 3)

            Equipment.scrap([ct], reason="超过使用年限，报废")
            ct = Equipment(ct.id)
            self.assertEqual(ct.status, 'scrapped')
            self.assertFalse(ct.active)
            for button in ['use', 'idle', 'repair']:
                with self.assertRaises(UserError):
                    getattr(Equipment, button)([ct], reason="恢复")
            with self.assertRaises(UserError):
                Equipment.write([ct], {'status': 'in_use'})
            with self.assertRaises(UserError):
                Equipment.delete([ct])
            self.assertEqual(len(ct.status_changes), 4)
            # (checked last: a refused create is rolled back by the request)
            with self.assertRaises(UserError):
                StatusChange.create([{
                            'equipment': ct.id, 'from_status': 'idle',
                            'to_status': 'in_use', 'user': engineer.id,
                            'date': dt.datetime.now(), 'reason': "伪造",
                            }])

        # scrapped equipment is inactive: hidden unless asked for
        self.assertEqual(Equipment.search([]), [])
        self.assertEqual(Equipment.search([('active', '=', False)]), [ct])
        self.assertEqual(
            Equipment.search([('active', 'in', [True, False])]), [ct])
        # the transitions go to the model log as well (stored at commit)
        logs = [l for l in Transaction().log_records
            if l.resource == ct and l.event == 'transition']
        self.assertEqual(
            [l.target for l in logs], [
                'status:under_repair', 'status:in_use', 'status:idle',
                'status:scrapped'])
        self.assertEqual({l.user for l in logs}, {engineer})

    @with_transaction()
    def test_status_buttons_dialog(self):
        "Without a reason the status buttons open the dialog asking it"
        pool = Pool()
        Equipment = pool.get('hrp.equipment')
        ModelData = pool.get('ir.model.data')
        ChangeStatus = pool.get('hrp.equipment.change_status', type='wizard')
        company = create_company()
        with set_company(company):
            radiology = create_department(company, 'FSK', "放射科")
            mri = create_equipment(
                company, radiology, code='MR-001', name="3.0T 磁共振",
                category='mri')
            engineer = create_user(
                'engineer', 'hrp_equipment.group_equipment_engineer',
                company)

        with as_user(engineer, company):
            action_id = Equipment.repair([mri])
            self.assertEqual(
                action_id,
                ModelData.get_id('hrp_equipment', 'wizard_repair'))
            self.assertEqual(Equipment(mri.id).status, 'in_use')

            with Transaction().set_context(
                    active_model='hrp.equipment', active_id=mri.id,
                    active_ids=[mri.id], action_id=action_id):
                session_id, _, _ = ChangeStatus.create()
                wizard = ChangeStatus(session_id)
                self.assertEqual(
                    wizard.default_start(None), {'status': 'under_repair'})
                wizard.start.status = 'under_repair'
                wizard.start.reason = "梯度线圈故障"
                self.assertEqual(wizard.transition_change(), 'end')
            mri = Equipment(mri.id)
            self.assertEqual(mri.status, 'under_repair')
            self.assertEqual(mri.status_changes[0].reason, "梯度线圈故障")
            self.assertEqual(mri.status_changes[0].user, engineer)

            # the dialog refuses a scrapped device before asking anything
            Equipment.scrap([mri], reason="无维修价值")
            use_action = ModelData.get_id('hrp_equipment', 'wizard_use')
            with Transaction().set_context(
                    active_model='hrp.equipment', active_id=mri.id,
                    active_ids=[mri.id], action_id=use_action):
                session_id, _, _ = ChangeStatus.create()
                wizard = ChangeStatus(session_id)
                with self.assertRaises(UserError):
                    wizard.default_start(None)

    @with_transaction()
    def test_department_rule(self):
        "Department users see only their department's equipment"
        pool = Pool()
        Equipment = pool.get('hrp.equipment')
        StatusChange = pool.get('hrp.equipment.status_change')
        Department = pool.get('hrp.department')
        company = create_company()
        with set_company(company):
            radiology = create_department(company, 'FSK', "放射科")
            icu = create_department(company, 'ICU', "重症医学科")
            ct = create_equipment(company, radiology)
            ventilator = create_equipment(
                company, icu, code='HX-001', name="有创呼吸机",
                category='ventilator')
            nurse = create_user('nurse', 'hrp_materials.group_nurse', company)
            director = create_user(
                'director', 'hrp_materials.group_director', company)
            leader = create_user(
                'leader', 'hrp_materials.group_leadership', company)
            engineer = create_user(
                'engineer', 'hrp_equipment.group_equipment_engineer',
                company)
            keeper = create_user(
                'keeper', 'hrp_materials.group_store_keeper', company)
            Department.write([icu], {'members': [('add', [nurse.id])]})
            Department.write([radiology], {'director': director.id})
            Equipment.repair([ct, ventilator], reason="年度检修")

        with as_user(nurse, company):
            self.assertEqual(Equipment.search([]), [ventilator])
            self.assertEqual(
                [c.equipment for c in StatusChange.search([])], [ventilator])
            with self.assertRaises(AccessError):
                Equipment.read([ct.id], ['name'])
            # and only read it
            with self.assertRaises(AccessError):
                Equipment.write([ventilator], {'location': "ICU 3床"})
            with self.assertRaises(UserError):
                Equipment.use([ventilator], reason="修好了")
            with self.assertRaises(AccessError):
                create_equipment(company, icu, code='HX-002')

        with as_user(director, company):
            self.assertEqual(Equipment.search([]), [ct])

        for user in [leader, engineer]:
            with as_user(user, company):
                self.assertEqual(
                    set(Equipment.search([])), {ct, ventilator})
                self.assertEqual(len(StatusChange.search([])), 2)
                if user == leader:
                    with self.assertRaises(UserError):
                        Equipment.use([ct], reason="修好了")
                else:
                    Equipment.use([ct], reason="修好了")

        with as_user(keeper, company):
            with self.assertRaises(AccessError):
                Equipment.search([])

    @with_transaction()
    def test_asset(self):
        "The equipment links to one fixed asset of its company"
        pool = Pool()
        Equipment = pool.get('hrp.equipment')
        Department = pool.get('hrp.department')
        Asset = pool.get('account.asset')
        self.assertIn('asset', Equipment._fields)
        company = create_company()
        with set_company(company):
            radiology = create_department(company, 'FSK', "放射科")
            equipment = Equipment(
                company=company, department=radiology, code='DSA-001',
                name="血管造影机", category='dsa')
            equipment.asset = Asset(
                value=Decimal('6500000'),
                start_date=dt.date(2023, 3, 1))
            equipment.on_change_asset()
            self.assertEqual(equipment.purchase_cost, Decimal('6500000'))
            self.assertEqual(equipment.commissioning_date, dt.date(2023, 3, 1))
            # a cost already entered is kept
            equipment.purchase_cost = Decimal('6480000')
            equipment.on_change_asset()
            self.assertEqual(equipment.purchase_cost, Decimal('6480000'))
            equipment.asset = None
            equipment.save()
            nurse = create_user('nurse', 'hrp_materials.group_nurse', company)
            engineer = create_user(
                'engineer', 'hrp_equipment.group_equipment_engineer',
                company)
            Department.write([radiology], {'members': [('add', [nurse.id])]})

        # department users do not see the asset link, engineers do
        with as_user(nurse, company):
            self.assertNotIn('asset', Equipment.fields_get())
            self.assertNotIn(
                'asset', Equipment.fields_view_get(view_type='form')['fields'])
            with self.assertRaises(AccessError):
                Equipment.read([equipment.id], ['asset'])
            Equipment.read([equipment.id], ['name', 'purchase_cost'])
        with as_user(engineer, company):
            self.assertIn(
                'asset', Equipment.fields_view_get(view_type='form')['fields'])
            Equipment.read([equipment.id], ['asset.rec_name'])
            Asset.search([])


class HrpEquipmentWithoutAssetTestCase(unittest.TestCase):
    "Test HRP Equipment without account_asset"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_equipment'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    @with_transaction()
    def test_no_asset_field(self):
        "The asset link and its views exist only with account_asset"
        pool = Pool()
        Equipment = pool.get('hrp.equipment')
        ModelData = pool.get('ir.model.data')
        self.assertNotIn('asset', Equipment._fields)
        self.assertFalse(ModelData.search([
                    ('module', '=', 'hrp_equipment'),
                    ('fs_id', '=', 'equipment_view_form_asset'),
                    ]))
        view = Equipment.fields_view_get(view_type='form')
        self.assertNotIn('asset', view['fields'])
        self.assertIn('purchase_cost', view['fields'])


del ModuleTestCase
