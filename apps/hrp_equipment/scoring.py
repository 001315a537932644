# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Performance scoring of large equipment (大型设备绩效综合评估, paper Fig. 2).

The scoring scheme lists the indicators, each measuring one thing of a
device's month (quality, usage, intact rate, functions, research, profit,
payback) with its weight, target and direction; the weights sum to 100 %.
An indicator's score is linear to its target and capped:
``100 × min(value / target, 1)`` when higher is better,
``100 × min(target / value, 1)`` when lower is better (0 without a value).
The composite is the sum of the scores times their weights.

The scheduled job scores every device each month from its monthly usage
record.  A score keeps what it used: each line the indicator's name,
weight, target, numerator, denominator and value; changing the scheme
never rewrites a past score, unless the month is scored again on request
(*Score Equipment*, "score again")."""
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from types import SimpleNamespace

from sql import Column

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, Unique, fields,
    sequence_ordered)
from trytond.pool import Pool, PoolMeta
from trytond.pyson import PYSONEncoder
from trytond.report import Report
from trytond.tools import grouped_slice
from trytond.transaction import Transaction
from trytond.wizard import Button, StateAction, StateView, Wizard

from hrp_materials.mixin import context_companies, executemany

from .equipment import CATEGORIES
from .exceptions import ScoringError
from .usage import CHUNK, month_start

MEASURES = [
    ('quality', "Medical Quality Excellence Rate (%)"),
    ('usage', "Usage Rate (%)"),
    ('intact', "Intact Rate (%)"),
    ('function', "Function Completeness Rate (%)"),
    ('research', "Research, Teaching and Academic Contributions"),
    ('profit_margin', "Profit Margin (%)"),
    ('payback', "Payback Period (Years)"),
    ]
DIRECTIONS = [
    ('higher', "Higher is Better"),
    ('lower', "Lower is Better"),
    ]
# The monthly usage figures the evaluation report shows
USAGE_INPUTS = [
    'exams', 'hours_used', 'scheduled_hours', 'downtime_hours',
    'calendar_hours', 'hours_available', 'exams_sampled', 'exams_excellent',
    'functions_total', 'functions_used', 'papers', 'projects', 'trainees',
    'revenue', 'maintenance_cost', 'repair_cost', 'depreciation',
    'consumables_cost', 'upkeep_cost', 'total_cost', 'profit']
# The default scheme (paper Fig. 2): measure, weight (%), target
DEFAULT_INDICATORS = [
    ('quality', 15, 90),
    ('usage', 25, 70),
    ('intact', 15, 95),
    ('function', 10, 85),
    ('research', 5, 2),
    ('profit_margin', 20, 30),
    ('payback', 10, 6),
    ]
CENT = Decimal('0.01')
VALUE = Decimal('0.0001')
HUNDRED = Decimal(100)
ZERO = Decimal(0)


def measure(kind, usage, purchase_cost):
    """(numerator, denominator, value) of the indicator kind for the
    monthly usage record; the value is None without a denominator"""
    if kind == 'quality':
        num, den = usage.exams_excellent or 0, usage.exams_sampled or 0
    elif kind == 'usage':
        num, den = usage.hours_used, usage.hours_available
    elif kind == 'intact':
        num = usage.calendar_hours - usage.downtime_hours
        den = usage.calendar_hours
    elif kind == 'function':
        num, den = usage.functions_used or 0, usage.functions_total or 0
    elif kind == 'research':
        num = ((usage.papers or 0) + (usage.projects or 0)
            + (usage.trainees or 0))
        return Decimal(num), Decimal(1), Decimal(num)
    elif kind == 'profit_margin':
        num, den = usage.profit, usage.revenue
    elif kind == 'payback':
        # the purchase cost over a year of this month's profit
        num, den = purchase_cost or ZERO, 12 * usage.profit
        num, den = Decimal(num), Decimal(den)
        if den <= 0 or num <= 0:
            return num, den, None
        return num, den, (num / den).quantize(VALUE)
    num, den = Decimal(num), Decimal(den)
    if den <= 0:
        return num, den, None
    return num, den, (HUNDRED * num / den).quantize(VALUE)


def recent_months(name):
    """The first day of the period of the recent field name (last_month,
    last_year) and the first day after it"""
    today = Pool().get('ir.date').today()
    end = month_start(today)
    start = month_start(end - dt.timedelta(days=1))
    if name == 'last_year':
        for _ in range(11):
            start = month_start(start - dt.timedelta(days=1))
    return start, end


def recent_domain(name, clause):
    "The domain of the months of the recent field name"
    _, operator, value = clause
    start, end = recent_months(name)
    inside = [('month', '>=', start), ('month', '<', end)]
    if (operator == '=') == bool(value):
        return inside
    return ['OR', ('month', '<', start), ('month', '>=', end)]


def normalise(value, target, direction):
    "The score (0 to 100) of value against target: linear and capped"
    if value is None or target <= 0:
        return ZERO
    if direction == 'higher':
        score = HUNDRED * value / target
    elif value <= 0:
        return ZERO
    else:
        score = HUNDRED * target / value
    return min(max(score, ZERO), HUNDRED).quantize(CENT)


class Scheme(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'hrp.equipment.scoring.scheme'
    __string__ = "Equipment Scoring Scheme"

    company = fields.Many2One('company.company', "Company", required=True)
    name = fields.Char("Name", required=True)
    indicators = fields.One2Many(
        'hrp.equipment.indicator', 'scheme', "Indicators")
    total_weight = fields.Function(
        fields.Numeric("Total Weight (%)", digits=(5, 2)),
        'on_change_with_total_weight')
    under_used_rate = fields.Numeric(
        "Under-Used Below (%)", digits=(5, 2), required=True,
        help="A device whose usage rate is below this is flagged "
        "under-used.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('name', 'ASC'))

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_under_used_rate(cls):
        return Decimal(50)

    @classmethod
    def default_indicators(cls):
        """The seven indicators of the paper's evaluation with their usual
        weights and targets, named in the user's language"""
        Indicator = Pool().get('hrp.equipment.indicator')
        names = dict(Indicator.fields_get(['measure'])['measure'][
                'selection'])
        return [{
                'sequence': i,
                'name': names[measure],
                'measure': measure,
                'weight': Decimal(weight),
                'target': Decimal(target),
                'direction': 'lower' if measure == 'payback' else 'higher',
                } for i, (measure, weight, target) in enumerate(
                DEFAULT_INDICATORS, 1)]

    @fields.depends('indicators')
    def on_change_with_total_weight(self, name=None):
        return sum((i.weight or ZERO for i in self.indicators), ZERO)

    @classmethod
    def validate_fields(cls, schemes, field_names):
        super().validate_fields(schemes, field_names)
        cls.check_weights(schemes)
        for scheme in schemes:
            if not (0 <= scheme.under_used_rate <= 100):
                raise ScoringError(gettext(
                        'hrp_equipment.msg_scheme_under_used',
                        scheme=scheme.rec_name))
        cls.check_one_active(schemes)

    @classmethod
    def check_weights(cls, schemes):
        "Refuse a scheme whose weights do not sum to 100 %"
        for scheme in schemes:
            if not scheme.active:
                continue
            total = scheme.on_change_with_total_weight()
            if total != HUNDRED:
                raise ScoringError(gettext(
                        'hrp_equipment.msg_scheme_weights',
                        scheme=scheme.rec_name, total=total))

    @classmethod
    def check_one_active(cls, schemes):
        for scheme in schemes:
            if scheme.active and cls.search([
                        ('company', '=', scheme.company.id),
                        ('id', '!=', scheme.id),
                        ], limit=1):
                raise ScoringError(gettext(
                        'hrp_equipment.msg_scheme_active',
                        scheme=scheme.rec_name))

    @classmethod
    def get_active(cls, company):
        "The scheme scoring the company's equipment, checked"
        schemes = cls.search([('company', '=', company.id)], limit=1)
        if not schemes:
            raise ScoringError(gettext(
                    'hrp_equipment.msg_scheme_missing',
                    company=company.rec_name))
        scheme, = schemes
        cls.check_weights([scheme])
        return scheme


class Indicator(sequence_ordered(), ModelSQL, ModelView):
    __name__ = 'hrp.equipment.indicator'
    __string__ = "Equipment Indicator"

    scheme = fields.Many2One(
        'hrp.equipment.scoring.scheme', "Scheme", required=True,
        ondelete='CASCADE')
    name = fields.Char("Name", required=True, translate=True)
    measure = fields.Selection(
        MEASURES, "Measure", required=True, sort=False,
        help="What the indicator measures in the device's month.")
    weight = fields.Numeric(
        "Weight (%)", digits=(5, 2), required=True,
        help="The indicator's share of the composite; a scheme's weights "
        "sum to 100 %.")
    target = fields.Numeric(
        "Target", digits=(16, 4), required=True,
        help="The value that earns the full score, in the measure's unit "
        "(%, contributions or years).")
    direction = fields.Selection(
        DIRECTIONS, "Direction", required=True, sort=False)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('scheme')

    @classmethod
    def default_direction(cls):
        return 'higher'

    @fields.depends('measure')
    def on_change_measure(self):
        self.direction = 'lower' if self.measure == 'payback' else 'higher'

    @classmethod
    def validate_fields(cls, indicators, field_names):
        super().validate_fields(indicators, field_names)
        for indicator in indicators:
            if indicator.weight < 0 or indicator.weight > 100:
                raise ScoringError(gettext(
                        'hrp_equipment.msg_indicator_weight',
                        indicator=indicator.rec_name))
            if indicator.target <= 0:
                raise ScoringError(gettext(
                        'hrp_equipment.msg_indicator_target',
                        indicator=indicator.rec_name))


class RecentMonthMixin:
    "Whether a record's month is last month, or one of the last twelve"
    __slots__ = ()
    last_month = fields.Function(
        fields.Boolean("Last Month"), 'get_recent', searcher='search_recent')
    last_year = fields.Function(
        fields.Boolean(
            "Last 12 Months", help="One of the last twelve months."),
        'get_recent', searcher='search_recent')

    def get_recent(self, name):
        start, end = recent_months(name)
        return start <= self.month < end

    @classmethod
    def search_recent(cls, name, clause):
        return recent_domain(name, clause)


class Score(RecentMonthMixin, ModelSQL, ModelView):
    __name__ = 'hrp.equipment.score'
    __string__ = "Equipment Score"

    company = fields.Many2One(
        'company.company', "Company", required=True, readonly=True)
    equipment = fields.Many2One(
        'hrp.equipment', "Equipment", required=True, readonly=True,
        ondelete='RESTRICT')
    category = fields.Selection(
        CATEGORIES, "Category", required=True, readonly=True, sort=False)
    category_string = category.translated('category')
    department = fields.Many2One(
        'hrp.department', "Department", required=True, readonly=True,
        ondelete='RESTRICT')
    month = fields.Date("Month", required=True, readonly=True)
    usage = fields.Many2One(
        'hrp.equipment.usage', "Monthly Usage", required=True,
        readonly=True, ondelete='RESTRICT')
    scheme = fields.Many2One(
        'hrp.equipment.scoring.scheme', "Scheme", readonly=True,
        ondelete='SET NULL')
    composite = fields.Numeric(
        "Composite Score", digits=(5, 2), required=True, readonly=True)
    rank = fields.Integer(
        "Rank", readonly=True,
        help="The device's place among the month's devices of its "
        "category, by composite score.")
    usage_rate = fields.Numeric(
        "Usage Rate (%)", digits=(7, 2), readonly=True)
    under_used = fields.Boolean(
        "Under-Used", readonly=True,
        help="The usage rate is below the scheme's threshold.")
    idle = fields.Boolean(
        "Idle", readonly=True, help="No examination in the month.")
    lines = fields.One2Many(
        'hrp.equipment.score.line', 'score', "Indicators", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('equipment_month_unique', Unique(t, t.equipment, t.month),
                'hrp_equipment.msg_score_unique'),
            ]
        cls._sql_indexes.add(Index(t, (t.month, Index.Range())))
        cls._order = [
            ('month', 'DESC'), ('category', 'ASC'), ('rank', 'ASC'),
            ('id', 'ASC')]

    def get_rec_name(self, name):
        return f'{self.equipment.rec_name} {self.month:%Y-%m}'

    @classmethod
    def search_rec_name(cls, name, clause):
        return [('equipment.rec_name', *clause[1:])]

    @classmethod
    def check_modification(cls, mode, scores, values=None, external=False):
        super().check_modification(
            mode, scores, values=values, external=external)
        if external:
            raise ScoringError(gettext('hrp_equipment.msg_score_readonly'))

    @classmethod
    def score_last_month(cls, date=None):
        "Score every device of last month not scored yet (scheduled job)"
        Date = Pool().get('ir.date')
        for company in context_companies():
            with Transaction().set_context(company=company.id):
                today = date or Date.today()
            month = month_start(month_start(today) - dt.timedelta(days=1))
            cls.score_month(company, month)

    @classmethod
    def score_month(cls, company, month, equipments=None, rescore=False):
        """Collect the month's usage of equipments (default: all) and score
        those not scored yet, or all of them with rescore.  Return the
        number of scores written."""
        pool = Pool()
        Usage = pool.get('hrp.equipment.usage')
        Scheme = pool.get('hrp.equipment.scoring.scheme')
        Line = pool.get('hrp.equipment.score.line')
        month = month_start(month)
        scheme = Scheme.get_active(company)
        indicators = list(scheme.indicators)
        usages = Usage.collect_month(company, month, equipments)
        score = cls.__table__()
        line = Line.__table__()
        cursor = Transaction().connection.cursor()
        scored = {}
        for sub in grouped_slice(list(usages), CHUNK):
            cursor.execute(*score.select(score.equipment, score.id,
                    where=score.equipment.in_(list(sub))
                    & (score.month == month)))
            scored.update(cursor)
        if rescore and scored:
            for sub in grouped_slice(list(scored.values()), CHUNK):
                sub = list(sub)
                cursor.execute(*line.delete(where=line.score.in_(sub)))
                cursor.execute(*score.delete(where=score.id.in_(sub)))
            scored = {}
        usages = [u for e, u in sorted(usages.items()) if e not in scored]
        if not usages:
            return 0
        user, now = Transaction().user, dt.datetime.now()
        indicators = [SimpleNamespace(id=i.id, name=i.name,
                measure=i.measure, weight=i.weight, target=i.target,
                direction=i.direction) for i in indicators]
        rows, lines = [], {}
        for usage in usages:
            device = usage.device
            composite = ZERO
            equipment_lines = []
            for indicator in indicators:
                num, den, value = measure(
                    indicator.measure, usage, device.purchase_cost)
                points = normalise(
                    value, indicator.target, indicator.direction)
                weighted = (points * indicator.weight / HUNDRED).quantize(CENT)
                composite += weighted
                equipment_lines.append([
                        indicator.id, indicator.name, indicator.measure,
                        indicator.weight, indicator.target,
                        indicator.direction, num, den, value, points,
                        weighted, user, now])
            lines[device.id] = equipment_lines
            _, _, usage_rate = measure('usage', usage, None)
            rows.append([
                    company.id, device.id, device.category,
                    device.department, month, usage.id, scheme.id,
                    composite,
                    usage_rate.quantize(CENT) if usage_rate is not None
                    else None,
                    usage_rate is not None
                    and usage_rate < scheme.under_used_rate,
                    not usage.exams, user, now])
        names = ['company', 'equipment', 'category', 'department', 'month',
            'usage', 'scheme', 'composite', 'usage_rate', 'under_used',
            'idle', 'create_uid', 'create_date']
        executemany(score.insert(
                [Column(score, n) for n in names], [[None] * len(names)]),
            rows)
        ids = {}
        for sub in grouped_slice(list(lines), CHUNK):
            cursor.execute(*score.select(score.equipment, score.id,
                    where=score.equipment.in_(list(sub))
                    & (score.month == month)))
            ids.update(cursor)
        line_names = ['score', 'indicator', 'name', 'measure', 'weight',
            'target', 'direction', 'numerator', 'denominator', 'value',
            'score_value', 'weighted', 'create_uid', 'create_date']
        executemany(line.insert(
                [Column(line, n) for n in line_names],
                [[None] * len(line_names)]),
            [[ids[e], *l] for e, e_lines in lines.items() for l in e_lines])
        cls.rank_month(company, month)
        return len(rows)

    @classmethod
    def rank_month(cls, company, month):
        "Rank the month's scores in each category by composite"
        score = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*score.select(
                score.id, score.category, score.composite,
                where=(score.company == company.id) & (score.month == month),
                order_by=[score.category, score.composite.desc, score.id]))
        ranks, rows = defaultdict(int), []
        for score_id, category, _ in cursor.fetchall():
            ranks[category] += 1
            rows.append([ranks[category], score_id])
        executemany(score.update(
                [score.rank], [0], where=score.id == 0), rows)


class ScoreLine(ModelSQL, ModelView):
    __name__ = 'hrp.equipment.score.line'
    __string__ = "Equipment Score Indicator"

    score = fields.Many2One(
        'hrp.equipment.score', "Score", required=True, readonly=True,
        ondelete='CASCADE')
    indicator = fields.Many2One(
        'hrp.equipment.indicator', "Indicator", readonly=True,
        ondelete='SET NULL')
    name = fields.Char("Indicator", required=True, readonly=True)
    measure = fields.Selection(
        MEASURES, "Measure", required=True, readonly=True, sort=False)
    weight = fields.Numeric(
        "Weight (%)", digits=(5, 2), required=True, readonly=True)
    target = fields.Numeric(
        "Target", digits=(16, 4), required=True, readonly=True)
    direction = fields.Selection(
        DIRECTIONS, "Direction", required=True, readonly=True, sort=False)
    numerator = fields.Numeric("Numerator", digits=(16, 4), readonly=True)
    denominator = fields.Numeric(
        "Denominator", digits=(16, 4), readonly=True)
    value = fields.Numeric(
        "Value", digits=(16, 4), readonly=True,
        help="Empty when there was nothing to measure (no denominator).")
    score_value = fields.Numeric(
        "Score", digits=(5, 2), required=True, readonly=True)
    weighted = fields.Numeric(
        "Weighted Score", digits=(5, 2), required=True, readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('score')
        cls._order = [('score', 'ASC'), ('id', 'ASC')]


class ScoreMonthStart(ModelView):
    __name__ = 'hrp.equipment.score.month.start'
    __string__ = "Score Equipment"

    company = fields.Many2One('company.company', "Company", readonly=True)
    month = fields.Date(
        "Month", required=True,
        help="Any day of the month to score.")
    rescore = fields.Boolean(
        "Score Again",
        help="Replace the month's scores with new ones from the current "
        "scheme and usage; otherwise only the devices not scored yet are.")

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_month(cls):
        today = Pool().get('ir.date').today()
        return month_start(month_start(today) - dt.timedelta(days=1))


class ScoreMonth(Wizard):
    __name__ = 'hrp.equipment.score.month'
    start = StateView('hrp.equipment.score.month.start',
        'hrp_equipment.score_month_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Score", 'score', 'tryton-ok', default=True),
            ])
    score = StateAction('hrp_equipment.act_score_list')

    def do_score(self, action):
        pool = Pool()
        Score = pool.get('hrp.equipment.score')
        Date = pool.get('ir.date')
        month = month_start(self.start.month)
        if month > month_start(Date.today()):
            raise ScoringError(gettext(
                    'hrp_equipment.msg_score_future', month=month))
        Score.score_month(
            self.start.company, month, rescore=self.start.rescore)
        action['pyson_domain'] = PYSONEncoder().encode([
                ('month', '=', month)])
        action['name'] += f' {month:%Y-%m}'
        return action, {}


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('hrp.equipment.score|score_last_month',
                "Score Equipment of Last Month"))


class ScoreReport(Report):
    "The evaluation report of a device's month, with what it was scored on"
    __name__ = 'hrp.equipment.score.report'

    @classmethod
    def get_context(cls, records, header, data):
        pool = Pool()
        Score = pool.get('hrp.equipment.score')
        Line = pool.get('hrp.equipment.score.line')
        Usage = pool.get('hrp.equipment.usage')
        Lang = pool.get('ir.lang')
        User = pool.get('res.user')
        Date = pool.get('ir.date')
        context = super().get_context(records, header, data)
        lang = Lang.get()

        def labels(Model):
            return {n: f['string'] for n, f in Model.fields_get().items()}
        score_labels = labels(Score)
        usage_labels = labels(Usage)

        def format_number(value, digits):
            if value is None:
                return '-'
            return lang.format('%.*f', (digits, value), grouping=True)

        def flags(score):
            names = [score_labels[n] for n in ['under_used', 'idle']
                if getattr(score, n)]
            return ', '.join(names) or '-'

        def inputs(score):
            usage = score.usage
            result = []
            for name in USAGE_INPUTS:
                value = getattr(usage, name)
                if isinstance(value, Decimal):
                    value = format_number(value, 2)
                elif value is None:
                    value = '-'
                result.append((usage_labels[name], value))
            return result

        context['title'] = gettext('hrp_equipment.msg_score_report_title')
        context['labels'] = score_labels
        context['line_labels'] = labels(Line)
        context['format_number'] = format_number
        context['format_month'] = lambda d: f'{d:%Y-%m}'
        context['flags'] = flags
        context['flags_label'] = gettext(
            'hrp_equipment.msg_score_report_flags')
        context['inputs'] = inputs
        context['printed'] = gettext(
            'hrp_equipment.msg_score_report_printed',
            date=lang.strftime(Date.today()),
            user=User(Transaction().user).rec_name)
        return context
