//! HTTP plumbing shared by every feature: extractors that speak our error format, the request
//! middleware, and the server loop.

pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod server;
pub mod text;

pub use extract::{AppJson, AppPath, AppQuery};
