"""Create the runbook's stack on the twin's AWS endpoint, named as the runbook names it.

The same calls an operator's CloudFormation would make: a KMS sealing key, the AMI, a launch
template and the enclave ASG (as stack `VettID-Nitro` with output `EnclaveASGName`), the SSM
parameters, the versioned SSE-KMS vault bucket, and the three DynamoDB tables with PITR.

The enclave ASG uses ELB health checks, as runbook 3.1 implies (it expects an instance whose
enclave crashed to be replaced; EC2 status checks alone never notice a dead process): target
group `VettID-Enclave-TG`, whose health check is the enclave's own `GET /health`, used by an
internal Application Load Balancer (ELB health-checks only the targets of a target group a
load balancer uses). The stack carries AWS's documented defaults (target group health check
30 s / 5 s / 5 / 2, grace period 300 s); the ASG controller applies the twin's timing profile
to them at start-up (`drills.twin.controller.apply_profile`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from drills.clients import Clients
from drills.errors import TwinError
from drills.twin.images import build_enclave
from drills.twin.state import Names

#: The enclave build the twin starts on (runbook 6: PCR sets are per build).
FIRST_VERSION = "1.0.0"
#: The enclave ASG's target group and the load balancer that uses it.
TARGET_GROUP = "VettID-Enclave-TG"
LOAD_BALANCER = "VettID-Enclave-ALB"
#: What the target group's health check requests: the worker's HTTP health endpoint.
HEALTH_CHECK_PATH = "/health"


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What provisioning created in one region."""

    key_arn: str
    ami_id: str
    nats_user: str
    nats_password: str


def _stack_template(names: Names, desired: int) -> str:
    return json.dumps({
        "Parameters": {"AmiId": {"Type": "String"}, "VpcId": {"Type": "String"},
                       "SubnetA": {"Type": "String"}, "SubnetB": {"Type": "String"}},
        "Resources": {
            # AWS's defaults for an instance target group ("Health checks for Application
            # Load Balancer target groups"); the twin's profile is applied at start-up.
            "EnclaveTargetGroup": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
                                   "Properties": {
                "Name": TARGET_GROUP, "Protocol": "HTTP", "Port": 8080,
                "VpcId": {"Ref": "VpcId"}, "TargetType": "instance",
                "HealthCheckProtocol": "HTTP", "HealthCheckPort": "traffic-port",
                "HealthCheckPath": HEALTH_CHECK_PATH, "HealthCheckIntervalSeconds": 30,
                "HealthCheckTimeoutSeconds": 5, "HealthyThresholdCount": 5,
                "UnhealthyThresholdCount": 2, "Matcher": {"HttpCode": "200"}}},
            "EnclaveLoadBalancer": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
                                    "Properties": {
                "Name": LOAD_BALANCER, "Scheme": "internal", "Type": "application",
                "Subnets": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}]}},
            "EnclaveListener": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
                "LoadBalancerArn": {"Ref": "EnclaveLoadBalancer"}, "Protocol": "HTTP",
                "Port": 80, "DefaultActions": [{"Type": "forward",
                                                "TargetGroupArn": {"Ref": "EnclaveTargetGroup"}}]}},
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
                "TargetGroupARNs": [{"Ref": "EnclaveTargetGroup"}],
                "HealthCheckType": "ELB", "HealthCheckGracePeriod": 300}},
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

    vpc, subnets = _default_subnets(clients, region)
    clients("cloudformation", region).create_stack(
        StackName=names.stack, TemplateBody=_stack_template(names, desired),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (
            ("AmiId", ami), ("VpcId", vpc), ("SubnetA", subnets[0]), ("SubnetB", subnets[1]))])
    return Provisioned(key["Arn"], ami, nats_user, nats_password)


def _default_subnets(clients: Clients, region: str) -> tuple[str, list[str]]:
    """The default VPC and two of its subnets in distinct zones (an ALB needs two)."""
    found = clients("ec2", region).describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    found.sort(key=lambda s: s["AvailabilityZone"])
    if len(found) < 2:
        raise TwinError(f"the twin's {region} has {len(found)} default subnet(s); its load "
                        "balancer needs two in distinct zones")
    return found[0]["VpcId"], [found[0]["SubnetId"], found[1]["SubnetId"]]
