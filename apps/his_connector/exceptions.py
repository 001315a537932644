# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
from trytond.exceptions import UserError
from trytond.model.exceptions import ValidationError


class EndpointValidationError(ValidationError):
    "An endpoint is configured with invalid values"


class CredentialError(UserError):
    "The credential of an endpoint is not available"
