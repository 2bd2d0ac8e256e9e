fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("install") {
        std::process::exit(cni_cloud::install::main(&args[2..]));
    }
    eprintln!("cni-cloud: not built yet");
    std::process::exit(1);
}
