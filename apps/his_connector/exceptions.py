# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
from trytond.exceptions import UserError
from trytond.model.exceptions import ValidationError


class EndpointValidationError(ValidationError):
    "An endpoint is configured with invalid values"


class CredentialError(UserError):
    "The credential of an endpoint is not available"


class EndpointMissingError(UserError):
    "No active endpoint serves the purpose"


class HISError(UserError):
    "A call to the HIS failed (unknown record, peer down, bad reply)"


class HISUnavailableError(HISError):
    "The HIS did not answer (down, unreachable, timed out)"


class OutboxError(UserError):
    "An outbox message cannot be created or changed"


class CatalogueError(UserError):
    "The charge catalogue could not be imported"


class CatalogueImportError(UserError):
    "A CSV file has bad lines: nothing was imported"


class ProductMappingValidationError(ValidationError):
    "A material is mapped to charge items in a way that cannot be billed"


class UnmappedMaterialError(UserError):
    "A material has no active charge item to bill it with"


class PacsUsageError(UserError):
    "PACS usage figures are not valid: nothing was stored"
