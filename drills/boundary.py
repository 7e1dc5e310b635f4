"""Errors from AWS (botocore), translated at one boundary into ours, with what to do next.

Code that expects a particular AWS error (a missing parameter, an image that is gone) catches
`ClientError` itself; whatever escapes to a drill or a command is translated here, so a
tired on-call engineer reads "no AWS credentials found; ..." rather than a traceback:

    no credentials, bad profile, no region      -> TargetError   (exit 3)
    endpoint unreachable, connect/read timeout  -> TargetError   (exit 3)
    access denied, expired or invalid token     -> TargetError   (exit 3)
    resource not found                          -> TargetError   (exit 3)
    throttled                                   -> DrillError    (exit 1)
    anything else from AWS                      -> DrillError    (exit 1)
"""

from __future__ import annotations

from botocore import exceptions as bx

from drills.errors import DrillError, TargetError

DENIED = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure",
    "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
    "ExpiredTokenException", "SignatureDoesNotMatch", "InvalidSignatureException",
    "UnauthorizedException", "Forbidden"})
THROTTLED = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "SlowDown",
    "RequestThrottled", "RequestThrottledException", "LimitExceededException"})
NOT_FOUND_SUFFIXES = ("NotFound", "NotFoundException", "NotFoundFault", "DoesNotExist")
NOT_FOUND = frozenset({"NoSuchBucket", "NoSuchKey", "NoSuchEntity", "ParameterNotFound",
                       "ResourceNotFoundException", "TableNotFoundException"})
CREDENTIALS = (bx.NoCredentialsError, bx.PartialCredentialsError, bx.ProfileNotFound,
               bx.NoRegionError, bx.CredentialRetrievalError)
UNREACHABLE = (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
               bx.ConnectionClosedError, bx.ProxyConnectionError, bx.SSLError)
TWIN_HINT = 'on the twin, `drills twin status` and `eval "$(drills twin env)"`'


def is_aws_error(exc: BaseException) -> bool:
    """True for the errors botocore raises (what `translate` understands)."""
    return isinstance(exc, bx.BotoCoreError | bx.ClientError)


def explain(exc: BaseException) -> str:
    """An error's text for a message of ours: AWS errors translated, others as they are."""
    return str(translate(exc)) if is_aws_error(exc) else str(exc)


def translate(exc: BaseException, doing: str = "") -> DrillError:
    """Our error for a botocore one; `doing` says what we were doing ("reading the stack").

    Anything that is not a botocore error comes back as a DrillError carrying its text.
    """
    where = f" while {doing}" if doing else ""
    if isinstance(exc, CREDENTIALS):
        return TargetError(
            f"no usable AWS credentials or region{where} ({exc}); set AWS_PROFILE or run with "
            f"a role, and AWS_DEFAULT_REGION ({TWIN_HINT})")
    if isinstance(exc, UNREACHABLE):
        return TargetError(
            f"the AWS endpoint could not be reached{where} ({exc}); check the network and "
            f"AWS_ENDPOINT_URL ({TWIN_HINT})")
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        operation = exc.operation_name
        if code in DENIED:
            return TargetError(
                f"AWS denied {operation}{where} ({code}: {message}); grant the drills role "
                f"{operation} on that resource, or renew expired credentials")
        if code in THROTTLED:
            return DrillError(
                f"AWS throttled {operation}{where} ({code}); run again later, or lower the "
                "probe and canary rates in the objectives file")
        if code in NOT_FOUND or code.endswith(NOT_FOUND_SUFFIXES) or (
                code == "ValidationError" and "not exist" in message.lower()):
            return TargetError(
                f"a resource {operation} needs does not exist{where} ({code}: {message}); "
                "check the resource names of the target (the stack, its outputs and the "
                "runbook's names)")
        return DrillError(f"AWS {operation} failed{where} ({code}: {message})")
    if isinstance(exc, bx.BotoCoreError):
        return DrillError(f"AWS client error{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, DrillError):
        return exc
    return DrillError(f"{type(exc).__name__}: {exc}")
