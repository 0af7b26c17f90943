-- Tracing: the W3C traceparent of the request that enqueued a job, so the worker's spans join
-- that request's trace. NULL when tracing is off (VASSET_OTEL_ENDPOINT empty).

ALTER TABLE transcode_job ADD COLUMN trace_context VARCHAR(255) NULL COMMENT 'W3C traceparent of the enqueuing request';
