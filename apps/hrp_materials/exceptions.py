from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError, ValidationError


class ConfigurationValidationError(ValidationError):
    pass


class DepartmentValidationError(ValidationError):
    pass


class StoreValidationError(ValidationError):
    pass


class MaterialValidationError(ValidationError):
    pass


class SupplierValidationError(ValidationError):
    pass


class NoDepartmentError(AccessError):
    pass


__all__ = [
    'UserError', 'ConfigurationValidationError', 'DepartmentValidationError',
    'StoreValidationError', 'MaterialValidationError',
    'SupplierValidationError', 'NoDepartmentError']
