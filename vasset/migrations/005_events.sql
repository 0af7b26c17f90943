-- Events: the outbox (one row per client-visible change, written in the change's transaction),
-- webhook endpoints per app, and one delivery row per (event, endpoint).

ALTER TABLE video ADD COLUMN event_seq INT NOT NULL DEFAULT 0 COMMENT 'the seq of its last event';
ALTER TABLE video ADD COLUMN progress_event_ms BIGINT NOT NULL DEFAULT 0 COMMENT 'when its last progress event was written';

CREATE TABLE IF NOT EXISTS event (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  app_id       BIGINT UNSIGNED NOT NULL,
  video_id     BIGINT UNSIGNED NOT NULL,
  seq          INT             NOT NULL COMMENT 'per video, grows with every event of it',
  type         VARCHAR(48)     NOT NULL,
  body         TEXT            NOT NULL COMMENT 'the JSON delivered: type, timestamp, data',
  create_time  BIGINT          NOT NULL COMMENT 'unix ms',
  PRIMARY KEY (id),
  KEY ix_event_app (app_id, id),
  KEY ix_event_video (video_id, id),
  KEY ix_event_time (create_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS webhook_endpoint (
  id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  app_id           BIGINT UNSIGNED NOT NULL,
  url              VARCHAR(2048)   NOT NULL,
  events           VARCHAR(1024)   NOT NULL COMMENT 'comma list of event types, or *',
  secret           VARCHAR(128)    NOT NULL COMMENT 'whsec_ + Base64',
  old_secret       VARCHAR(128)    NULL COMMENT 'the secret before a rotation, still signing',
  old_secret_until BIGINT          NULL COMMENT 'unix seconds the old secret signs until',
  enabled          TINYINT(1)      NOT NULL DEFAULT 1,
  disabled_reason  VARCHAR(255)    NULL,
  last_success_at  BIGINT          NULL,
  failing_since    BIGINT          NULL COMMENT 'first failed delivery since the last success',
  create_time      BIGINT          NOT NULL,
  deleted_at       BIGINT          NULL,
  PRIMARY KEY (id),
  KEY ix_endpoint_app (app_id, deleted_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS webhook_delivery (
  id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  endpoint_id      BIGINT UNSIGNED NOT NULL,
  event_id         BIGINT UNSIGNED NOT NULL,
  app_id           BIGINT UNSIGNED NOT NULL,
  status           VARCHAR(16)     NOT NULL COMMENT 'pending, succeeded, failed',
  attempts         INT             NOT NULL DEFAULT 0,
  next_attempt_at  BIGINT          NOT NULL COMMENT 'unix ms',
  last_status      INT             NULL COMMENT 'HTTP status of the last attempt',
  last_error       VARCHAR(255)    NULL,
  lease_owner      CHAR(32)        NULL,
  lease_until      BIGINT          NULL COMMENT 'unix ms',
  create_time      BIGINT          NOT NULL,
  update_time      BIGINT          NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_delivery (event_id, endpoint_id),
  KEY ix_delivery_due (status, next_attempt_at),
  KEY ix_delivery_endpoint (endpoint_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
