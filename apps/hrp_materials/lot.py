# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Lots out of HRP stores: recall, expiry state and first-expired-first-out
(FEFO) picking.

Tryton's ``stock.move.assign_try`` does the assignment; for a move without
lot out of an HRP store (or a location under one) it is run grouped by lot
(as ``stock_lot`` does for moves with a lot), and ``sort_quantities`` orders
the lots by shelf-life expiration date and drops those that must not leave:
recalled and expired lots always, near-expiry lots when the move issues to
another store.  Tryton then splits the move per lot and leaves what cannot be
assigned in a draft move, as it always does.

Whatever the path (assignment, forced assignment, done), a move out of an HRP
store whose lot is recalled or expired may only go to the central store, to
a supplier or to a lost-and-found (write-off) location; a near-expiry lot may
not be issued to another store, nor out of the central store."""
import datetime as dt

from sql import For

from trytond.exceptions import UserError
from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, Workflow, fields
from trytond.model.exceptions import AccessError
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval
from trytond.transaction import Transaction, without_check_access
from trytond.wizard import Button, StateTransition, StateView, Wizard

from .configuration import get_configuration
from .exceptions import ConfigurationValidationError

DEFAULT_NEAR_EXPIRY_DAYS = 30

EXPIRY_STATES = [
    ('valid', "Valid"),
    ('near_expiry', "Near Expiry"),
    ('expired', "Expired"),
    ]

RECALL_ACTIONS = [
    ('recall', "Recall"),
    ('lift', "Lift Recall"),
    ]
# the button doing each action; its dialog is the wizard action with the
# XML id ``wizard_lot_<action>``
RECALL_BUTTONS = {
    'recall': 'hrp_recall',
    'lift': 'hrp_lift_recall',
    }
RECALL_FIELDS = {
    'hrp_recalled', 'hrp_recall_reason', 'hrp_recalled_by',
    'hrp_recalled_at'}

# where a recalled or expired lot may still go from an HRP store: back to
# the central store (any store of type central), to the supplier, or out of
# the books through a lost-and-found location (write-off, inventory)
SAFE_LOCATION_TYPES = {'supplier', 'lost_found'}


class LotRecallError(UserError):
    pass


class LotIssueError(UserError):
    pass


class LotRecallLogError(AccessError):
    pass


def hrp_store(location):
    "Return the HRP store holding location (itself or its nearest parent)"
    while location:
        if location.hrp_store_type:
            return location
        location = location.parent
    return None


def near_expiry_days():
    days = get_configuration().near_expiry_days
    return DEFAULT_NEAR_EXPIRY_DAYS if days is None else days


def expiry_state(lot, date, days):
    """The expiry state of lot at date: expired after its shelf-life
    expiration date, near expiry from days before it (included)"""
    expiry = lot.shelf_life_expiration_date
    if not expiry:
        return 'valid'
    if expiry < date:
        return 'expired'
    if expiry <= date + dt.timedelta(days=days):
        return 'near_expiry'
    return 'valid'


def _format_date(date):
    Lang = Pool().get('ir.lang')
    return Lang.get().strftime(date)


def _today(company=None):
    Date = Pool().get('ir.date')
    if company:
        with Transaction().set_context(company=company.id):
            return Date.today()
    return Date.today()


class Configuration(metaclass=PoolMeta):
    __name__ = 'hrp.configuration'

    near_expiry_days = fields.Integer(
        "Near-Expiry Days", required=True,
        help="A lot whose shelf life ends within this many days is near "
        "expiry: the central store does not issue it and it is not picked "
        "for other stores.")

    @classmethod
    def default_near_expiry_days(cls):
        return DEFAULT_NEAR_EXPIRY_DAYS

    @classmethod
    def validate_fields(cls, records, field_names):
        super().validate_fields(records, field_names)
        if 'near_expiry_days' in field_names:
            for record in records:
                if (record.near_expiry_days is not None
                        and record.near_expiry_days < 0):
                    raise ConfigurationValidationError(gettext(
                            'hrp_materials.msg_lot_near_expiry_days_negative'))


class Lot(metaclass=PoolMeta):
    __name__ = 'stock.lot'

    hrp_expiry_state = fields.Function(fields.Selection(
            EXPIRY_STATES, "Expiry State",
            help="From the shelf-life expiration date and the near-expiry "
            "days of the materials configuration."),
        'get_hrp_expiry_state', searcher='search_hrp_expiry_state')
    hrp_recalled = fields.Boolean(
        "Recalled", readonly=True,
        help="A recalled lot is not issued nor used; it may only go back to "
        "the central store, to the supplier or to write-off.")
    hrp_recall_reason = fields.Text(
        "Recall Reason", readonly=True,
        states={
            'invisible': ~Eval('hrp_recalled', False),
            })
    hrp_recalled_by = fields.Many2One(
        'res.user', "Recalled By", readonly=True, ondelete='RESTRICT',
        states={
            'invisible': ~Eval('hrp_recalled', False),
            })
    hrp_recalled_at = fields.DateTime(
        "Recalled At", readonly=True,
        states={
            'invisible': ~Eval('hrp_recalled', False),
            })
    hrp_recall_logs = fields.One2Many(
        'hrp.lot.recall.log', 'lot', "Recall History", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._buttons.update({
                'hrp_recall': {
                    'invisible': Bool(Eval('hrp_recalled')),
                    'icon': 'tryton-cancel',
                    'depends': ['hrp_recalled'],
                    },
                'hrp_lift_recall': {
                    'invisible': ~Eval('hrp_recalled'),
                    'icon': 'tryton-ok',
                    'depends': ['hrp_recalled'],
                    },
                })

    @classmethod
    def default_hrp_recalled(cls):
        return False

    @classmethod
    def get_hrp_expiry_state(cls, lots, name):
        today = _today()
        days = near_expiry_days()
        return {l.id: expiry_state(l, today, days) for l in lots}

    @classmethod
    def search_hrp_expiry_state(cls, name, clause):
        _, operator, value = clause
        today = _today()
        limit = today + dt.timedelta(days=near_expiry_days())
        field = 'shelf_life_expiration_date'
        domains = {
            'expired': [(field, '<', today)],
            'near_expiry': [(field, '>=', today), (field, '<=', limit)],
            'valid': ['OR', (field, '=', None), (field, '>', limit)],
            }
        if operator in {'=', '!='}:
            states = {value}
        elif operator in {'in', 'not in'}:
            states = set(value or [])
        else:
            raise NotImplementedError(operator)
        if operator in {'!=', 'not in'}:
            states = set(domains) - states
        states = sorted(s for s in states if s in domains)
        if not states:
            return [('id', '=', None)]
        return ['OR'] + [domains[s] for s in states]

    @classmethod
    def copy(cls, lots, default=None):
        default = default.copy() if default is not None else {}
        for name in RECALL_FIELDS:
            default.setdefault(name, None)
        default.setdefault('hrp_recall_logs', None)
        return super().copy(lots, default=default)

    @classmethod
    def check_modification(cls, mode, lots, values=None, external=False):
        super().check_modification(
            mode, lots, values=values, external=external)
        if (mode == 'write' and external
                and values.keys() & RECALL_FIELDS):
            raise LotRecallError(gettext(
                    'hrp_materials.msg_lot_recall_button'))

    @classmethod
    def check_hrp_recall(cls, lots, action, reason=None):
        """Raise an error if the recall action cannot apply to lots.

        With a reason (even empty), it must say something."""
        assert action in RECALL_BUTTONS, action
        for lot in lots:
            if action == 'recall' and lot.hrp_recalled:
                raise LotRecallError(gettext(
                        'hrp_materials.msg_lot_already_recalled',
                        lot=lot.rec_name))
            if action == 'lift' and not lot.hrp_recalled:
                raise LotRecallError(gettext(
                        'hrp_materials.msg_lot_not_recalled',
                        lot=lot.rec_name))
            if reason is not None and not reason.strip():
                raise LotRecallError(gettext(
                        'hrp_materials.msg_lot_recall_reason',
                        lot=lot.rec_name))

    @classmethod
    def change_hrp_recall(cls, lots, action, reason):
        """Recall lots or lift their recall for reason, recording who, when
        and why in the recall log.

        The buttons and their dialog call it, and so may other modules (a
        supplier's recall notice, …)."""
        pool = Pool()
        Log = pool.get('hrp.lot.recall.log')
        reason = (reason or '').strip()
        cls.check_hrp_recall(lots, action, reason)
        user = Transaction().user
        now = dt.datetime.now()
        with without_check_access():
            Log.create([{
                        'lot': l.id,
                        'action': action,
                        'reason': reason,
                        'user': user,
                        'date': now,
                        } for l in lots])
            if action == 'recall':
                values = {
                    'hrp_recalled': True,
                    'hrp_recall_reason': reason,
                    'hrp_recalled_by': user,
                    'hrp_recalled_at': now,
                    }
            else:
                values = {
                    'hrp_recalled': False,
                    'hrp_recall_reason': None,
                    'hrp_recalled_by': None,
                    'hrp_recalled_at': None,
                    }
            cls.write(lots, values)

    @classmethod
    def _hrp_recall_button(cls, lots, action, reason):
        """Apply the recall action for reason, or without a reason return the
        dialog asking for it"""
        pool = Pool()
        ModelData = pool.get('ir.model.data')
        Action = pool.get('ir.action')
        if reason is None:
            cls.check_hrp_recall(lots, action)
            return Action.get_action_id(ModelData.get_id(
                    'hrp_materials', f'wizard_lot_{action}'))
        cls.change_hrp_recall(lots, action, reason)

    @classmethod
    @ModelView.button
    def hrp_recall(cls, lots, reason=None):
        "Recall the lots: they are no longer issued nor used"
        return cls._hrp_recall_button(lots, 'recall', reason)

    @classmethod
    @ModelView.button
    def hrp_lift_recall(cls, lots, reason=None):
        "Lift the recall of the lots"
        return cls._hrp_recall_button(lots, 'lift', reason)

    @classmethod
    def hrp_recall_action_of(cls, action_id):
        "Return the recall action of the wizard action, if it is one of ours"
        ModelData = Pool().get('ir.model.data')
        if action_id is None:
            return
        for action in RECALL_BUTTONS:
            if action_id == ModelData.get_id(
                    'hrp_materials', f'wizard_lot_{action}'):
                return action


class LotRecallLog(ModelSQL, ModelView):
    __name__ = 'hrp.lot.recall.log'
    __string__ = "Lot Recall Log"

    lot = fields.Many2One(
        'stock.lot', "Lot", required=True, readonly=True,
        ondelete='CASCADE')
    action = fields.Selection(
        RECALL_ACTIONS, "Action", required=True, readonly=True, sort=False)
    action_string = action.translated('action')
    reason = fields.Text(
        "Reason", required=True, readonly=True,
        help="Why the lot was recalled or its recall lifted.")
    user = fields.Many2One(
        'res.user', "User", required=True, readonly=True,
        ondelete='RESTRICT', help="Who recalled the lot or lifted its recall.")
    date = fields.DateTime(
        "Date", required=True, readonly=True,
        help="When the lot was recalled or its recall lifted.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        # who may read a lot may read its recall history, and nobody else
        cls.__access__.add('lot')
        cls._order = [
            ('date', 'DESC'),
            ('id', 'DESC'),
            ]

    def get_rec_name(self, name):
        return f'{self.lot.rec_name}: {self.action_string}'

    @classmethod
    def search_rec_name(cls, name, clause):
        return [('lot.rec_name', *clause[1:])]

    @classmethod
    def check_modification(cls, mode, logs, values=None, external=False):
        super().check_modification(
            mode, logs, values=values, external=external)
        if external:
            raise LotRecallLogError(gettext(
                    'hrp_materials.msg_lot_recall_log_readonly'))


class LotRecallStart(ModelView):
    __name__ = 'hrp.lot.recall.start'
    __string__ = "Lot Recall"

    action = fields.Selection(
        RECALL_ACTIONS, "Action", required=True, readonly=True, sort=False)
    reason = fields.Text(
        "Reason", required=True,
        help="Why; it is kept in the lot's recall history.")


class LotRecall(Wizard):
    __name__ = 'hrp.lot.recall'

    start = StateView('hrp.lot.recall.start',
        'hrp_materials.lot_recall_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Confirm", 'confirm', 'tryton-ok', default=True),
            ])
    confirm = StateTransition()

    def default_start(self, fields):
        Lot = Pool().get('stock.lot')
        action = Lot.hrp_recall_action_of(
            Transaction().context.get('action_id'))
        if action:
            Lot.check_hrp_recall(self.records, action)
        return {'action': action}

    def transition_confirm(self):
        Lot = Pool().get('stock.lot')
        action, reason = self.start.action, self.start.reason or ''
        Lot.check_hrp_recall(self.records, action, reason)
        button = getattr(Lot, RECALL_BUTTONS[action])
        button(self.records, reason=reason)
        return 'end'

    def end(self):
        return 'reload'


class Move(metaclass=PoolMeta):
    __name__ = 'stock.move'

    hrp_lot_auto = fields.Boolean(
        "Lot Picked Automatically", readonly=True,
        help="The lot was picked first-expired-first-out when the move was "
        "assigned; it is picked again if the move is reset to draft.")

    @classmethod
    def default_hrp_lot_auto(cls):
        return False

    @classmethod
    def copy(cls, moves, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('hrp_lot_auto', False)
        return super().copy(moves, default=default)

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if mode == 'write' and 'lot' in values:
            # a lot set by hand (or cleared) is no longer the picked one
            values.setdefault('hrp_lot_auto', False)
        return values

    @property
    def hrp_from_store(self):
        "The HRP store the move takes its goods from"
        return hrp_store(self.from_location)

    @property
    def hrp_destination(self):
        """Where the goods go in the end: the shipment's destination for the
        leg to a transit location"""
        pool = Pool()
        ShipmentInternal = pool.get('stock.shipment.internal')
        if (self.to_location and self.to_location.type == 'transit'
                and isinstance(self.shipment, ShipmentInternal)
                and self.shipment.to_location):
            return self.shipment.to_location
        return self.to_location

    def _hrp_safe_destination(self, destination):
        "Whether destination may receive recalled and expired lots"
        store = hrp_store(destination)
        return bool(
            destination.type in SAFE_LOCATION_TYPES
            or (store and store.hrp_store_type == 'central'))

    def _hrp_issue(self):
        """Whether the move issues goods out of the central store or to
        another store (near-expiry lots are not issued)"""
        source = self.hrp_from_store
        destination = self.hrp_destination
        if not source or not destination:
            return False
        if self._hrp_safe_destination(destination):
            return False
        target = hrp_store(destination)
        if source.hrp_store_type == 'central':
            return True
        return bool(target and target != source)

    def _hrp_check_date(self, state):
        today = _today(self.company)
        if state == 'done':
            return self.effective_date or today
        return max(self.planned_date or today, today)

    def _hrp_lot_policy(self):
        """Return whether the move may take recalled and expired lots, and
        whether it issues (near-expiry lots are not issued)"""
        destination = self.hrp_destination
        safe = bool(destination and self._hrp_safe_destination(destination))
        return safe, self._hrp_issue()

    def _hrp_lot_refused(self, lot, date, days, policy=None):
        """Return why lot may not leave with this move at date ('recalled',
        'expired' or 'near_expiry') or None.

        Only moves out of an HRP store are checked."""
        if not lot or not self.hrp_from_store:
            return None
        safe, issue = policy or self._hrp_lot_policy()
        if lot.hrp_recalled and not safe:
            return 'recalled'
        state = expiry_state(lot, date, days)
        if state == 'expired' and not safe:
            return 'expired'
        if state == 'near_expiry' and issue:
            return 'near_expiry'
        return None

    def hrp_lot_refusal(self, lot, date, days=None):
        """Return the error message refusing lot for this move at date, or
        None when the lot may leave"""
        if days is None:
            days = near_expiry_days()
        refused = self._hrp_lot_refused(lot, date, days)
        if not refused:
            return None
        destination = self.hrp_destination
        values = {
            'lot': lot.rec_name,
            'product': self.product.rec_name,
            'from_location': self.from_location.rec_name,
            'to_location': destination.rec_name if destination else '',
            }
        if refused == 'recalled':
            return gettext(
                'hrp_materials.msg_lot_recalled_move',
                reason=lot.hrp_recall_reason or '', **values)
        values['date'] = _format_date(lot.shelf_life_expiration_date)
        if refused == 'expired':
            return gettext('hrp_materials.msg_lot_expired_move', **values)
        return gettext(
            'hrp_materials.msg_lot_near_expiry_move', days=days, **values)

    @classmethod
    def check_hrp_lots(cls, moves, state):
        """Raise an error if a move out of an HRP store carries a lot that
        may not go where it goes (state: 'assigned' or 'done')"""
        days = None
        for move in moves:
            if not move.lot or not move.hrp_from_store:
                continue
            if days is None:
                days = near_expiry_days()
            message = move.hrp_lot_refusal(
                move.lot, move._hrp_check_date(state), days)
            if message:
                raise LotIssueError(message)

    @property
    def hrp_fefo(self):
        "Whether the assignment picks the lot first-expired-first-out"
        return bool(not self.lot and self.hrp_from_store)

    @classmethod
    def hrp_lock_stores(cls, moves):
        """Serialize the assignments out of the same HRP stores.

        Tryton's ``_assign_try_lock`` row-locks the existing moves of the
        products and locations, but a transaction whose REPEATABLE READ
        snapshot is older than a concurrent assignment that created its own
        moves (a requisition creates and assigns its shipment at once) does
        not see, nor lock, those moves and would assign the same stock again.
        Locking and touching the store's row makes such a late transaction
        fail with a serialization error instead, and the request is retried
        with a fresh snapshot; a concurrent assignment not yet committed
        makes it fail at once (NOWAIT), and be retried too."""
        pool = Pool()
        Location = pool.get('stock.location')
        transaction = Transaction()
        if not transaction.database.has_select_for():
            # Tryton locks the whole move table instead
            return
        store_ids = sorted({
                m.hrp_from_store.id for m in moves
                if m.state == 'draft' and m.hrp_from_store})
        if not store_ids:
            return
        location = Location.__table__()
        cursor = transaction.connection.cursor()
        where = location.id.in_(store_ids)
        cursor.execute(*location.select(
                location.id, where=where, for_=For('UPDATE', nowait=True)))
        cursor.execute(*location.update(
                [location.write_date], [location.write_date], where=where))

    @classmethod
    def assign_try(
            cls, moves, with_childs=True, grouping=('product',), pblc=None):
        pending = [m for m in moves if m.state in {'draft', 'staging'}]
        # refuse a lot set by hand before anything changes
        cls.check_hrp_lots(
            [m for m in pending if m.state == 'draft'], 'assigned')
        cls.hrp_lock_stores(pending)
        fefo = [m for m in pending if m.hrp_fefo]
        if not fefo:
            return super().assign_try(
                moves, with_childs=with_childs, grouping=grouping, pblc=pblc)
        fefo_ids = {m.id for m in fefo}
        others = [m for m in moves if m.id not in fefo_ids]
        if 'lot' in grouping:
            fefo_grouping, fefo_pblc = grouping, pblc
        else:
            # the quantities per product of pblc cannot pick lots
            fefo_grouping, fefo_pblc = grouping + ('lot',), None
        with Transaction().set_context(_hrp_fefo_assign=True):
            success = super().assign_try(
                fefo, with_childs=with_childs, grouping=fefo_grouping,
                pblc=fefo_pblc)
        if others:
            success &= super().assign_try(
                others, with_childs=with_childs, grouping=grouping,
                pblc=pblc)
        return success

    def sort_quantities(self, quantities, locations, grouping):
        quantities = super().sort_quantities(quantities, locations, grouping)
        if 'lot' not in grouping or not self.hrp_fefo:
            return quantities
        pool = Pool()
        Lot = pool.get('stock.lot')
        index = grouping.index('lot') + 1
        date = self._hrp_check_date('assigned')
        days = near_expiry_days()
        lot_ids = {k[index] for k, _ in quantities if k[index] is not None}
        lots = {l.id: l for l in Lot.browse(list(lot_ids))}
        lot_required = self.product.lot_is_required(
            self.from_location, self.to_location)
        policy = self._hrp_lot_policy()
        location_order = {}
        for i, (key, _) in enumerate(quantities):
            location_order.setdefault(key[0], i)

        def fefo_key(item):
            key, _ = item
            lot = lots.get(key[index])
            if lot is None:
                # stock without lot after every lot
                return (2, dt.date.max, '', 0, location_order[key[0]])
            expiry = lot.shelf_life_expiration_date
            return (
                0 if expiry else 1, expiry or dt.date.max,
                lot.number or '', lot.id, location_order[key[0]])

        # what moves assigned without lot took from a location is taken
        # from its lots in FEFO order
        shortage = {}
        for key, quantity in quantities:
            if key[index] is None and quantity < 0:
                shortage[key[0]] = shortage.get(key[0], 0) - quantity

        picked = []
        for key, quantity in sorted(quantities, key=fefo_key):
            lot = lots.get(key[index])
            if lot is None:
                if lot_required or quantity <= 0:
                    continue
            elif self._hrp_lot_refused(lot, date, days, policy):
                continue
            missing = shortage.get(key[0], 0)
            if missing > 0 and quantity > 0:
                taken = min(missing, quantity)
                shortage[key[0]] = missing - taken
                quantity -= taken
            picked.append((key, quantity))
        return picked

    @property
    def _default_pick_location(self):
        location = super()._default_pick_location
        if (location and self.hrp_fefo
                and self.product.lot_is_required(
                    self.from_location, self.to_location)):
            # a lot-required product leaves an HRP store with a lot
            return None
        return location

    @classmethod
    @Workflow.transition('assigned')
    def assign(cls, moves):
        cls.check_hrp_lots(moves, 'assigned')
        super().assign(moves)
        if Transaction().context.get('_hrp_fefo_assign'):
            picked = [m for m in moves
                if m.lot and m.hrp_from_store and not m.hrp_lot_auto]
            if picked:
                cls.write(picked, {'hrp_lot_auto': True})

    @classmethod
    @ModelView.button
    @Workflow.transition('draft')
    def draft(cls, moves):
        super().draft(moves)
        # back to draft, the lot is picked again at the next assignment
        picked = [m for m in moves if m.hrp_lot_auto]
        if picked:
            cls.write(picked, {'lot': None, 'hrp_lot_auto': False})

    @classmethod
    @ModelView.button
    @Workflow.transition('done')
    def do(cls, moves):
        cls.check_hrp_lots(moves, 'done')
        super().do(moves)
