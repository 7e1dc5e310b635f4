#!/usr/bin/env bash
# Completes what vettid-dr-stack.yaml cannot make, once both its stacks are deployed:
#
#   primary (RegionRole=primary, stack VettID-Nitro)  and  dr (RegionRole=dr, stack VettID-Nitro-DR)
#
# - what one regional template cannot: the sealing key's replica in the DR region, its alias
#   and /vettid/nitro/sealing-key-arn there; the vault bucket's replication to the DR bucket
#   (S3 refuses a rule whose destination does not exist yet);
# - what CloudFormation cannot: /vettid/nitro/parent-nats-creds, a SecureString;
# - what moto's CloudFormation does not (AWS's does, so on an account these steps find it
#   done): a multi-Region sealing key, bucket versioning, the global tables and their
#   point-in-time recovery, the CloudWatch alarms, the ASGs' group metrics.
#
# Every step checks before it acts, so running it again changes nothing. Only the `aws` CLI;
# it honours AWS_ENDPOINT_URL like any AWS CLI call.
#
#   NATS_USER=... NATS_PASSWORD=... ./complete-dr-stack.sh
#
# PRIMARY_REGION (us-east-1) and DR_REGION (us-west-2) set the regions; NATS_USER and
# NATS_PASSWORD (the parent's NATS credentials) are needed only while the parameter is missing.
set -euo pipefail

primary=${PRIMARY_REGION:-us-east-1}
dr=${DR_REGION:-us-west-2}
# The runbook's names, as in the template (sections 2, 3 and 5).
key_alias=alias/vettid-nitro-sealing-key
key_param=/vettid/nitro/sealing-key-arn
creds_param=/vettid/nitro/parent-nats-creds
tables=(VettID-Vault-EnrollmentSessions VettID-Ledger-Credentials VettID-Ledger-TransactionKeys)
asgs=("$primary:VettID-Nitro-EnclaveASG" "$dr:VettID-Nitro-DR-EnclaveASG")
topic=VettID-Nitro-Alarms

say() { printf 'complete-dr-stack: %s\n' "$*"; }
exists() { "$@" >/dev/null 2>&1; }

account=$(aws sts get-caller-identity --query Account --output text)
bucket=vettid-vault-data-$account
dr_bucket=vettid-vault-data-dr-$account
backup_bucket=vettid-dr-backups

# Runbook 2.4 / 5.2: the multi-Region sealing key's replica, its alias and parameter in DR.
key_arn=$(aws ssm get-parameter --region "$primary" --name "$key_param" \
  --query Parameter.Value --output text)
key_id=${key_arn##*/}
if [ "$(aws kms describe-key --region "$primary" --key-id "$key_id" \
    --query KeyMetadata.MultiRegion --output text)" != True ]; then
  # The template's key is multi-Region; moto's CloudFormation drops MultiRegion, and a
  # single-Region key cannot be replicated: make one that can and point the alias (which the
  # buckets' encryption names) and the parameter at it.
  say "the sealing key is single-Region; creating a multi-Region one for $key_alias"
  key_arn=$(aws kms create-key --region "$primary" --multi-region \
    --description "VettID Nitro Enclave sealing key" --query KeyMetadata.Arn --output text)
  key_id=${key_arn##*/}
  aws kms update-alias --region "$primary" --alias-name "$key_alias" --target-key-id "$key_id"
  aws ssm put-parameter --region "$primary" --name "$key_param" --type String --overwrite \
    --value "$key_arn" >/dev/null
fi
if ! exists aws kms describe-key --region "$dr" --key-id "$key_id"; then
  say "replicating the sealing key to $dr"
  aws kms replicate-key --region "$primary" --key-id "$key_id" --replica-region "$dr" >/dev/null
fi
dr_key_arn=$(aws kms describe-key --region "$dr" --key-id "$key_id" \
  --query KeyMetadata.Arn --output text)
if [ "$(aws kms list-aliases --region "$dr" --key-id "$key_id" \
    --query "length(Aliases[?AliasName=='$key_alias'])" --output text)" = 0 ]; then
  say "creating $key_alias in $dr"
  aws kms create-alias --region "$dr" --alias-name "$key_alias" --target-key-id "$key_id"
fi
if ! exists aws ssm get-parameter --region "$dr" --name "$key_param"; then
  say "putting $key_param in $dr"
  aws ssm put-parameter --region "$dr" --name "$key_param" --type String \
    --value "$dr_key_arn" >/dev/null
fi

# Runbook 2.3: the parent's NATS credentials, a SecureString under the sealing key.
for region in "$primary" "$dr"; do
  if ! exists aws ssm get-parameter --region "$region" --name "$creds_param"; then
    : "${NATS_USER:?set NATS_USER and NATS_PASSWORD: $creds_param is missing in $region}"
    : "${NATS_PASSWORD:?set NATS_USER and NATS_PASSWORD: $creds_param is missing in $region}"
    say "putting $creds_param in $region"
    aws ssm put-parameter --region "$region" --name "$creds_param" --type SecureString \
      --key-id "$key_alias" \
      --value "{\"user\": \"$NATS_USER\", \"password\": \"$NATS_PASSWORD\"}" >/dev/null
  fi
done

# Runbook 2.1: versioning on every bucket (replication needs it on both ends).
for pair in "$primary:$bucket" "$dr:$dr_bucket" "$primary:$backup_bucket"; do
  region=${pair%%:*} name=${pair#*:}
  status=$(aws s3api get-bucket-versioning --region "$region" --bucket "$name" \
    --query Status --output text)
  if [ "$status" != Enabled ]; then
    say "enabling versioning on $name"
    aws s3api put-bucket-versioning --region "$region" --bucket "$name" \
      --versioning-configuration Status=Enabled
  fi
done

# Runbook 5.1: the vault bucket replicates to the DR bucket, SSE-KMS under the replica key.
if ! exists aws s3api get-bucket-replication --region "$primary" --bucket "$bucket"; then
  say "replicating $bucket to $dr_bucket"
  role=$(aws iam get-role --role-name vettid-s3-replication --query Role.Arn --output text)
  aws s3api put-bucket-replication --region "$primary" --bucket "$bucket" \
    --replication-configuration "{
      \"Role\": \"$role\",
      \"Rules\": [{\"ID\": \"vault-data-to-dr\", \"Priority\": 1, \"Status\": \"Enabled\",
        \"Filter\": {\"Prefix\": \"\"},
        \"DeleteMarkerReplication\": {\"Status\": \"Disabled\"},
        \"SourceSelectionCriteria\": {\"SseKmsEncryptedObjects\": {\"Status\": \"Enabled\"}},
        \"Destination\": {\"Bucket\": \"arn:aws:s3:::$dr_bucket\",
          \"EncryptionConfiguration\": {\"ReplicaKmsKeyID\": \"$dr_key_arn\"},
          \"ReplicationTime\": {\"Status\": \"Enabled\", \"Time\": {\"Minutes\": 15}},
          \"Metrics\": {\"Status\": \"Enabled\", \"EventThreshold\": {\"Minutes\": 15}}}}]}"
fi

# Runbook 2.2 / 5.1: the tables as global tables (version 2019.11.21), PITR in each region.
key_schema() {
  case $1 in
    VettID-Vault-EnrollmentSessions)
      echo "--attribute-definitions AttributeName=session_id,AttributeType=S" \
        "--key-schema AttributeName=session_id,KeyType=HASH" ;;
    VettID-Ledger-Credentials)
      echo "--attribute-definitions AttributeName=vault_id,AttributeType=S" \
        "--key-schema AttributeName=vault_id,KeyType=HASH" ;;
    *)
      echo "--attribute-definitions AttributeName=vault_id,AttributeType=S" \
        "AttributeName=seq,AttributeType=N" \
        "--key-schema AttributeName=vault_id,KeyType=HASH AttributeName=seq,KeyType=RANGE" ;;
  esac
}
create_table() {  # region table
  say "creating table $2 in $1"
  # shellcheck disable=SC2046  # key_schema's words are separate arguments
  aws dynamodb create-table --region "$1" --table-name "$2" $(key_schema "$2") \
    --billing-mode PAY_PER_REQUEST \
    --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES >/dev/null
  aws dynamodb wait table-exists --region "$1" --table-name "$2"
}
replica_in_dr() {  # table: does the primary's table list a replica in the DR region?
  [ "$(aws dynamodb describe-table --region "$primary" --table-name "$1" \
    --query "length(Table.Replicas[?RegionName=='$dr'] || \`[]\`)" --output text)" != 0 ]
}
for table in "${tables[@]}"; do
  exists aws dynamodb describe-table --region "$primary" --table-name "$table" \
    || create_table "$primary" "$table"
  if ! exists aws dynamodb describe-table --region "$dr" --table-name "$table"; then
    if ! replica_in_dr "$table"; then
      say "adding a replica of $table in $dr"
      aws dynamodb update-table --region "$primary" --table-name "$table" \
        --replica-updates "[{\"Create\": {\"RegionName\": \"$dr\"}}]" >/dev/null
    fi
    # An endpoint without global tables (moto) takes the update and makes no replica.
    if replica_in_dr "$table"; then
      aws dynamodb wait table-exists --region "$dr" --table-name "$table"
    else
      create_table "$dr" "$table"
    fi
  fi
  for region in "$primary" "$dr"; do
    pitr=$(aws dynamodb describe-continuous-backups --region "$region" --table-name "$table" \
      --query ContinuousBackupsDescription.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus \
      --output text)
    if [ "$pitr" != ENABLED ]; then
      say "enabling point-in-time recovery of $table in $region"
      aws dynamodb update-continuous-backups --region "$region" --table-name "$table" \
        --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true >/dev/null
    fi
  done
done

# Runbook 3.2 / 3.3: the alarms on the ASG's group metrics and the NATS health metric.
for pair in "${asgs[@]}"; do
  aws autoscaling enable-metrics-collection --region "${pair%%:*}" \
    --auto-scaling-group-name "${pair#*:}" --granularity 1Minute \
    --metrics GroupInServiceInstances
done
topic_arn=$(aws sns create-topic --region "$primary" --name "$topic" \
  --query TopicArn --output text)  # the template's topic: CreateTopic returns it
put_alarm() {  # name description namespace metric [dimension]
  if [ "$(aws cloudwatch describe-alarms --region "$primary" --alarm-names "$1" \
      --query 'length(MetricAlarms)' --output text)" = 0 ]; then
    say "creating alarm $1"
    aws cloudwatch put-metric-alarm --region "$primary" --alarm-name "$1" \
      --alarm-description "$2" --namespace "$3" --metric-name "$4" ${5:+--dimensions "$5"} \
      --statistic Maximum --period 60 --evaluation-periods 2 --datapoints-to-alarm 2 \
      --threshold 1 --comparison-operator LessThanThreshold --treat-missing-data missing \
      --alarm-actions "$topic_arn" --ok-actions "$topic_arn"
  fi
}
put_alarm VettID-Enclave-NoInstances \
  "No InService enclave instance: no vault operations (runbook 3.2)" \
  AWS/AutoScaling GroupInServiceInstances "Name=AutoScalingGroupName,Value=${asgs[0]#*:}"
put_alarm VettID-NATS-NoHealthyInstances \
  "No healthy NATS node: enclaves cannot communicate (runbook 3.3)" VettID/NATS HealthyNodes
say "done: $bucket, $dr_bucket, ${#tables[@]} global tables, the key in $primary and $dr"
