# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Maintenance plans counted in examinations from the PACS usage feed, and
the overdue search."""
import datetime as dt
import unittest
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)

from hrp_materials.tests.tools import create_department

from .test_module import create_equipment


def pacs_usage(company, days):
    """Record the PACS usage {(device, day): exams} (8 hours a day) of a
    PACS endpoint of company"""
    pool = Pool()
    Endpoint = pool.get('his.endpoint')
    Usage = pool.get('his.pacs.usage')
    from his_connector.pacs import Usage as Figures
    endpoints = Endpoint.search([('purpose', '=', 'pacs')])
    if not endpoints:
        endpoints = Endpoint.create([{
                    'name': "PACS", 'purpose': 'pacs', 'kind': 'pacs_http',
                    'url': 'https://pacs.example.org/',
                    }])
    endpoint, = endpoints
    return Usage.record_usage(endpoint, [
            Figures(device, day, exams, Decimal(8))
            for (device, day), exams in days.items()], 'http')


class MaintenanceTestCase(unittest.TestCase):
    "Equipment maintenance"

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
    def test_exam_plan(self):
        """A plan in examinations is due when the PACS has counted them
        since the last maintenance"""
        pool = Pool()
        Plan = pool.get('hrp.equipment.maintenance.plan')
        Order = pool.get('hrp.equipment.maintenance')
        Equipment = pool.get('hrp.equipment')
        company = create_company()
        today = dt.date(2026, 11, 20)
        with set_company(company):
            radiology = create_department(company, 'FSK', "放射科")
            mri = create_equipment(
                company, radiology, code='MR-001', name="3.0T磁共振",
                category='mri', pacs_device='MR01')
            other = create_equipment(
                company, radiology, code='MR-002', name="1.5T磁共振",
                category='mri', pacs_device='MR02')
            plan, = Plan.create([{
                        'equipment': mri.id,
                        'name': "球管保养",
                        'interval_type': 'exams',
                        'interval_exams': 100,
                        'start_date': dt.date(2026, 11, 1),
                        }])
            pacs_usage(company, {
                    ('MR01', dt.date(2026, 10, 31)): 90,  # before the start
                    ('MR01', dt.date(2026, 11, 2)): 40,
                    ('MR01', dt.date(2026, 11, 3)): 45,
                    ('MR02', dt.date(2026, 11, 3)): 70,  # another device
                    })
            self.assertEqual(Plan(plan.id).exams_since, 85)
            self.assertEqual(Plan.generate_orders(today), [])

            pacs_usage(company, {('MR01', dt.date(2026, 11, 4)): 15})
            self.assertEqual(Plan(plan.id).exams_since, 100)
            order, = Plan.generate_orders(today)
            self.assertEqual(order.due_date, today)
            self.assertEqual(order.plan, plan)
            self.assertEqual(Plan.generate_orders(today), [])

            # done on the 20th: the next 100 examinations count from there
            Order.do([order])
            self.assertEqual(Order(order.id).done_date, dt.date.today())
            Order.write([order], {'done_date': today})
            self.assertEqual(Plan(plan.id).exams_since, 0)
            pacs_usage(company, {('MR01', dt.date(2026, 11, 21)): 60})
            self.assertEqual(Plan(plan.id).exams_since, 60)

            # a scrapped device gets no more work orders
            pacs_usage(company, {('MR01', dt.date(2026, 11, 22)): 60})
            Equipment.change_status([mri], 'scrapped', "报废")
            self.assertEqual(Plan.generate_orders(today), [])
            self.assertEqual(other.maintenance_plans, ())

    @with_transaction()
    def test_overdue(self):
        "Overdue work orders are found by search and refused once scrapped"
        pool = Pool()
        Plan = pool.get('hrp.equipment.maintenance.plan')
        Order = pool.get('hrp.equipment.maintenance')
        Equipment = pool.get('hrp.equipment')
        Date = pool.get('ir.date')
        today = Date.today()
        company = create_company()
        with set_company(company):
            radiology = create_department(company, 'FSK', "放射科")
            ct = create_equipment(company, radiology)
            late, soon = Plan.create([{
                        'equipment': ct.id, 'name': "月度保养",
                        'interval_days': 30,
                        'start_date': today - dt.timedelta(days=31),
                        }, {
                        'equipment': ct.id, 'name': "年度保养",
                        'interval_days': 365,
                        'start_date': today - dt.timedelta(days=360),
                        }])
            late_order, soon_order = Plan.generate_orders()
            self.assertEqual(
                Order.search([('overdue', '=', True)]), [late_order])
            self.assertEqual(
                Order.search([('overdue', '=', False)]), [soon_order])
            self.assertEqual(Order.check_overdue(), [late_order])
            self.assertEqual(Order.check_overdue(), [])

            Equipment.change_status([ct], 'scrapped', "报废")
            with self.assertRaises(UserError) as cm:
                Order.do([soon_order])
            self.assertIn("is scrapped", cm.exception.message)
