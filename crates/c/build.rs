//! Gives the shared library a versioned soname, so programs linked against it keep working
//! across compatible releases and refuse an incompatible one.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" || os.ends_with("bsd") {
        // The major number is BRICKLESS_ABI_VERSION's: bump both together.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbrickless_c.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
