fn main() {
    eprintln!("cni-cloud: not built yet");
    std::process::exit(1);
}
