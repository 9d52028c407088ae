//! `wrong-world`: a WASI command component (it exports `wasi:cli/run`, not an operator world).
//! weir must refuse it at load, naming the world it expected.

fn main() {
    println!("I am not a weir operator");
}
