"""The drop sensor: wait for ``<landing>/ds=<ds>/_SUCCESS`` before any step runs.

Local landing paths use the standard provider's FileSensor, ``s3://`` (and ``s3a://``)
landing URIs the amazon provider's S3KeySensor. Both run in ``reschedule`` mode, so a
waiting sensor holds no worker slot between pokes, and both time out with a message
that names the drop and the marker they waited for.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lakehouse.command import DS
from lakehouse.config import PipelineConfig

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

__all__ = ["POKE_INTERVAL", "SENSOR_TIMEOUT", "drop_sensor", "marker_uri"]

POKE_INTERVAL = timedelta(minutes=5)
SENSOR_TIMEOUT = timedelta(hours=24)


def marker_uri(config: PipelineConfig, ds: str = DS) -> str:
    """The ``_SUCCESS`` marker of one drop (``s3a://`` spelled ``s3://`` for boto)."""
    landing = config.landing
    if landing.startswith("s3a://"):
        landing = "s3://" + landing[len("s3a://"):]
    return f"{landing.rstrip('/')}/ds={ds}/_SUCCESS"


def _rendered_marker(sensor: Any) -> str:
    """The marker path after template rendering (FileSensor or S3KeySensor field)."""
    return str(getattr(sensor, "filepath", None) or getattr(sensor, "bucket_key", ""))


def _explain_timeout(sensor: Any, context: Context, parent: type[Any]) -> Any:
    from airflow.sdk.exceptions import AirflowSensorTimeout

    try:
        return parent.execute(sensor, context)
    except AirflowSensorTimeout as exc:
        raise AirflowSensorTimeout(
            f"drop ds={context['ds']} is not complete: no {_rendered_marker(sensor)} after "
            f"{timedelta(seconds=sensor.timeout)}; the landing zone never received it "
            f"(a drop without _SUCCESS is not read)"
        ) from exc


def drop_sensor(config: PipelineConfig, **kwargs: Any) -> BaseOperator:
    """Build the sensor task ``wait_for_drop``.

    :param config: resolved configuration (its landing URI picks the sensor type).
    :param kwargs: further operator arguments.
    :return: the sensor.
    """
    marker = marker_uri(config)
    common: dict[str, Any] = {
        "task_id": "wait_for_drop",
        "mode": "reschedule",
        "poke_interval": POKE_INTERVAL.total_seconds(),
        "timeout": SENSOR_TIMEOUT.total_seconds(),
        **kwargs,
    }
    if marker.startswith("s3://"):
        from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

        class DropKeySensor(S3KeySensor):  # type: ignore[misc]
            """S3KeySensor whose timeout names the missing drop."""

            def execute(self, context: Context) -> Any:
                return _explain_timeout(self, context, S3KeySensor)

        sensor: BaseOperator = DropKeySensor(bucket_key=marker, aws_conn_id="aws_default",
                                             **common)
    else:
        from airflow.providers.standard.sensors.filesystem import FileSensor

        class DropFileSensor(FileSensor):  # type: ignore[misc]
            """FileSensor whose timeout names the missing drop."""

            def execute(self, context: Context) -> Any:
                return _explain_timeout(self, context, FileSensor)

        sensor = DropFileSensor(filepath=marker, fs_conn_id="fs_default", **common)
    return sensor
