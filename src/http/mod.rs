//! HTTP plumbing shared by every feature: extractors that speak our error format, the text
//! rules of every input, the request middleware, the OpenAPI document's shared answers, keyset
//! pagination (one cursor, one `limit` rule), the CSV writer of every export, and the server
//! loop.

pub mod csv;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod server;
pub mod text;

pub use extract::{AppJson, AppPath, AppQuery};
