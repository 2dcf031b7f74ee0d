# Shared by the repro scripts: the CLI of this tree against an embedded S3 server started with
#   media-pipeline s3-server --port 9331 &
# (MEDIA_PIPELINE_HOME, the bucket and the metadata database are set by each script).
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$HERE/.venv/bin:$PATH
export PYTHONPATH=$HERE
export AWS_S3_ENDPOINT_URL=http://127.0.0.1:9331 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export MEDIA_PIPELINE_ADMINS=ada MEDIA_PIPELINE_PURGE_MAX_SHARE=1 MEDIA_PIPELINE_RETENTION_DAYS=0
M=media-pipeline
put() { python - "$@" <<'PY'
import sys, boto3, os
c = boto3.client("s3", endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"], aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
b = sys.argv[1]
try: c.create_bucket(Bucket=b)
except Exception: pass
for k in sys.argv[2:]:
    c.put_object(Bucket=b, Key=k, Body=("content of "+k+"\n").encode(), ContentType="text/plain")
PY
}
rmobj() { python - "$@" <<'PY'
import sys, boto3, os
c = boto3.client("s3", endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"], aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
for k in sys.argv[2:]: c.delete_object(Bucket=sys.argv[1], Key=k)
PY
}
ls3() { python - "$@" <<'PY'
import sys, boto3, os
c = boto3.client("s3", endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"], aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
print(sorted(o["Key"] for o in c.list_objects_v2(Bucket=sys.argv[1]).get("Contents", [])))
PY
}
