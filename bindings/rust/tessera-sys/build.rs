//! Links libtessera.so. Where it is: $TESSERA_LIB_DIR (the folder holding
//! libtessera.so, e.g. <cmake-build>/lib; CTest sets it), else the system
//! linker paths (an installed Tessera). An rpath to that folder is added to
//! this crate's tests; dependents read DEP_TESSERA_LIB_DIR (see the tessera
//! crate's build.rs) to add it to theirs.
use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=TESSERA_LIB_DIR");
    if let Ok(dir) = env::var("TESSERA_LIB_DIR") {
        if !Path::new(&dir).join("libtessera.so").exists() {
            panic!("TESSERA_LIB_DIR={dir} has no libtessera.so");
        }
        println!("cargo:rustc-link-search=native={dir}");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:lib_dir={dir}");
    }
    println!("cargo:rustc-link-lib=dylib=tessera");
}
