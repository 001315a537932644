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


class ApprovalError(UserError):
    "An approval cannot be requested, granted or refused"


class ApprovalAccessError(AccessError):
    "The user may not decide on an approval step"


class RequisitionError(UserError):
    pass


class RequisitionValidationError(ValidationError):
    pass


class ReturnError(UserError):
    pass


__all__ = [
    'UserError', 'ConfigurationValidationError', 'DepartmentValidationError',
    'StoreValidationError', 'MaterialValidationError',
    'SupplierValidationError', 'NoDepartmentError', 'ApprovalError',
    'ApprovalAccessError', 'RequisitionError', 'RequisitionValidationError',
    'ReturnError']


class WriteOffError(UserError):
    "A write-off cannot be submitted or posted"


class StocktakingError(UserError):
    "A stocktaking cannot be submitted for approval or confirmed"


class PurchaseRequestError(UserError):
    "A purchase request cannot be entered, changed or cancelled"


class PurchasePlanError(UserError):
    "A purchase plan cannot collect, be submitted or order"


class InvoiceMatchError(UserError):
    "A supplier invoice cannot be matched or posted"


class BarcodeError(UserError):
    "A scanned barcode cannot be read or identifies no material"


class ReceiptError(UserError):
    "A delivery cannot be accepted or received against its order"


class ContractError(UserError):
    "A contract cannot be changed, activated, closed or cancelled"


class QualificationError(UserError):
    "A supplier may not deliver a material (licence, scope, certificate)"


class PurchaseApprovalError(UserError):
    "A purchase cannot be quoted or confirmed (contract, approval, ceiling)"


class ChargeError(UserError):
    "A usage registration cannot bill the patient at the HIS"


class AgreedLevelValidationError(ValidationError):
    pass


class ConsignmentError(UserError):
    pass


class ReplenishmentValidationError(ValidationError):
    pass


class AlertError(UserError):
    pass
