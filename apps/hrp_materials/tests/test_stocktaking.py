# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Write-offs (报损) and department stocktaking (盘点) with the approval of
the variance."""
import unittest
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import activate_module, drop_db, with_transaction
from trytond.transaction import Transaction

from .test_lot import create_lots, days, put_stock
from .test_requisition import Hospital
from .tools import as_user


class Stores(Hospital):
    """The hospital with cost centres and syringes in the cardiology store:
    lots C-A (10) and C-B (10)"""

    def _setup(self, stock):
        pool = Pool()
        Account = pool.get('analytic_account.account')
        Department = pool.get('hrp.department')
        super()._setup(stock)
        root, = Account.create([{
                    'name': "科室成本", 'type': 'root',
                    'company': self.company.id}])
        self.cardio_cc, self.ortho_cc = Account.create([{
                    'name': name, 'type': 'normal', 'root': root.id,
                    'parent': root.id, 'company': self.company.id,
                    } for name in ["心内科成本", "骨科成本"]])
        Department.write([self.cardio], {'cost_center': self.cardio_cc.id})
        Department.write([self.ortho], {'cost_center': self.ortho_cc.id})
        self.store_lots = create_lots(self.syringe,
            ('C-A', days(200)), ('C-B', days(400)))
        put_stock(self.company, self.cardio_store, self.syringe,
            self.store_lots, 10)
        self.lost_found = self.cardio_store.lost_found_used

    def approval_rule(self, document, steps, **values):
        "An approval rule for document with steps [(approver, value)]"
        Rule = Pool().get('hrp.approval.rule')
        rule, = Rule.create([{
                    'name': "Rule", 'company': self.company.id,
                    'document': document,
                    'steps': [('create', [{
                                    'name': f"Step {i}", 'approver': approver,
                                    'sequence': i,
                                    **({approver: value}
                                        if approver in {'group', 'user'}
                                        else {}),
                                    } for i, (approver, value)
                                in enumerate(steps, 1)])],
                    **values}])
        return rule

    def write_off(self, lines, user=None, **values):
        "A draft write-off of [(lot, quantity, reason, note)]"
        WriteOff = Pool().get('hrp.write_off')
        with as_user(user or self.nurse, self.company):
            write_off, = WriteOff.create([{
                        'lines': [('create', [{
                                        'product': self.syringe.id,
                                        'unit': self.syringe.default_uom.id,
                                        'lot': lot.id if lot else None,
                                        'quantity': quantity,
                                        'reason': reason,
                                        'note': note,
                                        } for lot, quantity, reason, note
                                    in lines])],
                        **values}])
        return WriteOff(write_off.id)

    def inventory(self, counts, user=None, store=None):
        "A draft inventory of the store with counts [(lot, quantity)]"
        Inventory = Pool().get('stock.inventory')
        store = store or self.cardio_store
        with as_user(user or self.nurse, self.company):
            inventory, = Inventory.create([{
                        'location': store.id,
                        'lines': [('create', [{
                                        'product': self.syringe.id,
                                        'lot': lot.id,
                                        'quantity': quantity,
                                        } for lot, quantity in counts])],
                        }])
        return Inventory(inventory.id)

    def stock(self, lot, location=None):
        pool = Pool()
        Product = pool.get('product.product')
        location = location or self.cardio_store
        with Transaction().set_context(stock_date_end=days(0)):
            pbl = Product.products_by_location(
                [location.id], grouping=('product', 'lot'),
                grouping_filter=([self.syringe.id],))
        return pbl.get((location.id, self.syringe.id, lot.id), 0)


class StocktakingTestCase(unittest.TestCase):
    "Test write-offs and stocktaking"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def reload(self, record):
        return record.__class__(record.id)

    # -- write-offs -----------------------------------------------------

    @with_transaction()
    def test_write_off_posts_moves_and_cost(self):
        "An approved write-off moves the goods to lost-and-found at cost"
        h = Stores()
        with set_company(h.company):
            lot_a, _ = h.store_lots
            write_off = h.write_off([(lot_a, 3, 'damaged', None)])
            self.assertEqual(write_off.store, h.cardio_store)
            self.assertEqual(write_off.department, h.cardio)
            self.assertEqual(write_off.total_amount, Decimal('6.00'))
            h.act(h.nurse, 'submit', [write_off])
            write_off = self.reload(write_off)
            self.assertEqual(write_off.state, 'done')
            self.assertTrue(write_off.number)
            self.assertEqual(write_off.approval_state, 'approved')
            self.assertEqual(write_off.submitted_by, h.nurse)
            self.assertEqual(write_off.done_by, h.nurse)
            line, = write_off.lines
            move = line.move
            self.assertEqual(
                (move.from_location, move.to_location, move.lot,
                    move.quantity, move.state, move.origin),
                (h.cardio_store, h.lost_found, lot_a, 3, 'done', line))
            self.assertEqual(
                (line.unit_cost, line.amount, line.cost_center),
                (Decimal('2'), Decimal('6.00'), h.cardio_cc))
            self.assertEqual(h.stock(lot_a), 7)

    @with_transaction()
    def test_write_off_recalled_and_expired_lots(self):
        "Recalled and expired lots can be written off"
        pool = Pool()
        Lot = pool.get('stock.lot')
        h = Stores()
        with set_company(h.company):
            lot_a, _ = h.store_lots
            Lot.change_hrp_recall([lot_a], 'recall', "厂家召回")
            expired, = create_lots(h.syringe, ('C-OLD', days(-3)))
            put_stock(h.company, h.cardio_store, h.syringe, [expired], 4)
            write_off = h.write_off([
                    (lot_a, 10, 'recalled', None),
                    (expired, 4, 'expired', None)])
            h.act(h.nurse, 'submit', [write_off])
            write_off = self.reload(write_off)
            self.assertEqual(write_off.state, 'done')
            self.assertEqual(
                sorted((l.move.lot.number, l.move.state)
                    for l in write_off.lines),
                [('C-A', 'done'), ('C-OLD', 'done')])
            self.assertEqual(h.stock(lot_a), 0)
            self.assertEqual(h.stock(expired), 0)

    @with_transaction()
    def test_write_off_above_stock(self):
        "Writing off more than the store holds is refused; nothing changes"
        pool = Pool()
        Move = pool.get('stock.move')
        h = Stores()
        with set_company(h.company):
            lot_a, lot_b = h.store_lots
            write_off = h.write_off([(lot_a, 11, 'lost', None)])
            moves = Move.search([], count=True)
            with self.assertRaises(UserError) as cm:
                h.act(h.nurse, 'submit', [write_off])
            self.assertIn("C-A", cm.exception.message)
            write_off = self.reload(write_off)
            self.assertEqual(write_off.state, 'draft')
            self.assertFalse(write_off.number)
            self.assertEqual(Move.search([], count=True), moves)

            # in stock when submitted, no longer when approved
            h.approval_rule('hrp.write_off', [('head_nurse', None)])
            write_off = h.write_off([(lot_b, 8, 'lost', None)])
            h.act(h.nurse, 'submit', [write_off])
            self.assertEqual(self.reload(write_off).state, 'submitted')
            other = h.write_off([(lot_b, 5, 'damaged', None)])
            h.act(h.nurse, 'submit', [other])
            task, = h.pending(other)
            h.act(h.head_nurse, 'approve', [task])
            self.assertEqual(self.reload(other).state, 'done')
            task, = h.pending(write_off)
            with self.assertRaises(UserError):
                h.act(h.head_nurse, 'approve', [task])

    @with_transaction()
    def test_write_off_bad_input(self):
        "Zero or negative quantities and 'other' without note are refused"
        h = Stores()
        with set_company(h.company):
            lot_a, _ = h.store_lots
            for quantity in [0, -2]:
                write_off = h.write_off([(lot_a, quantity, 'lost', None)])
                with self.assertRaises(UserError):
                    h.act(h.nurse, 'submit', [write_off])
                self.assertEqual(self.reload(write_off).state, 'draft')
            write_off = h.write_off([(lot_a, 1, 'other', " ")])
            with self.assertRaises(UserError):
                h.act(h.nurse, 'submit', [write_off])
            self.assertEqual(self.reload(write_off).state, 'draft')
            write_off = h.write_off([(lot_a, 1, 'other', "被污染")])
            h.act(h.nurse, 'submit', [write_off])
            self.assertEqual(self.reload(write_off).state, 'done')

            # without lot for a lot-tracked material
            with self.assertRaises(UserError):
                h.write_off([(None, 1, 'lost', None)])

            # the central store is the store keeper's
            write_off = h.write_off([(h.lots[0], 1, 'damaged', None)],
                store=h.central.id)
            with self.assertRaises(UserError):
                h.act(h.nurse, 'submit', [write_off])
            self.assertEqual(self.reload(write_off).state, 'draft')

            # nor may a nurse write off another department's store
            with self.assertRaises(AccessError):
                h.write_off([(lot_a, 1, 'lost', None)], user=h.ortho_nurse,
                    department=h.cardio.id)

    @with_transaction()
    def test_write_off_two_level_rule_by_amount(self):
        "Above an amount a write-off needs the head nurse and the director"
        h = Stores()
        with set_company(h.company):
            lot_a, lot_b = h.store_lots
            h.approval_rule('hrp.write_off',
                [('head_nurse', None), ('director', None)],
                sequence=10, min_amount=100)
            h.approval_rule('hrp.write_off', [('head_nurse', None)],
                sequence=20)
            small = h.write_off([(lot_a, 2, 'damaged', None)])  # 4
            h.act(h.nurse, 'submit', [small])
            self.assertEqual(len(self.reload(small).approval_rule.steps), 1)
            task, = h.pending(small)
            h.act(h.head_nurse, 'approve', [task])
            self.assertEqual(self.reload(small).state, 'done')

            h.syringe.cost_price = 30
            h.syringe.save()
            big = h.write_off([(lot_b, 5, 'quality_defect', None)])  # 150
            h.act(h.nurse, 'submit', [big])
            task, = h.pending(big)
            self.assertEqual(task.approver_user, h.head_nurse)
            self.assertEqual(task.amount, Decimal('150.00'))
            h.act(h.head_nurse, 'approve', [task])
            self.assertEqual(self.reload(big).state, 'in_approval')
            self.assertEqual(h.stock(lot_b), 10)
            task, = h.pending(big)
            self.assertEqual(task.approver_user, h.director)
            h.act(h.director, 'approve', [task])
            big = self.reload(big)
            self.assertEqual(big.state, 'done')
            self.assertEqual(big.lines[0].amount, Decimal('150.00'))
            self.assertEqual(h.stock(lot_b), 5)

    @with_transaction()
    def test_write_off_cancel(self):
        "A write-off in approval is cancelled with a reason"
        pool = Pool()
        WriteOff = pool.get('hrp.write_off')
        h = Stores()
        with set_company(h.company):
            lot_a, _ = h.store_lots
            h.approval_rule('hrp.write_off', [('head_nurse', None)])
            write_off = h.write_off([(lot_a, 1, 'lost', None)])
            h.act(h.nurse, 'submit', [write_off])
            with self.assertRaises(UserError):
                WriteOff.do_cancel([self.reload(write_off)], " ")
            WriteOff.do_cancel([self.reload(write_off)], "找到了")
            write_off = self.reload(write_off)
            self.assertEqual(
                (write_off.state, write_off.cancel_reason),
                ('cancelled', "找到了"))
            self.assertEqual(h.pending(write_off), [])

    # -- stocktaking ----------------------------------------------------

    @with_transaction()
    def test_stocktaking_variance_approval(self):
        "A variance must be approved before the inventory is confirmed"
        pool = Pool()
        Inventory = pool.get('stock.inventory')
        h = Stores()
        with set_company(h.company):
            lot_a, lot_b = h.store_lots
            h.approval_rule('stock.inventory', [('head_nurse', None)])
            inventory = h.inventory([(lot_a, 7), (lot_b, 11)])
            self.assertEqual(inventory.department, h.cardio)
            loss, gain = sorted(inventory.lines, key=lambda l: l.lot.number)
            self.assertEqual(
                (loss.expected_quantity, loss.variance_quantity),
                (10, -3))
            self.assertEqual(gain.variance_quantity, 1)

            # a loss needs its reason
            with self.assertRaises(UserError):
                h.act(h.nurse, 'submit_approval', [inventory])
            self.assertIsNone(self.reload(inventory).approval_state)
            with as_user(h.nurse, h.company):
                loss.__class__.write([loss], {'hrp_reason': 'other'})
            with self.assertRaises(UserError):
                h.act(h.nurse, 'submit_approval', [inventory])
            with as_user(h.nurse, h.company):
                loss.__class__.write([loss], {
                        'hrp_reason': 'lost', 'hrp_note': "未找到"})

            # confirming before the approval is refused
            with self.assertRaises(UserError):
                h.act(h.nurse, 'confirm', [inventory])
            self.assertEqual(self.reload(inventory).state, 'draft')
            self.assertIsNone(self.reload(inventory).approval_state)

            h.act(h.nurse, 'submit_approval', [inventory])
            inventory = self.reload(inventory)
            self.assertEqual(inventory.approval_state, 'pending')
            self.assertEqual(inventory.variance_amount, Decimal('8.00'))
            self.assertEqual(inventory.net_variance_amount, Decimal('-4.00'))
            self.assertEqual(len(inventory.variance_lines), 2)
            task, = h.pending(inventory)
            self.assertEqual(task.amount, Decimal('8.00'))

            # in approval: no confirm, no recount
            with self.assertRaises(UserError) as cm:
                h.act(h.nurse, 'confirm', [inventory])
            self.assertIn(inventory.rec_name, cm.exception.message)
            with self.assertRaises(UserError):
                with as_user(h.nurse, h.company):
                    loss.__class__.write([loss], {'quantity': 10})
            self.assertEqual(self.reload(inventory).state, 'draft')

            h.act(h.head_nurse, 'approve', [task])
            self.assertEqual(
                self.reload(inventory).approval_state, 'approved')
            h.act(h.nurse, 'confirm', [inventory])
            inventory = Inventory(inventory.id)
            self.assertEqual(inventory.state, 'done')
            self.assertEqual(h.stock(lot_a), 7)
            self.assertEqual(h.stock(lot_b), 11)
            loss, gain = sorted(inventory.lines, key=lambda l: l.lot.number)
            move, = loss.moves
            self.assertEqual(
                (move.from_location, move.to_location, move.quantity),
                (h.cardio_store, h.lost_found, 3))
            self.assertEqual(
                (loss.hrp_reason, loss.hrp_unit_cost, loss.hrp_cost_center),
                ('lost', Decimal('2'), h.cardio_cc))

    @with_transaction()
    def test_stocktaking_rejected_and_stock_moved(self):
        """A rejected variance is recounted; a variance approved before the
        stock moved must be submitted again"""
        pool = Pool()
        Line = pool.get('stock.inventory.line')
        WriteOff = pool.get('hrp.write_off')
        h = Stores()
        with set_company(h.company):
            lot_a, _ = h.store_lots
            h.approval_rule('stock.inventory', [('head_nurse', None)])
            inventory = h.inventory([(lot_a, 8)])
            line, = inventory.lines
            with as_user(h.nurse, h.company):
                Line.write([line], {'hrp_reason': 'damaged'})
            h.act(h.nurse, 'submit_approval', [inventory])
            h.reject(h.head_nurse, [inventory], "请复盘")
            inventory = self.reload(inventory)
            self.assertEqual(
                (inventory.approval_state, inventory.rejection_reason),
                ('rejected', "请复盘"))
            with self.assertRaises(UserError):
                h.act(h.nurse, 'confirm', [inventory])
            with as_user(h.nurse, h.company):
                Line.write([line], {'quantity': 9})
            h.act(h.nurse, 'submit_approval', [inventory])
            task, = h.pending(inventory)
            h.act(h.head_nurse, 'approve', [task])

            # a write-off moves the stock before the confirmation
            write_off = h.write_off([(lot_a, 2, 'damaged', None)])
            h.act(h.nurse, 'submit', [write_off])
            self.assertEqual(WriteOff(write_off.id).state, 'done')
            with self.assertRaises(UserError):
                h.act(h.nurse, 'confirm', [inventory])
            self.assertEqual(self.reload(inventory).state, 'draft')
            h.act(h.nurse, 'recount', [inventory])
            self.assertIsNone(self.reload(inventory).approval_state)

    @with_transaction()
    def test_stocktaking_without_variance_or_rule(self):
        """Without variance, or without a rule, the variance is approved at
        once; an expired lot's loss takes its reason from the lot"""
        pool = Pool()
        Inventory = pool.get('stock.inventory')
        h = Stores()
        with set_company(h.company):
            lot_a, lot_b = h.store_lots
            h.approval_rule('stock.inventory', [('head_nurse', None)],
                min_amount=100)
            inventory = h.inventory([(lot_a, 10), (lot_b, 10)])
            h.act(h.nurse, 'submit_approval', [inventory])
            inventory = self.reload(inventory)
            self.assertEqual(inventory.approval_state, 'approved')
            self.assertEqual(h.pending(inventory), [])
            h.act(h.nurse, 'confirm', [inventory])
            self.assertEqual(self.reload(inventory).state, 'done')

            expired, = create_lots(h.syringe, ('C-OLD', days(-3)))
            put_stock(h.company, h.cardio_store, h.syringe, [expired], 4)
            inventory = h.inventory([(expired, 0)])
            h.act(h.nurse, 'confirm', [inventory])
            inventory = Inventory(inventory.id)
            self.assertEqual(inventory.state, 'done')
            line, = inventory.lines
            self.assertEqual(line.hrp_reason, 'expired')
            self.assertEqual(h.stock(expired), 0)

    @with_transaction()
    def test_stocktaking_other_department(self):
        "A department user counts only her own department's stores"
        pool = Pool()
        Inventory = pool.get('stock.inventory')
        h = Stores()
        with set_company(h.company):
            lot_a, _ = h.store_lots
            with self.assertRaises(AccessError):
                h.inventory([(lot_a, 1)], user=h.ortho_nurse)
            with self.assertRaises(AccessError):
                h.inventory([(h.lots[0], 1)], store=h.central)
            inventory = h.inventory([(lot_a, 10)])
            with as_user(h.ortho_nurse, h.company):
                self.assertEqual(Inventory.search([]), [])
            with self.assertRaises(AccessError):
                h.act(h.ortho_nurse, 'confirm', [inventory])
            # the store keeper counts the central store
            central = h.inventory([(h.lots[0], 10)], user=h.keeper,
                store=h.central)
            h.act(h.keeper, 'confirm', [central])
            self.assertEqual(self.reload(central).state, 'done')
