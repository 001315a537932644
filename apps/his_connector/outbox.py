# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The outbox: every outbound call to a peer (post or cancel a charge, send
an SMS) is a stored message, delivered through Tryton's queue (``ir.queue``,
``trytond-worker``).

The message is created in the caller's transaction together with a queue
task, so that a charge is queued if and only if the domain document that
asked for it is committed (a transactional outbox).  A transaction pushes
at most ``[his_connector] delivery_tasks`` (2) tasks however many messages
it creates: each task delivers every due message, batch after batch, until
none is left (or for ``task_seconds``, 30, then a new task goes on).  For
each batch a task:

1. claims the due messages it was given, completed with other due
   messages (at most ``[his_connector] batch_size``, 50 by default), with
   ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, and commits them in
   state ``sending`` with one more attempt: a worker killed from here on
   leaves them in ``sending``;
2. calls the peer for each claimed message with its idempotency key
   (``send_threads``, 4, calls at a time to an HTTP or MLLP peer);
3. records the outcomes: ``delivered`` (with the peer's reference), or
   ``retrying`` with a back-off of ``retry_base * 2 ** (attempts - 1)``
   seconds capped at ``retry_cap`` (a queue task scheduled then), or
   ``parked`` after the endpoint's maximum attempts or at once when the
   peer rejects the call.

The scheduled job ``recover`` hands back to the queue the messages left in
``sending`` longer than the endpoint's timeouts allow (a worker killed while
sending) and the due messages whose queue task was lost.  A re-delivery
sends the same key, so that the peer answers the first acknowledgement
instead of creating a second charge.

A ``cancel_charge`` message waits until the ``post_charge`` message of its
key is delivered (or cancelled by an administrator).  Administrators retry
(parked or retrying → queued) and cancel messages with a reason.

The reconciliation (``his.reconciliation``) compares the charges delivered
through the outbox with the peer's ``list_charges()``."""
import dataclasses
import datetime as dt
import json
import logging
import os
import queue
import time
from concurrent import futures
from decimal import Decimal

from sql import For, Null
from sql.functions import CurrentTimestamp

import trytond.config as config
from trytond.i18n import gettext
from trytond.model import (
    Index, ModelSQL, ModelView, Unique, Workflow, fields)
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction, without_check_access
from trytond.wizard import Button, StateTransition, StateView, Wizard

from . import his, sms
from .exceptions import CredentialError, OutboxError

logger = logging.getLogger(__name__)

OPERATIONS = [
    ('post_charge', "Post Charge"),
    ('cancel_charge', "Cancel Charge"),
    ('send_sms', "Send SMS"),
    ('send_email', "Send E-mail"),
    ]
STATES = [
    ('queued', "Queued"),
    ('sending', "Sending"),
    ('delivered', "Delivered"),
    ('retrying', "Failed, Retrying"),
    ('parked', "Parked"),
    ('cancelled', "Cancelled"),
    ]
DUE_STATES = ['queued', 'retrying']
QUEUE_NAME = 'his_outbox'
MAX_ERROR = 2000


def setting(name, default):
    "A number of the [his_connector] section of the trytond configuration"
    return config.getfloat('his_connector', name, default=default)


def backoff(attempts, base=None, cap=None):
    """Return the seconds to wait after the attempts-th failed attempt:
    base * 2 ** (attempts - 1), at most cap"""
    if base is None:
        base = setting('retry_base', 30)
    if cap is None:
        cap = setting('retry_cap', 3600)
    exponent = min(max(attempts - 1, 0), 60)
    return min(base * 2 ** exponent, cap)


def _json_value(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def charge_payload(charge):
    "Return the JSON text of a his.Charge"
    return json.dumps(
        {k: _json_value(v) for k, v in dataclasses.asdict(charge).items()},
        sort_keys=True, ensure_ascii=False)


def payload_charge(payload):
    "Return the his.Charge of a JSON text made by charge_payload"
    data = json.loads(payload)
    for name in ['quantity', 'unit_price']:
        data[name] = Decimal(data[name])
    if data.get('date'):
        data['date'] = dt.datetime.fromisoformat(data['date'])
    return his.Charge(**data)


class _PushedTasks:
    """The delivery tasks to run now that the current database transaction
    pushed (a data manager of the transaction: reset at its end)"""

    def __init__(self):
        self.count = 0

    def __eq__(self, other):
        return isinstance(other, _PushedTasks)

    def __hash__(self):
        return hash(_PushedTasks)

    def tpc_begin(self, transaction):
        pass

    def commit(self, transaction):
        pass

    def tpc_vote(self, transaction):
        pass

    def tpc_finish(self, transaction):
        self.count = 0

    def tpc_abort(self, transaction):
        self.count = 0


class Outbox(Workflow, ModelSQL, ModelView):
    __name__ = 'his.outbox'
    __string__ = "HIS Outbox Message"
    _rec_name = 'key'

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    endpoint = fields.Many2One(
        'his.endpoint', "Endpoint", required=True, readonly=True,
        ondelete='RESTRICT',
        domain=[('company', '=', Eval('company', -1))],
        help="The peer system the message is sent to.")
    operation = fields.Selection(
        OPERATIONS, "Operation", required=True, readonly=True, sort=False)
    key = fields.Char(
        "Idempotency Key", required=True, readonly=True,
        help="Travels with the call: the peer never applies the same "
        "operation twice for one key.")
    payload = fields.Text(
        "Payload", required=True, readonly=True,
        help="The data of the call, in JSON.")
    state = fields.Selection(
        STATES, "State", required=True, readonly=True, sort=False)
    attempts = fields.Integer(
        "Attempts", required=True, readonly=True,
        help="How many times the message was sent since it was queued "
        "or retried by an administrator.")
    next_attempt_at = fields.Timestamp(
        "Next Attempt At", readonly=True,
        help="When the message is due for delivery.")
    sending_since = fields.Timestamp("Sending Since", readonly=True)
    last_error = fields.Text(
        "Last Error", readonly=True,
        help="Why the last attempt failed.")
    his_reference = fields.Char(
        "HIS Reference", readonly=True,
        help="The peer's identifier of the charge or of the SMS parts.")
    duplicate = fields.Boolean(
        "Duplicate", readonly=True,
        help="The peer had already received the key: it answered the "
        "first acknowledgement.")
    delivered_at = fields.Timestamp("Delivered At", readonly=True)
    origin = fields.Reference(
        "Origin", selection='get_origins', readonly=True,
        help="The document that asked for the message.")
    depends_on = fields.Many2One(
        'his.outbox', "Depends On", readonly=True, ondelete='RESTRICT',
        help="The message that must be delivered first.")
    admin_reason = fields.Text(
        "Reason", readonly=True,
        help="Why an administrator last retried or cancelled the message.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('endpoint_operation_key_unique',
                Unique(t, t.endpoint, t.operation, t.key),
                'his_connector.msg_outbox_key_unique'),
            ]
        cls._sql_indexes.update({
                Index(
                    t,
                    (t.state, Index.Equality(cardinality='low')),
                    (t.next_attempt_at, Index.Range())),
                Index(t, (t.depends_on, Index.Range())),
                })
        cls._order.insert(0, ('id', 'DESC'))
        cls._transitions |= {
            ('parked', 'queued'),
            ('retrying', 'queued'),
            ('queued', 'cancelled'),
            ('retrying', 'cancelled'),
            ('parked', 'cancelled'),
            }
        cls._buttons.update({
                'retry': {
                    'invisible': ~Eval('state').in_(['parked', 'retrying']),
                    'depends': ['state'],
                    },
                'cancel': {
                    'invisible': ~Eval('state').in_(
                        ['queued', 'retrying', 'parked']),
                    'depends': ['state'],
                    },
                })

    @classmethod
    def default_state(cls):
        return 'queued'

    @classmethod
    def default_attempts(cls):
        return 0

    @classmethod
    def default_duplicate(cls):
        return False

    @classmethod
    def default_next_attempt_at(cls):
        return dt.datetime.now()

    @classmethod
    def _get_origin(cls):
        "The models of the documents that send messages (domain modules)"
        return []

    @classmethod
    def get_origins(cls):
        IrModel = Pool().get('ir.model')
        return [(None, '')] + [
            (m, IrModel.get_name(m)) for m in cls._get_origin()]

    def get_rec_name(self, name):
        return f'{self.key} ({self.operation})'

    @classmethod
    def check_modification(cls, mode, messages, values=None, external=False):
        super().check_modification(
            mode, messages, values=values, external=external)
        if mode == 'delete':
            for message in messages:
                if message.state not in {'cancelled', 'delivered'}:
                    raise OutboxError(gettext(
                            'his_connector.msg_outbox_delete',
                            message=message.rec_name))

    # Administrator actions

    @classmethod
    @ModelView.button_action('his_connector.wizard_outbox_retry')
    def retry(cls, messages):
        pass

    @classmethod
    @ModelView.button_action('his_connector.wizard_outbox_cancel')
    def cancel(cls, messages):
        pass

    @staticmethod
    def _check_reason(reason):
        if not reason or not reason.strip():
            raise OutboxError(gettext('his_connector.msg_outbox_reason'))

    @classmethod
    @Workflow.transition('queued')
    def requeue(cls, messages, reason):
        """Queue again parked or retrying messages for reason (a fresh
        series of attempts, delivered at once)"""
        cls._check_reason(reason)
        cls.write(messages, {
                'attempts': 0,
                'next_attempt_at': dt.datetime.now(),
                'admin_reason': reason,
                })
        logger.info(
            "outbox messages %s retried by user %s: %s",
            [m.id for m in messages], Transaction().user, reason)
        cls.enqueue(messages)

    @classmethod
    @Workflow.transition('cancelled')
    def do_cancel(cls, messages, reason):
        """Cancel messages that are not delivered, for reason.  The cancel
        messages waiting for a post that was never sent are cancelled with
        it."""
        cls._check_reason(reason)
        cls.write(messages, {'admin_reason': reason})
        logger.info(
            "outbox messages %s cancelled by user %s: %s",
            [m.id for m in messages], Transaction().user, reason)
        never_sent = [
            m for m in messages
            if m.operation == 'post_charge' and not m.attempts]
        if never_sent:
            waiting = cls.search([
                    ('depends_on', 'in', [m.id for m in never_sent]),
                    ('state', 'in', DUE_STATES + ['parked']),
                    ])
            if waiting:
                cls.do_cancel(waiting, reason)

    # Delivery

    @classmethod
    def enqueue(cls, messages, at=None):
        """Push a task delivering messages to the queue, to run at at
        (default: now).

        A task delivers every due message until none is left, so that a
        transaction pushes at most ``[his_connector] delivery_tasks`` (2)
        tasks to run now, whatever the number of its messages: they run
        after its commit and see all of them."""
        if not messages:
            return
        now = dt.datetime.now()
        if not at or at <= now:
            pushed = Transaction().join(_PushedTasks())
            if pushed.count >= int(setting('delivery_tasks', 2)):
                return
            pushed.count += 1
        cls._push(messages, at=at)

    @classmethod
    def _push(cls, messages, at=None):
        "Push a task delivering messages, to run at at (default: now)"
        context = {'queue_name': QUEUE_NAME}
        now = dt.datetime.now()
        if at and at > now:
            context['queue_scheduled_at'] = at - now
            context['queue_expected_at'] = at - now
        with Transaction().set_context(**context):
            cls.__queue__.deliver(list(messages))

    @classmethod
    def deliver(cls, messages):
        """Deliver the due messages, those of messages first, batch after
        batch until none is due (the queue task).  After
        ``[his_connector] task_seconds`` (30) it hands the rest over to a
        new task.

        Commits: each claim before any call to a peer, then the outcomes
        of its batch."""
        transaction = Transaction()
        ids = [m.id for m in messages]
        deadline = time.monotonic() + setting('task_seconds', 30)
        while True:
            # A fresh snapshot, so that the claim sees the latest states
            transaction.commit()
            claimed = cls._claim_retrying(ids)
            # The claim and its attempt are durable before the peer is
            # called
            transaction.commit()
            if not claimed:
                break
            cls._lock(claimed)
            cls._record_outcomes(cls._send_messages(cls.browse(claimed)))
            ids = []
            if time.monotonic() > deadline:
                cls._push(cls.browse(claimed[:1]))
                break

    @classmethod
    def _lock(cls, ids, skip_locked=False):
        """Lock the rows of the messages ids until the end of the
        transaction (PostgreSQL); return the ids locked.

        A task holds the rows of its claimed batch while it calls the
        peers: recover leaves alone the messages of a live worker, and
        finds those of a killed one (its locks die with its connection)."""
        transaction = Transaction()
        database = transaction.database
        if not ids or not database.has_select_for():
            return list(ids)
        cursor = transaction.connection.cursor()
        table = cls.__table__()
        query = table.select(table.id, where=table.id.in_(list(ids)))
        for_ = database.get_select_for_skip_locked() if skip_locked else For
        query.for_ = for_('UPDATE')
        cursor.execute(*query)
        return [r for r, in cursor]

    @classmethod
    def _claim_retrying(cls, ids, tries=5):
        """_claim, tried again when a concurrent claim of the same messages
        was committed first (repeatable read)"""
        from trytond import backend
        transaction = Transaction()
        for count in range(tries):
            try:
                return cls._claim(ids)
            except backend.DatabaseOperationalError:
                if count + 1 >= tries:
                    raise
                transaction.rollback()
                time.sleep(0.01 * (count + 1))

    @classmethod
    def _claim(cls, ids, others=True):
        """Set the due messages among ids, completed with other due messages
        (if others) up to ``batch_size``, in state sending; return their
        ids"""
        transaction = Transaction()
        database = transaction.database
        cursor = transaction.connection.cursor()
        table = cls.__table__()
        before = cls.__table__()
        limit = int(setting('batch_size', 50))
        now = dt.datetime.now()
        ready = (
            table.state.in_(DUE_STATES)
            & ((table.next_attempt_at == Null)
                | (table.next_attempt_at <= now))
            & ((table.depends_on == Null)
                | table.depends_on.in_(before.select(
                        before.id,
                        where=before.state.in_(['delivered', 'cancelled'])))))
        selected = []
        wheres = [table.id.in_(ids)] if ids else []
        if others:
            wheres.append(None)
        for where in wheres:
            if len(selected) >= limit:
                break
            condition = ready
            if where is not None:
                condition &= where
            if selected:
                condition &= ~table.id.in_(selected)
            query = table.select(
                table.id,
                where=condition,
                order_by=[table.id.asc],
                limit=limit - len(selected))
            if database.has_select_for():
                For = database.get_select_for_skip_locked()
                query.for_ = For('UPDATE', nowait=False)
            cursor.execute(*query)
            selected.extend(r for r, in cursor)
        if not selected:
            return []
        values = [
            'sending', now, table.attempts + 1, transaction.user,
            CurrentTimestamp()]
        columns = [
            table.state, table.sending_since, table.attempts,
            table.write_uid, table.write_date]
        where = table.id.in_(selected) & table.state.in_(DUE_STATES)
        if database.has_returning():
            cursor.execute(*table.update(
                    columns, values, where=where, returning=[table.id]))
            return sorted(r for r, in cursor)
        claimed = []
        for id_ in selected:
            cursor.execute(*table.update(
                    columns, values,
                    where=(table.id == id_) & table.state.in_(DUE_STATES)))
            if cursor.rowcount:
                claimed.append(id_)
        return claimed

    @classmethod
    def _send_messages(cls, messages):
        """Call the peers; return a list of (message, outcome, values):
        outcome is 'delivered', 'retry' or 'park'.

        The messages of an HTTP or MLLP endpoint are sent by up to
        ``[his_connector] send_threads`` (4) threads, each with its own
        transport (connection), so that a peer that answers late (or not
        at all, until the read timeout) does not hold the others; the
        messages of a modem one after the other."""
        results = []
        by_endpoint = {}
        for message in messages:
            by_endpoint.setdefault(message.endpoint, []).append(message)
        for endpoint, group in by_endpoint.items():
            transports = []
            try:
                transports.append(endpoint.transport())
                modem = isinstance(transports[0], sms.Modem)
                threads = 1 if modem else max(min(
                        int(setting('send_threads', 4)), len(group)), 1)
                while len(transports) < threads:
                    transports.append(endpoint.transport())
            except CredentialError as exception:
                results.extend(
                    (m, 'retry', {'last_error': exception.message})
                    for m in group)
                cls._close(transports)
                continue
            except Exception as exception:
                logger.exception("endpoint %s has no transport", endpoint.id)
                results.extend(
                    (m, 'park', {'last_error': cls._error_text(
                                endpoint, exception)})
                    for m in group)
                cls._close(transports)
                continue
            try:
                if modem:
                    try:
                        transports[0].open()
                    except sms.SmsError as exception:
                        results.extend(
                            (m, 'retry', {'last_error': cls._error_text(
                                        endpoint, exception)})
                            for m in group)
                        continue
                # Read in this thread: the records need the transaction
                calls = [(m.operation, m.payload) for m in group]
                if len(transports) == 1:
                    answers = [
                        cls._call_peer(transports[0], *c) for c in calls]
                else:
                    free = queue.SimpleQueue()
                    for transport in transports:
                        free.put(transport)

                    def call(args):
                        transport = free.get()
                        try:
                            return cls._call_peer(transport, *args)
                        finally:
                            free.put(transport)
                    with futures.ThreadPoolExecutor(
                            len(transports)) as executor:
                        answers = list(executor.map(call, calls))
                for message, (values, error) in zip(group, answers):
                    results.append(cls._outcome(message, values, error))
            finally:
                cls._close(transports)
        return results

    @staticmethod
    def _close(transports):
        for transport in transports:
            try:
                transport.close()
            except Exception:
                logger.exception("transport close failed")

    @classmethod
    def _send_one(cls, transport, message):
        "Send message with transport; return (message, outcome, values)"
        return cls._outcome(
            message, *cls._call_peer(
                transport, message.operation, message.payload))

    @classmethod
    def _outcome(cls, message, values, error):
        "Return (message, outcome, values) of the answer of _call_peer"
        if error is None:
            return message, 'delivered', values
        if isinstance(error, (his.PeerUnavailable, his.MalformedReply)):
            outcome = 'retry'
        elif isinstance(error, (his.PeerRejected, sms.InvalidMessage)):
            outcome = 'park'
        elif isinstance(error, sms.ModemError):
            outcome = 'retry' if error.transient else 'park'
        elif isinstance(error, sms.SmsError):
            # ModemAbsent, ModemTimeout
            outcome = 'retry'
        else:
            logger.error(
                "outbox message %s failed", message.id, exc_info=error)
            outcome = 'park'
        return message, outcome, {
            'last_error': cls._error_text(message.endpoint, error)}

    def _call(self, transport):
        "Send the message with transport; return the values of a delivery"
        values, error = self._call_peer(
            transport, self.operation, self.payload)
        if error is not None:
            raise error
        return values

    @staticmethod
    def _call_peer(transport, operation, payload):
        """Send the call of operation with payload through transport;
        return (values of a delivery, None) or (None, the exception).

        Runs in any thread: it touches no record."""
        try:
            data = json.loads(payload)
            if operation == 'post_charge':
                ack = transport.post_charge(payload_charge(payload))
            elif operation == 'cancel_charge':
                ack = transport.cancel_charge(data['key'])
            elif operation == 'send_email':
                reference = transport.send(
                    data['to'], data['subject'], data['text'], data['key'])
                return {
                    'his_reference': reference,
                    'duplicate': False,
                    }, None
            elif operation == 'send_sms':
                references = transport.send(data['number'], data['text'])
                return {
                    'his_reference': ' '.join(
                        str(r) for r in references if r is not None)
                    or None,
                    'duplicate': False,
                    }, None
            else:
                raise ValueError(f"unknown operation {operation}")
            if ack.key != data['key']:
                raise his.MalformedReply(
                    "the peer acknowledged another key than the one sent")
            return {
                'his_reference': ack.his_reference,
                'duplicate': ack.duplicate,
                }, None
        except Exception as exception:
            return None, exception

    @staticmethod
    def _error_text(endpoint, exception):
        """The text of exception, without the endpoint's credential and at
        most MAX_ERROR characters"""
        text = getattr(exception, 'message', None) or str(exception)
        text = f'{type(exception).__name__}: {text}'
        secret = (os.environ.get(endpoint.credential_env)
            if endpoint.credential_env else None)
        if secret:
            text = text.replace(secret, '***')
        return text[:MAX_ERROR]

    @classmethod
    def _record_outcomes(cls, results):
        "Record the outcomes of _send_messages"
        now = dt.datetime.now()
        delivered, retrying, parked = [], {}, []
        to_write = []
        for message, outcome, values in results:
            values = dict(values, sending_since=None)
            if outcome == 'retry':
                if message.attempts >= message.endpoint.max_attempts:
                    outcome = 'park'
                else:
                    at = now + dt.timedelta(
                        seconds=backoff(message.attempts))
                    values.update(state='retrying', next_attempt_at=at)
                    retrying.setdefault(at, []).append(message)
            if outcome == 'park':
                values.update(state='parked', next_attempt_at=None)
                parked.append(message)
                logger.warning(
                    "outbox message %s parked after %s attempt(s): %s",
                    message.id, message.attempts, values['last_error'])
            elif outcome == 'delivered':
                values.update(
                    state='delivered', delivered_at=now,
                    next_attempt_at=None)
                delivered.append(message)
            to_write.extend(([message], values))
        if to_write:
            cls.write(*to_write)
        for state, messages in [
                ('delivered', delivered),
                ('retrying', sum(retrying.values(), [])),
                ('parked', parked)]:
            cls._log_transitions(messages, state)
        for at, messages in retrying.items():
            cls.enqueue(messages, at=at)
        # The cancellations waiting for the delivered posts are claimed by
        # the next batch of deliver

    @classmethod
    def _log_transitions(cls, messages, state):
        """Log the transition of messages to state in ir.model.log, as
        ModelStorage.log does, with one INSERT: the records of a batch
        delivered by the system need no access check nor validation"""
        if not messages:
            return
        pool = Pool()
        Log = pool.get('ir.model.log')
        transaction = Transaction()
        table = Log.__table__()
        cursor = transaction.connection.cursor()
        user = transaction.user
        now = CurrentTimestamp()
        cursor.execute(*table.insert(
                [table.resource, table.event, table.target, table.user,
                    table.create_uid, table.create_date],
                [[f'{cls.__name__},{m.id}', 'transition', f'state:{state}',
                        user, user, now]
                    for m in messages]))

    @classmethod
    def recover(cls):
        """Hand back to the queue the messages left in sending longer than
        their endpoint's timeouts allow (a worker stopped while sending) and
        the due messages whose queue task was lost (scheduled job)"""
        now = dt.datetime.now()
        grace = dt.timedelta(seconds=setting('stale_grace', 60))
        stale = []
        for message in cls.search([('state', '=', 'sending')]):
            endpoint = message.endpoint
            timeout = dt.timedelta(seconds=2 * (
                    endpoint.connect_timeout + endpoint.read_timeout))
            if (message.sending_since or now) + timeout + grace <= now:
                stale.append(message)
        # Not those a live worker is sending (it holds their rows)
        unlocked = set(cls._lock([m.id for m in stale], skip_locked=True))
        stale = [m for m in stale if m.id in unlocked]
        if stale:
            # Due at once: the interruption was ours, not the peer's
            cls._record_recovered(stale)
        # Each task delivers all that is due: a few suffice
        lost = cls.search([
                ('state', 'in', DUE_STATES),
                ('next_attempt_at', '<=', now - grace),
                ], order=[('id', 'ASC')],
            limit=int(setting('delivery_tasks', 2)))
        for message in lost:
            cls._push([message])
        return stale, lost

    @classmethod
    def _record_recovered(cls, messages):
        now = dt.datetime.now()
        error = gettext('his_connector.msg_outbox_interrupted')
        to_write, requeued, parked = [], [], []
        for message in messages:
            values = {'last_error': error, 'sending_since': None}
            if message.attempts >= message.endpoint.max_attempts:
                values.update(state='parked', next_attempt_at=None)
                parked.append(message)
            else:
                values.update(state='retrying', next_attempt_at=now)
                requeued.append(message)
            to_write.extend(([message], values))
        cls.write(*to_write)
        if requeued:
            cls.log(requeued, 'transition', 'state:retrying')
            cls.enqueue(requeued)
        if parked:
            cls.log(parked, 'transition', 'state:parked')


class OutboxReasonStart(ModelView):
    __name__ = 'his.outbox.reason.start'
    __string__ = "Outbox Action Reason"
    reason = fields.Text(
        "Reason", required=True,
        help="Why the messages are retried or cancelled (kept on them).")


class OutboxRetry(Wizard):
    "Retry parked messages with a reason"
    __name__ = 'his.outbox.retry'
    __string__ = "Retry Outbox Messages"
    start = StateView(
        'his.outbox.reason.start',
        'his_connector.outbox_reason_start_view_form', [
            Button("Back", 'end', 'tryton-back'),
            Button("Retry", 'retry', 'tryton-ok', default=True),
            ])
    retry = StateTransition()

    def transition_retry(self):
        self.model.requeue(
            [r for r in self.records if r.state in {'parked', 'retrying'}],
            self.start.reason)
        return 'end'


class OutboxCancel(Wizard):
    "Cancel undelivered messages with a reason"
    __name__ = 'his.outbox.cancel'
    __string__ = "Cancel Outbox Messages"
    start = StateView(
        'his.outbox.reason.start',
        'his_connector.outbox_reason_start_view_form', [
            Button("Back", 'end', 'tryton-back'),
            Button("Cancel Messages", 'cancel', 'tryton-ok', default=True),
            ])
    cancel = StateTransition()

    def transition_cancel(self):
        self.model.do_cancel(
            [r for r in self.records
                if r.state in {'queued', 'retrying', 'parked'}],
            self.start.reason)
        return 'end'


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('his.outbox|recover', "Recover HIS Outbox Messages"))


RECONCILIATION_KINDS = [
    ('missing', "Missing at Peer"),
    ('unknown', "Unknown Here"),
    ('unconfirmed', "At Peer, Not Delivered Here"),
    ('reference', "Reference Mismatch"),
    ('cancel', "Cancellation Mismatch"),
    ]


class Reconciliation(ModelSQL, ModelView):
    __name__ = 'his.reconciliation'
    __string__ = "HIS Charge Reconciliation"

    company = fields.Many2One(
        'company.company', "Company", required=True,
        states={'readonly': Eval('id', -1) >= 0})
    endpoint = fields.Many2One(
        'his.endpoint', "Endpoint", required=True,
        domain=[
            ('company', '=', Eval('company', -1)),
            ('purpose', '=', 'his'),
            ],
        states={'readonly': Eval('id', -1) >= 0})
    start = fields.DateTime(
        "Start", required=True,
        help="Our charges delivered from this time are compared.")
    end = fields.DateTime(
        "End", required=True,
        help="Our charges delivered until this time are compared.")
    compared_at = fields.Timestamp("Compared At", readonly=True)
    ours = fields.Integer(
        "Our Charges", readonly=True,
        help="The charges delivered here in the period.")
    theirs = fields.Integer(
        "Peer Charges", readonly=True,
        help="The charges with our keys the peer holds since the start.")
    lines = fields.One2Many(
        'his.reconciliation.line', 'reconciliation', "Differences",
        readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('compared_at', 'DESC NULLS FIRST'))
        cls._buttons.update({
                'compare': {},
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def validate_fields(cls, reconciliations, field_names):
        super().validate_fields(reconciliations, field_names)
        for reconciliation in reconciliations:
            if reconciliation.start >= reconciliation.end:
                raise OutboxError(gettext(
                        'his_connector.msg_reconciliation_period'))

    def get_rec_name(self, name):
        return f'{self.endpoint.rec_name} {self.start} - {self.end}'

    @classmethod
    @ModelView.button
    def compare(cls, reconciliations):
        "Compare our charges with the peer's and store the differences"
        pool = Pool()
        Line = pool.get('his.reconciliation.line')
        Line.delete([l for r in reconciliations for l in r.lines])
        for reconciliation in reconciliations:
            reconciliation._compare()
        cls.save(reconciliations)

    def _compare(self):
        pool = Pool()
        Outbox = pool.get('his.outbox')
        Line = pool.get('his.reconciliation.line')
        transport = self.endpoint.transport()
        try:
            # A charge delivered in the period may have been created at
            # the peer the day before (a retry after a lost answer)
            theirs = transport.list_charges(
                since=self.start - dt.timedelta(days=1))
        except his.HISError as exception:
            raise OutboxError(gettext(
                    'his_connector.msg_reconciliation_peer',
                    endpoint=self.endpoint.rec_name,
                    error=Outbox._error_text(self.endpoint, exception)))
        finally:
            transport.close()
        with without_check_access():
            posts = Outbox.search([
                    ('endpoint', '=', self.endpoint.id),
                    ('operation', '=', 'post_charge'),
                    ])
            cancels = {m.key: m for m in Outbox.search([
                        ('endpoint', '=', self.endpoint.id),
                        ('operation', '=', 'cancel_charge'),
                        ])}
        posts = {m.key: m for m in posts}
        peer = {a.key: a for a in theirs}
        in_period = [
            m for m in posts.values()
            if m.state == 'delivered'
            and self.start <= m.delivered_at <= self.end]
        lines = []
        for message in in_period:
            ack = peer.get(message.key)
            cancel = cancels.get(message.key)
            cancelled_here = bool(cancel and cancel.state == 'delivered')
            if ack is None:
                lines.append(Line(
                        kind='missing', key=message.key, message=message))
                continue
            if (message.his_reference
                    and ack.his_reference != message.his_reference):
                lines.append(Line(
                        kind='reference', key=message.key, message=message,
                        his_reference=ack.his_reference))
            if ack.cancelled != cancelled_here:
                lines.append(Line(
                        kind='cancel', key=message.key,
                        message=cancel or message,
                        his_reference=ack.his_reference,
                        peer_cancelled=ack.cancelled))
        for key, ack in sorted(peer.items()):
            message = posts.get(key)
            if message is None:
                lines.append(Line(
                        kind='unknown', key=key,
                        his_reference=ack.his_reference,
                        peer_cancelled=ack.cancelled))
            elif message.state != 'delivered':
                lines.append(Line(
                        kind='unconfirmed', key=key, message=message,
                        his_reference=ack.his_reference,
                        peer_cancelled=ack.cancelled))
        self.lines = lines
        self.ours = len(in_period)
        self.theirs = len(peer)
        self.compared_at = dt.datetime.now()


class ReconciliationLine(ModelSQL, ModelView):
    __name__ = 'his.reconciliation.line'
    __string__ = "HIS Charge Reconciliation Difference"

    reconciliation = fields.Many2One(
        'his.reconciliation', "Reconciliation", required=True,
        ondelete='CASCADE')
    kind = fields.Selection(
        RECONCILIATION_KINDS, "Kind", required=True, sort=False)
    key = fields.Char("Idempotency Key", required=True)
    message = fields.Many2One(
        'his.outbox', "Message", ondelete='SET NULL')
    his_reference = fields.Char("HIS Reference")
    peer_cancelled = fields.Boolean("Cancelled at Peer")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('kind', 'ASC'))
