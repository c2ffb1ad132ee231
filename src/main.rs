//! `serein`: parse the command line and run it. Everything else lives in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    serein::cli::main().await
}
