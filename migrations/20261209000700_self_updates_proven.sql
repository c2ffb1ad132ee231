-- A person's own identity and practitioner profile are changed by the PROVEN person only
-- (STYLE 17; PROOF 8b "someone else's app.user_id").
--
-- Threat closed: `users_self_update` and `practitioner_profiles_update` (migrations
-- 20261121000003 and 20261121000008) matched the row against `app.user_id`, a setting the
-- request role writes itself: a context naming another person's id, with no session, could
-- rename anyone (the name HR, colleagues and patients see) or rewrite a practitioner's bio,
-- specialties and languages in every company they serve. Every route that changes these rows
-- (`PATCH /auth/me`, the platform's practitioner edits) runs after the session guard, so the
-- policies now ask the guard's proof (`app_private.proven_person()`); platform admins keep
-- their (proven) path to practitioner profiles. Operator commands run as the owner.
--
-- Left as they are, and why: the SELECT self clauses (`users_visible`, `memberships_read`,
-- `sessions_own_read`, `refresh_tokens_own_*`, `auth_tokens_own_*`, `auth_proofs_own`) also
-- serve the flows that run BEFORE a session exists (login, refresh, TOTP enrolment, e-mailed
-- links), which establish the person themselves; moving them needs those flows to carry a
-- proof of their own first.

DROP POLICY users_self_update ON users;
CREATE POLICY users_self_update ON users
    FOR UPDATE TO serein_app
    USING (id = (SELECT app_private.proven_person()))
    WITH CHECK (id = (SELECT app_private.proven_person()));

DROP POLICY practitioner_profiles_update ON practitioner_profiles;
CREATE POLICY practitioner_profiles_update ON practitioner_profiles
    FOR UPDATE TO serein_app
    USING (user_id = (SELECT app_private.proven_person()) OR (SELECT app.is_platform_admin()))
    WITH CHECK (user_id = (SELECT app_private.proven_person()) OR (SELECT app.is_platform_admin()));
