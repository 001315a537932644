# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The outbox and the services: state machine, back-off, parking, retry and
bad input, with the queue run the way trytond runs it (tasks pushed to
ir.queue in a committed transaction, then each run by
``trytond.worker.run_task`` in its own transaction).

The peers are real: a refused TCP port for an HIS that is down, the modem
emulator on a pseudo-terminal for SMS.  The delivery to the FHIR and HL7
peers is tested in tests/test_his_outbox.py."""
import datetime as dt
import itertools
import json
import socket
import unittest
from contextlib import contextmanager
from decimal import Decimal
from types import SimpleNamespace

import trytond.config as config
from trytond.exceptions import UserError
from trytond.modules.company.tests import create_company
from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME, activate_module, drop_db
from trytond.transaction import Transaction
from trytond.worker import run_task

from ..his import Charge
from ..outbox import backoff, charge_payload, payload_charge
from ..sms_emulator import ModemEmulator

_names = itertools.count(1)


def free_port():
    "A TCP port of the loopback nobody listens on"
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def new_charge(**values):
    values.setdefault('key', f'hrp-test-{next(_names)}')
    values.setdefault('inpatient_number', 'ZY2026000101')
    values.setdefault('charge_item', 'C31010001')
    values.setdefault('quantity', Decimal('1'))
    values.setdefault('unit_price', Decimal('6800.00'))
    values.setdefault('insurance_code', 'C03130100100001')
    values.setdefault('surgery_number', 'SS20261101001')
    values.setdefault('department', 'XNK')
    values.setdefault('date', dt.datetime(2026, 11, 1, 3, 5))
    return Charge(**values)


@contextmanager
def settings(**values):
    "Set options of the [his_connector] configuration section"
    if not config.has_section('his_connector'):
        config.add_section('his_connector')
    old = {k: config.get('his_connector', k) for k in values}
    for key, value in values.items():
        config.set('his_connector', key, str(value))
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                config._config.remove_option('his_connector', key)
                config._cache_clear()
            else:
                config.set('his_connector', key, value)


@contextmanager
def committed(company_id=None, user=0):
    "A transaction committed at the end, with the company in its context"
    context = {'company': company_id} if company_id else {}
    with Transaction().start(DB_NAME, user, context=context) as transaction:
        yield transaction
        transaction.commit()


def pending_tasks(due_only=True):
    "The ids of the ir.queue tasks not yet run (due now if due_only)"
    with Transaction().start(DB_NAME, 0, readonly=True):
        Queue = Pool().get('ir.queue')
        domain = [('dequeued_at', '=', None)]
        if due_only:
            domain.append(['OR',
                    ('scheduled_at', '=', None),
                    ('scheduled_at', '<=', dt.datetime.now()),
                    ])
        return [t.id for t in Queue.search(domain, order=[('id', 'ASC')])]


def run_queue(rounds=20):
    """Run the due queue tasks as trytond-worker does (each in its own
    transaction with run_task) until none is due; return how many ran"""
    count = 0
    for _ in range(rounds):
        ids = pending_tasks()
        if not ids:
            break
        for task_id in ids:
            run_task(DB_NAME, task_id)
            count += 1
    return count


def make_due(message_ids):
    """Move the next attempt of the messages and the scheduled time of
    their queue tasks to now, as if the back-off had elapsed"""
    with committed():
        pool = Pool()
        Outbox = pool.get('his.outbox')
        Queue = pool.get('ir.queue')
        now = dt.datetime.now()
        Outbox.write(Outbox.browse(message_ids), {'next_attempt_at': now})
        tasks = Queue.search([
                ('dequeued_at', '=', None),
                ('scheduled_at', '!=', None),
                ])
        Queue.write(tasks, {'scheduled_at': now})


def setup_company():
    "Create a company; return its id"
    with committed():
        company = create_company()
        return company.id


def create_endpoint(company_id, **values):
    "Create an endpoint of the company; return its id"
    with committed(company_id):
        Endpoint = Pool().get('his.endpoint')
        values.setdefault('name', f'Endpoint {next(_names)}')
        values.setdefault('purpose', 'his')
        values.setdefault('kind', 'fhir')
        values.setdefault('connect_timeout', 1.0)
        values.setdefault('read_timeout', 2.0)
        values.setdefault('max_attempts', 3)
        values['company'] = company_id
        endpoint, = Endpoint.create([values])
        return endpoint.id


def deactivate_others(company_id, purpose, keep_id):
    "Keep only the endpoint keep_id active for purpose"
    with committed(company_id):
        Endpoint = Pool().get('his.endpoint')
        others = Endpoint.search([
                ('company', '=', company_id),
                ('purpose', '=', purpose),
                ('id', '!=', keep_id),
                ])
        Endpoint.write(others, {'active': False})


def messages(ids):
    """Read the messages in a fresh transaction: {id: namespace of the
    stored values} (the ones that do not exist are left out)"""
    with Transaction().start(DB_NAME, 0, readonly=True):
        Outbox = Pool().get('his.outbox')
        found = Outbox.search([('id', 'in', ids)])
        names = [n for n in Outbox._fields if n not in {'origin'}]
        return {
            r['id']: SimpleNamespace(**r)
            for r in Outbox.read([m.id for m in found], names)}


class OutboxUnitTestCase(unittest.TestCase):
    "Outbox computations without a database"

    def test_backoff(self):
        "Exponential back-off with a cap"
        self.assertEqual(
            [backoff(n, base=30, cap=3600) for n in range(1, 9)],
            [30, 60, 120, 240, 480, 960, 1920, 3600])
        self.assertEqual(backoff(0, base=10, cap=100), 10)
        self.assertEqual(backoff(10 ** 6, base=10, cap=100), 100)
        with settings(retry_base=2, retry_cap=5):
            self.assertEqual([backoff(n) for n in (1, 2, 3)], [2, 4, 5])

    def test_payload_round_trip(self):
        "A charge survives its JSON payload"
        charge = new_charge(
            quantity=Decimal('2.5'), lot='L1', description='支架 "x"')
        payload = charge_payload(charge)
        self.assertEqual(payload_charge(payload), charge)
        self.assertEqual(json.loads(payload)['unit_price'], '6800.00')


class OutboxTestCase(unittest.TestCase):
    """The outbox with a committed database and the queue run like
    trytond's (each test makes its own company and endpoints)"""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['his_connector'])
        cls._settings = settings(
            retry_base=30, retry_cap=3600, stale_grace=0, batch_size=50)
        cls._settings.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls._settings.__exit__(None, None, None)
        drop_db()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        # Leave no task of another test behind
        run_queue()
        self.company_id = setup_company()

    def down_endpoint(self, **values):
        "An HIS endpoint on a port nobody listens on (the HIS is down)"
        endpoint_id = create_endpoint(
            self.company_id, url=f'http://127.0.0.1:{free_port()}/fhir',
            **values)
        deactivate_others(self.company_id, 'his', endpoint_id)
        return endpoint_id

    def post(self, charge=None, **values):
        "Post a charge through the service; return the message id"
        with committed(self.company_id):
            Service = Pool().get('his.service')
            return Service.post_charge(charge or new_charge(**values)).id

    def test_post_queues_a_message(self):
        "Posting stores a queued message and its queue task, atomically"
        endpoint_id = self.down_endpoint()
        before = set(pending_tasks(due_only=False))
        message_id = self.post()

        message = messages([message_id])[message_id]
        self.assertEqual(message.state, 'queued')
        with Transaction().start(DB_NAME, 0, readonly=True):
            Outbox = Pool().get('his.outbox')
            self.assertEqual(Outbox(message_id).endpoint.id, endpoint_id)
        self.assertEqual(message.operation, 'post_charge')
        self.assertEqual(message.attempts, 0)
        self.assertEqual(json.loads(message.payload)['key'], message.key)
        self.assertEqual(len(set(pending_tasks(due_only=False)) - before), 1)

        # A rolled back post leaves neither message nor task
        with Transaction().start(DB_NAME, 0, context={
                    'company': self.company_id}) as transaction:
            Service = Pool().get('his.service')
            rolled = Service.post_charge(new_charge()).id
            transaction.rollback()
        self.assertEqual(messages([rolled]), {})
        self.assertEqual(len(set(pending_tasks(due_only=False)) - before), 1)

    def test_same_key_returns_the_message(self):
        "A second post of the key returns the first message"
        self.down_endpoint()
        charge = new_charge()
        first = self.post(charge)
        self.assertEqual(self.post(charge), first)
        with self.assertRaises(UserError) as cm:
            self.post(new_charge(key=charge.key, quantity=Decimal('2')))
        self.assertIn(charge.key, cm.exception.message)

    def test_bad_input(self):
        "Bad charges are refused with a clear error, nothing stored"
        self.down_endpoint()
        with committed(self.company_id):
            Outbox = Pool().get('his.outbox')
            count = Outbox.search_count([])
        for values, text in [
                ({'key': ''}, 'idempotency key'),
                ({'inpatient_number': ' '}, 'inpatient number'),
                ({'charge_item': ''}, 'charge item'),
                ({'quantity': Decimal('0')}, 'quantity'),
                ({'quantity': Decimal('NaN')}, 'quantity'),
                ({'unit_price': Decimal('-1')}, 'unit price'),
                ]:
            with self.subTest(values=values):
                with self.assertRaises(UserError) as cm:
                    self.post(**values)
                self.assertIn(text, cm.exception.message)
        with committed(self.company_id):
            Service = Pool().get('his.service')
            with self.assertRaises(UserError) as cm:
                Service.cancel_charge('never-posted')
            self.assertIn('never-posted', cm.exception.message)
            with self.assertRaises(UserError) as cm:
                Service.send_sms('12', 'text')
            with self.assertRaises(UserError) as cm:
                Service.send_sms('+8613800000000', '')
            self.assertEqual(Outbox.search_count([]), count)

    def test_no_endpoint(self):
        "Without an active endpoint the services say so"
        with committed(self.company_id):
            Service = Pool().get('his.service')
            with self.assertRaises(UserError) as cm:
                Service.post_charge(new_charge())
            self.assertIn('"HIS"', cm.exception.message)
            with self.assertRaises(UserError):
                Service.find_patient('ZY2026000101')
            with self.assertRaises(UserError) as cm:
                Service.send_sms('+8613800000000', 'x')
            self.assertIn('"SMS"', cm.exception.message)

    def test_lookup_his_down(self):
        "A lookup while the HIS is down: HIS unreachable"
        self.down_endpoint()
        with committed(self.company_id):
            Service = Pool().get('his.service')
            with self.assertRaises(UserError) as cm:
                Service.find_patient('ZY2026000101')
            self.assertIn('unreachable', cm.exception.message)
            with self.assertRaises(UserError) as cm:
                Service.find_patient('  ')
            self.assertIn('inpatient number', cm.exception.message)

    def test_backoff_then_parked(self):
        "HIS down: retried with back-off, parked after the maximum attempts"
        endpoint_id = self.down_endpoint(max_attempts=3)
        message_id = self.post()
        for attempt in range(1, 4):
            before = dt.datetime.now()
            self.assertGreaterEqual(run_queue(), 1)
            after = dt.datetime.now()
            message = messages([message_id])[message_id]
            self.assertEqual(message.attempts, attempt)
            self.assertIn('PeerUnavailable', message.last_error)
            if attempt < 3:
                self.assertEqual(message.state, 'retrying')
                wait = dt.timedelta(seconds=30 * 2 ** (attempt - 1))
                self.assertGreaterEqual(message.next_attempt_at, before + wait)
                self.assertLessEqual(message.next_attempt_at, after + wait)
                # Its task waits for the back-off
                self.assertEqual(run_queue(), 0)
                make_due([message_id])
            else:
                self.assertEqual(message.state, 'parked')
                self.assertIsNone(message.next_attempt_at)
        self.assertEqual(run_queue(), 0)

        # The administrator retries once the HIS is back: a fresh series
        with committed(self.company_id):
            Outbox = Pool().get('his.outbox')
            with self.assertRaises(UserError):
                Outbox.requeue([Outbox(message_id)], ' ')
            Outbox.requeue([Outbox(message_id)], "HIS restarted")
        message = messages([message_id])[message_id]
        self.assertEqual(
            (message.state, message.attempts, message.admin_reason),
            ('queued', 0, "HIS restarted"))
        with Transaction().start(DB_NAME, 0, readonly=True):
            Log = Pool().get('ir.model.log')
            targets = [l.target for l in Log.search([
                        ('resource', '=', f'his.outbox,{message_id}')],
                    order=[('id', 'ASC')])]
        self.assertEqual(targets, [
                'state:retrying', 'state:retrying', 'state:parked',
                'state:queued'])
        del endpoint_id

    def test_cancel_message(self):
        "An administrator cancels an undelivered message with a reason"
        self.down_endpoint()
        post_id = self.post(key='hrp-cancel-me')
        with committed(self.company_id):
            pool = Pool()
            Service = pool.get('his.service')
            Outbox = pool.get('his.outbox')
            cancel_id = Service.cancel_charge('hrp-cancel-me').id
            self.assertEqual(Outbox(cancel_id).depends_on.id, post_id)
            Outbox.do_cancel([Outbox(post_id)], "Wrong patient")
        found = messages([post_id, cancel_id])
        # The post never went out: its cancellation goes with it
        self.assertEqual(found[post_id].state, 'cancelled')
        self.assertEqual(found[cancel_id].state, 'cancelled')
        self.assertEqual(found[post_id].admin_reason, "Wrong patient")
        run_queue()
        found = messages([post_id, cancel_id])
        self.assertEqual(found[post_id].state, 'cancelled')
        self.assertEqual(found[post_id].attempts, 0)
        self.assertEqual(found[cancel_id].attempts, 0)

    def test_cancel_waits_for_the_post(self):
        "A cancellation is not sent before its post is delivered"
        self.down_endpoint()
        post_id = self.post(key='hrp-wait')
        with committed(self.company_id):
            cancel_id = Pool().get('his.service').cancel_charge(
                'hrp-wait').id
        run_queue()
        found = messages([post_id, cancel_id])
        self.assertEqual(found[post_id].state, 'retrying')
        self.assertEqual(found[cancel_id].state, 'queued')
        self.assertEqual(found[cancel_id].attempts, 0)

    def test_recover_interrupted(self):
        "A message left sending by a dead worker is handed back"
        self.down_endpoint()
        message_id = self.post()
        with committed(self.company_id):
            Outbox = Pool().get('his.outbox')
            # What a worker killed after the claim leaves
            claimed = Outbox._claim([message_id], [])
            self.assertEqual(claimed, [message_id])
            table = Outbox.__table__()
            cursor = Transaction().connection.cursor()
            cursor.execute(*table.update(
                    [table.sending_since],
                    [dt.datetime.now() - dt.timedelta(minutes=10)],
                    where=table.id == message_id))
        self.assertEqual(messages([message_id])[message_id].state, 'sending')
        # Its own task finds nothing due
        run_queue()
        self.assertEqual(messages([message_id])[message_id].state, 'sending')

        with committed():
            stale, _ = Pool().get('his.outbox').recover()
            self.assertEqual([m.id for m in stale], [message_id])
        message = messages([message_id])[message_id]
        self.assertEqual(message.state, 'retrying')
        self.assertEqual(message.attempts, 1)
        self.assertIn('interrupted', message.last_error)
        run_queue()
        message = messages([message_id])[message_id]
        self.assertEqual(
            (message.state, message.attempts), ('retrying', 2))

    def test_credential_missing(self):
        "A missing credential is retried and never shows a secret"
        self.down_endpoint(credential_env='HRP_CRED_OUTBOX_TEST')
        message_id = self.post()
        run_queue()
        message = messages([message_id])[message_id]
        self.assertEqual(message.state, 'retrying')
        self.assertIn('HRP_CRED_OUTBOX_TEST', message.last_error)

    def test_sms(self):
        "SMS: delivered by the modem; ERROR parks; an absent modem retries"
        with ModemEmulator() as emulator:
            endpoint_id = create_endpoint(
                self.company_id, purpose='sms', kind='sms_modem',
                url=emulator.device, read_timeout=2.0)
            deactivate_others(self.company_id, 'sms', endpoint_id)
            with committed(self.company_id):
                Service = Pool().get('his.service')
                sent_id = Service.send_sms(
                    '138 0000 0000', '请补货：注射器 200 支').id
            run_queue()
            message = messages([sent_id])[sent_id]
            self.assertEqual(message.state, 'delivered')
            self.assertTrue(message.his_reference)
            self.assertEqual(
                [(m['number'], m['text']) for m in emulator.messages],
                [('13800000000', '请补货：注射器 200 支')])

            emulator.error_submissions()
            with committed(self.company_id):
                error_id = Service.send_sms('+8613800000000', 'x').id
            run_queue()
            message = messages([error_id])[error_id]
            self.assertEqual(message.state, 'parked')
            self.assertIn('ERROR', message.last_error)

        # The modem is gone
        with committed(self.company_id):
            absent_id = Service.send_sms('+8613800000000', 'y').id
        run_queue()
        message = messages([absent_id])[absent_id]
        self.assertEqual(message.state, 'retrying')
        self.assertIn('ModemAbsent', message.last_error)

    def test_tasks_per_transaction(self):
        """A transaction of many posts pushes at most delivery_tasks queue
        tasks; one task delivers every due message, whatever its endpoint,
        batch after batch"""
        first = self.down_endpoint()
        before = set(pending_tasks(due_only=False))
        with settings(delivery_tasks=2, batch_size=3):
            with committed(self.company_id):
                Service = Pool().get('his.service')
                ids = [Service.post_charge(new_charge()).id
                    for _ in range(5)]
            self.assertEqual(
                len(set(pending_tasks(due_only=False)) - before), 2)
            # Another endpoint: its messages are delivered by any task
            self.down_endpoint()
            with committed(self.company_id):
                Service = Pool().get('his.service')
                ids += [Service.post_charge(new_charge()).id
                    for _ in range(2)]
            tasks = sorted(set(pending_tasks()) - before)
            self.assertEqual(len(tasks), 4)
            # The first task claims them all, 3 at a time
            run_task(DB_NAME, tasks[0])
        found = messages(ids)
        self.assertEqual(
            {(m.state, m.attempts) for m in found.values()},
            {('retrying', 1)})
        with Transaction().start(DB_NAME, 0, readonly=True):
            Outbox = Pool().get('his.outbox')
            self.assertEqual(
                {Outbox(i).endpoint.id for i in ids[:5]}, {first})
            Log = Pool().get('ir.model.log')
            logs = Log.search([
                    ('resource', 'in', [f'his.outbox,{i}' for i in ids]),
                    ])
            self.assertEqual(
                sorted((l.resource.id, l.event, l.target) for l in logs),
                sorted((i, 'transition', 'state:retrying') for i in ids))
        # The other tasks find nothing due
        self.assertEqual(run_queue(), 3)
        self.assertEqual(
            {m.attempts for m in messages(ids).values()}, {1})

    def test_enqueue_after_rollback(self):
        "The count of pushed tasks starts again with each transaction"
        self.down_endpoint()
        before = set(pending_tasks(due_only=False))
        with settings(delivery_tasks=1):
            with Transaction().start(DB_NAME, 0, context={
                        'company': self.company_id}) as transaction:
                Service = Pool().get('his.service')
                Service.post_charge(new_charge())
                transaction.rollback()
                kept = Service.post_charge(new_charge()).id
                transaction.commit()
        self.assertEqual(
            len(set(pending_tasks(due_only=False)) - before), 1)
        run_queue()
        self.assertEqual(messages([kept])[kept].attempts, 1)

    def test_service_pass_throughs(self):
        "charge_item_for, record_usage and usage_for through his.service"
        from ..pacs import Usage
        from .test_chargeitem import EXPECTED, create_his, create_material
        with committed(self.company_id):
            pool = Pool()
            Service = pool.get('his.service')
            Company = pool.get('company.company')
            ChargeItem = pool.get('his.charge.item')
            Mapping = pool.get('his.product.mapping')
            Uom = pool.get('product.uom')
            Endpoint = pool.get('his.endpoint')
            ModelData = pool.get('ir.model.data')
            company = Company(self.company_id)
            his = create_his(company, name=f"HIS {next(_names)}")
            ChargeItem.import_items(his, EXPECTED, 'his')
            if not Uom.search([('symbol', '=', '支')]):
                Uom.create([{
                            'name': '支', 'symbol': '支', 'digits': 0,
                            'category': ModelData.get_id(
                                'product', 'uom_cat_unit'),
                            'factor': 1, 'rounding': 1}])
            syringe = create_material("注射器", '支', Decimal('0.85'))
            unmapped = create_material("纱布", '支')
            item, = ChargeItem.search([
                    ('endpoint', '=', his.id), ('code', '=', 'C14010003')])
            Mapping.create([{
                        'company': self.company_id, 'product': syringe.id,
                        'charge_item': item.id}])
            self.assertEqual(Service.charge_item_for(syringe), item)
            with self.assertRaises(UserError) as cm:
                Service.charge_item_for(unmapped)
            self.assertIn("纱布", cm.exception.message)

            pacs, = Endpoint.create([{
                        'name': f"PACS {next(_names)}",
                        'company': self.company_id, 'purpose': 'pacs',
                        'kind': 'pacs_http',
                        'url': 'https://pacs.example.org/'}])
            day = dt.date.today() - dt.timedelta(days=1)
            counts = Service.record_usage(pacs, [
                    Usage('CT01', day, 52, Decimal('10.5')),
                    Usage('MR01', day, 18, Decimal('9.25')),
                    ], 'http')
            self.assertEqual(counts['created'], 2)
            usages = Service.usage_for(['CT01'], day, day)
            self.assertEqual(
                [(u.device, u.day, u.exams) for u in usages],
                [('CT01', day, 52)])
            self.assertEqual(
                Service.usage_for(['CT01'], day, day, company=-1), [])
