# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Purchase requests from their three sources and purchase plans approved
into purchases."""
import datetime as dt
import unittest
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from .test_lot import setup_stores
from .test_module import create_material
from .tools import account_category, as_user, create_user


def create_supplier(name, templates, expiry=None):
    "A supplier with a valid trading licence authorised for templates"
    Party = Pool().get('party.party')
    today = Pool().get('ir.date').today()
    supplier, = Party.create([{
                'name': name,
                'hrp_licences': [('create', [{
                                'type': 'device_trading',
                                'number': f'{name}-001',
                                'expiry': expiry or (
                                    today + dt.timedelta(days=365)),
                                }])],
                'hrp_authorised_materials': [
                    ('add', [t.id for t in templates])],
                }])
    return supplier


def purchasable(template, supplier=None, price=None):
    "Make template purchasable, from supplier at price"
    template.purchasable = True
    template.purchase_uom = template.default_uom
    template.account_category = account_category()
    if supplier:
        template.product_suppliers = [{
                'party': supplier.id,
                'prices': [{'quantity': 0, 'unit_price': price}],
                }]
    template.save()
    product, = template.products
    return product


class Procurement:
    "A company, its central store, a department, three materials, suppliers"

    def __init__(self):
        self.company = create_company()
        with set_company(self.company):
            self._setup()

    def _setup(self):
        pool = Pool()
        Location = pool.get('stock.location')
        self.central, self.cardio_store, _ = setup_stores(self.company)
        self.warehouse, = Location.search([('type', '=', 'warehouse')])
        self.cardio = self.cardio_store.hrp_department
        swab_t = create_material("医用棉签", gtin=None, cost=Decimal('0.5'))
        glove_t = create_material("医用手套", gtin=None, cost=Decimal('1.2'))
        stent_t = create_material(
            "冠脉支架", gtin=None, cost=Decimal('800'), implant=True)
        self.acme = create_supplier("华东医疗器械", [swab_t, glove_t])
        self.meditech = create_supplier("北方医疗", [stent_t])
        self.swab = purchasable(swab_t, self.acme, Decimal('0.45'))
        self.glove = purchasable(glove_t, self.acme, Decimal('1.10'))
        self.stent = purchasable(stent_t, self.meditech, Decimal('780'))
        self.officer = create_user(
            'buyer', 'hrp_materials.group_procurement', self.company)
        self.leader = create_user(
            'leader', 'hrp_materials.group_leadership', self.company)

    def new_request(self, product, quantity, supplier=None, user=None):
        "Enter a purchase request by hand through the wizard"
        pool = Pool()
        Wizard = pool.get('hrp.purchase.request.new', type='wizard')
        Request = pool.get('purchase.request')
        with as_user(user or self.officer, self.company):
            session_id, _, _ = Wizard.create()
            wizard = Wizard(session_id)
            values = wizard.default_start(None)
            wizard.start.company = self.company
            wizard.start.department = self.cardio
            wizard.start.product = product
            wizard.start.quantity = quantity
            wizard.start.unit = product.default_uom
            wizard.start.warehouse = pool.get('stock.location')(
                values['warehouse'])
            wizard.start.supplier = supplier
            wizard.start.supply_date = None
            wizard.start.reason = "门诊新开换药室\n首批备货"
            _, data = wizard.do_create_({})
            Wizard.delete(session_id)
        return Request(data['res_id'][0])

    def plan(self, **values):
        Plan = Pool().get('hrp.purchase.plan')
        today = Pool().get('ir.date').today()
        with as_user(self.officer, self.company):
            plan, = Plan.create([{
                        'period_start': today,
                        'period_end': today + dt.timedelta(days=30),
                        **values}])
        return Plan(plan.id)

    def act(self, user, method, records, *args):
        with as_user(user, self.company):
            Model = records[0].__class__
            records = Model.browse([r.id for r in records])
            return getattr(Model, method)(records, *args)

    def leadership_rule(self, **values):
        pool = Pool()
        Rule = pool.get('hrp.approval.rule')
        ModelData = pool.get('ir.model.data')
        rule, = Rule.create([{
                    'name': "采购计划审批", 'company': self.company.id,
                    'document': 'hrp.purchase.plan',
                    'steps': [('create', [{
                                    'name': "院领导", 'approver': 'group',
                                    'group': ModelData.get_id(
                                        'hrp_materials', 'group_leadership'),
                                    }])],
                    **values}])
        return rule


class PurchasePlanTestCase(unittest.TestCase):
    "Purchase requests and purchase plans"

    @classmethod
    def setUpClass(cls):
        drop_db()
        activate_module('hrp_materials')
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    @with_transaction()
    def test_manual_request(self):
        "A manual request records its department and reason; bad input"
        proc = Procurement()
        with set_company(proc.company):
            request = proc.new_request(proc.swab, 100)
            self.assertEqual(request.hrp_source, 'manual')
            self.assertEqual(request.hrp_department, proc.cardio)
            self.assertEqual(request.state, 'draft')
            self.assertEqual(request.quantity, 100)
            self.assertEqual(request.warehouse, proc.warehouse)
            self.assertIn("换药室", request.hrp_reason)
            Request = Pool().get('purchase.request')
            self.assertEqual(
                Request.search([('hrp_source', '=', 'manual')]), [request])
            self.assertEqual(
                Request.search([('hrp_source', '=', 'requisition')]), [])
            for quantity in [0, -5]:
                with self.assertRaisesRegex(UserError, "greater than zero"):
                    proc.new_request(proc.glove, quantity)
            self.assertEqual(len(Request.search([])), 1)
            # Tryton keeps refusing direct creation from the client
            with as_user(proc.officer, proc.company), \
                    self.assertRaises(UserError):
                Request.create([{
                            'product': proc.swab.id, 'quantity': 1,
                            'unit': proc.swab.default_uom.id,
                            'company': proc.company.id}])

    @with_transaction()
    def test_cancel_request(self):
        "A draft request is cancelled with a reason, who and when"
        proc = Procurement()
        with set_company(proc.company):
            request = proc.new_request(proc.swab, 10)
            proc.act(proc.officer, 'do_cancel', [request], "重复申请")
            request = request.__class__(request.id)
            self.assertEqual(request.state, 'cancelled')
            self.assertEqual(request.hrp_cancel_reason, "重复申请")
            self.assertEqual(request.hrp_cancelled_by, proc.officer)
            self.assertIsNotNone(request.hrp_cancelled_at)
            with self.assertRaisesRegex(UserError, "no longer be cancelled"):
                proc.act(proc.officer, 'do_cancel', [request], "again")
            # a cancelled request is not collected
            plan = proc.plan()
            proc.act(proc.officer, 'collect', [plan])
            self.assertEqual(plan.__class__(plan.id).lines, ())

    @with_transaction()
    def test_order_point_requests(self):
        """The order point job asks for the shortage; a plan holding its
        request keeps it and is not asked twice"""
        pool = Pool()
        OrderPoint = pool.get('stock.order_point')
        Request = pool.get('purchase.request')
        proc = Procurement()
        with set_company(proc.company), Transaction().set_user(0):
            OrderPoint.create([{
                        'product': proc.glove.id,
                        'type': 'purchase',
                        'location': proc.warehouse.id,
                        'min_quantity': 50,
                        'target_quantity': 200,
                        'company': proc.company.id,
                        }])
            with Transaction().set_user(proc.officer.id):
                Request.generate_requests()
            request, = Request.search([('hrp_source', '=', 'order_point')])
            self.assertEqual(request.product, proc.glove)
            self.assertEqual(request.quantity, 200)
            self.assertEqual(request.party, proc.acme)

            plan = proc.plan()
            proc.act(proc.officer, 'collect', [plan])
            with Transaction().set_user(proc.officer.id):
                Request.generate_requests()
            requests = Request.search([('hrp_source', '=', 'order_point')])
            self.assertEqual(requests, [request])
            self.assertEqual(
                request.__class__(request.id).hrp_plan_line,
                plan.__class__(plan.id).lines[0])

    @with_transaction()
    def test_plan_collect_and_order(self):
        """A plan aggregates requests by supplier and material; its approval
        orders one purchase per supplier at the supplier's price"""
        pool = Pool()
        Purchase = pool.get('purchase.purchase')
        Plan = pool.get('hrp.purchase.plan')
        Task = pool.get('hrp.approval.task')
        proc = Procurement()
        with set_company(proc.company):
            proc.leadership_rule()
            r1 = proc.new_request(proc.swab, 100)
            r2 = proc.new_request(proc.swab, 50)
            r3 = proc.new_request(proc.glove, 20)
            r4 = proc.new_request(proc.stent, 2)
            plan = proc.plan(description="2026年12月常规采购")
            proc.act(proc.officer, 'collect', [plan])
            plan = Plan(plan.id)
            self.assertEqual(plan.request_count, 4)
            lines = {l.product: l for l in plan.lines}
            self.assertEqual(set(lines), {proc.swab, proc.glove, proc.stent})
            swab = lines[proc.swab]
            self.assertEqual(swab.supplier, proc.acme)
            self.assertEqual(swab.requested_quantity, 150)
            self.assertEqual(set(swab.requests), {r1, r2})
            self.assertEqual(swab.unit_price, Decimal('0.45'))
            self.assertEqual(swab.amount, Decimal('67.50'))
            self.assertEqual(lines[proc.stent].supplier, proc.meditech)
            self.assertEqual(plan.total_amount,
                Decimal('67.50') + Decimal('22.00') + Decimal('1560.00'))
            self.assertIsNotNone(plan.collected_at)
            self.assertEqual(plan.collected_by, proc.officer)

            # the officer orders 120 swabs and no gloves
            with as_user(proc.officer, proc.company):
                lines = {l.product: l for l in Plan(plan.id).lines}
                lines[proc.swab].quantity = 120
                lines[proc.swab].save()
                lines[proc.glove].quantity = 0
                lines[proc.glove].save()
            # a request held by a submitted plan cannot be changed by hand
            proc.act(proc.officer, 'submit', [plan])
            plan = Plan(plan.id)
            self.assertEqual(plan.state, 'submitted')
            self.assertEqual(plan.approval_state, 'pending')
            with as_user(proc.officer, proc.company), \
                    self.assertRaisesRegex(UserError, "held by purchase plan"):
                r1.__class__.write([r1], {'quantity': 1})
            with self.assertRaisesRegex(UserError, "held by purchase plan"):
                proc.act(proc.officer, 'do_cancel', [r1], "no")

            task, = Task.search([('state', '=', 'pending')])
            proc.act(proc.leader, 'approve', [task])
            plan = Plan(plan.id)
            self.assertEqual(plan.state, 'done')
            self.assertEqual(plan.ordered_by, proc.leader)
            purchases = Purchase.search([], order=[('id', 'ASC')])
            self.assertEqual(len(purchases), 2)
            self.assertEqual(set(plan.purchases), set(purchases))
            by_party = {p.party: p for p in purchases}
            acme = by_party[proc.acme]
            line, = acme.lines
            self.assertEqual(line.product, proc.swab)
            self.assertEqual(line.quantity, 120)
            self.assertEqual(line.unit_price, Decimal('0.45'))
            self.assertEqual(acme.warehouse, proc.warehouse)
            self.assertNotEqual(acme.state, 'draft')
            self.assertIn(plan.number, acme.comment)
            for request in [r1, r2]:
                request = request.__class__(request.id)
                self.assertEqual(request.purchase_line, line)
                self.assertEqual(request.state, 'purchased')
            r3 = r3.__class__(r3.id)
            self.assertEqual(r3.state, 'cancelled')
            self.assertIn(plan.number, r3.hrp_cancel_reason)
            stent_line, = by_party[proc.meditech].lines
            self.assertEqual(stent_line.quantity, 2)
            self.assertEqual(r4.__class__(r4.id).purchase_line, stent_line)

            # an ordered plan's requests are not collected again
            plan2 = proc.plan()
            proc.act(proc.officer, 'collect', [plan2])
            self.assertEqual(Plan(plan2.id).lines, ())

    @with_transaction()
    def test_plan_checks(self):
        """No supplier, an unqualified supplier, an expired certificate, no
        price: the plan is not submitted; a cancelled plan releases its
        requests"""
        pool = Pool()
        Plan = pool.get('hrp.purchase.plan')
        Date = pool.get('ir.date')
        proc = Procurement()
        with set_company(proc.company):
            today = Date.today()
            proc.new_request(proc.swab, 10)
            plan = proc.plan()
            proc.act(proc.officer, 'collect', [plan])
            line, = Plan(plan.id).lines
            # a supplier whose scope lacks the swab
            line.supplier = proc.meditech
            line.save()
            with self.assertRaisesRegex(UserError, "not authorised"):
                proc.act(proc.officer, 'submit', [plan])
            self.assertEqual(Plan(plan.id).state, 'draft')
            line.supplier = None
            line.save()
            with self.assertRaisesRegex(UserError, "choose the supplier"):
                proc.act(proc.officer, 'submit', [plan])
            line.supplier = proc.acme
            line.save()
            # an expired licence
            licence, = proc.acme.hrp_licences
            licence.expiry = today - dt.timedelta(days=1)
            licence.save()
            with self.assertRaisesRegex(UserError, "licence .* expired on"):
                proc.act(proc.officer, 'submit', [plan])
            licence.expiry = today + dt.timedelta(days=100)
            licence.save()
            # a certificate that expired since (saving it is refused)
            template = proc.swab.template
            Template = template.__class__
            Template.write([template], {
                    'registration_number': '国械注准20193140001',
                    'registration_expiry': today + dt.timedelta(days=1)})
            table = Template.__table__()
            cursor = Transaction().connection.cursor()
            cursor.execute(*table.update(
                    [table.registration_expiry],
                    [today - dt.timedelta(days=1)],
                    where=table.id == template.id))
            Transaction().cache.clear()
            with self.assertRaisesRegex(
                    UserError, "registration certificate .*国械注准20193140001"):
                proc.act(proc.officer, 'submit', [plan])
            self.assertEqual(Plan(plan.id).state, 'draft')

            # a material with neither a price from its supplier nor a cost
            gauze_t = create_material("医用纱布", gtin=None, cost=Decimal(0))
            pool.get('party.party').write([proc.acme], {
                    'hrp_authorised_materials': [('add', [gauze_t.id])]})
            gauze = purchasable(gauze_t)
            proc.new_request(gauze, 5, supplier=proc.acme)
            unpriced = proc.plan()
            proc.act(proc.officer, 'collect', [unpriced])
            line, = Plan(unpriced.id).lines
            self.assertFalse(line.unit_price)
            with self.assertRaisesRegex(UserError, "医用纱布.* has no price"):
                proc.act(proc.officer, 'submit', [unpriced])
            self.assertEqual(Plan(unpriced.id).state, 'draft')
            proc.act(proc.officer, 'do_cancel', [unpriced], "无价格")

            proc.act(proc.officer, 'do_cancel', [plan], "计划取消")
            plan = Plan(plan.id)
            self.assertEqual(plan.state, 'cancelled')
            self.assertEqual(plan.cancelled_by, proc.officer)
            plan2 = proc.plan()
            proc.act(proc.officer, 'collect', [plan2])
            self.assertEqual(
                {l.product for l in Plan(plan2.id).lines}, {proc.swab, gauze})

