# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The suppliers' own view (供应商门户): a user who represents a supplier
(in the group *Supplier (Consignment)*) sees, read only, the supplier's
consigned stock in the hospital's stores, what the hospital used of its
materials (the used products summary) and the messages it was sent, and
nothing of the other suppliers: record rules match the records' supplier
with the user's."""
from trytond.model import fields
from trytond.pool import PoolMeta
from trytond.pyson import Eval


class User(metaclass=PoolMeta):
    __name__ = 'res.user'

    hrp_supplier = fields.Many2One(
        'party.party', "Supplier", ondelete='RESTRICT',
        context={
            'company': Eval('company', -1),
            },
        depends={'company'},
        help="The supplier the user represents: with the group "
        "\"Supplier (Consignment)\" the user sees only this supplier's "
        "consignment stock, consumption and messages.")


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    hrp_users = fields.One2Many(
        'res.user', 'hrp_supplier', "Supplier's Users", readonly=True)
