//! Usage exports and the platform's reports (issue 13, items 2 and 3; PROOF 24): the CSV files
//! read back by Python's `csv` module (strict), with and without a byte order mark, with `;`,
//! hostile department and practitioner names neutralised; the platform's sums, its per-company
//! overview, the practitioners' activity (exact, no employee), and a purge that leaves released
//! platform months as they were.

use reqwest::Method;

use crate::helpers::TestApp;
use crate::people::{call, host};
use crate::platform::platform_admin;
use crate::reports::{
    assert_released_safely, book_one, get_json, hr_token, month_label, people, practitioner, scene,
};

// ---------------------------------------------------------------------------------------------
// CSV (PROOF 24): read back by Python's `csv` module.

/// Parse `body` with Python's `csv` module (`utf-8-sig` strips a BOM): rows as JSON arrays.
fn python_csv(body: &[u8], delimiter: char) -> Vec<Vec<String>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = format!(
        "import csv, io, json, sys\n\
         text = sys.stdin.buffer.read().decode('utf-8-sig')\n\
         rows = list(csv.reader(io.StringIO(text, newline=''), delimiter={delimiter:?}, strict=True))\n\
         print(json.dumps(rows))\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python csv refused the file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_usage_csv_is_rfc_4180_holds_the_reports_cells_and_neutralises_formulas() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let s = scene(&mut owner, "acme").await;
    // Department names typed by people: formulas, separators, quotes, line breaks.
    let hostile = [
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "+SUM(1,2)",
        "-2+3",
        "@cmd",
        "\tTabbed",
        "\rReturn",
        "Sales; EMEA, \"North\"",
        "Two\nlines",
    ];
    for name in hostile {
        people(&mut owner, s.tenant, Some(name), &["employee"], 1).await;
    }
    let h = host("acme");
    let hr = hr_token(&app, &mut owner, s.tenant, "acme").await;
    let (m3, m2) = (month_label(&app, 3), month_label(&app, 2));
    let range = format!("from={m3}&to={m2}");
    let (_, json_report) = get_json(
        &app,
        &h,
        &format!("/api/v1/reports/usage?{range}&group_by=department"),
        &hr,
    )
    .await;

    for (bom, delimiter, param) in [
        (false, ',', ""),
        (true, ',', "&bom=true"),
        (false, ';', "&delimiter=semicolon"),
        (true, ';', "&bom=true&delimiter=semicolon"),
    ] {
        let res = call(
            &app,
            Method::GET,
            &h,
            &format!("/api/v1/exports/usage.csv?{range}&group_by=department{param}"),
            &hr,
        )
        .await;
        assert_eq!(res.status(), 200);
        let headers = res.headers().clone();
        assert_eq!(
            headers["content-type"],
            "text/csv; charset=utf-8; header=present"
        );
        assert_eq!(
            headers["content-disposition"].to_str().unwrap(),
            format!("attachment; filename=\"serein-usage-acme-department-{m3}-{m2}.csv\"")
        );
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let body = res.bytes().await.unwrap();
        assert_eq!(body.starts_with(b"\xEF\xBB\xBF"), bom, "BOM");
        assert!(body.ends_with(b"\r\n"));
        let rows = python_csv(&body, delimiter);
        assert_eq!(
            rows[0],
            [
                "month",
                "department",
                "booked",
                "held",
                "cancelled",
                "minutes",
                "users",
                "suppressed"
            ]
        );
        // Exactly the report's cells, in its order.
        let cells = json_report["cells"].as_array().unwrap();
        assert_eq!(rows.len() - 1, cells.len());
        for (row, cell) in rows[1..].iter().zip(cells) {
            assert_eq!(row[0], cell["month"].as_str().unwrap());
            let dept = cell["group"].as_str().unwrap_or_default();
            if dept.starts_with(['=', '+', '-', '@', '\t', '\r', '\n']) {
                assert_eq!(row[1], format!("'{dept}"), "formula cell not neutralised");
            } else {
                assert_eq!(row[1], dept);
            }
            for (i, m) in ["booked", "held", "cancelled", "minutes", "users"]
                .iter()
                .enumerate()
            {
                let expected = cell[m].as_i64().map(|v| v.to_string()).unwrap_or_default();
                assert_eq!(row[2 + i], expected, "{m} of {cell}");
            }
            for m in ["booked", "held", "cancelled", "minutes", "users"] {
                if let Some(reason) = cell["suppressed"][m].as_str() {
                    assert!(row[7].contains(&format!("{m}: {reason}")), "{row:?}");
                }
            }
        }
        // Every hostile name came through, neutralised where it starts like a formula, and no
        // field starts like a formula any more.
        for name in hostile {
            let expected = if name.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{name}")
            } else {
                name.to_owned()
            };
            assert!(rows.iter().any(|r| r[1] == expected), "{name:?} missing");
        }
        for row in &rows {
            for field in row {
                assert!(
                    !field.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{field:?} would run as a formula"
                );
            }
        }
    }
    // The month grouping carries the enrolment.
    let res = call(
        &app,
        Method::GET,
        &h,
        &format!("/api/v1/exports/usage.csv?{range}"),
        &hr,
    )
    .await;
    let rows = python_csv(&res.bytes().await.unwrap(), ',');
    assert_eq!(
        rows[0],
        [
            "month",
            "booked",
            "held",
            "cancelled",
            "minutes",
            "users",
            "enrolled_members",
            "enrolment_rate",
            "suppressed"
        ]
    );
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][6], "40");
    assert_eq!(rows[1][4], "1000");
    let res = call(
        &app,
        Method::GET,
        &h,
        "/api/v1/exports/usage.csv?delimiter=tab",
        &hr,
    )
    .await;
    assert_eq!(res.status(), 422);
}

// ---------------------------------------------------------------------------------------------
// The platform.

#[tokio::test]
async fn the_platform_sees_sums_overviews_and_practitioner_activity_never_an_employee() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let acme = scene(&mut owner, "acme").await;
    let globex = scene(&mut owner, "globex").await;
    sqlx::query("UPDATE tenants SET min_cohort = 7 WHERE id = $1")
        .bind(globex.tenant.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    // A practitioner serving both companies.
    let shared = practitioner(&mut owner, acme.tenant, "=Dr Shared", &["grief"]).await;
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles) VALUES (gen_random_uuid(), $1, $2, '{practitioner}')",
    )
    .bind(globex.tenant.as_uuid())
    .bind(shared.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();
    for (t, e) in [(acme.tenant, acme.ops[10]), (globex.tenant, globex.ops[10])] {
        book_one(&mut owner, t, (e, shared), "in_person", "ended", 3).await;
    }
    let admin = platform_admin(&app).await;
    let (m3, m2) = (month_label(&app, 3), month_label(&app, 2));
    let range = format!("from={m3}&to={m2}");

    let (status, totals) = get_json(
        &app,
        "localhost",
        &format!("/api/v1/platform/reports/usage?{range}"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{totals}");
    let cells = totals["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    // 23 a month in each company, plus the shared practitioner's two three months ago.
    assert_eq!(cells[0]["booked"], 48);
    assert_eq!(cells[1]["booked"], 46);
    // The strictest cohort of the companies concerned.
    assert_eq!(totals["months"][0]["min_cohort"], 7);
    for g in ["kind", "specialty"] {
        let (status, body) = get_json(
            &app,
            "localhost",
            &format!("/api/v1/platform/reports/usage?{range}&group_by={g}"),
            &admin,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_released_safely(&body, 7, &totals);
    }
    let res = call(
        &app,
        Method::GET,
        "localhost",
        &format!("/api/v1/platform/reports/usage?{range}&group_by=department"),
        &admin,
    )
    .await;
    assert_eq!(res.status(), 422);

    let (status, overview) = get_json(
        &app,
        "localhost",
        &format!("/api/v1/platform/reports/tenants?{range}"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{overview}");
    let items = overview["items"].as_array().unwrap();
    let acme_m3 = items
        .iter()
        .find(|i| i["slug"] == "acme" && i["month"] == m3.as_str())
        .unwrap();
    assert_eq!(acme_m3["booked"], 24, "{acme_m3}");
    assert_eq!(acme_m3["seats_used"], 39);
    assert_eq!(acme_m3["min_cohort"], 5);
    assert_eq!(acme_m3["users"], 24);
    assert_eq!(acme_m3["active_rate"], 0.615);
    // The companies' month totals are frozen with the platform's months, as HR will see them.
    let globex_m3 = items
        .iter()
        .find(|i| i["slug"] == "globex" && i["month"] == m3.as_str())
        .unwrap();
    assert_eq!(globex_m3["min_cohort"], 7);
    // Company months never seen by any HR are frozen now, once.
    let frozen: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_months WHERE tenant_id = $1")
        .bind(globex.tenant.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert!(frozen >= 2);

    // The practitioners' activity: per practitioner, month and company; no employee.
    let res = call(
        &app,
        Method::GET,
        "localhost",
        &format!("/api/v1/platform/exports/practitioner-activity.csv?{range}&bom=true"),
        &admin,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-disposition"].to_str().unwrap(),
        format!("attachment; filename=\"serein-practitioner-activity-{m3}-{m2}.csv\"")
    );
    let body = res.bytes().await.unwrap();
    assert!(body.starts_with(b"\xEF\xBB\xBF"));
    let text = String::from_utf8_lossy(&body).to_string();
    for e in acme.sales.iter().chain(&acme.ops).chain(&globex.sales) {
        assert!(
            !text.contains(&e.to_string()),
            "an employee id in the activity export"
        );
    }
    let rows = python_csv(&body, ',');
    assert_eq!(
        rows[0],
        [
            "month",
            "practitioner_id",
            "practitioner",
            "company",
            "company_name",
            "consultations",
            "minutes"
        ]
    );
    let shared_rows: Vec<&Vec<String>> =
        rows.iter().filter(|r| r[1] == shared.to_string()).collect();
    assert_eq!(shared_rows.len(), 2, "{shared_rows:?}");
    for r in &shared_rows {
        assert_eq!(r[0], m3);
        assert_eq!(r[2], "'=Dr Shared", "formula neutralised");
        assert_eq!(r[5], "1");
        assert_eq!(r[6], "50");
    }
    // Per practitioner per company per month, exact: Dr Alice at acme.
    let alice = rows
        .iter()
        .find(|r| r[1] == acme.drs[0].to_string() && r[3] == "acme" && r[0] == m3)
        .unwrap();
    let expected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM consultations WHERE tenant_id = $1 AND practitioner_id = $2
           AND status = 'ended' AND starts_at >= date_trunc('month', now()) - interval '3 months'
           AND starts_at < date_trunc('month', now()) - interval '2 months'",
    )
    .bind(acme.tenant.as_uuid())
    .bind(acme.drs[0].as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(alice[5], expected.to_string());
    // A company purged later leaves the released platform months as they were (and its
    // frozen months go with the rest of its rows).
    sqlx::query(
        "UPDATE tenants SET status = 'offboarding', offboard_requested_at = now(),
                            purge_after = now() - interval '1 minute' WHERE id = $1",
    )
    .bind(globex.tenant.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();
    let purged = serein::platform::purge::purge_due(&app.db, &app.state.keyring, app.clock.now())
        .await
        .unwrap();
    assert_eq!(purged.len(), 1);
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM usage_months WHERE tenant_id = $1)
              + (SELECT count(*) FROM usage_cells WHERE tenant_id = $1)
              + (SELECT count(*) FROM usage_practitioner_months WHERE tenant_id = $1)",
    )
    .bind(globex.tenant.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(left, 0);
    let admin = platform_admin(&app).await;
    let (_, after) = get_json(
        &app,
        "localhost",
        &format!("/api/v1/platform/reports/usage?{range}"),
        &admin,
    )
    .await;
    assert_eq!(after, totals, "a purge moved a released platform month");
    let (_, overview) = get_json(
        &app,
        "localhost",
        &format!("/api/v1/platform/reports/tenants?{range}"),
        &admin,
    )
    .await;
    assert!(
        overview["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["slug"] != "globex")
    );
    // Nothing of the month under way, for the platform either.
    let res = call(
        &app,
        Method::GET,
        "localhost",
        &format!(
            "/api/v1/platform/exports/practitioner-activity.csv?to={}",
            month_label(&app, 0)
        ),
        &admin,
    )
    .await;
    assert_eq!(res.status(), 422);
}
