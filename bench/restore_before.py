#!/usr/bin/env python3
"""Print SQL that puts a bench database back to the functions of main@049b179, i.e. before
migrations/20261205000001_fast_context.sql, for the "before" measurements of issue 10:

    python3 bench/restore_before.py | psql -X -q -v ON_ERROR_STOP=1 serein_bench

The definitions are read from the landed migrations that last created them (the files are
never edited once landed), and the fast_context row is removed from _sqlx_migrations, so the
binary of 049b179 runs against exactly the schema it shipped with. `serein migrate` of a later
binary applies fast_context again.
"""
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "migrations")
SOURCES = [
    ("20261204000001_key_definers.sql", "CREATE FUNCTION app_private.session_proof_mac("),
    ("20261204000003_people_hardening.sql", "CREATE FUNCTION app_private.own_totp_enabled("),
    ("20261121000005_identity_sessions.sql", "CREATE OR REPLACE FUNCTION app_private.resolve_tenant("),
]


def definition(path, start):
    text = open(os.path.join(ROOT, path)).read()
    i = text.rindex(start)
    body = text.index("AS $$", i) + len("AS $$")
    end = text.index("$$;", body) + len("$$;")
    return text[i:end].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


print("BEGIN;")
for path, start in SOURCES:
    print(definition(path, start))
print("DELETE FROM _sqlx_migrations WHERE version = 20261205000001;")
print("COMMIT;")
