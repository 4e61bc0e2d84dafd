/// The environment variable that turns a missing peer tool from a skip into a failure.
pub const REQUIRE_PEERS: &str = "BRICKLESS_REQUIRE_PEERS";

/// Whether a missing peer tool fails the test rather than skips it: `BRICKLESS_REQUIRE_PEERS=1`,
/// as `scripts/test.sh` and CI set, so an interop test cannot pass by running nothing.
pub fn peers_required() -> bool {
    std::env::var(REQUIRE_PEERS).is_ok_and(|v| v == "1")
}

/// Reports that the peer tool `peer` is not installed: panics when [`peers_required`], else
/// prints that the test skips. The caller returns early after it.
pub fn missing_peer(peer: &str) {
    assert!(
        !peers_required(),
        "{peer} is not installed and {REQUIRE_PEERS}=1: run scripts/install-deps.sh"
    );
    eprintln!("SKIP: {peer} is not installed (scripts/install-deps.sh installs it)");
}
