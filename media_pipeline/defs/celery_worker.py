"""The Celery app `media-pipeline worker` runs: dagster-celery's tasks, listening on the broker
and result backend of this process's settings (``MEDIA_PIPELINE_CELERY_BROKER``, ``_BACKEND``),
where runs with ``MEDIA_PIPELINE_EXECUTOR=celery`` send their steps."""

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

from media_pipeline.definitions import celery_config
from media_pipeline.settings import Settings

app = make_app(CeleryExecutor.for_cli(**celery_config(Settings.from_env())).app_args())
execute_plan = create_task(app)
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)
