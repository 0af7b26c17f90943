-- Per-app image assets (watermarks): validated PNGs in object storage, referenced by id from
-- transcode options. A deleted asset keeps its row (deleted_at) so a job that names it later
-- fails with a clear AssetNotFound instead of a dangling key.

CREATE TABLE IF NOT EXISTS app_asset (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  app_id       BIGINT UNSIGNED NOT NULL,
  kind         VARCHAR(16)     NOT NULL COMMENT 'watermark',
  storage_key  VARCHAR(255)    NOT NULL COMMENT 'assets/{app_id}/{nonce}.png',
  width        INT             NOT NULL,
  height       INT             NOT NULL,
  size         BIGINT          NOT NULL,
  md5          CHAR(32)        NOT NULL,
  create_time  BIGINT          NOT NULL,
  deleted_at   BIGINT          NULL,
  PRIMARY KEY (id),
  KEY ix_app_asset_app (app_id, deleted_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
