"""Create the runbook's stack on the twin's AWS endpoint, named as the runbook names it.

The same calls an operator's CloudFormation would make: a KMS sealing key, the AMI, a launch
template and the enclave ASG (as stack `VettID-Nitro` with output `EnclaveASGName`), the SSM
parameters, the versioned SSE-KMS vault bucket, and the three DynamoDB tables with PITR.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from drills.clients import Clients
from drills.twin.images import build_enclave
from drills.twin.state import Names

#: The enclave build the twin starts on (runbook 6: PCR sets are per build).
FIRST_VERSION = "1.0.0"


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What provisioning created in one region."""

    key_arn: str
    ami_id: str
    nats_user: str
    nats_password: str


def _stack_template(names: Names, desired: int) -> str:
    return json.dumps({
        "Parameters": {"AmiId": {"Type": "String"}},
        "Resources": {
            "EnclaveLaunchTemplate": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {
                "LaunchTemplateName": names.launch_template,
                # EC2 resolves the parameter at every launch, so runbook 4.1 step 2 and 6.3
                # (put-parameter current-ami, then start-instance-refresh) change the AMI.
                "LaunchTemplateData": {"ImageId": f"resolve:ssm:{names.param_current_ami}",
                                       "InstanceType": "m5.xlarge",
                                       "EnclaveOptions": {"Enabled": True}}}},
            "EnclaveASG": {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {
                "AutoScalingGroupName": names.asg,
                "LaunchTemplate": {"LaunchTemplateId": {"Ref": "EnclaveLaunchTemplate"},
                                   "Version": {"Fn::GetAtt": ["EnclaveLaunchTemplate",
                                                              "LatestVersionNumber"]}},
                "MinSize": "0", "MaxSize": str(max(4, desired * 2)),
                "DesiredCapacity": str(desired),
                "AvailabilityZones": ["us-east-1a", "us-east-1b"],
                "HealthCheckType": "EC2", "HealthCheckGracePeriod": 300}},
        },
        "Outputs": {names.asg_output_key: {"Value": {"Ref": "EnclaveASG"}}},
    })


def nats_credentials() -> tuple[str, str]:
    """A fresh user and password for the parent's NATS connection."""
    return "vettid-parent", secrets.token_urlsafe(18)


def provision_aws(clients: Clients, names: Names, region: str, desired: int,
                  nats_user: str, nats_password: str) -> Provisioned:
    """Create every AWS resource of the primary stack in `region`."""
    kms, ssm = clients("kms", region), clients("ssm", region)
    key = kms.create_key(Description="VettID Nitro Enclave sealing key",
                         KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]
    kms.create_alias(AliasName=names.key_alias, TargetKeyId=key["KeyId"])

    ami = build_enclave(clients("ec2", region), FIRST_VERSION).ami_id

    params = [
        (names.param_current_ami, ami, "String"),
        (names.param_latest_ami, ami, "String"),
        (names.param_sealing_key, key["Arn"], "String"),
        (names.param_nats_creds, json.dumps({"user": nats_user, "password": nats_password}),
         "SecureString"),
    ]
    for name, value, kind in params:
        extra = {"KeyId": key["KeyId"]} if kind == "SecureString" else {}
        ssm.put_parameter(Name=name, Value=value, Type=kind, Overwrite=True, **extra)

    s3 = clients("s3", region)
    create = {} if region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=names.bucket, **create)
    s3.put_bucket_versioning(Bucket=names.bucket,
                             VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=names.bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]}, "BucketKeyEnabled": True}]})

    ddb = clients("dynamodb", region)
    keys = {names.sessions_table: "session_id", names.credentials_table: "vault_id",
            names.transactions_table: "vault_id"}
    for table, hash_key in keys.items():
        schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        attrs = [{"AttributeName": hash_key, "AttributeType": "S"}]
        if table == names.transactions_table:
            schema.append({"AttributeName": "seq", "KeyType": "RANGE"})
            attrs.append({"AttributeName": "seq", "AttributeType": "N"})
        ddb.create_table(TableName=table, KeySchema=schema, AttributeDefinitions=attrs,
                         BillingMode="PAY_PER_REQUEST")
        ddb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})

    clients("cloudformation", region).create_stack(
        StackName=names.stack, TemplateBody=_stack_template(names, desired),
        Parameters=[{"ParameterKey": "AmiId", "ParameterValue": ami}])
    return Provisioned(key["Arn"], ami, nats_user, nats_password)
