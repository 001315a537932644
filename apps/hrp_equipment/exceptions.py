# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError, ValidationError


class EquipmentValidationError(ValidationError):
    pass


class EquipmentStatusError(UserError):
    pass


class EquipmentDeleteError(AccessError):
    pass


class RepairError(UserError):
    pass


class MaintenanceError(UserError):
    pass


class UsageError(ValidationError):
    pass


class ScoringError(UserError):
    pass


__all__ = [
    'EquipmentValidationError', 'EquipmentStatusError',
    'EquipmentDeleteError', 'RepairError',
    'MaintenanceError', 'UsageError', 'ScoringError']
