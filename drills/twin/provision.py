"""Create the runbook's stacks on the twin's AWS endpoint, named as the runbook names them.

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

The DR region (runbook 5.1) gets the same stack as `VettID-Nitro-DR` with the standby ASG
`VettID-Nitro-DR-EnclaveASG` at desired 0, the enclave AMI copied from the primary's, its own
`/vettid/` parameters, and is linked as 5.2's prerequisites say: the sealing key is a
multi-region key replicated to it, the vault bucket replicates to
`vettid-vault-data-dr-<account>` (SSE-KMS under the replica key, RTC metrics), and the three
tables are global tables with a replica there. Route 53 (`provision_dns`) answers
`api.vettid.dev` by failover on each region's API health, and `api-dr.vettid.dev` with DR.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

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


def _stack_template(names: Names, region: str, desired: int) -> str:
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
                "AutoScalingGroupName": names.asg_in(region),
                "LaunchTemplate": {"LaunchTemplateId": {"Ref": "EnclaveLaunchTemplate"},
                                   "Version": {"Fn::GetAtt": ["EnclaveLaunchTemplate",
                                                              "LatestVersionNumber"]}},
                "MinSize": "0", "MaxSize": str(max(4, desired * 2)),
                "DesiredCapacity": str(desired),
                "AvailabilityZones": [f"{region}a", f"{region}b"],
                "TargetGroupARNs": [{"Ref": "EnclaveTargetGroup"}],
                "HealthCheckType": "ELB", "HealthCheckGracePeriod": 300}},
        },
        "Outputs": {names.asg_output_key: {"Value": {"Ref": "EnclaveASG"}}},
    })


def nats_credentials() -> tuple[str, str]:
    """A fresh user and password for the parent's NATS connection."""
    return "vettid-parent", secrets.token_urlsafe(18)


def create_sealing_key(clients: Clients, region: str) -> str:
    """The primary's sealing key, a multi-Region key (so 5.2 can replicate it); its ARN."""
    key = clients("kms", region).create_key(
        Description="VettID Nitro Enclave sealing key", MultiRegion=True,
        KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT")
    return str(key["KeyMetadata"]["Arn"])


def provision_aws(clients: Clients, names: Names, region: str, desired: int,
                  nats_user: str, nats_password: str, *, key_arn: str | None = None,
                  ami_id: str | None = None, tables: bool = True) -> Provisioned:
    """Create every AWS resource of the stack of `region` under the sealing key `key_arn`
    (a new one when None) from enclave AMI `ami_id` (the first build when None). The DR
    region's gets the replica key and the AMI copied to it (`replicate_key`, `copy_image`)
    and no tables of its own (`tables=False`: they are replicas of the primary's global
    tables, `link_regions`)."""
    kms, ssm = clients("kms", region), clients("ssm", region)
    key_arn = key_arn or create_sealing_key(clients, region)
    kms.create_alias(AliasName=names.key_alias, TargetKeyId=key_arn.rsplit("/", 1)[-1])
    ami = ami_id or build_enclave(clients("ec2", region), FIRST_VERSION).ami_id

    params = [
        (names.param_current_ami, ami, "String"),
        (names.param_latest_ami, ami, "String"),
        (names.param_sealing_key, key_arn, "String"),
        (names.param_nats_creds, json.dumps({"user": nats_user, "password": nats_password}),
         "SecureString"),
    ]
    for name, value, kind in params:
        extra = {"KeyId": key_arn} if kind == "SecureString" else {}
        ssm.put_parameter(Name=name, Value=value, Type=kind, Overwrite=True, **extra)

    # The stack first: its instances' enclaves boot (on the twin, the ASG controller starts
    # their workers) while the bucket and tables they store vaults in are made.
    vpc, subnets = _default_subnets(clients, region)
    clients("cloudformation", region).create_stack(
        StackName=names.stack_in(region), TemplateBody=_stack_template(names, region, desired),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (
            ("AmiId", ami), ("VpcId", vpc), ("SubnetA", subnets[0]), ("SubnetB", subnets[1]))])

    s3, bucket = clients("s3", region), names.bucket_in(region)
    create = {} if region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **create)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}, "BucketKeyEnabled": True}]})

    if tables:
        _create_tables(clients("dynamodb", region), names)
    return Provisioned(key_arn, ami, nats_user, nats_password)


def _create_tables(ddb: Any, names: Names) -> None:
    keys = {names.sessions_table: "session_id", names.credentials_table: "vault_id",
            names.transactions_table: "vault_id"}
    for table, hash_key in keys.items():
        schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        attrs = [{"AttributeName": hash_key, "AttributeType": "S"}]
        if table == names.transactions_table:
            schema.append({"AttributeName": "seq", "KeyType": "RANGE"})
            attrs.append({"AttributeName": "seq", "AttributeType": "N"})
        ddb.create_table(TableName=table, KeySchema=schema, AttributeDefinitions=attrs,
                         BillingMode="PAY_PER_REQUEST",
                         StreamSpecification={"StreamEnabled": True,  # global tables need it
                                              "StreamViewType": "NEW_AND_OLD_IMAGES"})
        ddb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})


def copy_image(clients: Clients, region: str, source: tuple[str, str]) -> str:
    """`aws ec2 copy-image` of the primary's enclave AMI, with its build's tags (PCRs)."""
    source_region, source_ami = source
    image = clients("ec2", source_region).describe_images(ImageIds=[source_ami])["Images"][0]
    ec2 = clients("ec2", region)
    copied = ec2.copy_image(SourceImageId=source_ami, SourceRegion=source_region,
                            Name=f"{image['Name']}-dr",
                            Description=f"copy of {source_ami} ({source_region})")["ImageId"]
    if image.get("Tags"):
        ec2.create_tags(Resources=[copied], Tags=image["Tags"])
    return str(copied)


def replicate_key(clients: Clients, key_arn: str, primary: str, dr: str) -> str:
    """The sealing key's replica in `dr` (`aws kms replicate-key`); its ARN."""
    replica = clients("kms", primary).replicate_key(KeyId=key_arn, ReplicaRegion=dr)
    return str(replica["ReplicaKeyMetadata"]["Arn"])


def link_regions(clients: Clients, names: Names, primary: str, dr: str,
                 replica_key_arn: str) -> None:
    """Runbook 5.2's prerequisites: S3 replication of the vault bucket to its DR replica
    (SSE-KMS objects under the replica key, RTC and its metrics), and the three tables as
    global tables with a replica in `dr` (point-in-time recovery on the replicas too)."""
    account = names.account_id
    clients("s3", primary).put_bucket_replication(
        Bucket=names.bucket, ReplicationConfiguration={
            "Role": f"arn:aws:iam::{account}:role/vettid-s3-replication",
            "Rules": [{"ID": "vault-data-to-dr", "Priority": 1, "Status": "Enabled",
                       "Filter": {"Prefix": ""},
                       "DeleteMarkerReplication": {"Status": "Disabled"},
                       "SourceSelectionCriteria": {
                           "SseKmsEncryptedObjects": {"Status": "Enabled"}},
                       "Destination": {
                           "Bucket": f"arn:aws:s3:::{names.dr_bucket}",
                           "EncryptionConfiguration": {"ReplicaKmsKeyID": replica_key_arn},
                           "ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": 15}},
                           "Metrics": {"Status": "Enabled",
                                       "EventThreshold": {"Minutes": 15}}}}]})
    ddb, dr_ddb = clients("dynamodb", primary), clients("dynamodb", dr)
    for table in names.tables:
        ddb.update_table(TableName=table, ReplicaUpdates=[{"Create": {"RegionName": dr}}])
        dr_ddb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})


def provision_dns(clients: Clients, names: Names, apis: dict[str, tuple[str, int]],
                  ttl: int) -> str:
    """Route 53: zone `vettid.dev`; a health check of each region's API (`GET /health` over
    HTTPS every 10 s, 3 failures, from 3 checker regions); `api.vettid.dev` failover
    PRIMARY -> the primary's API, SECONDARY -> DR's; `api-dr.vettid.dev` -> DR's. Returns the
    zone id."""
    route53 = clients("route53", names.primary_region)
    zone = route53.create_hosted_zone(Name=names.hosted_zone,
                                      CallerReference=secrets.token_hex(8))["HostedZone"]["Id"]
    checks = {}
    for region, (host, port) in apis.items():
        checks[region] = route53.create_health_check(
            CallerReference=secrets.token_hex(8), HealthCheckConfig={
                "Type": "HTTPS", "IPAddress": host, "Port": port, "ResourcePath": "/health",
                "FullyQualifiedDomainName": names.api_host, "RequestInterval": 10,
                "FailureThreshold": 3,
                # The fewest checker regions AWS allows (3): each checker probes every
                # interval, and the twin's checkers share its machine with the service.
                "Regions": ["us-east-1", "us-west-2", "eu-west-1"]})["HealthCheck"]["Id"]
        route53.change_tags_for_resource(ResourceType="healthcheck", ResourceId=checks[region],
                                         AddTags=[{"Key": "Name", "Value": f"api-{region}"}])
    primary, dr = names.primary_region, names.dr_region

    def record(name: str, region: str, role: str | None = None) -> dict[str, Any]:
        rrset: dict[str, Any] = {"Name": name, "Type": "A", "TTL": ttl,
                                 "ResourceRecords": [{"Value": apis[region][0]}]}
        if role:
            rrset.update(SetIdentifier=f"{role.lower()}-{region}", Failover=role,
                         HealthCheckId=checks[region])
        return {"Action": "UPSERT", "ResourceRecordSet": rrset}

    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={
        "Comment": "runbook 5: api.vettid.dev fails over to the DR region",
        "Changes": [record(names.api_host, primary, "PRIMARY"),
                    record(names.api_host, dr, "SECONDARY"),
                    record(names.dr_api_host, dr)]})
    return str(zone).rsplit("/", 1)[-1]


def _default_subnets(clients: Clients, region: str) -> tuple[str, list[str]]:
    """The default VPC and two of its subnets in distinct zones (an ALB needs two)."""
    found = clients("ec2", region).describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    found.sort(key=lambda s: s["AvailabilityZone"])
    if len(found) < 2:
        raise TwinError(f"the twin's {region} has {len(found)} default subnet(s); its load "
                        "balancer needs two in distinct zones")
    return found[0]["VpcId"], [found[0]["SubnetId"], found[1]["SubnetId"]]
