-- vasset schema v1: apps, videos (the specification's `video`), snapshots, uploads.
-- Times are Unix seconds (BIGINT); sizes are bytes; durations are milliseconds.

CREATE TABLE IF NOT EXISTS app (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name         VARCHAR(128)    NOT NULL,
  app_key      VARCHAR(64)     NOT NULL,
  app_secret   VARCHAR(128)    NOT NULL,
  enabled      TINYINT(1)      NOT NULL DEFAULT 1,
  create_time  BIGINT          NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_app_key (app_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS video (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  app_id         BIGINT UNSIGNED NOT NULL,
  parent_id      BIGINT UNSIGNED NULL COMMENT 'source video of a rendition',
  unique_id      BIGINT UNSIGNED NULL COMMENT 'video whose stored bytes this row shares (instant upload)',
  source_name    VARCHAR(255)    NOT NULL DEFAULT '',
  create_time    BIGINT          NOT NULL,
  update_time    BIGINT          NOT NULL,
  file_size      BIGINT          NOT NULL DEFAULT 0,
  video_width    INT             NULL,
  video_height   INT             NULL,
  duration       BIGINT          NULL,
  hash           CHAR(32)        NULL COMMENT 'MD5 hex, set only once verified by the server',
  definition     VARCHAR(32)     NULL,
  storage_uri    VARCHAR(512)    NULL COMMENT 'BlobStore key, never user text',
  status         VARCHAR(32)     NOT NULL,
  image_index    INT             NOT NULL DEFAULT 0,
  image_count    INT             NOT NULL DEFAULT 0,
  task_priority  INT             NOT NULL DEFAULT 0,
  progress       TINYINT UNSIGNED NOT NULL DEFAULT 0,
  error          VARCHAR(1024)   NULL,
  media_info     TEXT            NULL COMMENT 'JSON: codecs, bitrate, frame rate, rotation, format',
  format         VARCHAR(16)     NULL COMMENT 'rendition container: mp4 or hls',
  deleted_at     BIGINT          NULL,
  PRIMARY KEY (id),
  KEY ix_video_instant (app_id, hash, file_size),
  KEY ix_video_parent (parent_id),
  KEY ix_video_storage (storage_uri(191))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS video_snapshot (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  video_id     BIGINT UNSIGNED NOT NULL,
  image_index  INT             NOT NULL,
  time_ms      BIGINT          NOT NULL DEFAULT 0,
  width        INT             NULL,
  height       INT             NULL,
  storage_uri  VARCHAR(512)    NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_snapshot (video_id, image_index)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS upload (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  upload_id       CHAR(32)        NOT NULL COMMENT 'the opaque upid',
  token_hash      CHAR(64)        NOT NULL COMMENT 'SHA-256 of the upload token',
  app_id          BIGINT UNSIGNED NOT NULL,
  video_id        BIGINT UNSIGNED NOT NULL,
  file_size       BIGINT          NOT NULL,
  part_size       BIGINT          NOT NULL,
  part_count      INT             NOT NULL,
  client_md5      CHAR(32)        NULL,
  storage_key     VARCHAR(512)    NOT NULL,
  multipart_id    VARCHAR(255)    NOT NULL,
  direct          TINYINT(1)      NOT NULL DEFAULT 0,
  status          VARCHAR(16)     NOT NULL COMMENT 'uploading, completing, uploaded, failed, expired, aborted',
  md5_state       VARBINARY(255)  NULL COMMENT 'saved MD5 context over parts 1..md5_parts',
  md5_parts       INT             NOT NULL DEFAULT 0,
  auto_transcode  TINYINT(1)      NOT NULL DEFAULT 0,
  task_priority   INT             NOT NULL DEFAULT 0,
  error           VARCHAR(255)    NULL,
  create_time     BIGINT          NOT NULL,
  update_time     BIGINT          NOT NULL,
  expires_at      BIGINT          NOT NULL,
  completing_at   BIGINT          NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_upload_id (upload_id),
  KEY ix_upload_expiry (status, expires_at),
  KEY ix_upload_video (video_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS upload_part (
  upload_pk    BIGINT UNSIGNED NOT NULL,
  pseq         INT             NOT NULL,
  size         BIGINT          NOT NULL,
  md5          CHAR(32)        NOT NULL,
  create_time  BIGINT          NOT NULL,
  PRIMARY KEY (upload_pk, pseq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS server_secret (
  name        VARCHAR(64)  NOT NULL,
  secret      VARCHAR(128) NOT NULL,
  create_time BIGINT       NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
