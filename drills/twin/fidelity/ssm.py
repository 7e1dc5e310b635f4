"""SSM SecureString parameters follow their KMS key's state, as AWS does; moto 5.2 ignores it.

Parameter Store encrypts a SecureString value with its KMS key when it is written and
decrypts it when it is read with decryption ("AWS KMS encryption for Parameter Store
SecureString parameters", Systems Manager User Guide,
https://docs.aws.amazon.com/systems-manager/latest/userguide/secure-string-parameter-kms-encryption.html).
When that key is not usable, the call fails with `InvalidKeyId` (PutParameter and
GetParameter API Reference, Errors), HTTP 400, whose message is KMS's own, e.g.

    InvalidKeyId: arn:aws:kms:...:key/... is disabled. (Service: AWSKMS; Status Code: 400;
    Error Code: DisabledException; Request ID: ...; Proxy: null)

- PutParameter of a SecureString (its KeyId, the previous version's, or `aws/ssm`);
- GetParameter, GetParameters, GetParametersByPath and GetParameterHistory with
  `WithDecryption=true` of a SecureString. Without decryption they return the
  ciphertext, need no KMS call, and keep working; so do String parameters.

Keys this twin never knew (and AWS managed `aws/ssm`) are left alone, as moto leaves them.
Secret values are never part of an error message: only the key and the KMS error are.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from moto.ssm.exceptions import SSMException
from moto.ssm.models import Parameter, SimpleSystemManagerBackend

from drills.twin.fidelity import kms as kms_fidelity

__all__ = ["ROUTES", "InvalidKeyId", "install"]

_MARK = "_drills_twin_fidelity_ssm"
_ORIGINAL: dict[str, Callable[..., Any]] = {}


class InvalidKeyId(SSMException):
    """Parameter Store's answer when the parameter's KMS key cannot be used."""

    def __init__(self, problem: kms_fidelity.KeyProblem) -> None:
        # The wording AWS SDKs show: the KMS message, then KMS's error in parentheses.
        super().__init__("InvalidKeyId", (
            f"{problem.message} (Service: AWSKMS; Status Code: 400; Error Code: "
            f"{problem.code}; Request ID: {uuid.uuid4()}; Proxy: null)"))


def _require_usable(account_id: str, region: str | None, key_ref: str | None) -> None:
    problem = kms_fidelity.key_problem(account_id, region, key_ref)
    if problem is not None:
        raise InvalidKeyId(problem)


# ------------------------------------------------------------------ patches


def _put_parameter(self: SimpleSystemManagerBackend, name: str, description: str, value: str,
                   parameter_type: str, allowed_pattern: str, keyid: str,
                   *args: Any, **kwargs: Any) -> Parameter:
    # Same signature as the backend's put_parameter. An overwrite may omit Type and KeyId:
    # then the previous version's apply, as in moto's own put_parameter.
    # (Reserved /aws/ names are moto's to refuse; looking them up here could answer first.)
    known = not name.startswith("/aws/") and name in self._parameters and self._parameters[name]
    previous = self._parameters[name][-1] if known else None
    kind = parameter_type or (previous.parameter_type if previous else None)
    if kind == "SecureString":
        key = keyid or (previous.keyid if previous else None) or "alias/aws/ssm"
        _require_usable(self.account_id, self.region_name, key)
    return _ORIGINAL["put_parameter"](self, name, description, value, parameter_type,
                                      allowed_pattern, keyid, *args, **kwargs)


def _response_object(self: Parameter, decrypt: bool = False,
                     region: str | None = None) -> dict[str, Any]:
    # Every read that returns a value goes through here; GetParameterHistory passes no
    # region, and key_problem then finds the key in whichever region holds it.
    if decrypt and self.parameter_type == "SecureString":
        _require_usable(self.account_id, region, self.keyid)
    result: dict[str, Any] = _ORIGINAL["response_object"](self, decrypt, region)
    return result


def install() -> None:
    """Patch moto's SSM so SecureString writes and decrypting reads need a usable key."""
    if getattr(SimpleSystemManagerBackend, _MARK, False):
        return
    _ORIGINAL["put_parameter"] = SimpleSystemManagerBackend.put_parameter
    SimpleSystemManagerBackend.put_parameter = _put_parameter  # type: ignore[method-assign]
    _ORIGINAL["response_object"] = Parameter.response_object
    Parameter.response_object = _response_object  # type: ignore[method-assign]
    setattr(SimpleSystemManagerBackend, _MARK, True)


#: No twin-only control endpoints for SSM.
ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
