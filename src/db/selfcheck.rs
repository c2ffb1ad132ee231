//! The start-up self-check: the server refuses to run on a database where row-level security
//! would not hold.
//!
//! Checked, as the login role, against the catalogue:
//! - the request role is `serein_app`, the role the migrations write their policies, grants and
//!   guard triggers for: another role (even one `IN ROLE serein_app`, which inherits the
//!   policies) is not what the migrations were reviewed against, so it is refused;
//! - the request role exists, is not superuser, has no BYPASSRLS, and is not a member of any
//!   role that is (membership would let it `SET ROLE` its way out);
//! - the request role owns nothing in this database, directly or through a role it can become
//!   (owners bypass non-forced RLS and can disable it);
//! - every view runs with the invoker's rights (`security_invoker`), and no materialized view
//!   (which RLS cannot protect) is readable by the request role;
//! - no database- or role-level default, and no connection option, presets an `app.*` setting
//!   or the role (either would defeat fail-closed);
//! - the login role can become the request role;
//! - every table with a `tenant_id` column has row-level security ENABLED and FORCED.

use super::Db;

/// The only request role the migrations are written for.
pub const REQUEST_ROLE: &str = "serein_app";

/// Every violation found, as human-readable lines.
#[derive(Debug, thiserror::Error)]
#[error("database self-check failed; refusing to serve:\n  - {}", .0.join("\n  - "))]
pub struct SelfCheckError(pub Vec<String>);

/// Run every check; collect all violations rather than stopping at the first.
pub async fn run(db: &Db) -> Result<(), anyhow::Error> {
    let role = db.app_role();
    let mut problems = Vec::new();
    if role != REQUEST_ROLE {
        problems.push(format!(
            "request role {role:?} is not {REQUEST_ROLE:?}, the role the migrations grant to \
             (a role IN ROLE {REQUEST_ROLE} inherits its policies but is not what they were written for)"
        ));
    }
    let mut conn = db.admin_conn().await?;

    let attrs = sqlx::query!(
        r#"SELECT rolsuper AS "rolsuper!", rolbypassrls AS "rolbypassrls!" FROM pg_catalog.pg_roles WHERE rolname = $1"#,
        role
    )
    .fetch_optional(&mut *conn)
    .await?;
    match attrs {
        None => problems.push(format!("request role {role:?} does not exist")),
        Some(a) => {
            if a.rolsuper {
                problems.push(format!("request role {role:?} is a superuser"));
            }
            if a.rolbypassrls {
                problems.push(format!("request role {role:?} has BYPASSRLS"));
            }
            let privileged: Vec<String> = sqlx::query_scalar!(
                r#"SELECT r.rolname AS "rolname!" FROM pg_catalog.pg_roles r
                   WHERE r.rolname <> $1 AND (r.rolsuper OR r.rolbypassrls)
                     AND pg_catalog.pg_has_role($1, r.oid, 'MEMBER')"#,
                role
            )
            .fetch_all(&mut *conn)
            .await?;
            for p in privileged {
                problems.push(format!(
                    "request role {role:?} is a member of privileged role {p:?}"
                ));
            }
            let owned: Vec<String> = sqlx::query_scalar!(
                r#"SELECT n.nspname || '.' || c.relname AS "name!"
                   FROM pg_catalog.pg_class c
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                   WHERE pg_catalog.pg_has_role($1, c.relowner, 'MEMBER')
                   UNION ALL
                   SELECT 'schema ' || n.nspname FROM pg_catalog.pg_namespace n
                   WHERE pg_catalog.pg_has_role($1, n.nspowner, 'MEMBER')
                   UNION ALL
                   SELECT 'function ' || p.proname FROM pg_catalog.pg_proc p
                   WHERE pg_catalog.pg_has_role($1, p.proowner, 'MEMBER')
                   ORDER BY 1"#,
                role
            )
            .fetch_all(&mut *conn)
            .await?;
            for o in owned {
                problems.push(format!("request role {role:?} owns {o}"));
            }
            let can_become: bool = sqlx::query_scalar!(
                r#"SELECT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
                          OR pg_catalog.pg_has_role(current_user, $1, 'MEMBER') AS "ok!""#,
                role
            )
            .fetch_one(&mut *conn)
            .await?;
            if !can_become {
                problems.push(format!(
                    "the login role cannot SET ROLE {role:?} (GRANT {role} TO <login role>)"
                ));
            }
        }
    }

    let unprotected: Vec<String> = sqlx::query_scalar!(
        r#"SELECT n.nspname || '.' || c.relname || CASE
                    WHEN NOT c.relrowsecurity THEN ' has row-level security disabled'
                    ELSE ' does not FORCE row-level security' END AS "msg!"
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
           WHERE a.attname = 'tenant_id' AND NOT a.attisdropped
             AND c.relkind IN ('r', 'p')
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg_toast%'
             AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
           ORDER BY 1"#
    )
    .fetch_all(&mut *conn)
    .await?;
    for u in unprotected {
        problems.push(format!("table {u}"));
    }

    let views: Vec<String> = sqlx::query_scalar!(
        r#"SELECT CASE c.relkind
                    WHEN 'v' THEN 'view ' || n.nspname || '.' || c.relname || ' lacks security_invoker'
                    ELSE 'materialized view ' || n.nspname || '.' || c.relname || ' is readable by the request role'
                  END AS "msg!"
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND ((c.relkind = 'v'
                   AND NOT coalesce(c.reloptions && ARRAY['security_invoker=true', 'security_invoker=on', 'security_invoker=1'], false))
               OR (c.relkind = 'm'
                   AND pg_catalog.has_table_privilege($1, c.oid, 'SELECT')))
           ORDER BY 1"#,
        role
    )
    .fetch_all(&mut *conn)
    .await?;
    problems.extend(views);

    let presets: Vec<String> = sqlx::query_scalar!(
        r#"SELECT 'default setting ' || s.setting || ' (ALTER ' ||
                  CASE WHEN d.setrole = 0 THEN 'DATABASE' ELSE 'ROLE' END || ' … SET)' AS "msg!"
           FROM pg_catalog.pg_db_role_setting d, unnest(d.setconfig) AS s(setting)
           WHERE (d.setdatabase = 0
                  OR d.setdatabase = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
             AND (s.setting LIKE 'app.%' OR s.setting LIKE 'role=%')
           UNION ALL
           SELECT 'this connection starts with ' || name || ' set' FROM (VALUES
                ('app.tenant_id'), ('app.user_id'), ('app.roles')) AS v(name)
           WHERE coalesce(pg_catalog.current_setting(name, true), '') <> ''
           ORDER BY 1"#
    )
    .fetch_all(&mut *conn)
    .await?;
    problems.extend(presets);

    if problems.is_empty() {
        Ok(())
    } else {
        Err(SelfCheckError(problems).into())
    }
}
