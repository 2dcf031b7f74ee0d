#!/bin/bash
# A delete whose commit is delayed (another writer holds the metadata's snapshot table) gets
# deleted_at = before the commit. A scan that starts in between counts as "started after the
# deletion" but loaded its mention keys before the delete committed: it never looks for the file.
# After the minimum age the purge deletes a file a document still mentions.
set -u
T=${1:-r$RANDOM}; B=bucket-$T; DB=h31_$T; W=${TMPDIR:-/tmp}/hostile31-$T
mkdir -p $W/site/page
source "$(dirname "$0")/env.sh"
export MEDIA_PIPELINE_HOME=$W/home AWS_STORAGE_BUCKET_NAME=$B MEDIA_PIPELINE_SOURCES=$W/sources.yaml
export MEDIA_PIPELINE_CATALOG_METADATA=postgresql://postgres@127.0.0.1/$DB
psql -h 127.0.0.1 -U postgres -qc "create database $DB"
cat > $W/sources.yaml <<YAML
version: 1
sources:
  - {name: site, type: files, root: $W/site, globs: ["**/*.html"], content_type_from: parent_dir, content_type: page}
YAML
echo '<p>We talked about blog/x.txt yesterday</p>' > $W/site/page/1.html
echo "<img src=\"s3://$B/blog/y.txt\">" > $W/site/page/2.html
python -c "import boto3; boto3.client('s3', endpoint_url='$AWS_S3_ENDPOINT_URL', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1').create_bucket(Bucket='$B')"
put $B blog/x.txt blog/y.txt blog/z.txt
$M run --select inventory_snapshot --select media_files --select fingerprints >/dev/null 2>&1
$M scan >/dev/null
X=$($M query "select media_id from media_files where key='blog/x.txt'" --format csv | tail -1)
# another writer's long commit: the snapshot table locked for 15 s
psql -h 127.0.0.1 -U postgres $DB -qc "BEGIN" -c "LOCK TABLE ducklake_snapshot IN EXCLUSIVE MODE" -c "select pg_sleep(15)" -c "COMMIT" >/dev/null &
sleep 0.5
$M delete $X --user ada &       # body runs now (deleted_at), commit waits for the lock
sleep 5
$M scan >/dev/null &            # starts after deleted_at, loads mention keys before the commit
wait
$M query "select key, status, deleted_at from media_files where key='blog/x.txt'" --format csv
$M query "select started, state from source_scans order by started" --format csv
echo "references of x (expect none: the scan did not look for it):"
$M query "select form, snippet from media_references where key='blog/x.txt'" --format csv
sleep 62
$M purge --json | python -c "import json,sys; d=json.load(sys.stdin); print('purged', d.get('purged'), d.get('refused_reason'))"
echo "objects left:"; ls3 $B
echo "the document still says:"; cat $W/site/page/1.html
