"""AWS errors are translated at one boundary into ours, with what to do next (pure logic)."""

from __future__ import annotations

import pytest
from botocore import exceptions as bx

from drills.boundary import explain, is_aws_error, translate
from drills.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_TARGET, ConfigError, DrillError


def client_error(code: str, message: str = "m", op: str = "DescribeStacks") -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": message}}, op)


CASES = [
    (bx.NoCredentialsError(), EXIT_TARGET, "no usable AWS credentials"),
    (bx.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), EXIT_TARGET,
     "no usable AWS credentials"),
    (bx.ProfileNotFound(profile="prod"), EXIT_TARGET, "no usable AWS credentials"),
    (bx.NoRegionError(), EXIT_TARGET, "region"),
    (bx.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), EXIT_TARGET,
     "could not be reached"),
    (bx.ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"), EXIT_TARGET,
     "could not be reached"),
    (bx.ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), EXIT_TARGET, "could not be reached"),
    (client_error("AccessDenied"), EXIT_TARGET, "AWS denied DescribeStacks"),
    (client_error("UnauthorizedOperation"), EXIT_TARGET, "AWS denied"),
    (client_error("ExpiredToken"), EXIT_TARGET, "renew expired credentials"),
    (client_error("ThrottlingException"), EXIT_FAILED, "AWS throttled"),
    (client_error("RequestLimitExceeded"), EXIT_FAILED, "AWS throttled"),
    (client_error("ResourceNotFoundException"), EXIT_TARGET, "does not exist"),
    (client_error("NoSuchBucket"), EXIT_TARGET, "does not exist"),
    (client_error("InvalidInstanceID.NotFound"), EXIT_TARGET, "does not exist"),
    (client_error("ValidationError", "Stack with id VettID-Nitro does not exist"), EXIT_TARGET,
     "check the resource names"),
    (client_error("InternalFailure"), EXIT_FAILED, "DescribeStacks failed"),
    (bx.ParamValidationError(report="bad"), EXIT_FAILED, "AWS client error"),
]


@pytest.mark.parametrize(("error", "code", "says"), CASES,
                         ids=[type(c[0]).__name__ + ":" + c[2][:20] for c in CASES])
def test_each_kind_of_aws_error_maps_to_an_exit_code_and_a_next_step(
        error: Exception, code: int, says: str) -> None:
    """Credentials, reachability, permissions, throttling, missing resources, the rest."""
    assert is_aws_error(error)
    ours = translate(error, "reading the stack")
    assert isinstance(ours, DrillError)
    assert ours.exit_code == code
    assert says in str(ours)
    assert "while reading the stack" in str(ours)


def test_every_botocore_error_class_is_translated() -> None:
    """Exhaustive over botocore's own exception classes: none escapes untranslated."""
    classes = [c for c in vars(bx).values() if isinstance(c, type)
               and issubclass(c, bx.BotoCoreError)]
    assert len(classes) > 30
    for cls in classes:
        error = cls.__new__(cls)
        Exception.__init__(error, "x")
        assert isinstance(translate(error), DrillError), cls


def test_our_errors_pass_through_and_others_keep_their_text() -> None:
    """A DrillError is returned as it is; anything else becomes a DrillError with its text."""
    mine = ConfigError("bad")
    assert translate(mine) is mine
    assert mine.exit_code == EXIT_BAD_INPUT
    assert str(translate(ValueError("boom"))) == "ValueError: boom"
    assert explain(ValueError("boom")) == "boom"
    assert "AWS denied" in explain(client_error("AccessDenied"))
