//! `maasctl demo`: the console on a throw-away store seeded with a
//! marketplace, clusters, workspaces, keys, rules and models served by a
//! built-in mock upstream, with gentle traffic, so every pane moves.

pub mod seed;
pub mod traffic;

/// Flags of `maasctl demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Address the demo gateway listens on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
}

/// Run the demo until the operator quits.
pub fn run(args: DemoArgs) -> Result<(), String> {
    Err(format!(
        "the demo needs the gateway, not merged yet ({})",
        args.listen
    ))
}
