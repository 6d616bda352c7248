#!/usr/bin/env bash
# Bulk data with aws-cli, the Personalize way, against interlog and an S3 bucket:
#
#   1. a schema, a dataset group, its Interactions dataset and an event tracker
#   2. a CSV of historical interactions uploaded to S3 and imported with
#      `create-dataset-import-job`, polled until ACTIVE
#   3. live events on top with `aws personalize-events put-events`
#   4. the dataset exported to S3 twice: as CSV (ingestion mode ALL: imported and live) and as
#      Parquet (interlog's extension: the tag interlog:format=parquet)
#   5. two users' data deleted with `create-data-deletion-job` (a CSV of user IDs on S3), polled
#      until COMPLETED
#   6. the dataset exported to S3 again: nothing of those two users is left
#
# The same commands work against Amazon Personalize and S3 themselves (without the Parquet tag,
# which AWS would keep as a plain tag and export CSV).
#
# Usage:
#   interlog serve --no-default-resources     # in another terminal; with INTERLOG_S3_ENDPOINT_URL
#                                             # set when the bucket is on an S3-compatible server
#   BUCKET=my-bucket examples/bulk-walkthrough.sh
#
# Environment:
#   BUCKET             the S3 bucket to use (created when missing)          (required)
#   AWS_CLI            the aws-cli v1 executable                           (default: aws)
#   INTERLOG_ENDPOINT  where interlog listens                              (default: http://127.0.0.1:8787)
#   S3_ENDPOINT        an S3-compatible server for the `aws s3` commands   (default: AWS's S3)
#   SUFFIX             appended to every resource name and S3 prefix       (default: date and process ID)
#   TIMEOUT            seconds to wait for each job                        (default: 60)
#
# The last three lines printed are the S3 URLs of the exports: CSV before the deletion, Parquet
# before the deletion, CSV after it.

set -euo pipefail

AWS_CLI="${AWS_CLI:-aws}"
ENDPOINT="${INTERLOG_ENDPOINT:-http://127.0.0.1:8787}"
BUCKET="${BUCKET:?set BUCKET to the S3 bucket to use}"
SUFFIX="${SUFFIX:-$(date +%Y%m%d%H%M%S)-$$}"
TIMEOUT="${TIMEOUT:-60}"
ROLE=arn:aws:iam::000000000000:role/interlog-bulk
if [[ -z "${AWS_REGION:-}" && -z "${AWS_DEFAULT_REGION:-}" ]]; then
    export AWS_DEFAULT_REGION=us-east-1
fi

personalize() { "$AWS_CLI" personalize --endpoint-url "$ENDPOINT" "$@"; }
personalize_events() { "$AWS_CLI" personalize-events --endpoint-url "$ENDPOINT" "$@"; }
s3() { "$AWS_CLI" ${S3_ENDPOINT:+--endpoint-url "$S3_ENDPOINT"} "$@"; }
say() { printf '==> %s\n' "$*" >&2; }

# wait_for WHAT GOOD DESCRIBE-COMMAND...: polls the status the command's --query picks until it is
# GOOD; a failed one prints its failureReason.
wait_for() {
    local what="$1" good="$2"; shift 2
    local deadline=$((SECONDS + TIMEOUT)) status
    while :; do
        status="$(personalize "$@" --output text)"
        case "$status" in
            "$good") say "$what is $good"; return 0 ;;
            "CREATE FAILED" | FAILED) say "$what: $status"; return 1 ;;
        esac
        if ((SECONDS >= deadline)); then
            say "$what is still $status after ${TIMEOUT}s"
            return 1
        fi
        sleep 1
    done
}

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PREFIX="s3://$BUCKET/walkthrough-$SUFFIX"

# --- 1. Schema, dataset group, dataset, tracker ---------------------------------------------------
cat >"$WORK/schema.json" <<'EOF'
{
  "type": "record",
  "name": "Interactions",
  "namespace": "com.amazonaws.personalize.schema",
  "fields": [
    {"name": "USER_ID", "type": "string"},
    {"name": "ITEM_ID", "type": "string"},
    {"name": "TIMESTAMP", "type": "long"},
    {"name": "EVENT_TYPE", "type": "string"},
    {"name": "DEVICE", "type": ["null", "string"], "categorical": true}
  ],
  "version": "1.0"
}
EOF
say "creating the schema, dataset group, Interactions dataset and event tracker"
SCHEMA_ARN="$(personalize create-schema --name "bulk-schema-$SUFFIX" --schema "file://$WORK/schema.json" \
    --query schemaArn --output text)"
GROUP_ARN="$(personalize create-dataset-group --name "bulk-group-$SUFFIX" --query datasetGroupArn --output text)"
wait_for "dataset group" ACTIVE describe-dataset-group --dataset-group-arn "$GROUP_ARN" --query datasetGroup.status
DATASET_ARN="$(personalize create-dataset --name "bulk-interactions-$SUFFIX" --schema-arn "$SCHEMA_ARN" \
    --dataset-group-arn "$GROUP_ARN" --dataset-type Interactions --query datasetArn --output text)"
wait_for "dataset" ACTIVE describe-dataset --dataset-arn "$DATASET_ARN" --query dataset.status
TRACKER="$(personalize create-event-tracker --name "bulk-tracker-$SUFFIX" --dataset-group-arn "$GROUP_ARN" \
    --query '[eventTrackerArn, trackingId]' --output text)"
read -r TRACKER_ARN TRACKING_ID <<<"$TRACKER"
wait_for "event tracker" ACTIVE describe-event-tracker --event-tracker-arn "$TRACKER_ARN" \
    --query eventTracker.status

# --- 2. History from S3 ------------------------------------------------------------------------------
# Personalize's import format: a header of the schema's field names, one row per interaction,
# TIMESTAMP in epoch seconds, several categorical values joined with |.
cat >"$WORK/history.csv" <<'EOF'
USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,DEVICE
user-1,item-1,1690000000,click,phone
user-1,item-2,1690000060,purchase,phone|tablet
user-2,item-1,1690000120,click,
user-3,item-3,1690000180,click,tablet
user-4,item-2,1690000240,click,
EOF
s3 s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1 || s3 s3 mb "s3://$BUCKET" >&2
s3 s3 cp "$WORK/history.csv" "$PREFIX/history/history.csv" >&2
say "importing $PREFIX/history/"
IMPORT_ARN="$(personalize create-dataset-import-job --job-name "bulk-import-$SUFFIX" --dataset-arn "$DATASET_ARN" \
    --data-source "dataLocation=$PREFIX/history/" --role-arn "$ROLE" --import-mode FULL \
    --query datasetImportJobArn --output text)"
if ! wait_for "import job" ACTIVE describe-dataset-import-job --dataset-import-job-arn "$IMPORT_ARN" \
    --query datasetImportJob.status; then
    personalize describe-dataset-import-job --dataset-import-job-arn "$IMPORT_ARN" \
        --query datasetImportJob.failureReason --output text >&2
    exit 1
fi

# --- 3. Live events on top ---------------------------------------------------------------------------
say "recording live events"
personalize_events put-events --tracking-id "$TRACKING_ID" --user-id user-1 --session-id session-1 \
    --event-list '[{"eventId": "live-1", "eventType": "click", "itemId": "item-3", "sentAt": 1700000000,
                    "properties": "{\"device\": \"phone\"}"}]'
personalize_events put-events --tracking-id "$TRACKING_ID" --user-id user-5 --session-id session-2 \
    --event-list '[{"eventId": "live-2", "eventType": "purchase", "itemId": "item-1", "sentAt": 1700000060}]'

# export JOB-NAME PREFIX [TAGS...]: an export job of everything (imported and live) to S3, waited for.
export_to() {
    local name="$1" path="$2" arn; shift 2
    arn="$(personalize create-dataset-export-job --job-name "$name" --dataset-arn "$DATASET_ARN" \
        --ingestion-mode ALL --role-arn "$ROLE" --job-output "s3DataDestination={path=$path}" "$@" \
        --query datasetExportJobArn --output text)"
    if ! wait_for "export job $name" ACTIVE describe-dataset-export-job --dataset-export-job-arn "$arn" \
        --query datasetExportJob.status; then
        personalize describe-dataset-export-job --dataset-export-job-arn "$arn" \
            --query datasetExportJob.failureReason --output text >&2
        exit 1
    fi
}

# --- 4. Exports to S3: CSV and Parquet -------------------------------------------------------------------
say "exporting to $PREFIX/before/ (CSV) and $PREFIX/parquet/ (Parquet)"
export_to "bulk-before-$SUFFIX" "$PREFIX/before/"
export_to "bulk-parquet-$SUFFIX" "$PREFIX/parquet/" --tags tagKey=interlog:format,tagValue=parquet

# --- 5. Delete two users' data -------------------------------------------------------------------------
printf 'USER_ID\nuser-1\nuser-2\n' >"$WORK/users.csv"
s3 s3 cp "$WORK/users.csv" "$PREFIX/delete/users.csv" >&2
say "deleting the data of user-1 and user-2"
DELETION_ARN="$(personalize create-data-deletion-job --job-name "bulk-delete-$SUFFIX" \
    --dataset-group-arn "$GROUP_ARN" --data-source "dataLocation=$PREFIX/delete/users.csv" --role-arn "$ROLE" \
    --query dataDeletionJobArn --output text)"
if ! wait_for "deletion job" COMPLETED describe-data-deletion-job --data-deletion-job-arn "$DELETION_ARN" \
    --query dataDeletionJob.status; then
    personalize describe-data-deletion-job --data-deletion-job-arn "$DELETION_ARN" \
        --query dataDeletionJob.failureReason --output text >&2
    exit 1
fi
say "records deleted: $(personalize describe-data-deletion-job --data-deletion-job-arn "$DELETION_ARN" \
    --query dataDeletionJob.numDeleted --output text)"

# --- 6. Export again ------------------------------------------------------------------------------------
say "exporting to $PREFIX/after/"
export_to "bulk-after-$SUFFIX" "$PREFIX/after/"

echo "$PREFIX/before/bulk-before-$SUFFIX.csv"
echo "$PREFIX/parquet/bulk-parquet-$SUFFIX.parquet"
echo "$PREFIX/after/bulk-after-$SUFFIX.csv"
