# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The link from a device to its fixed asset (折旧), registered only when the
``account_asset`` module is activated."""
from sql.aggregate import Sum

from trytond.model import Unique, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from .usage import CHUNK


class Equipment(metaclass=PoolMeta):
    __name__ = 'hrp.equipment'

    asset = fields.Many2One(
        'account.asset', "Fixed Asset", ondelete='RESTRICT',
        domain=[('company', '=', Eval('company', -1))],
        help="The fixed asset that depreciates the equipment.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('asset_unique', Unique(t, t.asset),
                'hrp_equipment.msg_equipment_asset_unique'),
            ]

    @fields.depends('asset', 'purchase_cost', 'commissioning_date')
    def on_change_asset(self):
        "Fill the blank purchase cost and commissioning date from the asset"
        if not self.asset:
            return
        if self.purchase_cost is None:
            self.purchase_cost = self.asset.value
        if not self.commissioning_date:
            self.commissioning_date = self.asset.start_date


class Usage(metaclass=PoolMeta):
    __name__ = 'hrp.equipment.usage'

    @classmethod
    def _depreciations(cls, company, start, end, ids):
        "The depreciation lines of the devices' running or closed assets"
        pool = Pool()
        Equipment = pool.get('hrp.equipment')
        Asset = pool.get('account.asset')
        Line = pool.get('account.asset.line')
        equipment = Equipment.__table__()
        asset = Asset.__table__()
        line = Line.__table__()
        cursor = Transaction().connection.cursor()
        result = super()._depreciations(company, start, end, ids)
        for sub_ids in grouped_slice(ids, CHUNK):
            cursor.execute(*equipment.join(asset,
                    condition=asset.id == equipment.asset).join(line,
                    condition=line.asset == asset.id).select(
                    equipment.id, Sum(line.depreciation),
                    where=equipment.id.in_(list(sub_ids))
                    & asset.state.in_(['running', 'closed'])
                    & (line.date >= start) & (line.date < end),
                    group_by=[equipment.id]))
            result.update(cursor)
        return result
