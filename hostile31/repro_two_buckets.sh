#!/bin/bash
# One catalog, two buckets (AWS_STORAGE_BUCKET_NAME switched between runs). A document mentions
# a soft-deleted file of bucket A. A scan run while the setting names bucket B looks only for B's
# deleted keys, yet counts as "every source scanned since the deletion"; the purge (any bucket
# setting) then deletes A's file.
set -u
T=${1:-tb$RANDOM}; W=${TMPDIR:-/tmp}/hostile31-$T; A=bucket-$T-a; B=bucket-$T-b
source "$(dirname "$0")/env.sh"
export MEDIA_PIPELINE_HOME=$W/home MEDIA_PIPELINE_SOURCES=$W/sources.yaml MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS=30
mkdir -p $W/site/page
cat > $W/sources.yaml <<YAML
version: 1
sources:
  - {name: site, type: files, root: $W/site, globs: ["**/*.html"], content_type_from: parent_dir, content_type: page}
YAML
echo '<p>We talked about blog/x.txt yesterday</p>' > $W/site/page/1.html
echo "<img src=\"s3://$A/blog/y.txt\"> <img src=\"s3://$B/blog/q.txt\">" > $W/site/page/2.html
python -c "
import boto3; c=boto3.client('s3', endpoint_url='$AWS_S3_ENDPOINT_URL', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')
c.create_bucket(Bucket='$A'); c.create_bucket(Bucket='$B')"
put $A blog/x.txt blog/y.txt; put $B blog/q.txt
ingest() { AWS_STORAGE_BUCKET_NAME=$1 $M run --select inventory_snapshot --select media_files --select fingerprints >/dev/null 2>&1; }
ingest $A; ingest $B
export AWS_STORAGE_BUCKET_NAME=$A
$M scan >/dev/null
X=$($M query "select media_id from media_files where key='blog/x.txt'" --format csv | tail -1)
$M delete $X --user ada
echo "control: a scan with bucket A set finds the mention:"
$M scan >/dev/null; $M query "select form, snippet from media_references where key='blog/x.txt'" --format csv
$M restore $X --user ada; $M scan >/dev/null; $M delete $X --user ada
echo "scan with bucket B set:"
AWS_STORAGE_BUCKET_NAME=$B $M scan >/dev/null
$M query "select form from media_references where key='blog/x.txt'" --format csv
sleep 31
AWS_STORAGE_BUCKET_NAME=$B $M purge --json | python -c "import json,sys; d=json.load(sys.stdin); print('purged', d.get('purged'), d.get('refused_reason'))"
echo "bucket A:"; ls3 $A
