//! Adds an rpath to libtessera's folder (from tessera-sys, `links = "tessera"`)
//! to this crate's tests and examples, so they run without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TESSERA_LIB_DIR");
    if let Ok(dir) = std::env::var("DEP_TESSERA_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
