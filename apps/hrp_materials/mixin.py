# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Mixins shared by the HRP models."""


class CodeNameMixin:
    """Records named "[code] name" and found by any of
    ``_rec_name_search_fields``"""
    __slots__ = ()
    _rec_name_search_fields = ['code', 'name']

    def get_rec_name(self, name):
        return f'[{self.code}] {self.name}'

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        if operator.startswith('!') or operator.startswith('not '):
            bool_op = 'AND'
        else:
            bool_op = 'OR'
        return [bool_op, *(
                (field, operator, operand, *extra)
                for field in cls._rec_name_search_fields)]
