#!/usr/bin/env bash
# The Amazon Personalize event-tracking setup, end to end, with aws-cli against interlog.
#
#   1. a schema for an Interactions dataset with two metadata fields of our own:
#      DEVICE (a categorical string) and NUMBER_OF_RATINGS (a number)
#   2. a dataset group, the Interactions dataset in it, and an event tracker
#   3. events with properties through `aws personalize-events put-events`
#      (once in JSON syntax, once in aws-cli's shorthand syntax)
#   4. a dataset export job that writes the dataset as CSV into a local directory, polled with
#      `describe-dataset-export-job` until it is ACTIVE (or CREATE FAILED)
#   5. an Items and a Users dataset in the same group, each with metadata fields of our own
#      (GENRES, PRICE; MEMBERSHIP, AGE), filled with `put-items` and `put-users` (an item put
#      again replaces the earlier one), and an export job of each
#
# The same commands work against Amazon Personalize itself. This script exports to a directory on
# the machine interlog runs on (file:///absolute/dir/); interlog writes s3://bucket/prefix/
# destinations too, to AWS's S3 or the S3-compatible server INTERLOG_S3_ENDPOINT_URL names.
#
# Usage:
#   interlog serve --export-dir ./interlog-export   # in another terminal; note the `aws configure` lines
#   AWS_PROFILE=interlog examples/awscli-walkthrough.sh
#
# Environment (all optional):
#   AWS_CLI            the aws-cli v1 executable                      (default: aws)
#   INTERLOG_ENDPOINT  where interlog listens                          (default: http://127.0.0.1:8787)
#   OUT_DIR            directory the export job writes into; it must lie
#                      in your account's folder of the server's
#                      --export-dir, DIR/<account-id>/ (see docs/auth.md)
#                                          (default: ./interlog-export/000000000000/walkthrough)
#   SUFFIX             appended to every resource name, so the script
#                      can run again against the same server           (default: date and process ID)
#   TIMEOUT            seconds to wait for each resource to be ACTIVE (default: 60)
#
# Credentials and region come from aws-cli's usual places (AWS_PROFILE, AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY, ~/.aws); the region defaults to us-east-1 here if none is configured.
#
# The last three lines printed are the paths of the exported CSV files: interactions, items, users.

set -euo pipefail

AWS_CLI="${AWS_CLI:-aws}"
ENDPOINT="${INTERLOG_ENDPOINT:-http://127.0.0.1:8787}"
SUFFIX="${SUFFIX:-$(date +%Y%m%d%H%M%S)-$$}"
TIMEOUT="${TIMEOUT:-60}"
OUT_DIR="${OUT_DIR:-$PWD/interlog-export/000000000000/walkthrough}"
if [[ -z "${AWS_REGION:-}" && -z "${AWS_DEFAULT_REGION:-}" ]]; then
    export AWS_DEFAULT_REGION=us-east-1
fi

# The export destination must be absolute: file:///abs/dir/.
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"

# Every call goes to interlog; `--output text --query ...` picks single values out of the answers.
personalize() { "$AWS_CLI" personalize --endpoint-url "$ENDPOINT" "$@"; }
personalize_events() { "$AWS_CLI" personalize-events --endpoint-url "$ENDPOINT" "$@"; }
say() { printf '==> %s\n' "$*" >&2; }

# wait_for_status WHAT DESCRIBE-COMMAND... : polls `--query <...>.status` until ACTIVE.
# interlog makes schemas, groups, datasets and trackers ACTIVE at once; AWS takes a while, so a
# script that works against both waits.
wait_for_status() {
    local what="$1"; shift
    local deadline=$((SECONDS + TIMEOUT)) status
    while :; do
        status="$(personalize "$@" --output text)"
        case "$status" in
            ACTIVE) say "$what is ACTIVE"; return 0 ;;
            "CREATE FAILED") say "$what: CREATE FAILED"; return 1 ;;
        esac
        if ((SECONDS >= deadline)); then
            say "$what is still $status after ${TIMEOUT}s"
            return 1
        fi
        sleep 1
    done
}

SCHEMA_NAME="walkthrough-schema-$SUFFIX"
GROUP_NAME="walkthrough-group-$SUFFIX"
DATASET_NAME="walkthrough-interactions-$SUFFIX"
TRACKER_NAME="walkthrough-tracker-$SUFFIX"
JOB_NAME="walkthrough-export-$SUFFIX"

# --- 1. The schema ---------------------------------------------------------------------------
# USER_ID, ITEM_ID and TIMESTAMP are required in an Interactions schema; EVENT_TYPE, EVENT_VALUE
# and IMPRESSION are reserved fields filled from the event's own members. DEVICE and
# NUMBER_OF_RATINGS are metadata: events set them through `properties`, whose keys are the field
# names in camelCase (`device`, `numberOfRatings`; `NUMBER_OF_RATINGS` is accepted too).
# DEVICE may be missing (a union with "null"); NUMBER_OF_RATINGS must be present in every event.
SCHEMA_FILE="$(mktemp)"
ITEMS_SCHEMA_FILE="$(mktemp)"
USERS_SCHEMA_FILE="$(mktemp)"
trap 'rm -f "$SCHEMA_FILE" "$ITEMS_SCHEMA_FILE" "$USERS_SCHEMA_FILE"' EXIT
cat >"$SCHEMA_FILE" <<'EOF'
{
  "type": "record",
  "name": "Interactions",
  "namespace": "com.amazonaws.personalize.schema",
  "fields": [
    {"name": "USER_ID", "type": "string"},
    {"name": "ITEM_ID", "type": "string"},
    {"name": "TIMESTAMP", "type": "long"},
    {"name": "EVENT_TYPE", "type": "string"},
    {"name": "EVENT_VALUE", "type": ["null", "float"]},
    {"name": "IMPRESSION", "type": ["null", "string"]},
    {"name": "DEVICE", "type": ["null", "string"], "categorical": true},
    {"name": "NUMBER_OF_RATINGS", "type": "int"}
  ],
  "version": "1.0"
}
EOF
say "creating schema $SCHEMA_NAME"
# aws-cli reads a parameter that starts with file:// from that file.
SCHEMA_ARN="$(personalize create-schema --name "$SCHEMA_NAME" --schema "file://$SCHEMA_FILE" \
    --query schemaArn --output text)"
echo "schema:         $SCHEMA_ARN" >&2

# --- 2. Dataset group, Interactions dataset, event tracker ----------------------------------
say "creating dataset group $GROUP_NAME"
GROUP_ARN="$(personalize create-dataset-group --name "$GROUP_NAME" --query datasetGroupArn --output text)"
wait_for_status "dataset group" describe-dataset-group --dataset-group-arn "$GROUP_ARN" \
    --query datasetGroup.status
echo "dataset group:  $GROUP_ARN" >&2

say "creating the Interactions dataset $DATASET_NAME"
DATASET_ARN="$(personalize create-dataset --name "$DATASET_NAME" --schema-arn "$SCHEMA_ARN" \
    --dataset-group-arn "$GROUP_ARN" --dataset-type Interactions --query datasetArn --output text)"
wait_for_status "dataset" describe-dataset --dataset-arn "$DATASET_ARN" --query dataset.status
echo "dataset:        $DATASET_ARN" >&2

say "creating event tracker $TRACKER_NAME"
# PutEvents names the tracker by its tracking ID, not its ARN: keep both (text output separates
# the two values with a tab).
TRACKER="$(personalize create-event-tracker --name "$TRACKER_NAME" --dataset-group-arn "$GROUP_ARN" \
    --query '[eventTrackerArn, trackingId]' --output text)"
read -r TRACKER_ARN TRACKING_ID <<<"$TRACKER"
wait_for_status "event tracker" describe-event-tracker --event-tracker-arn "$TRACKER_ARN" \
    --query eventTracker.status
echo "event tracker:  $TRACKER_ARN (tracking ID $TRACKING_ID)" >&2

# --- 3. Events ---------------------------------------------------------------------------------
# `properties` is a string that holds a JSON object. sentAt is epoch seconds (aws-cli v1 sends
# whole seconds); the dataset's TIMESTAMP is sentAt rounded down. The times are fixed, so every
# run exports the same rows.
say "recording two events (JSON syntax)"
personalize_events put-events --tracking-id "$TRACKING_ID" --user-id user-1 --session-id session-1 \
    --event-list '[
      {"eventId": "event-1", "eventType": "click", "itemId": "item-1", "sentAt": 1700000000,
       "eventValue": 4.5,
       "properties": "{\"device\": \"phone\", \"numberOfRatings\": 12}"},
      {"eventId": "event-2", "eventType": "view", "itemId": "item-2", "sentAt": 1700000060,
       "impression": ["item-2", "item-3", "item-4"],
       "properties": "{\"device\": \"phone|tablet\", \"numberOfRatings\": \"3\"}"}
    ]'

# Shorthand syntax: quote the properties value so its commas and braces stay one string.
# This event has no device (an empty cell in the export) and spells the key NUMBER_OF_RATINGS.
say "recording one more event (shorthand syntax)"
personalize_events put-events --tracking-id "$TRACKING_ID" --user-id user-1 --session-id session-1 \
    --event-list "eventId=event-3,eventType=purchase,itemId=item-3,sentAt=1700000120,properties='{\"NUMBER_OF_RATINGS\": 7}'"

# export_dataset WHAT DATASET-ARN JOB-NAME: an export job of the dataset into OUT_DIR, waited for.
# interlog ignores roleArn apart from checking its form, and writes <OUT_DIR>/<job name>.csv.
export_dataset() {
    local what="$1" dataset_arn="$2" job_name="$3" job_arn
    say "exporting the $what dataset to file://$OUT_DIR/"
    job_arn="$(personalize create-dataset-export-job --job-name "$job_name" --dataset-arn "$dataset_arn" \
        --ingestion-mode PUT --role-arn arn:aws:iam::000000000000:role/interlog-export \
        --job-output "s3DataDestination={path=file://$OUT_DIR/}" --query datasetExportJobArn --output text)"
    echo "export job:     $job_arn" >&2
    if ! wait_for_status "export job" describe-dataset-export-job --dataset-export-job-arn "$job_arn" \
        --query datasetExportJob.status; then
        personalize describe-dataset-export-job --dataset-export-job-arn "$job_arn" \
            --query datasetExportJob.failureReason --output text >&2
        exit 1
    fi
}

# --- 4. Export --------------------------------------------------------------------------------
export_dataset interactions "$DATASET_ARN" "$JOB_NAME"

# --- 5. Items and users -----------------------------------------------------------------------
# An Items schema needs ITEM_ID, a Users schema USER_ID; every other field is metadata, set
# through `properties` in camelCase as for events. GENRES and MEMBERSHIP are categorical (several
# values joined with |); PRICE must be present in every item, AGE may be missing.
cat >"$ITEMS_SCHEMA_FILE" <<'EOF'
{
  "type": "record",
  "name": "Items",
  "namespace": "com.amazonaws.personalize.schema",
  "fields": [
    {"name": "ITEM_ID", "type": "string"},
    {"name": "GENRES", "type": ["null", "string"], "categorical": true},
    {"name": "PRICE", "type": "float"}
  ],
  "version": "1.0"
}
EOF
cat >"$USERS_SCHEMA_FILE" <<'EOF'
{
  "type": "record",
  "name": "Users",
  "namespace": "com.amazonaws.personalize.schema",
  "fields": [
    {"name": "USER_ID", "type": "string"},
    {"name": "MEMBERSHIP", "type": ["null", "string"], "categorical": true},
    {"name": "AGE", "type": ["null", "int"]}
  ],
  "version": "1.0"
}
EOF
ITEMS_SCHEMA_NAME="walkthrough-items-schema-$SUFFIX"
USERS_SCHEMA_NAME="walkthrough-users-schema-$SUFFIX"
ITEMS_DATASET_NAME="walkthrough-items-$SUFFIX"
USERS_DATASET_NAME="walkthrough-users-$SUFFIX"
ITEMS_JOB_NAME="walkthrough-items-export-$SUFFIX"
USERS_JOB_NAME="walkthrough-users-export-$SUFFIX"

say "creating schemas $ITEMS_SCHEMA_NAME and $USERS_SCHEMA_NAME"
ITEMS_SCHEMA_ARN="$(personalize create-schema --name "$ITEMS_SCHEMA_NAME" --schema "file://$ITEMS_SCHEMA_FILE" \
    --query schemaArn --output text)"
USERS_SCHEMA_ARN="$(personalize create-schema --name "$USERS_SCHEMA_NAME" --schema "file://$USERS_SCHEMA_FILE" \
    --query schemaArn --output text)"

say "creating the Items dataset $ITEMS_DATASET_NAME and the Users dataset $USERS_DATASET_NAME"
ITEMS_DATASET_ARN="$(personalize create-dataset --name "$ITEMS_DATASET_NAME" --schema-arn "$ITEMS_SCHEMA_ARN" \
    --dataset-group-arn "$GROUP_ARN" --dataset-type Items --query datasetArn --output text)"
wait_for_status "Items dataset" describe-dataset --dataset-arn "$ITEMS_DATASET_ARN" --query dataset.status
USERS_DATASET_ARN="$(personalize create-dataset --name "$USERS_DATASET_NAME" --schema-arn "$USERS_SCHEMA_ARN" \
    --dataset-group-arn "$GROUP_ARN" --dataset-type Users --query datasetArn --output text)"
wait_for_status "Users dataset" describe-dataset --dataset-arn "$USERS_DATASET_ARN" --query dataset.status
echo "items dataset:  $ITEMS_DATASET_ARN" >&2
echo "users dataset:  $USERS_DATASET_ARN" >&2

# PutItems and PutUsers name the dataset by its ARN (there is no tracker).
say "recording three items (JSON syntax)"
personalize_events put-items --dataset-arn "$ITEMS_DATASET_ARN" --items '[
      {"itemId": "item-1", "properties": "{\"genres\": \"Horror|Action\", \"price\": 9.99}"},
      {"itemId": "item-2", "properties": "{\"genres\": \"Comedy\", \"price\": \"4.5\"}"},
      {"itemId": "item-3", "properties": "{\"price\": 12}"}
    ]'
# An item put again replaces the earlier one, whole: item-2 has no genres from now on.
say "replacing item-2 (shorthand syntax)"
personalize_events put-items --dataset-arn "$ITEMS_DATASET_ARN" \
    --items "itemId=item-2,properties='{\"price\": 3.75}'"

say "recording two users"
personalize_events put-users --dataset-arn "$USERS_DATASET_ARN" --users '[
      {"userId": "user-1", "properties": "{\"membership\": \"Member|Frequent shopper\", \"age\": 45}"},
      {"userId": "user-2", "properties": "{\"membership\": \"Guest\"}"}
    ]'

export_dataset items "$ITEMS_DATASET_ARN" "$ITEMS_JOB_NAME"
export_dataset users "$USERS_DATASET_ARN" "$USERS_JOB_NAME"

# A server allows 5 dataset groups per account (the default one included), so say how to remove
# what the walkthrough made.
cat >&2 <<CLEANUP
To clean up:
  $AWS_CLI personalize delete-event-tracker --endpoint-url $ENDPOINT --event-tracker-arn $TRACKER_ARN
  $AWS_CLI personalize delete-dataset --endpoint-url $ENDPOINT --dataset-arn $DATASET_ARN
  $AWS_CLI personalize delete-dataset --endpoint-url $ENDPOINT --dataset-arn $ITEMS_DATASET_ARN
  $AWS_CLI personalize delete-dataset --endpoint-url $ENDPOINT --dataset-arn $USERS_DATASET_ARN
  $AWS_CLI personalize delete-dataset-group --endpoint-url $ENDPOINT --dataset-group-arn $GROUP_ARN
  $AWS_CLI personalize delete-schema --endpoint-url $ENDPOINT --schema-arn $SCHEMA_ARN
  $AWS_CLI personalize delete-schema --endpoint-url $ENDPOINT --schema-arn $ITEMS_SCHEMA_ARN
  $AWS_CLI personalize delete-schema --endpoint-url $ENDPOINT --schema-arn $USERS_SCHEMA_ARN
CLEANUP
say "exports written"
echo "$OUT_DIR/$JOB_NAME.csv"
echo "$OUT_DIR/$ITEMS_JOB_NAME.csv"
echo "$OUT_DIR/$USERS_JOB_NAME.csv"
