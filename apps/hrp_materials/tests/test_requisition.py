# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Requisitions, the approval engine, FEFO issue, shortfall purchase requests
and returns."""
import datetime as dt
import unittest

from trytond.exceptions import UserError
from trytond.model import Model
from trytond.model.exceptions import AccessError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from .test_lot import (
    create_lot_material, create_lots, days, put_stock, setup_stores)
from .tools import as_user, create_user


def group(xml_id):
    return Pool().get('ir.model.data').get_id('hrp_materials', xml_id)


class Hospital:
    "A company with a central store, two departments and their staff"

    STOCK = [('S-LATE', 300, 10), ('S-EARLY', 100, 10), ('S-MID', 200, 10)]

    def __init__(self, stock=None):
        "stock: the lots of syringes in the central store (number, days, qty)"
        self.company = create_company()
        with set_company(self.company):
            self._setup(self.STOCK if stock is None else stock)

    def _setup(self, stock):
        Department = Pool().get('hrp.department')
        self.central, self.cardio_store, self.ortho_store = setup_stores(
            self.company)
        self.cardio = self.cardio_store.hrp_department
        self.ortho = self.ortho_store.hrp_department
        self.nurse = create_user(
            'nurse', 'hrp_materials.group_nurse', self.company)
        self.head_nurse = create_user(
            'headnurse', 'hrp_materials.group_head_nurse', self.company)
        self.director = create_user(
            'director', 'hrp_materials.group_director', self.company)
        self.keeper = create_user(
            'keeper', 'hrp_materials.group_store_keeper', self.company)
        self.leader = create_user(
            'leader', 'hrp_materials.group_leadership', self.company)
        self.ortho_nurse = create_user(
            'orthonurse', 'hrp_materials.group_nurse', self.company)
        Department.write([self.cardio], {
                'members': [('add', [self.nurse.id])],
                'head_nurse': self.head_nurse.id,
                'director': self.director.id,
                })
        Department.write([self.ortho], {
                'members': [('add', [self.ortho_nurse.id])],
                })
        self.syringe = create_lot_material("一次性使用无菌注射器")
        self.syringe.cost_price = 2
        self.syringe.save()
        self.syringe.template.purchasable = True
        self.syringe.template.purchase_uom = self.syringe.default_uom
        self.syringe.template.save()
        self.lots = create_lots(self.syringe,
            *((number, days(n)) for number, n, _ in stock))
        for lot, (_, _, quantity) in zip(self.lots, stock):
            put_stock(self.company, self.central, self.syringe, [lot],
                quantity)

    def refresh(self):
        "Read the hospital's records again in the current transaction"
        for name, value in vars(self).items():
            if isinstance(value, Model):
                setattr(self, name, value.__class__(value.id))
            elif isinstance(value, list):
                setattr(self, name, [v.__class__(v.id) for v in value])

    def rule(self, steps, **values):
        "An approval rule for requisitions with steps [(approver, value)]"
        Rule = Pool().get('hrp.approval.rule')
        step_values = []
        for i, (approver, value) in enumerate(steps, 1):
            step = {'name': f"Step {i}", 'approver': approver,
                'sequence': i}
            if approver in {'group', 'user'}:
                step[approver] = value
            step_values.append(step)
        rule, = Rule.create([{
                    'name': "Rule", 'company': self.company.id,
                    'document': 'hrp.requisition',
                    'steps': [('create', step_values)],
                    **values}])
        return rule

    def requisition(self, quantity=5, user=None, product=None, **values):
        Requisition = Pool().get('hrp.requisition')
        user = user or self.nurse
        product = product or self.syringe
        with as_user(user, self.company):
            requisition, = Requisition.create([{
                        'lines': [('create', [{
                                        'product': product.id,
                                        'unit': product.default_uom.id,
                                        'quantity': quantity,
                                        }])],
                        **values}])
        return Requisition(requisition.id)

    def act(self, user, method, records, *args):
        "Call method as user through the access checks"
        with as_user(user, self.company):
            Model = records[0].__class__
            records = Model.browse([r.id for r in records])
            return getattr(Model, method)(records, *args)

    def pending(self, requisition):
        Task = Pool().get('hrp.approval.task')
        return Task.search([
                ('document', '=', str(requisition)),
                ('state', '=', 'pending')])

    def reject(self, user, records, reason):
        "Run the reject wizard as user"
        Wizard = Pool().get('hrp.approval.reject', type='wizard')
        with as_user(user, self.company), Transaction().set_context(
                active_model=records[0].__name__,
                active_ids=[r.id for r in records],
                active_id=records[0].id):
            session_id, _, _ = Wizard.create()
            Wizard.execute(session_id, {'start': {'reason': reason}},
                'reject')
            Wizard.delete(session_id)


class RequisitionTestCase(unittest.TestCase):
    "Test requisitions and their approval"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def state(self, record):
        return record.__class__(record.id).state

    @with_transaction()
    def test_no_rule_issues_at_once(self):
        "Without a matching rule a requisition is approved and reserved FEFO"
        h = Hospital()
        with set_company(h.company):
            requisition = h.requisition(12)
            h.act(h.nurse, 'submit', [requisition])
            requisition = requisition.__class__(requisition.id)
            self.assertEqual(requisition.state, 'approved')
            self.assertTrue(requisition.number)
            self.assertEqual(requisition.approval_state, 'approved')
            shipment, = requisition.shipments
            self.assertEqual(shipment.state, 'assigned')
            lots = sorted((m.lot.number, m.quantity) for m in shipment.moves)
            # first expired first out: S-EARLY then S-MID
            self.assertEqual(lots, [('S-EARLY', 10), ('S-MID', 2)])
            line, = requisition.lines
            self.assertEqual(line.reserved_quantity, 12)

            # the store keeper issues: the requisition is done
            h.act(h.keeper, 'do', [shipment])
            self.assertEqual(self.state(requisition), 'done')
            line = line.__class__(line.id)
            self.assertEqual(line.issued_quantity, 12)

    @with_transaction()
    def test_two_level_rule(self):
        "Head nurse then director approve; the inbox shows each their step"
        pool = Pool()
        Task = pool.get('hrp.approval.task')
        Notification = pool.get('res.notification')
        h = Hospital()
        with set_company(h.company):
            h.rule([('head_nurse', None), ('director', None)])
            requisition = h.requisition(3)
            h.act(h.nurse, 'submit', [requisition])
            self.assertEqual(self.state(requisition), 'submitted')
            task, = h.pending(requisition)
            self.assertEqual(task.approver_user, h.head_nurse)
            self.assertTrue(Notification.search(
                    [('user', '=', h.head_nurse.id)]))
            with as_user(h.head_nurse, h.company):
                inbox = Task.search([('pending_for_me', '=', True)])
                self.assertEqual(inbox, [task])
            with as_user(h.director, h.company):
                self.assertEqual(
                    Task.search([('pending_for_me', '=', True)]), [])

            # the director cannot decide the head nurse's step
            with self.assertRaises(AccessError):
                h.act(h.director, 'approve', [task])
            h.act(h.head_nurse, 'approve', [task], "OK")
            self.assertEqual(self.state(requisition), 'in_approval')
            # approving twice is refused
            with self.assertRaises(UserError):
                h.act(h.head_nurse, 'approve', [task])

            task2, = h.pending(requisition)
            self.assertEqual(task2.approver_user, h.director)
            self.assertEqual(task2.level, 2)
            h.act(h.director, 'approve', [task2])
            requisition = requisition.__class__(requisition.id)
            self.assertEqual(requisition.state, 'approved')
            decisions = [(t.level, t.state, t.decided_by.login)
                for t in requisition.approval_tasks]
            self.assertEqual(decisions, [
                    (1, 'approved', 'headnurse'),
                    (2, 'approved', 'director')])
            self.assertEqual(requisition.approval_tasks[0].comment, "OK")

    @with_transaction()
    def test_three_level_rule_and_conditions(self):
        """A three-level rule applies above an amount; below it the
        two-level rule does"""
        pool = Pool()
        ModelData = pool.get('ir.model.data')
        h = Hospital()
        with set_company(h.company):
            h.rule([('head_nurse', None), ('director', None)],
                sequence=20)
            h.rule([('head_nurse', None), ('director', None),
                    ('group', group('group_leadership'))],
                sequence=10, min_amount=100)
            small = h.requisition(3)     # 3 × 2 = 6
            big = h.requisition(25)      # 25 × 2 = 50 …
            big.lines[0].product.cost_price = 10   # … 250
            big.lines[0].product.save()
            h.act(h.nurse, 'submit', [small, big])
            self.assertEqual(len(small.__class__(small.id).approval_rule.steps),
                2)
            self.assertEqual(len(big.__class__(big.id).approval_rule.steps),
                3)
            for user in [h.head_nurse, h.director]:
                task, = h.pending(big)
                h.act(user, 'approve', [task])
            self.assertEqual(self.state(big), 'in_approval')
            task, = h.pending(big)
            self.assertEqual(task.approver_group.id,
                ModelData.get_id('hrp_materials', 'group_leadership'))
            h.act(h.leader, 'approve', [task])
            self.assertEqual(self.state(big), 'approved')
            # 25 requested, 30 in stock
            shipment, = big.__class__(big.id).shipments
            self.assertEqual(sum(m.quantity for m in shipment.moves), 25)

    @with_transaction()
    def test_rejection_returns_to_requester(self):
        "A rejection gives the reason back; the nurse edits and resubmits"
        h = Hospital()
        with set_company(h.company):
            h.rule([('head_nurse', None)])
            requisition = h.requisition(3)
            h.act(h.nurse, 'submit', [requisition])
            with self.assertRaises(UserError):
                h.reject(h.head_nurse, [requisition], " ")
            h.reject(h.head_nurse, [requisition], "库存充足，下周再领")
            requisition = requisition.__class__(requisition.id)
            self.assertEqual(requisition.state, 'rejected')
            self.assertEqual(requisition.rejection_reason, "库存充足，下周再领")
            task, = requisition.approval_tasks
            self.assertEqual(
                (task.state, task.decided_by, task.comment),
                ('rejected', h.head_nurse, "库存充足，下周再领"))
            h.act(h.nurse, 'draft', [requisition])
            self.assertEqual(self.state(requisition), 'draft')
            h.act(h.nurse, 'submit', [requisition])
            task, = h.pending(requisition)
            h.act(h.head_nurse, 'approve', [task])
            self.assertEqual(self.state(requisition), 'approved')

    @with_transaction()
    def test_self_approval(self):
        "The requester cannot approve her own requisition unless allowed"
        h = Hospital()
        Department = Pool().get('hrp.department')
        with set_company(h.company):
            Department.write([h.cardio], {
                    'members': [('add', [h.head_nurse.id])]})
            rule = h.rule([('head_nurse', None)])
            requisition = h.requisition(1, user=h.head_nurse)
            h.act(h.head_nurse, 'submit', [requisition])
            task, = h.pending(requisition)
            with self.assertRaises(UserError):
                h.act(h.head_nurse, 'approve', [task])
            rule.allow_self_approval = True
            rule.save()
            h.act(h.head_nurse, 'approve', [task])
            self.assertEqual(self.state(requisition), 'approved')

    @with_transaction()
    def test_partial_issue_backorder_and_purchase_request(self):
        """What cannot be reserved goes to a backorder shipment and a
        purchase request linked to the line; expired and recalled lots are
        never picked"""
        pool = Pool()
        Shipment = pool.get('stock.shipment.internal')
        Lot = pool.get('stock.lot')
        h = Hospital()
        with set_company(h.company):
            expired, recalled = create_lots(h.syringe,
                ('S-EXPIRED', days(-1)), ('S-RECALLED', days(400)))
            put_stock(h.company, h.central, h.syringe, [expired, recalled],
                10)
            Lot.write([recalled], {'hrp_recalled': True})
            requisition = h.requisition(35)
            h.act(h.nurse, 'submit', [requisition])
            requisition = requisition.__class__(requisition.id)
            self.assertEqual(requisition.state, 'approved')
            assigned, backorder = sorted(requisition.shipments,
                key=lambda s: s.state)
            self.assertEqual(
                (assigned.state, backorder.state), ('assigned', 'waiting'))
            self.assertEqual(
                sorted(m.lot.number for m in assigned.moves),
                ['S-EARLY', 'S-LATE', 'S-MID'])
            self.assertEqual(sum(m.quantity for m in backorder.moves), 5)
            line, = requisition.lines
            self.assertEqual(
                (line.reserved_quantity, line.backorder_quantity), (30, 5))
            request, = line.purchase_requests
            self.assertEqual(
                (request.product, request.quantity, request.state),
                (h.syringe, 5, 'draft'))

            h.act(h.keeper, 'do', [assigned])
            self.assertEqual(self.state(requisition), 'partially_issued')

            # the missing 5 arrive; the backorder is assigned and issued
            new_lot, = create_lots(h.syringe, ('S-NEW', days(500)))
            put_stock(h.company, h.central, h.syringe, [new_lot], 5)
            Shipment.assign_try([Shipment(backorder.id)])
            h.act(h.keeper, 'do', [Shipment(backorder.id)])
            self.assertEqual(self.state(requisition), 'done')
            line = line.__class__(line.id)
            self.assertEqual(line.issued_quantity, 35)

    @with_transaction()
    def test_close_gives_up_backorder(self):
        "Closing a partially issued requisition cancels its backorder"
        h = Hospital()
        with set_company(h.company):
            requisition = h.requisition(40)
            h.act(h.nurse, 'submit', [requisition])
            requisition = requisition.__class__(requisition.id)
            assigned, = [s for s in requisition.shipments
                if s.state == 'assigned']
            h.act(h.keeper, 'do', [assigned])
            h.act(h.keeper, 'close', [requisition])
            self.assertEqual(self.state(requisition), 'done')
            self.assertEqual(
                sorted(s.state for s in requisition.__class__(
                        requisition.id).shipments),
                ['cancelled', 'done'])

    @with_transaction()
    def test_bad_input(self):
        "Bad lines are refused with a clear error and nothing changes"
        pool = Pool()
        Requisition = pool.get('hrp.requisition')
        Template = pool.get('product.template')
        h = Hospital()
        with set_company(h.company):
            with self.assertRaises(UserError):
                h.requisition(0)
            with self.assertRaises(UserError):
                h.requisition(-2)
            # uncertified: registration certificate expired
            uncertified = create_lot_material("过期注册证导管")
            Template.write([uncertified.template], {
                    'registration_number': "国械注准20150001",
                    'registration_expiry': days(10)})
            requisition = h.requisition(1, product=uncertified)
            # the certificate expires while the material stays active
            table = Template.__table__()
            cursor = Transaction().connection.cursor()
            cursor.execute(*table.update(
                    [table.registration_expiry], [days(-1)],
                    where=table.id == uncertified.template.id))
            with self.assertRaises(UserError):
                h.act(h.nurse, 'submit', [requisition])
            self.assertEqual(self.state(requisition), 'draft')
            self.assertFalse(Requisition(requisition.id).number)

            # outside the department's allowed list
            other = create_lot_material("骨科专用耗材")
            h.cardio.allowed_materials = [h.syringe.template]
            h.cardio.save()
            requisition = h.requisition(1, product=other)
            with self.assertRaises(UserError):
                h.act(h.nurse, 'submit', [requisition])
            self.assertEqual(self.state(requisition), 'draft')

            # another department's nurse cannot request for cardiology
            with self.assertRaises(AccessError):
                h.requisition(1, user=h.ortho_nurse,
                    department=h.cardio.id, to_location=h.cardio_store.id)

    @with_transaction()
    def test_cancel_needs_reason(self):
        "Cancelling asks a reason and releases the reservation"
        pool = Pool()
        Requisition = pool.get('hrp.requisition')
        h = Hospital()
        with set_company(h.company):
            requisition = h.requisition(5)
            h.act(h.nurse, 'submit', [requisition])
            with self.assertRaises(UserError):
                Requisition.do_cancel([Requisition(requisition.id)], "")
            Requisition.do_cancel([Requisition(requisition.id)],
                "科室搬迁，暂不需要")
            requisition = Requisition(requisition.id)
            self.assertEqual(requisition.state, 'cancelled')
            self.assertEqual(requisition.cancel_reason, "科室搬迁，暂不需要")
            shipment, = requisition.shipments
            self.assertEqual(shipment.state, 'cancelled')

    @with_transaction()
    def test_escalation(self):
        "An overdue step escalates to its escalation group"
        pool = Pool()
        Task = pool.get('hrp.approval.task')
        Notification = pool.get('res.notification')
        h = Hospital()
        with set_company(h.company):
            rule = h.rule([('head_nurse', None)])
            step, = rule.steps
            step.deadline_hours = 4
            step.escalation_group = group('group_leadership')
            step.save()
            requisition = h.requisition(1)
            h.act(h.nurse, 'submit', [requisition])
            task, = h.pending(requisition)
            self.assertEqual(Task.escalate_overdue(), [])
            Task.write([task], {
                    'due_date': dt.datetime.now() - dt.timedelta(hours=1)})
            escalated, = Task.escalate_overdue()
            self.assertTrue(escalated.escalated_at)
            self.assertTrue(Notification.search(
                    [('user', '=', h.leader.id)]))
            with as_user(h.leader, h.company):
                self.assertEqual(
                    Task.search([('pending_for_me', '=', True)]), [task])
            h.act(h.leader, 'approve', [task])
            self.assertEqual(self.state(requisition), 'approved')

    @with_transaction()
    def test_template(self):
        "A department template fills the lines"
        pool = Pool()
        Template = pool.get('hrp.requisition.template')
        Requisition = pool.get('hrp.requisition')
        h = Hospital()
        with set_company(h.company):
            template, = Template.create([{
                        'name': "每周常用", 'department': h.cardio.id,
                        'lines': [('create', [{
                                        'product': h.syringe.id,
                                        'quantity': 20}])]}])
            with as_user(h.nurse, h.company):
                requisition = Requisition(urgency='normal', lines=[])
                requisition.template = template
                requisition.on_change_template()
                line, = requisition.lines
                self.assertEqual((line.product, line.quantity),
                    (h.syringe, 20))

    @with_transaction()
    def test_return(self):
        "A department returns a near-expiry lot after approval"
        pool = Pool()
        Return = pool.get('hrp.return')
        Rule = pool.get('hrp.approval.rule')
        h = Hospital()
        with set_company(h.company):
            Rule.create([{
                        'name': "Returns", 'company': h.company.id,
                        'document': 'hrp.return',
                        'steps': [('create', [{
                                        'name': "Head nurse",
                                        'approver': 'head_nurse'}])]}])
            requisition = h.requisition(5)
            h.act(h.nurse, 'submit', [requisition])
            shipment, = requisition.__class__(requisition.id).shipments
            h.act(h.keeper, 'do', [shipment])
            lot = shipment.moves[0].lot

            with as_user(h.nurse, h.company):
                return_, = Return.create([{
                            'reason': 'near_expiry',
                            'lines': [('create', [{
                                            'product': h.syringe.id,
                                            'lot': lot.id,
                                            'unit': h.syringe.default_uom.id,
                                            'quantity': 2}])]}])
            h.act(h.nurse, 'submit', [return_])
            self.assertEqual(self.state(return_), 'submitted')
            task, = h.pending(return_)
            h.act(h.head_nurse, 'approve', [task])
            return_ = Return(return_.id)
            self.assertEqual(return_.state, 'approved')
            self.assertEqual(return_.shipment.state, 'assigned')
            h.act(h.keeper, 'do', [return_.shipment])
            self.assertEqual(self.state(return_), 'done')

            # returning more than the store holds is refused
            with as_user(h.nurse, h.company):
                too_much, = Return.create([{
                            'reason': 'surplus',
                            'lines': [('create', [{
                                            'product': h.syringe.id,
                                            'lot': lot.id,
                                            'unit': h.syringe.default_uom.id,
                                            'quantity': 50}])]}])
            h.act(h.nurse, 'submit', [too_much])
            task, = h.pending(too_much)
            # (the request's transaction is rolled back by the server)
            with self.assertRaises(UserError):
                h.act(h.head_nurse, 'approve', [task])
