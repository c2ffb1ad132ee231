//! The integration suite: one binary, real PostgreSQL, a fresh database per test (cloned from a
//! migrated template), every request and every DB-level check running as `serein_app`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod architecture;
mod auth;
mod auth_flows;
mod auth_mail;
mod availability;
mod bola;
mod booking;
mod cli;
mod consultations;
mod content;
mod files;
mod hardening_auth;
mod hardening_input;
mod hardening_jobs;
mod hardening_keys;
mod hardening_people;
mod health;
mod helpers;
mod import;
mod invitations;
mod isolation;
mod keycheck;
mod keys;
mod lifecycle;
mod lists;
mod mail;
mod members;
mod notices;
mod notifications_prefs;
mod openapi;
mod people;
mod pipeline;
mod platform;
mod practitioners;
mod proven_roles;
mod rbac;
mod realtime;
mod records;
mod reports;
mod reports_exports;
mod reports_property;
mod request_path;
mod reviews;
mod selfcheck;
mod tenancy;
mod totp;
