//! Serein: the backend of a multi-tenant employee mental-health platform.
//!
//! Every request resolves its tenant from the Host and runs inside a PostgreSQL transaction
//! that has dropped to the unprivileged `serein_app` role with the tenant set, so row-level
//! security isolates the data even where application code would forget a `WHERE`.

/// Application state, router assembly and start-up.
pub mod app;
/// Identity and access: sign-up, login, sessions, TOTP, password reset.
pub mod auth;
/// A practitioner's availability: weekly rules, exceptions, slots.
pub mod availability;
/// Chat between a consultation's participants: messages, read marks (REST and socket flows).
pub mod chat;
/// The command line (`serein serve|migrate|tenants|users|keys …`), one file per command group.
pub mod cli;
/// Injected time.
pub mod clock;
/// The one configuration loader (environment over file over defaults) and the core section.
pub mod config;
/// Consultations: booking, and each participant's consultations.
pub mod consultations;
/// Content: practitioners' articles (platform-wide) and company news, Markdown sanitised.
pub mod content;
/// Password hashing, tokens, TOTP, envelope encryption.
pub mod crypto;
/// Pool, migrations, self-check, and the RLS-scoped transactions.
pub mod db;
/// The problem+json error type.
pub mod error;
/// Files: uploads sniffed and re-encoded, sealed in an object store, served by link rules.
pub mod files;
/// Liveness, readiness, metrics.
pub mod health;
/// Extractors, middleware, and the server loop.
pub mod http;
/// Background jobs: the PostgreSQL queue of reminders and change notices, and its worker.
pub mod jobs;
/// The private journal of an employee.
pub mod journal;
/// Transactional e-mail: outbox, templates, worker.
pub mod mail;
/// Members, HR's counts, invitations, the CSV import.
pub mod members;
/// Clinical notes of practitioners, with their kept versions.
pub mod notes;
/// Notifications: the person's own list (and polling), read marks, preferences, the digest.
pub mod notifications;
/// Platform administration: tenant life cycle, practitioner assignment, the purge job.
pub mod platform;
/// The practitioner network: platform management, self-service profile, directory, matching.
pub mod practitioners;
/// Roles shared by RBAC and row-level security.
pub mod rbac;
/// The realtime gateway: WebSocket events and their fan-out across servers.
pub mod realtime;
/// Usage reports and CSV exports: HR's and the platform's, closed months only, never a person.
pub mod reports;
/// Logs and metrics set-up.
pub mod telemetry;
/// The tenant: model, resolution, profile, company settings, declarative tenant files.
pub mod tenants;
