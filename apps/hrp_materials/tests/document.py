# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"A department document used to test the department document mixin"
from trytond.model import ModelSQL, fields

from ..department import DepartmentDocumentMixin


class DepartmentDocument(DepartmentDocumentMixin, ModelSQL):
    __name__ = 'hrp.test.department_document'
    __string__ = "Test Department Document"
    description = fields.Char("Description")
