//! The transformer block (transformer_block.tsr) from Rust: compile it for a
//! target, run it on random bf16 inputs and print the max error against the
//! float64 reference interpreter. Exits 1 when the error is above the bf16
//! tolerance. Same program in C, Python and Julia beside this file.
//!
//!   cargo run --example transformer_block -- [path.tsr] [target]
//! (target "cpu" by default; "interp" loads $TESSERA_INTERP_DIR.)
//! Sizes: B=2, S=8, D=16, H=2. H is bound at compile (only reshapes name
//! it); D is bound too, because the pipeline decomposes attention only with
//! a static head dim D/H. B and S come from the inputs.
use tessera::{Bf16, CompileOptions, Context, Program, Tensor};

fn main() -> tessera::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../docs/examples/transformer_block.tsr").into());
    let target = args.next().unwrap_or_else(|| "cpu".into());
    let source = std::fs::read_to_string(&path).expect("read the .tsr file");
    let ctx = match (target.as_str(), std::env::var("TESSERA_INTERP_DIR")) {
        ("interp", Ok(dir)) => Context::with_plugin_path(Some(&dir), tessera::sys::TESSERA_CONTEXT_FLAG_NO_DEFAULT_PATHS as u32)?,
        _ => Context::new()?,
    };
    let dev = ctx.device(&target)?;
    let bind = "H=2,D=16";
    let opts = CompileOptions { bind: Some(bind.into()), source_name: Some(path.clone()), ..Default::default() };
    let module = ctx.compile(&source, &dev, &opts)?;

    let (b, s, d) = (2i64, 8i64, 16i64);
    let shapes: Vec<Vec<i64>> = vec![
        vec![b, s, d], vec![d], vec![d], vec![d, d], vec![d, d], vec![d, d], vec![d, d], vec![d], vec![d], vec![d, 4 * d], vec![4 * d, d],
    ];
    let mut seed = 42u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let inputs: Vec<Tensor> = shapes
        .iter()
        .map(|shape| {
            let scale = if shape.len() == 2 { 0.2 } else { 1.0 };
            let n: i64 = shape.iter().product();
            let data: Vec<Bf16> = (0..n).map(|_| Bf16::from_f32(next() * scale)).collect();
            Tensor::from_slice(&dev, shape, &data)
        })
        .collect::<tessera::Result<_>>()?;
    let refs: Vec<&Tensor> = inputs.iter().collect();

    let out = module.run(&refs)?.remove(0).to_host::<Bf16>()?;
    let program = Program::parse(&source, Some(&path))?;
    let reference = program.run_reference(None, Some(bind), &refs, 1)?.remove(0).to_host::<Bf16>()?;
    let err = out.data.iter().zip(&reference.data).map(|(x, r)| (x.to_f32() as f64 - r.to_f32() as f64).abs()).fold(0.0, f64::max);
    println!("transformer_block on {target}: output {:?} bf16, max abs error vs reference {err:.3e}", out.shape);
    if err > 0.1 {
        eprintln!("error above the bf16 tolerance 0.1");
        std::process::exit(1);
    }
    Ok(())
}
