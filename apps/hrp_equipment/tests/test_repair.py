# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Repairs: the checks the scenario does not reach through the desk."""
import unittest
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from hrp_materials.tests.tools import (
    as_user, create_department, create_user)

from .test_module import create_equipment


class RepairTestCase(unittest.TestCase):
    "Equipment repairs"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_equipment'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def setup_hospital(self, company):
        pool = Pool()
        Department = pool.get('hrp.department')
        self.radiology = create_department(company, 'FSK', "放射科")
        self.icu = create_department(company, 'ICU', "重症医学科")
        self.ct = create_equipment(company, self.radiology)
        self.ventilator = create_equipment(
            company, self.icu, code='HX-001', name="呼吸机",
            category='ventilator')
        self.engineer = create_user(
            'engineer', 'hrp_equipment.group_equipment_engineer', company)
        self.nurse = create_user(
            'nurse', 'hrp_materials.group_nurse', company)
        self.head_nurse = create_user(
            'head', 'hrp_materials.group_head_nurse', company)
        Department.write([self.radiology], {
                'members': [('add', [self.nurse.id])],
                'head_nurse': self.head_nurse.id,
                })

    def repaired(self, company):
        "A CT repair reported by the nurse and completed by the engineer"
        Repair = Pool().get('hrp.equipment.repair')
        with as_user(self.nurse, company):
            repair, = Repair.create([{
                        'equipment': self.ct.id,
                        'symptom': "球管打火",
                        }])
            Repair.report([repair])
        with as_user(self.engineer, company):
            repair = Repair(repair.id)
            Repair.start([repair])
            Repair.write([repair], {'diagnosis': "灯丝老化"})
            Repair.complete([repair])
        return Repair(repair.id)

    @with_transaction()
    def test_close_needs_acceptance(self):
        "A repair is closed by the department's acceptance only"
        pool = Pool()
        Repair = pool.get('hrp.equipment.repair')
        Event = pool.get('hrp.equipment.repair.event')
        company = create_company()
        with set_company(company):
            self.setup_hospital(company)
            repair = self.repaired(company)
            self.assertEqual(repair.state, 'repaired')
            events = Event.search([('repair', '=', repair.id)])
            with as_user(self.engineer, company):
                with self.assertRaises(UserError) as cm:
                    Repair.close([Repair(repair.id)])
                self.assertEqual(cm.exception.message,
                    f'Repair "{repair.rec_name}" cannot be closed before '
                    'the department "[FSK] 放射科" has accepted it.')
            repair = Repair(repair.id)
            self.assertEqual(repair.state, 'repaired')
            self.assertIsNone(repair.accepted_at)
            self.assertEqual(
                Event.search([('repair', '=', repair.id)]), events)
            self.assertEqual(repair.equipment.status, 'under_repair')

    @with_transaction()
    def test_accept_by_department(self):
        """Another department cannot accept, nor the engineer who repaired
        it even when he belongs to the department"""
        pool = Pool()
        Repair = pool.get('hrp.equipment.repair')
        Department = pool.get('hrp.department')
        company = create_company()
        with set_company(company):
            self.setup_hospital(company)
            repair = self.repaired(company)
            icu_nurse = create_user(
                'icu', 'hrp_materials.group_nurse', company)
            Department.write([self.icu], {
                    'members': [('add', [icu_nurse.id])]})
            with as_user(icu_nurse, company):
                self.assertEqual(Repair.search([]), [])
            with Transaction().set_user(icu_nurse.id):
                with self.assertRaises(UserError) as cm:
                    Repair.accept([Repair(repair.id)])
                self.assertIn("is accepted by the department "
                    "\"[FSK] 放射科\"", cm.exception.message)
            # the engineer joins radiology: still not his to accept
            Department.write([self.radiology], {
                    'members': [('add', [self.engineer.id])]})
            with Transaction().set_user(self.engineer.id):
                with self.assertRaises(UserError) as cm:
                    Repair.accept([Repair(repair.id)])
                self.assertIn("not the engineer", cm.exception.message)
            self.assertEqual(Repair(repair.id).state, 'repaired')

            with as_user(self.head_nurse, company):
                Repair.accept([Repair(repair.id)])
            repair = Repair(repair.id)
            self.assertEqual(repair.state, 'closed')
            self.assertEqual(repair.accepted_by, self.head_nurse)
            self.assertEqual(repair.equipment.status, 'in_use')

    @with_transaction()
    def test_report_bad_input(self):
        """A department reports its own devices only, never a scrapped one;
        costs are not negative; a reported repair is not deleted"""
        pool = Pool()
        Repair = pool.get('hrp.equipment.repair')
        Equipment = pool.get('hrp.equipment')
        company = create_company()
        with set_company(company):
            self.setup_hospital(company)
            with as_user(self.nurse, company):
                with self.assertRaises(UserError) as cm:
                    Repair.create([{
                                'equipment': self.ventilator.id,
                                'symptom': "报警",
                                }])
                self.assertIn("Own department repairs", cm.exception.message)

            Equipment.change_status([self.ventilator], 'scrapped', "报废")
            with self.assertRaises(UserError) as cm:
                Repair.create([{
                            'equipment': self.ventilator.id,
                            'symptom': "报警",
                            }])
            self.assertIn("is scrapped", cm.exception.message)

            repair = self.repaired(company)
            for name in ['labour_hours', 'labour_cost', 'external_cost']:
                with self.assertRaises(UserError):
                    Repair.write([repair], {name: Decimal('-1')})
            with self.assertRaises(UserError) as cm:
                Repair.delete([repair])
            self.assertIn("cannot be deleted", cm.exception.message)

    @with_transaction()
    def test_out_of_service(self):
        """The device stays under repair while an out-of-service repair is
        open; a repair that keeps it in service does not touch it"""
        pool = Pool()
        Repair = pool.get('hrp.equipment.repair')
        company = create_company()
        with set_company(company):
            self.setup_hospital(company)
            first = self.repaired(company)
            with as_user(self.nurse, company):
                second, minor = Repair.create([{
                            'equipment': self.ct.id,
                            'symptom': "高压报错",
                            }, {
                            'equipment': self.ct.id,
                            'symptom': "检查床按钮松动",
                            'out_of_service': False,
                            }])
                Repair.report([second, minor])
                Repair.accept([Repair(first.id)])
            self.assertEqual(self.ct.status, 'under_repair')
            with as_user(self.nurse, company):
                Repair.cancel([Repair(second.id)], reason="同一故障")
            self.assertEqual(self.ct.status, 'in_use')
            self.assertEqual(Repair(minor.id).state, 'reported')
            with self.assertRaises(UserError):
                Repair.cancel([Repair(minor.id)], reason=" ")
            self.assertEqual(Repair(minor.id).state, 'reported')
