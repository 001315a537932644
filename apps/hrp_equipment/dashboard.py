# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The equipment dashboard (设备看板): the average composite score of each
category over the last twelve scored months, the repairs still open, the
maintenance overdue and the devices under-used or idle last month."""
from sql.aggregate import Avg, Count, Min, Sum
from sql.conditionals import Case

from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction

from .equipment import CATEGORIES
from .scoring import RecentMonthMixin


class BoardDomainMixin:
    """Apply the domain the context gives the model under
    ``hrp_board_domain`` ({model name: domain}) to its searches.

    sao 8.0's board leaves the domains of its actions out (a list pane even
    shows its unfiltered search when its search value is filtered too): the
    dashboard's actions give theirs in their context as well, where the
    board passes it to every search of the pane."""
    __slots__ = ()

    @classmethod
    def search(cls, domain, offset=0, limit=None, order=None, count=False,
            query=False):
        board = Transaction().context.get('hrp_board_domain') or {}
        if board.get(cls.__name__):
            domain = [domain, board[cls.__name__]]
        return super().search(domain, offset=offset, limit=limit,
            order=order, count=count, query=query)


class CategoryScore(
        BoardDomainMixin, RecentMonthMixin, ModelSQL, ModelView):
    __name__ = 'hrp.equipment.category.score'
    __string__ = "Equipment Score by Category"

    company = fields.Many2One('company.company', "Company")
    month = fields.Date("Month")
    category = fields.Selection(CATEGORIES, "Category", sort=False)
    category_string = category.translated('category')
    category_name = fields.Function(
        fields.Char("Category"), 'get_category_name')
    devices = fields.Integer("Devices")
    average = fields.Numeric("Average Score", digits=(5, 2))
    under_used = fields.Integer("Under-Used")
    idle = fields.Integer("Idle")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('month', 'DESC'), ('category', 'ASC'), ('id', 'ASC')]

    def get_category_name(self, name):
        return self.category_string

    @classmethod
    def table_query(cls):
        Score = Pool().get('hrp.equipment.score')
        score = Score.__table__()

        def count(column):
            return Sum(Case((column, 1), else_=0))
        return score.select(
            Min(score.id).as_('id'),
            score.company.as_('company'),
            score.month.as_('month'),
            score.category.as_('category'),
            Count(score.id).as_('devices'),
            Avg(score.composite).as_('average'),
            count(score.under_used).as_('under_used'),
            count(score.idle).as_('idle'),
            group_by=[score.company, score.month, score.category])


class Score(BoardDomainMixin, metaclass=PoolMeta):
    __name__ = 'hrp.equipment.score'


class Repair(BoardDomainMixin, metaclass=PoolMeta):
    __name__ = 'hrp.equipment.repair'


class Maintenance(BoardDomainMixin, metaclass=PoolMeta):
    __name__ = 'hrp.equipment.maintenance'
