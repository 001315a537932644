# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Departments (科室), their members and the department-scoped access rules."""
from trytond.cache import Cache
from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Model, ModelSQL, ModelView, Unique, fields, tree)
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction

from .exceptions import DepartmentValidationError, NoDepartmentError
from .mixin import CodeNameMixin

DEPARTMENT_TYPES = [
    ('clinical', "Clinical"),
    ('medical_technical', "Medical-Technical"),
    ('operating_theatre', "Operating Theatre"),
    ('icu', "Intensive Care Unit"),
    ('emergency', "Emergency"),
    ('administrative', "Administrative"),
    ]


class Department(
        CodeNameMixin, DeactivableMixin, tree(), ModelSQL, ModelView):
    __name__ = 'hrp.department'
    __string__ = "Department"

    code = fields.Char("Code", required=True, strip=True)
    name = fields.Char("Name", required=True, translate=True)
    type = fields.Selection(DEPARTMENT_TYPES, "Type", required=True)
    parent = fields.Many2One(
        'hrp.department', "Parent", ondelete='RESTRICT',
        domain=[('company', '=', Eval('company', -1))])
    children = fields.One2Many('hrp.department', 'parent', "Children")
    company = fields.Many2One('company.company', "Company", required=True)
    director = fields.Many2One(
        'res.user', "Director", ondelete='RESTRICT',
        help="The department director (科室主任), a final approver.")
    head_nurse = fields.Many2One(
        'res.user', "Head Nurse", ondelete='RESTRICT',
        help="The head nurse (护士长), the first approver of requisitions.")
    members = fields.Many2Many(
        'hrp.department-res.user', 'department', 'user', "Members")
    cost_center = fields.Many2One(
        'analytic_account.account', "Cost Centre", ondelete='RESTRICT',
        domain=[('type', '=', 'normal')],
        help="The analytic account department costs are charged to.")
    stores = fields.One2Many(
        'stock.location', 'hrp_department', "Stores",
        help="The department stores (二级库) of the department.")
    store = fields.Function(
        fields.Many2One('stock.location', "Store"), 'get_store')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('code_unique', Unique(t, t.company, t.code),
                'hrp_materials.msg_department_code_unique'),
            ]
        cls._order.insert(0, ('code', 'ASC'))

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_type(cls):
        return 'clinical'

    def get_store(self, name):
        stores = [s for s in self.stores if s.hrp_store_type == 'department']
        stores = stores or list(self.stores)
        return stores[0].id if stores else None

    @classmethod
    def validate_fields(cls, departments, field_names):
        super().validate_fields(departments, field_names)
        if field_names & {'cost_center', 'company'}:
            for department in departments:
                if (department.cost_center
                        and department.cost_center.company
                        != department.company):
                    raise DepartmentValidationError(gettext(
                            'hrp_materials.msg_department_cost_center_company',
                            department=department.rec_name))

    @classmethod
    def on_modification(cls, mode, departments, field_names=None):
        super().on_modification(mode, departments, field_names=field_names)
        Pool().get('res.user')._hrp_departments_cache.clear()

    @classmethod
    def user_departments(cls, user_id=None):
        "Return the departments of the user as member, director or head nurse"
        if user_id is None:
            user_id = Transaction().user
        return cls.search(['OR',
                ('members', '=', user_id),
                ('director', '=', user_id),
                ('head_nurse', '=', user_id),
                ])


class DepartmentUser(ModelSQL):
    __name__ = 'hrp.department-res.user'
    __string__ = "Department - User"
    department = fields.Many2One(
        'hrp.department', "Department", required=True, ondelete='CASCADE')
    user = fields.Many2One(
        'res.user', "User", required=True, ondelete='CASCADE')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('department_user_unique', Unique(t, t.department, t.user),
                'hrp_materials.msg_department_user_unique'),
            ]

    @classmethod
    def on_modification(cls, mode, records, field_names=None):
        super().on_modification(mode, records, field_names=field_names)
        Pool().get('res.user')._hrp_departments_cache.clear()


class User(metaclass=PoolMeta):
    __name__ = 'res.user'

    hrp_departments = fields.Many2Many(
        'hrp.department-res.user', 'user', 'department', "Departments",
        help="The departments the user works in.")
    _hrp_departments_cache = Cache(
        'res_user.get_hrp_departments', context=False)

    @classmethod
    def _hrp_department_sets(cls):
        """Return the department ids of the current user and those of the
        departments around them (ancestors and descendants), cached"""
        pool = Pool()
        Department = pool.get('hrp.department')
        user_id = Transaction().user
        cached = cls._hrp_departments_cache.get(user_id)
        if cached is not None:
            return cached
        with Transaction().set_context(active_test=False), \
                Transaction().set_user(0):
            own = Department.user_departments(user_id)
            around = set(own)
            if own:
                around.update(Department.search(
                        [('parent', 'child_of', own, 'parent')]))
            for department in own:
                while department.parent and department.parent not in around:
                    department = department.parent
                    around.add(department)
            own = [d.id for d in own]
        cached = (tuple(sorted(own)), tuple(sorted(d.id for d in around)))
        cls._hrp_departments_cache.set(user_id, cached)
        return cached

    @classmethod
    def get_hrp_departments(cls):
        "Return a sorted tuple of the department ids of the current user"
        return cls._hrp_department_sets()[0]

    @classmethod
    def get_hrp_visible_departments(cls):
        """Return a sorted tuple of the ids of the user's departments, their
        parents and their sub-departments: the department directory the user
        sees"""
        return cls._hrp_department_sets()[1]

    @classmethod
    def on_modification(cls, mode, users, field_names=None):
        super().on_modification(mode, users, field_names=field_names)
        if field_names is None or 'hrp_departments' in field_names:
            cls._hrp_departments_cache.clear()


class Rule(metaclass=PoolMeta):
    __name__ = 'ir.rule'

    @classmethod
    def _get_context(cls, model_name):
        context = super()._get_context(model_name)
        User = Pool().get('res.user')
        context['hrp_departments'] = User.get_hrp_departments()
        context['hrp_visible_departments'] = (
            User.get_hrp_visible_departments())
        context['hrp_user'] = Transaction().user
        return context

    @classmethod
    def _get_cache_key(cls, model_names):
        key = super()._get_cache_key(model_names)
        return (*key, Pool().get('res.user')._hrp_department_sets(),
            Transaction().user)


class DepartmentDocumentMixin(Model):
    """A document owned by a department (requisitions, returns, usage …).

    Its department defaults to the user's department; a user who belongs to
    no department cannot create one unless the department is chosen by a user
    allowed to act for every department."""
    __slots__ = ()
    department = fields.Many2One(
        'hrp.department', "Department", required=True, ondelete='RESTRICT',
        states={
            'readonly': Eval('id', -1) >= 0,
            })

    @classmethod
    def default_department(cls):
        departments = Pool().get('res.user').get_hrp_departments()
        if len(departments) >= 1:
            return departments[0]

    @classmethod
    def _hrp_all_departments_groups(cls):
        "XML ids of the groups whose users act for every department"
        return ['hrp_materials.group_hrp_admin',
            'hrp_materials.group_store_keeper']

    @classmethod
    def _check_department_user(cls, department_ids):
        pool = Pool()
        User = pool.get('res.user')
        Department = pool.get('hrp.department')
        ModelData = pool.get('ir.model.data')
        transaction = Transaction()
        if transaction.user == 0 or not transaction.check_access:
            return
        user_groups = set(User.get_groups())
        all_groups = {ModelData.get_id(*g.split('.'))
            for g in cls._hrp_all_departments_groups()}
        if user_groups & all_groups:
            return
        departments = set(User.get_hrp_departments())
        if not departments:
            raise NoDepartmentError(gettext(
                    'hrp_materials.msg_user_without_department',
                    document=cls.__names__()['model']))
        for department_id in set(department_ids) - departments - {None}:
            raise NoDepartmentError(gettext(
                    'hrp_materials.msg_other_department_document',
                    document=cls.__names__()['model'],
                    department=Department(department_id).rec_name))

    @classmethod
    def create(cls, vlist):
        default = cls.default_department()
        cls._check_department_user(
            [v.get('department', default) for v in vlist])
        return super().create(vlist)
