-- A volunteer's answer to an offer (accept or decline) in one transaction and one round trip.
--
-- The HTTP answer routes read first (token, Idempotency-Key, the offer and its row version, in
-- one statement; see queries/answers.sql), decide in Python whether the move is allowed and
-- what the answer is, then call answer_offer(): it moves exactly the version that was read,
-- stores the Idempotency-Key together with the finished response, appends the audit row and,
-- for a decline, records the pair rule and requests the re-plan. One commit, one WAL flush.
--
-- Outcomes (nothing is written unless the answer is 'done', 'replanned' or 'covered'):
--   stale      the row changed since it was read: nothing written, the caller reads again
--   done       accepted
--   replanned  declined; the engine's row now asks for a re-plan and the engine was woken
--   held       declined; a pending re-plan already covered the request and is held until the
--              commit (engine.request_replan, hold_replan)
-- If the Idempotency-Key was taken meanwhile (a concurrent retry, or the key reused for
-- another request), the function raises SQLSTATE MU409 and the whole answer rolls back; the
-- caller reads again and replays (or refuses) what the key holds.

CREATE FUNCTION answer_offer(
    p_id           text,
    p_xmin         xid,
    p_status       text,
    p_at           timestamptz,
    p_reason       text,
    p_actor        text,
    p_actor_role   text,
    p_before       jsonb,
    p_after        jsonb,
    p_request_id   text,
    p_token        uuid,
    p_key          text,
    p_method       text,
    p_path         text,
    p_digest       text,
    p_body         bytea,
    p_content_type text,
    p_replan_due   timestamptz
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_person   text;
    v_incident text;
BEGIN
    -- The row as it was read, or nothing (the caller's checks were made on that version).
    IF p_status = 'accepted' THEN
        UPDATE assignments
        SET status = 'accepted', accepted_at = p_at, locked = true, version = version + 1
        WHERE id = p_id AND xmin = p_xmin
        RETURNING person_id, incident_id INTO v_person, v_incident;
    ELSIF p_status = 'declined' THEN
        UPDATE assignments
        SET status = 'declined', declined_at = p_at, decline_reason = p_reason,
            version = version + 1
        WHERE id = p_id AND xmin = p_xmin
        RETURNING person_id, incident_id INTO v_person, v_incident;
    ELSE
        RAISE EXCEPTION 'answer_offer: % is not an answer', p_status
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT FOUND THEN
        RETURN 'stale';
    END IF;

    IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (token_id, key, method, path, request_hash, status_code,
                                      response_body, content_type)
        VALUES (p_token, p_key, p_method, p_path, p_digest, 200, p_body, p_content_type)
        ON CONFLICT (token_id, key) DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the Idempotency-Key % was taken meanwhile', p_key
                USING ERRCODE = 'MU409';
        END IF;
    END IF;

    INSERT INTO audit_log (actor, actor_role, action, object_type, object_id, before, after,
                           request_id)
    VALUES (p_actor, p_actor_role, p_status, 'assignment', p_id, p_before, p_after,
            p_request_id);

    IF p_status = 'accepted' THEN
        RETURN 'done';
    END IF;

    -- Never offer this incident to this person again (assignments.upsert_rule).
    INSERT INTO pair_rules (person_id, incident_id, rule, skill, created_at, created_by)
    VALUES (v_person, v_incident, 'declined', NULL, p_at, p_actor)
    ON CONFLICT (person_id, incident_id)
    DO UPDATE SET rule = EXCLUDED.rule, skill = EXCLUDED.skill,
                  created_at = EXCLUDED.created_at, created_by = EXCLUDED.created_by;

    -- engine.request_replan inside a transaction (keep the two in step), locking the engine's
    -- row last as every transaction that requests a re-plan does: ask for a re-plan, or, when
    -- a pending one already covers the request, hold that one (KEY SHARE, until the commit) so
    -- that the engine cannot claim it, and read the world, before this decline is visible.
    LOOP
        UPDATE engine_state
        SET replan_due_at = LEAST(COALESCE(replan_due_at, p_replan_due), p_replan_due),
            generation = generation + 1,
            reasons = (reasons || left(v_person || ' declined ' || v_incident, 200))
                      [greatest(1, cardinality(reasons) - 18):]
        WHERE replan_due_at IS NULL OR replan_due_at > p_replan_due OR cardinality(reasons) < 19;
        IF FOUND THEN
            PERFORM pg_notify(muster_channel('muster_engine'), 'replan');
            RETURN 'replanned';
        END IF;
        PERFORM FROM engine_state
        WHERE replan_due_at IS NOT NULL AND replan_due_at <= p_replan_due
          AND cardinality(reasons) >= 19
        FOR KEY SHARE;
        IF FOUND THEN
            RETURN 'held';
        END IF;
    END LOOP;
END
$$;
