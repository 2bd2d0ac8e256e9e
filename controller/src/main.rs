fn main() {
    eprintln!("cni-cloud-controller: not built yet");
    std::process::exit(1);
}
