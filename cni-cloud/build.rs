fn main() {
    // DT_RELR: the plugin's ~25k relative relocations packed into a few KiB instead of
    // ~600 KiB of .rela.dyn that the loader reads — and keeps resident — at every exec.
    println!("cargo:rustc-link-arg-bin=cni-cloud=-Wl,-z,pack-relative-relocs");
}
