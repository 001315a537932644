# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Inventory alerts (库存预警).

A scheduled job checks every store and supplier and keeps one alert per
condition that holds: a material out of stock, below its safety stock or
at or below its reorder point (minimum); a lot near expiry (the days of
the material's category, else the configuration's) or expired (locked:
it can no longer be issued or used); stock that has not moved for the
slow-moving days; a supplier licence or a registration certificate
expiring.  An alert that no longer holds is resolved by the job, saying
so.  Each alert has a severity and a responsible role (the store keeper
for the central store, the department's head nurse for its store, the
procurement officers for licences and certificates); they are told by a
Tryton notification when it opens, by SMS through the connector's modem
when it is critical, and by a daily e-mail digest of what is still open.
People acknowledge an alert (they are on it) and resolve it with the
reason; both record who and when."""
import datetime as dt
from collections import defaultdict

from sql import Null
from sql.aggregate import Max

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Workflow, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction, without_check_access

from .exceptions import AlertError
from .mixin import context_companies
from .stock_status import stock_balance, store_locations

KINDS = [
    ('out_of_stock', "Out of Stock"),
    ('below_safety', "Below Safety Stock"),
    ('below_minimum', "Below Minimum"),
    ('near_expiry', "Near Expiry"),
    ('expired', "Expired (Locked)"),
    ('slow_moving', "No Movement"),
    ('licence_expiring', "Supplier Licence Expiring"),
    ('certificate_expiring', "Registration Certificate Expiring"),
    ]
SEVERITIES = [
    ('critical', "Critical"),
    ('warning', "Warning"),
    ('info', "Information"),
    ]
SEVERITY = {
    'out_of_stock': 'critical',
    'below_safety': 'warning',
    'below_minimum': 'info',
    'near_expiry': 'warning',
    'expired': 'critical',
    'slow_moving': 'info',
    'licence_expiring': 'warning',
    'certificate_expiring': 'warning',
    }
STATES = [
    ('open', "Open"),
    ('acknowledged', "Acknowledged"),
    ('resolved', "Resolved"),
    ]


class Alert(Workflow, ModelSQL, ModelView):
    __name__ = 'hrp.alert'
    __string__ = "Inventory Alert"

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    kind = fields.Selection(KINDS, "Kind", required=True, readonly=True)
    severity = fields.Selection(
        SEVERITIES, "Severity", required=True, readonly=True, sort=False)
    key = fields.Char("Key", required=True, readonly=True)
    subject = fields.Char("Subject", readonly=True,
        help="The material, lot, licence or certificate concerned.")
    title = fields.Function(fields.Char("Alert"), 'get_title')
    store = fields.Many2One('stock.location', "Store", readonly=True)
    department = fields.Many2One(
        'hrp.department', "Department", readonly=True)
    product = fields.Many2One(
        'product.product', "Material", readonly=True,
        context={'company': Eval('company', -1)}, depends={'company'})
    lot = fields.Many2One('stock.lot', "Lot", readonly=True)
    licence = fields.Many2One(
        'hrp.supplier.licence', "Licence", readonly=True,
        ondelete='CASCADE')
    supplier = fields.Many2One(
        'party.party', "Supplier", readonly=True,
        context={'company': Eval('company', -1)}, depends={'company'})
    quantity = fields.Float("Quantity", digits=(16, 2), readonly=True)
    threshold = fields.Float(
        "Threshold", digits=(16, 2), readonly=True,
        help="The level the quantity is compared with.")
    date = fields.Date("Date", readonly=True,
        help="The expiry, or the last movement.")
    group = fields.Many2One(
        'res.group', "Responsible Role", readonly=True)
    opened_at = fields.DateTime("Opened At", readonly=True)
    acknowledged_by = fields.Many2One(
        'res.user', "Acknowledged By", readonly=True)
    acknowledged_at = fields.DateTime("Acknowledged At", readonly=True)
    resolved_by = fields.Many2One('res.user', "Resolved By", readonly=True)
    resolved_at = fields.DateTime("Resolved At", readonly=True)
    resolution = fields.Text(
        "Resolution",
        states={'readonly': Eval('state') == 'resolved'},
        help="What was done, or why the alert no longer holds.")
    sms_outbox = fields.One2Many(
        'his.outbox', 'origin', "SMS", readonly=True)
    state = fields.Selection(
        STATES, "State", required=True, readonly=True, sort=False)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.key, Index.Equality()),
                    where=t.state.in_(['open', 'acknowledged'])),
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    (t.store, Index.Range())),
                })
        cls._order = [('opened_at', 'DESC'), ('id', 'DESC')]
        cls._transitions |= {
            ('open', 'acknowledged'),
            ('open', 'resolved'),
            ('acknowledged', 'resolved'),
            }
        cls._buttons.update({
                'acknowledge': {
                    'invisible': Eval('state') != 'open',
                    'depends': ['state'],
                    },
                'resolve': {
                    'invisible': Eval('state') == 'resolved',
                    'depends': ['state'],
                    },
                })

    @classmethod
    def default_state(cls):
        return 'open'

    def get_title(self, name):
        # built when read, in the reader's language
        where = (self.store.rec_name if self.store
            else self.supplier.rec_name if self.supplier else '')
        subject = self.licence.rec_name if self.licence else self.subject
        return gettext(f'hrp_materials.msg_alert_{self.kind}',
            subject=subject or '', where=where)

    def get_rec_name(self, name):
        return self.title

    @classmethod
    def search_rec_name(cls, name, clause):
        return [('subject', *clause[1:])]

    @classmethod
    @ModelView.button
    @Workflow.transition('acknowledged')
    def acknowledge(cls, alerts):
        cls.write(alerts, {
                'acknowledged_by': Transaction().user,
                'acknowledged_at': dt.datetime.now(),
                })

    @classmethod
    @ModelView.button
    @Workflow.transition('resolved')
    def resolve(cls, alerts):
        for alert in alerts:
            if not (alert.resolution or '').strip():
                raise AlertError(gettext(
                        'hrp_materials.msg_alert_resolution_required',
                        alert=alert.rec_name))
        cls.write(alerts, {
                'resolved_by': Transaction().user,
                'resolved_at': dt.datetime.now(),
                })

    @classmethod
    def check_modification(cls, mode, alerts, values=None, external=False):
        super().check_modification(
            mode, alerts, values=values, external=external)
        if mode == 'delete' and external:
            raise AlertError(gettext('hrp_materials.msg_alert_delete'))

    # The checks

    @classmethod
    def generate(cls):
        """The scheduled job: open the alerts whose condition holds, resolve
        those whose condition has cleared, tell the responsible people of
        the new ones; return the new alerts"""
        created = []
        for company in context_companies():
            with Transaction().set_context(company=company.id), \
                    without_check_access():
                created.extend(cls.generate_company(company))
        return created

    @classmethod
    def generate_company(cls, company, today=None):
        pool = Pool()
        Date = pool.get('ir.date')
        Location = pool.get('stock.location')
        if today is None:
            today = Date.today()
        stores = Location.search([('hrp_store_type', '!=', None)])
        wanted = {}
        for store in stores:
            for values in cls._check_store(company, store, today):
                wanted[values['key']] = values
        for values in cls._check_suppliers(company, today):
            wanted[values['key']] = values

        current = {a.key: a for a in cls.search([
                    ('company', '=', company.id),
                    ('state', 'in', ['open', 'acknowledged']),
                    ])}
        now = dt.datetime.now()
        to_create = []
        for key, values in wanted.items():
            alert = current.get(key)
            if alert:
                changes = {k: v for k, v in values.items()
                    if k in {'quantity', 'threshold', 'subject'}
                    and getattr(alert, k) != v}
                if changes:
                    cls.write([alert], changes)
            else:
                values.update({
                        'company': company.id,
                        'severity': SEVERITY[values['kind']],
                        'opened_at': now,
                        'state': 'open',
                        })
                to_create.append(values)
        cleared = [a for k, a in current.items() if k not in wanted]
        if cleared:
            cls.write(cleared, {
                    'state': 'resolved',
                    'resolved_by': Transaction().user,
                    'resolved_at': now,
                    'resolution': gettext(
                        'hrp_materials.msg_alert_cleared'),
                    })
        alerts = cls.create(to_create)
        cls.notify(alerts)
        return alerts

    @classmethod
    def _responsible(cls, store):
        ModelData = Pool().get('ir.model.data')
        if store is None:
            return ModelData.get_id('hrp_materials', 'group_procurement')
        if store.hrp_store_type == 'central':
            return ModelData.get_id('hrp_materials', 'group_store_keeper')
        return ModelData.get_id('hrp_materials', 'group_head_nurse')

    @classmethod
    def _check_store(cls, company, store, today):
        "Yield the values of the alerts that hold in store"
        pool = Pool()
        Status = pool.get('hrp.stock.status')
        Product = pool.get('product.product')
        Lot = pool.get('stock.lot')
        Category = pool.get('product.category')
        config = pool.get('hrp.configuration')(1)
        group = cls._responsible(store)
        base = {
            'store': store.id, 'group': group,
            'department': (store.hrp_department.id
                if store.hrp_department else None),
            }
        with Transaction().set_context(company=company.id, store=store.id):
            statuses = Status.search([
                    ('reorder_point', '!=', None),
                    ('status', 'in',
                        ['out_of_stock', 'below_safety', 'below_minimum']),
                    ])
        for status in statuses:
            kind = status.status
            threshold = {
                'out_of_stock': 0,
                'below_safety': status.safety_stock,
                'below_minimum': status.reorder_point,
                }[kind]
            yield dict(base, kind=kind,
                key=f'{kind}:{store.id}:{status.product.id}',
                product=status.product.id, quantity=status.on_hand,
                threshold=threshold,
                subject=status.product.rec_name)

        locations = store_locations(store)
        lots = cls._lot_quantities(company, locations)
        near_days = Category.hrp_product_values('hrp_near_expiry_days')
        default_near = config.near_expiry_days or 0
        max_near = max([default_near] + list(near_days.values()))
        horizon = today + dt.timedelta(days=max_near)
        expiring = Lot.search([
                ('id', 'in', list(lots)),
                ('shelf_life_expiration_date', '!=', None),
                ('shelf_life_expiration_date', '<=', horizon),
                ]) if lots else []
        for lot in expiring:
            expiry = lot.shelf_life_expiration_date
            days = near_days.get(lot.product.id, default_near)
            if expiry < today:
                kind = 'expired'
            elif expiry <= today + dt.timedelta(days=days):
                kind = 'near_expiry'
            else:
                continue
            yield dict(base, kind=kind,
                key=f'{kind}:{store.id}:{lot.id}',
                product=lot.product.id, lot=lot.id, quantity=lots[lot.id],
                date=expiry,
                subject=f'{lot.product.rec_name} ({lot.number})')

        since = today - dt.timedelta(days=config.slow_moving_days)
        for product_id, quantity, last in cls._idle_stock(
                company, locations, since):
            product = Product(product_id)
            yield dict(base, kind='slow_moving',
                key=f'slow_moving:{store.id}:{product_id}',
                product=product_id, quantity=quantity, date=last,
                threshold=config.slow_moving_days,
                subject=product.rec_name)

    @classmethod
    def _lot_quantities(cls, company, locations):
        "{lot id: quantity} of the lots in stock in locations"
        Move = Pool().get('stock.move')
        move = Move.__table__()
        cursor = Transaction().connection.cursor()
        quantity, touching = stock_balance(move, locations)
        cursor.execute(*move.select(
                move.lot, quantity,
                where=(move.state == 'done') & (move.lot != Null)
                & (move.company == company.id) & touching,
                group_by=[move.lot],
                having=quantity > 0))
        return dict(cursor)

    @classmethod
    def _idle_stock(cls, company, locations, since):
        """Yield (product id, quantity, last move date) of the materials in
        stock in locations that have not moved since since"""
        Move = Pool().get('stock.move')
        move = Move.__table__()
        cursor = Transaction().connection.cursor()
        quantity, touching = stock_balance(move, locations)
        last = Max(move.effective_date)
        cursor.execute(*move.select(
                move.product, quantity, last,
                where=(move.state == 'done')
                & (move.company == company.id) & touching,
                group_by=[move.product],
                having=(quantity > 0) & (last < since)))
        for product_id, quantity, last_date in cursor:
            if isinstance(last_date, str):
                last_date = dt.date.fromisoformat(last_date)
            yield product_id, quantity, last_date

    @classmethod
    def _check_suppliers(cls, company, today):
        """Yield the values of the alerts on supplier licences and on
        registration certificates expiring within the warning days"""
        pool = Pool()
        Licence = pool.get('hrp.supplier.licence')
        Template = pool.get('product.template')
        config = pool.get('hrp.configuration')(1)
        group = cls._responsible(None)
        horizon = today + dt.timedelta(days=config.licence_warning_days)
        for licence in Licence.search([
                    ('expiry', '<=', horizon),
                    ('party.active', '=', True),
                    ]):
            yield {
                'kind': 'licence_expiring', 'group': group,
                'key': f'licence_expiring:{licence.id}:{licence.expiry}',
                'supplier': licence.party.id, 'date': licence.expiry,
                'licence': licence.id, 'subject': licence.number,
                }
        for template in Template.search([
                    ('registration_expiry', '!=', None),
                    ('registration_expiry', '<=', horizon),
                    ]):
            product = template.products[0] if template.products else None
            yield {
                'kind': 'certificate_expiring', 'group': group,
                'key': (f'certificate_expiring:{template.id}:'
                    f'{template.registration_expiry}'),
                'product': product.id if product else None,
                'date': template.registration_expiry,
                'subject': (f'{template.rec_name} '
                    f'({template.registration_number or ""})'),
                }

    # Delivery

    @classmethod
    def recipients(cls, alerts):
        """{user: [alerts]}: the active users of each alert's responsible
        role, of its department (members, head nurse, director) when it
        has one"""
        pool = Pool()
        UserGroup = pool.get('res.user-res.group')
        Department = pool.get('hrp.department')
        User = pool.get('res.user')
        cursor = Transaction().connection.cursor()
        groups = {a.group.id for a in alerts if a.group}
        if not groups:
            return {}
        user_group = UserGroup.user_group_all_table()
        cursor.execute(*user_group.select(
                user_group.user, user_group.group,
                where=user_group.group.in_(list(groups))))
        members = defaultdict(set)
        for user_id, group_id in cursor:
            members[group_id].add(user_id)
        departments = {a.department.id for a in alerts if a.department}
        staff = defaultdict(set)
        for department in Department.browse(list(departments)):
            staff[department.id] = {u.id for u in department.members} | {
                u.id for u in [department.head_nurse, department.director]
                if u}
        result = defaultdict(list)
        for alert in alerts:
            if not alert.group:
                continue
            users = members[alert.group.id]
            if alert.department:
                users = users & staff[alert.department.id]
            for user_id in users:
                result[user_id].append(alert)
        users = User.browse(list(result))
        return {u: result[u.id] for u in users if u.active}

    @classmethod
    def notify(cls, alerts):
        """Tell the responsible people of new alerts by a notification, and
        the critical ones also by SMS"""
        pool = Pool()
        Notification = pool.get('res.notification')
        ModelData = pool.get('ir.model.data')
        Endpoint = pool.get('his.endpoint')
        Service = pool.get('his.service')
        if not alerts:
            return
        action_id = ModelData.get_id('hrp_materials', 'act_alert_open')
        notifications = []
        texts = []
        for user, user_alerts in cls.recipients(alerts).items():
            with Transaction().set_context(language=user.language.code
                    if user.language else None):
                for alert in user_alerts:
                    label = alert.__class__(alert.id).title
                    notifications.append(Notification(
                            user=user,
                            label=label,
                            description=dict(
                                cls.fields_get(['severity'])['severity'][
                                    'selection'])[alert.severity],
                            icon='tryton-notification',
                            model=cls.__name__,
                            records=str([alert.id]),
                            action=action_id))
                    if alert.severity == 'critical':
                        number = cls._mobile_number(user)
                        if number:
                            texts.append((alert, user, number, label))
        with without_check_access():
            Notification.save(notifications)
            modems = {c for c in {t[0].company for t in texts}
                if Endpoint.is_configured('sms', c)}
        for alert, user, number, label in texts:
            if alert.company not in modems:
                continue
            Service.send_sms(number, label,
                key=f'{cls.__name__}-{alert.id}-{user.id}', origin=alert,
                company=alert.company)

    @staticmethod
    def _mobile_number(user):
        employee = getattr(user, 'employee', None)
        if employee and employee.party:
            return employee.party.hrp_mobile_number()

    @classmethod
    def send_digest(cls, date=None):
        """The daily e-mail digest: each responsible person with an address
        gets the list of the alerts still open or acknowledged"""
        pool = Pool()
        Endpoint = pool.get('his.endpoint')
        Service = pool.get('his.service')
        Date = pool.get('ir.date')
        Lang = pool.get('ir.lang')
        sent = []
        for company in context_companies():
            if not Endpoint.is_configured('email', company):
                continue
            with Transaction().set_context(company=company.id), \
                    without_check_access():
                today = date or Date.today()
                alerts = cls.search([
                        ('company', '=', company.id),
                        ('state', 'in', ['open', 'acknowledged']),
                        ], order=[('severity', 'ASC'), ('id', 'ASC')])
                for user, user_alerts in cls.recipients(alerts).items():
                    if not user.email:
                        continue
                    language = user.language.code if user.language else None
                    with Transaction().set_context(language=language):
                        lang = Lang.get()
                        states = dict(cls.fields_get(['state'])['state'][
                                'selection'])
                        severities = dict(cls.fields_get(['severity'])[
                                'severity']['selection'])
                        lines = [
                            f'[{severities[a.severity]}] '
                            f'{a.__class__(a.id).title} '
                            f'({states[a.state]})'
                            for a in user_alerts]
                        subject = gettext(
                            'hrp_materials.msg_alert_digest_subject',
                            hospital=company.rec_name,
                            date=lang.strftime(today),
                            count=len(user_alerts))
                    sent.append(Service.send_email(
                            user.email, subject, '\n'.join(lines),
                            key=f'{cls.__name__}-digest-{today}-{user.id}',
                            company=company))
        return sent


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.extend([
                ('hrp.alert|generate', "Check Inventory Alerts"),
                ('hrp.alert|send_digest', "E-mail the Alert Digest"),
                ])


class Outbox(metaclass=PoolMeta):
    __name__ = 'his.outbox'

    @classmethod
    def _get_origin(cls):
        return super()._get_origin() + ['hrp.alert']
