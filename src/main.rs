fn main() {
    std::process::exit(stockgate::app::main());
}
