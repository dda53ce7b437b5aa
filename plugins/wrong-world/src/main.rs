//! A plain WASI command: a real component, but not an agent.
fn main() {
    println!("I am a command, not an agent");
}
