//! Cryptography: password hashing, tokens, TOTP, and (envelope) encryption of records.
//!
//! Nothing here logs key material, plaintext, tokens or codes.

pub mod passwords;
pub mod tokens;
pub mod totp;
