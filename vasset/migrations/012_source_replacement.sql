-- Replace the source, keep the vid (init ... &replace=VID): one replacement per video at a time.
-- The new source uploads beside the old one (upload.video_id is the kept vid); the video row and
-- its renditions change only when the transcode of the new source publishes (one transaction).

CREATE TABLE IF NOT EXISTS source_replacement (
  video_id     BIGINT UNSIGNED NOT NULL,
  app_id       BIGINT UNSIGNED NOT NULL,
  upload_pk    BIGINT UNSIGNED NOT NULL COMMENT 'upload.id of the new source',
  storage_key  VARCHAR(512)    NOT NULL COMMENT 'BlobStore key of the new source',
  state        VARCHAR(16)     NOT NULL COMMENT 'uploading, ready, abandoned',
  file_size    BIGINT          NOT NULL DEFAULT 0,
  hash         CHAR(32)        NULL,
  create_time  BIGINT          NOT NULL,
  update_time  BIGINT          NOT NULL,
  PRIMARY KEY (video_id),
  UNIQUE KEY uk_replacement_upload (upload_pk)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
