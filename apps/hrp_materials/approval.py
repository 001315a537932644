# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The approval engine (审批): rules configured by administrators in the desk,
approval tasks with their decisions, and the mixin documents plug into.

A rule applies to one kind of document under conditions (departments,
material categories, high-value items, total amount, urgency) and lists the
ordered steps that must approve it, each decided by a group, a department
role (head nurse, director) or a named user.  A document asks for approval
when it is submitted: the first matching rule (by sequence) creates the task
of its first step; each approval creates the next step's task, the last one
grants the document; a rejection returns the document to its requester with
the reason.  Overdue tasks escalate by a scheduled job."""
import datetime as dt
from collections import defaultdict
from email.message import EmailMessage

from sql import Null

from trytond.config import config
from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, Model, ModelSQL, ModelView, Workflow, fields,
    sequence_ordered)
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval
from trytond.sendmail import send_message_transactional
from trytond.transaction import Transaction, without_check_access
from trytond.wizard import Button, StateTransition, StateView, Wizard

from .exceptions import ApprovalAccessError, ApprovalError

URGENCIES = [
    ('normal', "Normal"),
    ('urgent', "Urgent"),
    ('emergency', "Emergency"),
    ]
APPROVERS = [
    ('head_nurse', "Head Nurse of the Department"),
    ('director', "Director of the Department"),
    ('group', "Group"),
    ('user', "User"),
    ]
APPROVAL_STATES = [
    (None, ""),
    ('pending', "Pending Approval"),
    ('approved', "Approved"),
    ('rejected', "Rejected"),
    ]


def get_approval_documents():
    """Return the selection of the models that use the ApprovalMixin and
    the user may read: Tryton hides a reference field from a user who cannot
    read one of the models of its selection (a head nurse reads no purchase
    order, yet her approvals must show their requisitions)"""
    pool = Pool()
    IrModel = pool.get('ir.model')
    ModelAccess = pool.get('ir.model.access')
    return [(None, '')] + sorted(
        ((model, name) for model, name in IrModel.get_name_items(
                    ApprovalMixin)
            if ModelAccess.check(model, 'read', raise_exception=False)),
        key=lambda x: x[1])


class ApprovalRule(DeactivableMixin, sequence_ordered(), ModelSQL, ModelView):
    __name__ = 'hrp.approval.rule'
    __string__ = "Approval Rule"

    name = fields.Char("Name", required=True, translate=True)
    company = fields.Many2One('company.company', "Company", required=True)
    document = fields.Selection(
        'get_documents', "Document", required=True,
        help="The kind of document the rule approves.")
    departments = fields.Many2Many(
        'hrp.approval.rule-hrp.department', 'rule', 'department',
        "Departments",
        domain=[('company', '=', Eval('company', -1))],
        help="Apply only to documents of these departments or their "
        "sub-departments; leave empty for every department.")
    categories = fields.Many2Many(
        'hrp.approval.rule-product.category', 'rule', 'category',
        "Material Categories",
        context={'company': Eval('company', -1)}, depends={'company'},
        help="Apply only when a line is of one of these categories or of a "
        "sub-category; leave empty for every category.")
    high_value = fields.Boolean(
        "Only High-Value",
        help="Apply only when a line is a high-value consumable.")
    outside_contract = fields.Boolean(
        "Only Outside Contract",
        help="Apply only to purchase orders with lines outside a valid "
        "contract.")
    min_amount = fields.Numeric(
        "Minimal Amount", digits=(16, 2),
        domain=['OR',
            ('min_amount', '=', None),
            ('min_amount', '>=', 0),
            ],
        help="Apply only when the document's total amount reaches this "
        "amount.")
    urgencies = fields.MultiSelection(
        URGENCIES, "Urgencies",
        help="Apply only to documents of these urgencies; leave empty for "
        "every urgency.")
    allow_self_approval = fields.Boolean(
        "Allow Self-Approval",
        help="Let the requester decide a step of her own document.")
    steps = fields.One2Many(
        'hrp.approval.rule.step', 'rule', "Steps", required=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('company')

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def get_documents(cls):
        return get_approval_documents()

    def match(self, values):
        """Test if the rule applies to a document described by values (see
        ApprovalMixin.get_approval_values)"""
        if self.company.id != values['company']:
            return False
        if self.departments:
            department_ids = {d.id for d in self.departments}
            department = values.get('department')
            while department and department.id not in department_ids:
                department = department.parent
            if not department:
                return False
        if self.categories:
            ancestors = set()
            for category in values.get('categories', []):
                while category:
                    ancestors.add(category.id)
                    category = category.parent
            if not ancestors & {c.id for c in self.categories}:
                return False
        if self.high_value and not values.get('high_value'):
            return False
        if self.outside_contract and not values.get('outside_contract'):
            return False
        if (self.min_amount is not None
                and (values.get('amount') or 0) < self.min_amount):
            return False
        if self.urgencies and values.get('urgency') not in self.urgencies:
            return False
        return True

    @classmethod
    def find(cls, document, values):
        "Return the first active rule that applies to the document or None"
        rule, = cls.find_many(document, [values])
        return rule

    @classmethod
    def find_many(cls, document, values_list):
        """Return for each values of values_list the first active rule that
        applies to the document it describes, or None; one search per
        company"""
        rules = {}
        for company in {v['company'] for v in values_list}:
            rules[company] = cls.search([
                    ('document', '=', document),
                    ('company', '=', company),
                    ], order=[('sequence', 'ASC NULLS FIRST'), ('id', 'ASC')])
        return [next((r for r in rules[v['company']] if r.match(v)), None)
            for v in values_list]


class ApprovalRuleDepartment(ModelSQL):
    __name__ = 'hrp.approval.rule-hrp.department'
    __string__ = "Approval Rule - Department"
    rule = fields.Many2One(
        'hrp.approval.rule', "Rule", required=True, ondelete='CASCADE')
    department = fields.Many2One(
        'hrp.department', "Department", required=True, ondelete='CASCADE')


class ApprovalRuleCategory(ModelSQL):
    __name__ = 'hrp.approval.rule-product.category'
    __string__ = "Approval Rule - Category"
    rule = fields.Many2One(
        'hrp.approval.rule', "Rule", required=True, ondelete='CASCADE')
    category = fields.Many2One(
        'product.category', "Category", required=True, ondelete='CASCADE')


class ApprovalStep(sequence_ordered(), ModelSQL, ModelView):
    __name__ = 'hrp.approval.rule.step'
    __string__ = "Approval Step"

    rule = fields.Many2One(
        'hrp.approval.rule', "Rule", required=True, ondelete='CASCADE')
    name = fields.Char("Name", required=True, translate=True)
    approver = fields.Selection(APPROVERS, "Approver", required=True)
    group = fields.Many2One(
        'res.group', "Group", ondelete='RESTRICT',
        states={
            'invisible': Eval('approver') != 'group',
            'required': Eval('approver') == 'group',
            })
    user = fields.Many2One(
        'res.user', "User", ondelete='RESTRICT',
        states={
            'invisible': Eval('approver') != 'user',
            'required': Eval('approver') == 'user',
            })
    deadline_hours = fields.Integer(
        "Deadline (Hours)",
        domain=['OR',
            ('deadline_hours', '=', None),
            ('deadline_hours', '>', 0),
            ],
        help="Escalate the step when it is still pending after so many "
        "hours; leave empty never to escalate.")
    escalation_group = fields.Many2One(
        'res.group', "Escalate To", ondelete='RESTRICT',
        states={
            'invisible': ~Bool(Eval('deadline_hours')),
            'required': Bool(Eval('deadline_hours')),
            },
        help="The group that may also decide the step once it is overdue.")

    @classmethod
    def default_approver(cls):
        return 'head_nurse'

    def resolve(self, department):
        """Return the (group, user) who decide this step for a document of
        department; a department role falls back to the parent department
        when the department has none"""
        if self.approver == 'group':
            return self.group, None
        if self.approver == 'user':
            return None, self.user
        while department:
            user = getattr(department, self.approver)
            if user:
                return None, user
            department = department.parent
        return None, None


class ApprovalTask(ModelSQL, ModelView):
    "One step of one document's approval and its decision"
    __name__ = 'hrp.approval.task'
    __string__ = "Approval Task"

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    document = fields.Reference(
        "Document", selection='get_documents', required=True, readonly=True)
    description = fields.Char("Description", readonly=True)
    department = fields.Many2One(
        'hrp.department', "Department", readonly=True, ondelete='RESTRICT')
    amount = fields.Numeric("Amount", digits=(16, 2), readonly=True)
    urgency = fields.Selection(URGENCIES, "Urgency", readonly=True)
    rule = fields.Many2One(
        'hrp.approval.rule', "Rule", required=True, readonly=True,
        ondelete='RESTRICT')
    step = fields.Many2One(
        'hrp.approval.rule.step', "Step", required=True, readonly=True,
        ondelete='RESTRICT')
    level = fields.Integer("Level", required=True, readonly=True)
    requester = fields.Many2One(
        'res.user', "Requester", required=True, readonly=True)
    approver_group = fields.Many2One(
        'res.group', "Approver Group", readonly=True)
    approver_user = fields.Many2One(
        'res.user', "Approver", readonly=True)
    due_date = fields.DateTime("Due", readonly=True)
    escalated_at = fields.DateTime("Escalated At", readonly=True)
    escalation_group = fields.Many2One(
        'res.group', "Escalated To", readonly=True)
    state = fields.Selection([
            ('pending', "Pending"),
            ('approved', "Approved"),
            ('rejected', "Rejected"),
            ('cancelled', "Cancelled"),
            ], "State", required=True, readonly=True, sort=False)
    state_string = state.translated('state')
    decided_by = fields.Many2One('res.user', "Decided By", readonly=True)
    decided_at = fields.DateTime("Decided At", readonly=True)
    comment = fields.Text("Comment", readonly=True)
    pending_for_me = fields.Function(
        fields.Boolean("Pending for Me"),
        'get_pending_for_me', searcher='search_pending_for_me')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('due_date', 'ASC NULLS LAST'), ('id', 'ASC')]
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.document, Index.Equality())),
                Index(t, (t.approver_user, Index.Equality()),
                    where=t.state == 'pending'),
                Index(t, (t.approver_group, Index.Equality()),
                    where=t.state == 'pending'),
                Index(t, (t.escalation_group, Index.Equality()),
                    where=t.state == 'pending'),
                Index(t, (t.due_date, Index.Range()),
                    where=(t.state == 'pending') & (t.escalated_at == Null)),
                })
        # No button states: deciding a task that is not pending or not
        # addressed to the user gets the engine's own explicit error
        cls._buttons.update({
                'approve': {},
                'reject': {},
                })

    @classmethod
    def get_documents(cls):
        return get_approval_documents()

    @classmethod
    def check_modification(cls, mode, tasks, values=None, external=False):
        super().check_modification(
            mode, tasks, values=values, external=external)
        if external:
            # Only the engine writes tasks: decisions go through the buttons
            raise ApprovalAccessError(gettext(
                    'hrp_materials.msg_approval_task_readonly'))

    def get_rec_name(self, name):
        document = self.document.rec_name if self.document else ''
        return f'{document} / {self.step.name}'

    @staticmethod
    def _user_group_ids():
        return Pool().get('res.user').get_groups()

    @classmethod
    def _may_decide_domain(cls):
        user_id = Transaction().user
        groups = list(cls._user_group_ids())
        return ['OR',
            ('approver_user', '=', user_id),
            ('approver_group', 'in', groups),
            ('escalation_group', 'in', groups),
            ]

    def may_decide(self, user_id=None, groups=None):
        if user_id is None:
            user_id = Transaction().user
        if groups is None:
            groups = set(self._user_group_ids())
        return (
            (self.approver_user and self.approver_user.id == user_id)
            or (self.approver_group and self.approver_group.id in groups)
            or (self.escalation_group
                and self.escalation_group.id in groups))

    @classmethod
    def get_pending_for_me(cls, tasks, name):
        user_id = Transaction().user
        groups = set(cls._user_group_ids())
        return {t.id: bool(t.state == 'pending'
                and t.may_decide(user_id, groups)) for t in tasks}

    @classmethod
    def search_pending_for_me(cls, name, clause):
        _, operator, value = clause[:3]
        pending = [('state', '=', 'pending'), cls._may_decide_domain()]
        positive = (operator == '=') == bool(value)
        if operator not in {'=', '!='}:
            raise ValueError(operator)
        if positive:
            return pending
        return ['OR', ('state', '!=', 'pending'),
            [('approver_user', '!=', Transaction().user),
                ['OR', ('approver_group', '=', None),
                    ('approver_group', 'not in',
                        list(cls._user_group_ids()))],
                ['OR', ('escalation_group', '=', None),
                    ('escalation_group', 'not in',
                        list(cls._user_group_ids()))]]]

    @classmethod
    def _check_decidable(cls, tasks):
        "Refuse deciding tasks that are not pending or not for the user"
        transaction = Transaction()
        user_id = transaction.user
        groups = set(cls._user_group_ids())
        for task in tasks:
            if task.state != 'pending':
                raise ApprovalError(gettext(
                        'hrp_materials.msg_approval_task_decided',
                        task=task.rec_name,
                        user=task.decided_by.rec_name
                        if task.decided_by else '',
                        state=task.state_string))
            if user_id and not task.may_decide(user_id, groups):
                raise ApprovalAccessError(gettext(
                        'hrp_materials.msg_approval_not_approver',
                        task=task.rec_name))
            if (user_id and task.requester.id == user_id
                    and not task.rule.allow_self_approval):
                raise ApprovalError(gettext(
                        'hrp_materials.msg_approval_self',
                        task=task.rec_name))

    @classmethod
    def _lock_for_decision(cls, tasks):
        # Locked from the start of the transaction (restarted if needed) so
        # that two approvers deciding at once cannot both pass the checks
        pool = Pool()
        cls.lock(tasks)
        for name in {t.document.__name__ for t in tasks if t.document}:
            pool.get(name).lock_for_approval()
        return cls.browse([t.id for t in tasks])

    @classmethod
    @ModelView.button
    def approve(cls, tasks, comment=None):
        pool = Pool()
        tasks = cls._lock_for_decision(tasks)
        cls._check_decidable(tasks)
        with without_check_access():
            cls.write(tasks, {
                    'state': 'approved',
                    'decided_by': Transaction().user,
                    'decided_at': dt.datetime.now(),
                    'comment': comment,
                    })
        granted = defaultdict(list)
        progressed = defaultdict(list)
        next_tasks = []
        for task in tasks:
            document = task.document
            steps = list(task.rule.steps)
            index = steps.index(task.step)
            if index + 1 < len(steps):
                next_tasks.append(cls._new_task(
                        document, task.rule, steps[index + 1], index + 2,
                        task.requester, document.get_approval_values()))
                progressed[document.__name__].append(document)
            else:
                granted[document.__name__].append(document)
        if next_tasks:
            with without_check_access():
                cls.save(next_tasks)
            cls.notify(next_tasks)
        for model, documents in progressed.items():
            pool.get(model).approval_progressed(documents)
        for model, documents in granted.items():
            pool.get(model).approval_granted(documents)

    @classmethod
    @ModelView.button_action('hrp_materials.wizard_approval_reject')
    def reject(cls, tasks):
        pass

    @classmethod
    def refuse(cls, tasks, reason):
        "Reject the tasks with the reason and return their documents"
        pool = Pool()
        if not reason or not reason.strip():
            raise ApprovalError(gettext(
                    'hrp_materials.msg_approval_reject_reason'))
        tasks = cls._lock_for_decision(tasks)
        cls._check_decidable(tasks)
        with without_check_access():
            cls.write(tasks, {
                    'state': 'rejected',
                    'decided_by': Transaction().user,
                    'decided_at': dt.datetime.now(),
                    'comment': reason,
                    })
        refused = defaultdict(list)
        for task in tasks:
            refused[task.document.__name__].append(task.document)
        for model, documents in refused.items():
            pool.get(model).approval_refused(documents, reason)

    @classmethod
    def _new_task(cls, document, rule, step, level, requester, values):
        group, user = step.resolve(values.get('department'))
        if not group and not user:
            raise ApprovalError(gettext(
                    'hrp_materials.msg_approval_no_approver',
                    document=document.rec_name,
                    step=step.name,
                    department=values['department'].rec_name
                    if values.get('department') else ''))
        due_date = None
        if step.deadline_hours:
            due_date = (dt.datetime.now()
                + dt.timedelta(hours=step.deadline_hours))
        department = values.get('department')
        return cls(
            company=values['company'],
            document=document,
            description=document.rec_name,
            department=department.id if department else None,
            amount=values.get('amount'),
            urgency=values.get('urgency'),
            rule=rule,
            step=step,
            level=level,
            requester=requester,
            approver_group=group,
            approver_user=user,
            due_date=due_date,
            state='pending')

    @classmethod
    def _recipients(cls, tasks, escalation=False):
        "Return {user: [tasks]} of the users who may decide the tasks"
        pool = Pool()
        UserGroup = pool.get('res.user-res.group')
        User = pool.get('res.user')
        cursor = Transaction().connection.cursor()
        by_group = defaultdict(list)
        recipients = defaultdict(list)
        for task in tasks:
            if escalation:
                by_group[task.escalation_group.id].append(task)
                continue
            if task.approver_user:
                recipients[task.approver_user.id].append(task)
            if task.approver_group:
                by_group[task.approver_group.id].append(task)
        if by_group:
            user_group = UserGroup.user_group_all_table()
            cursor.execute(*user_group.select(
                    user_group.user, user_group.group,
                    where=user_group.group.in_(list(by_group))))
            for user_id, group_id in cursor:
                recipients[user_id].extend(by_group[group_id])
        users = User.browse(list(recipients))
        return {u: recipients[u.id] for u in users if u.active}

    @classmethod
    def notify(cls, tasks, escalation=False):
        """Tell the users who may decide the tasks, by a Tryton notification
        and, when configured, by e-mail"""
        pool = Pool()
        Notification = pool.get('res.notification')
        ModelData = pool.get('ir.model.data')
        Configuration = pool.get('hrp.configuration')
        configuration = Configuration(1)
        action_id = ModelData.get_id('hrp_materials', 'act_approval_inbox')
        message = ('hrp_materials.msg_approval_escalated_notification'
            if escalation else 'hrp_materials.msg_approval_notification')
        notifications = []
        emails = []
        for user, user_tasks in cls._recipients(tasks, escalation).items():
            with Transaction().set_context(language=user.language.code
                    if user.language else None):
                for task in user_tasks:
                    label = gettext(message, document=task.description,
                        step=task.step.name)
                    notifications.append(Notification(
                            user=user,
                            label=label,
                            description=task.requester.rec_name,
                            icon='tryton-notification',
                            model=cls.__name__,
                            records=str([task.id]),
                            action=action_id))
                    if configuration.approval_email and user.email:
                        emails.append((user.email, label))
        with without_check_access():
            Notification.save(notifications)
        sender = config.get('email', 'from')
        for to, subject in emails:
            msg = EmailMessage()
            msg['From'] = sender
            msg['To'] = to
            msg['Subject'] = subject
            msg.set_content(subject)
            send_message_transactional(msg, sender, [to])

    @classmethod
    def escalate_overdue(cls):
        "Escalate the pending tasks past their due date (scheduled job)"
        now = dt.datetime.now()
        tasks = cls.search([
                ('state', '=', 'pending'),
                ('escalated_at', '=', None),
                ('due_date', '<', now),
                ])
        tasks = [t for t in tasks if t.step.escalation_group]
        for task in tasks:
            task.escalated_at = now
            task.escalation_group = task.step.escalation_group
        cls.save(tasks)
        cls.notify(tasks, escalation=True)
        return tasks

    @classmethod
    def cancel_pending(cls, documents):
        tasks = cls.search([
                ('document', 'in', [str(d) for d in documents]),
                ('state', '=', 'pending'),
                ])
        if tasks:
            with without_check_access():
                cls.write(tasks, {
                    'state': 'cancelled',
                    'decided_by': Transaction().user,
                    'decided_at': dt.datetime.now(),
                    })


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('hrp.approval.task|escalate_overdue',
                "Escalate Overdue Approvals"))


class ApprovalRejectStart(ModelView):
    __name__ = 'hrp.approval.reject.start'
    __string__ = "Reject"
    reason = fields.Text("Reason", required=True)


class ApprovalReject(Wizard):
    __name__ = 'hrp.approval.reject'
    __string__ = "Reject"
    start = StateView(
        'hrp.approval.reject.start',
        'hrp_materials.approval_reject_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Reject", 'reject', 'tryton-ok', default=True),
            ])
    reject = StateTransition()

    def transition_reject(self):
        pool = Pool()
        Task = pool.get('hrp.approval.task')
        if self.model.__name__ == Task.__name__:
            tasks = list(self.records)
        else:
            tasks = Task.search([
                    ('document', 'in', [str(r) for r in self.records]),
                    ('state', '=', 'pending'),
                    ])
            if not tasks:
                raise ApprovalError(gettext(
                        'hrp_materials.msg_approval_nothing_pending'))
        Task.refuse(tasks, self.start.reason)
        return 'end'


class DocumentCancelStart(ModelView):
    __name__ = 'hrp.document.cancel.start'
    __string__ = "Cancel Document"
    reason = fields.Text("Reason", required=True)


class DocumentCancel(Wizard):
    """Cancel documents with a reason: the documents implement
    ``do_cancel(documents, reason)``"""
    __name__ = 'hrp.document.cancel'
    __string__ = "Cancel Document"
    start = StateView(
        'hrp.document.cancel.start',
        'hrp_materials.document_cancel_start_view_form', [
            Button("Back", 'end', 'tryton-back'),
            Button("Cancel Document", 'cancel', 'tryton-ok', default=True),
            ])
    cancel = StateTransition()

    def transition_cancel(self):
        self.model.do_cancel(list(self.records), self.start.reason)
        return 'end'


class ApprovalMixin(Model):
    """A document approved through the approval engine.

    The document calls ``request_approval`` when it is submitted and
    implements ``get_approval_values``, ``approval_granted`` and
    ``approval_refused``."""
    __slots__ = ()
    # The tables the approval locks (stock.move when it reserves stock)
    _approval_locks = ()

    approval_state = fields.Selection(
        APPROVAL_STATES, "Approval", readonly=True)
    approval_rule = fields.Many2One(
        'hrp.approval.rule', "Approval Rule", readonly=True,
        ondelete='RESTRICT')
    approval_requester = fields.Many2One(
        'res.user', "Requested By", readonly=True)
    approval_tasks = fields.One2Many(
        'hrp.approval.task', 'document', "Approvals", readonly=True,
        order=[('id', 'ASC')])
    rejection_reason = fields.Text(
        "Rejection Reason", readonly=True,
        states={
            'invisible': ~Eval('rejection_reason'),
            })

    @classmethod
    def lock_for_approval(cls):
        """Take the tables of _approval_locks that granting an approval
        needs before any other work: Tryton restarts a transaction that asks
        for a lock late, and everything done before is done twice"""
        pool = Pool()
        for name in cls._approval_locks:
            pool.get(name).lock()

    def get_approval_values(self):
        """Return the values the rules test: company (id), department,
        categories (product.category records), high_value, amount,
        urgency"""
        raise NotImplementedError

    @classmethod
    def find_approval_rules(cls, documents):
        """Return for each document the values its rules test (see
        get_approval_values) and the rule that applies to it or None"""
        Rule = Pool().get('hrp.approval.rule')
        values = [d.get_approval_values() for d in documents]
        return list(zip(values, Rule.find_many(cls.__name__, values)))

    @classmethod
    def request_approval(cls, documents, rules=None):
        """Start the approval of the documents; documents no rule applies to
        are granted at once.  rules: what find_approval_rules returned for
        the documents, when the caller already asked"""
        pool = Pool()
        Task = pool.get('hrp.approval.task')
        user_id = Transaction().user
        Task.cancel_pending(documents)
        tasks, granted = [], []
        if rules is None:
            rules = cls.find_approval_rules(documents)
        for document, (values, rule) in zip(documents, rules):
            document.approval_rule = rule
            document.approval_requester = user_id
            document.rejection_reason = None
            if rule:
                document.approval_state = 'pending'
                tasks.append(Task._new_task(
                        document, rule, rule.steps[0], 1,
                        document.approval_requester, values))
            else:
                document.approval_state = 'approved'
                granted.append(document)
        cls.save(documents)
        with without_check_access():
            Task.save(tasks)
            Task.notify(tasks)
        if granted:
            cls.approval_granted(granted)

    @classmethod
    def approval_granted(cls, documents):
        "Called when the last step approved the documents"
        cls.write(documents, {'approval_state': 'approved'})

    @classmethod
    def approval_progressed(cls, documents):
        "Called when a step approved the documents and another one follows"

    @classmethod
    def approval_refused(cls, documents, reason):
        "Called when a step rejected the documents"
        pool = Pool()
        Task = pool.get('hrp.approval.task')
        Task.cancel_pending(documents)
        cls.write(documents, {
                'approval_state': 'rejected',
                'rejection_reason': reason,
                })

    @classmethod
    def cancel_approval(cls, documents):
        Pool().get('hrp.approval.task').cancel_pending(documents)
        cls.write(documents, {'approval_state': None})

    @classmethod
    def copy(cls, documents, default=None):
        default = default.copy() if default is not None else {}
        for name in ['approval_state', 'approval_rule', 'approval_requester',
                'approval_tasks', 'rejection_reason']:
            default.setdefault(name, None)
        return super().copy(documents, default=default)


class ApprovalWorkflowMixin(ApprovalMixin):
    """The workflow a department document approved by the engine shares:
    draft → submitted → in approval → approved, rejected back to draft, and
    cancelled with a reason; each step records who and when.

    The document (a Workflow) defines its ``number``, ``state``,
    ``company``, ``department``, ``lines`` (with a ``product``) and
    ``total_amount`` fields, with at least the states below,
    ``_number_sequence()``, ``check_submit(documents)``, the ``approve``
    transition and what ``_cancel(documents)`` undoes."""
    __slots__ = ()

    submitted_by = fields.Many2One('res.user', "Submitted By", readonly=True)
    submitted_at = fields.DateTime("Submitted At", readonly=True)
    cancelled_by = fields.Many2One('res.user', "Cancelled By", readonly=True)
    cancel_reason = fields.Text(
        "Cancellation Reason", readonly=True,
        states={'invisible': ~Eval('cancel_reason')})
    _cancellable_states = [
        'draft', 'submitted', 'in_approval', 'rejected', 'approved']

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._transitions |= {
            ('draft', 'submitted'),
            ('submitted', 'in_approval'),
            ('submitted', 'approved'),
            ('in_approval', 'approved'),
            ('submitted', 'rejected'),
            ('in_approval', 'rejected'),
            ('rejected', 'draft'),
            } | {(s, 'cancelled') for s in cls._cancellable_states}
        cls._buttons.update({
                'submit': {
                    'invisible': Eval('state') != 'draft',
                    'readonly': ~Eval('lines', []),
                    'depends': ['state'],
                    },
                'draft': {
                    'invisible': Eval('state') != 'rejected',
                    'depends': ['state'],
                    },
                'cancel': {
                    'invisible': ~Eval('state').in_(cls._cancellable_states),
                    'depends': ['state'],
                    },
                })

    @classmethod
    def default_state(cls):
        return 'draft'

    def get_rec_name(self, name):
        return self.number or f'({self.id})'

    @classmethod
    def search_rec_name(cls, name, clause):
        return [('number',) + tuple(clause[1:])]

    def get_approval_values(self):
        "The values of a document with material lines and a total amount"
        return {
            'company': self.company.id,
            'department': self.department,
            'categories': {c for l in self.lines
                for c in l.product.categories_all},
            'high_value': any(l.product.high_value for l in self.lines),
            'amount': self.total_amount,
            'urgency': 'normal',
            }

    @classmethod
    def _number_sequence(cls):
        "Return the ir.sequence that numbers the documents"
        raise NotImplementedError

    @classmethod
    def check_submit(cls, documents):
        "Raise a UserError when a document may not be submitted"

    @classmethod
    @ModelView.button
    def submit(cls, documents):
        "Submit the documents and ask for their approval"
        cls.lock_for_approval()
        cls._submit(documents)
        cls.request_approval(cls.browse([d.id for d in documents]))

    @classmethod
    @Workflow.transition('submitted')
    def _submit(cls, documents):
        cls.check_submit(documents)
        sequence = cls._number_sequence()
        for document in documents:
            if not document.number:
                document.number = sequence.get()
            document.submitted_by = Transaction().user
            document.submitted_at = dt.datetime.now()
        cls.save(documents)

    @classmethod
    def approval_granted(cls, documents):
        super().approval_granted(documents)
        cls.approve(documents)

    @classmethod
    def approval_progressed(cls, documents):
        super().approval_progressed(documents)
        cls.in_approval(documents)

    @classmethod
    def approval_refused(cls, documents, reason):
        super().approval_refused(documents, reason)
        cls.reject(documents)

    @classmethod
    @Workflow.transition('in_approval')
    def in_approval(cls, documents):
        pass

    @classmethod
    @Workflow.transition('rejected')
    def reject(cls, documents):
        pass

    @classmethod
    @ModelView.button
    @Workflow.transition('draft')
    def draft(cls, documents):
        cls.write(documents, {
                'submitted_by': None,
                'submitted_at': None,
                })

    @classmethod
    @ModelView.button_action('hrp_materials.wizard_document_cancel')
    def cancel(cls, documents):
        pass

    @classmethod
    @Workflow.transition('cancelled')
    def do_cancel(cls, documents, reason):
        "Cancel the documents for reason (undoing what they started)"
        if not reason or not reason.strip():
            raise ApprovalError(gettext(
                    'hrp_materials.msg_document_cancel_reason'))
        cls._cancel(documents)
        cls.cancel_approval(documents)
        cls.write(documents, {
                'cancelled_by': Transaction().user,
                'cancel_reason': reason,
                })

    @classmethod
    def _cancel(cls, documents):
        "Undo what the documents started (shipments …)"

    @classmethod
    def copy(cls, documents, default=None):
        default = default.copy() if default is not None else {}
        for name in ['number', 'submitted_by', 'submitted_at',
                'cancelled_by', 'cancel_reason']:
            default.setdefault(name, None)
        return super().copy(documents, default=default)

    @classmethod
    def check_modification(cls, mode, documents, values=None,
            external=False):
        super().check_modification(
            mode, documents, values=values, external=external)
        if mode == 'delete':
            for document in documents:
                if document.state not in {'draft', 'cancelled'}:
                    raise ApprovalError(gettext(
                            'hrp_materials.msg_document_delete',
                            document=document.rec_name))
