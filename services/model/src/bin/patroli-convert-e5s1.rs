//! `patroli-convert-e5s1 SRC DEST`: the conversion step of
//! models/install-base.sh, usable before the `patroli` CLI is built.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dest] = args.as_slice() else {
        eprintln!("usage: patroli-convert-e5s1 E5S1_FILE DEST_DIR");
        std::process::exit(2);
    };
    if let Err(e) = patroli_model::convert_e5s1(src.as_ref(), dest.as_ref()) {
        eprintln!("conversion failed: {e}");
        std::process::exit(1);
    }
}
