-- Captions: one WebVTT file per (video, language). The rows belong to the top-level video
-- (its app through video.app_id), survive retranscodes, and are removed with the video.

CREATE TABLE IF NOT EXISTS video_caption (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  video_id     BIGINT UNSIGNED NOT NULL,
  lang         VARCHAR(35)     NOT NULL COMMENT 'BCP-47 tag as given (validated)',
  label        VARCHAR(128)    NOT NULL,
  storage_uri  VARCHAR(512)    NOT NULL COMMENT 'BlobStore key of the WebVTT file, never user text',
  size         INT             NOT NULL,
  cue_count    INT             NOT NULL,
  create_time  BIGINT          NOT NULL,
  update_time  BIGINT          NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_caption (video_id, lang)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
