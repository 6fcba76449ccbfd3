-- The FAQ tables es-faq syncs from (docs/sync.md). MySQL 5.7+/MariaDB 10.3+, InnoDB, utf8mb4.
-- A team with its own tables points the sync at them with the ES_FAQ_MYSQL_* column settings
-- instead; what matters is the contract spelled out in the comments below.

CREATE TABLE faq (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  question    VARCHAR(500)    NOT NULL,
  -- MEDIUMTEXT: rich answers (HTML, long procedures) outgrow TEXT's 64 KiB.
  answer      MEDIUMTEXT      NOT NULL,
  category    VARCHAR(100)    NOT NULL DEFAULT '',
  -- Disabled FAQs stay in the index with enabled=false; search filters them out.
  enabled     TINYINT(1)      NOT NULL DEFAULT 1,
  -- Soft delete: the sync sees the flag (and the bumped updated_at) and removes the document.
  -- A hard DELETE is invisible to the incremental sync; `es-faq sync check --repair` finds it.
  deleted     TINYINT(1)      NOT NULL DEFAULT 0,
  -- The incremental sync's watermark: every change to the FAQ, or to one of its similar
  -- questions (see the triggers below), must move it forward. Millisecond precision keeps
  -- ties rare; ties are broken by id.
  updated_at  DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY faq_updated (updated_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE faq_similar_question (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  faq_id      BIGINT UNSIGNED NOT NULL,
  question    VARCHAR(500)    NOT NULL,
  updated_at  DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  -- The sync reads a FAQ's similar questions in (faq_id, id) order.
  KEY similar_faq (faq_id, id),
  CONSTRAINT similar_faq_fk FOREIGN KEY (faq_id) REFERENCES faq (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The sync watches faq.updated_at only, so a change to a similar question must touch its FAQ.
-- These triggers do it inside the same transaction. Where triggers are not allowed (binary
-- logging without SUPER, managed services), the admin tool must run the same UPDATE itself.
CREATE TRIGGER faq_similar_question_ai AFTER INSERT ON faq_similar_question FOR EACH ROW
  UPDATE faq SET updated_at = CURRENT_TIMESTAMP(3) WHERE id = NEW.faq_id;

CREATE TRIGGER faq_similar_question_au AFTER UPDATE ON faq_similar_question FOR EACH ROW
  UPDATE faq SET updated_at = CURRENT_TIMESTAMP(3) WHERE id IN (OLD.faq_id, NEW.faq_id);

CREATE TRIGGER faq_similar_question_ad AFTER DELETE ON faq_similar_question FOR EACH ROW
  UPDATE faq SET updated_at = CURRENT_TIMESTAMP(3) WHERE id = OLD.faq_id;
