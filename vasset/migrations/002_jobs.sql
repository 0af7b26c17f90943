-- Transcode jobs: a priority queue in MySQL, claimed with SELECT ... FOR UPDATE SKIP LOCKED.

CREATE TABLE IF NOT EXISTS transcode_job (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  app_id        BIGINT UNSIGNED NOT NULL,
  video_id      BIGINT UNSIGNED NOT NULL,
  kind          VARCHAR(16)     NOT NULL COMMENT 'transcode, retranscode, import',
  priority      INT             NOT NULL DEFAULT 0,
  state         VARCHAR(16)     NOT NULL COMMENT 'queued, running, succeeded, failed, cancelled',
  attempts      INT             NOT NULL DEFAULT 0,
  max_attempts  INT             NOT NULL DEFAULT 4,
  run_after     DOUBLE          NOT NULL DEFAULT 0,
  lease_until   DOUBLE          NULL,
  lease_token   BIGINT UNSIGNED NOT NULL DEFAULT 0,
  worker        VARCHAR(128)    NULL,
  params        TEXT            NULL COMMENT 'JSON: definitions, src, dst',
  error         VARCHAR(1024)   NULL,
  progress      TINYINT UNSIGNED NOT NULL DEFAULT 0,
  create_time   DOUBLE          NOT NULL,
  update_time   DOUBLE          NOT NULL,
  started_at    DOUBLE          NULL,
  finished_at   DOUBLE          NULL,
  PRIMARY KEY (id),
  KEY ix_job_claim (state, priority, id),
  KEY ix_job_video (video_id),
  KEY ix_job_lease (state, lease_until)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
