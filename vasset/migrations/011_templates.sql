-- Transcode templates: per-app named TranscodeOptions, and the options an upload's automatic
-- transcode was asked for (template= on init and on tickets).

CREATE TABLE IF NOT EXISTS transcode_template (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  app_id       BIGINT UNSIGNED NOT NULL,
  name         VARCHAR(64)     NOT NULL,
  options      TEXT            NOT NULL COMMENT 'JSON: TranscodeOptions (vasset/transcode/options.py)',
  create_time  BIGINT          NOT NULL,
  update_time  BIGINT          NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_template_name (app_id, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Written with the video of an upload that named a template; read when the upload completes.
CREATE TABLE IF NOT EXISTS video_transcode_options (
  video_id     BIGINT UNSIGNED NOT NULL,
  options      TEXT            NOT NULL COMMENT 'JSON: TranscodeOptions of the automatic transcode',
  create_time  BIGINT          NOT NULL,
  PRIMARY KEY (video_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

ALTER TABLE upload_ticket ADD COLUMN transcode_options TEXT NULL COMMENT 'JSON: TranscodeOptions of the uploads it creates (template=)';
