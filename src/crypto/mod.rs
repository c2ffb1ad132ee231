//! Cryptography: password hashing, tokens, TOTP, and (envelope) encryption of records.
//!
//! Nothing here logs key material, plaintext, tokens or codes. Envelope encryption (DESIGN §3):
//! [`sealed`] is the blob format and AES-256-GCM over a key in memory, [`keyring`] the key
//! hierarchy (master KEK → tenant keys → subject keys) with its cache, [`master`] where the
//! master key comes from, [`keycheck`] the start-up check that it is the database's master key,
//! [`keystore`] the SQL of the key tables, [`rotation`] key rotation (run by
//! `serein keys rotate`), [`tokens`] signing and verifying access tokens with the settings of
//! [`token_config`].

pub mod cache;
pub mod keycheck;
pub mod keyring;
pub mod keystore;
pub mod master;
pub mod passwords;
pub mod rotation;
pub mod sealed;
pub mod token_config;
pub mod tokens;
pub mod totp;
