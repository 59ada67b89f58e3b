-- Volunteers' answers to offers (accept or decline), many in one transaction (group commit).
--
-- An app instance collects the answers that arrive while its previous batch commits and stores
-- them with one call of answer_offers() (dispatch/storage/answer_batch.py): one commit, one WAL
-- flush and one coordinator notification (the statement-level assignment_events trigger fires
-- once for the batch's one UPDATE) for the whole batch, instead of one of each per answer.
-- Each item is what answer_offer() (0011) took for one answer, as the same position in every
-- array; every item keeps its own guarantees:
--
--   * all or nothing per item: its move, its Idempotency-Key with the finished response, its
--     audit row and, for a decline, its pair rule are written together or not at all;
--   * the move is of exactly the version the item's request read (xmin); for several items on
--     one offer only the first (by position) that read the current version can win;
--   * a key that is already stored (a concurrent retry, or the key reused for another request),
--     or used by an earlier item of the same batch, takes nothing of the item.
--
-- Result: one outcome an item, in input order (nothing is written for 'stale' and 'taken'):
--   stale      the row changed since it was read: the caller reads again
--   taken      the Idempotency-Key was taken meanwhile: the caller reads again and replays
--   done       accepted
--   replanned  declined; the engine's row asks for a re-plan and the engine was woken
--   held       declined; a pending re-plan already covered the batch's request and is held
--              until the commit (engine.request_replan, hold_replan)
-- Locks are taken in one order in every batch: the offers by id, the keys by (token, key), the
-- pair rules by (person, incident), the engine's row last (as every re-plan request does).

-- The one-answer function of 0011 has no caller any more: every answer goes through a batch.
DROP FUNCTION answer_offer(text, xid, text, timestamptz, text, text, text, jsonb, jsonb, text,
                           uuid, text, text, text, text, bytea, text, timestamptz);

CREATE FUNCTION answer_offers(
    p_ids           text[],
    p_xmins         xid[],
    p_statuses      text[],
    p_ats           timestamptz[],
    p_reasons       text[],
    p_actors        text[],
    p_actor_roles   text[],
    p_befores       text[],
    p_request_ids   text[],
    p_tokens        uuid[],
    p_keys          text[],
    p_methods       text[],
    p_paths         text[],
    p_digests       text[],
    p_bodies        bytea[],
    p_content_types text[],
    p_replan_dues   timestamptz[]
) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_out      text[] := array_fill('stale'::text, ARRAY[cardinality(p_ids)]);
    v_cand     bigint[];
    v_ok       bigint[];
    v_declined bigint[];
    v_due      timestamptz;
    v_why      text[];
    v_word     text;
    n          bigint;
BEGIN
    IF EXISTS (SELECT FROM unnest(p_statuses) AS s WHERE s NOT IN ('accepted', 'declined')) THEN
        RAISE EXCEPTION 'answer_offers: only accepted and declined are answers'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Lock the offers in id order (the row locked is the latest version, whose xmin is then
    -- read) and keep, per offer, the first item that read that version: the candidates.
    SELECT array_agg(c.n) INTO v_cand
    FROM (
        SELECT DISTINCT ON (u.id) u.n
        FROM unnest(p_ids, p_xmins) WITH ORDINALITY AS u (id, xmin, n)
        JOIN (SELECT a.id, a.xmin FROM assignments AS a WHERE a.id = ANY (p_ids)
              ORDER BY a.id FOR UPDATE) AS a
          ON a.id = u.id AND a.xmin = u.xmin
        ORDER BY u.id, u.n
    ) AS c;
    IF v_cand IS NULL THEN
        RETURN v_out;
    END IF;

    -- Their keys, with the finished responses; the first item of the batch to use a key gets
    -- it, and only if no other request stored it already.
    WITH keyed AS (
        SELECT DISTINCT ON (u.token, u.key) u.*
        FROM unnest(p_tokens, p_keys, p_methods, p_paths, p_digests, p_bodies, p_content_types)
             WITH ORDINALITY AS u (token, key, method, path, digest, body, content_type, n)
        WHERE u.n = ANY (v_cand) AND u.key IS NOT NULL
        ORDER BY u.token, u.key, u.n
    ), stored AS (
        INSERT INTO idempotency_keys (token_id, key, method, path, request_hash, status_code,
                                      response_body, content_type)
        SELECT token, key, method, path, digest, 200, body, content_type
        FROM keyed ORDER BY token, key
        ON CONFLICT (token_id, key) DO NOTHING
        RETURNING token_id, key
    )
    SELECT array_agg(u.n) INTO v_ok
    FROM unnest(p_tokens, p_keys) WITH ORDINALITY AS u (token, key, n)
    WHERE u.n = ANY (v_cand)
      AND (u.key IS NULL
           OR EXISTS (SELECT FROM keyed AS k JOIN stored AS s
                             ON s.token_id = k.token AND s.key = k.key
                      WHERE k.n = u.n));
    SELECT array_agg(c) INTO v_out
    FROM (
        SELECT CASE WHEN u.n = ANY (v_ok) THEN CASE WHEN u.status = 'accepted' THEN 'done'
                                                    ELSE 'declined' END
                    WHEN u.n = ANY (v_cand) THEN 'taken'
                    ELSE 'stale' END AS c
        FROM unnest(p_statuses) WITH ORDINALITY AS u (status, n)
        ORDER BY u.n
    ) AS o;
    IF v_ok IS NULL THEN
        RETURN v_out;
    END IF;

    -- The moves, in one statement: the coordinators' stream gets one notification.
    UPDATE assignments AS a
    SET status = u.status,
        accepted_at = CASE WHEN u.status = 'accepted' THEN u.at ELSE a.accepted_at END,
        locked = a.locked OR u.status = 'accepted',
        declined_at = CASE WHEN u.status = 'declined' THEN u.at ELSE a.declined_at END,
        decline_reason = CASE WHEN u.status = 'declined' THEN u.reason
                              ELSE a.decline_reason END,
        version = a.version + 1
    FROM unnest(p_ids, p_statuses, p_ats, p_reasons) WITH ORDINALITY AS u (id, status, at, reason, n)
    WHERE u.n = ANY (v_ok) AND a.id = u.id;

    -- One audit row an answer, in the batch's order; the response body is the entry's after.
    INSERT INTO audit_log (actor, actor_role, action, object_type, object_id, before, after,
                           request_id)
    SELECT u.actor, u.role, u.status, 'assignment', u.id, u.before::jsonb,
           convert_from(u.body, 'UTF8')::jsonb, u.request_id
    FROM unnest(p_actors, p_actor_roles, p_statuses, p_ids, p_befores, p_bodies, p_request_ids)
         WITH ORDINALITY AS u (actor, role, status, id, before, body, request_id, n)
    WHERE u.n = ANY (v_ok)
    ORDER BY u.n;

    SELECT array_agg(u.n ORDER BY u.n) INTO v_declined
    FROM unnest(p_statuses) WITH ORDINALITY AS u (status, n)
    WHERE u.n = ANY (v_ok) AND u.status = 'declined';
    IF v_declined IS NULL THEN
        RETURN v_out;
    END IF;

    -- Never offer these incidents to these people again (assignments.upsert_rule).
    INSERT INTO pair_rules (person_id, incident_id, rule, skill, created_at, created_by)
    SELECT DISTINCT ON (a.person_id, a.incident_id)
           a.person_id, a.incident_id, 'declined', NULL, u.at, u.actor
    FROM unnest(p_ids, p_ats, p_actors) WITH ORDINALITY AS u (id, at, actor, n)
    JOIN assignments AS a ON a.id = u.id
    WHERE u.n = ANY (v_declined)
    ORDER BY a.person_id, a.incident_id, u.n DESC
    ON CONFLICT (person_id, incident_id)
    DO UPDATE SET rule = EXCLUDED.rule, skill = EXCLUDED.skill,
                  created_at = EXCLUDED.created_at, created_by = EXCLUDED.created_by;

    -- One re-plan request for the batch's declines (engine.request_replan; keep in step), the
    -- engine's row locked last: due at the earliest item's due time, each decline a reason
    -- (as many kept as when they come one by one).
    SELECT min(u.due), array_agg(left(a.person_id || ' declined ' || a.incident_id, 200)
                                 ORDER BY u.n)
    INTO v_due, v_why
    FROM unnest(p_ids, p_replan_dues) WITH ORDINALITY AS u (id, due, n)
    JOIN assignments AS a ON a.id = u.id
    WHERE u.n = ANY (v_declined);
    LOOP
        UPDATE engine_state
        SET replan_due_at = LEAST(COALESCE(replan_due_at, v_due), v_due),
            generation = generation + 1,
            reasons = (reasons || v_why)
                      [greatest(1, cardinality(reasons) + cardinality(v_why) - 19):]
        WHERE replan_due_at IS NULL OR replan_due_at > v_due OR cardinality(reasons) < 19;
        IF FOUND THEN
            PERFORM pg_notify(muster_channel('muster_engine'), 'replan');
            v_word := 'replanned';
            EXIT;
        END IF;
        PERFORM FROM engine_state
        WHERE replan_due_at IS NOT NULL AND replan_due_at <= v_due
          AND cardinality(reasons) >= 19
        FOR KEY SHARE;
        IF FOUND THEN
            v_word := 'held';
            EXIT;
        END IF;
    END LOOP;
    FOREACH n IN ARRAY v_declined LOOP
        v_out[n] := v_word;
    END LOOP;
    RETURN v_out;
END
$$;

-- A batch inserts many audit rows, and the seal trigger (0010) fires once for each at commit.
-- The first firing that gets the chain lock seals every visible row, this transaction's own
-- included; the following ones would each look up the chain's head and scan for unsealed rows
-- only to find nothing. A firing whose own row is sealed already skips that: its transaction
-- sealed at commit, as before (one index probe instead).
CREATE OR REPLACE FUNCTION audit_log_seal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM audit_log WHERE id = NEW.id AND seq IS NULL) THEN
        RETURN NULL;
    END IF;
    IF pg_try_advisory_xact_lock(1836413812, 1) THEN
        PERFORM audit_seal_visible();
    END IF;
    RETURN NULL;
END
$$;
